package chaos_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/chaos"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// The campaign's shape. Nothing asserts on time: the durations only shape
// the faults, and every wait for the federation is generous, so a loaded
// machine makes the campaign slower, not flaky.
const (
	publishers = 4 // one per set, all of org ngo
	readers    = 2 // org auditor, which reads statements but no values

	// attemptTimeout bounds one publish or read; past it the outcome of a
	// publish is Unknown.
	attemptTimeout = 3 * time.Second
	publishPause   = 20 * time.Millisecond
	readPause      = 50 * time.Millisecond

	faultFor  = 1500 * time.Millisecond
	restFor   = 750 * time.Millisecond
	delayedBy = 50 * time.Millisecond

	// settleTimeout bounds each wait after the faults: for every
	// outstanding contribution to be acknowledged, for the nodes to agree,
	// for a cosigned checkpoint.
	settleTimeout = 60 * time.Second
	// checkTimeout bounds the linearizability check.
	checkTimeout = 60 * time.Second
)

// nodeIDs are the campaign federation's voters, one per org.
var nodeIDs = []string{"ngo-1", "techco-1", "auditor-1"}

func setName(i int) string { return fmt.Sprintf("ngo/chaos-%d", i) }

// A campaign is a federation whose nodes' inbound Raft traffic passes fault
// proxies, a recorder, and the clients of the workload.
type campaign struct {
	t       *testing.T
	f       *localfed.Federation
	proxies map[string]*chaos.Proxy // by node ID
	rec     *chaos.Recorder
	signer  *federation.Signer
	logs    *lockedBuffer
	// pubClients[i][j] is publisher i's connection to node j; readClients
	// the same for readers, one more for the final reads.
	pubClients  [][]*client.Client
	readClients [][]*client.Client
	// events is the fault timeline, for the summary.
	mu     sync.Mutex
	events []string
	start  time.Time
}

