package consensus_test

import (
	"crypto/tls"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/consensus"
)

// A gatedFSM holds Start inside its first AppliedIndex call until gate is
// closed; entered is closed once Start is there.
type gatedFSM struct {
	*listFSM
	gate    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (f *gatedFSM) AppliedIndex() uint64 {
	f.once.Do(func() {
		close(f.entered)
		<-f.gate
	})
	return f.listFSM.AppliedIndex()
}

// TestForwardBeforeRaftStarts: the Raft port listens before Start has made
// Raft, and peers forward to it at once (the container campaign found a
// leader whose data was wiped: on restart it heard from followers that still
// took it for the leader, and crashed on a nil Raft). A request forwarded in
// that window must wait, then get an answer.
func TestForwardBeforeRaftStarts(t *testing.T) {
	c := newTestCluster(t, 1)
	certPEM, keyPEM, err := c.ca.IssueNode("n2", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	fsm := &gatedFSM{listFSM: &listFSM{}, gate: make(chan struct{}), entered: make(chan struct{})}
	ln := c.listen()
	type started struct {
		n   *consensus.Node
		err error
	}
	startc := make(chan started, 1)
	go func() {
		n, err := consensus.Start(consensus.Config{
			ID:        "n2",
			DataDir:   filepath.Join(c.dir, "n2"),
			Listener:  ln,
			ServerTLS: certs.ServerConfig(cert, c.bundle, []certs.Kind{certs.KindNode}),
			ClientTLS: certs.ClientConfig(cert, c.bundle),
			FSM:       fsm,
			Log:       c.log.With("node", "n2"),
		})
		startc <- started{n, err}
	}()
	select {
	case <-fsm.entered:
	case s := <-startc:
		t.Fatalf("Start returned without reading the state machine: %v", s.err)
	}

	// Start is inside the state machine: the port listens, Raft is not made.
	member := issueNode(t, c.ca, "n9")
	type answer struct {
		status byte
		body   []byte
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		conn, err := tls.Dial("tcp", ln.Addr().String(), certs.ClientConfig(member, c.bundle))
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer conn.Close()
		status, body, err := forwardByHand(conn, "early")
		answered <- answer{status, body, err}
	}()
	select {
	case a := <-answered:
		t.Fatalf("answered before Raft existed: status %d, %q, %v", a.status, a.body, a.err)
	case <-time.After(300 * time.Millisecond):
	}

	close(fsm.gate)
	s := <-startc
	if s.err != nil {
		t.Fatal(s.err)
	}
	t.Cleanup(func() { s.n.Close() })
	a := <-answered
	if a.err != nil || a.status != 2 {
		t.Fatalf("forwarded request answered status %d, %q, %v; want 2 (not the leader)", a.status, a.body, a.err)
	}
}
