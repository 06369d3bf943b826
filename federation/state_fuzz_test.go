package federation_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"reflect"
	"slices"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/fixedkeys"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A fuzzFixture is a small federation and a ledger built in it: the source
// of the real signed objects the fuzz targets start from, and the list of
// everything it signed. Only the fixture holds the private keys, so any
// statement, act or checkpoint that verifies must be one of these.
type fuzzFixture struct {
	doc     []byte
	g       *federation.Genesis
	signers map[string]*federation.Signer // statement keys, by org
	cpKeys  map[string]note.Signer        // checkpoint keys, by node ID

	// cmds are the commands after the genesis, in ledger order; state
	// holds the ledger after all of them.
	cmds  [][]byte
	state *federation.State

	// Everything signed, applied or not.
	contribs []*hashfedv1.Contribution
	stmts    []*federation.Statement
	acts     []*federation.Act
	actEnvs  [][]byte
	cps      []ledger.Checkpoint
	cpNotes  [][]byte
}

const fuzzIssuedAt = "2025-01-02T03:04:05Z"

// The fixture's keys and certificates derive from fixed seeds, so that
// they are the same in every process: the fuzzing coordinator makes the
// seed corpus (f.Add) and its worker processes run it, each building its
// own fixture. With fresh random keys, no signed seed would verify in a
// worker, and the fuzzer would never get past the signatures.

// fixed derives the fixture's keys (see package fixedkeys).
var fixed = fixedkeys.Deriver("hashfed fuzz fixture ")

// fixedSigner returns org's statement signer and its PEM public key; label
// tells apart several keys of one org.
func fixedSigner(tb testing.TB, org, label string) (*federation.Signer, string) {
	tb.Helper()
	key := fixed.Key("statement " + org + " " + label)
	s, err := federation.NewSigner(org, key)
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(key.Public())
	if err != nil {
		tb.Fatal(err)
	}
	return s, string(pub)
}

