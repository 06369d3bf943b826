package consensus_test

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/consensus"
)

// cutOff reads from conn until the node closes it. It fails the test if
// nothing happens within waitTimeout (the node holds the connection).
func cutOff(t *testing.T, conn net.Conn, what string) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(waitTimeout))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: the node still holds the connection after %v", what, waitTimeout)
	}
}

// TestRaftHandshakeDeadline: a TCP connection to the Raft port that never
// starts its TLS handshake is closed after the handshake timeout.
func TestRaftHandshakeDeadline(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *consensus.Config) { cfg.HandshakeTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", c.nodes[0].addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cutOff(t, conn, "idle TCP connection to the Raft port")
}

// dialForward opens a TLS connection to tn's Raft port as member;
// [forwardByHand] sends the forward kind byte with its request.
func dialForward(t *testing.T, c *testCluster, tn *testNode, member tls.Certificate) *tls.Conn {
	t.Helper()
	conn, err := tls.Dial("tcp", tn.addr, certs.ClientConfig(member, c.bundle))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestForwardIdleDeadline: a member's forward connection that sends no
// request is closed after the idle timeout, and so is one that stops in the
// middle of a request frame (it announced 1 MiB and sent 10 bytes) after
// the frame timeout: a voting node's certificate cannot pin a connection
// and its buffer indefinitely.
func TestForwardIdleDeadline(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *consensus.Config) {
		cfg.ForwardIdleTimeout = 300 * time.Millisecond
		cfg.ForwardFrameTimeout = 300 * time.Millisecond
	})
	leader := c.leader()
	member := issueNode(t, c.ca, "n9")

	// A connection that answers a request, then idles.
	conn := dialForward(t, c, leader, member)
	if status, body, err := forwardByHand(conn, "before idling"); err != nil || status != 0 {
		t.Fatalf("forwarded request: status %d, %q, %v", status, body, err)
	}
	cutOff(t, conn, "idle forward connection")

	conn = dialForward(t, c, leader, member)
	frame := []byte{'F', 'A', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(frame[2:], 1<<20)
	if _, err := conn.Write(append(frame, "0123456789"...)); err != nil {
		t.Fatal(err)
	}
	cutOff(t, conn, "forward connection stalled mid-frame")
}

// TestForwardConnLimit: past MaxForwardConns, a forward connection is
// closed unanswered; once one closes, a new one is served.
func TestForwardConnLimit(t *testing.T) {
	c := newTestCluster(t, 1, func(cfg *consensus.Config) { cfg.MaxForwardConns = 2 })
	leader := c.leader()
	member := issueNode(t, c.ca, "n9")
	var held []*tls.Conn
	for range 2 {
		conn := dialForward(t, c, leader, member)
		if status, body, err := forwardByHand(conn, "held"); err != nil || status != 0 {
			t.Fatalf("forwarded request: status %d, %q, %v", status, body, err)
		}
		held = append(held, conn)
	}
	conn := dialForward(t, c, leader, member)
	if status, body, err := forwardByHand(conn, "one too many"); err == nil {
		t.Fatalf("third forward connection answered status %d, %q; want it closed", status, body)
	}
	held[0].Close()
	waitFor(t, "a forward connection served after one closed", func() error {
		conn := dialForward(t, c, leader, member)
		defer conn.Close()
		_, _, err := forwardByHand(conn, "after")
		return err
	})
}

// An emfileListener fails its first fails accepts with EMFILE, as a listener
// of a process out of file descriptors does.
type emfileListener struct {
	net.Listener
	fails atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestRaftListenerSurvivesEMFILE: accept failing with "too many open files"
// (issue 10: idle connections to the API port had used every descriptor)
// must not close the Raft listener; once descriptors are back, it accepts.
func TestRaftListenerSurvivesEMFILE(t *testing.T) {
	c := newTestCluster(t, 0)
	ln := &emfileListener{Listener: c.listen()}
	ln.fails.Store(5)
	tn := c.addNode("n1", ln, []consensus.Peer{{ID: "n1", Address: ln.Addr().String()}})
	c.leader()
	member := issueNode(t, c.ca, "n9")
	conn := dialForward(t, c, tn, member)
	if status, body, err := forwardByHand(conn, "after EMFILE"); err != nil || status != 0 {
		t.Fatalf("forwarded request after EMFILE: status %d, %q, %v", status, body, err)
	}
	if n := ln.fails.Load(); n >= 0 {
		t.Fatalf("the listener failed only %d of 5 accepts", 5-n)
	}
}
