package federation_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// FuzzParseFounder parses founder files ('hashfed genesis org' output, read
// by 'genesis assemble' and 'gov propose admit-org'): a founder that parses
// lists only its own org's nodes and survives a JSON round trip.
func FuzzParseFounder(f *testing.F) {
	fx := newFuzzFixture(f)
	for _, o := range fx.g.Orgs {
		fo := &federation.Founder{Org: o, Nodes: []federation.Node{}}
		for _, n := range fx.g.Nodes {
			if n.Org == o.Name {
				fo.Nodes = append(fo.Nodes, n)
			}
		}
		b, err := json.MarshalIndent(fo, "", "  ")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"org":{"name":"a"},"nodes":[{"id":"n","org":"b"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fo, err := federation.ParseFounder(b)
		if err != nil {
			return
		}
		for _, n := range fo.Nodes {
			if n.Org != fo.Org.Name {
				t.Fatalf("founder of org %q lists node %q of org %q", fo.Org.Name, n.ID, n.Org)
			}
		}
		out, err := json.Marshal(fo)
		if err != nil {
			t.Fatal(err)
		}
		again, err := federation.ParseFounder(out)
		if err != nil || !reflect.DeepEqual(again, fo) {
			t.Fatalf("a founder does not survive a round trip: %v\n%+v\n%+v", err, fo, again)
		}
	})
}

// formatSetSpec is the inverse of ParseSetSpec.
func formatSetSpec(s federation.Set) string {
	var types []string
	for _, t := range s.Types {
		types = append(types, string(t))
	}
	return s.Name + ":types=" + strings.Join(types, ",") + ":readers=" + strings.Join(s.Readers, ",")
}

// FuzzParseSetSpec parses --set arguments: a set that parses has a valid
// name and known types, and formats back to a spec that parses the same.
func FuzzParseSetSpec(f *testing.F) {
	for _, s := range []string{
		"ngo/csam", "ngo/csam:types=md5,pdq:readers=techco,other", "iwf/list:readers=", "a/b:types=PDQ",
		"a/b:types=", "a/b:colour=red", "a:b", "a/b:types=md5:types=sha1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := federation.ParseSetSpec(spec)
		if err != nil {
			return
		}
		if err := federation.ValidSetName(s.Name); err != nil {
			t.Fatalf("ParseSetSpec(%q) accepted set name %q: %v", spec, s.Name, err)
		}
		if len(s.Types) == 0 {
			t.Fatalf("ParseSetSpec(%q) returned a set of no types", spec)
		}
		for _, typ := range s.Types {
			if !slices.Contains(federation.SignalTypes, typ) {
				t.Fatalf("ParseSetSpec(%q) accepted type %q", spec, typ)
			}
		}
		if s.Readers == nil {
			t.Fatalf("ParseSetSpec(%q) returned nil readers, which a genesis writes as null", spec)
		}
		again, err := federation.ParseSetSpec(formatSetSpec(s))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("ParseSetSpec(%q) = %+v, which formats as %q and parses as %+v, %v", spec, s, formatSetSpec(s), again, err)
		}
	})
}

// FuzzParsePublicKey parses org signing keys as the genesis and
// rotate-signing-key acts carry them: only Ed25519 and P-256 keys, which
// re-encode to a PEM that parses to the same key.
func FuzzParsePublicKey(f *testing.F) {
	_, pub, err := federation.GenerateSigningKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pub)
	for _, curve := range []elliptic.Curve{elliptic.P256(), elliptic.P384()} {
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(must(cryptoutils.MarshalPublicKeyToPEM(k.Public())))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := federation.ParsePublicKey(b)
		if err != nil {
			return
		}
		switch k := k.(type) {
		case ed25519.PublicKey:
		case *ecdsa.PublicKey:
			if k.Curve != elliptic.P256() {
				t.Fatalf("ParsePublicKey accepted a key on %s", k.Curve.Params().Name)
			}
		default:
			t.Fatalf("ParsePublicKey accepted a %T", k)
		}
		out, err := cryptoutils.MarshalPublicKeyToPEM(k)
		if err != nil {
			t.Fatal(err)
		}
		again, err := federation.ParsePublicKey(out)
		if err != nil || !again.(interface{ Equal(crypto.PublicKey) bool }).Equal(k) {
			t.Fatalf("a parsed key does not survive re-encoding: %v", err)
		}
	})
}

