package certs

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"github.com/hashfed/hashfed/internal/fixedkeys"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fuzzCA returns a fresh CA for org, failing f if it cannot.
func fuzzCA(f *testing.F, org string) *CA {
	ca, err := NewCA(org, 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	return ca
}

// pkcs8PEM encodes key as a PEM PRIVATE KEY block.
func pkcs8PEM(f *testing.F, key crypto.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		f.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// keySeeds returns private key PEM files of every kind a user may hand
// hashfed: what it writes itself (PKCS #8 P-256), SEC 1, Ed25519, RSA.
func keySeeds(f *testing.F) [][]byte {
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(p256)
	if err != nil {
		f.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		f.Fatal(err)
	}
	return [][]byte{
		pkcs8PEM(f, p256),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		pkcs8PEM(f, ed),
		pkcs8PEM(f, rsaKey),
		pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}),
	}
}

// checkSigns fails t unless key signs a message that its public key verifies.
func checkSigns(t *testing.T, key crypto.Signer) {
	t.Helper()
	msg := []byte("hashfed fuzz")
	digest := sha256.Sum256(msg)
	var ok bool
	switch pub := key.Public().(type) {
	case *ecdsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		ok = err == nil && ecdsa.VerifyASN1(pub, digest[:], sig)
	case ed25519.PublicKey:
		sig, err := key.Sign(rand.Reader, msg, crypto.Hash(0))
		ok = err == nil && ed25519.Verify(pub, msg, sig)
	case *rsa.PublicKey:
		sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
		ok = err == nil && rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
	default:
		t.Fatalf("parsed a key with public key of type %T", pub)
	}
	if !ok {
		t.Fatalf("a parsed %T key does not sign what its public key verifies", key)
	}
}

func FuzzParseCertificatePEM(f *testing.F) {
	ca := fuzzCA(f, "ngo")
	f.Add(ca.CertPEM())
	certPEM, keyPEM, err := ca.IssueNode("n1", []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM)
	f.Add(append(append([]byte{}, keyPEM...), certPEM...))
	f.Add(append(append([]byte("junk before\n"), certPEM...), ca.CertPEM()...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCertificatePEM(b)
		if err != nil {
			return
		}
		block, _ := pem.Decode(b)
		if block == nil || block.Type != "CERTIFICATE" || !bytes.Equal(block.Bytes, c.Raw) {
			t.Fatal("ParseCertificatePEM returned a certificate that is not the first PEM block")
		}
		again, err := ParseCertificatePEM(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
		if err != nil || !again.Equal(c) {
			t.Fatalf("re-encoded certificate does not parse back the same: %v", err)
		}
	})
}

func FuzzParsePrivateKeyPEM(f *testing.F) {
	for _, k := range keySeeds(f) {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := parsePrivateKeyPEM(b)
		if err != nil {
			return
		}
		checkSigns(t, key)
		again, err := parsePrivateKeyPEM(pkcs8PEMT(t, key))
		if err != nil {
			t.Fatalf("the PKCS #8 encoding of a parsed key does not parse: %v", err)
		}
		if pub, ok := again.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(key.Public()) {
			t.Fatal("the PKCS #8 encoding of a parsed key parses to another key")
		}
	})
}