// newFuzzFixture builds the fixture's federation: ngo (publisher,
// operator) and iwf (publisher, operator) each run one voting node; techco
// subscribes. The ledger after the genesis holds
//
//	1 ngo adds three signals to ngo/csam
//	2 iwf adds one signal to iwf/list
//	3 ngo relabels one of its signals
//	4 techco gives feedback on it
//	5 ngo retracts another
//	6 a governance act creates the set iwf/new
//
// and a checkpoint of those 7 entries cosigned by both nodes. Further acts
// (one of each other kind, each valid against the genesis registry) and a
// checkpoint of the genesis entry alone are signed but not applied.
func newFuzzFixture(tb testing.TB) *fuzzFixture {
	tb.Helper()
	fx := &fuzzFixture{signers: map[string]*federation.Signer{}, cpKeys: map[string]note.Signer{}}
	g := &federation.Genesis{Version: federation.GenesisVersion, Federation: testFed}
	for _, o := range []struct {
		name  string
		roles []federation.Role
	}{
		{"ngo", []federation.Role{federation.RolePublisher, federation.RoleOperator}},
		{"iwf", []federation.Role{federation.RolePublisher, federation.RoleOperator}},
		{"techco", []federation.Role{federation.RoleSubscriber}},
	} {
		var pub string
		fx.signers[o.name], pub = fixedSigner(tb, o.name, "")
		g.Orgs = append(g.Orgs, federation.Org{Name: o.name, Roles: o.roles, CACert: fixed.MustCACert(tb, o.name, "ca "+o.name+" "), SigningKey: pub})
	}
	for i, org := range []string{"ngo", "iwf"} {
		id := org + "-1"
		var vkey string
		fx.cpKeys[id], vkey = fixed.MustNoteKey(tb, federation.CheckpointKeyName(testFed, id), "note "+federation.CheckpointKeyName(testFed, id))
		g.Nodes = append(g.Nodes, federation.Node{
			ID: id, Org: org, Voter: true, CheckpointKey: vkey,
			RaftAddress: "127.0.0.1:720" + string(rune('0'+i)), APIAddress: "127.0.0.1:820" + string(rune('0'+i)),
		})
	}
	g.Sets = []federation.Set{
		{Name: "ngo/csam", Types: federation.SignalTypes, Readers: []string{"techco"}},
		{Name: "iwf/list", Types: []federation.SignalType{federation.MD5, federation.PDQ}, Readers: []string{}},
	}
	var err error
	if fx.doc, err = g.Marshal(); err != nil {
		tb.Fatal(err)
	}
	if fx.g, err = federation.ParseGenesis(fx.doc); err != nil {
		tb.Fatal(err)
	}
	signers := fx.signers
	fx.state = newStartedState(tb, fx.doc)

	for i, c := range []struct {
		org, set string
		seq      uint64
		ch       federation.Change
	}{
		{"ngo", "ngo/csam", 1, federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{
			sig(federation.MD5, md5Hex(1), "A1"), sig(federation.PDQ, pdqHex(2), "B1", "x"), sig(federation.PhotoDNA, photoDNA(3)),
		}}},
		{"iwf", "iwf/list", 1, federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(4), "A2")}}},
		{"ngo", "ngo/csam", 2, federation.Change{Op: federation.OpRelabel, Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1), "A2")}, Reason: "reviewed"}},
		{"techco", "ngo/csam", 1, federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictFalsePositive, Signals: []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1))}}},
		{"ngo", "ngo/csam", 3, federation.Change{Op: federation.OpRetract, Reason: "mistake", Signals: []*hashfedv1.Signal{sig(federation.PDQ, pdqHex(2))}}},
	} {
		contrib, st, err := federation.BuildChange(signers[c.org], testFed, c.set, c.seq, c.ch, fuzzIssuedAt)
		if err != nil {
			tb.Fatal(err)
		}
		fx.contribs = append(fx.contribs, contrib)
		fx.stmts = append(fx.stmts, st)
		fx.apply(tb, contributionCmd(tb, contrib, int64(10+i)), int64(i+1))
	}

	both := []*federation.Signer{signers["ngo"], signers["iwf"]}
	fx.apply(tb, fx.act(tb, &federation.Act{Federation: testFed, Sequence: 1, Kind: federation.ActCreateSet,
		Set: &federation.Set{Name: "iwf/new", Types: []federation.SignalType{federation.MD5}, Readers: []string{"techco"}}}, both...), 6)
	if size := fx.state.Size(); size != 7 {
		tb.Fatalf("fixture ledger holds %d entries, want 7", size)
	}

	// Acts of every other kind, valid against the genesis registry.
	_, newPub := fixedSigner(tb, "iwf", "rotated")
	admitted := *g.Org("techco")
	admitted.Name = "neworg"
	admitted.CACert = fixed.MustCACert(tb, "neworg", "ca neworg ")
	_, admitted.SigningKey = fixedSigner(tb, "neworg", "")
	for _, a := range []*federation.Act{
		{Kind: federation.ActAdmitOrg, Org: &admitted},
		{Kind: federation.ActRemoveOrg, Name: "techco", Reason: "left"},
		{Kind: federation.ActRotateSigningKey, Name: "iwf", SigningKey: newPub},
		{Kind: federation.ActRotateCA, Name: "iwf", CACert: fixed.MustCACert(tb, "iwf", "ca iwf rotated")},
		{Kind: federation.ActSetReaders, Name: "ngo/csam", Readers: []string{"techco", "iwf"}},
	} {
		a.Federation, a.Sequence = testFed, 1
		fx.act(tb, a, both...)
	}

	fx.apply(tb, fx.checkpoint(tb, 7, "ngo-1", "iwf-1"), -1)
	fx.checkpoint(tb, 1, "ngo-1", "iwf-1")
	fx.checkpoint(tb, 7, "iwf-1")
	return fx
}

