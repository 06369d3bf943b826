package client_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/ledger"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

const fedName = "audit.hashfed.local"

// testOptions: three voting orgs; ngo runs two nodes, the others one.
func testOptions(dir string) localfed.Options {
	return localfed.Options{
		Dir:        dir,
		Federation: fedName,
		Orgs: []localfed.OrgSpec{
			{Name: "ngo", Roles: []federation.Role{federation.RolePublisher, federation.RoleOperator}, Nodes: 2},
			{Name: "techco", Roles: []federation.Role{federation.RoleSubscriber, federation.RoleOperator}, Nodes: 1},
			{Name: "auditor", Roles: []federation.Role{federation.RoleAuditor, federation.RoleOperator}, Nodes: 1},
		},
		Sets: []federation.Set{{Name: "ngo/csam", Types: federation.SignalTypes, Readers: []string{"techco"}}},
		// Fast elections on loopback; nothing asserts on time.
		CheckpointInterval: 50 * time.Millisecond,
		Raft: node.RaftConfig{
			HeartbeatTimeout:   300 * time.Millisecond,
			ElectionTimeout:    300 * time.Millisecond,
			LeaderLeaseTimeout: 150 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
			SnapshotInterval:   time.Minute,
			SnapshotThreshold:  8192,
			TrailingLogs:       1024,
		},
	}
}

