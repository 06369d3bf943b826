package ledger

import (
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// A Store holds the persistent state of a [Tree]: the tree's stored hashes,
// numbered as in [tlog.StoredHashIndex], and the leaves themselves.
//
// Implementations must be safe for concurrent use by one writer (a Tree's
// Append) and any number of readers.
//
// A Tree appends leaf n by first calling WriteHashes with the hashes
// [tlog.StoredHashes] returns for it, then AppendLeaf(n, leaf). The leaf
// count reported by Size is therefore what commits an append: hashes
// written beyond those of the first Size leaves belong to an append that has
// not happened (or failed half-way), are never read, and are overwritten by
// the next append. A durable implementation must make a leaf and its hashes
// durable before Size counts it.
type Store interface {
	// ReadHashes returns the stored hashes with the given indexes, as
	// [tlog.HashReader] does: a slice of the same length as indexes, or a
	// non-nil error. Asking for a hash that has not been written is an error.
	ReadHashes(indexes []int64) ([]tlog.Hash, error)

	// WriteHashes stores hashes at indexes start, start+1, and so on,
	// replacing any hashes already stored at those indexes. start must not
	// exceed the number of hashes already stored.
	WriteHashes(start int64, hashes []tlog.Hash) error

	// ReadLeaves returns the leaves with indexes in [start, end), which must
	// satisfy 0 <= start <= end <= Size(), or else an error wrapping
	// [ErrIndexOutOfRange]. The caller may keep the returned slices, and the
	// Store must not modify them afterwards.
	ReadLeaves(start, end int64) ([][]byte, error)

	// AppendLeaf stores leaf as leaf number index, which must equal Size(),
	// or else it returns an error wrapping [ErrIndexOutOfRange]. The Store
	// must not retain leaf itself, which the caller may reuse.
	AppendLeaf(index int64, leaf []byte) error

	// Size returns the number of leaves stored.
	Size() int64
}

// A MemStore is a [Store] that keeps everything in memory.
type MemStore struct {
	mu     sync.RWMutex
	hashes []tlog.Hash
	leaves [][]byte
}

// NewMemStore returns a new, empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{}
}

var _ Store = (*MemStore)(nil)

// ReadHashes implements [Store.ReadHashes].
func (s *MemStore) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(s.hashes)) {
			return nil, fmt.Errorf("reading stored hash %d of %d: %w", x, len(s.hashes), ErrIndexOutOfRange)
		}
		out[i] = s.hashes[x]
	}
	return out, nil
}

// WriteHashes implements [Store.WriteHashes].
func (s *MemStore) WriteHashes(start int64, hashes []tlog.Hash) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if start < 0 || start > int64(len(s.hashes)) {
		return fmt.Errorf("writing stored hash %d after %d: %w", start, len(s.hashes), ErrIndexOutOfRange)
	}
	// Copy over any hashes left by an unfinished append, then extend.
	n := copy(s.hashes[start:], hashes)
	s.hashes = append(s.hashes, hashes[n:]...)
	return nil
}

// ReadLeaves implements [Store.ReadLeaves].
func (s *MemStore) ReadLeaves(start, end int64) ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if start < 0 || start > end || end > int64(len(s.leaves)) {
		return nil, fmt.Errorf("reading leaves [%d, %d) of %d: %w", start, end, len(s.leaves), ErrIndexOutOfRange)
	}
	out := make([][]byte, end-start)
	for i := range out {
		// Copy, so that callers cannot alter the store through the result.
		out[i] = append([]byte(nil), s.leaves[start+int64(i)]...)
	}
	return out, nil
}

// AppendLeaf implements [Store.AppendLeaf].
func (s *MemStore) AppendLeaf(index int64, leaf []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if index != int64(len(s.leaves)) {
		return fmt.Errorf("appending leaf %d to a store of %d leaves: %w", index, len(s.leaves), ErrIndexOutOfRange)
	}
	s.leaves = append(s.leaves, append([]byte(nil), leaf...))
	return nil
}

// Size implements [Store.Size].
func (s *MemStore) Size() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return int64(len(s.leaves))
}
