package federation

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/ledger"
)

// Storage integrity. Pebble's checksums catch a torn or garbled block; they
// cannot catch a record that was written wrong, or changed by anything that
// went through pebble. So the state checks its records against each other:
//
//   - every leaf against the level-0 tree hash stored for it (on every read
//     of a leaf, see [db.ReadLeaves], and in [State.VerifyEntries]);
//   - every stored tree hash against the hashes it is computed from, which
//     [tlog.StoredHashes] recomputes append by append from the leaves
//     ([State.VerifyEntries]): over the whole ledger that is a recomputation
//     of the tree from its leaves, O(n) reads;
//   - every payload against the payload_sha256 its statement signs (on
//     every read, see [State.Payload], and in [State.VerifyEntries]);
//   - the tree's roots against the latest cosigned checkpoint and the
//     in-memory root ([State.VerifyRoots]).

// ErrStorageFault is wrapped by every [StorageFaultError].
var ErrStorageFault = errors.New("stored ledger data is damaged")

// A StorageFaultError is the evidence of a damaged record in the state
// database: which entry, which record, what is stored and what the records
// it is checked against say it must be.
type StorageFaultError struct {
	// Index is the ledger entry whose records disagree.
	Index int64
	// Record is "leaf", "tree hash", "payload" or "root".
	Record string
	// HashIndex is the stored hash index ([tlog.StoredHashIndex]) of a
	// damaged tree hash, or -1.
	HashIndex int64
	// Stored and Expected are hex: what the database holds (or the hash of
	// it) and what it must be.
	Stored, Expected string
}

func (e *StorageFaultError) Error() string {
	where := fmt.Sprintf("entry %d", e.Index)
	if e.HashIndex >= 0 {
		where += fmt.Sprintf(" (stored hash %d)", e.HashIndex)
	}
	return fmt.Sprintf("%v: %s of %s: stored %s, expected %s", ErrStorageFault, e.Record, where, e.Stored, e.Expected)
}

func (e *StorageFaultError) Unwrap() error { return ErrStorageFault }

// faults holds the storage faults found and not yet repaired, by entry index.
type faults struct {
	mu sync.Mutex
	m  map[int64]*StorageFaultError
}

func (f *faults) note(e *StorageFaultError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[int64]*StorageFaultError{}
	}
	if _, ok := f.m[e.Index]; !ok {
		f.m[e.Index] = e
	}
}

// noteErr records the fault err carries, if any, and returns err.
func (s *State) noteErr(err error) error {
	var sf *StorageFaultError
	if errors.As(err, &sf) {
		s.faults.note(sf)
	}
	return err
}

// StorageFaults returns the storage faults found and not yet repaired, in
// entry order.
func (s *State) StorageFaults() []*StorageFaultError {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	out := make([]*StorageFaultError, 0, len(s.faults.m))
	for _, e := range s.faults.m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b *StorageFaultError) int { return int(a.Index - b.Index) })
	return out
}

// leafHashOK checks leaf i against its stored level-0 hash.
func (d *db) leafHashOK(i int64, leaf []byte) error {
	x := tlog.StoredHashIndex(0, i)
	v, ok, err := d.get(indexKey(kHash, x))
	if err != nil {
		return err
	}
	got := tlog.RecordHash(leaf)
	if !ok || !bytes.Equal(v, got[:]) {
		return &StorageFaultError{Index: i, Record: "leaf", HashIndex: -1, Stored: got.String(), Expected: hex.EncodeToString(v)}
	}
	return nil
}

// rawLeaves reads committed leaves [start, end) without checking them.
func (d *db) rawLeaves(start, end int64) ([][]byte, error) {
	it, err := d.p.NewIter(&pebble.IterOptions{LowerBound: indexKey(kLeaf, start), UpperBound: indexKey(kLeaf, end)})
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, append([]byte(nil), it.Value()...))
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	if int64(len(out)) != end-start {
		return nil, &StorageFaultError{Index: start + int64(len(out)), Record: "leaf", HashIndex: -1, Stored: "nothing", Expected: fmt.Sprintf("leaves [%d, %d)", start, end)}
	}
	return out, nil
}

// VerifyEntries checks the records of entries [start, end) (clipped to the
// ledger): each leaf against its stored level-0 hash, every tree hash the
// append of that leaf stored against its recomputation from the leaf and the
// hashes before it, and each payload against its statement's digest. It
// returns the number of bytes read and the first fault found, as a
// *[StorageFaultError]; faults are also recorded for [State.StorageFaults].
func (s *State) VerifyEntries(start, end int64) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return 0, errClosed
	}
	end = min(end, s.db.size)
	if start < 0 || start >= end {
		return 0, nil
	}
	leaves, err := s.db.rawLeaves(start, end)
	if err != nil {
		return 0, s.noteErr(err)
	}
	var read int64
	for k, leaf := range leaves {
		i := start + int64(k)
		read += int64(len(leaf))
		want, err := tlog.StoredHashes(i, leaf, s.db)
		if err != nil {
			return read, err
		}
		x := tlog.StoredHashIndex(0, i)
		idx := make([]int64, len(want))
		for j := range idx {
			idx[j] = x + int64(j)
		}
		got, err := s.db.ReadHashes(idx)
		if err != nil {
			return read, s.noteErr(&StorageFaultError{Index: i, Record: "tree hash", HashIndex: x, Stored: "nothing", Expected: want[0].String()})
		}
		read += int64(len(got) * tlog.HashSize)
		for j := range want {
			if got[j] != want[j] {
				rec := "tree hash"
				if j == 0 {
					// The leaf or its hash: which one, only a peer's copy
					// proved against a checkpoint can tell.
					rec = "leaf"
				}
				return read, s.noteErr(&StorageFaultError{Index: i, Record: rec, HashIndex: idx[j], Stored: got[j].String(), Expected: want[j].String()})
			}
		}
		p, ok, err := s.db.get(indexKey(kPayload, i))
		if err != nil {
			return read, err
		}
		if ok {
			read += int64(len(p))
			if err := payloadOK(i, leaf, p); err != nil {
				return read, s.noteErr(err)
			}
		}
	}
	return read, nil
}