// apply applies cmd to the fixture's state, appends it to fx.cmds and
// fails tb unless it lands at index want (-1: a checkpoint, no entry).
func (fx *fuzzFixture) apply(tb testing.TB, cmd []byte, want int64) {
	tb.Helper()
	if want >= 0 {
		mustApply(tb, fx.state, cmd, want)
	} else if r := apply(tb, fx.state, cmd); r.Code != 0 {
		tb.Fatalf("fixture command rejected: %+v", r)
	}
	fx.cmds = append(fx.cmds, cmd)
}

// act signs a with signers, records it and returns its command.
func (fx *fuzzFixture) act(tb testing.TB, a *federation.Act, signers ...*federation.Signer) []byte {
	tb.Helper()
	env, err := federation.ProposeAct(a)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range signers {
		if env, err = federation.SignAct(env, s); err != nil {
			tb.Fatal(err)
		}
	}
	fx.acts = append(fx.acts, a)
	fx.actEnvs = append(fx.actEnvs, env)
	return marshalCmd(tb, &hashfedv1.Command{Op: &hashfedv1.Command_Governance{Governance: env}})
}

// checkpoint signs the checkpoint of the fixture ledger's first size
// entries with the named nodes' keys, records it and returns its command.
func (fx *fuzzFixture) checkpoint(tb testing.TB, size int64, nodes ...string) []byte {
	tb.Helper()
	cp, err := fx.state.RootAt(size)
	if err != nil {
		tb.Fatal(err)
	}
	var ss []note.Signer
	for _, id := range nodes {
		ss = append(ss, fx.cpKeys[id])
	}
	signed, err := ledger.SignCheckpoint(cp, ss...)
	if err != nil {
		tb.Fatal(err)
	}
	fx.cps = append(fx.cps, cp)
	fx.cpNotes = append(fx.cpNotes, signed)
	return marshalCmd(tb, &hashfedv1.Command{Op: &hashfedv1.Command_Checkpoint{Checkpoint: signed}})
}

// leaf returns entry i of the fixture ledger.
func (fx *fuzzFixture) leaf(tb testing.TB, i int64) []byte {
	tb.Helper()
	leaves, err := fx.state.Entries(i, i+1)
	if err != nil {
		tb.Fatal(err)
	}
	return leaves[0]
}

// stateAfter returns a new in-memory state holding the genesis entry and
// the first n of the fixture's commands.
func (fx *fuzzFixture) stateAfter(tb testing.TB, n int) *federation.State {
	tb.Helper()
	s := newStartedState(tb, fx.doc)
	for _, cmd := range fx.cmds[:n] {
		if r := apply(tb, s, cmd); r.Code != 0 {
			tb.Fatalf("fixture command rejected on replay: %+v", r)
		}
	}
	return s
}

// signedStatement returns the index of st among the statements the fixture
// signed, or -1.
func (fx *fuzzFixture) signedStatement(st *federation.Statement) int {
	return slices.IndexFunc(fx.stmts, func(s *federation.Statement) bool { return reflect.DeepEqual(s, st) })
}

// signedAct reports whether the fixture signed a.
func (fx *fuzzFixture) signedAct(a *federation.Act) bool {
	return slices.ContainsFunc(fx.acts, func(b *federation.Act) bool { return reflect.DeepEqual(a, b) })
}

// A stateView is what a rejected command must leave unchanged.
type stateView struct {
	size       int64
	root       tlog.Hash
	checkpoint []byte
	applied    uint64
}

func viewOf(tb testing.TB, s *federation.State) stateView {
	tb.Helper()
	cp, err := s.Checkpoint()
	if err != nil {
		tb.Fatal(err)
	}
	signed, _ := s.LatestCheckpoint()
	return stateView{size: cp.Size, root: cp.Hash, checkpoint: signed, applied: s.AppliedIndex()}
}

