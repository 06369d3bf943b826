package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A handshake is what the server side saw of one connection.
type handshake struct {
	peer    Identity // the client's identity, if the handshake succeeded
	resumed bool
	err     error
}

// startServer listens on a loopback port and serves every connection with
// cfg: it completes the handshake, writes "ok" and closes. Each connection's
// outcome is sent on the returned channel.
func startServer(t *testing.T, cfg *tls.Config) (addr string, results <-chan handshake) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan handshake, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			go func() {
				conn := tls.Server(c, cfg)
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				if err := conn.Handshake(); err != nil {
					ch <- handshake{err: err}
					return
				}
				cs := conn.ConnectionState()
				id, err := PeerIdentity(cs)
				ch <- handshake{peer: id, resumed: cs.DidResume, err: err}
				conn.Write([]byte("ok"))
			}()
		}
	}()
	return ln.Addr().String(), ch
}

// dial connects to addr with cfg and reads the server's "ok". It returns the
// server's identity, or the error from the handshake or the read: in TLS 1.3
// the client finishes its handshake before the server checks the client's
// certificate, so a rejection shows up on the first read.
func dial(t *testing.T, addr string, cfg *tls.Config) (Identity, error) {
	t.Helper()
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cfg}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return Identity{}, err
	}
	defer c.Close()
	conn := c.(*tls.Conn)
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil {
		return Identity{}, err
	}
	if string(buf) != "ok" {
		t.Fatalf("read %q from server, want ok", buf)
	}
	return PeerIdentity(conn.ConnectionState())
}

// result waits for the server's view of one connection.
func result(t *testing.T, results <-chan handshake) handshake {
	t.Helper()
	select {
	case h := <-results:
		return h
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for the server")
		return handshake{}
	}
}

func TestHandshake(t *testing.T) {
	f := newTestFed(t, "a", "b", "c")
	a, b := f.cas["a"], f.cas["b"]
	trust := f.bundle("a", "b")
	serverCfg := ServerConfig(mustNode(t, a, "n1"), trust, []Kind{KindNode, KindClient}, "h2")
	addr, results := startServer(t, serverCfg)

	expiredTmpl := leafTemplate(t, "spiffe://b/client/old", x509.ExtKeyUsageClientAuth)
	expiredTmpl.NotBefore, expiredTmpl.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour)

	for _, tt := range []struct {
		name string
		cert *tls.Certificate // nil for none
		want Identity         // the client identity the server sees
		err  error            // the server's error
	}{
		{name: "client", cert: ptr(mustClient(t, b, "alice")), want: Identity{"b", KindClient, "alice"}},
		{name: "node", cert: ptr(mustNode(t, b, "n7")), want: Identity{"b", KindNode, "n7"}},
		{name: "same org", cert: ptr(mustNode(t, a, "n2")), want: Identity{"a", KindNode, "n2"}},
		{name: "no certificate"},
		{name: "unknown CA", cert: ptr(mustClient(t, mustCA(t, "b"), "mallory")), err: ErrWrongCA},
		{name: "other org's identity", cert: ptr(forge(t, a, leafTemplate(t, "spiffe://b/client/evil", x509.ExtKeyUsageClientAuth))), err: ErrWrongCA},
		{name: "unknown org", cert: ptr(mustClient(t, f.cas["c"], "carol")), err: ErrUnknownOrg},
		{name: "expired", cert: ptr(forge(t, b, expiredTmpl)), err: ErrExpired},
		{name: "server-only usage", cert: ptr(forge(t, b, leafTemplate(t, "spiffe://b/node/n9", x509.ExtKeyUsageServerAuth))), err: ErrWrongUsage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ClientConfig(tls.Certificate{}, trust, "h2")
			cfg.Certificates = nil
			if tt.cert != nil {
				cfg.Certificates = []tls.Certificate{*tt.cert}
			}
			serverID, clientErr := dial(t, addr, cfg)
			h := result(t, results)
			if tt.err == nil && tt.cert != nil {
				if clientErr != nil || h.err != nil {
					t.Fatalf("client error %v, server error %v", clientErr, h.err)
				}
				if h.peer != tt.want {
					t.Errorf("server sees %v, want %v", h.peer, tt.want)
				}
				if want := (Identity{"a", KindNode, "n1"}); serverID != want {
					t.Errorf("client sees %v, want %v", serverID, want)
				}
				return
			}
			if clientErr == nil {
				t.Errorf("client read succeeded, want failure")
			}
			if h.err == nil {
				t.Fatalf("server accepted %v", h.peer)
			}
			if tt.err != nil && !errors.Is(h.err, tt.err) {
				t.Errorf("server error %v, want %v", h.err, tt.err)
			}
			t.Logf("server: %v; client: %v", h.err, clientErr)
		})
	}
}

func TestServerKinds(t *testing.T) {
	f := newTestFed(t, "a")
	a := f.cas["a"]
	addr, results := startServer(t, ServerConfig(mustNode(t, a, "n1"), f.bundle(), []Kind{KindNode}))
	_, clientErr := dial(t, addr, ClientConfig(mustClient(t, a, "alice"), f.bundle()))
	h := result(t, results)
	if !errors.Is(h.err, ErrWrongKind) || clientErr == nil {
		t.Errorf("client identity at a nodes-only server: server error %v, client error %v; want ErrWrongKind", h.err, clientErr)
	}
}

