package federation_test

import (
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// twoVoterGenesis turns the test genesis into one with two voting orgs, ngo
// and iwf, one node each, so a checkpoint quorum is 2. It returns the
// document, the statement signers and the nodes' checkpoint signers.
func twoVoterGenesis(t *testing.T) ([]byte, map[string]*federation.Signer, map[string]note.Signer) {
	t.Helper()
	doc, signers := newTestGenesis(t)
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		t.Fatal(err)
	}
	g.Org("iwf").Roles = append(g.Org("iwf").Roles, federation.RoleOperator)
	g.Nodes = nil
	cps := map[string]note.Signer{}
	for i, org := range []string{"ngo", "iwf"} {
		id := org + "-1"
		skey, vkey, err := ledger.GenerateKey(federation.CheckpointKeyName(testFed, id))
		if err != nil {
			t.Fatal(err)
		}
		if cps[id], err = note.NewSigner(skey); err != nil {
			t.Fatal(err)
		}
		g.Nodes = append(g.Nodes, federation.Node{
			ID: id, Org: org, Voter: true, CheckpointKey: vkey,
			RaftAddress: "127.0.0.1:710" + string(rune('0'+i)), APIAddress: "127.0.0.1:810" + string(rune('0'+i)),
		})
	}
	if doc, err = g.Marshal(); err != nil {
		t.Fatal(err)
	}
	return doc, signers, cps
}

func checkpointCmd(t *testing.T, signed []byte) []byte {
	t.Helper()
	return marshalCmd(t, &hashfedv1.Command{Op: &hashfedv1.Command_Checkpoint{Checkpoint: signed}})
}

func TestCheckpointCommand(t *testing.T) {
	doc, signers, cps := twoVoterGenesis(t)
	s := newStartedState(t, doc)
	c, _, err := federation.BuildContribution(signers["ngo"], testFed, "ngo/csam", 1, []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1))}, "")
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, contributionCmd(t, c, 2), 1)

	sign := func(cp ledger.Checkpoint, ids ...string) []byte {
		var ss []note.Signer
		for _, id := range ids {
			ss = append(ss, cps[id])
		}
		b, err := ledger.SignCheckpoint(cp, ss...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	at1, err := s.RootAt(1)
	if err != nil {
		t.Fatal(err)
	}
	at2, err := s.RootAt(2)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := note.GenerateKey(nil, testFed+"/stranger")
	strangerSigner, _ := note.NewSigner(other)
	stranger, _ := ledger.SignCheckpoint(at2, strangerSigner, cps["ngo-1"])

	rejects := []struct {
		name   string
		signed []byte
		code   federation.Code
		msg    string
	}{
		{"one org of two", sign(at2, "ngo-1"), federation.CodeInvalid, "quorum is 2"},
		{"a stranger's signature does not count", stranger, federation.CodeInvalid, "quorum is 2"},
		{"root that is not the ledger's", sign(ledger.Checkpoint{Origin: testFed, Size: 2, Hash: at1.Hash}, "ngo-1", "iwf-1"), federation.CodeInvalid, "differs"},
		{"beyond the ledger", sign(ledger.Checkpoint{Origin: testFed, Size: 3, Hash: at2.Hash}, "ngo-1", "iwf-1"), federation.CodeInvalid, "covers more"},
		{"another origin", sign(ledger.Checkpoint{Origin: "elsewhere", Size: 2, Hash: at2.Hash}, "ngo-1", "iwf-1"), federation.CodeInvalid, "does not verify"},
		{"garbage", []byte("not a note"), federation.CodeInvalid, "does not verify"},
	}
	for _, r := range rejects {
		res := apply(t, s, checkpointCmd(t, r.signed))
		if res.Code != r.code || !strings.Contains(res.Msg, r.msg) {
			t.Errorf("%s: got %v %q, want %v containing %q", r.name, res.Code, res.Msg, r.code, r.msg)
		}
		if cp, size := s.LatestCheckpoint(); cp != nil || size != 0 {
			t.Fatalf("%s: a rejected checkpoint was kept (size %d)", r.name, size)
		}
	}

	good1 := sign(at1, "ngo-1", "iwf-1")
	if res := apply(t, s, checkpointCmd(t, good1)); res.Code != 0 || res.TreeSize != 1 {
		t.Fatalf("checkpoint at 1: %+v", res)
	}
	good2 := sign(at2, "iwf-1", "ngo-1")
	if res := apply(t, s, checkpointCmd(t, good2)); res.Code != 0 || res.TreeSize != 2 {
		t.Fatalf("checkpoint at 2: %+v", res)
	}
	if res := apply(t, s, checkpointCmd(t, good1)); res.Code != federation.CodeAlreadyExists {
		t.Fatalf("an older checkpoint after a newer one: %+v, want AlreadyExists", res)
	}
	if cp, size := s.LatestCheckpoint(); size != 2 || string(cp) != string(good2) {
		t.Fatalf("latest checkpoint size %d, want 2 and the bytes published", size)
	}
	if s.Size() != 2 {
		t.Fatalf("checkpoints changed the ledger: size %d", s.Size())
	}
	_, orgs, err := mustGenesis(t, doc).OpenCosigned(good2)
	if err != nil || strings.Join(orgs, ",") != "ngo,iwf" {
		t.Fatalf("OpenCosigned: orgs %v, err %v", orgs, err)
	}

	// A snapshot carries the checkpoint; a restored state keeps it.
	write, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	r, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(1000, strings.NewReader(b.String())); err != nil {
		t.Fatal(err)
	}
	if cp, size := r.LatestCheckpoint(); size != 2 || string(cp) != string(good2) {
		t.Fatalf("restored checkpoint size %d, want 2", size)
	}
}

func mustGenesis(t *testing.T, doc []byte) *federation.Genesis {
	t.Helper()
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestCheckpointQuorum(t *testing.T) {
	for _, tc := range []struct{ orgs, want int }{{1, 1}, {2, 2}, {3, 2}, {4, 3}, {5, 3}} {
		g := &federation.Genesis{}
		for i := range tc.orgs {
			g.Nodes = append(g.Nodes, federation.Node{ID: string(rune('a' + i)), Org: string(rune('a' + i)), Voter: true},
				federation.Node{ID: string(rune('a'+i)) + "2", Org: string(rune('a' + i)), Voter: true})
		}
		g.Nodes = append(g.Nodes, federation.Node{ID: "nv", Org: "nonvoting"})
		if got := g.CheckpointQuorum(); got != tc.want {
			t.Errorf("%d voting orgs (two nodes each): quorum %d, want %d", tc.orgs, got, tc.want)
		}
	}
}
