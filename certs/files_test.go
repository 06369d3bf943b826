package certs

import (
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// checkFile checks that path exists with mode perm and contents data.
func checkFile(t *testing.T, path string, perm fs.FileMode, data []byte) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != perm {
		t.Errorf("%s has mode %v, want %v", path, got, perm)
	}
	if data == nil {
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data) {
		t.Errorf("%s holds\n%s\nwant\n%s", path, got, data)
	}
}

func TestCAFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ncmec-ca")
	ca := mustCA(t, "ncmec")
	if err := ca.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	checkFile(t, dir, 0o700, nil)
	checkFile(t, filepath.Join(dir, "ca.crt"), 0o644, ca.CertPEM())
	checkFile(t, filepath.Join(dir, "ca.key"), 0o600, nil)
	keyPEM, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}

	// A second CA must not replace the first.
	err = mustCA(t, "ncmec").WriteFiles(dir)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second WriteFiles = %v, want refusal wrapping fs.ErrExist", err)
	}
	checkFile(t, filepath.Join(dir, "ca.crt"), 0o644, ca.CertPEM())
	checkFile(t, filepath.Join(dir, "ca.key"), 0o600, keyPEM)

	loaded, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.Org != "ncmec" || !loaded.Cert.Equal(ca.Cert) {
		t.Errorf("LoadCA = org %q, cert %v; want ncmec and the original", loaded.Org, loaded.Cert.Subject)
	}
	// The loaded CA issues certificates the original's bundle accepts.
	node := mustNode(t, loaded, "n1")
	trust := NewBundle(map[string]*x509.Certificate{"ncmec": ca.Cert})
	if _, err := VerifyChain(trust, []*x509.Certificate{node.Leaf}, x509.ExtKeyUsageServerAuth, time.Now(), KindNode); err != nil {
		t.Errorf("certificate from loaded CA: %v", err)
	}
}

func TestWriteFilesLeavesNoStrayFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := mustCA(t, "a").WriteFiles(dir); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("WriteFiles = %v, want fs.ErrExist", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFiles left ca.key behind: %v", err)
	}
}

func TestLoadCAErrors(t *testing.T) {
	a, b := mustCA(t, "a"), mustCA(t, "b")
	write := func(t *testing.T, files map[string][]byte) string {
		dir := t.TempDir()
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	aDir, bDir := t.TempDir(), t.TempDir()
	if err := a.WriteFiles(aDir); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteFiles(bDir); err != nil {
		t.Fatal(err)
	}
	read := func(dir, name string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	nodePEM, nodeKeyPEM, err := a.IssueNode("n1", nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		files map[string][]byte
		msg   string
	}{
		{"missing", nil, "no such file"},
		{"no key", map[string][]byte{"ca.crt": read(aDir, "ca.crt")}, "no such file"},
		{"garbage cert", map[string][]byte{"ca.crt": []byte("hello"), "ca.key": read(aDir, "ca.key")}, "no PEM block"},
		{"key mismatch", map[string][]byte{"ca.crt": read(aDir, "ca.crt"), "ca.key": read(bDir, "ca.key")}, "does not match"},
		{"not a CA", map[string][]byte{"ca.crt": nodePEM, "ca.key": nodeKeyPEM}, "not a CA certificate"},
		{"key is a cert", map[string][]byte{"ca.crt": read(aDir, "ca.crt"), "ca.key": read(aDir, "ca.crt")}, "want PRIVATE KEY"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCA(write(t, tt.files))
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("LoadCA = %v, want error containing %q", err, tt.msg)
			}
		})
	}
}

func TestKeyPairFiles(t *testing.T) {
	ca := mustCA(t, "iwf")
	certPEM, keyPEM, err := ca.IssueClient("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "keys")
	certPath, keyPath, err := WriteKeyPair(dir, "client-alice", certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if certPath != filepath.Join(dir, "client-alice.crt") || keyPath != filepath.Join(dir, "client-alice.key") {
		t.Errorf("WriteKeyPair wrote %s and %s", certPath, keyPath)
	}
	checkFile(t, certPath, 0o644, certPEM)
	checkFile(t, keyPath, 0o600, keyPEM)

	_, _, err = WriteKeyPair(dir, "client-alice", certPEM, keyPEM)
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), "refusing to overwrite") {
		t.Errorf("second WriteKeyPair = %v, want refusal wrapping fs.ErrExist", err)
	}
	for _, base := range []string{"", ".", "..", "../x", "a/b"} {
		if _, _, err := WriteKeyPair(dir, base, certPEM, keyPEM); err == nil {
			t.Errorf("WriteKeyPair(%q) succeeded", base)
		}
	}

	cert, err := LoadKeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Leaf == nil {
		t.Fatal("LoadKeyPair did not set Leaf")
	}
	if id, err := IdentityFromCert(cert.Leaf); err != nil || id.String() != "spiffe://iwf/client/alice" {
		t.Errorf("loaded identity %v, %v", id, err)
	}
	if _, err := LoadKeyPair(certPath, filepath.Join(dir, "missing.key")); err == nil {
		t.Error("LoadKeyPair with a missing key succeeded")
	}
}

func TestParseCertificatePEM(t *testing.T) {
	ca := mustCA(t, "a")
	c, err := ParseCertificatePEM(ca.CertPEM())
	if err != nil || !c.Equal(ca.Cert) {
		t.Fatalf("ParseCertificatePEM(CertPEM()) = %v, %v", c, err)
	}
	_, keyPEM, err := ca.IssueClient("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		in   []byte
		msg  string
	}{
		{"empty", nil, "no PEM block"},
		{"key", keyPEM, `"PRIVATE KEY", want CERTIFICATE`},
		{"bad DER", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "couldn't parse certificate: x509"},
	} {
		if _, err := ParseCertificatePEM(tt.in); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: ParseCertificatePEM = %v, want error containing %q", tt.name, err, tt.msg)
		}
	}
}