// pkcs8PEMT is pkcs8PEM for a fuzz function.
func pkcs8PEMT(t *testing.T, key crypto.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("a parsed %T key does not encode: %v", key, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// FuzzLoadCA loads CA files. A CA that loads must be a CA certificate of a
// valid org with the matching key, and whatever it issues must carry the
// identity asked for and verify under its certificate.
func FuzzLoadCA(f *testing.F) {
	ca := fuzzCA(f, "ngo")
	dir := f.TempDir()
	if err := ca.WriteFiles(filepath.Join(dir, "seed")); err != nil {
		f.Fatal(err)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "seed", caCertFile))
	if err != nil {
		f.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, "seed", caKeyFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM, keyPEM)
	sec1, err := x509.MarshalECPrivateKey(ca.Key.(*ecdsa.PrivateKey))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}))
	other := fuzzCA(f, "iwf")
	f.Add(certPEM, pkcs8PEM(f, other.Key))
	leafPEM, leafKey, err := ca.IssueClient("alice", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(leafPEM, leafKey)

	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		// One directory per worker process, rewritten by every input.
		for name, b := range map[string][]byte{caCertFile: certPEM, caKeyFile: keyPEM} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		ca, err := LoadCA(dir)
		if err != nil {
			return
		}
		if !ca.Cert.IsCA {
			t.Fatal("LoadCA accepted a certificate that is not a CA")
		}
		if err := ValidOrg(ca.Org); err != nil || !slices.Equal(ca.Cert.Subject.Organization, []string{ca.Org}) {
			t.Fatalf("LoadCA accepted org %q: %v", ca.Org, err)
		}
		if pub, ok := ca.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(ca.Cert.PublicKey) {
			t.Fatal("LoadCA accepted a key that does not match the certificate")
		}
		leafPEM, _, err := ca.IssueClient("fuzz", time.Hour)
		if err != nil {
			return
		}
		leaf, err := ParseCertificatePEM(leafPEM)
		if err != nil {
			t.Fatalf("the loaded CA issued a certificate that does not parse: %v", err)
		}
		if id, err := IdentityFromCert(leaf); err != nil || id != (Identity{Org: ca.Org, Kind: KindClient, Name: "fuzz"}) {
			t.Fatalf("the loaded CA issued identity %v, %v", id, err)
		}
		if err := leaf.CheckSignatureFrom(ca.Cert); err != nil {
			t.Fatalf("the loaded CA issued a certificate its certificate does not verify: %v", err)
		}
	})
}

func FuzzLoadKeyPair(f *testing.F) {
	ca := fuzzCA(f, "ngo")
	certPEM, keyPEM, err := ca.IssueNode("n1", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(certPEM, keyPEM)
	f.Add(append(append([]byte{}, certPEM...), ca.CertPEM()...), keyPEM)
	f.Add(ca.CertPEM(), keyPEM)
	dir := f.TempDir()
	certPath, keyPath := filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		if err := os.WriteFile(certPath, certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		cert, err := LoadKeyPair(certPath, keyPath)
		if err != nil {
			return
		}
		if cert.Leaf == nil || len(cert.Certificate) == 0 || !bytes.Equal(cert.Leaf.Raw, cert.Certificate[0]) {
			t.Fatal("LoadKeyPair returned a key pair whose Leaf is not its first certificate")
		}
		signer, ok := cert.PrivateKey.(crypto.Signer)
		if !ok {
			t.Fatalf("LoadKeyPair returned a %T private key, which cannot sign", cert.PrivateKey)
		}
		if pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.Leaf.PublicKey) {
			t.Fatal("LoadKeyPair accepted a key that does not match the certificate")
		}
	})
}

// fixedKey returns the Ed25519 key derived from label: the same in every
// process, so that the fuzzing coordinator, which makes the seeds, and its
// workers, which run them, build the same certificates.
func fixedKey(label string) ed25519.PrivateKey {
	return fixedkeys.Deriver("hashfed certs fuzz ").Key(label)
}

// fixedCert returns the certificate of tmpl, completed with a fixed serial
// number and validity, for key's public key, signed by parent's key
// (itself when parent is nil). Ed25519 signatures are deterministic, so
// the certificate is the same in every process.
func fixedCert(f *testing.F, tmpl *x509.Certificate, key ed25519.PrivateKey, parent *CA) *x509.Certificate {
	tmpl.SerialNumber = big.NewInt(int64(len(tmpl.Subject.CommonName)) + 2)
	tmpl.NotBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	tmpl.NotAfter = time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC)
	issuer, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		issuer, signer = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		f.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		f.Fatal(err)
	}
	return c
}

