package federation_test

import (
	"bytes"
	"io"
	"reflect"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// checkReadSignals reads data and checks the invariants of a successful read:
// at least one signal, each valid, no two with the same type and value.
func checkReadSignals(t *testing.T, data []byte, format string) {
	sigs, err := federation.ReadSignals(bytes.NewReader(data), format)
	if err != nil {
		if sigs != nil {
			t.Fatalf("ReadSignals returned %d signals and error %v", len(sigs), err)
		}
		return
	}
	if len(sigs) == 0 {
		t.Fatal("ReadSignals returned no signals and no error")
	}
	seen := map[string]bool{}
	for i, s := range sigs {
		if err := federation.ValidateSignal(s); err != nil {
			t.Fatalf("signal %d (%v) fails ValidateSignal: %v", i, s, err)
		}
		k := s.GetType().String() + ":" + s.GetValue()
		if seen[k] {
			t.Fatalf("signal %d (%v) returned twice", i, s)
		}
		seen[k] = true
	}
}

func FuzzReadSignalsCSV(f *testing.F) {
	for _, seed := range []string{
		"type,value,labels\nmd5," + md5Hex(1) + ",a1 b2\npdq," + pdqHex(2) + ",\n",
		"signal_type,signal_value,tags\nSHA1," + sha1Hex(1) + ",x;y|z\nphotodna," + photoDNA(1) + ",A1\n",
		"\ufefftype,value,classification\r\nsha256," + sha256Hex(1) + ",A1\r\n",
		"md5,sha1,pdq,photodna,classification\n" + md5Hex(1) + "," + sha1Hex(1) + "," + pdqHex(1) + "," + photoDNA(1) + ",A1\n",
		"type,value\nmd5,\"" + md5Hex(1) + "\"\n",
		"type,value\nmd5," + md5Hex(1) + "\nmd5," + md5Hex(1) + "\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReadSignals(t, data, federation.FormatCSV)
	})
}

func FuzzReadSignalsJSONL(f *testing.F) {
	for _, seed := range []string{
		`{"type": "md5", "value": "` + md5Hex(1) + `", "labels": ["A1"]}` + "\n" +
			`{"signal_type": "pdq", "signal_value": "` + pdqHex(1) + `", "tags": ["x", "y"]}` + "\n",
		`{"type": "photodna", "value": "` + photoDNA(2) + `"}`,
		`{"type": "sha1", "value": "` + sha1Hex(1) + `"}` + "\r\n\r\n" + `{"type": "SHA256", "value": "` + sha256Hex(1) + `"}`,
		`{"type": "md5", "value": "` + md5Hex(1) + `", "labels": ["a", "a", "b"]}`,
		"null\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReadSignals(t, data, federation.FormatJSONL)
	})
}

// FuzzSignalReader checks the streaming reader against its invariants and
// against ReadSignals, which is built on it: valid signals with sorted,
// distinct labels, line numbers that never go back, a sticky error, and
// ReadSignals returning exactly the streamed signals when they hold no
// duplicate (and failing when the stream fails).
func FuzzSignalReader(f *testing.F) {
	f.Add(false, []byte("md5,sha1,pdna,classification\n"+md5Hex(1)+","+sha1Hex(1)+","+photoDNA(1)+",A1\n"))
	f.Add(false, []byte("collab,signal_type,signal_str,category,tags\nx,pdq,"+pdqHex(1)+",POSITIVE_CLASS,b a b\n"))
	f.Add(false, []byte("type,value\nHASH_MD5,"+md5Hex(1)+"\nmd5,"+md5Hex(1)+"\n"))
	f.Add(true, []byte(`{"signal_type":"video_md5","signal_str":"`+md5Hex(1)+`","classification":"A1"}`+"\n\n"+`{"type":"pdq","value":"`+pdqHex(1)+`"}`))
	f.Fuzz(func(t *testing.T, jsonl bool, data []byte) {
		format := federation.FormatCSV
		if jsonl {
			format = federation.FormatJSONL
		}
		sr, err := federation.NewSignalReader(bytes.NewReader(data), format)
		if err != nil {
			t.Fatal(err)
		}
		var (
			streamed  []*hashfedv1.Signal
			lastLine  int
			dup       bool
			seen      = map[string]bool{}
			streamErr error
		)
		for {
			s, line, err := sr.Next()
			if err != nil {
				if _, _, again := sr.Next(); again != err {
					t.Fatalf("Next returned %v, then %v: the error is not sticky", err, again)
				}
				if err != io.EOF {
					streamErr = err
				}
				break
			}
			if err := federation.ValidateSignal(s); err != nil {
				t.Fatalf("signal on line %d fails ValidateSignal: %v", line, err)
			}
			if !slices.IsSorted(s.Labels) || len(slices.Compact(slices.Clone(s.Labels))) != len(s.Labels) {
				t.Fatalf("signal on line %d has labels %q, not sorted and distinct", line, s.Labels)
			}
			if line < 1 || line < lastLine {
				t.Fatalf("line %d after line %d", line, lastLine)
			}
			lastLine = line
			k := s.GetType().String() + ":" + s.GetValue()
			dup = dup || seen[k]
			seen[k] = true
			streamed = append(streamed, s)
		}
		read, err := federation.ReadSignals(bytes.NewReader(data), format)
		switch {
		case streamErr != nil || dup || len(streamed) == 0:
			if err == nil {
				t.Fatalf("ReadSignals succeeded where the stream failed (%v), held a duplicate (%v) or nothing", streamErr, dup)
			}
		case err != nil:
			t.Fatalf("ReadSignals: %v, but the stream read %d distinct signals", err, len(streamed))
		case !slices.EqualFunc(read, streamed, func(a, b *hashfedv1.Signal) bool { return proto.Equal(a, b) }):
			t.Fatalf("ReadSignals and the stream disagree:\n%v\n%v", read, streamed)
		}
	})
}

