package federation_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func TestStateApply(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Size(); got != 0 {
		t.Fatalf("Size of a new state = %d, want 0", got)
	}
	if !bytes.Equal(s.GenesisDocument(), doc) || s.Genesis().Federation != testFed {
		t.Fatal("GenesisDocument/Genesis do not return the genesis")
	}
	mustApply(t, s, genesisCmd(t, doc, 100), 0)

	type step struct {
		org, set string
		seq      uint64
		sigs     []*hashfedv1.Signal
	}
	steps := []step{
		{"ngo", "ngo/csam", 1, []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1), "A1"), sig(federation.PhotoDNA, photoDNA(1))}},
		{"iwf", "iwf/list", 1, []*hashfedv1.Signal{sig(federation.PDQ, pdqHex(1))}},
		{"ngo", "ngo/csam", 2, []*hashfedv1.Signal{sig(federation.MD5, md5Hex(3))}},
		{"iwf", "iwf/list", 2, []*hashfedv1.Signal{sig(federation.MD5, md5Hex(2))}},
	}
	var contribs []*hashfedv1.Contribution
	for i, st := range steps {
		if got := s.NextSequence(st.org, st.set); got != st.seq {
			t.Fatalf("step %d: NextSequence(%s, %s) = %d, want %d", i, st.org, st.set, got, st.seq)
		}
		c := contribute(t, signers[st.org], st.set, st.seq, st.sigs...)
		if _, err := s.Check(c); err != nil {
			t.Fatalf("step %d: Check: %v", i, err)
		}
		ch := s.Changed()
		mustApply(t, s, contributionCmd(t, c, int64(101+i)), int64(i+1))
		select {
		case <-ch:
		default:
			t.Fatalf("step %d: Changed() channel not closed after an append", i)
		}
		if got := s.NextSequence(st.org, st.set); got != st.seq+1 {
			t.Fatalf("step %d: after apply NextSequence = %d, want %d", i, got, st.seq+1)
		}
		contribs = append(contribs, c)
	}
	if got, want := s.Size(), int64(len(steps)+1); got != want {
		t.Fatalf("Size = %d, want %d", got, want)
	}
	if got := s.NextSequence("ngo", "iwf/list"); got != 1 {
		t.Errorf("NextSequence of an unused (org, set) = %d, want 1", got)
	}
	cp, err := s.Checkpoint()
	if err != nil || cp.Origin != testFed || cp.Size != s.Size() {
		t.Errorf("Checkpoint = %+v, %v; want origin %q, size %d", cp, err, testFed, s.Size())
	}

	if p := s.Payload(0); p != nil {
		t.Errorf("Payload(0) of the genesis entry = %x, want nil", p)
	}
	if p := s.Payload(99); p != nil {
		t.Errorf("Payload(99) = %x, want nil", p)
	}
	leaves, err := s.Entries(0, s.Size())
	if err != nil {
		t.Fatal(err)
	}
	e, st, err := federation.DecodeEntry(leaves[0])
	if err != nil || st != nil || !bytes.Equal(e.GetGenesis().GetDocument(), doc) || e.GetTimeUnixNano() != 100 {
		t.Errorf("entry 0 = %v, %v, %v; want the genesis document at time 100", e, st, err)
	}
	for i, c := range contribs {
		idx := int64(i + 1)
		if !bytes.Equal(s.Payload(idx), c.Payload) {
			t.Errorf("Payload(%d) differs from the contribution's payload", idx)
		}
		e, st, err := federation.DecodeEntry(leaves[idx])
		if err != nil {
			t.Fatalf("DecodeEntry(leaf %d): %v", idx, err)
		}
		if !bytes.Equal(e.GetStatement().GetEnvelope(), c.Envelope) || e.GetTimeUnixNano() != int64(101+i) {
			t.Errorf("leaf %d does not hold the contribution's envelope at time %d", idx, 101+i)
		}
		if st.Org != steps[i].org || st.Set != steps[i].set || st.Sequence != steps[i].seq || st.Count != len(steps[i].sigs) {
			t.Errorf("leaf %d statement = %+v, want step %+v", idx, st, steps[i])
		}
	}
	if _, err := s.Entries(0, s.Size()+1); err == nil {
		t.Error("Entries past the end succeeded")
	}

	// Every entry is provably in the tree.
	for i := range s.Size() {
		if _, err := s.InclusionProof(i, s.Size()); err != nil {
			t.Errorf("InclusionProof(%d, %d): %v", i, s.Size(), err)
		}
	}
	if _, err := s.ConsistencyProof(1, s.Size()); err != nil {
		t.Errorf("ConsistencyProof(1, %d): %v", s.Size(), err)
	}
}

