package fixedkeys

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// TestDeterministic: the same prefix and labels give the same keys,
// certificate and signed note in every call, and other ones give others.
func TestDeterministic(t *testing.T) {
	d := Deriver("test ")
	if !d.Key("a").Equal(d.Key("a")) || d.Key("a").Equal(d.Key("b")) || d.Key("a").Equal(Deriver("other ").Key("a")) {
		t.Fatal("keys are not a function of prefix and label")
	}
	ca1, err := d.CACert("ngo", "ca ngo")
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := d.CACert("ngo", "ca ngo")
	if err != nil {
		t.Fatal(err)
	}
	if ca1 != ca2 {
		t.Fatal("the same CA certificate differs between calls")
	}
	block, _ := pem.Decode([]byte(ca1))
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil || !cert.IsCA || cert.PermittedURIDomains[0] != "ngo" {
		t.Fatalf("CA certificate: self-signature %v, IsCA %t, URI domains %v", err, cert.IsCA, cert.PermittedURIDomains)
	}
	s, v, vkey, err := d.NoteKey("log.example", "note log")
	if err != nil {
		t.Fatal(err)
	}
	msg1, err := note.Sign(&note.Note{Text: "hello\n"}, s)
	if err != nil {
		t.Fatal(err)
	}
	s2, _, vkey2, err := d.NoteKey("log.example", "note log")
	if err != nil {
		t.Fatal(err)
	}
	msg2, err := note.Sign(&note.Note{Text: "hello\n"}, s2)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg1) != string(msg2) || vkey != vkey2 {
		t.Fatal("the same note key signs differently between calls")
	}
	if _, err := note.Open(msg1, note.VerifierList(v)); err != nil {
		t.Fatalf("the note does not verify under its own verifier: %v", err)
	}
}
