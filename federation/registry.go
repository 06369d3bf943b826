package federation

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
)

// A Registry is who is in the federation at one point of the ledger: orgs
// with their roles, CA certificates and statement keys, and the hash sets.
// The genesis founds it; governance acts change it. The state machine keeps
// one; an auditor replays its own from the ledger, so it can check every
// statement against the key that was valid at the statement's index.
//
// A Registry is not safe for concurrent use.
type Registry struct {
	// Orgs by name, including removed ones (their history must still verify).
	Orgs map[string]*RegistryOrg `json:"orgs"`
	// Sets by name.
	Sets map[string]*Set `json:"sets"`
	// NextAct is the sequence number the next governance act must carry.
	NextAct uint64 `json:"next_act"`
	// Threshold is the genesis governance_threshold (0: a majority of operator orgs).
	Threshold int `json:"threshold"`
}

// A RegistryOrg is an org as the registry knows it.
type RegistryOrg struct {
	Org
	// Removed is the ledger index of the act that removed the org, or 0.
	Removed int64 `json:"removed,omitempty"`
	// Keys are the org's statement keys with the index from which each is
	// valid; the last is current. Statements at index i verify under the last
	// key whose From <= i.
	Keys []KeyEpoch `json:"keys"`
}

// A KeyEpoch is a statement key and the first ledger index it is valid for.
type KeyEpoch struct {
	From int64  `json:"from"`
	PEM  string `json:"pem"`
}

// NewRegistry returns the registry a genesis founds (valid from entry 0).
func NewRegistry(g *Genesis) *Registry {
	r := &Registry{Orgs: map[string]*RegistryOrg{}, Sets: map[string]*Set{}, NextAct: 1, Threshold: g.GovernanceThreshold}
	for _, o := range g.Orgs {
		r.Orgs[o.Name] = &RegistryOrg{Org: o, Keys: []KeyEpoch{{From: 0, PEM: o.SigningKey}}}
	}
	for _, s := range g.Sets {
		s := s
		r.Sets[s.Name] = &s
	}
	return r
}

// Clone returns a deep copy.
func (r *Registry) Clone() *Registry {
	b, _ := json.Marshal(r)
	var c Registry
	_ = json.Unmarshal(b, &c)
	return &c
}

// Org returns a member org (nil if unknown or removed).
func (r *Registry) Org(name string) *RegistryOrg {
	if o := r.Orgs[name]; o != nil && o.Removed == 0 {
		return o
	}
	return nil
}

// KeyAt returns the statement key org used at ledger index i, and whether
// the org was a member then.
func (r *Registry) KeyAt(org string, i int64) (crypto.PublicKey, error) {
	o := r.Orgs[org]
	if o == nil {
		return nil, fmt.Errorf("org %q is not in the federation", org)
	}
	if o.Removed != 0 && i >= o.Removed {
		return nil, fmt.Errorf("org %q was removed at entry %d", org, o.Removed)
	}
	var pem string
	for _, k := range o.Keys {
		if k.From <= i {
			pem = k.PEM
		}
	}
	if pem == "" {
		return nil, fmt.Errorf("org %q had no key at entry %d", org, i)
	}
	return ParsePublicKey([]byte(pem))
}

// Operators returns the member orgs holding the operator role, sorted.
func (r *Registry) Operators() []string {
	var out []string
	for name, o := range r.Orgs {
		if o.Removed == 0 && o.HasRole(RoleOperator) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// ActThreshold is how many distinct operator orgs must sign a governance act.
func (r *Registry) ActThreshold() int {
	n := len(r.Operators())
	if r.Threshold > 0 {
		return min(r.Threshold, n)
	}
	return n/2 + 1
}

// CAs returns every member org's CA certificate, for TLS trust.
func (r *Registry) CAs() (map[string]*x509.Certificate, error) {
	out := map[string]*x509.Certificate{}
	for name, o := range r.Orgs {
		if o.Removed != 0 {
			continue
		}
		c, err := o.CACertificate()
		if err != nil {
			return nil, fmt.Errorf("org %q: %w", name, err)
		}
		out[name] = c
	}
	return out, nil
}

// CanRead reports whether org may receive set's values now.
func (r *Registry) CanRead(org, set string) bool {
	s, ok := r.Sets[set]
	return ok && r.Org(org) != nil && (s.Owner() == org || slices.Contains(s.Readers, org))
}