func TestStateReaders(t *testing.T) {
	doc, _ := newTestGenesis(t)
	s, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		org, set string
		want     bool
	}{
		{"ngo", "ngo/csam", true},     // owner
		{"techco", "ngo/csam", true},  // reader
		{"iwf", "ngo/csam", false},    // neither
		{"iwf", "iwf/list", true},     // owner
		{"techco", "iwf/list", false}, // not a reader
		{"ngo", "ngo/none", false},    // no such set
	} {
		if got := s.CanRead(tt.org, tt.set); got != tt.want {
			t.Errorf("CanRead(%q, %q) = %v, want %v", tt.org, tt.set, got, tt.want)
		}
	}
	for _, tt := range []struct {
		set  string
		want bool
	}{{"ngo/csam", true}, {"iwf/list", true}, {"ngo/list", false}, {"", false}} {
		if got := s.HasSet(tt.set); got != tt.want {
			t.Errorf("HasSet(%q) = %v, want %v", tt.set, got, tt.want)
		}
	}
}

func TestNewStateRejectsBadGenesis(t *testing.T) {
	if _, err := federation.NewState([]byte("{}")); err == nil {
		t.Error("NewState({}) succeeded")
	}
}

// A stateCase is a command applied to a state with the genesis and one
// contribution (ngo, ngo/csam, sequence 1) committed.
type stateCase struct {
	name      string
	noGenesis bool                    // apply to a state without the genesis entry instead
	contrib   *hashfedv1.Contribution // the command is this contribution, also run through Check
	raw       []byte                  // or else these command bytes
	want      federation.Code
	wantMsg   string // substring of the result's message
}

