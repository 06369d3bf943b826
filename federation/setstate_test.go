package federation_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// change builds a signed contribution making ch to set as seq.
func change(tb testing.TB, s *federation.Signer, set string, seq uint64, ch federation.Change) []byte {
	tb.Helper()
	c, _, err := federation.BuildChange(s, testFed, set, seq, ch, "")
	if err != nil {
		tb.Fatal(err)
	}
	return contributionCmd(tb, c, int64(seq))
}

// listSet returns the set's current signals as "type:value[labels]" strings.
func listSet(tb testing.TB, s *federation.State, set string) []string {
	tb.Helper()
	var out []string
	if _, err := s.ListSignals(set, "", 0, 0, func(ss *federation.SignalState) error {
		out = append(out, string(ss.Type)+":"+ss.Value+"["+strings.Join(ss.Labels, " ")+"]")
		return nil
	}); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestStateChanges(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s := newStartedState(t, doc)
	ngo, techco := signers["ngo"], signers["techco"]

	mustApply(t, s, change(t, ngo, "ngo/csam", 1, federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{
		sig(federation.MD5, md5Hex(1), "A1"), sig(federation.MD5, md5Hex(2), "B2", "tag"), sig(federation.PhotoDNA, photoDNA(3)),
	}}), 1)
	if n, err := s.SetCount("ngo/csam"); err != nil || n != 3 {
		t.Fatalf("SetCount after adding 3 = %d, %v", n, err)
	}

	// Relabel replaces labels; retract removes; counts follow.
	mustApply(t, s, change(t, ngo, "ngo/csam", 2, federation.Change{Op: federation.OpRelabel, Reason: "reviewed",
		Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1), "A2")}}), 2)
	mustApply(t, s, change(t, ngo, "ngo/csam", 3, federation.Change{Op: federation.OpRetract, Reason: "false positive confirmed",
		Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(2))}}), 3)
	want := []string{"md5:" + md5Hex(1) + "[A2]", "photodna:" + photoDNA(3) + "[]"}
	if got := listSet(t, s, "ngo/csam"); !slices.Equal(got, want) {
		t.Fatalf("set after relabel and retract = %v, want %v", got, want)
	}
	if n, _ := s.SetCount("ngo/csam"); n != 2 {
		t.Fatalf("SetCount = %d, want 2", n)
	}
	ss, err := s.LookupSignal("ngo/csam", federation.MD5, strings.ToUpper(md5Hex(1)))
	if err != nil || ss == nil || ss.AddedAt != 1 || ss.ChangedAt != 2 {
		t.Fatalf("LookupSignal = %+v, %v; want added at 1, changed at 2", ss, err)
	}
	if ss, err := s.LookupSignal("ngo/csam", federation.MD5, md5Hex(2)); err != nil || ss != nil {
		t.Fatalf("LookupSignal of a retracted signal = %+v, %v; want nil", ss, err)
	}

	// A retracted signal may be added again.
	mustApply(t, s, change(t, ngo, "ngo/csam", 4, federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(2), "B1")}}), 4)

	// Feedback from a reader: its latest verdict counts once.
	mustApply(t, s, change(t, techco, "ngo/csam", 1, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictFalsePositive,
		Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1)), sig(federation.MD5, md5Hex(2))}}), 5)
	mustApply(t, s, change(t, techco, "ngo/csam", 2, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictTruePositive,
		Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(2))}}), 6)
	ss, _ = s.LookupSignal("ngo/csam", federation.MD5, md5Hex(1))
	if ss.Tally != (federation.Tally{FalsePositive: 1}) {
		t.Errorf("tally of md5 1 = %+v, want one false positive", ss.Tally)
	}
	ss, _ = s.LookupSignal("ngo/csam", federation.MD5, md5Hex(2))
	if ss.Tally != (federation.Tally{TruePositive: 1}) {
		t.Errorf("tally of md5 2 = %+v, want one true positive (the later verdict replaced the earlier)", ss.Tally)
	}
	var disputed []string
	if _, err := s.ListSignals("ngo/csam", "", 0, 1, func(ss *federation.SignalState) error {
		disputed = append(disputed, ss.Value)
		return nil
	}); err != nil || !slices.Equal(disputed, []string{md5Hex(1)}) {
		t.Errorf("signals with at least one dispute = %v, %v; want [%s]", disputed, err, md5Hex(1))
	}

	// Retracting a signal ends its feedback.
	mustApply(t, s, change(t, ngo, "ngo/csam", 5, federation.Change{Op: federation.OpRetract, Reason: "disputed", Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1))}}), 7)
	disputed = nil
	s.ListSignals("ngo/csam", "", 0, 1, func(ss *federation.SignalState) error { disputed = append(disputed, ss.Value); return nil })
	if len(disputed) != 0 {
		t.Errorf("disputed signals after retracting the disputed one = %v, want none", disputed)
	}

	// Paging returns every signal once.
	var batch []*hashfedv1.Signal
	for i := range 25 {
		batch = append(batch, sig(federation.SHA1, sha1Hex(i)))
	}
	mustApply(t, s, change(t, ngo, "ngo/csam", 6, federation.Change{Op: federation.OpAdd, Signals: batch}), 8)
	all := listSet(t, s, "ngo/csam")
	var paged []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		var err error
		token, err = s.ListSignals("ngo/csam", token, 7, 0, func(ss *federation.SignalState) error {
			paged = append(paged, string(ss.Type)+":"+ss.Value+"["+strings.Join(ss.Labels, " ")+"]")
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if token == "" {
			break
		}
	}
	if !slices.Equal(paged, all) || len(all) != 27 {
		t.Errorf("paged listing (%d) differs from the full listing (%d, want 27)", len(paged), len(all))
	}
}

