package node_test

import (
	"slices"
	"testing"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestRemoveOrgWithVotingNode: removing an org that runs a voting node
// takes that node out of Raft (if it led, it hands leadership over first),
// and the remaining members keep publishing cosigned checkpoints, in which
// the removed org's signature no longer counts.
func TestRemoveOrgWithVotingNode(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngo := dial(t, f, "ngo", "ngo-1")
	remove := &federation.Act{Federation: fedName, Sequence: 1, Kind: federation.ActRemoveOrg, Name: "techco"}
	res, err := ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: act(t, remove, signer(t, f, "ngo"), signer(t, f, "auditor"))})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "techco-1 leaves the raft configuration", func() error {
		st, err := f.Nodes["ngo-1"].Consensus().Status()
		if err != nil {
			return err
		}
		for _, m := range st.Members {
			if m.ID == "techco-1" {
				return errString("techco-1 is still a member")
			}
		}
		return nil
	})
	if err := f.StopNode("techco-1"); err != nil {
		t.Fatal(err)
	}
	pub, err := dial(t, f, "ngo", "auditor-1").Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(0, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	if pub.Index <= res.GetIndex() {
		t.Fatalf("published at %d, before the removal at %d", pub.Index, res.GetIndex())
	}
	converge(t, f, pub.TreeSize)
	_, info, err := ngo.Receipt(ctx, pub.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.SignedBy, []string{"ngo", "auditor"}) {
		t.Errorf("checkpoint after the removal cosigned by %v, want ngo and auditor", info.SignedBy)
	}
}

type errString string

func (e errString) Error() string { return string(e) }
