package consensus_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/consensus"
)

func TestApplyFromEveryNode(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()

	var want []string
	for i, tn := range append([]*testNode{leader}, c.followers(leader)...) {
		cmd := "from-" + tn.id
		want = append(want, cmd)
		if got, wantRes := c.apply(tn, cmd), strconv.Itoa(i+1); got != wantRes {
			t.Errorf("Apply(%q) on %s = %q, want %q", cmd, tn.id, got, wantRes)
		}
	}
	c.waitConverged(want)
}

func TestPrepare(t *testing.T) {
	var (
		mu          sync.Mutex
		nodes       = map[string]*consensus.Node{}
		prepared    int
		notOnLeader []string
	)
	c := newTestCluster(t, 3, func(cfg *consensus.Config) {
		id := cfg.ID
		cfg.Prepare = func(req []byte) (cmd, reject []byte) {
			mu.Lock()
			prepared++
			if n := nodes[id]; n == nil || !n.IsLeader() {
				notOnLeader = append(notOnLeader, id)
			}
			mu.Unlock()
			if bytes.HasPrefix(req, []byte("bad")) {
				return nil, append([]byte("rejected "), req...)
			}
			return append([]byte("ok:"), req...), nil
		}
	})
	mu.Lock()
	for _, tn := range c.nodes {
		nodes[tn.id] = tn.node
	}
	mu.Unlock()
	leader := c.leader()

	var want []string
	for _, tn := range append([]*testNode{leader}, c.followers(leader)...) {
		bad, good := "bad-from-"+tn.id, "good-from-"+tn.id
		want = append(want, "ok:"+good)
		for _, tc := range []struct{ req, want string }{
			{bad, "rejected " + bad},
			{good, strconv.Itoa(len(want))},
		} {
			if got := c.apply(tn, tc.req); got != tc.want {
				t.Errorf("Apply(%q) on %s = %q, want %q", tc.req, tn.id, got, tc.want)
			}
		}
	}
	c.waitConverged(want)

	mu.Lock()
	defer mu.Unlock()
	if prepared < 6 {
		t.Errorf("Prepare ran %d times for 6 requests", prepared)
	}
	if len(notOnLeader) > 0 {
		t.Errorf("Prepare ran on %v while not the leader, want only on the leader", notOnLeader)
	}
}

func TestLeaderFailover(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.leader()
	c.apply(old, "a")
	c.apply(c.followers(old)[0], "b")

	c.stop(old)
	leader := c.leader() // among the two left
	follower := c.followers(leader)[0]
	if got, want := c.apply(follower, "c"), "3"; got != want {
		t.Errorf("Apply(%q) on follower %s after failover = %q, want %q", "c", follower.id, got, want)
	}

	c.restart(old)
	// The restarted node starts with an empty state machine; Raft must
	// rebuild it from its own log and the leader's.
	if got, want := c.apply(old, "d"), "4"; got != want {
		t.Errorf("Apply(%q) on restarted %s = %q, want %q", "d", old.id, got, want)
	}
	c.waitConverged([]string{"a", "b", "c", "d"})
}

func TestSnapshotRestore(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *consensus.Config) {
		cfg.SnapshotInterval = 100 * time.Millisecond
		cfg.SnapshotThreshold = 5
		cfg.TrailingLogs = 2
	})
	leader := c.leader()
	follower := c.followers(leader)[0]

	var want []string
	applyN := func(n int) {
		for range n {
			cmd := fmt.Sprintf("cmd-%d", len(want))
			want = append(want, cmd)
			c.apply(leader, cmd)
		}
	}
	applyN(10)
	c.waitConverged(want)
	waitFor(t, "the follower to take a snapshot", func() error {
		if i := follower.node.LastSnapshotIndex(); i == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	})

	// While the follower is down the leader compacts its log past the
	// follower's last entry, so the follower can only catch up from a
	// snapshot.
	c.stop(follower)
	applyN(20)
	st, err := leader.node.Status()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the running nodes to snapshot the commands applied while the follower was down", func() error {
		for _, tn := range c.running() {
			if got, want := tn.node.LastSnapshotIndex(), st.AppliedIndex-5; got < want {
				return fmt.Errorf("%s's last snapshot index is %d, want at least %d", tn.id, got, want)
			}
		}
		return nil
	})

	c.restart(follower)
	c.waitConverged(want)
	if follower.fsm.restoreCount() == 0 {
		t.Errorf("restarted %s's state machine converged without Restore", follower.id)
	}
}