func TestClientRejectsServer(t *testing.T) {
	f := newTestFed(t, "a", "b", "c")
	a, b := f.cas["a"], f.cas["b"]
	trust := f.bundle("a", "b")
	clientCert := mustClient(t, b, "alice")
	for _, tt := range []struct {
		name       string
		cert       tls.Certificate
		serverName string // if empty, dialled by IP address
		err        error
		msg        string
	}{
		{name: "good", cert: mustNode(t, a, "n1")},
		{name: "good by name", cert: mustNode(t, a, "n1"), serverName: "localhost"},
		{name: "wrong name", cert: mustNode(t, a, "n1"), serverName: "n1.example", err: ErrNotTrusted, msg: `not valid for host "n1.example"`},
		{name: "client as server", cert: mustClient(t, a, "eve"), err: ErrWrongKind},
		{name: "other org's identity", cert: forge(t, a, leafTemplate(t, "spiffe://b/node/evil", x509.ExtKeyUsageServerAuth)), err: ErrWrongCA},
		{name: "unknown CA", cert: mustNode(t, mustCA(t, "a"), "n1"), err: ErrWrongCA},
		{name: "unknown org", cert: mustNode(t, f.cas["c"], "n1"), err: ErrUnknownOrg},
		{name: "client-only usage", cert: forge(t, a, leafTemplate(t, "spiffe://a/node/n1", x509.ExtKeyUsageClientAuth)), err: ErrWrongUsage},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, results := startServer(t, ServerConfig(tt.cert, trust, []Kind{KindClient}))
			cfg := ClientConfig(clientCert, trust)
			cfg.ServerName = tt.serverName
			id, err := dial(t, addr, cfg)
			h := result(t, results)
			if tt.err == nil {
				if err != nil || h.err != nil {
					t.Fatalf("client error %v, server error %v", err, h.err)
				}
				if want := (Identity{"a", KindNode, "n1"}); id != want {
					t.Errorf("client sees %v, want %v", id, want)
				}
				return
			}
			if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("client error %v, want %v containing %q", err, tt.err, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "rejected server certificate: ") {
				t.Errorf("client error %q does not say it rejected the server", err)
			}
			if h.err == nil {
				t.Errorf("server completed the handshake")
			}
		})
	}
}

func TestConfigs(t *testing.T) {
	f := newTestFed(t, "a")
	node := mustNode(t, f.cas["a"], "n1")
	s := ServerConfig(node, f.bundle(), []Kind{KindNode}, "h2")
	if s.MinVersion != tls.VersionTLS13 || s.ClientAuth != tls.RequireAnyClientCert || len(s.Certificates) != 1 || s.VerifyConnection == nil {
		t.Errorf("ServerConfig = %+v", s)
	}
	if len(s.NextProtos) != 1 || s.NextProtos[0] != "h2" {
		t.Errorf("ServerConfig NextProtos = %q, want [h2]", s.NextProtos)
	}
	c := ClientConfig(node, f.bundle())
	if c.MinVersion != tls.VersionTLS13 || !c.InsecureSkipVerify || len(c.Certificates) != 1 || c.VerifyConnection == nil {
		t.Errorf("ClientConfig = %+v", c)
	}
	if c.NextProtos != nil {
		t.Errorf("ClientConfig NextProtos = %q, want none", c.NextProtos)
	}
	if _, err := PeerIdentity(tls.ConnectionState{}); !errors.Is(err, ErrNoCertificate) {
		t.Errorf("PeerIdentity of no certificates = %v, want ErrNoCertificate", err)
	}
}

// TestTLS12Refused checks that neither side speaks anything older than TLS 1.3.
func TestTLS12Refused(t *testing.T) {
	f := newTestFed(t, "a")
	a := f.cas["a"]
	addr, results := startServer(t, ServerConfig(mustNode(t, a, "n1"), f.bundle(), []Kind{KindClient}))
	cfg := ClientConfig(mustClient(t, a, "alice"), f.bundle())
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	if _, err := dial(t, addr, cfg); err == nil {
		t.Error("TLS 1.2 client connected")
	}
	if h := result(t, results); h.err == nil {
		t.Error("server accepted TLS 1.2")
	}
}

// TestTrustChangesApplyToResumption checks that a session resumed after the
// trust source has dropped the client's org is refused: verification runs on
// every handshake, not only on full ones.
func TestTrustChangesApplyToResumption(t *testing.T) {
	f := newTestFed(t, "a", "b")
	a, b := f.cas["a"], f.cas["b"]
	trust := NewDynamicBundle(f.bundle())
	serverCfg := ServerConfig(mustNode(t, a, "n1"), trust, []Kind{KindClient})
	var verified atomic.Int32
	verify := serverCfg.VerifyConnection
	serverCfg.VerifyConnection = func(cs tls.ConnectionState) error {
		verified.Add(1)
		return verify(cs)
	}
	addr, results := startServer(t, serverCfg)
	cfg := ClientConfig(mustClient(t, b, "alice"), f.bundle())
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)

	for i, wantResumed := range []bool{false, true} {
		if _, err := dial(t, addr, cfg); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		h := result(t, results)
		if h.err != nil || h.resumed != wantResumed {
			t.Fatalf("connection %d: server error %v, resumed %v; want no error, resumed %v", i, h.err, h.resumed, wantResumed)
		}
	}
	if n := verified.Load(); n != 2 {
		t.Errorf("server verified %d handshakes, want 2", n)
	}

	trust.Store(f.bundle("a"))
	_, err := dial(t, addr, cfg)
	h := result(t, results)
	if err == nil || !errors.Is(h.err, ErrUnknownOrg) {
		t.Errorf("after dropping org b: client error %v, server error %v; want failure and ErrUnknownOrg", err, h.err)
	}

	trust.Store(f.bundle())
	if _, err := dial(t, addr, cfg); err != nil {
		t.Errorf("after restoring org b: %v", err)
	}
	if h := result(t, results); h.err != nil {
		t.Errorf("after restoring org b: server error %v", h.err)
	}
}

func ptr[T any](v T) *T { return &v }
