package consensus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// Linearizable reads without log entries (ReadIndex, Raft thesis §6.4).
//
// A read on any node must see every write acknowledged before it started.
// The leader answers "which index must you reach" like this:
//
//  1. It has committed an entry of its own term (leaderReady: one barrier
//     per term, not per read). Before that, a new leader's commit index may
//     lag entries the old leader committed and acknowledged.
//  2. It reads its commit index C, then confirms with VerifyLeader, a round
//     of heartbeats a majority must answer, that it was still the leader
//     after reading C, and that its term did not change in between (a node
//     leads a term at most once, without gaps). A deposed leader cannot pass
//     this check, so it cannot answer with a stale C.
//  3. It maps C to the index of the last state machine command at or before
//     C (see lastCommandAt): barriers, no-ops and configuration entries never
//     reach the state machine, whose applied index only moves on commands,
//     so waiting for it to reach C itself could hang.
//
// The reader (leader or follower) then waits until its own state machine's
// applied index reaches that command index. Reads coalesce: a round serves
// every read that arrived before it started, and reads arriving while a
// round is in flight wait for the next one, so N concurrent reads cost far
// fewer than N heartbeat rounds, and none a log entry.

// A readBatcher runs ReadIndex rounds for reads waiting on the leader.
type readBatcher struct {
	mu      sync.Mutex
	waiting []chan readResult
	running bool
	// rounds counts rounds run (each one VerifyLeader), for tests.
	rounds atomic.Uint64
}

type readResult struct {
	index uint64
	err   error
}

// readIndex returns the index of a command this node's state machine must
// have applied before a read may start (see the comment above). It runs only
// on the leader and returns ErrNotLeader when leadership is or may be lost;
// nothing was written, so the caller retries on the new leader.
func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	ch := make(chan readResult, 1)
	b := &n.reads
	b.mu.Lock()
	b.waiting = append(b.waiting, ch)
	if !b.running {
		b.running = true
		go n.readLoop()
	}
	b.mu.Unlock()
	select {
	case r := <-ch:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// readLoop runs rounds until no read is waiting.
func (n *Node) readLoop() {
	b := &n.reads
	for {
		b.mu.Lock()
		batch := b.waiting
		b.waiting = nil
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		index, err := n.readRound()
		for _, ch := range batch {
			ch <- readResult{index, err}
		}
	}
}

// readRound runs one ReadIndex round.
func (n *Node) readRound() (uint64, error) {
	n.reads.rounds.Add(1)
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	if err := n.leaderReady(); err != nil {
		return 0, err
	}
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() != term {
		return 0, ErrNotLeader // a new term began meanwhile
	}
	commit := n.raft.CommitIndex()
	if err := n.raft.VerifyLeader().Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
			return 0, ErrNotLeader
		}
		return 0, fmt.Errorf("confirming leadership: %w", err)
	}
	if n.raft.CurrentTerm() != term {
		return 0, ErrNotLeader
	}
	return n.lastCommandAt(commit)
}

// lastCommandAt returns the index of the last command at or before index,
// a committed index: the highest index the state machine's applied index
// takes on that is not past it. Commands the machine already holds need no
// look-up; entries between them and index are read from the log (usually
// one or two, held in the log cache).
func (n *Node) lastCommandAt(index uint64) (uint64, error) {
	applied := n.machine.applied.Load()
	for i := index; i > applied; i-- {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil {
			if errors.Is(err, raft.ErrLogNotFound) {
				// Compacted into a snapshot, which the machine holds.
				break
			}
			return 0, fmt.Errorf("reading raft log entry %d: %w", i, err)
		}
		if l.Type == raft.LogCommand {
			return i, nil
		}
	}
	// Every command at or before index is applied already. applied may be
	// past index (it moved after index was read); that index is committed
	// too, so waiting for it is safe.
	return applied, nil
}
