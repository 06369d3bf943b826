package node_test

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashfed/hashfed/certs"
)

// raftDial opens a connection to a node's Raft port as cert and announces
// kind ('R' for Raft RPCs, 'F' for forwarding). The attacker skips
// verifying the server: only the node's side of the check is under test.
func raftDial(t *testing.T, addr string, cert tls.Certificate, kind byte) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("TLS to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte{kind}); err != nil {
		t.Fatal(err)
	}
	return c
}

// forwardJoin sends one forwarded join request on c, in the consensus
// package's frame format, and returns the response's status byte and body,
// or err when the node closed the connection instead of answering.
func forwardJoin(c *tls.Conn, id, addr string, voter bool) (byte, string, error) {
	body, _ := json.Marshal(map[string]any{"id": id, "address": addr, "voter": voter})
	frame := append([]byte{'J', 0, 0, 0, 0}, body...)
	binary.BigEndian.PutUint32(frame[1:5], uint32(len(body)))
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(frame); err != nil {
		return 0, "", err
	}
	r := bufio.NewReader(c)
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, "", err
	}
	msg := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	if _, err := io.ReadFull(r, msg); err != nil {
		return 0, "", err
	}
	return hdr[0], string(msg), nil
}

// TestRaftPortRefusesNonVoters: a member org's CA can issue node
// certificates, so a valid certificate is not enough to speak Raft. iwf
// runs no node in the genesis; a node certificate from its own CA gets
// neither a Raft RPC channel (where it could send AppendEntries or votes)
// nor a forwarding channel (where it could ask the leader to add it as a
// voter). A founding node that forwards a join may not make a voter of a
// node the genesis does not list either.
func TestRaftPortRefusesNonVoters(t *testing.T) {
	f := newTestFederation(t)
	leader := f.Leader()
	var raftAddr string
	for _, nf := range f.Files {
		if nf.ID == leader {
			raftAddr = nf.RaftListen
		}
	}
	ca, err := certs.LoadCA(f.Orgs["iwf"].Dir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueNode("iwf-9", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	iwf, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}

	// Raft RPCs: refused after the handshake, before a byte is read.
	c := raftDial(t, raftAddr, iwf, 'R')
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var ne net.Error
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the leader kept a Raft RPC connection from iwf's node open (read: %v)", err)
	}
	// Forwarding: the join request gets no answer.
	if st, msg, err := forwardJoin(raftDial(t, raftAddr, iwf, 'F'), "iwf-9", "127.0.0.1:1", true); err == nil {
		t.Fatalf("the leader answered iwf's forwarded join: status %d %q", st, msg)
	}

	// A founding node (ngo-1, with its real certificate) forwarding a join
	// of a voter the genesis does not list is refused by the leader.
	nf := f.Files[0]
	ngo, err := certs.LoadKeyPair(nf.NodeConfig().TLSCert, nf.NodeConfig().TLSKey)
	if err != nil {
		t.Fatal(err)
	}
	st, msg, err := forwardJoin(raftDial(t, raftAddr, ngo, 'F'), "iwf-9", "127.0.0.1:1", true)
	if err != nil {
		t.Fatalf("forwarded join from %s: %v", nf.ID, err)
	}
	if st != 1 || !strings.Contains(msg, `node "iwf-9" may join only as a non-voter`) {
		t.Fatalf("forwarded voter join of iwf-9: status %d %q, want an error saying it may join only as a non-voter", st, msg)
	}
	// Nor may it change a founding voter's suffrage.
	st, msg, err = forwardJoin(raftDial(t, raftAddr, ngo, 'F'), f.Files[1].ID, f.Files[1].RaftAddress, false)
	if err != nil || st != 1 || !strings.Contains(msg, "voter=true, not voter=false") {
		t.Fatalf("forwarded demotion of %s: status %d %q %v, want a refusal naming its genesis suffrage", f.Files[1].ID, st, msg, err)
	}

	sts, err := dial(t, f, "ngo", leader).Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sts.GetMembers() {
		if m.GetNodeId() == "iwf-9" || !m.GetVoter() {
			t.Fatalf("raft configuration changed: member %s voter=%t", m.GetNodeId(), m.GetVoter())
		}
	}
}
