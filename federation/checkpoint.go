package federation

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/hashfed/hashfed/ledger"
)

// VotingOrgs returns, in genesis order, the orgs that run at least one voting node.
func (g *Genesis) VotingOrgs() []string {
	var out []string
	for _, n := range g.Nodes {
		if n.Voter && !slices.Contains(out, n.Org) {
			out = append(out, n.Org)
		}
	}
	return out
}

// CheckpointQuorum is how many distinct voting orgs must sign a checkpoint
// for the federation to publish it: a strict majority of the voting orgs.
func (g *Genesis) CheckpointQuorum() int { return len(g.VotingOrgs())/2 + 1 }

// SigningOrgs returns the distinct voting orgs whose nodes' signatures
// verified on n, in genesis order. Key names are "<federation>/<node id>".
func (g *Genesis) SigningOrgs(n *note.Note) []string {
	signed := map[string]bool{}
	for _, s := range n.Sigs {
		id, ok := strings.CutPrefix(s.Name, g.Federation+"/")
		if !ok {
			continue
		}
		if gn := g.Node(id); gn != nil && gn.Voter {
			signed[gn.Org] = true
		}
	}
	var out []string
	for _, o := range g.VotingOrgs() {
		if signed[o] {
			out = append(out, o)
		}
	}
	return out
}

// OpenCosigned verifies a cosigned checkpoint against the genesis's node
// keys and returns it with the orgs that signed it. It does not apply a
// quorum: callers decide how many orgs they require.
func (g *Genesis) OpenCosigned(signed []byte) (ledger.Checkpoint, []string, error) {
	verifiers, err := g.CheckpointVerifiers()
	if err != nil {
		return ledger.Checkpoint{}, nil, err
	}
	cp, n, err := ledger.OpenCheckpoint(signed, g.Federation, verifiers)
	if err != nil {
		return ledger.Checkpoint{}, nil, err
	}
	return cp, g.SigningOrgs(n), nil
}

// checkCheckpointLocked validates a cosigned checkpoint proposed for
// publication: signed by a quorum of voting orgs, larger than the last one
// published, and a prefix of this node's ledger.
func (s *State) checkCheckpointLocked(signed []byte) (ledger.Checkpoint, error) {
	cp, signers, err := s.genesis.OpenCosigned(signed)
	if err != nil {
		return cp, reject(CodeInvalid, "checkpoint does not verify: %v", err)
	}
	// Only voting orgs that are still members count: a removed org's node
	// keys still verify (its old checkpoints must), but it no longer vouches.
	voting := s.votingMembersLocked()
	var orgs []string
	for _, o := range signers {
		if slices.Contains(voting, o) {
			orgs = append(orgs, o)
		}
	}
	if q := len(voting)/2 + 1; len(orgs) < q {
		return cp, reject(CodeInvalid, "checkpoint is signed by %d voting member org(s) %v, a quorum is %d of %v", len(orgs), orgs, q, voting)
	}
	if cp.Size <= s.cpSize {
		return cp, reject(CodeAlreadyExists, "checkpoint of size %d is not larger than the last published (%d)", cp.Size, s.cpSize)
	}
	if cp.Size > s.tree.Size() {
		return cp, reject(CodeInvalid, "checkpoint of size %d covers more than the %d entries of the ledger", cp.Size, s.tree.Size())
	}
	root, err := s.tree.RootAt(cp.Size)
	if err != nil {
		return cp, reject(CodeInvalid, "computing root at size %d: %v", cp.Size, err)
	}
	if root != cp.Hash {
		return cp, reject(CodeInvalid, "checkpoint root %s at size %d differs from this ledger's %s", cp.Hash, cp.Size, root)
	}
	return cp, nil
}

// votingMembersLocked returns the genesis voting orgs that are still members.
func (s *State) votingMembersLocked() []string {
	var out []string
	for _, o := range s.genesis.VotingOrgs() {
		if s.reg.Org(o) != nil {
			out = append(out, o)
		}
	}
	return out
}

// LatestCheckpoint returns the latest published cosigned checkpoint and its
// size, or nil and 0 before the first.
func (s *State) LatestCheckpoint() ([]byte, int64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.checkpoint, s.cpSize
}

// RootAt returns the ledger's root hash at an earlier size.
func (s *State) RootAt(size int64) (ledger.Checkpoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if size > s.tree.Size() {
		return ledger.Checkpoint{}, fmt.Errorf("size %d is beyond the ledger's %d entries", size, s.tree.Size())
	}
	root, err := s.tree.RootAt(size)
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	return ledger.Checkpoint{Origin: s.genesis.Federation, Size: size, Hash: root}, nil
}

// CheckCheckpoint runs the checks Apply makes on a checkpoint command without
// applying it; the leader runs it before proposing.
func (s *State) CheckCheckpoint(signed []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, err := s.checkCheckpointLocked(signed)
	return err
}