func TestStateChangeRejects(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s := newStartedState(t, doc)
	ngo, iwf, techco := signers["ngo"], signers["iwf"], signers["techco"]
	mustApply(t, s, change(t, ngo, "ngo/csam", 1, federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1))}}), 1)
	mustApply(t, s, change(t, iwf, "iwf/list", 1, federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1))}}), 2)

	absent := []*hashfedv1.Signal{sig(federation.MD5, md5Hex(9))}
	present := []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1))}
	// Twelve signals are looked up through an iterator rather than one by one.
	var manyLastPresent, manyTwoAbsent []*hashfedv1.Signal
	for i := range 11 {
		manyLastPresent = append(manyLastPresent, sig(federation.MD5, md5Hex(100+i)))
	}
	manyLastPresent = append(manyLastPresent, present...)
	manyTwoAbsent = append(append(manyTwoAbsent, present...), sig(federation.MD5, md5Hex(200)), sig(federation.MD5, md5Hex(201)))
	for _, tt := range []struct {
		name string
		cmd  []byte
		want federation.Code
		msg  string
	}{
		{"add a signal the set holds", change(t, ngo, "ngo/csam", 2, federation.Change{Op: federation.OpAdd, Signals: present}), federation.CodeAlreadyExists, "is already in set"},
		{"add twelve, the last already held", change(t, ngo, "ngo/csam", 2, federation.Change{Op: federation.OpAdd, Signals: manyLastPresent}), federation.CodeAlreadyExists, "signal 11 (md5 " + md5Hex(1)},
		{"retract twelve, two not held", change(t, ngo, "ngo/csam", 2, federation.Change{Op: federation.OpRetract, Reason: "x", Signals: append(slices.Clone(manyTwoAbsent), manyLastPresent[:9]...)}), federation.CodeNotFound, "signal 1 (md5 " + md5Hex(200)},
		{"retract a signal the set lacks", change(t, ngo, "ngo/csam", 2, federation.Change{Op: federation.OpRetract, Reason: "x", Signals: absent}), federation.CodeNotFound, "is not in set"},
		{"relabel a signal the set lacks", change(t, ngo, "ngo/csam", 2, federation.Change{Op: federation.OpRelabel, Signals: absent}), federation.CodeNotFound, "is not in set"},
		{"feedback on a signal the set lacks", change(t, techco, "ngo/csam", 1, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictDisputed, Signals: absent}), federation.CodeNotFound, "is not in set"},
		{"feedback by the owner", change(t, ngo, "ngo/csam", 2, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictDisputed, Signals: present}), federation.CodePermissionDenied, "owns set"},
		{"feedback by a non-reader", change(t, techco, "iwf/list", 1, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictDisputed, Signals: present}), federation.CodePermissionDenied, "does not read set"},
		{"retract in another org's set", change(t, iwf, "ngo/csam", 1, federation.Change{Op: federation.OpRetract, Reason: "x", Signals: present}), federation.CodePermissionDenied, "belongs to org"},
		{"add by a subscriber", change(t, techco, "ngo/csam", 1, federation.Change{Op: federation.OpAdd, Signals: absent}), federation.CodePermissionDenied, "publisher role"},
		{"retract without a reason", contributionCmd(t, signRaw(t, ngo, federation.Statement{Federation: testFed, Org: "ngo", Set: "ngo/csam", Sequence: 2, Op: federation.OpRetract, Count: 1, Types: []string{"md5"}},
			marshalPayload(t, present...)), 9), federation.CodeInvalid, "needs a reason"},
		{"labels in a retraction", contributionCmd(t, signRaw(t, ngo, federation.Statement{Federation: testFed, Org: "ngo", Set: "ngo/csam", Sequence: 2, Op: federation.OpRetract, Count: 1, Types: []string{"md5"}, Labels: []string{"A1"}},
			mustMarshal(t, &hashfedv1.Payload{Reason: "x", Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1), "A1")}})), 9), federation.CodeInvalid, "type and value only"},
		{"summary that hides a type", contributionCmd(t, signRaw(t, ngo, federation.Statement{Federation: testFed, Org: "ngo", Set: "ngo/csam", Sequence: 2, Op: federation.OpAdd, Count: 2, Types: []string{"md5"}},
			marshalPayload(t, sig(federation.MD5, md5Hex(7)), sig(federation.SHA1, sha1Hex(7)))), 9), federation.CodeInvalid, "the statement says [md5]"},
		{"summary that hides a label", contributionCmd(t, signRaw(t, ngo, federation.Statement{Federation: testFed, Org: "ngo", Set: "ngo/csam", Sequence: 2, Op: federation.OpAdd, Count: 1, Types: []string{"md5"}},
			marshalPayload(t, sig(federation.MD5, md5Hex(7), "A1"))), 9), federation.CodeInvalid, "labels"},
		{"feedback without a verdict", contributionCmd(t, signRaw(t, techco, federation.Statement{Federation: testFed, Org: "techco", Set: "ngo/csam", Sequence: 1, Op: federation.OpFeedback, Count: 1, Types: []string{"md5"}},
			marshalPayload(t, present...)), 9), federation.CodeInvalid, "verdict"},
		{"unknown op", contributionCmd(t, signRaw(t, ngo, federation.Statement{Federation: testFed, Org: "ngo", Set: "ngo/csam", Sequence: 2, Op: "remove", Count: 1, Types: []string{"md5"}},
			marshalPayload(t, present...)), 9), federation.CodeInvalid, "op \"remove\" is unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := s.Checkpoint()
			count, _ := s.SetCount("ngo/csam")
			r := apply(t, s, tt.cmd)
			if r.Code != tt.want || !strings.Contains(r.Msg, tt.msg) {
				t.Fatalf("Apply = %+v, want code %v with %q", r, tt.want, tt.msg)
			}
			after, _ := s.Checkpoint()
			if n, _ := s.SetCount("ngo/csam"); before != after || n != count {
				t.Fatalf("a rejected command changed the state: %+v -> %+v, count %d -> %d", before, after, count, n)
			}
		})
	}
}

