package consensus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hashfed/hashfed/consensus"
)

// syncOn runs Sync on tn, trying again while a leadership change cuts it
// short (Sync changes nothing, so that is always safe).
func syncOn(t *testing.T, tn *testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	err := tn.node.Sync(ctx)
	for err != nil && outcomeUnknown(err) && ctx.Err() == nil {
		err = tn.node.Sync(ctx)
	}
	if err != nil {
		t.Fatalf("Sync on %s: %v", tn.id, err)
	}
}

// TestReadsWriteNothing checks that linearizable reads (Sync) on the leader
// and on followers add no entry to the Raft log.
func TestReadsWriteNothing(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	c.apply(leader, "a")
	syncOn(t, leader) // the leader's one barrier of its term, if any, is behind us
	before := map[string]uint64{}
	for _, tn := range c.running() {
		syncOn(t, tn)
		before[tn.id] = tn.node.LastIndex()
	}
	nodes := c.running()
	for i := range 300 {
		syncOn(t, nodes[i%len(nodes)])
	}
	if !leader.node.IsLeader() {
		t.Skip("leadership changed during the reads; a new term's barrier is a log entry")
	}
	for _, tn := range c.running() {
		if got := tn.node.LastIndex(); got != before[tn.id] {
			t.Errorf("%s: 300 reads moved the last Raft log index from %d to %d, want no new entries", tn.id, before[tn.id], got)
		}
	}
}

// TestReadYourWritesAcrossNodes checks that a write acknowledged on one
// node is visible on another as soon as Sync returns there.
func TestReadYourWritesAcrossNodes(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	fs := c.followers(leader)
	var want []string
	for i := range 30 {
		cmd := fmt.Sprintf("w%d", i)
		want = append(want, cmd)
		writer, reader := fs[i%2], fs[(i+1)%2]
		if i%3 == 0 {
			reader = leader
		}
		if i%3 == 1 {
			writer = leader
		}
		c.apply(writer, cmd)
		syncOn(t, reader)
		if diff := cmp.Diff(want, reader.fsm.list()); diff != "" {
			t.Fatalf("%s right after Sync, write %d acknowledged on %s (-want +got):\n%s", reader.id, i, writer.id, diff)
		}
	}
}

// TestReadsCoalesce checks that many concurrent reads share leadership
// confirmations: 200 reads started together cost far fewer than 200 rounds.
func TestReadsCoalesce(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	c.apply(leader, "a")
	syncOn(t, leader)
	const reads = 200
	before := leader.node.ReadRounds()
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, reads)
	for range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			errs <- leader.node.Sync(ctx)
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Sync: %v", err)
		}
	}
	rounds := leader.node.ReadRounds() - before
	t.Logf("%d concurrent reads took %d rounds", reads, rounds)
	if rounds == 0 || rounds > reads/4 {
		t.Errorf("%d concurrent reads took %d leadership rounds, want between 1 and %d", reads, rounds, reads/4)
	}
}

// TestDeposedLeaderCannotRead checks that a leader cut off from the other
// voters does not serve a read from its own commit index while it still
// believes it leads: the long heartbeat and lease timeouts keep it in the
// Leader state for seconds, but confirming leadership needs a majority.
func TestDeposedLeaderCannotRead(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *consensus.Config) {
		cfg.HeartbeatTimeout = 2 * time.Second
		cfg.ElectionTimeout = 2 * time.Second
		cfg.LeaderLeaseTimeout = 2 * time.Second
	})
	leader := c.leader()
	c.apply(leader, "a")
	syncOn(t, leader)
	for _, f := range c.followers(leader) {
		c.stop(f)
	}
	if !leader.node.IsLeader() {
		t.Skip("the leader stepped down before the read; nothing to test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err := leader.node.Sync(ctx)
	if err == nil {
		t.Fatal("Sync on a leader that lost every follower succeeded; it must confirm its leadership first")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sync error = %v, want the deadline to pass while no leader can be confirmed", err)
	}
}
