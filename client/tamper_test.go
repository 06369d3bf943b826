package client_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A tamperFixture is a running federation whose ledger holds six entries:
// the genesis and five contributions of ngo to ngo/csam.
type tamperFixture struct {
	f *localfed.Federation
	g *federation.Genesis
	// leaves are the real ledger, and signed the cosigned checkpoint of it
	// that ngo-1 serves.
	leaves [][]byte
	signed []byte
	// state is an auditor's state after a successful audit at size 3.
	state *client.AuditState
}

const tamperSize = 6

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	f := newFederation(t, true)
	ctx := testCtx(t)
	publish(t, f, 4)
	publish(t, f, 5)
	rep, err := dial(t, f, "ngo-1").Audit(ctx, client.AuditOptions{Policy: majority})
	if err != nil {
		t.Fatal(err)
	}
	if rep.State.Size != 3 {
		t.Fatalf("first audit verified size %d, want 3", rep.State.Size)
	}
	publish(t, f, 6)
	publish(t, f, 4)
	publish(t, f, 5)

	honest := dial(t, f, "ngo-1")
	fx := &tamperFixture{f: f, g: genesisOf(t, f), signed: served(t, honest), state: rep.State}
	r, err := honest.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: 0, End: tamperSize})
	if err != nil {
		t.Fatal(err)
	}
	fx.leaves = r.GetEntries()
	if len(fx.leaves) != tamperSize || !strings.HasPrefix(string(fx.signed), fmt.Sprintf("%s\n%d\n", fedName, tamperSize)) {
		t.Fatalf("the ledger holds %d entries under checkpoint %q, want %d", len(fx.leaves), fx.signed, tamperSize)
	}
	return fx
}

// wantAuditError returns a check that err is an *AuditError about the lying
// node at entry index (-1: not about one entry) whose message says each of
// msgs.
func wantAuditError(index int64, msgs ...string) func(t *testing.T, liar string, err error) {
	return func(t *testing.T, liar string, err error) {
		t.Helper()
		var ae *client.AuditError
		if !errors.As(err, &ae) {
			t.Fatalf("got %v, want an *AuditError", err)
		}
		where := fmt.Sprintf("audit failed at entry %d (node %s): ", index, liar)
		if index < 0 {
			where = fmt.Sprintf("audit failed (node %s): ", liar)
		}
		if ae.Node != liar || ae.Index != index || !strings.HasPrefix(err.Error(), where) {
			t.Errorf("got %q, want an *AuditError starting %q", err, where)
		}
		for _, m := range msgs {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("got %q, want it to say %q", err, m)
			}
		}
	}
}

// wantPolicyError returns a check that err is an *AuditError about the lying
// node's checkpoint holding a *PolicyError for a checkpoint signed by org
// alone.
func wantPolicyError(org string) func(t *testing.T, liar string, err error) {
	msg := fmt.Sprintf("checkpoint not accepted: checkpoint is signed by 1 voting org(s) (%s), the policy requires 2 of the 3 voting orgs", org)
	return func(t *testing.T, liar string, err error) {
		t.Helper()
		wantAuditError(-1, msg)(t, liar, err)
		var pe *client.PolicyError
		if !errors.As(err, &pe) || !slices.Equal(pe.Orgs, []string{org}) || pe.Need != 2 || pe.Voting != 3 {
			t.Errorf("got %#v, want a *PolicyError for orgs [%s], need 2 of 3", pe, org)
		}
	}
}

