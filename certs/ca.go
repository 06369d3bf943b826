package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// clockSkew is how far before the moment of issue certificates become valid,
// so that peers whose clocks run slightly behind still accept them.
const clockSkew = 5 * time.Minute

// Names of the files [CA.WriteFiles] writes and [LoadCA] reads.
const (
	caCertFile = "ca.crt"
	caKeyFile  = "ca.key"
)

// A CA is an org's certificate authority. It issues the certificates of the
// org's nodes and clients, and only those: its certificate is constrained to
// URIs whose host is Org.
type CA struct {
	// Org is the org whose identities the CA issues.
	Org string
	// Cert is the CA's self-signed certificate, the root of the org's trust.
	Cert *x509.Certificate
	// Key is the private key matching Cert.
	Key crypto.Signer
}

// NewCA creates a CA for org with a new ECDSA P-256 key and a self-signed
// certificate valid for validity from now.
//
// The certificate has subject O=<org>, CN=<org> hashfed CA, and a critical
// name constraint permitting only URIs whose host is org (or, by the rules of
// X.509, a subdomain of it), so that the CA cannot mint identities for other
// orgs that verify.
func NewCA(org string, validity time.Duration) (*CA, error) {
	if err := ValidOrg(org); err != nil {
		return nil, fmt.Errorf("couldn't create CA: %w", err)
	}
	if validity <= 0 {
		return nil, fmt.Errorf("couldn't create CA for org %q: validity %v is not positive", org, validity)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("couldn't generate CA key for org %q: %w", org, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			Organization: []string{org},
			CommonName:   org + " hashfed CA",
		},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaves directly; it has no intermediates.
		MaxPathLen:                  0,
		MaxPathLenZero:              true,
		PermittedDNSDomainsCritical: true, // marks the whole name constraints extension critical
		PermittedURIDomains:         []string{org},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("couldn't create CA certificate for org %q: %w", org, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse new CA certificate for org %q: %w", org, err)
	}
	return &CA{Org: org, Cert: cert, Key: key}, nil
}

// IssueNode issues a certificate and a new ECDSA P-256 key for the node
// spiffe://<ca.Org>/node/<name>, valid for both server and client
// authentication, since nodes dial each other.
//
// Each of hosts is a DNS name or an IP address (IPv6 optionally in brackets)
// the node is reached at; clients that dial the node by one of them check
// it. The certificate expires after validity, or when the CA does if that is
// sooner. Both results are PEM-encoded.
func (ca *CA) IssueNode(name string, hosts []string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	id := Identity{Org: ca.Org, Kind: KindNode, Name: name}
	if err := id.validate(); err != nil {
		return nil, nil, fmt.Errorf("couldn't issue certificate: %w", err)
	}
	tmpl := &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		if ip := parseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if h == "" || strings.ContainsAny(h, ":/[] ") {
			return nil, nil, fmt.Errorf("couldn't issue certificate for %s: host %q is neither a DNS name nor an IP address", id, h)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	return ca.issue(id, tmpl, validity)
}

// IssueClient issues a certificate and a new ECDSA P-256 key for the client
// spiffe://<ca.Org>/client/<name>, valid for client authentication only.
// The certificate expires after validity, or when the CA does if that is
// sooner. Both results are PEM-encoded.
func (ca *CA) IssueClient(name string, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	id := Identity{Org: ca.Org, Kind: KindClient, Name: name}
	tmpl := &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return ca.issue(id, tmpl, validity)
}

// issue completes tmpl, which sets only the extended key usages and host
// names, into a certificate for id signed by ca, with a new key. The
// certificate's subject, O=<org>, OU=<kind>, CN=<name>, is for people
// reading it; only the URI SAN counts.
func (ca *CA) issue(id Identity, tmpl *x509.Certificate, validity time.Duration) (certPEM, keyPEM []byte, err error) {
	if err := id.validate(); err != nil {
		return nil, nil, fmt.Errorf("couldn't issue certificate: %w", err)
	}
	if ca.Cert == nil || ca.Key == nil {
		return nil, nil, fmt.Errorf("couldn't issue certificate for %s: CA has no certificate or key", id)
	}
	if validity <= 0 {
		return nil, nil, fmt.Errorf("couldn't issue certificate for %s: validity %v is not positive", id, validity)
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, nil, fmt.Errorf("couldn't issue certificate for %s: CA certificate expired at %v", id, ca.Cert.NotAfter)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't generate key for %s: %w", id, err)
	}
	tmpl.SerialNumber = randomSerial()
	tmpl.Subject = pkix.Name{
		Organization:       []string{id.Org},
		OrganizationalUnit: []string{string(id.Kind)},
		CommonName:         id.Name,
	}
	tmpl.URIs = []*url.URL{id.URI()}
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = notAfter
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't issue certificate for %s: %w", id, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't encode key for %s: %w", id, err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// CertPEM returns the CA's certificate, PEM-encoded.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// WriteFiles writes the CA's certificate to <dir>/ca.crt with mode 0644 and
// its private key to <dir>/ca.key with mode 0600, creating dir (mode 0700)
// if needed. It refuses to overwrite either file: if one exists, it writes
// nothing and returns an error wrapping [io/fs.ErrExist].
func (ca *CA) WriteFiles(dir string) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return fmt.Errorf("couldn't encode key of CA for org %q: %w", ca.Org, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	_, _, err = writePair(dir, caCertFile, caKeyFile, ca.CertPEM(), keyPEM)
	if err != nil {
		return fmt.Errorf("couldn't write CA for org %q: %w", ca.Org, err)
	}
	return nil
}

// LoadCA reads a CA written by [CA.WriteFiles] from <dir>/ca.crt and
// <dir>/ca.key. The CA's org is the certificate's subject organization.
func LoadCA(dir string) (*CA, error) {
	certPath := filepath.Join(dir, caCertFile)
	keyPath := filepath.Join(dir, caKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("couldn't load CA: %w", err)
	}
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("couldn't load CA certificate %s: %w", certPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("couldn't load CA: %s is not a CA certificate", certPath)
	}
	if len(cert.Subject.Organization) != 1 {
		return nil, fmt.Errorf("couldn't load CA: %s has %d subject organizations, want 1", certPath, len(cert.Subject.Organization))
	}
	org := cert.Subject.Organization[0]
	if err := ValidOrg(org); err != nil {
		return nil, fmt.Errorf("couldn't load CA %s: org: %w", certPath, err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("couldn't load CA: %w", err)
	}
	key, err := parsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("couldn't load CA key %s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("couldn't load CA: key %s does not match certificate %s", keyPath, certPath)
	}
	return &CA{Org: org, Cert: cert, Key: key}, nil
}

// parsePrivateKeyPEM parses the first PEM block of b as a PKCS #8 or SEC 1
// private key usable for signing.
func parsePrivateKeyPEM(b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, err
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("key of type %T cannot sign", key)
	}
	return signer, nil
}

// parseIP parses h as an IP address, also accepting an IPv6 address in
// brackets as in URLs. It returns nil if h is not an IP address.
func parseIP(h string) net.IP {
	if s, ok := strings.CutPrefix(h, "["); ok {
		if s, ok := strings.CutSuffix(s, "]"); ok && strings.Contains(s, ":") {
			return net.ParseIP(s)
		}
		return nil
	}
	return net.ParseIP(h)
}

// randomSerial returns a random, positive, 16-byte certificate serial number.
func randomSerial() *big.Int {
	b := make([]byte, 16)
	rand.Read(b) // never fails
	b[0] &= 0x7f
	b[0] |= 0x40 // keep it 16 bytes long, and nonzero
	return new(big.Int).SetBytes(b)
}
