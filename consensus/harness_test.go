package consensus_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/raft"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/consensus"
)

// waitTimeout bounds every wait for the cluster to reach a condition. It is
// generous because elections under the race detector on a loaded machine can
// take several rounds; tests never assert on how long anything took.
const waitTimeout = 20 * time.Second

// A listFSM is an append-only list of distinct commands. Apply returns the
// command's 1-based position in the list in decimal: for a new command, the
// list's new length. A command already in the list is not appended again but
// counted as a repeat, so that the harness can safely resend a command whose
// outcome an election left unknown (see [testCluster.apply]).
type listFSM struct {
	mu       sync.Mutex
	cmds     []string
	repeats  int
	restores int
	applied  uint64
}

func (f *listFSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

func (f *listFSM) Apply(index uint64, cmd []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = index
	if i := slices.Index(f.cmds, string(cmd)); i >= 0 {
		f.repeats++
		return []byte(strconv.Itoa(i + 1))
	}
	f.cmds = append(f.cmds, string(cmd))
	return []byte(strconv.Itoa(len(f.cmds)))
}

func (f *listFSM) Snapshot() (func(w io.Writer) error, error) {
	f.mu.Lock()
	cmds := slices.Clone(f.cmds)
	f.mu.Unlock()
	return func(w io.Writer) error { return json.NewEncoder(w).Encode(cmds) }, nil
}

func (f *listFSM) Restore(index uint64, r io.Reader) error {
	var cmds []string
	if err := json.NewDecoder(r).Decode(&cmds); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = cmds
	f.applied = index
	f.restores++
	return nil
}

func (f *listFSM) list() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.cmds)
}

func (f *listFSM) repeatCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repeats
}

func (f *listFSM) restoreCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.restores
}

// A testCluster is a set of nodes of one org on loopback, with real mutual
// TLS, real Raft and stores under t.TempDir. Every running node is closed
// in t.Cleanup.
type testCluster struct {
	t      *testing.T
	dir    string
	ca     *certs.CA
	bundle *certs.Bundle
	log    *slog.Logger
	opts   []func(*consensus.Config)
	nodes  []*testNode
	// resent counts commands apply sent again after an unknown outcome.
	resent int
}

// A testNode is one member of a testCluster. It outlives restarts.
type testNode struct {
	id, addr, dir string
	bootstrap     []consensus.Peer
	cert          tls.Certificate
	fsm           *listFSM
	durable       bool            // restarts keep fsm (see testCluster.start)
	node          *consensus.Node // nil while stopped
}

// newTestCluster starts n nodes, n1…nN, each bootstrapping with all n as
// voters. opts adjust every node's Config before it starts, after the
// harness has filled it in.
func newTestCluster(t *testing.T, n int, opts ...func(*consensus.Config)) *testCluster {
	t.Helper()
	lw := &testLogWriter{t: t}
	// Registered first, so it runs last: nothing logs through t after the
	// test ends, whatever stray goroutine might still try.
	t.Cleanup(lw.stop)
	ca, err := certs.NewCA("org1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{
		t: t,
		// Made before the cleanup that closes the nodes is registered,
		// so that it is removed after they are closed.
		dir:    t.TempDir(),
		ca:     ca,
		bundle: certs.NewBundle(map[string]*x509.Certificate{"org1": ca.Cert}),
		log:    slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelInfo})),
		opts:   opts,
	}
	t.Cleanup(func() {
		for _, tn := range c.nodes {
			if tn.node != nil {
				if err := tn.node.Close(); err != nil {
					t.Errorf("closing %s: %v", tn.id, err)
				}
				tn.node = nil
			}
		}
	})
	var lns []net.Listener
	var peers []consensus.Peer
	for i := range n {
		ln := c.listen()
		lns = append(lns, ln)
		peers = append(peers, consensus.Peer{ID: fmt.Sprintf("n%d", i+1), Address: ln.Addr().String()})
	}
	for i, p := range peers {
		c.addNode(p.ID, lns[i], peers)
	}
	return c
}

// listen returns a new loopback listener on a free port.
func (c *testCluster) listen() net.Listener {
	c.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	return ln
}

// addNode starts a node with a fresh data directory on ln.
func (c *testCluster) addNode(id string, ln net.Listener, bootstrap []consensus.Peer) *testNode {
	c.t.Helper()
	certPEM, keyPEM, err := c.ca.IssueNode(id, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		c.t.Fatal(err)
	}
	tn := &testNode{
		id:        id,
		addr:      ln.Addr().String(),
		dir:       filepath.Join(c.dir, id),
		bootstrap: bootstrap,
		cert:      cert,
	}
	c.nodes = append(c.nodes, tn)
	c.start(tn, ln)
	return tn
}