// TestAuditLyingNode audits a node that alters what a real node serves, in
// each way an auditor must catch, and checks that the audit fails saying
// what is wrong and where, while the same audit through the real node
// passes.
func TestAuditLyingNode(t *testing.T) {
	fx := newTamperFixture(t)
	ctx := testCtx(t)
	direct := dial(t, fx.f, "ngo-1")
	for _, st := range []*client.AuditState{nil, fx.state} {
		rep, err := direct.Audit(ctx, client.AuditOptions{Policy: majority, State: st})
		if err != nil {
			t.Fatalf("audit through the real node (state %v): %v", st != nil, err)
		}
		if rep.Checkpoint.Size != tamperSize || string(rep.SignedCheckpoint) != string(fx.signed) {
			t.Fatalf("the real node's audit verified %+v, want the checkpoint %q", rep.Checkpoint, fx.signed)
		}
	}

	// What the lies serve, made here where a test may fail.
	modified3, modified4 := flipInEnvelope(t, fx.leaves[3]), flipInEnvelope(t, fx.leaves[4])
	oneOrg, signer := oneOrgOnly(t, fx.signed)
	text, sigs := signatureLines(t, fx.signed)
	var ngoSigs []string
	var corrupted []string
	for _, s := range sigs {
		name := sigKeyName(s)
		if strings.HasPrefix(name, fedName+"/ngo-") {
			ngoSigs = append(ngoSigs, s)
			corrupted = append(corrupted, s)
			continue
		}
		// Keep the key hash, change the signature.
		b64 := s[strings.LastIndex(s, " ")+1 : len(s)-1]
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)-1] ^= 0x01
		corrupted = append(corrupted, "— "+name+" "+base64.StdEncoding.EncodeToString(raw)+"\n")
	}
	if len(ngoSigs) == 0 || len(ngoSigs) == len(sigs) {
		t.Fatalf("checkpoint signatures %q: want some by ngo's nodes and some by others", sigs)
	}
	var impostors []note.Signer
	for _, id := range []string{"techco-1", "auditor-1"} {
		skey, _, err := note.GenerateKey(rand.Reader, federation.CheckpointKeyName(fedName, id))
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		impostors = append(impostors, s)
	}
	impersonated := withSignatures(text, append(slices.Clone(ngoSigs), signedBy(t, text, impostors...)...))
	// The lying node's org holds two nodes' checkpoint keys: it can sign a
	// tree of its own making twice, but that is still one org.
	selfSigned, err := ledger.SignCheckpoint(ledger.Checkpoint{Origin: fedName, Size: tamperSize, Hash: sha256.Sum256([]byte("a tree of ngo's making"))},
		noteSigner(t, fx.f, "ngo-1"), noteSigner(t, fx.f, "ngo-2"))
	if err != nil {
		t.Fatal(err)
	}
	flipFirst := func(hashes [][]byte) [][]byte { hashes[0][0] ^= 0x01; return hashes }

	for _, tc := range []struct {
		name  string
		lies  lies
		state *client.AuditState // nil: a full audit
		check func(t *testing.T, liar string, err error)
	}{
		{
			name:  "entry modified",
			lies:  lies{entries: func(l [][]byte) [][]byte { l[3] = modified3; return l }},
			check: wantAuditError(3, "ledger: invalid proof: leaf 3 in tree of size 6"),
		},
		{
			name:  "entry removed",
			lies:  lies{entries: func(l [][]byte) [][]byte { return slices.Delete(l, 2, 3) }},
			check: wantAuditError(2, "ledger: invalid proof: leaf 2 in tree of size 6"),
		},
		{
			name:  "last entry withheld",
			lies:  lies{entries: func(l [][]byte) [][]byte { return l[:5] }},
			check: wantAuditError(5, "node returned 0 entries for [5, 6)"),
		},
		{
			name:  "entries reordered",
			lies:  lies{entries: func(l [][]byte) [][]byte { l[2], l[3] = l[3], l[2]; return l }},
			check: wantAuditError(2, "ledger: invalid proof: leaf 2 in tree of size 6"),
		},
		{
			name:  "entry inserted (a contribution replayed)",
			lies:  lies{entries: func(l [][]byte) [][]byte { return slices.Insert(l, 3, l[2]) }},
			check: wantAuditError(3, "ledger: invalid proof: leaf 3 in tree of size 6"),
		},
		{
			name:  "entry modified after the saved state",
			lies:  lies{entries: func(l [][]byte) [][]byte { l[4] = modified4; return l }},
			state: fx.state,
			check: wantAuditError(4, "ledger: invalid proof: leaf 4 in tree of size 6"),
		},
		{
			name: "inclusion proof altered",
			lies: lies{inclusion: func(index, size int64, h [][]byte) [][]byte {
				if index == 4 {
					h = flipFirst(h)
				}
				return h
			}},
			check: wantAuditError(4, "ledger: invalid proof: leaf 4 in tree of size 6"),
		},
		{
			name: "inclusion proof truncated",
			lies: lies{inclusion: func(index, size int64, h [][]byte) [][]byte {
				if index == 1 {
					h = h[:len(h)-1]
				}
				return h
			}},
			check: wantAuditError(1, "ledger: invalid proof: leaf 1 in tree of size 6"),
		},
		{
			name: "inclusion proof hash cut short",
			lies: lies{inclusion: func(index, size int64, h [][]byte) [][]byte {
				if index == 5 {
					h[0] = h[0][:31]
				}
				return h
			}},
			check: wantAuditError(5, "proof hash 0 has 31 bytes, want 32"),
		},
		{
			name:  "checkpoint signed by one org",
			lies:  lies{checkpoint: func([]byte) []byte { return oneOrg }},
			check: wantPolicyError(signer),
		},
		{
			name:  "checkpoint of another tree signed by both nodes of the lying org",
			lies:  lies{checkpoint: func([]byte) []byte { return selfSigned }},
			check: wantPolicyError("ngo"),
		},
		{
			name:  "cosignatures by keys impersonating the other orgs' nodes",
			lies:  lies{checkpoint: func([]byte) []byte { return impersonated }},
			check: wantPolicyError("ngo"),
		},
		{
			name: "cosignatures of the other orgs corrupted",
			lies: lies{checkpoint: func([]byte) []byte { return withSignatures(text, corrupted) }},
			check: func(t *testing.T, liar string, err error) {
				t.Helper()
				wantAuditError(-1, "checkpoint not accepted: couldn't verify checkpoint note: invalid signature for key "+fedName+"/")(t, liar, err)
				var ise *note.InvalidSignatureError
				if !errors.As(err, &ise) || strings.HasPrefix(ise.Name, fedName+"/ngo-") {
					t.Errorf("got %v, want a *note.InvalidSignatureError for another org's node", err)
				}
			},
		},
		{
			name:  "consistency proof altered",
			lies:  lies{consistency: func(_, _ int64, h [][]byte) [][]byte { return flipFirst(h) }},
			state: fx.state,
			check: wantSavedStateSplit(fx),
		},
		{
			name:  "consistency proof withheld",
			lies:  lies{consistency: func(_, _ int64, h [][]byte) [][]byte { return nil }},
			state: fx.state,
			check: wantSavedStateSplit(fx),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			liar := startLyingNode(t, fx.f, "ngo-1", tc.lies)
			rep, err := dialAs(t, fx.f, "auditor", liar.Addr).Audit(ctx, client.AuditOptions{Policy: majority, State: tc.state})
			if err == nil {
				t.Fatalf("the audit through the lying node passed: %+v", rep)
			}
			t.Logf("%s", err)
			tc.check(t, liar.Addr, err)
			if rep == nil || rep.State != nil {
				t.Errorf("a failed audit returned report %+v, want one without a state", rep)
			}
		})
	}
}

