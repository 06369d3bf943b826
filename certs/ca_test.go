package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNewCA(t *testing.T) {
	ca, err := NewCA("ncmec", 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Cert
	if ca.Org != "ncmec" {
		t.Errorf("Org = %q, want ncmec", ca.Org)
	}
	if !c.IsCA || !c.BasicConstraintsValid {
		t.Errorf("IsCA = %v, BasicConstraintsValid = %v; want both true", c.IsCA, c.BasicConstraintsValid)
	}
	if c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("KeyUsage = %b, want CertSign", c.KeyUsage)
	}
	if got := c.Subject.Organization; !slices.Equal(got, []string{"ncmec"}) {
		t.Errorf("Subject O = %q, want [ncmec]", got)
	}
	if got := c.Subject.CommonName; got != "ncmec hashfed CA" {
		t.Errorf("Subject CN = %q", got)
	}
	if !slices.Equal(c.PermittedURIDomains, []string{"ncmec"}) || !c.PermittedDNSDomainsCritical {
		t.Errorf("PermittedURIDomains = %q, critical = %v; want [ncmec], true", c.PermittedURIDomains, c.PermittedDNSDomainsCritical)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key is %T, want ECDSA P-256", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("CA certificate is not self-signed: %v", err)
	}
	if d := time.Until(c.NotAfter); d < 47*time.Hour || d > 48*time.Hour {
		t.Errorf("NotAfter is %v from now, want 48h", d)
	}

	for _, org := range []string{"", "NCMEC", "a..b", "10.0.0.1", "a/b"} {
		if _, err := NewCA(org, time.Hour); !errors.Is(err, ErrBadName) {
			t.Errorf("NewCA(%q) = %v, want ErrBadName", org, err)
		}
	}
	if _, err := NewCA("ncmec", 0); err == nil {
		t.Error("NewCA with zero validity succeeded")
	}
}

func TestIssueNode(t *testing.T) {
	ca := mustCA(t, "ncmec")
	certPEM, keyPEM, err := ca.IssueNode("n1", []string{"n1.ncmec.example", "10.0.0.1", "[::1]", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := mustKeyPair(t, certPEM, keyPEM).Leaf
	id, err := IdentityFromCert(c)
	if err != nil || id != (Identity{"ncmec", KindNode, "n1"}) {
		t.Errorf("IdentityFromCert = %v, %v; want spiffe://ncmec/node/n1", id, err)
	}
	if want := []string{"n1.ncmec.example", "localhost"}; !slices.Equal(c.DNSNames, want) {
		t.Errorf("DNSNames = %q, want %q", c.DNSNames, want)
	}
	if want := []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("::1")}; !slices.EqualFunc(c.IPAddresses, want, net.IP.Equal) {
		t.Errorf("IPAddresses = %v, want %v", c.IPAddresses, want)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(c.ExtKeyUsage, want) {
		t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, want)
	}
	if c.IsCA {
		t.Error("node certificate is a CA")
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key is %T, want ECDSA P-256", c.PublicKey)
	}
	if err := c.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("node certificate not signed by CA: %v", err)
	}
	if d := time.Until(c.NotAfter); d < 59*time.Minute || d > time.Hour {
		t.Errorf("NotAfter is %v from now, want 1h", d)
	}

	for _, tt := range []struct {
		name  string
		hosts []string
		want  error
		msg   string
	}{
		{"N1", nil, ErrBadName, "character 'N'"},
		{"", nil, ErrBadName, "empty"},
		{"n/1", nil, ErrBadIdentity, "character '/'"},
		{"n1", []string{"n1:7000"}, nil, `host "n1:7000"`},
		{"n1", []string{""}, nil, `host ""`},
	} {
		_, _, err := ca.IssueNode(tt.name, tt.hosts, time.Hour)
		if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("IssueNode(%q, %q) = %v, want error wrapping %v containing %q", tt.name, tt.hosts, err, tt.want, tt.msg)
		}
	}
}

func TestIssueClient(t *testing.T) {
	ca := mustCA(t, "iwf")
	c := mustClient(t, ca, "alice").Leaf
	id, err := IdentityFromCert(c)
	if err != nil || id != (Identity{"iwf", KindClient, "alice"}) {
		t.Errorf("IdentityFromCert = %v, %v; want spiffe://iwf/client/alice", id, err)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}; !slices.Equal(c.ExtKeyUsage, want) {
		t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, want)
	}
	if len(c.DNSNames)+len(c.IPAddresses) != 0 {
		t.Errorf("client certificate names hosts %q %v", c.DNSNames, c.IPAddresses)
	}
	if _, _, err := ca.IssueClient("Alice", time.Hour); !errors.Is(err, ErrBadName) {
		t.Errorf("IssueClient(Alice) = %v, want ErrBadName", err)
	}
	if _, _, err := ca.IssueClient("alice", -time.Hour); err == nil {
		t.Error("IssueClient with negative validity succeeded")
	}
}

func TestIssueClampsToCAExpiry(t *testing.T) {
	ca := mustCA(t, "ncmec") // valid for 24h
	certPEM, _, err := ca.IssueNode("n1", nil, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !c.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("NotAfter = %v, want the CA's %v", c.NotAfter, ca.Cert.NotAfter)
	}
}

// TestOrgNames checks that every shape of org name the naming rule allows
// survives X.509 name constraints and URI parsing end to end.
func TestOrgNames(t *testing.T) {
	for _, org := range []string{"a", "my_org", "iwf.org.uk", "123", "x-y", "a_b.c-d", strings.Repeat("o", 63)} {
		ca := mustCA(t, org)
		node := mustNode(t, ca, "n_1.x")
		trust := NewBundle(map[string]*x509.Certificate{org: ca.Cert})
		id, err := VerifyChain(trust, []*x509.Certificate{node.Leaf}, x509.ExtKeyUsageServerAuth, time.Now(), KindNode)
		if err != nil {
			t.Errorf("org %q: %v", org, err)
			continue
		}
		if want := (Identity{org, KindNode, "n_1.x"}); id != want {
			t.Errorf("org %q: identity %v, want %v", org, id, want)
		}
	}
}
