package ledger

import (
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// MaxLeafSize is the largest leaf, in bytes, that a [Tree] accepts. It is the
// largest entry a C2SP tlog-tiles entry bundle can hold (a 16-bit length).
const MaxLeafSize = 65535

// A Tree is an append-only RFC 6962 Merkle tree over a [Store].
//
// Appends are serialized: one runs at a time. All other methods may be called
// concurrently with each other and with Append; they see the tree as of some
// moment between appends, never half of one.
type Tree struct {
	s Store

	// appendMu serializes appends. It is held for the whole append, including
	// the Store writes, while mu is only held to publish the result, so that
	// readers do not wait on a slow Store.
	appendMu sync.Mutex

	mu   sync.RWMutex
	size int64     // number of leaves; guarded by mu, written with appendMu held too
	root tlog.Hash // root of the tree of size leaves; guarded by mu
}

// NewTree returns a Tree over the leaves and hashes already in s, which may
// be empty. It reads the stored hashes for the current root, so a Store
// missing them is reported here rather than later.
func NewTree(s Store) (*Tree, error) {
	size := s.Size()
	root, err := tlog.TreeHash(size, s)
	if err != nil {
		return nil, fmt.Errorf("couldn't compute root of stored tree of size %d: %w", size, err)
	}
	return &Tree{s: s, size: size, root: root}, nil
}

// Append adds leaf to the tree and returns its index. leaf must be at most
// [MaxLeafSize] bytes long, or else Append returns an error wrapping
// [ErrLeafTooLarge]. When Append returns without error the leaf is in the
// Store and counted by [Tree.Size]; when it returns an error the tree is
// unchanged.
func (t *Tree) Append(leaf []byte) (index int64, err error) {
	if len(leaf) > MaxLeafSize {
		return 0, fmt.Errorf("appending %d-byte leaf: %w", len(leaf), ErrLeafTooLarge)
	}
	t.appendMu.Lock()
	defer t.appendMu.Unlock()

	// Only Append changes t.size, and appendMu is held, so it is stable here.
	n := t.size
	hashes, err := tlog.StoredHashes(n, leaf, t.s)
	if err != nil {
		return 0, fmt.Errorf("couldn't compute hashes for leaf %d: %w", n, err)
	}
	// Hashes before the leaf: the leaf count is what commits (see Store).
	if err := t.s.WriteHashes(tlog.StoredHashIndex(0, n), hashes); err != nil {
		return 0, fmt.Errorf("couldn't store hashes for leaf %d: %w", n, err)
	}
	// The new root needs only hashes already written, so compute it before
	// the leaf is committed: a failure here leaves only uncommitted hashes.
	root, err := tlog.TreeHash(n+1, t.s)
	if err != nil {
		return 0, fmt.Errorf("couldn't compute root with leaf %d: %w", n, err)
	}
	if err := t.s.AppendLeaf(n, leaf); err != nil {
		return 0, fmt.Errorf("couldn't store leaf %d: %w", n, err)
	}

	t.mu.Lock()
	t.size, t.root = n+1, root
	t.mu.Unlock()
	return n, nil
}

// Size returns the number of leaves in the tree.
func (t *Tree) Size() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size
}

// Root returns the root hash of the tree at its current size. The root of
// the empty tree is SHA-256 of the empty string. Root never reads the Store;
// its error is always nil and exists so that a future Tree may defer the
// computation.
func (t *Tree) Root() (tlog.Hash, error) {
	_, root := t.state()
	return root, nil
}

// state returns the tree's size and root hash as of the same moment.
func (t *Tree) state() (int64, tlog.Hash) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size, t.root
}

// RootAt returns the root hash of the tree when it had size leaves.
// size must be between 0 and [Tree.Size], or else RootAt returns an error
// wrapping [ErrIndexOutOfRange].
func (t *Tree) RootAt(size int64) (tlog.Hash, error) {
	cur, root := t.state()
	if size < 0 || size > cur {
		return tlog.Hash{}, fmt.Errorf("root at size %d of tree of size %d: %w", size, cur, ErrIndexOutOfRange)
	}
	if size == cur {
		return root, nil
	}
	h, err := tlog.TreeHash(size, t.s)
	if err != nil {
		return tlog.Hash{}, fmt.Errorf("couldn't compute root at size %d: %w", size, err)
	}
	return h, nil
}

// Leaves returns the leaves with indexes in [start, end). The range must
// satisfy 0 <= start <= end <= [Tree.Size], or else Leaves returns an error
// wrapping [ErrIndexOutOfRange].
func (t *Tree) Leaves(start, end int64) ([][]byte, error) {
	size := t.Size()
	if start < 0 || start > end || end > size {
		return nil, fmt.Errorf("leaves [%d, %d) of tree of size %d: %w", start, end, size, ErrIndexOutOfRange)
	}
	leaves, err := t.s.ReadLeaves(start, end)
	if err != nil {
		return nil, fmt.Errorf("couldn't read leaves [%d, %d): %w", start, end, err)
	}
	if int64(len(leaves)) != end-start {
		return nil, fmt.Errorf("store returned %d leaves for [%d, %d)", len(leaves), start, end)
	}
	return leaves, nil
}

// InclusionProof returns the proof that leaf index is in the tree of size
// leaves, for [VerifyInclusion]. It requires 0 <= index < size <=
// [Tree.Size], or else returns an error wrapping [ErrIndexOutOfRange].
func (t *Tree) InclusionProof(index, size int64) (tlog.RecordProof, error) {
	cur := t.Size()
	if index < 0 || index >= size || size > cur {
		return nil, fmt.Errorf("inclusion proof of leaf %d in size %d of tree of size %d: %w", index, size, cur, ErrIndexOutOfRange)
	}
	p, err := tlog.ProveRecord(size, index, t.s)
	if err != nil {
		return nil, fmt.Errorf("couldn't prove inclusion of leaf %d in size %d: %w", index, size, err)
	}
	return p, nil
}

// ConsistencyProof returns the proof that the tree of newSize leaves extends
// the tree of oldSize leaves, for [VerifyConsistency]. It requires
// 0 <= oldSize <= newSize <= [Tree.Size], or else returns an error wrapping
// [ErrIndexOutOfRange]. The proof is empty if oldSize is 0 or equals newSize.
func (t *Tree) ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error) {
	cur := t.Size()
	if oldSize < 0 || oldSize > newSize || newSize > cur {
		return nil, fmt.Errorf("consistency proof from size %d to %d of tree of size %d: %w", oldSize, newSize, cur, ErrIndexOutOfRange)
	}
	if oldSize == 0 {
		// Every tree extends the empty tree; tlog does not handle this case.
		return tlog.TreeProof{}, nil
	}
	p, err := tlog.ProveTree(newSize, oldSize, t.s)
	if err != nil {
		return nil, fmt.Errorf("couldn't prove consistency from size %d to %d: %w", oldSize, newSize, err)
	}
	return p, nil
}
