package certs

import (
	"crypto/x509"
	"sync/atomic"
)

// A TrustSource tells which CA certificates an org's identities must chain
// to. It is consulted on every handshake, so its contents may change while
// connections are made, e.g. as the federation's org registry changes.
//
// Roots returns the pool of root certificates for org and true, or false if
// org is unknown. Callers must not modify the returned pool.
// Implementations must be safe for concurrent use by multiple goroutines.
type TrustSource interface {
	Roots(org string) (*x509.CertPool, bool)
}

var (
	_ TrustSource = (*Bundle)(nil)
	_ TrustSource = (*DynamicBundle)(nil)
)

// A Bundle is a fixed [TrustSource] built from each org's CA certificate.
// A nil *Bundle knows no orgs.
type Bundle struct {
	roots map[string]*x509.CertPool
}

// NewBundle returns a Bundle trusting cas[org] as the only root for org's
// identities. Nil certificates are skipped. The bundle does not retain cas.
func NewBundle(cas map[string]*x509.Certificate) *Bundle {
	b := &Bundle{roots: make(map[string]*x509.CertPool, len(cas))}
	for org, cert := range cas {
		if cert == nil {
			continue
		}
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		b.roots[org] = pool
	}
	return b
}

// Roots implements [TrustSource].
func (b *Bundle) Roots(org string) (*x509.CertPool, bool) {
	if b == nil {
		return nil, false
	}
	pool, ok := b.roots[org]
	return pool, ok
}

// A DynamicBundle is a [TrustSource] whose contents can be replaced
// atomically while it is in use: each lookup sees either the old or the new
// [Bundle] in full. The zero DynamicBundle knows no orgs.
type DynamicBundle struct {
	b atomic.Pointer[Bundle]
}

// NewDynamicBundle returns a DynamicBundle holding b, which may be nil.
func NewDynamicBundle(b *Bundle) *DynamicBundle {
	d := new(DynamicBundle)
	d.b.Store(b)
	return d
}

// Store replaces the bundle's contents with b, which may be nil. Handshakes
// from then on, including resumptions of earlier sessions, are checked
// against b.
func (d *DynamicBundle) Store(b *Bundle) { d.b.Store(b) }

// Load returns the bundle currently held.
func (d *DynamicBundle) Load() *Bundle { return d.b.Load() }

// Roots implements [TrustSource].
func (d *DynamicBundle) Roots(org string) (*x509.CertPool, bool) {
	return d.b.Load().Roots(org)
}
