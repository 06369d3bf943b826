package federation_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// orgKey returns the statement-verification key an org registered in doc.
func orgKey(t *testing.T, doc []byte, org string) any {
	t.Helper()
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		t.Fatal(err)
	}
	k, err := federation.ParsePublicKey([]byte(g.Org(org).SigningKey))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestStatementRoundTrip(t *testing.T) {
	doc, signers := newTestGenesis(t)
	sigs := []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1), "A1"), sig(federation.PDQ, pdqHex(2))}
	c, st, err := federation.BuildContribution(signers["ngo"], testFed, "ngo/csam", 3, sigs, "2025-01-02T03:04:05Z")
	if err != nil {
		t.Fatal(err)
	}
	want := federation.Statement{
		Federation:    testFed,
		Org:           "ngo",
		Set:           "ngo/csam",
		Sequence:      3,
		Op:            federation.OpAdd,
		Count:         2,
		Types:         st.Types,
		Labels:        st.Labels,
		PayloadSHA256: payloadDigest(c.Payload),
		IssuedAt:      "2025-01-02T03:04:05Z",
	}
	if !reflect.DeepEqual(*st, want) {
		t.Errorf("BuildContribution statement = %+v, want %+v", *st, want)
	}

	peeked, err := federation.PeekStatement(c.Envelope)
	if err != nil || !reflect.DeepEqual(*peeked, want) {
		t.Errorf("PeekStatement = %+v, %v; want %+v", peeked, err, want)
	}
	opened, err := federation.OpenStatement(c.Envelope, orgKey(t, doc, "ngo"))
	if err != nil || !reflect.DeepEqual(*opened, want) {
		t.Fatalf("OpenStatement = %+v, %v; want %+v", opened, err, want)
	}
	p, err := federation.CheckPayload(opened, c.Payload)
	if err != nil {
		t.Fatalf("CheckPayload: %v", err)
	}
	got := p.Signals
	if len(got) != len(sigs) {
		t.Fatalf("CheckPayload returned %d signals, want %d", len(got), len(sigs))
	}
	for i := range sigs {
		if !proto.Equal(got[i], sigs[i]) {
			t.Errorf("signal %d = %v, want %v", i, got[i], sigs[i])
		}
	}

	// The payload is the deterministic encoding of the signals.
	if want := marshalPayload(t, sigs...); string(c.Payload) != string(want) {
		t.Errorf("payload is not the deterministic encoding of the signals")
	}
}

func TestOpenStatementRejects(t *testing.T) {
	doc, signers := newTestGenesis(t)
	c := contribute(t, signers["ngo"], "ngo/csam", 1, sig(federation.MD5, md5Hex(1)))
	ngoKey := orgKey(t, doc, "ngo")
	for _, tt := range []struct {
		name string
		env  []byte
		key  any
	}{
		{
			name: "tampered payload",
			env: editEnvelope(t, c.Envelope, func(e *dsseEnvelope) {
				body, _ := base64.StdEncoding.DecodeString(e.Payload)
				body = []byte(strings.Replace(string(body), `"sequence":1`, `"sequence":2`, 1))
				e.Payload = base64.StdEncoding.EncodeToString(body)
			}),
			key: ngoKey,
		},
		{
			name: "tampered signature",
			env:  editEnvelope(t, c.Envelope, func(e *dsseEnvelope) { e.Signatures[0].Sig = flipBase64(t, e.Signatures[0].Sig) }),
			key:  ngoKey,
		},
		{
			name: "tampered payload type",
			env:  editEnvelope(t, c.Envelope, func(e *dsseEnvelope) { e.PayloadType = "application/vnd.in-toto+json" }),
			key:  ngoKey,
		},
		{
			name: "no signatures",
			env:  editEnvelope(t, c.Envelope, func(e *dsseEnvelope) { e.Signatures = nil }),
			key:  ngoKey,
		},
		{
			name: "another org's key",
			env:  c.Envelope,
			key:  orgKey(t, doc, "iwf"),
		},
		{
			name: "not JSON",
			env:  []byte("hello"),
			key:  ngoKey,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, err := federation.OpenStatement(tt.env, tt.key)
			if !errors.Is(err, federation.ErrBadSignature) {
				t.Fatalf("OpenStatement = %+v, %v; want an error wrapping ErrBadSignature", st, err)
			}
		})
	}
}

