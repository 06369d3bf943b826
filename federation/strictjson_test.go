package federation_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// ambiguousRewrites are rewrites of a canonical JSON object that
// encoding/json alone would still decode, each to a value a second parser
// could read differently (or that is not the bytes that were meant).
var ambiguousRewrites = []struct {
	name, msg string
	edit      func(b []byte) []byte
}{
	{"duplicate key (Go keeps the last)", "appears twice", func(b []byte) []byte {
		return append([]byte(`{"federation":"elsewhere",`), b[1:]...)
	}},
	{"case-variant key", "must be spelled", func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"federation":`), []byte(`"Federation":`), 1)
	}},
	{"case-variant duplicate", "must be spelled", func(b []byte) []byte {
		return append([]byte(`{"FEDERATION":"elsewhere",`), b[1:]...)
	}},
	{"unknown field", "unknown field", func(b []byte) []byte {
		return append([]byte(`{"admin":true,`), b[1:]...)
	}},
	{"trailing value", "trailing data", func(b []byte) []byte { return append(b, []byte(` {}`)...) }},
	{"trailing white space", "canonical", func(b []byte) []byte { return append(b, '\n') }},
	{"white space inside", "canonical", func(b []byte) []byte { return append([]byte("{ "), b[1:]...) }},
	{"escaped key", "canonical", func(b []byte) []byte {
		return bytes.Replace(b, []byte(`"federation":`), []byte(`"fed\u0065ration":`), 1)
	}},
	{"invalid UTF-8", "UTF-8", func(b []byte) []byte {
		return append([]byte("{\"x\xff\":1,"), b[1:]...)
	}},
	{"lone surrogate escape", "surrogate", func(b []byte) []byte {
		return append([]byte(`{"reason":"\ud800",`), b[1:]...)
	}},
	{"explicit empty optional field", "canonical", func(b []byte) []byte {
		return append([]byte(`{"verdict":"",`), b[1:]...)
	}},
}

// TestStateRefusesAmbiguousStatement signs each ambiguous rewrite of a valid
// statement with the org's real key: the state machine refuses every one with
// InvalidArgument and changes nothing, while the canonical bytes, signed the
// same way, are accepted.
func TestStateRefusesAmbiguousStatement(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s := newStartedState(t, doc)
	iwf := signers["iwf"]
	payload := marshalPayload(t, sig(federation.MD5, md5Hex(1), "A1"))
	st := federation.Statement{Federation: testFed, Org: "iwf", Set: "iwf/list", Sequence: 1, Op: federation.OpAdd, Count: 1, Types: []string{"md5"}, Labels: []string{"A1"}, PayloadSHA256: payloadDigest(payload)}
	canonical, err := json.Marshal(&st)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Size()
	for _, rw := range ambiguousRewrites {
		t.Run(rw.name, func(t *testing.T) {
			body := rw.edit(bytes.Clone(canonical))
			if rw.name != "duplicate key (Go keeps the last)" && rw.name != "invalid UTF-8" && rw.name != "lone surrogate escape" {
				// The rewrite is one encoding/json reads as the original.
				var got federation.Statement
				if err := json.Unmarshal(body, &got); err == nil && got.Federation != testFed {
					t.Fatalf("rewrite changed the value encoding/json reads: %+v", got)
				}
			}
			env, err := federation.SignStatementBody(iwf, body)
			if err != nil {
				t.Fatal(err)
			}
			c := &hashfedv1.Contribution{Envelope: env, Payload: payload}
			if _, err := s.Check(c); federation.CodeOf(err) != federation.CodeInvalid || !strings.Contains(err.Error(), rw.msg) {
				t.Errorf("Check = %v (code %v), want InvalidArgument containing %q", err, federation.CodeOf(err), rw.msg)
			}
			res := apply(t, s, contributionCmd(t, c, 1))
			if res.Code != federation.CodeInvalid || s.Size() != before {
				t.Errorf("Apply = %+v, size %d; want code invalid and size %d", res, s.Size(), before)
			}
		})
	}
	env, err := federation.SignStatementBody(iwf, canonical)
	if err != nil {
		t.Fatal(err)
	}
	if res := apply(t, s, contributionCmd(t, &hashfedv1.Contribution{Envelope: env, Payload: payload}, 1)); res.Code != 0 {
		t.Fatalf("the canonical statement: %+v", res)
	}
}

// TestAmbiguousEnvelopeRefused: a statement envelope with a duplicate or
// case-variant key is refused before any signature is looked at, and no
// signature on it counts.
func TestAmbiguousEnvelopeRefused(t *testing.T) {
	doc, signers := newTestGenesis(t)
	key, err := newStartedState(t, doc).Registry().KeyAt("iwf", 0)
	if err != nil {
		t.Fatal(err)
	}
	c := contribute(t, signers["iwf"], "iwf/list", 1, sig(federation.MD5, md5Hex(1)))
	for name, env := range map[string][]byte{
		"duplicate payload": append([]byte(`{"payload":"e30=",`), c.Envelope[1:]...),
		"case variant":      bytes.Replace(c.Envelope, []byte(`"payload":`), []byte(`"Payload":`), 1),
		"trailing data":     append(bytes.Clone(c.Envelope), []byte(`{}`)...),
	} {
		if _, err := federation.PeekStatement(env); !errors.Is(err, federation.ErrAmbiguousJSON) {
			t.Errorf("%s: PeekStatement = %v, want ErrAmbiguousJSON", name, err)
		}
		if _, err := federation.OpenStatement(env, key); !errors.Is(err, federation.ErrAmbiguousJSON) || !errors.Is(err, federation.ErrBadSignature) {
			t.Errorf("%s: OpenStatement = %v, want ErrAmbiguousJSON and ErrBadSignature", name, err)
		}
	}
}

// TestStateRefusesAmbiguousAct: a governance act signed by every operator in
// an ambiguous encoding is refused with InvalidArgument.
func TestStateRefusesAmbiguousAct(t *testing.T) {
	doc, signers := newTestGenesis(t)
	s := newStartedState(t, doc)
	a := &federation.Act{Federation: testFed, Sequence: 1, Kind: federation.ActRemoveOrg, Name: "techco"}
	body, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	rewrites := ambiguousRewrites[: len(ambiguousRewrites)-1 : len(ambiguousRewrites)-1]
	rewrites = append(rewrites, struct {
		name, msg string
		edit      func(b []byte) []byte
	}{"explicit empty optional field", "canonical", func(b []byte) []byte { return append([]byte(`{"reason":"",`), b[1:]...) }})
	for _, rw := range rewrites {
		t.Run(rw.name, func(t *testing.T) {
			env, err := json.Marshal(map[string]any{"payloadType": federation.ActPayloadType, "payload": base64.StdEncoding.EncodeToString(rw.edit(bytes.Clone(body))), "signatures": []any{}})
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range []string{"ngo", "iwf"} {
				if env, err = federation.SignAct(env, signers[op]); err != nil {
					t.Fatal(err)
				}
			}
			res := apply(t, s, actCmd(t, env))
			if res.Code != federation.CodeInvalid || !strings.Contains(res.Msg, rw.msg) || s.Registry().NextAct != 1 {
				t.Errorf("act: %+v, want code invalid containing %q and no change", res, rw.msg)
			}
		})
	}
	zero := *a
	zero.Sequence = 0
	env, err := federation.ProposeAct(&zero)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []string{"ngo", "iwf"} {
		if env, err = federation.SignAct(env, signers[op]); err != nil {
			t.Fatal(err)
		}
	}
	if res := apply(t, s, actCmd(t, env)); res.Code != federation.CodeInvalid || !strings.Contains(res.Msg, "sequence is 0") {
		t.Errorf("act sequence 0: %+v, want code invalid", res)
	}
}
