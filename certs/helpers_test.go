package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"testing"
	"time"
)

// A testFed is a small federation of orgs, each with its own CA.
type testFed struct {
	t   *testing.T
	cas map[string]*CA
}

// newTestFed returns a federation with a fresh CA for each of orgs.
func newTestFed(t *testing.T, orgs ...string) *testFed {
	t.Helper()
	f := &testFed{t: t, cas: make(map[string]*CA)}
	for _, org := range orgs {
		f.cas[org] = mustCA(t, org)
	}
	return f
}

// bundle returns a Bundle trusting the CAs of orgs, or of all the
// federation's orgs if none are given.
func (f *testFed) bundle(orgs ...string) *Bundle {
	m := make(map[string]*x509.Certificate)
	for org, ca := range f.cas {
		m[org] = ca.Cert
	}
	if len(orgs) > 0 {
		m = make(map[string]*x509.Certificate)
		for _, org := range orgs {
			m[org] = f.cas[org].Cert
		}
	}
	return NewBundle(m)
}

func mustCA(t *testing.T, org string) *CA {
	t.Helper()
	ca, err := NewCA(org, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// mustNode issues a node certificate valid for 127.0.0.1 and localhost.
func mustNode(t *testing.T, ca *CA, name string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueNode(name, []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return mustKeyPair(t, certPEM, keyPEM)
}

func mustClient(t *testing.T, ca *CA, name string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueClient(name, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return mustKeyPair(t, certPEM, keyPEM)
}

func mustKeyPair(t *testing.T, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf == nil {
		t.Fatal("X509KeyPair did not set Leaf")
	}
	return cert
}

// leafTemplate returns a template for a certificate naming uri, valid from
// an hour ago for a day, with the given extended key usages. Tests alter it
// to make certificates that CA.IssueNode and CA.IssueClient refuse to make.
func leafTemplate(t *testing.T, uri string, usages ...x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "forged"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usages,
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
		DNSNames:              []string{"localhost"},
	}
}

// forge signs tmpl with ca's key, bypassing every check the CA methods make.
func forge(t *testing.T, ca *CA, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}