func FuzzPeekStatement(f *testing.F) {
	// A fixed key, so every fuzz worker verifies what the coordinator's
	// seeds were signed with.
	priv := fixed.Key("statement ngo peek")
	pub := priv.Public()
	signer, err := federation.NewSigner("ngo", priv)
	if err != nil {
		f.Fatal(err)
	}
	c, _, err := federation.BuildContribution(signer, testFed, "ngo/csam", 1, []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1))}, "2025-01-02T03:04:05Z")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.Envelope)
	f.Add([]byte(`{"payloadType":"application/vnd.hashfed.statement.v1+json","payload":"e30=","signatures":[{"keyid":"","sig":""}]}`))
	f.Add([]byte(`{"payloadType":"application/vnd.hashfed.statement.v1+json","payload":"bnVsbA==","signatures":[{}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, env []byte) {
		peeked, perr := federation.PeekStatement(env)
		if perr == nil && peeked == nil {
			t.Fatal("PeekStatement returned neither a statement nor an error")
		}
		// The state picks the verification key by what PeekStatement claims
		// and then trusts what OpenStatement returns, so whenever both
		// succeed they must agree.
		opened, oerr := federation.OpenStatement(env, pub)
		if oerr == nil && perr == nil && !reflect.DeepEqual(opened, peeked) {
			t.Fatalf("PeekStatement = %+v but OpenStatement = %+v", *peeked, *opened)
		}
	})
}

func FuzzParseGenesis(f *testing.F) {
	doc, _ := newTestGenesis(f)
	f.Add(doc)
	f.Add(bytes.ReplaceAll(doc, []byte("\n"), nil))
	f.Add([]byte(`{"version":1,"federation":"x","orgs":[],"nodes":[],"sets":[]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := federation.ParseGenesis(b)
		if err != nil {
			return
		}
		m1, err := g.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed genesis: %v", err)
		}
		g2, err := federation.ParseGenesis(m1)
		if err != nil {
			t.Fatalf("ParseGenesis(Marshal(ParseGenesis(b))): %v\n%s", err, m1)
		}
		m2, err := g2.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m1, m2) {
			t.Fatalf("Marshal is not stable across a round trip:\n%s\n%s", m1, m2)
		}
		if _, err := federation.NewState(b); err != nil {
			t.Fatalf("ParseGenesis accepts the document but NewState does not: %v", err)
		}
	})
}

func FuzzCanonicalValue(f *testing.F) {
	for _, seed := range []struct{ typ, value string }{
		{"md5", md5Hex(1)},
		{"md5", "D41D8CD98F00B204E9800998ECF8427E"},
		{"sha1", " " + sha1Hex(1) + "\n"},
		{"sha256", sha256Hex(1)},
		{"pdq", pdqHex(1)},
		{"photodna", photoDNA(1)},
		{"photodna", photoDNA(1)[:50] + "\r\n" + photoDNA(1)[50:]},
		{"tlsh", "T1"},
	} {
		f.Add(seed.typ, seed.value)
	}
	f.Fuzz(func(t *testing.T, typ, value string) {
		st := federation.SignalType(typ)
		out, err := federation.CanonicalValue(st, value)
		if err != nil {
			return
		}
		again, err := federation.CanonicalValue(st, out)
		if err != nil || again != out {
			t.Fatalf("CanonicalValue(%q, %q) = %q, but CanonicalValue(%q, %q) = %q, %v", typ, value, out, typ, out, again, err)
		}
		if err := federation.ValidateSignal(&hashfedv1.Signal{Type: st.Proto(), Value: out}); err != nil {
			t.Fatalf("canonical value %q of %q fails ValidateSignal: %v", out, value, err)
		}
	})
}
