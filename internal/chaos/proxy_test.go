package chaos

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// echoServer accepts connections on loopback and echoes what it reads; it
// counts the connections it accepted.
func echoServer(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	done := make(chan struct{})
	conns := make(chan net.Conn, 100)
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns <- c
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String(), accepted
}

func newTestProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within timeout.
func roundTrip(c net.Conn, msg string, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return errors.New("echo differs: " + string(got))
	}
	return nil
}

// silent reports whether nothing arrives on c for d.
func silent(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := c.Read(b[:])
	if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v; want nothing until the deadline", n, err)
	}
}

func TestProxyPass(t *testing.T) {
	target, _ := echoServer(t)
	p := newTestProxy(t, target)
	if p.Target() != target {
		t.Errorf("Target() = %q, want %q", p.Target(), target)
	}
	c := dial(t, p.Addr())
	if err := roundTrip(c, "hello", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	// A large transfer arrives whole and in order.
	big := make([]byte, 1<<20)
	rand.Read(big)
	go c.Write(big)
	got := make([]byte, len(big))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, big) {
		t.Fatal("1 MiB through the proxy came back different")
	}
}

func TestProxyBlackhole(t *testing.T) {
	target, accepted := echoServer(t)
	p := newTestProxy(t, target)
	old := dial(t, p.Addr())
	if err := roundTrip(old, "before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	if m, _ := p.Mode(); m != Blackhole {
		t.Fatalf("Mode() = %s, want blackhole", m)
	}
	// An open connection carries nothing, either way.
	if _, err := old.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	silent(t, old, 200*time.Millisecond)
	// A new connection is accepted but reaches nothing.
	fresh := dial(t, p.Addr())
	if _, err := fresh.Write([]byte("waiting")); err != nil {
		t.Fatal(err)
	}
	silent(t, fresh, 200*time.Millisecond)
	if n := accepted.Load(); n != 1 {
		t.Errorf("target accepted %d connections during the blackhole, want only the first", n)
	}
	// Healing delivers what was held, intact.
	p.Pass()
	for _, c := range []struct {
		conn net.Conn
		msg  string
	}{{old, "held"}, {fresh, "waiting"}} {
		got := make([]byte, len(c.msg))
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c.conn, got); err != nil || string(got) != c.msg {
			t.Fatalf("after healing read %q, %v; want %q", got, err, c.msg)
		}
	}
	if err := roundTrip(old, "after", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestProxyReset(t *testing.T) {
	target, _ := echoServer(t)
	p := newTestProxy(t, target)
	old := dial(t, p.Addr())
	if err := roundTrip(old, "before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Reset()
	// The open connection is closed.
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := old.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read on a reset connection: %v, want it closed", err)
	}
	// A new one is refused.
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err == nil {
		defer c.Close()
		if err := roundTrip(c, "x", 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("round trip through a resetting proxy: %v, want the connection closed", err)
		}
	}
	p.Pass()
	if err := roundTrip(dial(t, p.Addr()), "again", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestProxyDelay(t *testing.T) {
	target, _ := echoServer(t)
	p := newTestProxy(t, target)
	c := dial(t, p.Addr())
	const d = 100 * time.Millisecond
	p.Delay(d)
	if m, got := p.Mode(); m != Delay || got != d {
		t.Fatalf("Mode() = %s %s, want delay %s", m, got, d)
	}
	// The request and the echo are each delayed: a round trip takes at
	// least twice the latency (an upper bound would flake on a busy
	// machine, so there is none).
	start := time.Now()
	if err := roundTrip(c, "slow", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if rtt := time.Since(start); rtt < 2*d {
		t.Errorf("round trip took %s, want at least %s", rtt, 2*d)
	}
	// Order is kept across many chunks.
	var want bytes.Buffer
	for i := range 50 {
		msg := []byte{byte('a' + i%26)}
		want.Write(msg)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, want.Len())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("read %q, want %q", got, want.Bytes())
	}
	p.Pass()
	if err := roundTrip(c, "fast again", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestProxyClose(t *testing.T) {
	target, _ := echoServer(t)
	p, err := NewProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if err := roundTrip(c, "x", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Blackhole()
	held := dial(t, p.Addr())
	done := make(chan error, 1)
	go func() { done <- p.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	for _, conn := range []net.Conn{c, held} {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after Close: %v, want the connection closed", err)
		}
	}
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the proxy still accepts after Close")
	}
}