// wantSavedStateSplit returns a check that err is a split view between the
// saved state at size 3 and the lying node's checkpoint at size 6, for want
// of a valid consistency proof.
func wantSavedStateSplit(fx *tamperFixture) func(t *testing.T, liar string, err error) {
	return func(t *testing.T, liar string, err error) {
		t.Helper()
		var sv *client.SplitViewError
		if !errors.As(err, &sv) {
			t.Fatalf("got %v, want a *SplitViewError", err)
		}
		want := fmt.Sprintf("split view between %s and %s: %s cannot prove that its checkpoint of size 6 extends the one of size 3: ledger: invalid proof: from size 3 to 6",
			client.SavedState, liar, liar)
		if !strings.HasPrefix(err.Error(), want) || !errors.Is(err, ledger.ErrInvalidProof) {
			t.Errorf("got %q, want a split view wrapping ErrInvalidProof, starting %q", err, want)
		}
		if sv.A.Node != client.SavedState || string(sv.A.Checkpoint) != fx.state.Checkpoint || sv.B.Node != liar || string(sv.B.Checkpoint) != string(fx.signed) {
			t.Errorf("evidence %s %q and %s %q, want the saved checkpoint and the one the lying node served", sv.A.Node, sv.A.Checkpoint, sv.B.Node, sv.B.Checkpoint)
		}
	}
}