// FuzzLoadSigner loads fuzzed statement-signing key files. A key that loads
// must sign statements that verify under its public key, and that public
// key must be one a genesis or a key rotation accepts: a signer whose
// statements no node can ever verify is refused up front.
func FuzzLoadSigner(f *testing.F) {
	priv, _, err := federation.GenerateSigningKey()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(priv)
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(must(cryptoutils.MarshalPrivateKeyToPEM(p256)))
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(must(cryptoutils.MarshalPrivateKeyToPEM(p384)))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(must(cryptoutils.MarshalPrivateKeyToPEM(rsaKey)))
	path := filepath.Join(f.TempDir(), "signing.key")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := federation.LoadSigner("ngo", path)
		if err != nil {
			return
		}
		key, err := cryptoutils.UnmarshalPEMToPrivateKey(b, cryptoutils.SkipPassword)
		if err != nil {
			t.Fatalf("LoadSigner accepted a key that does not parse: %v", err)
		}
		pub := key.(crypto.Signer).Public()
		pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := federation.ParsePublicKey(pubPEM); err != nil {
			t.Fatalf("LoadSigner accepted a %T key, whose public key no genesis accepts: %v", key, err)
		}
		st := &federation.Statement{Federation: testFed, Org: "ngo", Set: "ngo/csam", Sequence: 1, Op: federation.OpAdd}
		env, err := s.SignStatement(st)
		if err != nil {
			t.Fatalf("a loaded signer does not sign: %v", err)
		}
		if got, err := federation.OpenStatement(env, pub); err != nil || !reflect.DeepEqual(got, st) {
			t.Fatalf("a loaded signer's statement does not verify under its public key: %v", err)
		}
	})
}

// FuzzExportRoundTrip reads fuzzed JSON lines into signals (any labels
// ReadSignals accepts), exports them in every layout and reads each export
// back: every layout must give back exactly the signals exported, or
// refuse to write them.
func FuzzExportRoundTrip(f *testing.F) {
	for _, seed := range []string{
		`{"type":"md5","value":"` + md5Hex(1) + `","labels":["A1","x"]}` + "\n" + `{"type":"photodna","value":"` + photoDNA(2) + `"}`,
		`{"type":"pdq","value":"` + pdqHex(1) + `","labels":["A1","A2","B2"]}`,
		// Labels other tools write, which the CSV layouts cannot carry.
		`{"type":"sha1","value":"` + sha1Hex(1) + `","labels":["a b"]}`,
		`{"type":"sha256","value":"` + sha256Hex(1) + `","labels":["\"quoted\"","semi;colon","pipe|d"]}`,
		`{"type":"md5","value":"` + md5Hex(2) + `","labels":["\u00a0nbsp"]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sigs, err := federation.ReadSignals(bytes.NewReader(data), federation.FormatJSONL)
		if err != nil {
			return
		}
		for _, layout := range federation.ExportFormats {
			var b bytes.Buffer
			w, err := federation.NewSignalWriter(&b, layout)
			if err != nil {
				t.Fatal(err)
			}
			written := true
			for _, s := range sigs {
				typ, _ := federation.SignalTypeFromProto(s.GetType())
				if err := w.Write(typ, s.GetValue(), s.GetLabels()); err != nil {
					if layout == federation.ExportJSONL {
						t.Fatalf("the jsonl layout refused %v: %v", s, err)
					}
					written = false
					break
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !written {
				continue
			}
			format := federation.FormatCSV
			if layout == federation.ExportJSONL {
				format = federation.FormatJSONL
			}
			back, err := federation.ReadSignals(&b, format)
			if err != nil {
				t.Fatalf("the %s export does not read back: %v\n%s", layout, err, b.Bytes())
			}
			if !slices.EqualFunc(back, sigs, func(x, y *hashfedv1.Signal) bool { return proto.Equal(x, y) }) {
				t.Fatalf("the %s export reads back differently:\nwrote %v\nread  %v", layout, sigs, back)
			}
		}
	})
}