// TestDurableStateMachineRestart restarts a node whose state machine kept
// its state (as hashfed's on-disk state does): it must neither restore a
// snapshot nor re-apply commands it holds, and must still catch up.
func TestDurableStateMachineRestart(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *consensus.Config) {
		cfg.SnapshotInterval = 100 * time.Millisecond
		cfg.SnapshotThreshold = 5
		cfg.TrailingLogs = 100
	})
	leader := c.leader()
	follower := c.followers(leader)[0]
	follower.durable = true
	var want []string
	applyN := func(n int) {
		for range n {
			cmd := fmt.Sprintf("cmd-%d", len(want))
			want = append(want, cmd)
			c.apply(leader, cmd)
		}
	}
	applyN(10)
	c.waitConverged(want)
	waitFor(t, "the follower to take a snapshot", func() error {
		if i := follower.node.LastSnapshotIndex(); i == 0 {
			return errors.New("no snapshot yet")
		}
		return nil
	})
	applyN(5) // beyond the snapshot, still in the log
	c.waitConverged(want)
	c.stop(follower)
	applyN(5) // missed while down
	c.restart(follower)
	c.waitConverged(want)
	if n := follower.fsm.restoreCount(); n != 0 {
		t.Errorf("a durable state machine was restored from a snapshot %d time(s) on restart", n)
	}
	if n := follower.fsm.repeatCount(); n != 0 {
		t.Errorf("%d command(s) the durable state machine held were applied again on restart", n)
	}
}

// TestPrepareAfterLeaderChange hands leadership over between commands whose
// Prepare requires every earlier command applied (as hashfed's sequence
// numbers do). A new leader must not judge a request before it has applied
// what the old leader committed: each command must be accepted first time.
func TestPrepareAfterLeaderChange(t *testing.T) {
	var c *testCluster
	c = newTestCluster(t, 3, func(cfg *consensus.Config) {
		fsm := cfg.FSM.(*listFSM)
		cfg.Prepare = func(req []byte) ([]byte, []byte) {
			var k int
			fmt.Sscanf(string(req), "cmd-%d", &k)
			if n := len(fsm.list()); n != k {
				return nil, []byte(fmt.Sprintf("rejected: %s prepared with %d commands applied", req, n))
			}
			return req, nil
		}
	})
	for k := range 12 {
		leader := c.leader()
		res := c.apply(leader, fmt.Sprintf("cmd-%d", k))
		if strings.HasPrefix(res, "rejected") {
			t.Fatalf("command %d: %s", k, res)
		}
		if err := leader.node.TransferLeadership(); err != nil {
			t.Logf("transfer after command %d: %v", k, err)
		}
	}
}

