package federation_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// FuzzOpenStatement verifies fuzzed DSSE envelopes with an Ed25519 and an
// ECDSA P-256 org key. Only the fuzz target signs, so an envelope that
// verifies must carry one of the statements it signed, whatever else in
// the envelope changed.
func FuzzOpenStatement(f *testing.F) {
	fx := newFuzzFixture(f)
	ngo, err := fx.state.Registry().KeyAt("ngo", 1)
	if err != nil {
		f.Fatal(err)
	}
	d := sha256.Sum256([]byte("hashfed fuzz fixture p256"))
	p256, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:]) // the same in every process
	if err != nil {
		f.Fatal(err)
	}
	ecSigner, err := federation.NewSigner("ngo", p256)
	if err != nil {
		f.Fatal(err)
	}
	signed := slices.Clone(fx.stmts)
	for i, st := range fx.stmts {
		if st.Org != "ngo" {
			continue
		}
		f.Add(false, fx.contribs[i].Envelope)
		env, err := ecSigner.SignStatement(st)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(true, env)
	}
	f.Add(false, editEnvelope(f, fx.contribs[0].Envelope, func(e *dsseEnvelope) { e.Signatures = append(e.Signatures, e.Signatures...) }))
	f.Add(false, editEnvelope(f, fx.contribs[0].Envelope, func(e *dsseEnvelope) { e.Signatures[0].KeyID = "other" }))
	f.Fuzz(func(t *testing.T, ecdsaKey bool, env []byte) {
		key := ngo
		if ecdsaKey {
			key = p256.Public()
		}
		st, err := federation.OpenStatement(env, key)
		if err != nil {
			return
		}
		if !slices.ContainsFunc(signed, func(s *federation.Statement) bool { return reflect.DeepEqual(s, st) }) {
			t.Fatalf("OpenStatement accepted a statement nobody signed: %+v", st)
		}
	})
}

// FuzzCheckPayload checks fuzzed payloads against fuzzed statements whose
// digest is the payload's (so that the fuzzer gets past it). A payload
// CheckPayload accepts must hold what the statement says: its count,
// types and labels, each signal valid and named once; and it must be a
// change that BuildChange would sign.
func FuzzCheckPayload(f *testing.F) {
	fx := newFuzzFixture(f)
	for i, st := range fx.stmts {
		b, err := json.Marshal(st)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, fx.contribs[i].Payload)
	}
	f.Add([]byte(`{"op":"add","count":1,"types":["md5"]}`), marshalPayload(f, sig(federation.MD5, md5Hex(9), "b", "a")))
	f.Fuzz(func(t *testing.T, stJSON, payload []byte) {
		var st federation.Statement
		if json.Unmarshal(stJSON, &st) != nil {
			return
		}
		sum := sha256.Sum256(payload)
		st.PayloadSHA256 = hex.EncodeToString(sum[:])
		p, err := federation.CheckPayload(&st, payload)
		if err != nil {
			return
		}
		if len(p.GetSignals()) != st.Count {
			t.Fatalf("accepted %d signals, the statement says %d", len(p.GetSignals()), st.Count)
		}
		seen := map[string]bool{}
		types, labels := map[string]bool{}, map[string]bool{}
		for i, s := range p.GetSignals() {
			if err := federation.ValidateSignal(s); err != nil {
				t.Fatalf("accepted signal %d, which fails ValidateSignal: %v", i, err)
			}
			k := s.GetType().String() + ":" + s.GetValue()
			if seen[k] {
				t.Fatalf("accepted signal %d twice", i)
			}
			seen[k] = true
			typ, _ := federation.SignalTypeFromProto(s.GetType())
			types[string(typ)] = true
			for _, l := range s.GetLabels() {
				labels[l] = true
			}
		}
		if want := slices.Sorted(maps.Keys(types)); !slices.Equal(want, st.Types) {
			t.Fatalf("accepted signals of types %v, the statement says %v", want, st.Types)
		}
		if want := slices.Sorted(maps.Keys(labels)); !slices.Equal(want, st.Labels) {
			t.Fatalf("accepted signals with labels %q, the statement lists %q", want, st.Labels)
		}
		// Decoding is a function of the bytes: a second decode agrees.
		var again hashfedv1.Payload
		if err := proto.Unmarshal(payload, &again); err != nil || !proto.Equal(&again, p) {
			t.Fatalf("payload decodes differently the second time: %v", err)
		}
		// What a node accepts, a publisher can sign: BuildChange makes the
		// same statement from the same change.
		signer := *fx.signers["ngo"]
		signer.Org = st.Org
		_, built, err := federation.BuildChange(&signer, st.Federation, st.Set, st.Sequence,
			federation.Change{Op: st.Op, Verdict: st.Verdict, Reason: p.GetReason(), Signals: p.GetSignals()}, st.IssuedAt)
		if err != nil {
			if built != nil {
				t.Fatal("BuildChange failed but returned a statement")
			}
			return // a statement too large to sign
		}
		if built.Count != st.Count || !slices.Equal(built.Types, st.Types) || !slices.Equal(built.Labels, st.Labels) {
			t.Fatalf("BuildChange of an accepted change says count %d, types %v, labels %v; the statement said %d, %v, %v",
				built.Count, built.Types, built.Labels, st.Count, st.Types, st.Labels)
		}
	})
}

