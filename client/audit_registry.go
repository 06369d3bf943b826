package client

import (
	"crypto"
	"fmt"

	"github.com/hashfed/hashfed/federation"
)

// A registry is what an audit knows of the federation's members as it
// replays the ledger: which key verifies an org's statements, and which sets
// an org may publish to, at a given ledger index.
//
// Today every org, key and set comes from the genesis and no entry changes
// them, so the answers are the same at every index. Governance entries (key
// rotation, org removal, set creation) will be applied to the registry in
// ledger order, each key recording the index from which it is valid, so that
// a statement is checked against the key valid at its own index rather than
// the newest one. An incremental audit will then also need the registry as
// of the saved state's size, which [AuditState] would carry.
type registry struct {
	g *federation.Genesis
	// keys holds each org's statement keys, in the order they became valid.
	keys map[string][]validKey
}

// A validKey is an org's statement key and the first ledger index whose
// statements it verifies.
type validKey struct {
	from int64
	key  crypto.PublicKey
}

// genesisRegistry returns the registry as the genesis founds it: every
// org's genesis key is valid from entry 0.
func genesisRegistry(g *federation.Genesis) (*registry, error) {
	r := &registry{g: g, keys: map[string][]validKey{}}
	for _, o := range g.Orgs {
		k, err := federation.ParsePublicKey([]byte(o.SigningKey))
		if err != nil {
			return nil, fmt.Errorf("couldn't load org %q signing key: %w", o.Name, err)
		}
		r.keys[o.Name] = []validKey{{from: 0, key: k}}
	}
	return r, nil
}

// statementKey returns the key that verifies org's statement at index.
func (r *registry) statementKey(org string, index int64) (crypto.PublicKey, error) {
	var key crypto.PublicKey
	for _, k := range r.keys[org] {
		if k.from > index {
			break
		}
		key = k.key
	}
	if key == nil {
		return nil, fmt.Errorf("org %q is not a member at entry %d", org, index)
	}
	return key, nil
}

// mayPublish returns an error unless org may publish into set at index: the
// set exists, org owns it, and org holds the publisher role.
func (r *registry) mayPublish(org, set string, index int64) error {
	var s *federation.Set
	for i := range r.g.Sets {
		if r.g.Sets[i].Name == set {
			s = &r.g.Sets[i]
		}
	}
	if s == nil {
		return fmt.Errorf("statement names set %q, which does not exist", set)
	}
	if s.Owner() != org || !r.g.Org(org).HasRole(federation.RolePublisher) {
		return fmt.Errorf("org %q published into set %q, which it may not", org, set)
	}
	return nil
}