// start starts tn on ln with a new, empty state machine, as a restarted
// process would have, unless tn.durable: then its state machine keeps what
// it held, as one that stores its state on disk does.
func (c *testCluster) start(tn *testNode, ln net.Listener) {
	c.t.Helper()
	if !tn.durable || tn.fsm == nil {
		tn.fsm = &listFSM{}
	}
	cfg := consensus.Config{
		ID:                 tn.id,
		DataDir:            tn.dir,
		Listener:           ln,
		ServerTLS:          certs.ServerConfig(tn.cert, c.bundle, []certs.Kind{certs.KindNode}),
		ClientTLS:          certs.ClientConfig(tn.cert, c.bundle),
		Bootstrap:          tn.bootstrap,
		FSM:                tn.fsm,
		Log:                c.log.With("node", tn.id),
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		ApplyTimeout:       10 * time.Second,
		DialTimeout:        2 * time.Second,
	}
	for _, o := range c.opts {
		o(&cfg)
	}
	n, err := consensus.Start(cfg)
	if err != nil {
		ln.Close()
		c.t.Fatalf("starting %s: %v", tn.id, err)
	}
	tn.node = n
}

// stop closes tn's node.
func (c *testCluster) stop(tn *testNode) {
	c.t.Helper()
	if err := tn.node.Close(); err != nil {
		c.t.Errorf("closing %s: %v", tn.id, err)
	}
	tn.node = nil
}

// restart starts tn again from its data directory, on a new listener bound
// to its old address.
func (c *testCluster) restart(tn *testNode) {
	c.t.Helper()
	var ln net.Listener
	waitFor(c.t, "listening on "+tn.addr+" again", func() error {
		var err error
		ln, err = net.Listen("tcp", tn.addr)
		return err
	})
	c.start(tn, ln)
}

// running returns the nodes that are not stopped.
func (c *testCluster) running() []*testNode {
	var r []*testNode
	for _, tn := range c.nodes {
		if tn.node != nil {
			r = append(r, tn)
		}
	}
	return r
}

// leader waits until exactly one running node is the leader and every
// running voter names it as such, and returns it.
func (c *testCluster) leader() *testNode {
	c.t.Helper()
	var leader *testNode
	waitFor(c.t, "a single leader every node agrees on", func() error {
		leader = nil
		for _, tn := range c.running() {
			if tn.node.IsLeader() {
				if leader != nil {
					return fmt.Errorf("both %s and %s are leaders", leader.id, tn.id)
				}
				leader = tn
			}
		}
		if leader == nil {
			return fmt.Errorf("no node is the leader")
		}
		for _, tn := range c.running() {
			st, err := tn.node.Status()
			if err != nil {
				return fmt.Errorf("status of %s: %w", tn.id, err)
			}
			if st.LeaderID != leader.id {
				return fmt.Errorf("%s says the leader is %q, %s says it is", tn.id, st.LeaderID, leader.id)
			}
		}
		return nil
	})
	return leader
}

// followers returns the running nodes other than leader.
func (c *testCluster) followers(leader *testNode) []*testNode {
	var fs []*testNode
	for _, tn := range c.running() {
		if tn != leader {
			fs = append(fs, tn)
		}
	}
	return fs
}

// apply applies cmd through tn and returns the result.
//
// An election while a command is being committed makes Apply fail with an
// unknown outcome, as it must. On a loaded machine that happens even with a
// healthy cluster, so apply sends the command again in that case; listFSM
// ignores the repeat, and waitConverged tolerates repeats only then.
func (c *testCluster) apply(tn *testNode, cmd string) string {
	c.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		res, err := tn.node.Apply(ctx, []byte(cmd))
		cancel()
		if err == nil {
			return string(res)
		}
		if !outcomeUnknown(err) || time.Now().After(deadline) {
			c.t.Fatalf("Apply(%q) on %s: %v", cmd, tn.id, err)
		}
		c.resent++
		c.t.Logf("Apply(%q) on %s: %v; sending it again", cmd, tn.id, err)
	}
}

// outcomeUnknown reports whether err from Apply means the command may or
// may not have been committed because of a leadership change.
func outcomeUnknown(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, raft.ErrLeadershipLost.Error()) ||
		strings.Contains(msg, "may or may not have been applied")
}

// waitConverged waits until every running node's state machine holds want.
func (c *testCluster) waitConverged(want []string) {
	c.t.Helper()
	waitFor(c.t, "all state machines to hold the same commands", func() error {
		for _, tn := range c.running() {
			if diff := cmp.Diff(want, tn.fsm.list()); diff != "" {
				return fmt.Errorf("%s's state machine (-want +got):\n%s", tn.id, diff)
			}
		}
		return nil
	})
	for _, tn := range c.running() {
		if n := tn.fsm.repeatCount(); n > 0 && c.resent == 0 {
			c.t.Errorf("%s's state machine was given %d commands it already had, though none was sent twice", tn.id, n)
		}
	}
}

// waitFor polls cond until it returns nil, failing the test with cond's last
// error if that takes longer than waitTimeout.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s: %v", waitTimeout, what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A testLogWriter sends log lines to t.Log until the test ends.
type testLogWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testLogWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