func TestStateApplyRejects(t *testing.T) {
	doc, signers := newTestGenesis(t)
	otherDoc, _ := newTestGenesis(t)
	ngo, iwf, techco := signers["ngo"], signers["iwf"], signers["techco"]

	first := contribute(t, ngo, "ngo/csam", 1, sig(federation.MD5, md5Hex(1)))
	next := func() *hashfedv1.Contribution {
		return contribute(t, ngo, "ngo/csam", 2, sig(federation.MD5, md5Hex(2)))
	}
	stmt := func(org, set string, seq uint64, count int) federation.Statement {
		return federation.Statement{Federation: testFed, Org: org, Set: set, Sequence: seq, Op: federation.OpAdd, Count: count}
	}

	cases := []stateCase{
		{
			name: "contribution before genesis", noGenesis: true,
			contrib: first, want: federation.CodeUnavailable, wantMsg: "genesis",
		},
		{
			name: "second genesis",
			raw:  genesisCmd(t, doc, 5), want: federation.CodeAlreadyExists, wantMsg: "already recorded",
		},
		{
			name: "different genesis doc", noGenesis: true,
			raw: genesisCmd(t, otherDoc, 5), want: federation.CodeInvalid, wantMsg: "differs",
		},
		{
			name: "genesis doc with an extra byte", noGenesis: true,
			raw: genesisCmd(t, append(doc[:len(doc):len(doc)], ' '), 5), want: federation.CodeInvalid, wantMsg: "differs",
		},
		{
			name:    "replay",
			contrib: first, want: federation.CodeAlreadyExists, wantMsg: "replay",
		},
		{
			name:    "replay of the sequence number with other signals",
			contrib: contribute(t, ngo, "ngo/csam", 1, sig(federation.MD5, md5Hex(9))), want: federation.CodeAlreadyExists,
		},
		{
			name:    "gap",
			contrib: contribute(t, ngo, "ngo/csam", 3, sig(federation.MD5, md5Hex(3))), want: federation.CodeFailedPrecondition, wantMsg: "the next must be 2",
		},
		{
			name:    "sequence zero",
			contrib: contribute(t, iwf, "iwf/list", 0, sig(federation.MD5, md5Hex(3))), want: federation.CodeInvalid, wantMsg: "sequence is 0",
		},
		{
			name: "tampered signature",
			contrib: func() *hashfedv1.Contribution {
				c := next()
				c.Envelope = editEnvelope(t, c.Envelope, func(e *dsseEnvelope) { e.Signatures[0].Sig = flipBase64(t, e.Signatures[0].Sig) })
				return c
			}(),
			want: federation.CodeInvalid, wantMsg: "does not verify",
		},
		{
			name: "tampered statement",
			contrib: func() *hashfedv1.Contribution {
				c := contribute(t, iwf, "iwf/list", 1, sig(federation.MD5, md5Hex(2)))
				c.Envelope = editEnvelope(t, c.Envelope, func(e *dsseEnvelope) {
					// Claim ngo wrote it: the state must verify with ngo's key and fail.
					body := strings.Replace(decodeB64(t, e.Payload), `"org":"iwf","set":"iwf/list"`, `"org":"ngo","set":"ngo/csam"`, 1)
					e.Payload = encodeB64(body)
				})
				return c
			}(),
			want: federation.CodeInvalid, wantMsg: `org "ngo"`,
		},
		{
			name: "statement signed with an unregistered key",
			contrib: func() *hashfedv1.Contribution {
				_, others := newTestGenesis(t)
				return contribute(t, others["ngo"], "ngo/csam", 2, sig(federation.MD5, md5Hex(2)))
			}(),
			want: federation.CodeInvalid, wantMsg: "does not verify",
		},
		{
			name:    "iwf publishing into ngo/csam",
			contrib: contribute(t, iwf, "ngo/csam", 2, sig(federation.MD5, md5Hex(2))), want: federation.CodePermissionDenied, wantMsg: `set "ngo/csam" belongs to org "ngo"`,
		},
		{
			name:    "techco lacks the publisher role",
			contrib: contribute(t, techco, "ngo/csam", 1, sig(federation.MD5, md5Hex(2))), want: federation.CodePermissionDenied, wantMsg: "publisher role",
		},
		{
			name: "org outside the federation",
			contrib: func() *hashfedv1.Contribution {
				_, others := newTestGenesis(t)
				return signRaw(t, renamed(t, others["iwf"], "acme"), stmt("acme", "ngo/csam", 1, 1), marshalPayload(t, sig(federation.MD5, md5Hex(2))))
			}(),
			want: federation.CodePermissionDenied, wantMsg: `org "acme" is not a member`,
		},
		{
			name:    "unknown set",
			contrib: contribute(t, ngo, "ngo/other", 1, sig(federation.MD5, md5Hex(2))), want: federation.CodeNotFound, wantMsg: `set "ngo/other" does not exist`,
		},
		{
			name:    "signal type not allowed by set",
			contrib: contribute(t, iwf, "iwf/list", 1, sig(federation.MD5, md5Hex(2)), sig(federation.SHA1, sha1Hex(2))), want: federation.CodeInvalid, wantMsg: "signal 1: set \"iwf/list\" does not accept sha1",
		},
		{
			name:    "duplicate signals in one payload",
			contrib: signRaw(t, ngo, stmt("ngo", "ngo/csam", 2, 3), marshalPayload(t, sig(federation.MD5, md5Hex(2)), sig(federation.SHA1, sha1Hex(2)), sig(federation.MD5, md5Hex(2), "other-label"))), want: federation.CodeInvalid, wantMsg: "signal 2 duplicates signal 0",
		},
		{
			name: "wrong federation name",
			contrib: func() *hashfedv1.Contribution {
				c, _, err := federation.BuildContribution(ngo, "other.fed", "ngo/csam", 2, []*hashfedv1.Signal{sig(federation.MD5, md5Hex(2))}, "")
				if err != nil {
					t.Fatal(err)
				}
				return c
			}(),
			want: federation.CodeInvalid, wantMsg: `statement is for federation "other.fed"`,
		},
		{
			name: "payload digest mismatch",
			contrib: func() *hashfedv1.Contribution {
				c := next()
				c.Payload = marshalPayload(t, sig(federation.MD5, md5Hex(3)))
				return c
			}(),
			want: federation.CodeInvalid, wantMsg: "does not match",
		},
		{
			name:    "count mismatch",
			contrib: signRaw(t, ngo, stmt("ngo", "ngo/csam", 2, 2), marshalPayload(t, sig(federation.MD5, md5Hex(2)))),
			want:    federation.CodeInvalid, wantMsg: "payload has 1 signals, the statement says 2",
		},
		{
			name:    "zero count",
			contrib: signRaw(t, ngo, stmt("ngo", "ngo/csam", 2, 0), nil),
			want:    federation.CodeInvalid, wantMsg: "no signals",
		},
		{
			name:    "unsupported op",
			contrib: signRaw(t, ngo, federation.Statement{Federation: testFed, Org: "ngo", Set: "ngo/csam", Sequence: 2, Op: "remove", Count: 1}, marshalPayload(t, sig(federation.MD5, md5Hex(1)))),
			want:    federation.CodeInvalid, wantMsg: `op "remove"`,
		},
		{
			name:    "non-canonical signal in payload",
			contrib: signRaw(t, ngo, stmt("ngo", "ngo/csam", 2, 1), marshalPayload(t, sig(federation.MD5, strings.ToUpper(md5Hex(0xabc))))),
			want:    federation.CodeInvalid, wantMsg: "signal 0: md5 value",
		},
		{
			name:    "payload not a Payload",
			contrib: signRaw(t, ngo, stmt("ngo", "ngo/csam", 2, 1), []byte{0xff, 0xff, 0xff}),
			want:    federation.CodeInvalid, wantMsg: "does not decode",
		},
		{
			name: "oversized envelope",
			contrib: func() *hashfedv1.Contribution {
				st := stmt("ngo", "ngo/csam", 2, 1)
				st.IssuedAt = strings.Repeat("x", federation.MaxEnvelopeSize)
				return signRaw(t, ngo, st, marshalPayload(t, sig(federation.MD5, md5Hex(2))))
			}(),
			want: federation.CodeInvalid, wantMsg: "statement envelope is",
		},
		{
			name: "oversized payload",
			contrib: func() *hashfedv1.Contribution {
				c := next()
				c.Payload = make([]byte, federation.MaxPayloadSize+1)
				return c
			}(),
			want: federation.CodeInvalid, wantMsg: "payload is 3145729 bytes",
		},
		{
			name:    "no envelope",
			contrib: &hashfedv1.Contribution{Payload: next().Payload},
			want:    federation.CodeInvalid, wantMsg: "no statement envelope",
		},
		{
			name:    "envelope not DSSE",
			contrib: &hashfedv1.Contribution{Envelope: []byte("{"), Payload: next().Payload},
			want:    federation.CodeInvalid, wantMsg: "not DSSE JSON",
		},
		{
			name: "nil contribution",
			raw:  marshalCmd(t, &hashfedv1.Command{Op: &hashfedv1.Command_Contribution{}}),
			want: federation.CodeInvalid,
		},
		{
			name: "garbage command bytes",
			raw:  []byte{0xff, 0xff, 0xff}, want: federation.CodeInvalid, wantMsg: "does not decode",
		},
		{
			name: "command without an operation",
			raw:  marshalCmd(t, &hashfedv1.Command{TimeUnixNano: 7}), want: federation.CodeInvalid, wantMsg: "no operation",
		},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			s, err := federation.NewState(doc)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.noGenesis {
				mustApply(t, s, genesisCmd(t, doc, 1), 0)
				mustApply(t, s, contributionCmd(t, first, 2), 1)
			}
			size := s.Size()
			cp, err := s.Checkpoint()
			if err != nil {
				t.Fatal(err)
			}
			nextSeq := s.NextSequence("ngo", "ngo/csam")
			changed := s.Changed()

			cmd := tt.raw
			if tt.contrib != nil {
				cmd = contributionCmd(t, tt.contrib, 3)
				_, err := s.Check(tt.contrib)
				if got := federation.CodeOf(err); got != tt.want {
					t.Errorf("Check = %v (code %v), want code %v", err, got, tt.want)
				}
			}
			r := apply(t, s, cmd)
			if r.Code != tt.want || !strings.Contains(r.Msg, tt.wantMsg) || r.Msg == "" {
				t.Errorf("Apply = %+v, want code %v (%s) with message containing %q", r, tt.want, tt.want, tt.wantMsg)
			}
			if r.Index != 0 || r.TreeSize != 0 {
				t.Errorf("rejected Apply reports index %d, tree size %d", r.Index, r.TreeSize)
			}
			if got := federation.CodeOf(r.Err()); got != tt.want {
				t.Errorf("CodeOf(Result.Err()) = %v, want %v", got, tt.want)
			}
			if got := s.Size(); got != size {
				t.Errorf("Size after a rejected command = %d, want %d", got, size)
			}
			if got, err := s.Checkpoint(); err != nil || got != cp {
				t.Errorf("Checkpoint after a rejected command = %+v, %v; want %+v", got, err, cp)
			}
			if got := s.NextSequence("ngo", "ngo/csam"); got != nextSeq {
				t.Errorf("NextSequence after a rejected command = %d, want %d", got, nextSeq)
			}
			select {
			case <-changed:
				t.Error("Changed() channel closed by a rejected command")
			default:
			}

			// The rejection changed nothing: the next valid command still applies.
			if !tt.noGenesis {
				mustApply(t, s, contributionCmd(t, next(), 4), size)
			}
		})
	}
}

