package federation_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestMirror builds a subscriber's mirror from the leaves and payloads a
// node serves, with the values of one set withheld, and checks it ends up
// with the node's tree, the read set's state, and verified checkpoints;
// and that it refuses entries the node's rules would refuse.
func TestMirror(t *testing.T) {
	doc, signers, cps := twoVoterGenesis(t)
	src := newStartedState(t, doc)
	for i, cmd := range commandSequence(t, doc, signers)[1:] {
		src.Apply(uint64(2+i), cmd)
	}
	mustApply(t, src, change(t, signers["ngo"], "ngo/csam", 7, federation.Change{Op: federation.OpRetract, Reason: "x", Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(6))}}), src.Size())
	mustApply(t, src, change(t, signers["techco"], "ngo/csam", 1, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictDisputed, Signals: []*hashfedv1.Signal{sig(federation.SHA256, sha256Hex(1))}}), src.Size())

	dir := filepath.Join(t.TempDir(), "mirror")
	m, err := federation.OpenMirror(dir, doc)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := src.Entries(0, src.Size())
	if err != nil {
		t.Fatal(err)
	}
	feed := func(m *federation.State, from int) {
		t.Helper()
		for i := from; i < len(leaves); i++ {
			var payload []byte
			_, st, _ := federation.DecodeEntry(leaves[i])
			if st != nil && st.Set == "ngo/csam" { // techco reads ngo/csam only
				payload = src.Payload(int64(i))
			}
			if err := m.ApplyLeaf(leaves[i], payload); err != nil {
				t.Fatalf("ApplyLeaf(%d): %v", i, err)
			}
		}
	}
	feed(m, 0)
	a, _ := src.Checkpoint()
	b, _ := m.Checkpoint()
	if a != b {
		t.Fatalf("mirror checkpoint %+v differs from the source's %+v", b, a)
	}
	if got, want := listSet(t, m, "ngo/csam"), listSet(t, src, "ngo/csam"); !slices.Equal(got, want) {
		t.Fatalf("mirrored set = %v, want %v", got, want)
	}
	if n, _ := m.SetCount("iwf/list"); n != 0 {
		t.Errorf("mirror holds %d signals of a set whose values it never received", n)
	}
	if m.NextSequence("iwf", "iwf/list") != src.NextSequence("iwf", "iwf/list") {
		t.Error("mirror did not follow the sequence of a set it does not read")
	}

	// Checkpoints are verified against the mirror's own tree.
	signed, err := ledger.SignCheckpoint(b, cps["ngo-1"], cps["iwf-1"])
	if err != nil {
		t.Fatal(err)
	}
	one, _ := ledger.SignCheckpoint(b, cps["ngo-1"])
	if err := m.ApplyCheckpoint(one); err == nil || !strings.Contains(err.Error(), "quorum") {
		t.Errorf("checkpoint signed by one of two voting orgs: %v, want a quorum error", err)
	}
	wrong, _ := ledger.SignCheckpoint(ledger.Checkpoint{Origin: b.Origin, Size: b.Size - 1, Hash: b.Hash}, cps["ngo-1"], cps["iwf-1"])
	if err := m.ApplyCheckpoint(wrong); err == nil || !strings.Contains(err.Error(), "differs") {
		t.Errorf("checkpoint with another root: %v, want an error saying it differs", err)
	}
	if err := m.ApplyCheckpoint(signed); err != nil {
		t.Fatalf("ApplyCheckpoint: %v", err)
	}
	if cp, size := m.LatestCheckpoint(); size != b.Size || string(cp) != string(signed) {
		t.Errorf("LatestCheckpoint = %d, want %d", size, b.Size)
	}

	// Reopened, it continues; a tampered or non-canonical leaf is refused
	// and changes nothing.
	m.Close()
	m, err = federation.OpenMirror(dir, doc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	next := contribute(t, signers["ngo"], "ngo/csam", 8, sig(federation.MD5, md5Hex(77)))
	leaf, err := proto.MarshalOptions{Deterministic: true}.Marshal(&hashfedv1.LedgerEntry{TimeUnixNano: 99, Kind: &hashfedv1.LedgerEntry_Statement{Statement: &hashfedv1.StatementEntry{Envelope: next.Envelope}}})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := m.Checkpoint()
	for _, bad := range []struct {
		name          string
		leaf, payload []byte
		msg           string
	}{
		{"payload of another contribution", leaf, src.Payload(1), "does not match"},
		{"non-canonical encoding", append(slices.Clone(leaf), 0x08, 0x01), nil, "canonical"},
		{"garbage", []byte{0xff, 0xff}, nil, "does not decode"},
		{"replayed entry", leaves[3], src.Payload(3), "replay"},
	} {
		if err := m.ApplyLeaf(bad.leaf, bad.payload); err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("%s: ApplyLeaf = %v, want an error containing %q", bad.name, err, bad.msg)
		}
		if after, _ := m.Checkpoint(); after != before {
			t.Fatalf("%s: a refused entry changed the mirror", bad.name)
		}
	}
	if err := m.ApplyLeaf(leaf, next.Payload); err != nil {
		t.Fatalf("ApplyLeaf of the next contribution after reopening: %v", err)
	}
	if ss, _ := m.LookupSignal("ngo/csam", federation.MD5, md5Hex(77)); ss == nil {
		t.Error("the new signal is not in the mirrored set")
	}
}