// payloadOK checks payload p against the digest of the statement in leaf i.
func payloadOK(i int64, leaf, p []byte) error {
	_, st, err := DecodeEntry(leaf)
	if err != nil || st == nil {
		return &StorageFaultError{Index: i, Record: "payload", HashIndex: -1, Stored: "a payload", Expected: "no payload (the entry is not a statement)"}
	}
	sum := sha256.Sum256(p)
	if got := hex.EncodeToString(sum[:]); got != st.PayloadSHA256 {
		return &StorageFaultError{Index: i, Record: "payload", HashIndex: -1, Stored: got, Expected: st.PayloadSHA256}
	}
	return nil
}

// VerifyRoots recomputes the root at the latest cosigned checkpoint's size
// and at the ledger's size from the stored hashes and compares them with the
// checkpoint and with the root in memory.
func (s *State) VerifyRoots() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	if s.checkpoint != nil {
		cp, _, err := s.genesis.OpenCosigned(s.checkpoint)
		if err != nil {
			return err
		}
		root, err := tlog.TreeHash(cp.Size, s.db)
		if err != nil {
			return err
		}
		if root != cp.Hash {
			return s.noteErr(&StorageFaultError{Index: cp.Size - 1, Record: "root", HashIndex: -1, Stored: root.String(), Expected: cp.Hash.String() + " (the latest cosigned checkpoint's)"})
		}
	}
	size := s.tree.Size()
	root, err := tlog.TreeHash(size, s.db)
	if err != nil {
		return err
	}
	if mem, _ := s.tree.Root(); root != mem {
		return s.noteErr(&StorageFaultError{Index: size - 1, Record: "root", HashIndex: -1, Stored: root.String(), Expected: mem.String() + " (the root computed at start)"})
	}
	// Both roots agree: a root fault found earlier has been repaired.
	s.faults.mu.Lock()
	for i, f := range s.faults.m {
		if f.Record == "root" {
			delete(s.faults.m, i)
		}
	}
	s.faults.mu.Unlock()
	return nil
}

// OpenCosignedQuorum verifies a cosigned checkpoint of this federation by
// the rule Apply uses (a majority of the voting orgs that are members), but
// not against this node's tree, which may be the thing in doubt.
func (s *State) OpenCosignedQuorum(signed []byte) (ledger.Checkpoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cp, signers, err := s.genesis.OpenCosigned(signed)
	if err != nil {
		return cp, err
	}
	voting := s.votingMembersLocked()
	n := 0
	for _, o := range signers {
		if slices.Contains(voting, o) {
			n++
		}
	}
	if q := len(voting)/2 + 1; n < q {
		return cp, fmt.Errorf("checkpoint is signed by %d voting member org(s), a quorum is %d", n, q)
	}
	return cp, nil
}

// RepairEntry rewrites the records of committed entry i: the leaf, the tree
// hashes its append stored (recomputed from leaf and the hashes before it)
// and, if payload is not nil, its payload. The caller must have verified
// leaf, by an inclusion proof against a cosigned checkpoint; RepairEntry
// checks payload against the leaf's statement. Then it checks entry i again
// and the roots, and forgets the faults of entry i if they pass.
func (s *State) RepairEntry(i int64, leaf, payload []byte) error {
	if err := func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			return errClosed
		}
		if i < 0 || i >= s.db.size {
			return fmt.Errorf("repairing entry %d of %d: %w", i, s.db.size, ledger.ErrIndexOutOfRange)
		}
		if payload != nil {
			if err := payloadOK(i, leaf, payload); err != nil {
				return fmt.Errorf("repairing entry %d: the payload offered does not match its statement: %w", i, err)
			}
		}
		hashes, err := tlog.StoredHashes(i, leaf, s.db)
		if err != nil {
			return err
		}
		b := s.db.p.NewBatch()
		defer b.Close()
		b.Set(indexKey(kLeaf, i), leaf, nil)
		x := tlog.StoredHashIndex(0, i)
		for j, h := range hashes {
			b.Set(indexKey(kHash, x+int64(j)), h[:], nil)
		}
		if payload != nil {
			b.Set(indexKey(kPayload, i), payload, nil)
		}
		return b.Commit(pebble.Sync)
	}(); err != nil {
		return err
	}
	s.faults.mu.Lock()
	delete(s.faults.m, i)
	s.faults.mu.Unlock()
	if _, err := s.VerifyEntries(i, i+1); err != nil {
		return err
	}
	return s.VerifyRoots()
}