// renamed returns a signer with s's key that signs for org.
func renamed(t *testing.T, s *federation.Signer, org string) *federation.Signer {
	t.Helper()
	r := *s
	r.Org = org
	return &r
}

// TestStateRejectsTooManySignals: MaxSignals documents that it "bounds the
// signals in one contribution", but nothing enforces it.
func TestStateRejectsTooManySignals(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s := newStartedState(t, doc)
	sigs := make([]*hashfedv1.Signal, federation.MaxSignals+1)
	for i := range sigs {
		sigs[i] = sig(federation.MD5, md5Hex(i))
	}
	c, _, err := federation.BuildContribution(signers["ngo"], testFed, "ngo/csam", 1, sigs, "")
	if err != nil {
		return // BuildContribution enforcing the limit is fine too
	}
	if r := apply(t, s, contributionCmd(t, c, 2)); r.Code != federation.CodeInvalid {
		t.Errorf("Apply(%d signals) = %+v, want code %v", len(sigs), r, federation.CodeInvalid)
	}
}

func TestStateAcceptsMaxSignals(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s := newStartedState(t, doc)
	sigs := make([]*hashfedv1.Signal, federation.MaxSignals)
	for i := range sigs {
		sigs[i] = sig(federation.MD5, md5Hex(i))
	}
	mustApply(t, s, contributionCmd(t, contribute(t, signers["ngo"], "ngo/csam", 1, sigs...), 2), 1)
}

