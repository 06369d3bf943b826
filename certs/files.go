package certs

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteKeyPair writes certPEM to <dir>/<base>.crt with mode 0644 and keyPEM
// to <dir>/<base>.key with mode 0600, creating dir (mode 0700) if needed,
// and returns the two paths. Callers use base "node-<name>" or
// "client-<name>".
//
// WriteKeyPair refuses to overwrite either file: if one exists, it writes
// nothing and returns an error wrapping [fs.ErrExist].
func WriteKeyPair(dir, base string, certPEM, keyPEM []byte) (certPath, keyPath string, err error) {
	if base == "" || base == "." || base == ".." || filepath.Base(base) != base {
		return "", "", fmt.Errorf("couldn't write key pair: base name %q is not a plain file name", base)
	}
	certPath, keyPath, err = writePair(dir, base+".crt", base+".key", certPEM, keyPEM)
	if err != nil {
		return "", "", fmt.Errorf("couldn't write key pair %q: %w", base, err)
	}
	return certPath, keyPath, nil
}

// writePair writes a certificate and key file into dir, which it creates if
// needed. It writes both or neither.
func writePair(dir, certName, keyName string, certPEM, keyPEM []byte) (certPath, keyPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	certPath = filepath.Join(dir, certName)
	keyPath = filepath.Join(dir, keyName)
	// Check both up front so that an existing certificate does not leave a
	// stray new key behind; writeNew's O_EXCL still settles any race.
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			return "", "", fmt.Errorf("refusing to overwrite existing file %s: %w", p, fs.ErrExist)
		}
	}
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		return "", "", err
	}
	if err := writeNew(certPath, certPEM, 0o644); err != nil {
		os.Remove(keyPath)
		return "", "", err
	}
	return certPath, keyPath, nil
}

// writeNew creates path with mode perm, whatever the umask, writes data to
// it and syncs it. It fails if path exists, and removes what it created if
// it cannot finish.
func writeNew(path string, data []byte, perm fs.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("refusing to overwrite existing file %s: %w", path, fs.ErrExist)
	}
	if err != nil {
		return err
	}
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("couldn't write %s: %w", path, err)
	}
	return nil
}

// ParseCertificatePEM parses the first PEM block of b, which must be a
// CERTIFICATE block.
func ParseCertificatePEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("couldn't parse certificate: no PEM block found")
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("couldn't parse certificate: PEM block is %q, want CERTIFICATE", block.Type)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("couldn't parse certificate: %w", err)
	}
	return cert, nil
}

// LoadKeyPair reads a PEM-encoded certificate chain and its private key, as
// written by [WriteKeyPair], into a [tls.Certificate] with Leaf set.
func LoadKeyPair(certPath, keyPath string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("couldn't load key pair %s, %s: %w", certPath, keyPath, err)
	}
	if cert.Leaf == nil {
		cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("couldn't parse certificate %s: %w", certPath, err)
		}
	}
	return cert, nil
}
