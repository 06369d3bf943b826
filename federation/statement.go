package federation

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"google.golang.org/protobuf/proto"

	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// StatementPayloadType is the DSSE payload type of a statement. A future
// incompatible statement encoding would use a different type.
const StatementPayloadType = "application/vnd.hashfed.statement.v1+json"

// Limits on one contribution.
const (
	// MaxEnvelopeSize bounds a statement's DSSE envelope, which becomes (most
	// of) a ledger leaf; C2SP tiles allow at most 65,535 bytes per entry.
	MaxEnvelopeSize = 16 << 10
	// MaxPayloadSize bounds a contribution's serialized payload.
	MaxPayloadSize = 3 << 20
	// MaxSignals bounds the signals in one contribution.
	MaxSignals = 10_000
)

// A Statement is the small signed part of a contribution. Its JSON encoding is
// the DSSE payload; auditors verify it without ever seeing signal values.
type Statement struct {
	// Federation must equal the genesis federation name, so a statement cannot
	// be replayed into another federation.
	Federation string `json:"federation"`
	// Org is the publishing org, whose signing key signed this statement.
	Org string `json:"org"`
	// Set is the hash set changed, owned by Org.
	Set string `json:"set"`
	// Sequence is 1 for the org's first contribution to the set and one more for each after.
	Sequence uint64 `json:"sequence"`
	// Op is the change: "add", "retract", "relabel" or "feedback" (see [Op]).
	Op string `json:"op"`
	// Verdict is a feedback statement's judgement of its signals: one of
	// [VerdictTruePositive], [VerdictFalsePositive], [VerdictDisputed].
	// Empty for every other op.
	Verdict string `json:"verdict,omitempty"`
	// Count is the number of signals in the payload.
	Count int `json:"count"`
	// Types lists the distinct signal types in the payload, sorted. It lets a
	// subscriber filtering by type check that a node leaving the payload out
	// had the right to.
	Types []string `json:"types"`
	// Labels lists the distinct labels the payload's signals carry, sorted
	// (add and relabel only); subscribers filtering by label check omissions
	// against it.
	Labels []string `json:"labels,omitempty"`
	// PayloadSHA256 is the lowercase hex SHA-256 of the serialized payload.
	PayloadSHA256 string `json:"payload_sha256"`
	// IssuedAt is the publisher's own RFC 3339 timestamp; informative only.
	IssuedAt string `json:"issued_at,omitempty"`
}

// A Signer signs statements for one org.
type Signer struct {
	Org string
	s   signature.Signer
}

// NewSigner wraps a private key (Ed25519 or ECDSA P-256) as org's statement
// signer. It refuses other keys: no genesis or key rotation accepts their
// public keys (see [ParsePublicKey]), so no node would verify what they sign.
func NewSigner(org string, key crypto.PrivateKey) (*Signer, error) {
	switch k := key.(type) {
	case ed25519.PrivateKey:
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("loading signing key for org %q: ECDSA key is not on P-256 (want Ed25519 or ECDSA P-256)", org)
		}
	default:
		return nil, fmt.Errorf("loading signing key for org %q: unsupported key type %T (want Ed25519 or ECDSA P-256)", org, key)
	}
	s, err := signature.LoadSigner(key, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("loading signing key for org %q: %w", org, err)
	}
	return &Signer{Org: org, s: s}, nil
}

// LoadSigner reads a PEM private key file written by [GenerateSigningKey].
func LoadSigner(org, path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := cryptoutils.UnmarshalPEMToPrivateKey(b, cryptoutils.SkipPassword)
	if err != nil {
		return nil, fmt.Errorf("parsing signing key %s: %w", path, err)
	}
	return NewSigner(org, k)
}

// GenerateSigningKey makes a fresh Ed25519 statement-signing key pair and
// returns the private key and the public key, both PEM.
func GenerateSigningKey() (privPEM, pubPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	privPEM, err = cryptoutils.MarshalPrivateKeyToPEM(priv)
	if err != nil {
		return nil, nil, err
	}
	pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, nil, err
	}
	return privPEM, pubPEM, nil
}

// SignStatement encodes st and signs it into a DSSE envelope.
func (s *Signer) SignStatement(st *Statement) ([]byte, error) {
	if st.Org != s.Org {
		return nil, fmt.Errorf("statement names org %q but the key belongs to %q", st.Org, s.Org)
	}
	body, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	return dsse.WrapSigner(s.s, StatementPayloadType).SignMessage(bytes.NewReader(body))
}

// BuildContribution returns the signed contribution adding signals to set
// as (signer's org, seq). It is [BuildChange] with [OpAdd].
func BuildContribution(s *Signer, federation, set string, seq uint64, signals []*hashfedv1.Signal, issuedAt string) (*hashfedv1.Contribution, *Statement, error) {
	return BuildChange(s, federation, set, seq, Change{Op: OpAdd, Signals: signals}, issuedAt)
}

