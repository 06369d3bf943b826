package federation_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/hashfed/hashfed/federation"
)

// refTree decodes one JSON value token by token into a generic tree,
// refusing duplicate keys in any object. It is the reference the canonical
// decoders are compared with; it shares no code with them.
func refTree(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('['):
		var out []any
		for dec.More() {
			v, err := refTree(dec)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		_, err := dec.Token()
		return out, err
	case json.Delim('{'):
		out := map[string]any{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return nil, err
			}
			if _, dup := out[k.(string)]; dup {
				return nil, errors.New("duplicate key")
			}
			v, err := refTree(dec)
			if err != nil {
				return nil, err
			}
			out[k.(string)] = v
		}
		_, err := dec.Token()
		return out, err
	}
	return tok, nil
}

// refStrict is the reference strict decoder: valid UTF-8, one value with
// unique keys and nothing after it, top-level keys exactly among names, and
// nested objects (acts' org and set) with keys exactly among nested[key].
func refStrict(b []byte, names []string, nested map[string][]string, v any) error {
	if !utf8.Valid(b) {
		return errors.New("invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tree, err := refTree(dec)
	if err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	exact := func(m map[string]any, names []string) error {
		for k := range m {
			found := false
			for _, n := range names {
				found = found || k == n
			}
			if !found {
				return errors.New("key not exactly a field name: " + k)
			}
		}
		return nil
	}
	top, ok := tree.(map[string]any)
	if !ok {
		return errors.New("not an object")
	}
	if err := exact(top, names); err != nil {
		return err
	}
	for k, sub := range nested {
		if m, ok := top[k].(map[string]any); ok {
			if err := exact(m, sub); err != nil {
				return err
			}
		}
	}
	return json.Unmarshal(b, v)
}

var (
	statementNames = []string{"federation", "org", "set", "sequence", "op", "verdict", "count", "types", "labels", "payload_sha256", "issued_at"}
	actNames       = []string{"federation", "sequence", "kind", "name", "org", "signing_key", "ca_cert", "set", "readers", "reason"}
	actNested      = map[string][]string{"org": {"name", "roles", "ca_cert", "signing_key"}, "set": {"name", "types", "readers"}}
)

// checkAgainstReference is the property both targets check: what the decoder
// accepts, the reference accepts too, to the same value, and its bytes are
// the canonical encoding of that value; what the reference accepts in
// canonical encoding (sequence > 0), the decoder accepts.
func checkAgainstReference[T any](t *testing.T, body []byte, got *T, gotErr error, names []string, nested map[string][]string, seq func(*T) uint64) {
	var ref T
	refErr := refStrict(body, names, nested, &ref)
	canonical := false
	if refErr == nil {
		c, err := json.Marshal(&ref)
		canonical = err == nil && bytes.Equal(c, body)
	}
	if gotErr == nil {
		if refErr != nil {
			t.Fatalf("decoder accepted %q, the strict reference refuses it: %v", body, refErr)
		}
		if !reflect.DeepEqual(*got, ref) {
			t.Fatalf("decoder read %+v, the strict reference %+v", *got, ref)
		}
		if !canonical {
			t.Fatalf("decoder accepted %q, which is not the canonical encoding", body)
		}
		return
	}
	if canonical && seq(&ref) > 0 {
		t.Fatalf("decoder refused the canonical %q: %v", body, gotErr)
	}
}

func unsignedEnvelope(payloadType string, body []byte) []byte {
	env, _ := json.Marshal(map[string]any{"payloadType": payloadType, "payload": base64.StdEncoding.EncodeToString(body), "signatures": []map[string]string{{"keyid": "", "sig": "AAAA"}}})
	return env
}

// FuzzStatementDecodingMatchesStrict compares the statement decoder with an
// independent strict decoder: no second reading of a statement's bytes
// (duplicate or case-variant keys, unknown fields, trailing data, invalid
// UTF-8, another encoding of the same value) is accepted.
func FuzzStatementDecodingMatchesStrict(f *testing.F) {
	good, _ := json.Marshal(&federation.Statement{Federation: "hashfed.test/fed", Org: "ngo", Set: "ngo/csam", Sequence: 1, Op: federation.OpAdd, Count: 1, Types: []string{"md5"}, Labels: []string{"A1"}, PayloadSHA256: "00", IssuedAt: "2025-01-02T03:04:05Z"})
	f.Add(good)
	for _, rw := range ambiguousRewrites {
		f.Add(rw.edit(bytes.Clone(good)))
	}
	f.Add([]byte(`{"federation":"a<b>&","org":"\u00e9","set":"s","sequence":1,"op":"add","count":0,"types":null,"payload_sha256":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := federation.PeekStatement(unsignedEnvelope(federation.StatementPayloadType, body))
		if err == nil && st == nil {
			t.Fatal("nil statement without an error")
		}
		checkAgainstReference(t, body, st, err, statementNames, nil, func(s *federation.Statement) uint64 { return s.Sequence })
	})
}

// FuzzActDecodingMatchesStrict is FuzzStatementDecodingMatchesStrict for
// governance acts, whose org and set are nested objects.
func FuzzActDecodingMatchesStrict(f *testing.F) {
	good, _ := json.Marshal(&federation.Act{Federation: "hashfed.test/fed", Sequence: 1, Kind: federation.ActAdmitOrg, Org: &federation.Org{Name: "new", Roles: []federation.Role{federation.RolePublisher}, CACert: "-----BEGIN\n", SigningKey: "k"}, Reason: "why"})
	f.Add(good)
	set, _ := json.Marshal(&federation.Act{Federation: "f", Sequence: 2, Kind: federation.ActCreateSet, Set: &federation.Set{Name: "a/b", Types: []federation.SignalType{"md5"}, Readers: []string{}}})
	f.Add(set)
	f.Add(bytes.Replace(set, []byte(`"readers"`), []byte(`"Readers"`), 1))
	f.Add(bytes.Replace(good, []byte(`"roles"`), []byte(`"name":"x","roles"`), 1))
	for _, rw := range ambiguousRewrites {
		f.Add(rw.edit(bytes.Clone(good)))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := federation.PeekAct(unsignedEnvelope(federation.ActPayloadType, body))
		if err == nil && a == nil {
			t.Fatal("nil act without an error")
		}
		checkAgainstReference(t, body, a, err, actNames, actNested, func(a *federation.Act) uint64 { return a.Sequence })
	})
}
