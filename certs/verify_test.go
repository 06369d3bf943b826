package certs

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestVerifyChain(t *testing.T) {
	f := newTestFed(t, "a", "b", "x.b")
	a, b := f.cas["a"], f.cas["b"]
	rogueA := mustCA(t, "a") // a CA calling itself "a" that the federation does not know
	now := time.Now()

	nodeA := mustNode(t, a, "n1").Leaf
	clientA := mustClient(t, a, "alice").Leaf
	forgedB := forge(t, a, leafTemplate(t, "spiffe://b/node/evil", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)).Leaf
	forgedSub := forge(t, b, leafTemplate(t, "spiffe://x.b/node/evil", x509.ExtKeyUsageServerAuth)).Leaf
	rogue := mustNode(t, rogueA, "n1").Leaf
	expiredTmpl := leafTemplate(t, "spiffe://a/node/old", x509.ExtKeyUsageServerAuth)
	expiredTmpl.NotBefore, expiredTmpl.NotAfter = now.Add(-48*time.Hour), now.Add(-24*time.Hour)
	expired := forge(t, a, expiredTmpl).Leaf
	noURI := forge(t, a, &x509.Certificate{SerialNumber: expiredTmpl.SerialNumber, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), DNSNames: []string{"localhost"}}).Leaf
	twoURIsTmpl := leafTemplate(t, "spiffe://a/node/n1", x509.ExtKeyUsageServerAuth)
	twoURIsTmpl.URIs = append(twoURIsTmpl.URIs, (Identity{"a", KindNode, "n2"}).URI())
	twoURIs := forge(t, a, twoURIsTmpl).Leaf

	all := f.bundle()
	// confused wrongly lists org a's CA as org b's: only a's name
	// constraint stands between a and identities of b.
	confused := NewBundle(map[string]*x509.Certificate{"a": a.Cert, "b": a.Cert})

	server, client := x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth
	for _, tt := range []struct {
		name  string
		trust TrustSource
		chain []*x509.Certificate
		usage x509.ExtKeyUsage
		kinds []Kind
		want  Identity
		err   error
		msg   string // in the error message
	}{
		{name: "node as server", trust: all, chain: []*x509.Certificate{nodeA}, usage: server, kinds: []Kind{KindNode},
			want: Identity{"a", KindNode, "n1"}},
		{name: "node as client", trust: all, chain: []*x509.Certificate{nodeA}, usage: client, kinds: []Kind{KindNode, KindClient},
			want: Identity{"a", KindNode, "n1"}},
		{name: "client as client", trust: all, chain: []*x509.Certificate{clientA}, usage: client, kinds: []Kind{KindNode, KindClient},
			want: Identity{"a", KindClient, "alice"}},
		{name: "CA sent along", trust: all, chain: []*x509.Certificate{clientA, a.Cert}, usage: client, kinds: []Kind{KindClient},
			want: Identity{"a", KindClient, "alice"}},
		{name: "dynamic", trust: NewDynamicBundle(all), chain: []*x509.Certificate{nodeA}, usage: server, kinds: []Kind{KindNode},
			want: Identity{"a", KindNode, "n1"}},

		{name: "other org's CA", trust: all, chain: []*x509.Certificate{forgedB}, usage: server, kinds: []Kind{KindNode},
			err: ErrWrongCA, msg: `spiffe://b/node/evil (issuer "CN=a hashfed CA,O=a") does not chain to org "b"'s CA`},
		{name: "other org's CA, also sent along", trust: all, chain: []*x509.Certificate{forgedB, a.Cert}, usage: server, kinds: []Kind{KindNode},
			err: ErrWrongCA, msg: `does not chain to org "b"'s CA`},
		{name: "other org's CA, name constraint", trust: confused, chain: []*x509.Certificate{forgedB}, usage: server, kinds: []Kind{KindNode},
			err: ErrWrongCA, msg: `the CA trusted for org "b" may not issue spiffe://b/node/evil`},
		{name: "parent domain's CA", trust: all, chain: []*x509.Certificate{forgedSub}, usage: server, kinds: []Kind{KindNode},
			err: ErrWrongCA, msg: `does not chain to org "x.b"'s CA`},
		{name: "unknown CA", trust: all, chain: []*x509.Certificate{rogue}, usage: server, kinds: []Kind{KindNode},
			err: ErrWrongCA, msg: `does not chain to org "a"'s CA`},
		{name: "unknown org", trust: f.bundle("a"), chain: []*x509.Certificate{mustNode(t, b, "n1").Leaf}, usage: server, kinds: []Kind{KindNode},
			err: ErrUnknownOrg, msg: `unknown org "b": no CA is known for spiffe://b/node/n1`},
		{name: "nil bundle", trust: NewDynamicBundle(nil), chain: []*x509.Certificate{nodeA}, usage: server, kinds: []Kind{KindNode},
			err: ErrUnknownOrg},
		{name: "expired", trust: all, chain: []*x509.Certificate{expired}, usage: server, kinds: []Kind{KindNode},
			err: ErrExpired, msg: "spiffe://a/node/old is valid from"},
		{name: "client as server", trust: all, chain: []*x509.Certificate{clientA}, usage: server, kinds: []Kind{KindNode},
			err: ErrWrongKind, msg: "spiffe://a/client/alice is a client identity, want node"},
		{name: "client cert for server auth", trust: all, chain: []*x509.Certificate{clientA}, usage: server, kinds: []Kind{KindClient},
			err: ErrWrongUsage, msg: "spiffe://a/client/alice is not valid for server authentication"},
		{name: "no kinds", trust: all, chain: []*x509.Certificate{nodeA}, usage: server,
			err: ErrWrongKind, msg: "want none"},
		{name: "no certificate", trust: all, usage: server, kinds: []Kind{KindNode},
			err: ErrNoCertificate},
		{name: "no URI", trust: all, chain: []*x509.Certificate{noURI}, usage: server, kinds: []Kind{KindNode},
			err: ErrBadIdentity, msg: "0 URI SANs"},
		{name: "two URIs", trust: all, chain: []*x509.Certificate{twoURIs}, usage: server, kinds: []Kind{KindNode},
			err: ErrBadIdentity, msg: "2 URI SANs"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyChain(tt.trust, tt.chain, tt.usage, now, tt.kinds...)
			if tt.err == nil {
				if err != nil || got != tt.want {
					t.Fatalf("VerifyChain = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("VerifyChain = %v, %v; want error wrapping %q containing %q", got, err, tt.err, tt.msg)
			}
			if got != (Identity{}) {
				t.Errorf("VerifyChain returned identity %v with error", got)
			}
			t.Log(err)
		})
	}
}