func TestJoinNonVoterThroughFollower(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	c.apply(leader, "before-join")

	n4 := c.addNode("n4", c.listen(), nil)
	follower := c.followers(leader)[0]
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for {
		err := follower.node.Join(ctx, n4.id, n4.addr, false)
		if err == nil {
			break
		}
		// Adding a server it already has is a no-op for Raft.
		if !outcomeUnknown(err) || ctx.Err() != nil {
			t.Fatalf("Join on follower %s: %v", follower.id, err)
		}
		t.Logf("Join on follower %s: %v; trying again", follower.id, err)
	}

	var want []consensus.Member
	for _, tn := range c.nodes {
		want = append(want, consensus.Member{ID: tn.id, Address: tn.addr, Voter: tn != n4})
	}
	waitFor(t, "every node to list n4 as a non-voter", func() error {
		for _, tn := range c.nodes {
			st, err := tn.node.Status()
			if err != nil {
				return fmt.Errorf("status of %s: %w", tn.id, err)
			}
			got := sortedMembers(st.Members)
			if diff := cmp.Diff(want, got); diff != "" {
				return fmt.Errorf("members seen by %s (-want +got):\n%s", tn.id, diff)
			}
		}
		return nil
	})

	// The non-voter forwards writes too.
	if got, want := c.apply(n4, "from-n4"), "2"; got != want {
		t.Errorf("Apply on the new non-voter = %q, want %q", got, want)
	}
	c.waitConverged([]string{"before-join", "from-n4"})
}

func TestListenerRequiresNodeCertificate(t *testing.T) {
	c := newTestCluster(t, 3)
	c.leader()

	other, err := certs.NewCA("org2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	outsider := issueNode(t, other, "n1")
	clientPEM, clientKey, err := c.ca.IssueClient("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	client, err := tls.X509KeyPair(clientPEM, clientKey)
	if err != nil {
		t.Fatal(err)
	}
	dialTLS := func(cert *tls.Certificate) func(addr string) (net.Conn, error) {
		return func(addr string) (net.Conn, error) {
			// The dialer accepts any server; only the node's checks count.
			conf := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true}
			if cert != nil {
				conf.Certificates = []tls.Certificate{*cert}
			}
			return tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, conf)
		}
	}

	// The control: a node of the member org sending the same kind of frame
	// as the refused dialers below gets it applied.
	member := issueNode(t, c.ca, "n9")
	waitFor(t, "a node to apply a request forwarded by hand", func() error {
		for _, tn := range c.running() {
			conn, err := tls.Dial("tcp", tn.addr, certs.ClientConfig(member, c.bundle))
			if err != nil {
				return err
			}
			status, body, err := forwardByHand(conn, "from member node")
			conn.Close()
			switch {
			case status == 2: // not the leader
				continue
			case err != nil:
				c.resent++ // the next attempt may repeat this one
				return err
			case status != 0 || string(body) != "1":
				c.resent++
				return fmt.Errorf("%s answered status %d, %q; want 0, %q", tn.id, status, body, "1")
			}
			return nil
		}
		return errors.New("no node answered as the leader")
	})

	tests := []struct {
		name string
		dial func(addr string) (net.Conn, error)
	}{
		{"node of an untrusted org", dialTLS(&outsider)},
		{"client of the member org", dialTLS(&client)},
		{"no client certificate", dialTLS(nil)},
		{"plain TCP", func(addr string) (net.Conn, error) {
			return net.DialTimeout("tcp", addr, waitTimeout)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Non-leaders would answer too (status 2), so try every node.
			for _, tn := range c.running() {
				conn, err := tt.dial(tn.addr)
				if err != nil {
					t.Logf("%s refused the handshake: %v", tn.id, err)
					continue
				}
				status, body, err := forwardByHand(conn, "from "+tt.name)
				conn.Close()
				t.Logf("%s: %v", tn.id, err)
				if err == nil {
					t.Errorf("%s answered status %d, %q; want no answer", tn.id, status, body)
					continue
				}
				if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
					t.Errorf("%s kept the connection open without answering until the deadline", tn.id)
				}
			}
		})
	}

	// Anything the refused dialers had applied would come before this.
	c.apply(c.nodes[0], "marker")
	c.waitConverged([]string{"from member node", "marker"})
}