// checkChange checks s after a command or leaf was applied to the state
// that before describes: unchanged if it was rejected; otherwise holding one
// more entry whose statement (with its payload) or act the fixture signed,
// or a checkpoint the fixture signed.
func (fx *fuzzFixture) checkChange(t *testing.T, s *federation.State, before stateView, accepted bool) {
	t.Helper()
	after := viewOf(t, s)
	if !accepted {
		after.applied = before.applied
		if !reflect.DeepEqual(after, before) {
			t.Fatalf("a rejected input changed the state:\nbefore %+v\nafter  %+v", before, after)
		}
		return
	}
	switch {
	case after.size == before.size+1:
		leaves, err := s.Entries(before.size, after.size)
		if err != nil {
			t.Fatal(err)
		}
		e, st, err := federation.DecodeEntry(leaves[0])
		if err != nil {
			t.Fatalf("the state appended an entry that does not decode: %v", err)
		}
		switch {
		case st != nil:
			i := fx.signedStatement(st)
			if i < 0 {
				t.Fatalf("the state accepted a statement nobody signed: %+v", st)
			}
			if p := s.Payload(before.size); !bytes.Equal(p, fx.contribs[i].Payload) {
				t.Fatalf("the state accepted statement %+v with payload %x, not the signed %x", st, p, fx.contribs[i].Payload)
			}
		case e.GetGovernance() != nil:
			a, err := federation.PeekAct(e.GetGovernance().GetEnvelope())
			if err != nil || !fx.signedAct(a) {
				t.Fatalf("the state accepted an act nobody signed: %+v, %v", a, err)
			}
		default:
			t.Fatalf("the state appended an entry of another kind: %v", e)
		}
	case after.size == before.size && !bytes.Equal(after.checkpoint, before.checkpoint):
		cp, _, err := fx.g.OpenCosigned(after.checkpoint)
		if err != nil || !slices.Contains(fx.cps, cp) {
			t.Fatalf("the state published a checkpoint nobody signed: %+v, %v", cp, err)
		}
	default:
		t.Fatalf("an accepted input changed the state from %+v to %+v", before, after)
	}
}

// FuzzApplyCommand applies a fuzzed Raft command after the first prefix
// commands of the fixture ledger. It is the full check of a contribution
// (envelope, signature, statement, payload, set state), of a governance
// act and of a cosigned checkpoint, as every node runs it.
func FuzzApplyCommand(f *testing.F) {
	fx := newFuzzFixture(f)
	for i, cmd := range fx.cmds {
		f.Add(uint8(i), cmd)
	}
	for _, env := range fx.actEnvs {
		f.Add(uint8(0), marshalCmd(f, &hashfedv1.Command{Op: &hashfedv1.Command_Governance{Governance: env}}))
	}
	f.Add(uint8(0), marshalCmd(f, &hashfedv1.Command{Op: &hashfedv1.Command_Checkpoint{Checkpoint: fx.cpNotes[1]}}))
	f.Add(uint8(0), genesisCmd(f, fx.doc, 1))
	f.Fuzz(func(t *testing.T, prefix uint8, cmd []byte) {
		s := fx.stateAfter(t, int(prefix)%(len(fx.cmds)+1))
		defer s.Close()
		before := viewOf(t, s)
		r, err := federation.DecodeResult(s.Apply(before.applied+1, cmd))
		if err != nil {
			t.Fatalf("Apply returned a result that does not decode: %v", err)
		}
		if s.AppliedIndex() != before.applied+1 {
			t.Fatalf("Apply did not record index %d (applied: %d)", before.applied+1, s.AppliedIndex())
		}
		fx.checkChange(t, s, before, r.Code == 0)
	})
}

// FuzzApplyLeaf applies a fuzzed ledger entry and payload, as a
// subscriber's mirror does with what a node serves, after the first prefix
// commands of the fixture ledger.
func FuzzApplyLeaf(f *testing.F) {
	fx := newFuzzFixture(f)
	for i := int64(1); i < fx.state.Size(); i++ {
		f.Add(uint8(i-1), fx.leaf(f, i), fx.state.Payload(i))
	}
	f.Add(uint8(0), fx.leaf(f, 0), []byte(nil))
	f.Fuzz(func(t *testing.T, prefix uint8, leaf, payload []byte) {
		s := fx.stateAfter(t, int(prefix)%(len(fx.cmds)+1))
		defer s.Close()
		before := viewOf(t, s)
		err := s.ApplyLeaf(leaf, payload)
		fx.checkChange(t, s, before, err == nil)
		if err == nil {
			got, err := s.Entries(before.size, before.size+1)
			if err != nil || !bytes.Equal(got[0], leaf) {
				t.Fatalf("ApplyLeaf accepted a leaf but stored %x, %v", got, err)
			}
		}
	})
}