// TestNameConstraint checks that a CA's name constraint alone, without
// per-org roots, stops it from minting another org's identities.
func TestNameConstraint(t *testing.T) {
	a := mustCA(t, "a")
	roots := x509.NewCertPool()
	roots.AddCert(a.Cert)
	opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}

	if _, err := mustNode(t, a, "n1").Leaf.Verify(opts); err != nil {
		t.Fatalf("own identity: %v", err)
	}
	for _, uri := range []string{"spiffe://b/node/evil", "spiffe://ab/node/evil", "https://a.example/", "spiffe://b.a.example/node/evil"} {
		forged := forge(t, a, leafTemplate(t, uri, x509.ExtKeyUsageServerAuth)).Leaf
		_, err := forged.Verify(opts)
		var invalid x509.CertificateInvalidError
		if !errors.As(err, &invalid) || invalid.Reason != x509.CANotAuthorizedForThisName {
			t.Errorf("%s: Verify = %v, want CANotAuthorizedForThisName", uri, err)
		}
	}
}

func TestVerifyChainSeesStore(t *testing.T) {
	f := newTestFed(t, "a", "b")
	node := mustNode(t, f.cas["b"], "n1").Leaf
	d := NewDynamicBundle(f.bundle("a"))
	verify := func() error {
		_, err := VerifyChain(d, []*x509.Certificate{node}, x509.ExtKeyUsageServerAuth, time.Now(), KindNode)
		return err
	}
	if err := verify(); !errors.Is(err, ErrUnknownOrg) {
		t.Fatalf("before Store: %v, want ErrUnknownOrg", err)
	}
	d.Store(f.bundle())
	if err := verify(); err != nil {
		t.Fatalf("after Store: %v", err)
	}
	d.Store(nil)
	if err := verify(); !errors.Is(err, ErrUnknownOrg) {
		t.Fatalf("after Store(nil): %v, want ErrUnknownOrg", err)
	}
}