// commandSequence is a fixed mix of accepted and rejected commands.
func commandSequence(t *testing.T, doc []byte, signers map[string]*federation.Signer) [][]byte {
	t.Helper()
	ngo, iwf := signers["ngo"], signers["iwf"]
	cmds := [][]byte{
		contributionCmd(t, contribute(t, ngo, "ngo/csam", 1, sig(federation.MD5, md5Hex(1))), 1), // before genesis: rejected
		genesisCmd(t, doc, 2),
	}
	for i := range 5 {
		cmds = append(cmds,
			contributionCmd(t, contribute(t, ngo, "ngo/csam", uint64(i+1), sig(federation.SHA256, sha256Hex(i)), sig(federation.PhotoDNA, photoDNA(i), fmt.Sprint("batch", i))), int64(10+2*i)),
			contributionCmd(t, contribute(t, iwf, "iwf/list", uint64(i+1), sig(federation.PDQ, pdqHex(i))), int64(11+2*i)),
		)
	}
	cmds = append(cmds,
		contributionCmd(t, contribute(t, iwf, "iwf/list", 1, sig(federation.PDQ, pdqHex(0))), 30), // replay: rejected
		genesisCmd(t, doc, 31), // rejected
		contributionCmd(t, contribute(t, ngo, "ngo/csam", 6, sig(federation.MD5, md5Hex(6))), 32),
	)
	return cmds
}