// FuzzRestore restores fuzzed Raft snapshots into a state holding the
// genesis entry. A snapshot that is refused must leave the state as it was,
// and still usable.
func FuzzRestore(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, s := range []*federation.State{fx.state, fx.stateAfter(f, 0)} {
		write, err := s.Snapshot()
		if err != nil {
			f.Fatal(err)
		}
		var b bytes.Buffer
		if err := write(&b); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, snap []byte) {
		s := fx.stateAfter(t, 0)
		defer s.Close()
		before := viewOf(t, s)
		if err := s.Restore(1000, bytes.NewReader(snap)); err == nil {
			if _, err := s.Checkpoint(); err != nil {
				t.Fatalf("a restored state has no checkpoint: %v", err)
			}
			return
		}
		after := viewOf(t, s)
		if after.size != before.size || after.root != before.root || !bytes.Equal(after.checkpoint, before.checkpoint) {
			t.Fatalf("a refused snapshot changed the state from %+v to %+v", before, after)
		}
		if r := apply(t, s, fx.cmds[0]); r.Code != 0 {
			t.Fatalf("the state refuses the next command after refusing a snapshot: %+v", r)
		}
	})
}

// signalKeyOf is a signal's key in the state's order (its wire type, then
// the decoded hash), which page tokens encode in hex.
func signalKeyOf(t *testing.T, ss *federation.SignalState) []byte {
	t.Helper()
	var raw []byte
	var err error
	if ss.Type == federation.PhotoDNA {
		raw, err = base64.StdEncoding.DecodeString(ss.Value)
	} else {
		raw, err = hex.DecodeString(ss.Value)
	}
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte{byte(ss.Type.Proto())}, raw...)
}

// FuzzListSignals lists a set's signals from a fuzzed page token, page by
// page: an accepted token must yield exactly the signals after it, each
// once, in order.
func FuzzListSignals(f *testing.F) {
	fx := newFuzzFixture(f)
	f.Add(false, "", uint8(0))
	f.Add(false, "", uint8(1))
	f.Add(false, "01", uint8(1))
	f.Add(true, "01"+md5Hex(4), uint8(0))
	f.Add(false, "zz", uint8(3))
	f.Fuzz(func(t *testing.T, iwf bool, after string, limit uint8) {
		set := "ngo/csam"
		if iwf {
			set = "iwf/list"
		}
		var all []*federation.SignalState
		if _, err := fx.state.ListSignals(set, "", 0, 0, func(ss *federation.SignalState) error {
			all = append(all, ss)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		start, err := hex.DecodeString(after)
		var want []*federation.SignalState
		for _, ss := range all {
			if bytes.Compare(signalKeyOf(t, ss), start) > 0 || after == "" {
				want = append(want, ss)
			}
		}
		var got []*federation.SignalState
		token := after
		for page := 0; ; page++ {
			if page > len(all)+1 {
				t.Fatalf("listing %s from %q with limit %d does not end", set, after, limit)
			}
			next, lerr := fx.state.ListSignals(set, token, int(limit), 0, func(ss *federation.SignalState) error {
				got = append(got, ss)
				return nil
			})
			if lerr != nil {
				if page == 0 && err != nil {
					return // a token that is not hex is refused
				}
				t.Fatalf("ListSignals(%s, %q): %v", set, token, lerr)
			}
			if page == 0 && err != nil {
				t.Fatalf("ListSignals accepted page token %q, which is not hex", after)
			}
			if next == "" {
				break
			}
			token = next
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("listing %s after %q with limit %d returned %d signals, want %d", set, after, limit, len(got), len(want))
		}
	})
}