// TestAuditForkedCheckpoint: a lying node serves a fork of the ledger
// consistently (its entries, proofs and a checkpoint validly signed by the
// real checkpoint keys of a majority of orgs, ngo-1 and techco-1), so an
// audit of it alone passes; audited together with an honest node, it is a
// split view, and the error carries both signed checkpoints.
func TestAuditForkedCheckpoint(t *testing.T) {
	fx := newTamperFixture(t)
	ctx := testCtx(t)
	honest := dial(t, fx.f, "techco-1")
	honestSigned := served(t, honest)
	if _, err := honest.Audit(ctx, client.AuditOptions{Policy: majority}); err != nil {
		t.Fatalf("audit through the honest node: %v", err)
	}
	for _, tc := range []struct {
		name   string
		size   int64
		reason string // %[1]s is the lying node, %[2]s the honest one
	}{
		{"same size, another root", tamperSize, "split view between %[2]s and %[1]s: two checkpoints of size 6 with different roots"},
		{"smaller, not a prefix", tamperSize - 1, "split view between %[1]s and %[2]s: %[2]s cannot prove that its checkpoint of size 6 extends the one of size 5: ledger: invalid proof: from size 5 to 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The fork: the same statements, but the last entry stamped a
			// nanosecond later.
			forked := slices.Clone(fx.leaves[:tc.size])
			forked[tc.size-1] = retime(t, forked[tc.size-1])
			tr := tree(t, forked)
			root, err := tr.Root()
			if err != nil {
				t.Fatal(err)
			}
			cp := ledger.Checkpoint{Origin: fedName, Size: tc.size, Hash: root}
			signed, err := ledger.SignCheckpoint(cp, noteSigner(t, fx.f, "ngo-1"), noteSigner(t, fx.f, "techco-1"))
			if err != nil {
				t.Fatal(err)
			}
			toBytes := func(hs []tlog.Hash, err error) [][]byte {
				if err != nil {
					return nil
				}
				out := make([][]byte, len(hs))
				for i, h := range hs {
					out[i] = h[:]
				}
				return out
			}
			liar := startLyingNode(t, fx.f, "ngo-1", lies{
				checkpoint: func([]byte) []byte { return signed },
				entries:    func([][]byte) [][]byte { return slices.Clone(forked) },
				inclusion: func(index, size int64, _ [][]byte) [][]byte {
					return toBytes(tr.InclusionProof(index, size))
				},
				consistency: func(oldSize, newSize int64, _ [][]byte) [][]byte {
					return toBytes(tr.ConsistencyProof(oldSize, newSize))
				},
			})
			liarClient := dialAs(t, fx.f, "auditor", liar.Addr)

			// Alone, the fork is a ledger like any other.
			rep, err := liarClient.Audit(ctx, client.AuditOptions{Policy: majority})
			if err != nil {
				t.Fatalf("audit of the fork alone: %v", err)
			}
			if rep.Checkpoint != cp || !slices.Equal(rep.Orgs, []string{"ngo", "techco"}) {
				t.Fatalf("audit of the fork alone verified %+v signed by %v, want %+v signed by ngo and techco", rep.Checkpoint, rep.Orgs, cp)
			}

			rep, err = client.AuditNodes(ctx, []*client.Client{liarClient, honest}, client.AuditOptions{Policy: majority})
			var sv *client.SplitViewError
			if !errors.As(err, &sv) {
				t.Fatalf("got %v, want a *SplitViewError", err)
			}
			t.Logf("%s", err)
			if want := fmt.Sprintf(tc.reason, liar.Addr, honest.Target()); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got %q, want %q", err, want)
			}
			got := map[string]string{sv.A.Node: string(sv.A.Checkpoint), sv.B.Node: string(sv.B.Checkpoint)}
			want := map[string]string{liar.Addr: string(signed), honest.Target(): string(honestSigned)}
			if !maps.Equal(got, want) {
				t.Errorf("evidence %q, want both signed checkpoints by node: %q", got, want)
			}
			// The evidence convicts: anyone with the genesis can check that
			// both checkpoints carry a majority of the orgs' signatures.
			for _, ev := range []client.Evidence{sv.A, sv.B} {
				if orgs, err := client.AcceptCheckpoint(fx.g, majority, ev.Checkpoint); err != nil || len(orgs) < 2 {
					t.Errorf("evidence from %s: orgs %v, %v; want a checkpoint cosigned by a majority", ev.Node, orgs, err)
				}
			}
			if rep.State != nil {
				t.Error("a split view returned a new state")
			}
		})
	}
}

