package client

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
)

// A CheckpointPolicy says which signed checkpoints an auditor accepts.
//
// A checkpoint is accepted when its note carries valid signatures, by the
// checkpoint keys the genesis registers for voting nodes, from at least
// MinOrgs distinct orgs. Signatures by non-voting nodes, by unknown keys (such
// as witnesses') and repeated signatures of one org count once or not at all.
type CheckpointPolicy struct {
	// MinOrgs is how many distinct voting orgs must have signed. Zero means a
	// majority of the genesis's voting orgs (the orgs owning at least one
	// voting node): floor(n/2)+1.
	MinOrgs int
}

// need returns how many voting orgs must sign under p, or an error if p can
// never be met in the federation g founds.
func (p CheckpointPolicy) need(g *federation.Genesis) (int, error) {
	voting := len(g.VotingOrgs())
	switch {
	case p.MinOrgs < 0:
		return 0, fmt.Errorf("checkpoint policy: minimum of %d orgs is negative", p.MinOrgs)
	case p.MinOrgs > voting:
		return 0, fmt.Errorf("checkpoint policy: a checkpoint must be signed by %d orgs, but the federation has only %d voting orgs", p.MinOrgs, voting)
	case p.MinOrgs == 0:
		return g.CheckpointQuorum(), nil
	}
	return p.MinOrgs, nil
}

// A PolicyError is a checkpoint whose signatures verify but come from too
// few voting orgs.
type PolicyError struct {
	// Orgs are the voting orgs whose nodes signed, in genesis order.
	Orgs []string
	// Need is how many the policy requires; Voting how many voting orgs the
	// federation has.
	Need, Voting int
}

func (e *PolicyError) Error() string {
	signed := "none"
	if len(e.Orgs) > 0 {
		signed = strings.Join(e.Orgs, ", ")
	}
	return fmt.Sprintf("checkpoint is signed by %d voting org(s) (%s), the policy requires %d of the %d voting orgs", len(e.Orgs), signed, e.Need, e.Voting)
}

// A signedCheckpoint is a checkpoint whose note signatures verified.
type signedCheckpoint struct {
	ledger.Checkpoint
	// Note is the signed note, exactly as served.
	Note []byte
	// SignedBy are the names of the genesis keys whose signatures verified;
	// Orgs the distinct voting orgs among their nodes, in genesis order.
	SignedBy, Orgs []string
}

// openCheckpoint verifies a signed checkpoint of g's federation against the
// checkpoint keys g registers, without applying a policy.
func openCheckpoint(g *federation.Genesis, signed []byte) (*signedCheckpoint, error) {
	verifiers, err := g.CheckpointVerifiers()
	if err != nil {
		return nil, err
	}
	cp, n, err := ledger.OpenCheckpoint(signed, g.Federation, verifiers)
	if err != nil {
		return nil, err
	}
	sc := &signedCheckpoint{Checkpoint: cp, Note: signed, Orgs: g.SigningOrgs(n)}
	for _, s := range n.Sigs {
		sc.SignedBy = append(sc.SignedBy, s.Name)
	}
	return sc, nil
}

// accept opens signed and applies p to it. It returns a *[PolicyError] for
// a checkpoint signed by too few voting orgs.
func (p CheckpointPolicy) accept(g *federation.Genesis, signed []byte) (*signedCheckpoint, error) {
	need, err := p.need(g)
	if err != nil {
		return nil, err
	}
	sc, err := openCheckpoint(g, signed)
	if err != nil {
		return nil, err
	}
	if len(sc.Orgs) < need {
		return nil, &PolicyError{Orgs: sc.Orgs, Need: need, Voting: len(g.VotingOrgs())}
	}
	if sc.Size == 0 {
		return nil, errors.New("checkpoint has size 0: the ledger does not even hold its genesis entry")
	}
	return sc, nil
}
