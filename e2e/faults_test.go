//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// A faultKind is one kind of fault the campaign injects.
type faultKind string

const (
	killLeader        faultKind = "kill-leader"        // SIGKILL the leader, start it again
	killFollower      faultKind = "kill-follower"      // SIGKILL another node, start it again
	partitionLeader   faultKind = "partition-leader"   // disconnect the leader from the network
	partitionMinority faultKind = "partition-minority" // disconnect two voting followers
	pauseLeader       faultKind = "pause-leader"       // SIGSTOP the leader, SIGCONT it
	pauseFollower     faultKind = "pause-follower"     // SIGSTOP another node, SIGCONT it
	restartAll        faultKind = "restart-all"        // restart every node at once
	wipeNode          faultKind = "wipe-rejoin"        // wipe a node's data; it rejoins
)

// faultKinds is every kind; a schedule goes through them in a shuffled
// order, again and again, so each kind recurs evenly.
var faultKinds = []faultKind{killLeader, killFollower, partitionLeader, partitionMinority, pauseLeader, pauseFollower, restartAll, wipeNode}

// A fault is one planned fault: its kind, how long it lasts, the quiet
// period after healing, and a draw that picks its targets among the nodes
// the moment it strikes.
type fault struct {
	kind     faultKind
	duration time.Duration
	quiet    time.Duration
	pick     uint64
}

// schedule plans count faults from seed.
func schedule(seed uint64, count int) []fault {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var out []fault
	for len(out) < count {
		kinds := append([]faultKind{}, faultKinds...)
		rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for _, k := range kinds {
			if len(out) == count {
				break
			}
			out = append(out, fault{
				kind:     k,
				duration: time.Duration(1500+rng.IntN(3500)) * time.Millisecond,
				quiet:    time.Duration(500+rng.IntN(1500)) * time.Millisecond,
				pick:     rng.Uint64(),
			})
		}
	}
	return out
}

// A faultLog records what the campaign did, with timestamps, to the test
// log and a file.
type faultLog struct {
	mu    sync.Mutex
	start time.Time
	w     io.Writer
	logf  func(string, ...any)
}

func (l *faultLog) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	line := fmt.Sprintf("%s +%8.3fs  %s", time.Now().UTC().Format("15:04:05.000"), time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
	fmt.Fprintln(l.w, line)
	l.logf("%s", line)
}

