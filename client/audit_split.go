package client

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/ledger"
)

// SavedState is the [Evidence.Node] of the checkpoint in an auditor's saved
// [AuditState].
const SavedState = "saved audit state"

// Evidence is one side of a split view: a signed checkpoint and where it
// came from.
type Evidence struct {
	// Node is the address of the node that served the checkpoint, or
	// [SavedState] for the checkpoint an earlier audit accepted.
	Node string
	// Checkpoint is the signed checkpoint note, byte for byte as received.
	Checkpoint []byte
}

// A SplitViewError reports two signed checkpoints that cannot both describe
// one ledger: two of one size with different roots, or two of different
// sizes for which the holder of the larger tree could not prove that it
// extends the smaller. Either way, some signer has signed a fork or a node
// serves a tree it has not signed consistently; A and B are the evidence,
// checkable by anyone who holds the genesis.
type SplitViewError struct {
	A, B Evidence
	// Reason says how A and B disagree.
	Reason string
	// Err is the failed proof check, if the sizes differ.
	Err error
}

func (e *SplitViewError) Error() string {
	msg := fmt.Sprintf("split view between %s and %s: %s", e.A.Node, e.B.Node, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *SplitViewError) Unwrap() error { return e.Err }

// A consistencyProver returns a proof that the tree of newSize leaves
// extends the tree of oldSize leaves, as a node's GetConsistencyProof does.
type consistencyProver func(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error)

// A seenCheckpoint is a verified checkpoint and its provenance: the evidence
// and, if it came from a node, that node's proofs.
type seenCheckpoint struct {
	cp    ledger.Checkpoint
	ev    Evidence
	prove consistencyProver // nil for a saved state
}

// checkSplitView checks that a and b are views of one ledger. Equal sizes
// need equal roots. For different sizes it asks the holder of the larger
// tree for a consistency proof and verifies it. It returns a
// *[SplitViewError] if they are not views of one ledger, and another error
// if the proof could not be obtained.
func checkSplitView(ctx context.Context, a, b seenCheckpoint) error {
	if a.cp.Size == b.cp.Size {
		if a.cp.Hash != b.cp.Hash {
			return &SplitViewError{A: a.ev, B: b.ev, Reason: fmt.Sprintf("two checkpoints of size %d with different roots", a.cp.Size)}
		}
		return nil
	}
	small, large := a, b
	if small.cp.Size > large.cp.Size {
		small, large = large, small
	}
	if large.prove == nil {
		return fmt.Errorf("no source of a consistency proof from size %d to %d", small.cp.Size, large.cp.Size)
	}
	proof, err := large.prove(ctx, small.cp.Size, large.cp.Size)
	if err != nil {
		return fmt.Errorf("couldn't get a consistency proof from %s: %w", large.ev.Node, err)
	}
	if err := ledger.VerifyConsistency(small.cp.Size, small.cp.Hash, large.cp.Size, large.cp.Hash, proof); err != nil {
		if !errors.Is(err, ledger.ErrInvalidProof) {
			return err
		}
		return &SplitViewError{A: a.ev, B: b.ev,
			Reason: fmt.Sprintf("%s cannot prove that its checkpoint of size %d extends the one of size %d", large.ev.Node, large.cp.Size, small.cp.Size),
			Err:    err}
	}
	return nil
}