// TestSubscribeLyingNode subscribes as techco, a reader of ngo/csam,
// through a node that alters the stream a real node sends.
func TestSubscribeLyingNode(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	publish(t, f, 4)
	publish(t, f, 5)
	publish(t, f, 6)
	const last = 3 // the ledger holds entries 0..3

	// Through the real node everything verifies, and the lies start from
	// what it sends.
	var sent []*hashfedv1.SubscribeResponse
	r, err := f.Client("techco", "ngo-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	err = r.CatchUp(ctx, 0, nil, func(u *client.Update) error {
		if u.Statement != nil && len(u.Signals) != u.Statement.Count {
			t.Errorf("entry %d: %d signals, want %d", u.Index, len(u.Signals), u.Statement.Count)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("subscribing through the real node: %v", err)
	}
	stream, err := r.Subscriber.Subscribe(ctx, &hashfedv1.SubscribeRequest{StopAtEnd: true})
	if err != nil {
		t.Fatal(err)
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, msg)
	}
	if len(sent) != last+1 || len(sent[2].GetPayload()) == 0 || len(sent[3].GetPayload()) == 0 {
		t.Fatalf("the real node sent %d entries, want %d with payloads", len(sent), last+1)
	}
	_, st2, err := federation.DecodeEntry(sent[2].GetEntry())
	if err != nil {
		t.Fatal(err)
	}
	altered := slices.Clone(sent[2].GetPayload())
	altered[len(altered)/2] ^= 0x01
	alteredSum := sha256.Sum256(altered)
	// The payload altered and the statement's digest rewritten to match it:
	// only the statement's signature can tell.
	rewritten := rewriteStatement(t, sent[2].GetEntry(), func(st *federation.Statement) {
		st.PayloadSHA256 = fmt.Sprintf("%x", alteredSum)
	})

	at2 := func(do func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse) func(*hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
		return func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
			if m.GetIndex() != 2 {
				return []*hashfedv1.SubscribeResponse{m}
			}
			return do(m)
		}
	}
	renumber := func(shift int64) func(*hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
		return func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
			switch {
			case m.GetIndex() < 2:
				return []*hashfedv1.SubscribeResponse{m}
			case shift < 0 && m.GetIndex() == 2:
				return nil // dropped
			case shift > 0 && m.GetIndex() == 2:
				replay := &hashfedv1.SubscribeResponse{Index: 3, Entry: m.GetEntry(), Payload: m.GetPayload()}
				return []*hashfedv1.SubscribeResponse{m, replay}
			}
			m.Index += shift
			return []*hashfedv1.SubscribeResponse{m}
		}
	}
	for _, tc := range []struct {
		name    string
		updates func(*hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse
		want    string
	}{
		{
			name: "payload altered",
			updates: at2(func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
				m.Payload = altered
				return []*hashfedv1.SubscribeResponse{m}
			}),
			want: fmt.Sprintf("entry 2: payload SHA-256 %x does not match the statement's %s", alteredSum, st2.PayloadSHA256),
		},
		{
			name: "payload of another entry",
			updates: at2(func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
				m.Payload = sent[3].GetPayload()
				return []*hashfedv1.SubscribeResponse{m}
			}),
			want: fmt.Sprintf("entry 2: payload SHA-256 %x does not match the statement's %s", sha256.Sum256(sent[3].GetPayload()), st2.PayloadSHA256),
		},
		{
			name: "payload altered and statement digest rewritten to match",
			updates: at2(func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
				m.Entry, m.Payload = rewritten, altered
				return []*hashfedv1.SubscribeResponse{m}
			}),
			want: `entry 2: statement of org "ngo": statement signature does not verify`,
		},
		{
			name:    "entry skipped",
			updates: at2(func(*hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse { return nil }),
			want:    "node sent entry 3 where entry 2 was due: refusing a gap or repeat",
		},
		{
			name: "entry repeated",
			updates: at2(func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
				return []*hashfedv1.SubscribeResponse{m, m}
			}),
			want: "node sent entry 2 where entry 3 was due: refusing a gap or repeat",
		},
		{
			name: "payload withheld",
			updates: at2(func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
				m.Payload = nil
				return []*hashfedv1.SubscribeResponse{m}
			}),
			want: "entry 2",
		},
		{
			name: "stream ended early",
			updates: func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
				if m.GetIndex() >= 2 {
					return nil
				}
				return []*hashfedv1.SubscribeResponse{m}
			},
			want: "entry 2",
		},
		{
			name:    "contribution dropped and later entries renumbered",
			updates: renumber(-1),
			want:    "entry 2",
		},
		{
			name:    "contribution replayed and later entries renumbered",
			updates: renumber(+1),
			want:    "entry 3",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			liar := startLyingNode(t, f, "ngo-1", lies{updates: tc.updates})
			c := dialAs(t, f, "techco", liar.Addr)
			err := c.CatchUp(ctx, 0, nil, func(*client.Update) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			t.Logf("%s", err)
		})
	}

	// Following with Subscribe fails the same way.
	liar := startLyingNode(t, f, "ngo-1", lies{updates: at2(func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
		m.Payload = altered
		return []*hashfedv1.SubscribeResponse{m}
	})})
	var got []int64
	err = dialAs(t, f, "techco", liar.Addr).Subscribe(ctx, 0, nil, func(u *client.Update) error {
		got = append(got, u.Index)
		if u.Index == last {
			return io.EOF
		}
		return nil
	})
	if want := fmt.Sprintf("entry 2: payload SHA-256 %x does not match the statement's %s", alteredSum, st2.PayloadSHA256); err == nil || !strings.HasSuffix(err.Error(), want) || !strings.Contains(err.Error(), "node "+liar.Addr+" served entry 2") {
		t.Errorf("Subscribe: got %v, want %q", err, want)
	}
	if !slices.Equal(got, []int64{0, 1}) {
		t.Errorf("Subscribe passed on entries %v, want only 0 and 1, before the altered one", got)
	}
}

