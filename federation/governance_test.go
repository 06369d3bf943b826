package federation_test

import (
	"bytes"
	"crypto"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func actCmd(t *testing.T, env []byte) []byte {
	t.Helper()
	return marshalCmd(t, &hashfedv1.Command{Op: &hashfedv1.Command_Governance{Governance: env}})
}

// signedAct proposes a and signs it with each named org's statement key.
func signedAct(t *testing.T, a *federation.Act, signers map[string]*federation.Signer, orgs ...string) []byte {
	t.Helper()
	env, err := federation.ProposeAct(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range orgs {
		if env, err = federation.SignAct(env, signers[o]); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

func TestGovernance(t *testing.T) {
	doc, signers, _ := twoVoterGenesis(t) // operators: ngo and iwf; threshold 2
	s := newStartedState(t, doc)
	contribute := func(org, set string, seq uint64, i int, signer *federation.Signer) *federation.Result {
		c, _, err := federation.BuildContribution(signer, testFed, set, seq, []*hashfedv1.Signal{sig(federation.MD5, md5Hex(i))}, "")
		if err != nil {
			t.Fatal(err)
		}
		return apply(t, s, contributionCmd(t, c, 1))
	}
	if r := contribute("iwf", "iwf/list", 1, 1, signers["iwf"]); r.Code != 0 {
		t.Fatalf("iwf's first contribution: %+v", r)
	}

	newPriv, newPub, err := federation.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	newNgo := signerFromPEM(t, "ngo", newPriv)
	rotate := &federation.Act{Federation: testFed, Sequence: 1, Kind: federation.ActRotateSigningKey, Name: "ngo", SigningKey: string(newPub)}

	rejects := []struct {
		name string
		env  []byte
		code federation.Code
		msg  string
	}{
		{"one operator of two", signedAct(t, rotate, signers, "ngo"), federation.CodePermissionDenied, "signed by 1 operator org(s) [ngo], 2 of [iwf ngo] required"},
		{"a non-operator's signature does not count", signedAct(t, rotate, signers, "ngo", "techco"), federation.CodePermissionDenied, "2 of [iwf ngo] required"},
		{"skips a sequence number", signedAct(t, &federation.Act{Federation: testFed, Sequence: 2, Kind: federation.ActRotateSigningKey, Name: "ngo", SigningKey: string(newPub)}, signers, "ngo", "iwf"), federation.CodeFailedPrecondition, "the next must be 1"},
		{"another federation", signedAct(t, &federation.Act{Federation: "elsewhere", Sequence: 1, Kind: federation.ActRemoveOrg, Name: "techco"}, signers, "ngo", "iwf"), federation.CodeInvalid, "for federation"},
		{"unknown kind", signedAct(t, &federation.Act{Federation: testFed, Sequence: 1, Kind: "dissolve"}, signers, "ngo", "iwf"), federation.CodeInvalid, "unknown act kind"},
		{"removing a stranger", signedAct(t, &federation.Act{Federation: testFed, Sequence: 1, Kind: federation.ActRemoveOrg, Name: "nobody"}, signers, "ngo", "iwf"), federation.CodeNotFound, "not a member"},
		{"readers that may not read", signedAct(t, &federation.Act{Federation: testFed, Sequence: 1, Kind: federation.ActSetReaders, Name: "ngo/csam", Readers: []string{"nobody"}}, signers, "ngo", "iwf"), federation.CodeNotFound, "not a member"},
		{"garbage", []byte("{"), federation.CodeInvalid, "not DSSE JSON"},
	}
	before := s.Size()
	for _, r := range rejects {
		res := apply(t, s, actCmd(t, r.env))
		if res.Code != r.code || !strings.Contains(res.Msg, r.msg) {
			t.Errorf("%s: got %v %q, want %v containing %q", r.name, res.Code, res.Msg, r.code, r.msg)
		}
		if s.Size() != before || s.Registry().NextAct != 1 {
			t.Fatalf("%s: a rejected act changed the ledger or the registry", r.name)
		}
	}

	// Rotation: statements signed with the old key after it are refused; the
	// new key works; the old key still verifies what it signed before.
	okEnv := signedAct(t, rotate, signers, "iwf", "ngo")
	res := apply(t, s, actCmd(t, okEnv))
	if res.Code != 0 {
		t.Fatalf("rotation: %+v", res)
	}
	rotatedAt := res.Index
	if r := apply(t, s, actCmd(t, okEnv)); r.Code != federation.CodeAlreadyExists {
		t.Errorf("replayed act: %+v, want AlreadyExists", r)
	}
	if r := contribute("ngo", "ngo/csam", 1, 2, signers["ngo"]); r.Code != federation.CodeInvalid || !strings.Contains(r.Msg, "does not verify") {
		t.Errorf("statement with the rotated-out key: %+v", r)
	}
	if r := contribute("ngo", "ngo/csam", 1, 2, newNgo); r.Code != 0 {
		t.Errorf("statement with the new key: %+v", r)
	}
	reg := s.Registry()
	if k, err := reg.KeyAt("ngo", rotatedAt); err != nil || !samePub(t, k, signers["ngo"]) {
		t.Errorf("the key valid at the rotation entry itself should be the old one (err %v)", err)
	}
	if k, err := reg.KeyAt("ngo", rotatedAt+1); err != nil || samePub(t, k, signers["ngo"]) {
		t.Errorf("the key valid after the rotation should be the new one (err %v)", err)
	}

	// Removal: the removed org's later contributions are refused, its
	// earlier ones still have a key.
	rm := apply(t, s, actCmd(t, signedAct(t, &federation.Act{Federation: testFed, Sequence: 2, Kind: federation.ActRemoveOrg, Name: "iwf", Reason: "left"}, map[string]*federation.Signer{"iwf": signers["iwf"], "ngo": newNgo}, "iwf", "ngo")))
	if rm.Code != 0 {
		t.Fatalf("removal: %+v", rm)
	}
	if r := contribute("iwf", "iwf/list", 2, 3, signers["iwf"]); r.Code != federation.CodePermissionDenied || !strings.Contains(r.Msg, "was removed") {
		t.Errorf("removed org contributing: %+v", r)
	}
	if _, err := s.Registry().KeyAt("iwf", 1); err != nil {
		t.Errorf("the removed org's earlier statement has no key: %v", err)
	}
	if s.Member("iwf") != nil {
		t.Error("a removed org is still a member")
	}
	// Only ngo operates now: one signature is a majority, and the last
	// operator cannot be removed.
	if r := apply(t, s, actCmd(t, signedAct(t, &federation.Act{Federation: testFed, Sequence: 3, Kind: federation.ActRemoveOrg, Name: "ngo"}, map[string]*federation.Signer{"ngo": newNgo}, "ngo"))); r.Code != federation.CodeFailedPrecondition {
		t.Errorf("removing the last operator: %+v", r)
	}
	cs := apply(t, s, actCmd(t, signedAct(t, &federation.Act{Federation: testFed, Sequence: 3, Kind: federation.ActCreateSet, Set: &federation.Set{Name: "ngo/new", Types: []federation.SignalType{federation.PDQ}}}, map[string]*federation.Signer{"ngo": newNgo}, "ngo")))
	if cs.Code != 0 || !s.HasSet("ngo/new") || s.CanRead("techco", "ngo/new") {
		t.Fatalf("create-set: %+v", cs)
	}
	sr := apply(t, s, actCmd(t, signedAct(t, &federation.Act{Federation: testFed, Sequence: 4, Kind: federation.ActSetReaders, Name: "ngo/new", Readers: []string{"techco"}}, map[string]*federation.Signer{"ngo": newNgo}, "ngo")))
	if sr.Code != 0 || !s.CanRead("techco", "ngo/new") {
		t.Fatalf("set-readers: %+v", sr)
	}

	// A snapshot restores the same registry.
	write, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	r, _ := federation.NewState(doc)
	if err := r.Restore(1000, &b); err != nil {
		t.Fatal(err)
	}
	if got, want := r.Registry(), s.Registry(); got.NextAct != want.NextAct || r.Member("iwf") != nil || !r.CanRead("techco", "ngo/new") {
		t.Errorf("restored registry differs: next act %d, want %d", got.NextAct, want.NextAct)
	}
}

func FuzzPeekAct(f *testing.F) {
	env, _ := federation.ProposeAct(&federation.Act{Federation: "f", Sequence: 1, Kind: federation.ActRemoveOrg, Name: "x"})
	f.Add(env)
	f.Add([]byte(`{"payloadType":"application/vnd.hashfed.governance.v1+json","payload":"e30=","signatures":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := federation.PeekAct(b)
		if err != nil {
			return
		}
		again, err := federation.ProposeAct(a)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := federation.PeekAct(again); err != nil {
			t.Fatalf("a parsed act does not survive re-encoding: %v", err)
		}
	})
}

func signerFromPEM(t *testing.T, org string, priv []byte) *federation.Signer {
	t.Helper()
	path := filepath.Join(t.TempDir(), org+".key")
	if err := os.WriteFile(path, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := federation.LoadSigner(org, path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// samePub reports whether k is s's public key.
func samePub(t *testing.T, k crypto.PublicKey, s *federation.Signer) bool {
	t.Helper()
	env, err := s.SignStatement(&federation.Statement{Org: s.Org, Sequence: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = federation.OpenStatement(env, k)
	return err == nil
}
