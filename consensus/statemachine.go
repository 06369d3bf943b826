package consensus

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/raft"
)

// A StateMachine is what Raft drives. Apply and Snapshot are never called
// concurrently with each other; the function Snapshot returns runs
// concurrently with later Apply calls and must write the state as of the
// Snapshot call.
//
// A StateMachine may keep its state durably (on disk). It then reports the
// Raft index of the last command it holds through AppliedIndex, and a
// restarted node neither restores a snapshot nor re-applies commands it
// already holds: it starts where the machine left off.
type StateMachine interface {
	// Apply applies the command committed at Raft log index and returns its
	// result bytes. A durable machine records index together with the
	// command's effects (atomically), so that AppliedIndex survives a crash.
	Apply(index uint64, cmd []byte) []byte
	// AppliedIndex returns the index of the last command applied (0 for none).
	// An in-memory machine starts at 0 on every start.
	AppliedIndex() uint64
	// Snapshot captures the current state. A durable machine makes every
	// applied command durable before returning: Raft deletes log entries the
	// snapshot covers once it is persisted.
	Snapshot() (func(w io.Writer) error, error)
	// Restore replaces the state with a snapshot written by Snapshot's
	// function; index is the last command that snapshot includes.
	Restore(index uint64, r io.Reader) error
}

// snapshotHeader starts every snapshot this package writes; the decimal
// index of the last command the snapshot holds follows it on the same line.
const snapshotHeader = "hashfed-consensus-snapshot-v1 applied="

// fsm adapts a StateMachine to raft.FSM. It skips commands the machine
// already holds (after a restart Raft replays the log from its latest
// snapshot) and frames snapshots with the index they include.
type fsm struct {
	sm      StateMachine
	applied atomic.Uint64 // last command index handed to sm (or held by it)
}

func newFSM(sm StateMachine) *fsm {
	f := &fsm{sm: sm}
	f.applied.Store(sm.AppliedIndex())
	return f
}

func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand || l.Index <= f.applied.Load() {
		return nil
	}
	res := f.sm.Apply(l.Index, l.Data)
	f.applied.Store(l.Index)
	return res
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	index := f.applied.Load()
	write, err := f.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return snapshot(func(w io.Writer) error {
		if _, err := fmt.Fprintf(w, "%s%d\n", snapshotHeader, index); err != nil {
			return err
		}
		return write(w)
	}), nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	br := bufio.NewReader(rc)
	index, err := readSnapshotHeader(br)
	if err != nil {
		return err
	}
	if err := f.sm.Restore(index, br); err != nil {
		return err
	}
	f.applied.Store(index)
	return nil
}

// readSnapshotHeader reads the framing line and returns the applied index.
func readSnapshotHeader(br *bufio.Reader) (uint64, error) {
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, snapshotHeader) {
		return 0, errors.New("restoring snapshot: not a hashfed consensus snapshot")
	}
	index, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(line, snapshotHeader), "\n"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("restoring snapshot: bad applied index: %w", err)
	}
	return index, nil
}

// restoreOnStart brings a machine that is behind the latest local snapshot
// up to it. Raft is started with NoSnapshotRestoreOnStart, because a durable
// machine usually holds everything the snapshot does; but if it holds less
// (its data was lost or is older than the snapshot), Raft would replay only
// the log after the snapshot, so the snapshot must be restored first.
func restoreOnStart(f *fsm, snaps raft.SnapshotStore) error {
	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return err
	}
	_, rc, err := snaps.Open(metas[0].ID)
	if err != nil {
		return fmt.Errorf("opening snapshot %s: %w", metas[0].ID, err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	index, err := readSnapshotHeader(br)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", metas[0].ID, err)
	}
	if index <= f.applied.Load() {
		return nil
	}
	if err := f.sm.Restore(index, br); err != nil {
		return fmt.Errorf("restoring snapshot %s: %w", metas[0].ID, err)
	}
	f.applied.Store(index)
	return nil
}

type snapshot func(w io.Writer) error

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s snapshot) Release() {}