// forwardByHand writes a connection of kind 'F' and an apply request for req
// to conn, and reads the response frame.
func forwardByHand(conn net.Conn, req string) (status byte, body []byte, err error) {
	conn.SetDeadline(time.Now().Add(waitTimeout))
	frame := []byte{'F', 'A', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(frame[2:], uint32(len(req)))
	frame = append(frame, req...)
	if _, err := conn.Write(frame); err != nil {
		return 0, nil, err
	}
	var hdr [5]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return 0, nil, err
	}
	body = make([]byte, binary.BigEndian.Uint32(hdr[1:]))
	if _, err := io.ReadFull(conn, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

func TestStatus(t *testing.T) {
	c := newTestCluster(t, 3)
	c.leader()

	var wantMembers []consensus.Member
	for _, tn := range c.nodes {
		wantMembers = append(wantMembers, consensus.Member{ID: tn.id, Address: tn.addr, Voter: true})
	}
	// Elections can move the leader between the calls to Status, so wait
	// for one consistent view.
	waitFor(t, "a consistent status on every node", func() error {
		var leader *testNode
		for _, tn := range c.nodes {
			if tn.node.IsLeader() {
				leader = tn
			}
		}
		if leader == nil {
			return errors.New("no leader")
		}
		var term uint64
		leaders := 0
		for _, tn := range c.nodes {
			st, err := tn.node.Status()
			if err != nil {
				return fmt.Errorf("status of %s: %w", tn.id, err)
			}
			if st.ID != tn.id {
				return fmt.Errorf("%s reports ID %q", tn.id, st.ID)
			}
			switch st.State {
			case "Leader":
				leaders++
				if tn != leader {
					return fmt.Errorf("%s reports state Leader, but %s is the leader", tn.id, leader.id)
				}
			case "Follower":
			default:
				return fmt.Errorf("%s reports state %q", tn.id, st.State)
			}
			if st.LeaderID != leader.id || st.LeaderAddress != leader.addr {
				return fmt.Errorf("%s reports leader %q at %q, want %q at %q", tn.id, st.LeaderID, st.LeaderAddress, leader.id, leader.addr)
			}
			if diff := cmp.Diff(wantMembers, sortedMembers(st.Members)); diff != "" {
				return fmt.Errorf("members seen by %s (-want +got):\n%s", tn.id, diff)
			}
			if st.Term == 0 || term != 0 && st.Term != term {
				return fmt.Errorf("%s reports term %d, another node %d", tn.id, st.Term, term)
			}
			term = st.Term
		}
		if leaders != 1 {
			return fmt.Errorf("%d nodes report state Leader", leaders)
		}
		return nil
	})
}

func TestApplyWithoutLeader(t *testing.T) {
	c := newTestCluster(t, 0, func(cfg *consensus.Config) {
		cfg.ApplyTimeout = 300 * time.Millisecond
	})
	// The second voter never starts, so the first can never win an election.
	ghost := c.listen()
	ghostAddr := ghost.Addr().String()
	ghost.Close()
	ln := c.listen()
	tn := c.addNode("n1", ln, []consensus.Peer{
		{ID: "n1", Address: ln.Addr().String()},
		{ID: "n2", Address: ghostAddr},
	})

	tests := []struct {
		name    string
		ctx     func() (context.Context, context.CancelFunc)
		wantErr error
	}{
		{"cancelled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 300*time.Millisecond)
		}, context.DeadlineExceeded},
		{"ApplyTimeout", func() (context.Context, context.CancelFunc) {
			return context.Background(), func() {}
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			for _, op := range []struct {
				name string
				call func() error
			}{
				{"Apply", func() error {
					_, err := tn.node.Apply(ctx, []byte("x"))
					return err
				}},
				{"Join", func() error { return tn.node.Join(ctx, "n3", "127.0.0.1:1", false) }},
				{"Sync", func() error { return tn.node.Sync(ctx) }},
			} {
				errc := make(chan error, 1)
				go func() { errc <- op.call() }()
				var err error
				select {
				case err = <-errc:
				case <-time.After(waitTimeout):
					t.Fatalf("%s did not return within %v", op.name, waitTimeout)
				}
				if !errors.Is(err, tt.wantErr) || !errors.Is(err, consensus.ErrNoLeader) {
					t.Errorf("%s error = %v, want one wrapping %v and consensus.ErrNoLeader", op.name, err, tt.wantErr)
				}
			}
		})
	}
	if got := tn.fsm.list(); len(got) != 0 {
		t.Errorf("state machine holds %q, want nothing", got)
	}
}

func TestSyncReadsOwnWrites(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()

	var want []string
	for i := range 20 {
		cmd := fmt.Sprintf("cmd-%d", i)
		want = append(want, cmd)
		c.apply(leader, cmd)
	}
	// No waiting: once Sync returns, every write acknowledged before it
	// must be visible in the local state machine.
	for _, tn := range append(c.followers(leader), leader) {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		err := tn.node.Sync(ctx)
		// Sync has no effect, so an election during it just means trying again.
		for err != nil && outcomeUnknown(err) && ctx.Err() == nil {
			t.Logf("Sync on %s: %v; trying again", tn.id, err)
			err = tn.node.Sync(ctx)
		}
		cancel()
		if err != nil {
			t.Fatalf("Sync on %s: %v", tn.id, err)
		}
		if diff := cmp.Diff(want, tn.fsm.list()); diff != "" {
			t.Errorf("%s's state machine right after Sync (-want +got):\n%s", tn.id, diff)
		}
	}
}

// TestCloseReleasesConnections checks that once every node of a cluster is
// closed, none of their goroutines is left: nothing still holds a
// connection to a closed node.
func TestCloseReleasesConnections(t *testing.T) {
	before := runtime.NumGoroutine()
	c := newTestCluster(t, 3)
	leader := c.leader()
	c.apply(c.followers(leader)[0], "a")
	for _, tn := range c.nodes {
		c.stop(tn)
	}
	waitFor(t, "the closed nodes' goroutines to end", func() error {
		n := runtime.NumGoroutine()
		if n <= before {
			return nil
		}
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		return fmt.Errorf("%d goroutines, %d before the cluster started; among them %d in raft's (*NetworkTransport).handleConn and %d in consensus's serveForward",
			n, before, strings.Count(stacks, "(*NetworkTransport).handleConn("), strings.Count(stacks, ".serveForward("))
	})
}

// TestForwardAfterLeaderRestart checks that a follower which forwarded to a
// node before it was closed can forward to it again once it has restarted on
// the same address and become the leader.
func TestForwardAfterLeaderRestart(t *testing.T) {
	c := newTestCluster(t, 3)
	old := c.leader()
	follower, other := c.followers(old)[0], c.followers(old)[1]
	c.apply(follower, "a") // leaves an idle forward connection to old

	c.stop(old)
	c.leader()
	c.restart(old)
	waitFor(t, "the restarted node to become the leader again", func() error {
		if old.node.IsLeader() {
			return nil
		}
		for _, tn := range c.running() {
			if tn.node.IsLeader() {
				return tn.node.TransferLeadershipTo(old.id, old.addr)
			}
		}
		return errors.New("no leader")
	})

	// A node that never forwarded to old's first incarnation reaches it.
	if got, want := c.apply(other, "b"), "2"; got != want {
		t.Errorf("Apply on %s = %q, want %q", other.id, got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := follower.node.Apply(ctx, []byte("c"))
	if err != nil {
		t.Fatalf("Apply on %s after %s restarted and regained leadership: %v", follower.id, old.id, err)
	}
	if got, want := string(res), "3"; got != want {
		t.Errorf("Apply on %s = %q, want %q", follower.id, got, want)
	}
}

func issueNode(t *testing.T, ca *certs.CA, name string) tls.Certificate {
	t.Helper()
	certPEM, keyPEM, err := ca.IssueNode(name, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func sortedMembers(ms []consensus.Member) []consensus.Member {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b consensus.Member) int { return strings.Compare(a.ID, b.ID) })
	return ms
}