// TestReceiptTampered alters a real receipt in each part and checks that
// VerifyReceipt, which needs no network, refuses it saying what is wrong.
func TestReceiptTampered(t *testing.T) {
	f := newFederation(t, true)
	g := genesisOf(t, f)
	publish(t, f, 4)
	publish(t, f, 5)
	publish(t, f, 6)
	ngo, err := f.Client("ngo", "ngo-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ngo.Close() })
	receipt, info := receiptOf(t, ngo, 2)
	if _, err := client.VerifyReceipt(g, nil, receipt, 0); err != nil {
		t.Fatalf("the real receipt: %v", err)
	}
	other, _ := receiptOf(t, ngo, 3)
	otherProof, err := ledger.ParseProof(other)
	if err != nil {
		t.Fatal(err)
	}
	size := info.Checkpoint.Size
	notInTree := func(index int64) string {
		return fmt.Sprintf("entry %d is not in the checkpointed tree: ledger: invalid proof: leaf %d in tree of size %d", index, index, size)
	}
	oneOrg := func(p *ledger.Proof) string {
		var org string
		p.Checkpoint, org = oneOrgOnly(t, p.Checkpoint)
		return fmt.Sprintf("receipt checkpoint is cosigned by 1 voting org(s) [%s], 2 required", org)
	}
	for _, tc := range []struct {
		name    string
		minOrgs int
		// alter changes the parsed receipt and returns what the error must say.
		alter func(p *ledger.Proof) string
	}{
		{"proof hash altered", 0, func(p *ledger.Proof) string { p.Hashes[0][0] ^= 0x01; return notInTree(2) }},
		{"proof hash dropped", 0, func(p *ledger.Proof) string { p.Hashes = p.Hashes[1:]; return notInTree(2) }},
		{"entry altered", 0, func(p *ledger.Proof) string { p.Extra = flipInEnvelope(t, p.Extra); return notInTree(2) }},
		{"entry replaced by another entry", 0, func(p *ledger.Proof) string { p.Extra = otherProof.Extra; return notInTree(2) }},
		{
			"statement rewritten", 0, func(p *ledger.Proof) string {
				p.Extra = rewriteStatement(t, p.Extra, func(st *federation.Statement) { st.Count++ })
				return notInTree(2)
			},
		},
		{"entry removed", 0, func(p *ledger.Proof) string { p.Extra = nil; return "receipt carries no entry" }},
		{"index changed", 0, func(p *ledger.Proof) string { p.Index = 1; return notInTree(1) }},
		{"index past the checkpoint", 0, func(p *ledger.Proof) string {
			p.Index = size
			return fmt.Sprintf("entry %d is not in the checkpointed tree: ledger: invalid proof: entry %d is not in a tree of size %d", size, size, size)
		}},
		{"cosignatures dropped below the majority", 0, oneOrg},
		{"cosignatures dropped below MinOrgs 3", 3, func(p *ledger.Proof) string {
			_, sigs := signatureLines(t, p.Checkpoint)
			if len(sigs) < 2 {
				t.Fatalf("receipt checkpoint signed %q, want several signatures", sigs)
			}
			p.Checkpoint, _ = oneOrgOnly(t, p.Checkpoint)
			return "receipt checkpoint is cosigned by 1 voting org(s)"
		}},
		{"checkpoint size altered", 0, func(p *ledger.Proof) string {
			p.Checkpoint = []byte(strings.Replace(string(p.Checkpoint), fmt.Sprintf("\n%d\n", size), fmt.Sprintf("\n%d\n", size+1), 1))
			return "receipt checkpoint: couldn't verify checkpoint note: invalid signature for key " + fedName + "/"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ledger.ParseProof(receipt)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.alter(p)
			info, err := client.VerifyReceipt(g, nil, p.Marshal(), tc.minOrgs)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %+v, %v; want an error saying %q", info, err, want)
			}
			t.Logf("%s", err)
		})
	}

	// One org's signature is enough for whoever asks for one.
	p, err := ledger.ParseProof(receipt)
	if err != nil {
		t.Fatal(err)
	}
	oneOrg(p)
	if _, err := client.VerifyReceipt(g, nil, p.Marshal(), 1); err != nil {
		t.Errorf("receipt with one org's signatures, MinOrgs 1: %v", err)
	}
}

