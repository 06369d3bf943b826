package federation_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"

	"github.com/hashfed/hashfed/federation"
)

// FuzzCheckAct checks fuzzed governance act envelopes against the
// registry the fixture's genesis founds. The operators' keys are the fuzz
// target's, so an act that passes must be one the fixture signed, approved
// by a threshold of operators; checking must not change the registry, and
// the act must apply.
func FuzzCheckAct(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, env := range fx.actEnvs {
		f.Add(env, int64(1))
	}
	f.Add(fx.actEnvs[0], int64(0))
	ngoOnly, err := federation.SignAct(must(federation.ProposeAct(fx.acts[1])), fx.signers["ngo"])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ngoOnly, int64(3))
	reg := federation.NewRegistry(fx.g)
	regJSON, err := json.Marshal(reg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, env []byte, index int64) {
		if index < 0 {
			index = -index
		}
		a, signers, err := reg.CheckAct(testFed, env, index)
		if after, _ := json.Marshal(reg); string(after) != string(regJSON) {
			t.Fatal("CheckAct changed the registry")
		}
		if err != nil {
			if a != nil {
				t.Fatal("CheckAct failed but returned an act")
			}
			return
		}
		if !fx.signedAct(a) {
			t.Fatalf("CheckAct accepted an act nobody signed: %+v", a)
		}
		if len(signers) < reg.ActThreshold() || !slices.IsSorted(signers) {
			t.Fatalf("CheckAct accepted an act signed by %v, %d required", signers, reg.ActThreshold())
		}
		for _, s := range signers {
			if !slices.Contains(reg.Operators(), s) {
				t.Fatalf("CheckAct counts %q, not an operator org", s)
			}
		}
		if peeked, err := federation.PeekAct(env); err != nil || !reflect.DeepEqual(peeked, a) {
			t.Fatalf("CheckAct's act %+v differs from PeekAct's %+v, %v", a, peeked, err)
		}
		if err := reg.Clone().ApplyAct(a, index); err != nil {
			t.Fatalf("an act CheckAct accepted does not apply: %v", err)
		}
	})
}

// FuzzSignAct adds an operator's signature to fuzzed act envelopes, as
// 'hashfed gov sign' does: the act must not change, the signatures already
// there must stay, and the new one must verify.
func FuzzSignAct(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, a := range fx.acts {
		f.Add(must(federation.ProposeAct(a)))
	}
	f.Add(fx.actEnvs[0])
	reg := federation.NewRegistry(fx.g)
	f.Fuzz(func(t *testing.T, env []byte) {
		before, perr := federation.PeekAct(env)
		signedBefore := reg.ActSigners(env, 1)
		out, err := federation.SignAct(env, fx.signers["iwf"])
		if err != nil || perr != nil {
			return
		}
		after, err := federation.PeekAct(out)
		if err != nil || !reflect.DeepEqual(after, before) {
			t.Fatalf("SignAct changed the act from %+v to %+v, %v", before, after, err)
		}
		signedAfter := reg.ActSigners(out, 1)
		if !slices.Contains(signedAfter, "iwf") {
			t.Fatalf("SignAct's signature does not verify: signed by %v", signedAfter)
		}
		for _, o := range signedBefore {
			if !slices.Contains(signedAfter, o) {
				t.Fatalf("SignAct dropped %q's signature: %v, then %v", o, signedBefore, signedAfter)
			}
		}
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