// newFederation creates a federation in t.TempDir; with start, it runs it
// and waits until it has a leader and the genesis entry everywhere.
func newFederation(t *testing.T, start bool) *localfed.Federation {
	t.Helper()
	f, err := localfed.Create(testOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if !start {
		return f
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitReady(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return f
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// dial connects to node id as the auditor org's user.
func dial(t *testing.T, f *localfed.Federation, id string) *client.Client {
	t.Helper()
	c, err := f.Client("auditor", id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// publish has the NGO publish n signals as its next contribution and waits
// until every node holds the result.
func publish(t *testing.T, f *localfed.Federation, n int) {
	t.Helper()
	c, s := ngoPublisher(t, f, "ngo-1")
	size, err := localfed.PublishResend(testCtx(t), c, s, "ngo/csam", freshSignals(n))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := localfed.SameCheckpoint(testCtx(t), f, size); err != nil {
		t.Fatal(err)
	}
	// Audits read the latest cosigned checkpoint: wait until it covers this.
	if err := f.WaitCheckpoint(testCtx(t), size); err != nil {
		t.Fatal(err)
	}
}

// ngoPublisher connects to node id as ngo's user and returns the client and
// ngo's statement signer.
func ngoPublisher(t *testing.T, f *localfed.Federation, id string) (*client.Client, *federation.Signer) {
	t.Helper()
	c, err := f.Client("ngo", id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	s, err := f.Signer("ngo")
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// published numbers the contributions of publish and publishWith, so each
// gets its own signals, whatever ran before (-count, -run).
var published int

// freshSignals returns n (at most 100) sample signals no earlier call
// returned.
func freshSignals(n int) []*hashfedv1.Signal {
	published++
	return localfed.SampleSignals(100 * published)[100*(published-1):][:n]
}

func genesisOf(t *testing.T, f *localfed.Federation) *federation.Genesis {
	t.Helper()
	doc, err := os.ReadFile(f.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// noteSigner loads node id's checkpoint signing key, which the genesis
// registers: whoever holds it can sign any checkpoint in that node's name.
func noteSigner(t *testing.T, f *localfed.Federation, id string) note.Signer {
	t.Helper()
	org, _, _ := strings.Cut(id, "-")
	b, err := os.ReadFile(filepath.Join(f.Orgs[org].Dir, "node-"+id+".note"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// forge signs a checkpoint of size with a made-up root, in node id's name.
func forge(t *testing.T, f *localfed.Federation, size int64, id string) ([]byte, ledger.Checkpoint) {
	t.Helper()
	cp := ledger.Checkpoint{Origin: fedName, Size: size, Hash: sha256.Sum256([]byte("forged"))}
	signed, err := ledger.SignCheckpoint(cp, noteSigner(t, f, id))
	if err != nil {
		t.Fatal(err)
	}
	return signed, cp
}

// served returns the signed checkpoint node id serves now.
func served(t *testing.T, c *client.Client) []byte {
	t.Helper()
	r, err := c.Ledger.GetCheckpoint(testCtx(t), &hashfedv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetSignedCheckpoint()
}

// majority is the default policy: a majority of voting orgs must cosign.
var majority = client.CheckpointPolicy{}

// TestAuditIncremental: a first audit verifies everything and returns a
// state; after more publishes, an audit from that state verifies only the
// new entries, and ends where a full audit does.
func TestAuditIncremental(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	aud := dial(t, f, "auditor-1")
	publish(t, f, 3)

	first, err := aud.Audit(ctx, client.AuditOptions{Policy: majority})
	if err != nil {
		t.Fatal(err)
	}
	if !first.Full || first.From != 0 || first.Entries != 2 || first.InclusionProofs != 2 || first.Statements != 1 || first.Signals != 3 || first.ConsistencyProofs != 0 {
		t.Errorf("first audit: %+v", first)
	}
	st := first.State
	if st == nil || st.Size != 2 || st.Root != first.Checkpoint.Hash.String() || st.Checkpoint != string(first.SignedCheckpoint) {
		t.Fatalf("first audit state: %+v", st)
	}
	if want := []client.SetSequence{{Org: "ngo", Set: "ngo/csam", Next: 2}}; !slices.Equal(st.Next, want) {
		t.Errorf("state next sequences %v, want %v", st.Next, want)
	}

	// Nothing new: the consistency check is equality, no entry is fetched.
	same, err := aud.Audit(ctx, client.AuditOptions{Policy: majority, State: st})
	if err != nil {
		t.Fatal(err)
	}
	if same.Full || same.From != 2 || same.Entries != 0 || same.InclusionProofs != 0 || same.ConsistencyProofs != 0 || same.State.Size != 2 {
		t.Errorf("audit with nothing new: %+v", same)
	}

	publish(t, f, 2)
	publish(t, f, 1)
	// The state survives a round trip through its file.
	path := filepath.Join(t.TempDir(), "audit.json")
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	loaded, err := client.LoadAuditState(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, loaded); diff != "" {
		t.Fatalf("state after save and load (-saved +loaded):\n%s", diff)
	}
	inc, err := aud.Audit(ctx, client.AuditOptions{Policy: majority, State: loaded})
	if err != nil {
		t.Fatal(err)
	}
	if inc.Full || inc.From != 2 || inc.Entries != 2 || inc.InclusionProofs != 2 || inc.ConsistencyProofs != 1 || inc.Statements != 2 || inc.Signals != 3 {
		t.Errorf("incremental audit verified %+v, want the 2 new entries and 1 consistency proof", inc)
	}
	if want := []client.SetSequence{{Org: "ngo", Set: "ngo/csam", Next: 4}}; !slices.Equal(inc.State.Next, want) {
		t.Errorf("state next sequences %v, want %v", inc.State.Next, want)
	}

	full, err := aud.Audit(ctx, client.AuditOptions{Policy: majority, State: loaded, Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if !full.Full || full.From != 0 || full.Entries != 4 || full.InclusionProofs != 4 || full.Statements != 3 || full.Signals != 6 {
		t.Errorf("full audit: %+v", full)
	}
	if diff := cmp.Diff(full.State, inc.State, cmpopts.IgnoreFields(client.AuditState{}, "VerifiedAt")); diff != "" {
		t.Errorf("full and incremental audits end in different states (-full +incremental):\n%s", diff)
	}

	// Several nodes: each checkpoint is compared with the largest, and the
	// ledger is audited once.
	clients := []*client.Client{dial(t, f, "ngo-1"), dial(t, f, "ngo-2"), dial(t, f, "techco-1"), aud}
	multi, err := client.AuditNodes(ctx, clients, client.AuditOptions{Policy: majority, State: inc.State})
	if err != nil {
		t.Fatal(err)
	}
	if len(multi.Nodes) != 4 || multi.Entries != 0 || multi.Checkpoint != full.Checkpoint {
		t.Errorf("audit of 4 nodes: %+v", multi)
	}
	for _, n := range multi.Nodes {
		if n.Err != nil || n.Checkpoint != full.Checkpoint {
			t.Errorf("node %s: checkpoint %+v, error %v", n.Node, n.Checkpoint, n.Err)
		}
	}

	// A node that does not answer fails the audit, after the others were
	// audited; the state does not advance.
	down, err := client.Dial(client.Config{Node: "127.0.0.1:1", Genesis: f.Genesis, Cert: f.Orgs["auditor"].ClientCert, Key: f.Orgs["auditor"].ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	rep, err := client.AuditNodes(ctx, []*client.Client{down, aud}, client.AuditOptions{Policy: majority})
	var ae *client.AuditError
	if !errors.As(err, &ae) || ae.Node != "127.0.0.1:1" {
		t.Fatalf("audit with a node down: %v, want an *AuditError naming 127.0.0.1:1", err)
	}
	if rep.Entries != 4 || rep.State != nil || rep.Nodes[0].Err == nil || rep.Nodes[1].Err != nil {
		t.Errorf("audit with a node down: %+v", rep)
	}
}

// TestAuditSavedState: a state that does not belong to the genesis, or
// contradicts what the node now serves, fails the audit.
func TestAuditSavedState(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	aud := dial(t, f, "auditor-1")
	publish(t, f, 1)
	publish(t, f, 1)
	rep, err := aud.Audit(ctx, client.AuditOptions{Policy: majority})
	if err != nil {
		t.Fatal(err)
	}
	good := *rep.State
	publish(t, f, 1) // the ledger now has 4 entries, the state 3

	forgedSame, _ := forge(t, f, 3, "auditor-1")
	forgedSmaller, _ := forge(t, f, 2, "techco-1")
	forgedLarger, _ := forge(t, f, 100, "ngo-2")
	for _, tc := range []struct {
		name   string
		change func(s *client.AuditState)
		check  func(t *testing.T, err error)
	}{
		{"another federation", func(s *client.AuditState) { s.Federation = "other.hashfed" }, wantStateMismatch},
		{"another genesis", func(s *client.AuditState) { s.GenesisSHA256 = strings.Repeat("ab", 32) }, wantStateMismatch},
		{"root altered", func(s *client.AuditState) { s.Root = tlog.Hash(sha256.Sum256([]byte("other"))).String() }, wantStateMismatch},
		{"checkpoint of another size", func(s *client.AuditState) { s.Size = 2 }, wantStateMismatch},
		{
			// Sequences continue from the state's: entry 3 carries sequence 3.
			"next sequence altered", func(s *client.AuditState) { s.Next = []client.SetSequence{{Org: "ngo", Set: "ngo/csam", Next: 5}} },
			wantEntryError(3, "has sequence 3, want 5"),
		},
		{"next sequence forgotten", func(s *client.AuditState) { s.Next = nil }, wantEntryError(3, "has sequence 3, want 1")},
		{
			// A validly signed checkpoint of the state's size with another
			// root: the node's tree does not extend it.
			"signed root altered", func(s *client.AuditState) { s.Checkpoint = string(forgedSame); s.Root = rootOf(t, forgedSame) },
			func(t *testing.T, err error) { wantSplitView(t, err, forgedSame, ledger.ErrInvalidProof) },
		},
		{
			"signed smaller checkpoint altered", func(s *client.AuditState) {
				s.Checkpoint, s.Size, s.Root = string(forgedSmaller), 2, rootOf(t, forgedSmaller)
			},
			func(t *testing.T, err error) { wantSplitView(t, err, forgedSmaller, ledger.ErrInvalidProof) },
		},
		{
			"state ahead of the nodes", func(s *client.AuditState) {
				s.Checkpoint, s.Size, s.Root = string(forgedLarger), 100, rootOf(t, forgedLarger)
			},
			func(t *testing.T, err error) {
				var ae *client.AuditError
				if !errors.As(err, &ae) || !strings.Contains(err.Error(), "smaller than the 100 entries verified before") {
					t.Errorf("got %v, want an *AuditError about the nodes being behind", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.change(&s)
			rep, err := aud.Audit(ctx, client.AuditOptions{Policy: majority, State: &s})
			tc.check(t, err)
			if rep != nil && rep.State != nil {
				t.Errorf("a failed audit returned a new state")
			}
		})
	}

	// The same size with another root, once the node's tree is that size.
	t.Run("same size, different root", func(t *testing.T) {
		forged, _ := forge(t, f, 4, "auditor-1")
		s := good
		s.Checkpoint, s.Size, s.Root = string(forged), 4, rootOf(t, forged)
		_, err := aud.Audit(ctx, client.AuditOptions{Policy: majority, State: &s})
		wantSplitView(t, err, forged, nil)
	})

	// --full ignores the state, however wrong.
	s := good
	s.GenesisSHA256 = strings.Repeat("00", 32)
	if _, err := aud.Audit(ctx, client.AuditOptions{Policy: majority, State: &s, Full: true}); err != nil {
		t.Errorf("full audit with a foreign state: %v", err)
	}
}

func rootOf(t *testing.T, signed []byte) string {
	t.Helper()
	text, _, _ := strings.Cut(string(signed), "\n\n")
	cp, err := ledger.ParseCheckpoint([]byte(text + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return cp.Hash.String()
}

func wantEntryError(index int64, msg string) func(*testing.T, error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var ae *client.AuditError
		if !errors.As(err, &ae) || ae.Index != index || !strings.Contains(err.Error(), msg) {
			t.Errorf("got %v, want an *AuditError at entry %d saying %q", err, index, msg)
		}
	}
}

func wantStateMismatch(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, client.ErrStateMismatch) {
		t.Errorf("got %v, want an error wrapping ErrStateMismatch", err)
	}
}

// wantSplitView checks that err is a split view between the saved state,
// holding saved, and a node, and that it wraps wrapped (if not nil).
func wantSplitView(t *testing.T, err error, saved []byte, wrapped error) {
	t.Helper()
	var sv *client.SplitViewError
	if !errors.As(err, &sv) {
		t.Fatalf("got %v, want a *SplitViewError", err)
	}
	if sv.A.Node != client.SavedState || string(sv.A.Checkpoint) != string(saved) {
		t.Errorf("evidence A is %q from %s, want the saved checkpoint %q", sv.A.Checkpoint, sv.A.Node, saved)
	}
	if !strings.HasPrefix(sv.B.Node, "127.0.0.1:") || !strings.HasPrefix(string(sv.B.Checkpoint), fedName+"\n") {
		t.Errorf("evidence B is %q from %s, want the node's signed checkpoint", sv.B.Checkpoint, sv.B.Node)
	}
	if wrapped != nil && !errors.Is(err, wrapped) {
		t.Errorf("split view %v does not wrap %v", err, wrapped)
	}
}

// TestSplitViewDetector runs the detector over real checkpoints served by
// nodes and over checkpoints forged with a node's registered key.
func TestSplitViewDetector(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	g := genesisOf(t, f)
	ngo, techco := dial(t, f, "ngo-1"), dial(t, f, "techco-1")
	publish(t, f, 1)
	old := served(t, ngo) // size 2
	publish(t, f, 1)
	publish(t, f, 1)
	cur, other := served(t, ngo), served(t, techco) // size 4
	forged4, _ := forge(t, f, 4, "auditor-1")
	forged3, _ := forge(t, f, 3, "ngo-2")
	forged1, _ := forge(t, f, 1, "techco-1")
	forged9, _ := forge(t, f, 9, "ngo-1")
	node := func(name string, signed []byte, c *client.Client) client.SplitSide {
		return client.SplitSide{Node: name, Signed: signed, Prover: c}
	}
	for _, tc := range []struct {
		name      string
		a, b      client.SplitSide
		split     bool
		wantError string // for failures that are not split views
	}{
		{"two nodes, one tree", node("ngo-1", cur, ngo), node("techco-1", other, techco), false, ""},
		{"older and newer", node("ngo-1", old, ngo), node("techco-1", other, techco), false, ""},
		{"newer and older", node("techco-1", other, techco), node("ngo-1", old, nil), false, ""},
		{"same size, different roots", node("ngo-1", cur, ngo), node("auditor-1", forged4, nil), true, ""},
		{"forged smaller", node("techco-1", forged1, nil), node("ngo-1", cur, ngo), true, ""},
		{"forged larger, honest proof", node("ngo-1", old, ngo), node("ngo-2", forged3, ngo), true, ""},
		{"larger than the prover's tree", node("ngo-1", old, ngo), node("ngo-1", forged9, ngo), false, "OutOfRange"},
		{"no prover for the larger", node("ngo-1", old, ngo), node("ngo-1", cur, nil), false, "no source of a consistency proof"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := client.CheckSplitView(ctx, g, tc.a, tc.b)
			var sv *client.SplitViewError
			isSplit := errors.As(err, &sv)
			switch {
			case tc.split && !isSplit:
				t.Fatalf("got %v, want a split view", err)
			case tc.split:
				if sv.A.Node != tc.a.Node || string(sv.A.Checkpoint) != string(tc.a.Signed) || sv.B.Node != tc.b.Node || string(sv.B.Checkpoint) != string(tc.b.Signed) {
					t.Errorf("evidence %+v, want both signed checkpoints as given", sv)
				}
			case isSplit:
				t.Fatalf("got split view %v", err)
			case tc.wantError == "" && err != nil:
				t.Fatalf("got %v", err)
			case tc.wantError != "" && (err == nil || !strings.Contains(err.Error(), tc.wantError)):
				t.Fatalf("got %v, want an error containing %q", err, tc.wantError)
			}
		})
	}
}

// TestCheckpointPolicy applies policies to checkpoints signed by real node
// keys, single-signed as nodes serve them today and cosigned as they will.
func TestCheckpointPolicy(t *testing.T) {
	f := newFederation(t, false)
	g := genesisOf(t, f)
	cp := ledger.Checkpoint{Origin: fedName, Size: 5, Hash: sha256.Sum256([]byte("a tree"))}
	rogueKey, _, err := note.GenerateKey(rand.Reader, fedName+"/rogue-1")
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := note.NewSigner(rogueKey)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(ids ...string) []byte {
		var signers []note.Signer
		for _, id := range ids {
			if id == "rogue-1" {
				signers = append(signers, rogue)
			} else {
				signers = append(signers, noteSigner(t, f, id))
			}
		}
		signed, err := ledger.SignCheckpoint(cp, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	for _, tc := range []struct {
		signers  []string
		minOrgs  int
		wantOrgs []string // nil: refused
		wantErr  string
	}{
		{[]string{"auditor-1"}, 0, nil, "signed by 1 voting org(s) (auditor), the policy requires 2 of the 3 voting orgs"},
		{[]string{"auditor-1"}, 1, []string{"auditor"}, ""},
		{[]string{"auditor-1"}, 2, nil, "signed by 1 voting org(s) (auditor), the policy requires 2"},
		{[]string{"ngo-1", "ngo-2"}, 0, nil, "signed by 1 voting org(s) (ngo)"},
		{[]string{"ngo-2", "techco-1"}, 0, []string{"ngo", "techco"}, ""},
		{[]string{"auditor-1", "ngo-1", "techco-1"}, 3, []string{"ngo", "techco", "auditor"}, ""},
		{[]string{"rogue-1", "auditor-1", "techco-1"}, 0, []string{"techco", "auditor"}, ""},
		{[]string{"rogue-1"}, 1, nil, "verifiable"},
		{[]string{"auditor-1"}, 4, nil, "only 3 voting orgs"},
		{[]string{"auditor-1"}, -1, nil, "negative"},
	} {
		orgs, err := client.AcceptCheckpoint(g, client.CheckpointPolicy{MinOrgs: tc.minOrgs}, sign(tc.signers...))
		if tc.wantOrgs != nil {
			if err != nil || !slices.Equal(orgs, tc.wantOrgs) {
				t.Errorf("signed by %v, MinOrgs %d: orgs %v, error %v; want %v accepted", tc.signers, tc.minOrgs, orgs, err, tc.wantOrgs)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("signed by %v, MinOrgs %d: orgs %v, error %v; want an error containing %q", tc.signers, tc.minOrgs, orgs, err, tc.wantErr)
		}
	}

	// Another federation's checkpoint is refused, even signed by a key of this one.
	other := cp
	other.Origin = "other.hashfed"
	signed, err := ledger.SignCheckpoint(other, noteSigner(t, f, "ngo-1"), noteSigner(t, f, "techco-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.AcceptCheckpoint(g, client.CheckpointPolicy{}, signed); err == nil {
		t.Error("accepted a checkpoint of another federation")
	}
}

// TestAuditPolicy: through real nodes, a checkpoint cosigned by every voting
// org passes any policy; with one org's node down the federation still
// publishes checkpoints cosigned by the other two (a majority), which the
// default policy accepts and a policy demanding all three refuses, saying why.
func TestAuditPolicy(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	publish(t, f, 1)
	for _, minOrgs := range []int{0, 3} {
		rep, err := dial(t, f, "techco-1").Audit(ctx, client.AuditOptions{Policy: client.CheckpointPolicy{MinOrgs: minOrgs}})
		if err != nil {
			t.Fatalf("all orgs up, MinOrgs %d: %v", minOrgs, err)
		}
		if !slices.Equal(rep.Orgs, []string{"ngo", "techco", "auditor"}) {
			t.Errorf("all orgs up: checkpoint cosigned by %v, want all three", rep.Orgs)
		}
	}

	if err := f.StopNode("auditor-1"); err != nil {
		t.Fatal(err)
	}
	publish(t, f, 1)
	if _, err := dial(t, f, "techco-1").Audit(ctx, client.AuditOptions{}); err != nil {
		t.Fatalf("two of three orgs up, default policy: %v", err)
	}
	rep, err := dial(t, f, "techco-1").Audit(ctx, client.AuditOptions{Policy: client.CheckpointPolicy{MinOrgs: 3}})
	want := "checkpoint is signed by 2 voting org(s) (ngo, techco), the policy requires 3 of the 3 voting orgs"
	var pe *client.PolicyError
	var ae *client.AuditError
	if !errors.As(err, &pe) || !errors.As(err, &ae) || !strings.Contains(err.Error(), want) {
		t.Fatalf("MinOrgs 3 with auditor-1 down: %v, want an *AuditError holding a *PolicyError saying %q", err, want)
	}
	if rep.State != nil || rep.Entries != 0 || len(rep.Nodes) != 1 || rep.Nodes[0].Err == nil {
		t.Errorf("MinOrgs 3: report %+v", rep)
	}
}

func TestParseAuditState(t *testing.T) {
	good := `{"version":1,"federation":"f","genesis_sha256":"` + strings.Repeat("0a", 32) + `","size":2,"root":"` +
		ledger.Checkpoint{}.Hash.String() + `","checkpoint":"f\n2\n...","next":[{"org":"a","set":"a/x","next":2},{"org":"b","set":"b/x","next":5}],"verified_at":"x"}`
	s, err := client.ParseAuditState([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	again, err := client.ParseAuditState(b)
	if err != nil || !cmp.Equal(s, again) {
		t.Fatalf("round trip: %v\n%s", err, cmp.Diff(s, again))
	}
	for _, bad := range []string{
		strings.Replace(good, `"version":1`, `"version":2`, 1),
		strings.Replace(good, `"size":2`, `"size":0`, 1),
		strings.Replace(good, `"root":"`, `"root":"x`, 1),
		strings.Replace(good, `"genesis_sha256":"0a`, `"genesis_sha256":"`, 1),
		strings.Replace(good, `"next":5`, `"next":1`, 1),
		strings.Replace(good, `"org":"b","set":"b/x"`, `"org":"a","set":"a/x"`, 1),
		strings.Replace(good, `"version"`, `"extra":1,"version"`, 1),
		good + "{}",
	} {
		if _, err := client.ParseAuditState([]byte(bad)); err == nil {
			t.Errorf("parsed %s", bad)
		}
	}
}

func FuzzParseAuditState(f *testing.F) {
	f.Add([]byte(`{"version":1,"federation":"f","genesis_sha256":"` + strings.Repeat("0a", 32) + `","size":2,"root":"` +
		ledger.Checkpoint{}.Hash.String() + `","checkpoint":"","next":[{"org":"a","set":"a/x","next":2}],"verified_at":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := client.ParseAuditState(b)
		if err != nil {
			return
		}
		out, err := s.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again, err := client.ParseAuditState(out)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", out, err)
		}
		if !cmp.Equal(s, again) {
			t.Fatalf("round trip changed the state:\n%s", cmp.Diff(s, again))
		}
	})
}
