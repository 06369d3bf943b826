package node_test

import (
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestCosign: a node signs a checkpoint only if its own ledger holds it, and
// only for another node.
func TestCosign(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	if _, err := dial(t, f, "ngo", "ngo-1").Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(0, 2), ""); err != nil {
		t.Fatal(err)
	}
	converge(t, f, 2)
	target := f.Files[1] // techco-1
	self := f.Files[0].NodeConfig()
	asNode, err := client.Dial(client.Config{Node: target.APIAddress, Genesis: f.Genesis, Cert: self.TLSCert, Key: self.TLSKey})
	if err != nil {
		t.Fatal(err)
	}
	defer asNode.Close()

	good, err := f.Nodes[target.ID].State().RootAt(2)
	if err != nil {
		t.Fatal(err)
	}
	older, _ := f.Nodes[target.ID].State().RootAt(1)
	res, err := asNode.Cluster.Cosign(ctx, &hashfedv1.CosignRequest{Checkpoint: good.Marshal()})
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(target.CheckpointVKey)
	if err != nil {
		t.Fatal(err)
	}
	signed := append(append(good.Marshal(), '\n'), res.GetSignatures()...)
	if _, _, err := ledger.OpenCheckpoint(signed, fedName, note.VerifierList(v)); err != nil {
		t.Fatalf("techco-1's cosignature does not verify under its registered key: %v", err)
	}

	forked := good
	forked.Hash = older.Hash
	ahead := good
	ahead.Size = 50
	other := good
	other.Origin = "elsewhere"
	for _, tc := range []struct {
		name string
		c    *client.Client
		body []byte
		code codes.Code
		msg  string
	}{
		{"a root its ledger does not have", asNode, forked.Marshal(), codes.FailedPrecondition, "differs from this node's"},
		{"a size its ledger does not reach", asNode, ahead.Marshal(), codes.FailedPrecondition, "fewer than the checkpoint's 50"},
		{"another federation", asNode, other.Marshal(), codes.InvalidArgument, "not this federation"},
		{"not a checkpoint", asNode, []byte("hello\n"), codes.InvalidArgument, "checkpoint body"},
		{"a client identity asks", dial(t, f, "ngo", target.ID), good.Marshal(), codes.PermissionDenied, "only by a node identity"},
	} {
		_, err := tc.c.Cluster.Cosign(ctx, &hashfedv1.CosignRequest{Checkpoint: tc.body})
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("%s: got %v, want %v saying %q", tc.name, err, tc.code, tc.msg)
		}
	}
}

// TestCheckpointsWithOneOrgDown: with one voting org's node stopped, the
// other two still form a quorum; checkpoints keep coming, cosigned by them.
func TestCheckpointsWithOneOrgDown(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	if err := f.StopNode("auditor-1"); err != nil {
		t.Fatal(err)
	}
	res, err := dial(t, f, "ngo", "techco-1").Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(0, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	converge(t, f, res.TreeSize)
	receipt, info, err := dial(t, f, "ngo", "ngo-1").Receipt(ctx, res.Index)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(info.SignedBy, ",") != "ngo,techco" || info.Checkpoint.Size < res.TreeSize {
		t.Errorf("receipt checkpoint of size %d cosigned by %v, want ngo and techco covering %d", info.Checkpoint.Size, info.SignedBy, res.TreeSize)
	}
	g := f.Nodes["ngo-1"].State().Genesis()
	if _, err := client.VerifyReceipt(g, nil, receipt, 3); err == nil || !strings.Contains(err.Error(), "cosigned by 2 voting org(s)") {
		t.Errorf("a receipt cosigned by two orgs passed a policy requiring three (err %v)", err)
	}
	if _, err := client.VerifyReceipt(g, nil, receipt, 0); err != nil {
		t.Errorf("the receipt fails the default policy: %v", err)
	}
}

// TestReceiptRefusals: receipts for entries that do not exist.
func TestReceiptRefusals(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	l := dial(t, f, "auditor", "auditor-1").Ledger
	for _, tc := range []struct {
		index int64
		code  codes.Code
	}{{-1, codes.InvalidArgument}, {5, codes.OutOfRange}} {
		if _, err := l.GetReceipt(ctx, &hashfedv1.GetReceiptRequest{Index: tc.index}); status.Code(err) != tc.code {
			t.Errorf("receipt of entry %d: %v, want %v", tc.index, err, tc.code)
		}
	}
}