func newCampaign(t *testing.T) *campaign {
	c := &campaign{t: t, proxies: map[string]*chaos.Proxy{}, rec: chaos.NewRecorder(), logs: &lockedBuffer{}, start: time.Now()}
	var sets []federation.Set
	for i := range publishers {
		sets = append(sets, federation.Set{Name: setName(i), Types: []federation.SignalType{federation.MD5}, Readers: []string{"techco"}})
	}
	// Proxies close after the nodes (cleanups run last first).
	t.Cleanup(func() {
		for _, p := range c.proxies {
			p.Close()
		}
	})
	f, err := localfed.Create(localfed.Options{
		Dir:        t.TempDir(),
		Federation: "chaos.hashfed.local",
		Orgs: []localfed.OrgSpec{
			{Name: "ngo", Roles: []federation.Role{federation.RolePublisher, federation.RoleOperator}, Nodes: 1},
			{Name: "techco", Roles: []federation.Role{federation.RoleSubscriber, federation.RoleOperator}, Nodes: 1},
			{Name: "auditor", Roles: []federation.Role{federation.RoleAuditor, federation.RoleOperator}, Nodes: 1},
		},
		Sets:               sets,
		CheckpointInterval: 100 * time.Millisecond,
		// Fast elections, and snapshots small and often, so that a node
		// that missed a fault may catch up from a snapshot.
		Raft: node.RaftConfig{
			HeartbeatTimeout:   400 * time.Millisecond,
			ElectionTimeout:    400 * time.Millisecond,
			LeaderLeaseTimeout: 200 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
			SnapshotInterval:   500 * time.Millisecond,
			SnapshotThreshold:  64,
			TrailingLogs:       32,
		},
		Log: slog.New(slog.NewTextHandler(c.logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
		RaftProxy: func(id, target string) (string, error) {
			p, err := chaos.NewProxy(target)
			if err != nil {
				return "", err
			}
			c.proxies[id] = p
			return p.Addr(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.f = f
	t.Cleanup(func() { f.Close() })
	for _, nf := range f.Files {
		if p := c.proxies[nf.ID]; p == nil || nf.RaftAddress != p.Addr() || p.Target() != nf.RaftListen {
			t.Fatalf("node %s's raft traffic does not pass a proxy", nf.ID)
		}
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if c.signer, err = f.Signer("ngo"); err != nil {
		t.Fatal(err)
	}
	dialAll := func(org string) []*client.Client {
		var cs []*client.Client
		for _, id := range nodeIDs {
			cl, err := f.Client(org, id)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cl.Close() })
			cs = append(cs, cl)
		}
		return cs
	}
	for range publishers {
		c.pubClients = append(c.pubClients, dialAll("ngo"))
	}
	for range readers + 1 {
		c.readClients = append(c.readClients, dialAll("auditor"))
	}
	return c
}

func (c *campaign) logf(format string, args ...any) {
	msg := fmt.Sprintf("%6.2fs ", time.Since(c.start).Seconds()) + fmt.Sprintf(format, args...)
	c.mu.Lock()
	c.events = append(c.events, msg)
	c.mu.Unlock()
	c.t.Log(msg)
}

// publisher publishes contributions 1, 2, ... to set i until stop is
// closed, each through the nodes in turn. After an Unknown outcome it
// retries the same contribution (so the same sequence number) until it is
// acknowledged, whatever stop says; it gives up only at ctx's end.
func (c *campaign) publisher(ctx context.Context, i int, stop <-chan struct{}) {
	set := setName(i)
	attempt := i
	for seq := uint64(1); ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		con := chaos.Contribution{Set: set, Seq: seq}
		sum := md5.Sum([]byte("chaos " + con.String()))
		ch := federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{{Type: federation.MD5.Proto(), Value: hex.EncodeToString(sum[:])}}}
		for {
			cl := c.pubClients[i][attempt%len(nodeIDs)]
			attempt++
			done := c.rec.Publish(i, con)
			actx, cancel := context.WithTimeout(ctx, attemptTimeout)
			res, err := cl.PublishChange(actx, c.signer, set, seq, ch, "2026-01-01T00:00:00Z")
			cancel()
			out := chaos.OutcomeOf(err)
			var index uint64
			if out == chaos.OK {
				index = uint64(res.Index)
			}
			done(out, index)
			if out == chaos.OK || out == chaos.AlreadyPresent {
				break
			}
			if out == chaos.Failed {
				// The campaign's publishes are all valid and in order:
				// a refusal means the node lost track of an acknowledged
				// one.
				c.t.Errorf("publish of %s through %s refused: %v", con, cl.Target(), err)
				return
			}
			if ctx.Err() != nil {
				c.t.Errorf("%s still not acknowledged when the campaign ended; last attempt: %v", con, err)
				return
			}
			time.Sleep(publishPause)
		}
		time.Sleep(publishPause)
	}
}

// reader reads the whole ledger through the nodes in turn until stop is
// closed.
func (c *campaign) reader(ctx context.Context, j int, stop <-chan struct{}) {
	for k := j; ; k++ {
		select {
		case <-stop:
			return
		default:
		}
		c.read(ctx, publishers+j, c.readClients[j][k%len(nodeIDs)])
		time.Sleep(readPause)
	}
}

// read records one read of the ledger through cl as client id.
func (c *campaign) read(ctx context.Context, id int, cl *client.Client) ([]chaos.Contribution, error) {
	done := c.rec.Read(id)
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	entries, err := readLedger(ctx, cl)
	done(entries, err)
	return entries, err
}

// readLedger reads entries 1..n of the ledger through a catch-up
// subscription, which sees every write acknowledged before the call,
// whichever node serves it.
func readLedger(ctx context.Context, cl *client.Client) ([]chaos.Contribution, error) {
	stream, err := cl.Subscriber.Subscribe(ctx, &hashfedv1.SubscribeRequest{Cursor: 1, StopAtEnd: true})
	if err != nil {
		return nil, err
	}
	var out []chaos.Contribution
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if want := int64(len(out)) + 1; msg.GetIndex() != want {
			return nil, fmt.Errorf("entry %d arrived where %d was due", msg.GetIndex(), want)
		}
		con, err := contributionOf(msg.GetEntry())
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", msg.GetIndex(), err)
		}
		out = append(out, con)
	}
}

// contributionOf names the contribution a ledger leaf holds (the zero
// Contribution for another kind of entry).
func contributionOf(leaf []byte) (chaos.Contribution, error) {
	_, st, err := federation.DecodeEntry(leaf)
	if err != nil || st == nil {
		return chaos.Contribution{}, err
	}
	return chaos.Contribution{Set: st.Set, Seq: st.Sequence}, nil
}

// localLedger reads entries 1..size-1 from node id's own state.
func (c *campaign) localLedger(id string, size int64) ([]chaos.Contribution, error) {
	n := c.f.Nodes[id]
	if n == nil {
		return nil, fmt.Errorf("node %s is not running", id)
	}
	leaves, err := n.State().Entries(1, size)
	if err != nil {
		return nil, err
	}
	var out []chaos.Contribution
	for i, leaf := range leaves {
		con, err := contributionOf(leaf)
		if err != nil {
			return nil, fmt.Errorf("node %s entry %d: %w", id, i+1, err)
		}
		out = append(out, con)
	}
	return out, nil
}

// leader waits a while for a leader and returns it, or any node.
func (c *campaign) leader() string {
	for range 100 {
		if id := c.f.Leader(); id != "" {
			return id
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nodeIDs[0]
}

func (c *campaign) others(id string) []string {
	var out []string
	for _, o := range nodeIDs {
		if o != id {
			out = append(out, o)
		}
	}
	return out
}

// stopNode stops a node as a crash would, as far as its peers can tell.
func (c *campaign) stopNode(id string) {
	start := time.Now()
	if err := c.f.StopNode(id); err != nil {
		c.t.Errorf("stopping %s: %v", id, err)
	}
	c.logf("stopped %s in %s", id, time.Since(start).Round(time.Millisecond))
}

// startNode restarts a stopped node, retrying for a while in case another
// socket took one of its ports meanwhile.
func (c *campaign) startNode(id string) {
	var err error
	for range 20 {
		if err = c.f.StartNode(id); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.t.Errorf("restarting %s: %v", id, err)
}

// A fault is one step of the nemesis: inject returns what it did and the
// function that heals it.
type fault func(c *campaign) (desc string, heal func())

// faults is the nemesis schedule, run once in order.
var faults = []fault{
	func(c *campaign) (string, func()) {
		l := c.leader()
		c.proxies[l].Blackhole()
		return "blackhole inbound raft of leader " + l, func() { c.proxies[l].Pass() }
	},
	func(c *campaign) (string, func()) {
		fo := c.others(c.leader())[0]
		c.proxies[fo].Blackhole()
		return "blackhole inbound raft of follower " + fo, func() { c.proxies[fo].Pass() }
	},
	func(c *campaign) (string, func()) {
		for _, p := range c.proxies {
			p.Reset()
		}
		return "reset every raft connection and refuse new ones", func() {
			for _, p := range c.proxies {
				p.Pass()
			}
		}
	},
	func(c *campaign) (string, func()) {
		l := c.leader()
		c.stopNode(l)
		return "crash leader " + l, func() { c.startNode(l) }
	},
	func(c *campaign) (string, func()) {
		for _, p := range c.proxies {
			p.Delay(delayedBy)
		}
		return fmt.Sprintf("delay all raft traffic by %s", delayedBy), func() {
			for _, p := range c.proxies {
				p.Pass()
			}
		}
	},
	func(c *campaign) (string, func()) {
		fs := c.others(c.leader())
		for _, id := range fs {
			c.proxies[id].Blackhole()
		}
		return "blackhole inbound raft of both followers " + strings.Join(fs, ", "), func() {
			for _, id := range fs {
				c.proxies[id].Pass()
			}
		}
	},
	func(c *campaign) (string, func()) {
		fo := c.others(c.leader())[1]
		c.stopNode(fo)
		return "crash follower " + fo, func() { c.startNode(fo) }
	},
	func(c *campaign) (string, func()) {
		l := c.leader()
		c.proxies[l].Blackhole()
		fo := c.others(l)[0]
		c.stopNode(fo)
		return fmt.Sprintf("blackhole inbound raft of leader %s and crash follower %s", l, fo), func() {
			c.proxies[l].Pass()
			c.startNode(fo)
		}
	},
}

// TestCampaign runs publishers and readers against a three-node federation
// while the nemesis partitions, resets, delays and crashes nodes, then
// heals everything and checks the history: every node holds the same
// ledger with exactly the acknowledged contributions (and perhaps some
// Unknown ones) once each, and the whole history is linearizable.
// docs/FAULTS.md describes it.
func TestCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("-short given: the in-process fault campaign (about 25 s of faults against a real three-node federation) runs only without -short")
	}
	c := newCampaign(t)
	c.logf("federation ready, leader %s", c.f.Leader())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopPublishing, stopReading := make(chan struct{}), make(chan struct{})
	var pubs, reads sync.WaitGroup
	for i := range publishers {
		pubs.Go(func() { c.publisher(ctx, i, stopPublishing) })
	}
	for j := range readers {
		reads.Go(func() { c.reader(ctx, j, stopReading) })
	}

	time.Sleep(restFor)
	for _, inject := range faults {
		desc, heal := inject(c)
		healed := c.rec.Fault(desc)
		c.logf("fault: %s", desc)
		time.Sleep(faultFor)
		heal()
		healed()
		c.logf("healed: %s", desc)
		time.Sleep(restFor)
	}

	// Every outstanding contribution must now be acknowledged.
	close(stopPublishing)
	if !waitGroup(&pubs, settleTimeout) {
		cancel() // ends the publishers' retries, which then report
		pubs.Wait()
	}
	close(stopReading)
	reads.Wait()
	c.logf("workload stopped")

	// One more read through every node, then every node's own ledger.
	var final []chaos.Contribution
	for j, id := range nodeIDs {
		var err error
		deadline := time.Now().Add(settleTimeout)
		for {
			var got []chaos.Contribution
			if got, err = c.read(context.Background(), publishers+readers, c.readClients[readers][j]); err == nil {
				final = got
				break
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("final read through %s: %v", id, err)
		}
	}
	size := int64(len(final)) + 1
	sctx, scancel := context.WithTimeout(context.Background(), settleTimeout)
	defer scancel()
	if _, err := localfed.SameCheckpoint(sctx, c.f, size); err != nil {
		t.Errorf("nodes do not agree on the ledger: %v", err)
	} else if err := c.f.WaitCheckpoint(sctx, size); err != nil {
		t.Errorf("no cosigned checkpoint covers the whole ledger: %v", err)
	}
	var sets []string
	for _, id := range nodeIDs {
		ledger, err := c.localLedger(id, size)
		if err != nil {
			t.Errorf("reading node %s's ledger: %v", id, err)
			continue
		}
		res := chaos.CheckSet(c.rec, ledger)
		sets = append(sets, fmt.Sprintf("%s: %s", id, res))
		if !res.OK() {
			t.Errorf("node %s: %s", id, res)
		}
	}

	begin := time.Now()
	lin, info := chaos.CheckLinearizable(c.rec, checkTimeout)
	took := time.Since(begin)
	switch lin {
	case porcupine.Ok:
	case porcupine.Illegal:
		t.Errorf("the history is not linearizable")
	default:
		t.Errorf("the linearizability check gave up after %s", took)
	}

	anomalies := chaos.ReadAnomalies(c.rec, 20)
	if len(anomalies) > 0 {
		t.Errorf("the reads saw what no ledger could have shown them:\n%s", strings.Join(anomalies, "\n"))
	} else {
		anomalies = []string{"none"}
	}
	counts, okReads, failedReads := c.rec.Counts()
	summary := fmt.Sprintf("ledger: %d entries\npublishes: %d ok, %d already present, %d failed, %d unknown\nreads: %d, %d failed\nlinearizability: %s (checked in %s)\nread anomalies:\n  %s\nset checks:\n  %s\ntimeline:\n  %s\n",
		size, counts[chaos.OK], counts[chaos.AlreadyPresent], counts[chaos.Failed], counts[chaos.Unknown],
		okReads, failedReads, lin, took.Round(time.Millisecond), strings.Join(anomalies, "\n  "), strings.Join(sets, "\n  "), strings.Join(c.events, "\n  "))
	t.Log(summary)

	dir := os.Getenv("HASHFED_CHAOS_ARTIFACTS")
	if !t.Failed() && dir == "" {
		return
	}
	if dir == "" {
		dir = os.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(dir, "hashfed-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	if err := chaos.WriteArtifacts(dir, c.rec, info, summary); err != nil {
		t.Errorf("writing artifacts: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "nodes.log"), c.logs.Bytes(), 0o644); err != nil {
		t.Errorf("writing node logs: %v", err)
	}
	t.Logf("artifacts (history.json, linearizability.html, summary.txt, nodes.log) kept in %s", dir)
}

// waitGroup waits for wg for at most d and reports whether it finished.
func waitGroup(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// A lockedBuffer collects the nodes' logs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}
