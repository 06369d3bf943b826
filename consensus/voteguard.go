package consensus

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/raft"
)

// A voter that lost its data must not vote until it holds again every entry
// committed before it lost them. Raft's vote rule (grant only to a candidate
// whose log is at least as up to date) assumes votes and logs survive
// restarts; a wiped voter has neither, so it would vote for a stale
// candidate. With one of the two others down, that candidate wins without
// the entries the old majority committed, and acknowledged contributions
// vanish. hashicorp/raft even grants votes freely while it knows no
// configuration.
//
// So a node that starts without Raft state and joins (Config.Rejoin) holds
// its votes: it refuses every vote and pre-vote request until it has seen a
// leader's commit index in an AppendEntries request and its own log reaches
// it. A leader that contacts it was elected without its vote by nodes whose
// state is intact, so that commit index covers everything committed before
// the wipe. The hold survives restarts in a marker file, so a node killed
// mid-catch-up keeps holding.
const voteHoldFile = "vote-hold"

// voteGuard wraps the transport's consumer channel to refuse votes while
// the hold is on.
type voteGuard struct {
	*raft.NetworkTransport
	path string
	log  *slog.Logger
	// lastIndex is the node's last log index (raft.LastIndex) once Raft runs.
	lastIndex func() (uint64, bool)

	mu     sync.Mutex
	held   bool
	target uint64 // a leader's commit index to reach; 0 until one is seen

	out       chan raft.RPC
	once      sync.Once
	done      chan struct{}
	closeOnce sync.Once
}

// Close ends the filter and closes the transport (Raft calls it on Shutdown).
func (g *voteGuard) Close() error {
	g.closeOnce.Do(func() { close(g.done) })
	return g.NetworkTransport.Close()
}

// newVoteGuard returns the guard for dataDir. hold starts a hold (a node
// without Raft state that joins); an existing marker file continues one.
func newVoteGuard(t *raft.NetworkTransport, dataDir string, hold bool, log *slog.Logger) (*voteGuard, error) {
	g := &voteGuard{NetworkTransport: t, path: filepath.Join(dataDir, voteHoldFile), log: log, out: make(chan raft.RPC), done: make(chan struct{})}
	b, err := os.ReadFile(g.path)
	switch {
	case err == nil:
		g.held = true
		if s := strings.TrimSpace(string(b)); s != "" {
			if g.target, err = strconv.ParseUint(s, 10, 64); err != nil {
				return nil, fmt.Errorf("%s: %w", g.path, err)
			}
		}
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	case hold:
		g.held = true
		if err := writeSynced(g.path, nil); err != nil {
			return nil, err
		}
	}
	if g.held {
		log.Info("holding votes until this node holds every committed entry", "target", g.target)
	}
	return g, nil
}

// Consumer is the filtered RPC channel Raft reads.
func (g *voteGuard) Consumer() <-chan raft.RPC {
	g.once.Do(func() { go g.filter(g.NetworkTransport.Consumer()) })
	return g.out
}

func (g *voteGuard) filter(in <-chan raft.RPC) {
	for {
		var rpc raft.RPC
		select {
		case rpc = <-in:
		case <-g.done:
			return
		}
		if g.holding() {
			switch req := rpc.Command.(type) {
			case *raft.RequestVoteRequest, *raft.RequestPreVoteRequest:
				rpc.Respond(nil, errors.New("this node lost its Raft state and does not vote until it has caught up"))
				continue
			case *raft.AppendEntriesRequest:
				g.observe(req.LeaderCommitIndex)
			}
		}
		select {
		case g.out <- rpc:
		case <-g.done:
			return
		}
	}
}

// observe records the first leader commit index seen.
func (g *voteGuard) observe(commit uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held || g.target != 0 || commit == 0 {
		return
	}
	g.target = commit
	if err := writeSynced(g.path, []byte(strconv.FormatUint(commit, 10))); err != nil {
		g.log.Error("recording the vote hold target", "err", err)
	}
	g.log.Info("vote hold: catching up to the leader's commit index", "target", commit)
}

// holding reports whether votes are still held, and lifts the hold once the
// log reaches the target.
func (g *voteGuard) holding() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held {
		return false
	}
	if g.target == 0 || g.lastIndex == nil {
		return true
	}
	last, ok := g.lastIndex()
	if !ok || last < g.target {
		return true
	}
	if err := os.Remove(g.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		g.log.Error("lifting the vote hold", "err", err)
		return true
	}
	g.held = false
	g.log.Info("vote hold lifted: this node holds every entry committed before it joined", "index", last)
	return false
}

// writeSynced writes path durably.
func writeSynced(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
