package federation_test

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/hashfed/hashfed/federation"
)

// TestCloseReleasesUnwrittenSnapshot: Raft may take a snapshot and drop it
// without writing it (the node shuts down first, or the sink fails). Close
// must still close the database: pebble refuses while a snapshot is open
// (a node process once exited with "leaked snapshots").
func TestCloseReleasesUnwrittenSnapshot(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s, err := federation.OpenState(filepath.Join(t.TempDir(), "state"), doc, federation.StateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range commandSequence(t, doc, signers) {
		s.Apply(uint64(10+i), cmd)
	}
	written, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := written(io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Snapshot(); err != nil { // never written
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("closing with a snapshot taken but never written: %v", err)
	}
}
