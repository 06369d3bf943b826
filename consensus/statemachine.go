package consensus

import (
	"io"

	"github.com/hashicorp/raft"
)

// A StateMachine is what Raft drives. Apply and Snapshot are never called
// concurrently with each other; the function Snapshot returns runs
// concurrently with later Apply calls and must write the state as of the
// Snapshot call.
type StateMachine interface {
	// Apply applies one committed command and returns its result bytes.
	Apply(cmd []byte) []byte
	// Snapshot captures the current state.
	Snapshot() (func(w io.Writer) error, error)
	// Restore replaces the state with a snapshot written by Snapshot's function.
	Restore(r io.Reader) error
}

// fsm adapts a StateMachine to raft.FSM.
type fsm struct{ sm StateMachine }

func (f fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	return f.sm.Apply(l.Data)
}

func (f fsm) Snapshot() (raft.FSMSnapshot, error) {
	write, err := f.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return snapshot(write), nil
}

func (f fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.sm.Restore(rc)
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
