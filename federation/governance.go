package federation

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"crypto"
)

// ActPayloadType is the DSSE payload type of a governance act. A future
// incompatible encoding would use a different type.
const ActPayloadType = "application/vnd.hashfed.governance.v1+json"

// The kinds of governance act.
const (
	ActAdmitOrg         = "admit-org"          // Org: the new org
	ActRemoveOrg        = "remove-org"         // Name: the org
	ActRotateSigningKey = "rotate-signing-key" // Name: the org; SigningKey: the new PEM public key
	ActRotateCA         = "rotate-ca"          // Name: the org; CACert: the new PEM CA certificate
	ActCreateSet        = "create-set"         // Set: the new set
	ActSetReaders       = "set-readers"        // Name: the set; Readers: the new reader list
)

// ActKinds lists the kinds in a fixed order.
var ActKinds = []string{ActAdmitOrg, ActRemoveOrg, ActRotateSigningKey, ActRotateCA, ActCreateSet, ActSetReaders}

// An Act is a governance act: one change to the registry, approved by a
// threshold of operator orgs, each signing the same JSON in one DSSE
// envelope.
type Act struct {
	Federation string   `json:"federation"`
	Sequence   uint64   `json:"sequence"` // the registry's NextAct: acts apply once, in order
	Kind       string   `json:"kind"`
	Name       string   `json:"name,omitempty"`
	Org        *Org     `json:"org,omitempty"`
	SigningKey string   `json:"signing_key,omitempty"`
	CACert     string   `json:"ca_cert,omitempty"`
	Set        *Set     `json:"set,omitempty"`
	Readers    []string `json:"readers,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

// dsseEnvelope is the DSSE envelope layout.
type dsseEnvelope struct {
	PayloadType string          `json:"payloadType"`
	Payload     string          `json:"payload"`
	Signatures  []dsseSignature `json:"signatures"`
}

type dsseSignature struct {
	KeyID string `json:"keyid"`
	Sig   string `json:"sig"`
}

// ProposeAct encodes an act as an envelope with no signatures yet.
func ProposeAct(a *Act) ([]byte, error) {
	body, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(dsseEnvelope{PayloadType: ActPayloadType, Payload: base64.StdEncoding.EncodeToString(body), Signatures: []dsseSignature{}}, "", "  ")
}

// SignAct adds s's signature to an act envelope, keeping those it has.
func SignAct(env []byte, s *Signer) ([]byte, error) {
	var e dsseEnvelope
	if err := json.Unmarshal(env, &e); err != nil {
		return nil, fmt.Errorf("act envelope is not DSSE JSON: %w", err)
	}
	if e.PayloadType != ActPayloadType {
		return nil, fmt.Errorf("envelope has payload type %q, want %q", e.PayloadType, ActPayloadType)
	}
	body, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("act payload is not base64: %w", err)
	}
	// DSSE verification gives up on the whole envelope at the first
	// signature that is not base64, so no signature on such an envelope,
	// ours included, could ever count.
	for i, sig := range e.Signatures {
		if _, err := base64.StdEncoding.DecodeString(sig.Sig); err != nil {
			if _, err := base64.URLEncoding.DecodeString(sig.Sig); err != nil {
				return nil, fmt.Errorf("act envelope signature %d is not base64, so no signature on the envelope can verify: sign the act as proposed, or a copy without it", i+1)
			}
		}
	}
	signed, err := dsse.WrapSigner(s.s, ActPayloadType).SignMessage(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	var one dsseEnvelope
	if err := json.Unmarshal(signed, &one); err != nil {
		return nil, err
	}
	e.Signatures = append(e.Signatures, one.Signatures...)
	return json.MarshalIndent(e, "", "  ")
}

// PeekAct decodes an act without verifying any signature. The envelope must
// be unambiguous JSON and the act in its canonical encoding (see
// [decodeCanonical]).
func PeekAct(env []byte) (*Act, error) {
	var e dsseEnvelope
	if err := decodeStrict(env, &e); err != nil {
		return nil, fmt.Errorf("act envelope is not DSSE JSON: %w", err)
	}
	if e.PayloadType != ActPayloadType {
		return nil, fmt.Errorf("envelope has payload type %q, want %q", e.PayloadType, ActPayloadType)
	}
	body, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("act payload is not base64: %w", err)
	}
	var a Act
	if err := decodeCanonical(body, &a); err != nil {
		return nil, fmt.Errorf("act is not valid JSON: %w", err)
	}
	if a.Sequence == 0 {
		return nil, errors.New("act sequence is 0: act sequences start at 1")
	}
	return &a, nil
}

// ActSigners returns, sorted, the operator orgs whose current key verifies a
// signature on env at ledger index index.
func (r *Registry) ActSigners(env []byte, index int64) []string {
	var out []string
	for _, op := range r.Operators() {
		key, err := r.KeyAt(op, index)
		if err != nil {
			continue
		}
		if verifyDSSE(env, key, ActPayloadType) == nil {
			out = append(out, op)
		}
	}
	return out
}

func verifyDSSE(env []byte, key crypto.PublicKey, payloadType string) error {
	v, err := signature.LoadVerifier(key, crypto.SHA256)
	if err != nil {
		return err
	}
	return dsse.WrapVerifier(v, dsse.WithExpectedPayloadType(payloadType)).VerifySignature(bytes.NewReader(env), nil)
}

// ErrActNotApproved is wrapped when too few operator orgs signed an act.
var ErrActNotApproved = errors.New("governance act lacks approvals")

// CheckAct verifies an act envelope proposed at ledger index index against r:
// a threshold of operator orgs signed it, it names this federation and the
// next act sequence, and it makes a valid change. It returns the act and
// who signed it; r is not modified.
func (r *Registry) CheckAct(federation string, env []byte, index int64) (*Act, []string, error) {
	a, err := PeekAct(env)
	if err != nil {
		return nil, nil, reject(CodeInvalid, "%v", err)
	}
	if a.Federation != federation {
		return nil, nil, reject(CodeInvalid, "act is for federation %q, this is %q", a.Federation, federation)
	}
	if a.Sequence < r.NextAct {
		return nil, nil, reject(CodeAlreadyExists, "act sequence %d is already used (the next is %d): this act is a replay", a.Sequence, r.NextAct)
	}
	signers := r.ActSigners(env, index)
	if need := r.ActThreshold(); len(signers) < need {
		return nil, signers, reject(CodePermissionDenied, "%v: signed by %d operator org(s) %v, %d of %v required", ErrActNotApproved, len(signers), signers, need, r.Operators())
	}
	if a.Sequence > r.NextAct {
		return nil, signers, reject(CodeFailedPrecondition, "act sequence %d skips ahead: the next must be %d", a.Sequence, r.NextAct)
	}
	if err := r.Clone().apply(a, index); err != nil {
		return nil, signers, err
	}
	return a, signers, nil
}

// ApplyAct applies an act already checked with CheckAct at index.
func (r *Registry) ApplyAct(a *Act, index int64) error { return r.apply(a, index) }

// apply validates and makes the change; on error r may be partly changed,
// so callers check on a clone first.
func (r *Registry) apply(a *Act, index int64) error {
	member := func(name string) (*RegistryOrg, error) {
		o := r.Org(name)
		if o == nil {
			return nil, reject(CodeNotFound, "org %q is not a member", name)
		}
		return o, nil
	}
	checkReaders := func(set string, readers []string) error {
		for _, rd := range readers {
			o := r.Org(rd)
			if o == nil {
				return reject(CodeNotFound, "set %q: reader %q is not a member", set, rd)
			}
			if !o.HasRole(RoleSubscriber) && !o.HasRole(RolePublisher) {
				return reject(CodeInvalid, "set %q: reader %q holds neither the subscriber nor the publisher role", set, rd)
			}
		}
		return nil
	}
	switch a.Kind {
	case ActAdmitOrg:
		if a.Org == nil {
			return reject(CodeInvalid, "admit-org needs an org")
		}
		o := *a.Org
		if r.Orgs[o.Name] != nil {
			return reject(CodeAlreadyExists, "org %q is or was a member; names are never reused", o.Name)
		}
		g := Genesis{Version: GenesisVersion, Federation: "x", Orgs: []Org{o}}
		if err := g.validateOrgs(); err != nil {
			return reject(CodeInvalid, "%v", err)
		}
		r.Orgs[o.Name] = &RegistryOrg{Org: o, Keys: []KeyEpoch{{From: index, PEM: o.SigningKey}}}
	case ActRemoveOrg:
		o, err := member(a.Name)
		if err != nil {
			return err
		}
		if o.HasRole(RoleOperator) && len(r.Operators()) == 1 {
			return reject(CodeFailedPrecondition, "org %q is the last operator org", a.Name)
		}
		o.Removed = index
	case ActRotateSigningKey:
		o, err := member(a.Name)
		if err != nil {
			return err
		}
		if _, err := ParsePublicKey([]byte(a.SigningKey)); err != nil {
			return reject(CodeInvalid, "new signing key: %v", err)
		}
		if a.SigningKey == o.Keys[len(o.Keys)-1].PEM {
			return reject(CodeInvalid, "the new signing key is the current one")
		}
		o.SigningKey = a.SigningKey
		o.Keys = append(o.Keys, KeyEpoch{From: index + 1, PEM: a.SigningKey})
	case ActRotateCA:
		o, err := member(a.Name)
		if err != nil {
			return err
		}
		n := o.Org
		n.CACert = a.CACert
		g := Genesis{Orgs: []Org{n}}
		if err := g.validateOrgs(); err != nil {
			return reject(CodeInvalid, "%v", err)
		}
		o.CACert = a.CACert
	case ActCreateSet:
		if a.Set == nil {
			return reject(CodeInvalid, "create-set needs a set")
		}
		s := *a.Set
		if err := ValidSetName(s.Name); err != nil {
			return reject(CodeInvalid, "%v", err)
		}
		if r.Sets[s.Name] != nil {
			return reject(CodeAlreadyExists, "set %q exists", s.Name)
		}
		owner := r.Org(s.Owner())
		if owner == nil || !owner.HasRole(RolePublisher) {
			return reject(CodeInvalid, "set %q: owner %q is not a member holding the publisher role", s.Name, s.Owner())
		}
		if len(s.Types) == 0 {
			return reject(CodeInvalid, "set %q allows no signal types", s.Name)
		}
		for _, t := range s.Types {
			if _, err := ParseSignalType(string(t)); err != nil || !slices.Contains(SignalTypes, t) {
				return reject(CodeInvalid, "set %q: unknown signal type %q", s.Name, t)
			}
		}
		if err := checkReaders(s.Name, s.Readers); err != nil {
			return err
		}
		if s.Readers == nil {
			s.Readers = []string{}
		}
		r.Sets[s.Name] = &s
	case ActSetReaders:
		s := r.Sets[a.Name]
		if s == nil {
			return reject(CodeNotFound, "set %q does not exist", a.Name)
		}
		if err := checkReaders(a.Name, a.Readers); err != nil {
			return err
		}
		s.Readers = slices.Clone(a.Readers)
		if s.Readers == nil {
			s.Readers = []string{}
		}
	default:
		return reject(CodeInvalid, "unknown act kind %q (want one of %v)", a.Kind, ActKinds)
	}
	r.NextAct = a.Sequence + 1
	return nil
}