// TestSubscribeForgedRegistry: a subscriber resuming from a cursor takes
// the registry (which key verifies each org's statements) from the node it
// dials. A lying node serves one in which ngo rotated to a key of the
// liar's making, then a contribution "from ngo" signed with it, with
// signals of its own.
func TestSubscribeForgedRegistry(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	publish(t, f, 4)
	publish(t, f, 5)

	priv, pub, err := federation.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "forged.key")
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	forger, err := federation.LoadSigner("ngo", keyFile)
	if err != nil {
		t.Fatal(err)
	}
	forgedSignals := localfed.SampleSignals(1000)[900:903]
	contrib, _, err := federation.BuildContribution(forger, fedName, "ngo/csam", 2, forgedSignals, "")
	if err != nil {
		t.Fatal(err)
	}
	forgedLeaf, err := proto.MarshalOptions{Deterministic: true}.Marshal(&hashfedv1.LedgerEntry{
		Kind: &hashfedv1.LedgerEntry_Statement{Statement: &hashfedv1.StatementEntry{Envelope: contrib.GetEnvelope()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	forgedRegistry := federation.NewRegistry(genesisOf(t, f))
	// As if ngo had rotated its key at entry 2.
	ngoKeys := &forgedRegistry.Orgs["ngo"].Keys
	*ngoKeys = append(*ngoKeys, federation.KeyEpoch{From: 2, PEM: string(pub)})
	forgedJSON, err := json.Marshal(forgedRegistry)
	if err != nil {
		t.Fatal(err)
	}

	liar := startLyingNode(t, f, "ngo-1", lies{
		registry: func([]byte) []byte { return forgedJSON },
		updates: func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
			if m.GetIndex() == 2 {
				m.Entry, m.Payload = forgedLeaf, contrib.GetPayload()
			}
			return []*hashfedv1.SubscribeResponse{m}
		},
	})
	// From cursor 0 the registry comes from the genesis: the forgery fails.
	c := dialAs(t, f, "techco", liar.Addr)
	err = c.CatchUp(ctx, 0, nil, func(*client.Update) error { return nil })
	if want := `entry 2: statement of org "ngo": statement signature does not verify`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("from cursor 0: got %v, want an error saying %q", err, want)
	}
	// From cursor 1 it comes from the node.
	var accepted []*client.Update
	err = c.CatchUp(ctx, 1, nil, func(u *client.Update) error {
		accepted = append(accepted, u)
		return nil
	})
	if err == nil {
		t.Fatalf("from cursor 1: the subscriber accepted the lying node's ledger: %d updates", len(accepted))
	}
	t.Logf("from cursor 1: %v", err)
}

// receiptOf fetches and verifies entry index's receipt through c.
// TestReceiptFromSkipsBadNode: a node serving a receipt whose entry was
// altered is skipped, with its name in the evidence, and the receipt comes
// from the honest node; with every node lying, ReceiptFrom fails naming each.
func TestReceiptFromSkipsBadNode(t *testing.T) {
	f := newFederation(t, true)
	publish(t, f, 4)
	ctx := testCtx(t)
	want, _ := receiptOf(t, dialAs(t, f, "techco", f.Nodes["ngo-2"].APIAddr()), 1)
	flip := func(r []byte) []byte {
		r = bytes.Clone(r)
		i := bytes.LastIndex(r, []byte("\n\n")) - 5 // inside the proof lines
		r[i] ^= 1
		return r
	}
	liar := startLyingNode(t, f, "ngo-1", lies{receipt: flip})
	honest := dialAs(t, f, "techco", f.Nodes["ngo-2"].APIAddr())
	got, info, skipped, err := client.ReceiptFrom(ctx, []*client.Client{dialAs(t, f, "techco", liar.Addr), honest}, 1)
	if err != nil {
		t.Fatalf("receipt with one honest node: %v", err)
	}
	if !bytes.Equal(got, want) || info.Index != 1 {
		t.Errorf("got a receipt for entry %d that differs from the honest node's", info.Index)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), "node "+liar.Addr) || !strings.Contains(skipped[0].Error(), "does not verify") {
		t.Errorf("skipped %v, want the lying node's receipt that does not verify", skipped)
	}
	liar2 := startLyingNode(t, f, "ngo-2", lies{receipt: flip})
	_, _, _, err = client.ReceiptFrom(ctx, []*client.Client{dialAs(t, f, "techco", liar.Addr), dialAs(t, f, "techco", liar2.Addr)}, 1)
	if err == nil || !strings.Contains(err.Error(), liar.Addr) || !strings.Contains(err.Error(), liar2.Addr) {
		t.Fatalf("got %v, want an error naming both nodes", err)
	}
}

func receiptOf(t *testing.T, c *client.Client, index int64) ([]byte, *client.ReceiptInfo) {
	t.Helper()
	receipt, info, err := c.Receipt(testCtx(t), index)
	if err != nil {
		t.Fatalf("receipt of entry %d: %v", index, err)
	}
	return receipt, info
}