func TestStateDeterministic(t *testing.T) {
	doc, signers := newTestGenesis(t)
	cmds := commandSequence(t, doc, signers)
	a, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	b, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		ra, rb := a.Apply(a.AppliedIndex()+1, cmd), b.Apply(b.AppliedIndex()+1, cmd)
		if !bytes.Equal(ra, rb) {
			t.Fatalf("command %d: results differ: %s vs %s", i, ra, rb)
		}
	}
	if got, want := a.Size(), int64(12); got != want {
		t.Fatalf("Size = %d, want %d (genesis + 11 contributions)", got, want)
	}
	cpa, err := a.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	cpb, err := b.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if cpa != cpb {
		t.Errorf("checkpoints differ: %+v vs %+v", cpa, cpb)
	}
	la, err := a.Entries(0, a.Size())
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Entries(0, b.Size())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(la, lb); diff != "" {
		t.Errorf("leaves differ (-a +b):\n%s", diff)
	}
	for i := range a.Size() {
		if !bytes.Equal(a.Payload(i), b.Payload(i)) {
			t.Errorf("Payload(%d) differs", i)
		}
	}
}

// snapshotBytes writes s's snapshot into memory.
func snapshotBytes(t *testing.T, s *federation.State) []byte {
	t.Helper()
	write, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sameState fails unless a and b hold the same ledger, payloads and sequence numbers.
func sameState(t *testing.T, a, b *federation.State) {
	t.Helper()
	cpa, err := a.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	cpb, err := b.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	if cpa != cpb {
		t.Fatalf("checkpoints differ: %+v vs %+v", cpa, cpb)
	}
	la, err := a.Entries(0, a.Size())
	if err != nil {
		t.Fatal(err)
	}
	lb, err := b.Entries(0, b.Size())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(la, lb); diff != "" {
		t.Errorf("leaves differ (-a +b):\n%s", diff)
	}
	for i := range a.Size() {
		if !bytes.Equal(a.Payload(i), b.Payload(i)) {
			t.Errorf("Payload(%d) differs", i)
		}
	}
	for _, k := range [][2]string{{"ngo", "ngo/csam"}, {"iwf", "iwf/list"}, {"ngo", "iwf/list"}} {
		if x, y := a.NextSequence(k[0], k[1]), b.NextSequence(k[0], k[1]); x != y {
			t.Errorf("NextSequence(%s, %s) = %d vs %d", k[0], k[1], x, y)
		}
	}
}

func TestStateSnapshotRestore(t *testing.T) {
	doc, signers := newTestGenesis(t)
	cmds := commandSequence(t, doc, signers)
	orig, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range cmds {
		orig.Apply(orig.AppliedIndex()+1, cmd)
	}
	snap := snapshotBytes(t, orig)

	restored, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	changed := restored.Changed()
	if err := restored.Restore(1000, bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	select {
	case <-changed:
	default:
		t.Error("Changed() channel not closed by Restore")
	}
	sameState(t, orig, restored)
	if got := restored.NextSequence("ngo", "ngo/csam"); got != 7 {
		t.Errorf("restored NextSequence(ngo, ngo/csam) = %d, want 7", got)
	}

	// Both go on identically.
	next := contributionCmd(t, contribute(t, signers["iwf"], "iwf/list", 6, sig(federation.MD5, md5Hex(100))), 40)
	mustApply(t, orig, next, orig.Size())
	mustApply(t, restored, next, restored.Size())
	sameState(t, orig, restored)
	// And the restored state still refuses replays.
	if r := apply(t, restored, next); r.Code != federation.CodeAlreadyExists {
		t.Errorf("replay on the restored state = %+v, want code %v", r, federation.CodeAlreadyExists)
	}

	// Restoring replaces what was there: a state with more entries goes back.
	if err := orig.Restore(1000, bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	again, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Restore(uint64(len(cmds)), bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	sameState(t, orig, again)

	// Snapshots are deterministic.
	if !bytes.Equal(snapshotBytes(t, again), snap) {
		t.Error("snapshot of a restored state differs from the snapshot it was restored from")
	}
}

func TestStateSnapshotIsPointInTime(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s := newStartedState(t, doc)
	mustApply(t, s, contributionCmd(t, contribute(t, signers["ngo"], "ngo/csam", 1, sig(federation.MD5, md5Hex(1))), 2), 1)
	write, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := s.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, contributionCmd(t, contribute(t, signers["ngo"], "ngo/csam", 2, sig(federation.MD5, md5Hex(2))), 3), 2)
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		t.Fatal(err)
	}
	r, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(1000, &buf); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Checkpoint(); err != nil || got != want {
		t.Errorf("restored checkpoint = %+v, %v; want the one at snapshot time %+v", got, err, want)
	}
	if got := r.NextSequence("ngo", "ngo/csam"); got != 2 {
		t.Errorf("restored NextSequence = %d, want 2", got)
	}
}

func TestStateSnapshotEmpty(t *testing.T) {
	doc, _ := newTestGenesis(t)
	s, err := federation.NewState(doc)
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshotBytes(t, s)
	r := newStartedState(t, doc)
	if err := r.Restore(1000, bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if got := r.Size(); got != 0 {
		t.Errorf("Size after restoring an empty snapshot = %d, want 0", got)
	}
	mustApply(t, r, genesisCmd(t, doc, 1), 0)
}

func TestStateRestoreRejects(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s := newStartedState(t, doc)
	mustApply(t, s, contributionCmd(t, contribute(t, signers["ngo"], "ngo/csam", 1, sig(federation.MD5, md5Hex(1))), 2), 1)
	snap := snapshotBytes(t, s)
	magic := len("hashfed-state-v1\n")
	for _, tt := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"garbage", []byte("this is not a snapshot at all")},
		{"other magic", append([]byte("hashfed-state-v9\n"), snap[magic:]...)},
		{"magic only", snap[:magic]},
		{"truncated", snap[:len(snap)-5]},
		{"entry that is not a ledger entry", append(append([]byte{}, snap[:magic]...), 1, 3, 0xff, 0xff, 0xff, 0)},
		{"entry without kind", append(append([]byte{}, snap[:magic]...), 1, 0, 0)},
		{"huge chunk", append(append([]byte{}, snap[:magic]...), 1, 0xff, 0xff, 0xff, 0xff, 0x0f)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := federation.NewState(doc)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Restore(1000, bytes.NewReader(tt.b)); err == nil {
				t.Fatalf("Restore(%q) succeeded with %d entries", tt.b, r.Size())
			}
		})
	}

	// A snapshot that is not one leaves the state alone.
	if err := s.Restore(1000, strings.NewReader("garbage")); err == nil {
		t.Fatal("Restore(garbage) succeeded")
	}
	if got := s.Size(); got != 2 {
		t.Errorf("Size after a failed Restore of garbage = %d, want 2", got)
	}
}

