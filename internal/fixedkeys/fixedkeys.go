// Package fixedkeys derives Ed25519 keys, CA certificates and checkpoint
// (note) keys from fixed labels, for fuzz fixtures. The fuzzing coordinator
// makes the seed corpus and each worker process builds its own fixture, so
// every process must derive the same keys and certificates, byte for byte:
// with fresh random keys no signed seed would verify in a worker. Ed25519
// signatures are deterministic, so what these keys sign is fixed too.
//
// Never use these keys for anything but tests.
package fixedkeys

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// A Deriver derives keys from labels under its prefix. Each package's
// fixture keeps its own prefix, so that the corpus committed with it stays
// signed by the keys it was made with.
type Deriver string

// Key returns the Ed25519 key derived from label.
func (d Deriver) Key(label string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(string(d) + label))
	return ed25519.NewKeyFromSeed(seed[:])
}

// CACert returns a PEM CA certificate for org like certs.NewCA's, with the
// key derived from keyLabel, serial number 1 and a fixed validity
// (2025-2045).
func (d Deriver) CACert(org, keyLabel string) (string, error) {
	key := d.Key(keyLabel)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{Organization: []string{org}, CommonName: org + " hashfed CA"},
		NotBefore:    time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
		PermittedDNSDomainsCritical: true, PermittedURIDomains: []string{org},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

// NoteKey returns a note (checkpoint) signer named name, with the key
// derived from keyLabel, its verifier and its verifier key.
func (d Deriver) NoteKey(name, keyLabel string) (note.Signer, note.Verifier, string, error) {
	key := d.Key(keyLabel)
	vkey, err := note.NewEd25519VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, nil, "", err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, "", err
	}
	return noteSigner{name: name, hash: v.KeyHash(), key: key}, v, vkey, nil
}

// A noteSigner is a note signer with a given Ed25519 key.
type noteSigner struct {
	name string
	hash uint32
	key  ed25519.PrivateKey
}

func (s noteSigner) Name() string                    { return s.name }
func (s noteSigner) KeyHash() uint32                 { return s.hash }
func (s noteSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// MustCACert is CACert for tests: a failure ends tb.
func (d Deriver) MustCACert(tb testing.TB, org, keyLabel string) string {
	tb.Helper()
	pem, err := d.CACert(org, keyLabel)
	if err != nil {
		tb.Fatal(err)
	}
	return pem
}

// MustNoteKey is NoteKey for tests, returning the signer and its verifier
// key: a failure ends tb.
func (d Deriver) MustNoteKey(tb testing.TB, name, keyLabel string) (note.Signer, string) {
	tb.Helper()
	s, _, vkey, err := d.NoteKey(name, keyLabel)
	if err != nil {
		tb.Fatal(err)
	}
	return s, vkey
}