func mustMarshal(tb testing.TB, p *hashfedv1.Payload) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestStateOnDisk checks that a state reopened from its directory is the
// state that was closed, without replaying anything.
func TestStateOnDisk(t *testing.T) {
	doc, signers := newTestGenesis(t)
	dir := filepath.Join(t.TempDir(), "state")
	s, err := federation.OpenState(dir, doc, federation.StateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range commandSequence(t, doc, signers) {
		s.Apply(uint64(10+i), cmd)
	}
	mustApply(t, s, change(t, signers["ngo"], "ngo/csam", 7, federation.Change{Op: federation.OpRetract, Reason: "x", Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(6))}}), s.Size())
	applied := s.AppliedIndex()
	wantList := listSet(t, s, "ngo/csam")
	snap := snapshotBytes(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Entries(0, 1); err == nil {
		t.Error("Entries on a closed state succeeded")
	}

	r, err := federation.OpenState(dir, doc, federation.StateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.AppliedIndex() != applied {
		t.Errorf("reopened AppliedIndex = %d, want %d", r.AppliedIndex(), applied)
	}
	mem, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.Restore(applied, bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	sameState(t, mem, r)
	if got := listSet(t, r, "ngo/csam"); !slices.Equal(got, wantList) {
		t.Errorf("reopened set = %v, want %v", got, wantList)
	}
	if !bytes.Equal(snapshotBytes(t, r), snap) {
		t.Error("the reopened state's snapshot differs from the closed state's")
	}

	r.Close()
	// A directory of another federation is refused, naming the problem.
	other, _ := newTestGenesis(t)
	if _, err := federation.OpenState(dir, other, federation.StateOptions{}); err == nil || !strings.Contains(err.Error(), "another federation") {
		t.Errorf("OpenState with another genesis = %v, want an error about another federation", err)
	}
}

// TestStateRestoreOnDisk restores a snapshot over a state with other
// content, and checks a half-finished restore is cleaned up on open.
func TestStateRestoreOnDisk(t *testing.T) {
	doc, signers := newTestGenesis(t)
	src := newStartedState(t, doc)
	for i, cmd := range commandSequence(t, doc, signers)[1:] {
		src.Apply(uint64(2+i), cmd)
	}
	snap := snapshotBytes(t, src)

	dir := filepath.Join(t.TempDir(), "state")
	s, err := federation.OpenState(dir, doc, federation.StateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, genesisCmd(t, doc, 77), 0)
	if err := s.Restore(src.AppliedIndex(), bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	sameState(t, src, s)
	// A bad snapshot leaves the restored state in place.
	if err := s.Restore(99, bytes.NewReader(snap[:len(snap)/2])); err == nil {
		t.Fatal("Restore of a truncated snapshot succeeded")
	}
	sameState(t, src, s)
	s.Close()

	if err := os.MkdirAll(dir+".restoring", 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := federation.OpenState(dir, doc, federation.StateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := os.Stat(dir + ".restoring"); !os.IsNotExist(err) {
		t.Errorf("leftover restore directory not removed: %v", err)
	}
	sameState(t, src, r)
}
