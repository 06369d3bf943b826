package federation_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// testFed is the federation name of the test genesis.
const testFed = "hashfed.test/fed"

// newTestGenesis builds a valid genesis document with fresh keys:
//
//	ngo     publisher, operator; node ngo-1 votes
//	iwf     publisher
//	techco  subscriber
//
// and the sets "ngo/csam" (every signal type, read by techco) and
// "iwf/list" (md5 and pdq). It returns the document and each org's
// statement signer.
func newTestGenesis(tb testing.TB) (doc []byte, signers map[string]*federation.Signer) {
	tb.Helper()
	g := &federation.Genesis{Version: federation.GenesisVersion, Federation: testFed}
	signers = map[string]*federation.Signer{}
	dir := tb.TempDir()
	for _, o := range []struct {
		name  string
		roles []federation.Role
	}{
		{"ngo", []federation.Role{federation.RolePublisher, federation.RoleOperator}},
		{"iwf", []federation.Role{federation.RolePublisher}},
		{"techco", []federation.Role{federation.RoleSubscriber}},
	} {
		ca, err := certs.NewCA(o.name, 24*time.Hour)
		if err != nil {
			tb.Fatal(err)
		}
		priv, pub, err := federation.GenerateSigningKey()
		if err != nil {
			tb.Fatal(err)
		}
		path := filepath.Join(dir, o.name+".key")
		if err := os.WriteFile(path, priv, 0o600); err != nil {
			tb.Fatal(err)
		}
		s, err := federation.LoadSigner(o.name, path)
		if err != nil {
			tb.Fatal(err)
		}
		signers[o.name] = s
		g.Orgs = append(g.Orgs, federation.Org{
			Name:       o.name,
			Roles:      o.roles,
			CACert:     string(ca.CertPEM()),
			SigningKey: string(pub),
		})
	}
	g.Nodes = []federation.Node{{
		ID:            "ngo-1",
		Org:           "ngo",
		RaftAddress:   "127.0.0.1:7001",
		APIAddress:    "127.0.0.1:8001",
		CheckpointKey: checkpointVKey(tb, federation.CheckpointKeyName(testFed, "ngo-1")),
		Voter:         true,
	}}
	g.Sets = []federation.Set{
		{Name: "ngo/csam", Types: federation.SignalTypes, Readers: []string{"techco"}},
		{Name: "iwf/list", Types: []federation.SignalType{federation.MD5, federation.PDQ}, Readers: []string{}},
	}
	doc, err := g.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return doc, signers
}

// checkpointVKey returns the verifier key of a fresh note key named name.
func checkpointVKey(tb testing.TB, name string) string {
	tb.Helper()
	_, vkey, err := ledger.GenerateKey(name)
	if err != nil {
		tb.Fatal(err)
	}
	return vkey
}

// Distinct canonical values of each signal type, numbered by i.
func md5Hex(i int) string    { return fmt.Sprintf("%032x", i) }
func sha1Hex(i int) string   { return fmt.Sprintf("%040x", i) }
func sha256Hex(i int) string { return fmt.Sprintf("%064x", i) }
func pdqHex(i int) string    { return fmt.Sprintf("%064x", 0xd000+i) }
func photoDNA(i int) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i)}, 144))
}

func sig(t federation.SignalType, value string, labels ...string) *hashfedv1.Signal {
	return &hashfedv1.Signal{Type: t.Proto(), Value: value, Labels: labels}
}

// contribute builds a signed contribution of signer's org to set in testFed.
func contribute(tb testing.TB, s *federation.Signer, set string, seq uint64, sigs ...*hashfedv1.Signal) *hashfedv1.Contribution {
	tb.Helper()
	c, _, err := federation.BuildContribution(s, testFed, set, seq, sigs, "2025-01-02T03:04:05Z")
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// signRaw signs st over payload as given, bypassing BuildContribution's
// checks. An empty st.PayloadSHA256 is filled in from payload.
func signRaw(tb testing.TB, s *federation.Signer, st federation.Statement, payload []byte) *hashfedv1.Contribution {
	tb.Helper()
	if st.PayloadSHA256 == "" {
		st.PayloadSHA256 = payloadDigest(payload)
	}
	env, err := s.SignStatement(&st)
	if err != nil {
		tb.Fatal(err)
	}
	return &hashfedv1.Contribution{Envelope: env, Payload: payload}
}

// payloadDigest is the lowercase hex SHA-256 of payload.
func payloadDigest(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}

func marshalPayload(tb testing.TB, sigs ...*hashfedv1.Signal) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&hashfedv1.Payload{Signals: sigs})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func marshalCmd(tb testing.TB, c *hashfedv1.Command) []byte {
	tb.Helper()
	b, err := proto.Marshal(c)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func genesisCmd(tb testing.TB, doc []byte, ts int64) []byte {
	tb.Helper()
	return marshalCmd(tb, &hashfedv1.Command{TimeUnixNano: ts, Op: &hashfedv1.Command_Genesis{Genesis: doc}})
}

func contributionCmd(tb testing.TB, c *hashfedv1.Contribution, ts int64) []byte {
	tb.Helper()
	return marshalCmd(tb, &hashfedv1.Command{TimeUnixNano: ts, Op: &hashfedv1.Command_Contribution{Contribution: c}})
}

// apply applies cmd to s and decodes the result.
func apply(tb testing.TB, s *federation.State, cmd []byte) *federation.Result {
	tb.Helper()
	r, err := federation.DecodeResult(s.Apply(s.AppliedIndex()+1, cmd))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// mustApply applies cmd to s and fails the test unless it lands at index want.
func mustApply(tb testing.TB, s *federation.State, cmd []byte, want int64) {
	tb.Helper()
	r := apply(tb, s, cmd)
	if r.Code != 0 || r.Index != want || r.TreeSize != want+1 {
		tb.Fatalf("Apply = %+v, want index %d, tree size %d", r, want, want+1)
	}
}

// newStartedState returns a State of doc with the genesis entry applied.
func newStartedState(tb testing.TB, doc []byte) *federation.State {
	tb.Helper()
	s, err := federation.NewState(doc)
	if err != nil {
		tb.Fatal(err)
	}
	mustApply(tb, s, genesisCmd(tb, doc, 1), 0)
	return s
}

// dsseEnvelope is the DSSE envelope JSON, for tampering with.
type dsseEnvelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	} `json:"signatures"`
}

// editEnvelope returns a copy of env changed by edit.
func editEnvelope(tb testing.TB, env []byte, edit func(*dsseEnvelope)) []byte {
	tb.Helper()
	var e dsseEnvelope
	if err := json.Unmarshal(env, &e); err != nil {
		tb.Fatal(err)
	}
	edit(&e)
	b, err := json.Marshal(&e)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// flipBase64 decodes a standard base64 string, flips a bit of its first
// byte and re-encodes it.
func flipBase64(tb testing.TB, s string) string {
	tb.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	b[0] ^= 1
	return base64.StdEncoding.EncodeToString(b)
}
