package ledger

import (
	"crypto/sha256"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// emptyRoot is the root hash of the empty tree, SHA-256 of the empty string
// (RFC 6962, Section 2.1).
var emptyRoot = tlog.Hash(sha256.Sum256(nil))

// LeafHash returns the RFC 6962 hash of leaf, SHA-256(0x00 || leaf), as
// [tlog.RecordHash] does.
func LeafHash(leaf []byte) tlog.Hash {
	return tlog.RecordHash(leaf)
}

// VerifyInclusion checks that proof proves that leaf is leaf number index of
// the tree of size leaves with root hash root. It returns an error wrapping
// [ErrIndexOutOfRange] unless 0 <= index < size, and one wrapping
// [ErrInvalidProof] if the proof does not hold.
func VerifyInclusion(leaf []byte, index, size int64, root tlog.Hash, proof tlog.RecordProof) error {
	if index < 0 || index >= size {
		return fmt.Errorf("verifying inclusion of leaf %d in tree of size %d: %w", index, size, ErrIndexOutOfRange)
	}
	if err := tlog.CheckRecord(proof, size, root, index, LeafHash(leaf)); err != nil {
		return fmt.Errorf("%w: leaf %d in tree of size %d: %w", ErrInvalidProof, index, size, err)
	}
	return nil
}

// VerifyConsistency checks that proof proves that the tree of newSize leaves
// with root hash newRoot extends the tree of oldSize leaves with root hash
// oldRoot. It returns an error wrapping [ErrIndexOutOfRange] unless
// 0 <= oldSize <= newSize, and one wrapping [ErrInvalidProof] if the proof
// does not hold.
//
// The empty tree is extended by every tree: for oldSize 0 the proof must be
// empty and oldRoot must be the empty tree's hash. For equal sizes the proof
// must be empty and the roots equal.
func VerifyConsistency(oldSize int64, oldRoot tlog.Hash, newSize int64, newRoot tlog.Hash, proof tlog.TreeProof) error {
	if oldSize < 0 || oldSize > newSize {
		return fmt.Errorf("verifying consistency from size %d to %d: %w", oldSize, newSize, ErrIndexOutOfRange)
	}
	if oldSize == 0 {
		switch {
		case len(proof) != 0:
			return fmt.Errorf("%w: non-empty proof from the empty tree", ErrInvalidProof)
		case oldRoot != emptyRoot:
			return fmt.Errorf("%w: root %v is not the empty tree's", ErrInvalidProof, oldRoot)
		case newSize == 0 && newRoot != emptyRoot:
			return fmt.Errorf("%w: root %v is not the empty tree's", ErrInvalidProof, newRoot)
		}
		return nil
	}
	// Mind the order: tlog takes the new tree first.
	if err := tlog.CheckTree(proof, newSize, newRoot, oldSize, oldRoot); err != nil {
		return fmt.Errorf("%w: from size %d to %d: %w", ErrInvalidProof, oldSize, newSize, err)
	}
	return nil
}

// RootFromLeaves returns the root hash of the tree whose leaves are leaves,
// in order, computing it directly rather than through a [Store]; it is meant
// for audits that fetch every leaf. It returns an error wrapping
// [ErrLeafTooLarge] if a leaf is longer than [MaxLeafSize], since no [Tree]
// can hold one.
func RootFromLeaves(leaves [][]byte) (tlog.Hash, error) {
	// stack holds the roots of the complete subtrees covering the leaves seen
	// so far, largest (leftmost) first; heights holds their heights. After
	// leaf i the heights are the set bits of i+1, as in a tlog stored-hash
	// merge, so the stack never exceeds 64 entries.
	var stack []tlog.Hash
	var heights []int
	for i, leaf := range leaves {
		if len(leaf) > MaxLeafSize {
			return tlog.Hash{}, fmt.Errorf("leaf %d is %d bytes: %w", i, len(leaf), ErrLeafTooLarge)
		}
		h, height := LeafHash(leaf), 0
		for len(heights) > 0 && heights[len(heights)-1] == height {
			h = tlog.NodeHash(stack[len(stack)-1], h)
			stack, heights = stack[:len(stack)-1], heights[:len(heights)-1]
			height++
		}
		stack, heights = append(stack, h), append(heights, height)
	}
	if len(stack) == 0 {
		return emptyRoot, nil
	}
	// RFC 6962 splits at the largest power of two, so the ragged right edge
	// folds from the right.
	h := stack[len(stack)-1]
	for i := len(stack) - 2; i >= 0; i-- {
		h = tlog.NodeHash(stack[i], h)
	}
	return h, nil
}