// inject strikes f and heals it. It returns the nodes it struck. The
// healing (starting, reconnecting, resuming) is done even when striking
// went partly wrong, and errors are returned joined. mark is called as the
// fault strikes, with a description, and what it returns once it is healed
// (the recorder shows faults alongside the history).
func (c *cluster) inject(ctx context.Context, f fault, log *faultLog, mark func(desc string) (healed func())) (targets []string, err error) {
	leader, lerr := c.leader(ctx)
	if lerr != nil && (f.kind == killLeader || f.kind == partitionLeader || f.kind == pauseLeader) {
		return nil, fmt.Errorf("finding the leader: %w", lerr)
	}
	// others are the nodes but the leader, in a fixed order; voters the
	// voting ones among them.
	var others, voters []*node
	for _, n := range c.nodes {
		if n == leader {
			continue
		}
		others = append(others, n)
		if n.voter {
			voters = append(voters, n)
		}
	}
	pick := rand.New(rand.NewPCG(f.pick, f.pick))
	var errs []error
	try := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	ids := func(ns []*node) []string {
		var s []string
		for _, n := range ns {
			s = append(s, n.id)
		}
		return s
	}
	sleep := func(d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	leaderID := "none"
	if leader != nil {
		leaderID = leader.id
	}

	switch f.kind {
	case killLeader, killFollower:
		n := leader
		if f.kind == killFollower {
			n = others[pick.IntN(len(others))]
		}
		log.printf("%s: SIGKILL %s (leader %s), down for %v", f.kind, n.id, leaderID, f.duration)
		healed := mark(fmt.Sprintf("%s %s", f.kind, n.id))
		try(c.kill(ctx, n, "KILL"))
		sleep(f.duration)
		try(c.start(ctx, n))
		healed()
		log.printf("%s: started %s", f.kind, n.id)
		return []string{n.id}, errors.Join(errs...)

	case pauseLeader, pauseFollower:
		n := leader
		if f.kind == pauseFollower {
			n = others[pick.IntN(len(others))]
		}
		log.printf("%s: SIGSTOP %s (leader %s) for %v", f.kind, n.id, leaderID, f.duration)
		healed := mark(fmt.Sprintf("%s %s", f.kind, n.id))
		try(c.kill(ctx, n, "STOP"))
		sleep(f.duration)
		try(c.kill(ctx, n, "CONT"))
		healed()
		log.printf("%s: SIGCONT %s", f.kind, n.id)
		return []string{n.id}, errors.Join(errs...)

	case partitionLeader, partitionMinority:
		ns := []*node{leader}
		if f.kind == partitionMinority {
			// Two voting followers: a minority of the five voters.
			i := pick.IntN(len(voters))
			j := (i + 1 + pick.IntN(len(voters)-1)) % len(voters)
			ns = []*node{voters[i], voters[j]}
		}
		log.printf("%s: disconnect %s (leader %s) for %v", f.kind, strings.Join(ids(ns), ","), leaderID, f.duration)
		healed := mark(fmt.Sprintf("%s %s", f.kind, strings.Join(ids(ns), ",")))
		for _, n := range ns {
			try(c.disconnect(ctx, n))
		}
		sleep(f.duration)
		for _, n := range ns {
			try(c.connect(ctx, n))
		}
		healed()
		log.printf("%s: reconnected %s", f.kind, strings.Join(ids(ns), ","))
		return ids(ns), errors.Join(errs...)

	case restartAll:
		began := time.Now()
		healed := mark(string(f.kind))
		// Half the time a clean stop (SIGTERM, then SIGKILL after the stop
		// timeout), half the time SIGKILL of every node at once.
		var wg sync.WaitGroup
		var mu sync.Mutex
		each := func(do func(n *node) error) {
			for _, n := range c.nodes {
				wg.Go(func() {
					err := do(n)
					mu.Lock()
					try(err)
					mu.Unlock()
				})
			}
			wg.Wait()
		}
		if pick.IntN(2) == 0 {
			log.printf("%s: docker stop of every node at once (SIGTERM, SIGKILL after 10s) (leader %s), down for %v", f.kind, leaderID, f.duration)
			each(func(n *node) error {
				began := time.Now()
				if _, err := docker(ctx, "stop", "-t", "10", n.container); err != nil {
					return err
				}
				took := time.Since(began)
				// A node stops cleanly on SIGTERM: exit status 0, well
				// within the stop timeout.
				code, err := docker(ctx, "inspect", "-f", "{{.State.ExitCode}}", n.container)
				if err != nil {
					return err
				}
				if code = strings.TrimSpace(code); code != "0" {
					c.problemf("%s: node %s exited with status %s %v after SIGTERM (137: killed at the stop timeout)", f.kind, n.id, code, took.Round(time.Millisecond))
				}
				return nil
			})
		} else {
			log.printf("%s: SIGKILL every node (leader %s), down for %v", f.kind, leaderID, f.duration)
			each(func(n *node) error { return c.kill(ctx, n, "KILL") })
		}
		sleep(f.duration)
		each(func(n *node) error { return c.start(ctx, n) })
		healed()
		log.printf("%s: every node started (%v)", f.kind, time.Since(began).Round(time.Millisecond))
		return ids(c.nodes), errors.Join(errs...)

	case wipeNode:
		n := c.nodes[pick.IntN(len(c.nodes))]
		log.printf("%s: stop %s (leader %s), wipe its volume, start it with join %s", f.kind, n.id, leaderID, strings.Join(c.apis(n), ","))
		if len(n.join) == 0 {
			// From now on this founding voter starts with join addresses: it
			// must never bootstrap again, and asks the leader to take it back.
			n.join = c.apis(n)
			c.writeConfig(n)
		}
		healed := mark(fmt.Sprintf("%s %s", f.kind, n.id))
		try(c.replace(ctx, n))
		healed()
		log.printf("%s: %s started on an empty volume (container generation %d)", f.kind, n.id, n.generation)
		return []string{n.id}, errors.Join(errs...)
	}
	return nil, fmt.Errorf("unknown fault kind %q", f.kind)
}

// heal puts every node back: started, resumed and connected. It is the
// safety net after a fault whose own healing failed, and before the final
// checks.
func (c *cluster) heal(ctx context.Context, log *faultLog) error {
	var errs []error
	for _, n := range c.nodes {
		state, attached, err := c.containerState(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if state != "running" {
			log.printf("heal: %s is %s, starting it", n.id, state)
			errs = append(errs, c.start(ctx, n))
		}
		// A SIGSTOPped process shows as running; SIGCONT is harmless otherwise.
		errs = append(errs, c.kill(ctx, n, "CONT"))
		if !attached {
			log.printf("heal: %s is disconnected, connecting it", n.id)
			errs = append(errs, c.connect(ctx, n))
		}
	}
	return errors.Join(errs...)
}