// fixedCA returns a CA for org like NewCA's, with a fixed key.
func fixedCA(f *testing.F, org, label string) *CA {
	key := fixedKey("ca " + org + " " + label)
	cert := fixedCert(f, &x509.Certificate{
		Subject:  pkix.Name{Organization: []string{org}, CommonName: org + " hashfed CA"},
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		PermittedDNSDomainsCritical: true, PermittedURIDomains: []string{org},
	}, key, nil)
	return &CA{Org: org, Cert: cert, Key: key}
}

// fixedLeaf returns a certificate like CA.issue's for id, with a fixed key.
func fixedLeaf(f *testing.F, ca *CA, id Identity, usages ...x509.ExtKeyUsage) *x509.Certificate {
	return fixedCert(f, &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{id.Org}, OrganizationalUnit: []string{string(id.Kind)}, CommonName: id.Name},
		URIs:        []*url.URL{id.URI()},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: usages, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}, fixedKey("leaf "+id.String()), ca)
}

// FuzzVerifyChain verifies certificates parsed from fuzzed DER against two
// orgs' CAs. Only the fuzz target holds the CA keys, so a certificate that
// verifies must have the signed contents of one the CAs issued, and carry
// its identity. Every error wraps one of the documented sentinels.
func FuzzVerifyChain(f *testing.F) {
	cas := map[string]*CA{"ngo": fixedCA(f, "ngo", ""), "iwf": fixedCA(f, "iwf", "")}
	stranger := fixedCA(f, "ngo", "stranger") // a CA claiming ngo that nobody trusts
	trust := NewBundle(map[string]*x509.Certificate{"ngo": cas["ngo"].Cert, "iwf": cas["iwf"].Cert})
	now := time.Now()

	issued := map[string]Identity{} // RawTBSCertificate -> identity
	add := func(c *x509.Certificate, id Identity) {
		if id != (Identity{}) {
			issued[string(c.RawTBSCertificate)] = id
		}
		f.Add(c.Raw, uint8(0))
		f.Add(c.Raw, uint8(1))
	}
	for _, org := range []string{"ngo", "iwf"} {
		ca := cas[org]
		node := Identity{Org: org, Kind: KindNode, Name: org + "-1"}
		add(fixedLeaf(f, ca, node, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth), node)
		cli := Identity{Org: org, Kind: KindClient, Name: "cli"}
		add(fixedLeaf(f, ca, cli, x509.ExtKeyUsageClientAuth), cli)
		add(ca.Cert, Identity{})
	}
	add(fixedLeaf(f, stranger, Identity{Org: "ngo", Kind: KindNode, Name: "evil"}, x509.ExtKeyUsageServerAuth), Identity{})
	// A certificate of iwf's CA naming ngo, which the name constraint and
	// the per-org roots both refuse.
	add(fixedLeaf(f, cas["iwf"], Identity{Org: "ngo", Kind: KindNode, Name: "x"}, x509.ExtKeyUsageServerAuth), Identity{})

	f.Fuzz(func(t *testing.T, der []byte, mode uint8) {
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return
		}
		usage := x509.ExtKeyUsageServerAuth
		kinds := []Kind{KindNode}
		if mode&1 == 1 {
			usage = x509.ExtKeyUsageClientAuth
			kinds = []Kind{KindNode, KindClient}
		}
		id, err := VerifyChain(trust, []*x509.Certificate{leaf}, usage, now, kinds...)
		if err != nil {
			for _, sentinel := range []error{ErrNoCertificate, ErrBadIdentity, ErrWrongKind, ErrUnknownOrg, ErrNotTrusted} {
				if errors.Is(err, sentinel) {
					return
				}
			}
			t.Fatalf("VerifyChain error %v wraps none of the documented errors", err)
		}
		want, ok := issued[string(leaf.RawTBSCertificate)]
		if !ok {
			t.Fatalf("VerifyChain accepted a certificate no trusted CA issued, as %v", id)
		}
		if id != want {
			t.Fatalf("VerifyChain returned identity %v for the certificate issued to %v", id, want)
		}
		if !slices.Contains(kinds, id.Kind) {
			t.Fatalf("VerifyChain accepted kind %q, want one of %v", id.Kind, kinds)
		}
	})
}