func TestPeekStatementRejects(t *testing.T) {
	_, signers := newTestGenesis(t)
	c := contribute(t, signers["ngo"], "ngo/csam", 1, sig(federation.MD5, md5Hex(1)))
	for _, tt := range []struct {
		name string
		env  []byte
		want string
	}{
		{"not JSON", []byte("{"), "not DSSE JSON"},
		{"wrong payload type", editEnvelope(t, c.Envelope, func(e *dsseEnvelope) { e.PayloadType = "text/plain" }), `payload type "text/plain"`},
		{"no signatures", editEnvelope(t, c.Envelope, func(e *dsseEnvelope) { e.Signatures = nil }), "no signature"},
		{"payload not base64", editEnvelope(t, c.Envelope, func(e *dsseEnvelope) { e.Payload = "!!!" }), "not base64"},
		{"payload not JSON", editEnvelope(t, c.Envelope, func(e *dsseEnvelope) { e.Payload = base64.StdEncoding.EncodeToString([]byte("x")) }), "not valid JSON"},
		{"unknown statement field", editEnvelope(t, c.Envelope, func(e *dsseEnvelope) {
			e.Payload = base64.StdEncoding.EncodeToString([]byte(`{"org":"ngo","admin":true}`))
		}), `unknown field "admin"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st, err := federation.PeekStatement(tt.env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("PeekStatement = %+v, %v; want error containing %q", st, err, tt.want)
			}
		})
	}
}

func TestSignStatementWrongOrg(t *testing.T) {
	_, signers := newTestGenesis(t)
	st := &federation.Statement{Federation: testFed, Org: "iwf", Set: "iwf/list", Sequence: 1, Op: federation.OpAdd, Count: 1}
	if env, err := signers["ngo"].SignStatement(st); err == nil {
		t.Fatalf("ngo's signer signed a statement of iwf: %s", env)
	}
}

func TestBuildContributionRejects(t *testing.T) {
	_, signers := newTestGenesis(t)
	for _, tt := range []struct {
		name string
		sigs []*hashfedv1.Signal
		want string
	}{
		{"no signals", nil, "at least one signal"},
		{"non-canonical", []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1)), sig(federation.MD5, strings.ToUpper(md5Hex(0xab)))}, "signal 1: md5 value"},
		{"bad label", []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1), "a,b")}, "signal 0:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := federation.BuildContribution(signers["ngo"], testFed, "ngo/csam", 1, tt.sigs, "")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("BuildContribution = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestCheckPayload(t *testing.T) {
	_, signers := newTestGenesis(t)
	c := contribute(t, signers["ngo"], "ngo/csam", 1, sig(federation.MD5, md5Hex(1)), sig(federation.SHA1, sha1Hex(2)))
	st, err := federation.PeekStatement(c.Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := federation.CheckPayload(st, c.Payload); err != nil {
		t.Fatalf("CheckPayload(valid): %v", err)
	}

	modified := marshalPayload(t, sig(federation.MD5, md5Hex(1)), sig(federation.SHA1, sha1Hex(3)))
	garbage := []byte{0xff, 0xff, 0xff}
	for _, tt := range []struct {
		name    string
		st      federation.Statement
		payload []byte
		want    string
	}{
		{"modified payload", *st, modified, "does not match the statement's"},
		{"truncated payload", *st, c.Payload[:len(c.Payload)-1], "does not match"},
		{"no payload", *st, nil, "does not match"},
		{"count says more", withCount(*st, 3), c.Payload, "payload has 2 signals, the statement says 3"},
		{"count says fewer", withCount(*st, 1), c.Payload, "payload has 2 signals, the statement says 1"},
		{"payload does not decode", withDigest(*st, garbage), garbage, "does not decode"},
		{"digest in uppercase", withUpperDigest(*st), c.Payload, "does not match"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sigs, err := federation.CheckPayload(&tt.st, tt.payload)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckPayload = %v, %v; want error containing %q", sigs, err, tt.want)
			}
		})
	}
}

func withCount(st federation.Statement, n int) federation.Statement {
	st.Count = n
	return st
}

func withDigest(st federation.Statement, payload []byte) federation.Statement {
	st.PayloadSHA256 = payloadDigest(payload)
	return st
}

func withUpperDigest(st federation.Statement) federation.Statement {
	st.PayloadSHA256 = strings.ToUpper(st.PayloadSHA256)
	return st
}

func TestECDSASigner(t *testing.T) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := federation.NewSigner("ngo", priv)
	if err != nil {
		t.Fatalf("NewSigner(ECDSA P-256): %v", err)
	}
	c, st, err := federation.BuildContribution(s, testFed, "ngo/csam", 1, []*hashfedv1.Signal{sig(federation.SHA256, sha256Hex(1))}, "")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := federation.ParsePublicKey(pemPublicKey(t, &priv.PublicKey))
	if err != nil {
		t.Fatalf("ParsePublicKey(P-256): %v", err)
	}
	got, err := federation.OpenStatement(c.Envelope, pub)
	if err != nil || !reflect.DeepEqual(got, st) {
		t.Fatalf("OpenStatement(ECDSA) = %+v, %v; want %+v", got, err, st)
	}

	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := federation.OpenStatement(c.Envelope, &other.PublicKey); !errors.Is(err, federation.ErrBadSignature) {
		t.Errorf("OpenStatement with another ECDSA key = %v, want ErrBadSignature", err)
	}
}

func TestNewSignerRejectsUnsupportedKey(t *testing.T) {
	if _, err := federation.NewSigner("ngo", "not a key"); err == nil {
		t.Error("NewSigner accepted a string as a private key")
	}
}

func TestLoadSigner(t *testing.T) {
	if _, err := federation.LoadSigner("ngo", t.TempDir()+"/missing.pem"); err == nil {
		t.Error("LoadSigner(missing file) succeeded")
	}
	path := t.TempDir() + "/bad.pem"
	if err := os.WriteFile(path, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := federation.LoadSigner("ngo", path); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("LoadSigner(garbage) = %v, want an error naming the file", err)
	}
}

func pemPublicKey(t *testing.T, k any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func TestParsePublicKey(t *testing.T) {
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, genPub, err := federation.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		pem     []byte
		wantErr string
	}{
		{"GenerateSigningKey", genPub, ""},
		{"ed25519", pemPublicKey(t, edPub), ""},
		{"ecdsa p-256", pemPublicKey(t, &p256.PublicKey), ""},
		{"ecdsa p-384", pemPublicKey(t, &p384.PublicKey), "not on P-256"},
		{"rsa", pemPublicKey(t, &rsaKey.PublicKey), "unsupported key type"},
		{"garbage", []byte("garbage"), "PEM"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := federation.ParsePublicKey(tt.pem)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParsePublicKey: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParsePublicKey = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}
