package node_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/consensus"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestJoinNeedsReadAccessToEverySet: a joined node holds the whole log, so
// an org that runs no founding node and does not read every set may not
// join one. iwf owns iwf/list but does not read ngo/csam.
func TestJoinNeedsReadAccessToEverySet(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	nf, err := f.AddJoiner("iwf", "iwf-1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = dialAsNode(t, f, nf, f.Files[0].APIAddress).Cluster.Join(ctx, &hashfedv1.JoinRequest{NodeId: "iwf-1", RaftAddress: nf.RaftAddress})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `org "iwf" does not read set "ngo/csam"`) || !strings.Contains(err.Error(), "hashfed subscribe --out") {
		t.Fatalf("join of a node of an org that does not read every set: %v, want PermissionDenied naming the set and the mirror", err)
	}
	st, err := f.Nodes[f.Leader()].Consensus().Status()
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(st.Members, func(m consensus.Member) bool { return m.ID == "iwf-1" }) {
		t.Fatalf("iwf-1 is in the raft configuration: %+v", st.Members)
	}
}

// TestJoinedNodeLosesTheLogWithReadAccess: iwf reads every set, so its node
// joins. When governance takes iwf off ngo/csam's readers, the leader stops
// sending that node the log and removes it from the configuration: entries
// after that never reach it.
func TestJoinedNodeLosesTheLogWithReadAccess(t *testing.T) {
	opts := testOptions(t.TempDir())
	opts.Sets[0].Readers = []string{"techco", "iwf"}
	f := startFederation(t, opts)
	ctx := testCtx(t)
	if _, err := f.AddJoiner("iwf", "iwf-1"); err != nil {
		t.Fatal(err)
	}
	if err := f.StartNode("iwf-1"); err != nil {
		t.Fatal(err)
	}
	ngo := dial(t, f, "ngo", "ngo-1")
	first, err := ngo.Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(0, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	converge(t, f, first.TreeSize) // iwf-1 included

	readers := &federation.Act{Federation: fedName, Sequence: 1, Kind: federation.ActSetReaders, Name: "ngo/csam", Readers: []string{"techco"}}
	if _, err := ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: act(t, readers, signer(t, f, "ngo"), signer(t, f, "techco"))}); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := f.Nodes[f.Leader()].Consensus().Status()
		if err == nil && !slices.ContainsFunc(st.Members, func(m consensus.Member) bool { return m.ID == "iwf-1" }) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("iwf-1 is still in the raft configuration after iwf lost read access (%v)", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	later, err := ngo.Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(2, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	// It has nothing of what came after its removal, and the federation
	// goes on without it.
	if got := f.Nodes["iwf-1"].State().Size(); got >= later.TreeSize {
		t.Errorf("iwf-1 holds %d entries, including entry %d committed after iwf lost read access", got, later.Index)
	}
	if err := f.StopNode("iwf-1"); err != nil {
		t.Fatal(err)
	}
	converge(t, f, later.TreeSize)
}