func TestStateConcurrentReaders(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s := newStartedState(t, doc)
	var cmds [][]byte
	for i := range 20 {
		cmds = append(cmds, contributionCmd(t, contribute(t, signers["ngo"], "ngo/csam", uint64(i+1), sig(federation.MD5, md5Hex(i))), int64(i)))
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				case <-s.Changed():
				}
				n := s.Size()
				if _, err := s.Entries(0, n); err != nil {
					t.Error(err)
					return
				}
				s.Payload(n - 1)
				s.NextSequence("ngo", "ngo/csam")
				if _, err := s.Checkpoint(); err != nil {
					t.Error(err)
					return
				}
				if write, err := s.Snapshot(); err == nil {
					var buf bytes.Buffer
					if err := write(&buf); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	for i, cmd := range cmds {
		mustApply(t, s, cmd, int64(i+1))
	}
	close(done)
	wg.Wait()
}

func decodeB64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func encodeB64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestResendOfCommittedContribution: a contribution sent again after it
// committed (a publisher that lost the answer, or a replay) changes nothing
// and is told where it is, whether or not it was signed again with another
// issued_at; another contribution with the same sequence number is refused
// as a different one. Where contributions are survives a snapshot.
func TestResendOfCommittedContribution(t *testing.T) {
	doc, signers := newTestGenesis(t)
	ngo := signers["ngo"]
	s := newStartedState(t, doc)
	first := contribute(t, ngo, "ngo/csam", 1, sig(federation.MD5, md5Hex(1)), sig(federation.PDQ, pdqHex(1), "A1"))
	mustApply(t, s, contributionCmd(t, first, 10), 1)
	mustApply(t, s, contributionCmd(t, contribute(t, ngo, "ngo/csam", 2, sig(federation.MD5, md5Hex(2))), 11), 2)
	resigned, _, err := federation.BuildContribution(ngo, testFed, "ngo/csam", 1,
		[]*hashfedv1.Signal{sig(federation.MD5, md5Hex(1)), sig(federation.PDQ, pdqHex(1), "A1")}, "2031-12-31T00:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(resigned.Envelope, first.Envelope) {
		t.Fatal("the re-signed contribution should differ in its issued_at")
	}
	other := contribute(t, ngo, "ngo/csam", 1, sig(federation.MD5, md5Hex(9)))

	check := func(t *testing.T, s *federation.State) {
		t.Helper()
		for _, tc := range []struct {
			name      string
			c         *hashfedv1.Contribution
			committed int64
			msg       string
		}{
			{"identical resend", first, 1, `contribution 1 of org "ngo" to set "ngo/csam" is already committed, at entry 1: this is a resend or replay of it, and nothing changed`},
			{"re-signed with another issued_at", resigned, 1, "already committed, at entry 1"},
			{"another change with the same sequence number", other, 0, `sequence 1 of org "ngo" for set "ngo/csam" is already used by a different contribution, at entry 1 (the next is 3): sign this change again with sequence 3`},
		} {
			size := s.Size()
			r := apply(t, s, contributionCmd(t, tc.c, 20))
			if r.Code != federation.CodeAlreadyExists || r.Committed != tc.committed || !strings.Contains(r.Msg, tc.msg) {
				t.Errorf("%s: Apply = %+v, want AlreadyExists, committed %d, message with %q", tc.name, r, tc.committed, tc.msg)
			}
			if s.Size() != size {
				t.Errorf("%s: the ledger grew from %d to %d", tc.name, size, s.Size())
			}
			// The leader's check before proposing says the same.
			_, err := s.Check(tc.c)
			var re *federation.RejectError
			if !errors.As(err, &re) || re.Code != federation.CodeAlreadyExists || re.Committed != tc.committed {
				t.Errorf("%s: Check = %v, want AlreadyExists with committed %d", tc.name, err, tc.committed)
			}
		}
	}
	t.Run("applied", func(t *testing.T) { check(t, s) })
	t.Run("restored from a snapshot", func(t *testing.T) {
		restored, err := federation.NewState(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := restored.Restore(1000, bytes.NewReader(snapshotBytes(t, s))); err != nil {
			t.Fatal(err)
		}
		check(t, restored)
	})
}

// TestSameContributionCoversEveryField fails when Statement gains a field:
// decide whether SameContribution must compare it (only the informative
// issued_at is left out on purpose).
func TestSameContributionCoversEveryField(t *testing.T) {
	if n := reflect.TypeOf(federation.Statement{}).NumField(); n != 11 {
		t.Fatalf("Statement has %d fields, SameContribution was written for 11: update it and this test", n)
	}
	a := federation.Statement{Federation: "f", Org: "o", Set: "o/s", Sequence: 1, Op: federation.OpAdd, Count: 1, Types: []string{"md5"}, PayloadSHA256: "ab", IssuedAt: "x"}
	b := a
	b.IssuedAt = "y"
	if !federation.SameContribution(&a, &b) {
		t.Error("statements differing only in issued_at are not the same contribution")
	}
	for name, edit := range map[string]func(*federation.Statement){
		"federation": func(s *federation.Statement) { s.Federation = "g" },
		"org":        func(s *federation.Statement) { s.Org = "p" },
		"set":        func(s *federation.Statement) { s.Set = "o/t" },
		"sequence":   func(s *federation.Statement) { s.Sequence = 2 },
		"op":         func(s *federation.Statement) { s.Op = federation.OpRetract },
		"verdict":    func(s *federation.Statement) { s.Verdict = federation.VerdictDisputed },
		"count":      func(s *federation.Statement) { s.Count = 2 },
		"types":      func(s *federation.Statement) { s.Types = []string{"pdq"} },
		"labels":     func(s *federation.Statement) { s.Labels = []string{"A1"} },
		"payload":    func(s *federation.Statement) { s.PayloadSHA256 = "cd" },
	} {
		c := a
		edit(&c)
		if federation.SameContribution(&a, &c) {
			t.Errorf("statements differing in %s count as the same contribution", name)
		}
	}
}
