package client

import (
	"context"

	"github.com/hashfed/hashfed/federation"
)

// A SplitSide is one input of [CheckSplitView]: the address of a node, the
// signed checkpoint it served, and the client whose node serves the
// consistency proofs for it (nil for a saved state).
type SplitSide struct {
	Node   string
	Signed []byte
	Prover *Client
}

// CheckSplitView runs the split-view detector over two signed checkpoints,
// after verifying their signatures against g.
func CheckSplitView(ctx context.Context, g *federation.Genesis, a, b SplitSide) error {
	side := func(s SplitSide) (seenCheckpoint, error) {
		sc, err := openCheckpoint(g, s.Signed)
		if err != nil {
			return seenCheckpoint{}, err
		}
		seen := seenCheckpoint{cp: sc.Checkpoint, ev: Evidence{Node: s.Node, Checkpoint: s.Signed}}
		if s.Prover != nil {
			seen.prove = s.Prover.consistencyProof
		}
		return seen, nil
	}
	sa, err := side(a)
	if err != nil {
		return err
	}
	sb, err := side(b)
	if err != nil {
		return err
	}
	return checkSplitView(ctx, sa, sb)
}

// AcceptCheckpoint applies p to a signed checkpoint and returns the voting
// orgs that signed it.
func AcceptCheckpoint(g *federation.Genesis, p CheckpointPolicy, signed []byte) ([]string, error) {
	sc, err := p.accept(g, signed)
	if err != nil {
		return nil, err
	}
	return sc.Orgs, nil
}
