package consensus_test

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hashfed/hashfed/consensus"
)

// TestWipedVoterHoldsVote: a voter that lost its data must not help a stale
// node win an election. stale misses command x while it is down; x commits
// on the other two; then one of those (wiped) loses its data and the other
// (keeper) goes down. With stale and wiped up, a wiped node that voted
// would elect stale, which lacks x, and x would be lost when keeper came
// back. Holding its votes, wiped elects nobody; once keeper is back a
// leader holding x is elected and wiped catches up from it.
func TestWipedVoterHoldsVote(t *testing.T) {
	rejoin := map[string]bool{}
	c := newTestCluster(t, 3, func(cfg *consensus.Config) { cfg.Rejoin = rejoin[cfg.ID] })
	want := []string{"before"}
	leader := c.leader()
	c.apply(leader, want[0])
	c.waitConverged(want)

	stale := c.followers(leader)[0]
	c.stop(stale)
	want = append(want, "x")
	c.apply(leader, "x")
	c.waitConverged(want)

	// keeper is the leader; wiped the other node that holds x.
	keeper := leader
	var wiped *testNode
	for _, tn := range c.running() {
		if tn != keeper {
			wiped = tn
		}
	}
	c.stop(wiped)
	if err := os.RemoveAll(wiped.dir); err != nil {
		t.Fatal(err)
	}
	c.stop(keeper)

	// wiped comes back empty and, like node.Start with join addresses,
	// without bootstrapping.
	wiped.bootstrap = nil
	rejoin[wiped.id] = true
	c.restart(stale)
	c.restart(wiped)
	// Nobody may win: stale needs wiped's vote. This waits many election
	// timeouts (300 ms here); it cannot pass by luck, only fail.
	for range 40 {
		for _, tn := range c.running() {
			if tn.node.IsLeader() {
				t.Fatalf("%s became the leader with the vote of %s, which lost its data; %s lacks x", tn.id, wiped.id, stale.id)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}

	c.restart(keeper)
	l := c.leader()
	if l == stale {
		t.Fatalf("%s, which lacks x, was elected", stale.id)
	}
	want = append(want, "after")
	c.apply(l, "after")
	c.waitConverged(want)
	if got := wiped.fsm.list(); !slices.Contains(got, "x") {
		t.Fatal(fmt.Sprintf("%s lacks x after catching up: %v", wiped.id, got))
	}
	// The hold is lifted once it has caught up: it votes again, so with
	// keeper down the other two elect a leader.
	waitFor(t, "the vote hold to be lifted", func() error {
		if _, err := os.Stat(wiped.dir + "/vote-hold"); err == nil {
			return fmt.Errorf("%s still holds its votes", wiped.id)
		}
		return nil
	})
	c.stop(l)
	l2 := c.leader()
	want = append(want, "later")
	c.apply(l2, "later")
	c.waitConverged(want)
}