// BuildChange validates a change, serializes it into a payload and returns
// the signed contribution for (signer's org, set, seq).
func BuildChange(s *Signer, federation, set string, seq uint64, ch Change, issuedAt string) (*hashfedv1.Contribution, *Statement, error) {
	p := &hashfedv1.Payload{Signals: ch.Signals, Reason: ch.Reason}
	types, labels, err := CheckChange(ch.Op, ch.Verdict, p)
	if err != nil {
		return nil, nil, err
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(payload)
	st := &Statement{
		Federation:    federation,
		Org:           s.Org,
		Set:           set,
		Sequence:      seq,
		Op:            ch.Op,
		Verdict:       ch.Verdict,
		Count:         len(ch.Signals),
		Types:         types,
		Labels:        labels,
		PayloadSHA256: hex.EncodeToString(sum[:]),
		IssuedAt:      issuedAt,
	}
	env, err := s.SignStatement(st)
	if err != nil {
		return nil, nil, err
	}
	if len(env) > MaxEnvelopeSize {
		return nil, nil, fmt.Errorf("the signed statement is %d bytes, at most %d allowed (its signals carry %d distinct labels): split them into several contributions", len(env), MaxEnvelopeSize, len(labels))
	}
	return &hashfedv1.Contribution{Envelope: env, Payload: payload}, st, nil
}

// envelope is the DSSE envelope as far as hashfed needs to read it before
// verification.
type envelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	} `json:"signatures"`
}

// PeekStatement decodes a statement from its envelope WITHOUT verifying the
// signature. Use it only to find which key to verify with; trust nothing it
// returns until [OpenStatement] succeeds.
func PeekStatement(env []byte) (*Statement, error) {
	var e envelope
	if err := decodeStrict(env, &e); err != nil {
		return nil, fmt.Errorf("statement envelope is not DSSE JSON: %w", err)
	}
	if e.PayloadType != StatementPayloadType {
		return nil, fmt.Errorf("statement envelope has payload type %q, want %q", e.PayloadType, StatementPayloadType)
	}
	if len(e.Signatures) == 0 {
		return nil, errors.New("statement envelope carries no signature")
	}
	body, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("statement envelope payload is not base64: %w", err)
	}
	return decodeStatement(body)
}

// decodeStatement decodes a statement, which must be in its canonical
// encoding (see [decodeCanonical]): the one reading every verifier agrees on.
func decodeStatement(body []byte) (*Statement, error) {
	var st Statement
	if err := decodeCanonical(body, &st); err != nil {
		return nil, fmt.Errorf("statement is not valid JSON: %w", err)
	}
	if st.Sequence == 0 {
		return nil, errors.New("statement sequence is 0: sequences start at 1")
	}
	return &st, nil
}

// ErrBadSignature is wrapped by errors from [OpenStatement] when the
// signature does not verify.
var ErrBadSignature = errors.New("statement signature does not verify")

// OpenStatement verifies env's DSSE signature with key and returns the signed
// statement.
func OpenStatement(env []byte, key crypto.PublicKey) (*Statement, error) {
	// The DSSE verifier parses the envelope with encoding/json: refuse first
	// what another parser could read differently.
	// No signature on such an envelope counts.
	var e envelope
	if err := decodeStrict(env, &e); err != nil {
		return nil, fmt.Errorf("%w: the statement envelope is not DSSE JSON: %w", ErrBadSignature, err)
	}
	v, err := signature.LoadVerifier(key, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	var body []byte
	dv := dsse.WrapVerifier(v, dsse.WithExpectedPayloadType(StatementPayloadType), dsse.WithDecodedPayload(&body))
	if err := dv.VerifySignature(bytes.NewReader(env), nil); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	return decodeStatement(body)
}

// CheckPayload verifies that payload is what st commits to and that it is a
// well-formed change of st's op (see [CheckChange]), and returns it.
func CheckPayload(st *Statement, payload []byte) (*hashfedv1.Payload, error) {
	sum := sha256.Sum256(payload)
	if hex.EncodeToString(sum[:]) != st.PayloadSHA256 {
		return nil, fmt.Errorf("payload SHA-256 %x does not match the statement's %s", sum, st.PayloadSHA256)
	}
	var p hashfedv1.Payload
	if err := proto.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("payload does not decode: %w", err)
	}
	if len(p.Signals) != st.Count {
		return nil, fmt.Errorf("payload has %d signals, the statement says %d", len(p.Signals), st.Count)
	}
	types, labels, err := CheckChange(st.Op, st.Verdict, &p)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(types, st.Types) {
		return nil, fmt.Errorf("payload holds signal types %v, the statement says %v", types, st.Types)
	}
	if !slices.Equal(labels, st.Labels) {
		return nil, fmt.Errorf("payload's signals carry labels %v, the statement says %v", short(strings.Join(labels, " ")), short(strings.Join(st.Labels, " ")))
	}
	return &p, nil
}