// FuzzDecodeEntry decodes fuzzed ledger leaves, as receipts and audits
// do: an entry that decodes has a kind, a statement exactly when it is a
// statement entry, and survives re-encoding.
func FuzzDecodeEntry(f *testing.F) {
	fx := newFuzzFixture(f)
	for i := int64(0); i < fx.state.Size(); i++ {
		f.Add(fx.leaf(f, i))
	}
	f.Fuzz(func(t *testing.T, leaf []byte) {
		e, st, err := federation.DecodeEntry(leaf)
		if err != nil {
			if e != nil || st != nil {
				t.Fatal("DecodeEntry failed but returned an entry")
			}
			return
		}
		if (st != nil) != (e.GetStatement() != nil) {
			t.Fatalf("DecodeEntry returned statement %v for entry %v", st, e)
		}
		if e.GetStatement() == nil && e.GetGenesis() == nil && e.GetGovernance() == nil {
			t.Fatalf("DecodeEntry accepted an entry of no kind: %v", e)
		}
		if st != nil {
			if peeked, err := federation.PeekStatement(e.GetStatement().GetEnvelope()); err != nil || !reflect.DeepEqual(peeked, st) {
				t.Fatalf("DecodeEntry's statement %+v differs from PeekStatement's %+v, %v", st, peeked, err)
			}
		}
		canon, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		e2, st2, err := federation.DecodeEntry(canon)
		if err != nil || !proto.Equal(e, e2) || !reflect.DeepEqual(st, st2) {
			t.Fatalf("an entry does not survive re-encoding: %v", err)
		}
	})
}

// FuzzOpenCosigned opens fuzzed cosigned checkpoints against the
// fixture's genesis: whatever verifies must be a checkpoint a node signed,
// credited only to the orgs whose nodes signed that body.
func FuzzOpenCosigned(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, n := range fx.cpNotes {
		f.Add(n)
	}
	// A note with an extra signature line by an unknown key.
	f.Add(append(slices.Clone(fx.cpNotes[0]), []byte("— witness.example AAAAAQ==\n")...))
	f.Fuzz(func(t *testing.T, signed []byte) {
		cp, orgs, err := fx.g.OpenCosigned(signed)
		if err != nil {
			return
		}
		if !slices.Contains(fx.cps, cp) {
			t.Fatalf("OpenCosigned accepted a checkpoint nobody signed: %+v", cp)
		}
		// Which orgs signed this checkpoint's body?
		may := map[string]bool{}
		for i, n := range fx.cpNotes {
			if fx.cps[i] == cp {
				for _, o := range []string{"ngo", "iwf"} {
					if bytes.Contains(n, []byte("— "+testFed+"/"+o+"-1 ")) {
						may[o] = true
					}
				}
			}
		}
		for _, o := range orgs {
			if !may[o] {
				t.Fatalf("OpenCosigned credits org %q, whose node never signed %+v", o, cp)
			}
		}
		if len(orgs) == 0 {
			t.Fatal("OpenCosigned accepted a checkpoint signed by no voting org")
		}
	})
}
