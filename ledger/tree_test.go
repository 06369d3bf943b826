package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// testLeaves returns n distinct leaves of varying lengths, including empty.
func testLeaves(n int) [][]byte {
	leaves := make([][]byte, n)
	for i := range leaves {
		leaves[i] = bytes.Repeat([]byte{byte(i), byte(i >> 8)}, i%7)
	}
	return leaves
}

// newTestTree returns a Tree over a fresh MemStore holding leaves.
func newTestTree(t testing.TB, leaves [][]byte) (*Tree, *MemStore) {
	t.Helper()
	s := NewMemStore()
	tree, err := NewTree(s)
	if err != nil {
		t.Fatal(err)
	}
	for i, leaf := range leaves {
		idx, err := tree.Append(leaf)
		if err != nil {
			t.Fatalf("Append(leaf %d): %v", i, err)
		}
		if idx != int64(i) {
			t.Fatalf("Append(leaf %d) = index %d", i, idx)
		}
	}
	return tree, s
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// The reference implementation below follows RFC 6962 and RFC 9162 directly
// and shares no code with tlog, so that agreement means something.

func refLeafHash(leaf []byte) [32]byte {
	return sha256.Sum256(append([]byte{0x00}, leaf...))
}

func refNodeHash(l, r [32]byte) [32]byte {
	return sha256.Sum256(append(append([]byte{0x01}, l[:]...), r[:]...))
}

// refRoot is MTH from RFC 6962, Section 2.1.
func refRoot(leaves [][]byte) [32]byte {
	switch n := len(leaves); n {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return refLeafHash(leaves[0])
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		return refNodeHash(refRoot(leaves[:k]), refRoot(leaves[k:]))
	}
}

// refVerifyInclusion is the algorithm of RFC 9162, Section 2.1.3.2.
func refVerifyInclusion(leaf []byte, index, size int64, root tlog.Hash, proof []tlog.Hash) bool {
	if index >= size {
		return false
	}
	fn, sn := index, size-1
	r := refLeafHash(leaf)
	for _, p := range proof {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			r = refNodeHash(p, r)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			r = refNodeHash(r, p)
		}
		fn, sn = fn>>1, sn>>1
	}
	return sn == 0 && r == root
}

// refVerifyConsistency is the algorithm of RFC 9162, Section 2.1.4.2, for
// 0 < first < second.
func refVerifyConsistency(first int64, firstHash tlog.Hash, second int64, secondHash tlog.Hash, proof []tlog.Hash) bool {
	if first&(first-1) == 0 {
		proof = append([]tlog.Hash{firstHash}, proof...)
	}
	if len(proof) == 0 {
		return false
	}
	fn, sn := first-1, second-1
	for fn&1 == 1 {
		fn, sn = fn>>1, sn>>1
	}
	fr, sr := [32]byte(proof[0]), [32]byte(proof[0])
	for _, c := range proof[1:] {
		if sn == 0 {
			return false
		}
		if fn&1 == 1 || fn == sn {
			fr, sr = refNodeHash(c, fr), refNodeHash(c, sr)
			for fn&1 == 0 && fn != 0 {
				fn, sn = fn>>1, sn>>1
			}
		} else {
			sr = refNodeHash(sr, c)
		}
		fn, sn = fn>>1, sn>>1
	}
	return fr == firstHash && sr == secondHash && sn == 0
}

func TestHandComputedRoot(t *testing.T) {
	a, b, c := []byte("a"), []byte("b"), []byte("c")
	h := func(parts ...[]byte) tlog.Hash { return sha256.Sum256(bytes.Join(parts, nil)) }
	la, lb, lc := h([]byte{0}, a), h([]byte{0}, b), h([]byte{0}, c)
	ab := h([]byte{1}, la[:], lb[:])
	want := h([]byte{1}, ab[:], lc[:])

	tree, _ := newTestTree(t, [][]byte{a, b, c})
	if got, _ := tree.Root(); got != want {
		t.Errorf("Root() = %v, want %v", got, want)
	}
	if got := LeafHash(b); got != lb {
		t.Errorf("LeafHash(b) = %v, want %v", got, lb)
	}
	if got, _ := tree.RootAt(2); got != ab {
		t.Errorf("RootAt(2) = %v, want %v", got, ab)
	}
}

// ctLeaves, ctRoots and the proofs below are the test vectors of the
// Certificate Transparency reference implementation.
var ctLeaves = [][]byte{
	hx(""), hx("00"), hx("10"), hx("2021"), hx("3031"), hx("40414243"),
	hx("5051525354555657"), hx("606162636465666768696a6b6c6d6e6f"),
}

var ctRoots = []string{
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}

func hx(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func hashes(ss ...string) []tlog.Hash {
	out := make([]tlog.Hash, len(ss))
	for i, s := range ss {
		out[i] = tlog.Hash(hx(s))
	}
	return out
}

func TestCTVectors(t *testing.T) {
	tree, _ := newTestTree(t, ctLeaves)
	for size := range int64(len(ctLeaves)) + 1 {
		got, err := tree.RootAt(size)
		if err != nil {
			t.Fatal(err)
		}
		if want := ctRoots[size]; hex.EncodeToString(got[:]) != want {
			t.Errorf("RootAt(%d) = %x, want %s", size, got, want)
		}
	}

	inclusion := []struct {
		index, size int64
		proof       []tlog.Hash
	}{
		{0, 1, nil},
		{0, 8, hashes(
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")},
		{5, 8, hashes(
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")},
	}
	for _, tc := range inclusion {
		got, err := tree.InclusionProof(tc.index, tc.size)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.proof) {
			t.Errorf("InclusionProof(%d, %d) = %v, want %v", tc.index, tc.size, got, tc.proof)
		}
		root := tlog.Hash(hx(ctRoots[tc.size]))
		if err := VerifyInclusion(ctLeaves[tc.index], tc.index, tc.size, root, tc.proof); err != nil {
			t.Errorf("VerifyInclusion(%d, %d): %v", tc.index, tc.size, err)
		}
	}

	consistency := []struct {
		oldSize, newSize int64
		proof            []tlog.Hash
	}{
		{1, 1, nil},
		{1, 8, hashes(
			"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")},
		{6, 8, hashes(
			"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
			"ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
			"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")},
		{2, 5, hashes(
			"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
			"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b")},
	}
	for _, tc := range consistency {
		got, err := tree.ConsistencyProof(tc.oldSize, tc.newSize)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.proof) {
			t.Errorf("ConsistencyProof(%d, %d) = %v, want %v", tc.oldSize, tc.newSize, got, tc.proof)
		}
		oldRoot, newRoot := tlog.Hash(hx(ctRoots[tc.oldSize])), tlog.Hash(hx(ctRoots[tc.newSize]))
		if err := VerifyConsistency(tc.oldSize, oldRoot, tc.newSize, newRoot, tc.proof); err != nil {
			t.Errorf("VerifyConsistency(%d, %d): %v", tc.oldSize, tc.newSize, err)
		}
	}
}

const maxTestSize = 300

// proofSizes reports whether proofs are checked exhaustively at tree size n.
func proofSizes(n int64) bool {
	switch {
	case n <= 40:
		return true
	case n == 63, n == 64, n == 65, n == 127, n == 128, n == 129, n == 255, n == 256, n == 257, n == maxTestSize:
		return true
	}
	return false
}

func TestTreeAgainstReference(t *testing.T) {
	leaves := testLeaves(maxTestSize)
	tree, s := newTestTree(t, nil)
	roots := []tlog.Hash{must(tree.Root())}

	for i, leaf := range leaves {
		if _, err := tree.Append(leaf); err != nil {
			t.Fatal(err)
		}
		n := int64(i + 1)
		if got := tree.Size(); got != n {
			t.Fatalf("Size() = %d, want %d", got, n)
		}
		root := must(tree.Root())
		roots = append(roots, root)
		if want := tlog.Hash(refRoot(leaves[:n])); root != want {
			t.Fatalf("size %d: Root() = %v, reference says %v", n, root, want)
		}
		if got := must(RootFromLeaves(leaves[:n])); got != root {
			t.Fatalf("size %d: RootFromLeaves = %v, Root() = %v", n, got, root)
		}
		if got := must(tlog.TreeHash(n, s)); got != root {
			t.Fatalf("size %d: tlog.TreeHash = %v, Root() = %v", n, got, root)
		}
	}

	for size := range int64(maxTestSize) + 1 {
		if got := must(tree.RootAt(size)); got != roots[size] {
			t.Errorf("RootAt(%d) = %v, want %v", size, got, roots[size])
		}
	}

	for size := int64(1); size <= maxTestSize; size++ {
		if !proofSizes(size) {
			continue
		}
		for index := range size {
			p, err := tree.InclusionProof(index, size)
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", index, size, err)
			}
			if err := VerifyInclusion(leaves[index], index, size, roots[size], p); err != nil {
				t.Fatalf("VerifyInclusion(%d, %d): %v", index, size, err)
			}
			if !refVerifyInclusion(leaves[index], index, size, roots[size], p) {
				t.Fatalf("reference rejects inclusion proof (%d, %d)", index, size)
			}
		}
	}

	for newSize := range int64(maxTestSize) + 1 {
		for oldSize := range newSize + 1 {
			if !proofSizes(newSize) && !(proofSizes(oldSize) && newSize%17 == 0) {
				continue
			}
			p, err := tree.ConsistencyProof(oldSize, newSize)
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", oldSize, newSize, err)
			}
			if err := VerifyConsistency(oldSize, roots[oldSize], newSize, roots[newSize], p); err != nil {
				t.Fatalf("VerifyConsistency(%d, %d): %v", oldSize, newSize, err)
			}
			if 0 < oldSize && oldSize < newSize && !refVerifyConsistency(oldSize, roots[oldSize], newSize, roots[newSize], p) {
				t.Fatalf("reference rejects consistency proof (%d, %d)", oldSize, newSize)
			}
		}
	}
}

func TestTamperedProofsFail(t *testing.T) {
	leaves := testLeaves(77)
	tree, _ := newTestTree(t, leaves)
	flip := func(h tlog.Hash) tlog.Hash { h[7] ^= 0x40; return h }

	for _, size := range []int64{1, 2, 5, 32, 33, 77} {
		root := must(tree.RootAt(size))
		for _, index := range []int64{0, size / 2, size - 1} {
			p := must(tree.InclusionProof(index, size))
			leaf := leaves[index]
			bad := map[string]error{
				"leaf":  VerifyInclusion(append(append([]byte(nil), leaf...), 'x'), index, size, root, p),
				"root":  VerifyInclusion(leaf, index, size, flip(root), p),
				"extra": VerifyInclusion(leaf, index, size, root, append(p, root)),
			}
			if size > 1 {
				bad["index"] = VerifyInclusion(leaf, (index+1)%size, size, root, p)
				bad["short"] = VerifyInclusion(leaf, index, size, root, p[:len(p)-1])
				for i := range p {
					q := append(tlog.RecordProof(nil), p...)
					q[i] = flip(q[i])
					bad[fmt.Sprintf("proof[%d]", i)] = VerifyInclusion(leaf, index, size, root, q)
				}
			}
			for what, err := range bad {
				if !errors.Is(err, ErrInvalidProof) {
					t.Errorf("inclusion (%d, %d) with tampered %s: got %v, want ErrInvalidProof", index, size, what, err)
				}
			}
		}
	}

	for _, sizes := range [][2]int64{{1, 2}, {3, 7}, {4, 8}, {5, 77}, {32, 77}, {76, 77}} {
		o, n := sizes[0], sizes[1]
		oldRoot, newRoot := must(tree.RootAt(o)), must(tree.RootAt(n))
		p := must(tree.ConsistencyProof(o, n))
		bad := map[string]error{
			"old root": VerifyConsistency(o, flip(oldRoot), n, newRoot, p),
			"new root": VerifyConsistency(o, oldRoot, n, flip(newRoot), p),
			"old size": VerifyConsistency(o+1, oldRoot, n, newRoot, p),
			"extra":    VerifyConsistency(o, oldRoot, n, newRoot, append(p, oldRoot)),
			"short":    VerifyConsistency(o, oldRoot, n, newRoot, p[:len(p)-1]),
			"swapped":  VerifyConsistency(o, newRoot, n, oldRoot, p),
		}
		for i := range p {
			q := append(tlog.TreeProof(nil), p...)
			q[i] = flip(q[i])
			bad[fmt.Sprintf("proof[%d]", i)] = VerifyConsistency(o, oldRoot, n, newRoot, q)
		}
		for what, err := range bad {
			if !errors.Is(err, ErrInvalidProof) {
				t.Errorf("consistency (%d, %d) with tampered %s: got %v, want ErrInvalidProof", o, n, what, err)
			}
		}
	}

	// The empty tree.
	empty := must(RootFromLeaves(nil))
	root := must(tree.Root())
	if err := VerifyConsistency(0, empty, 77, root, nil); err != nil {
		t.Errorf("VerifyConsistency from empty: %v", err)
	}
	if err := VerifyConsistency(0, empty, 0, empty, nil); err != nil {
		t.Errorf("VerifyConsistency empty to empty: %v", err)
	}
	for what, err := range map[string]error{
		"old root": VerifyConsistency(0, tlog.Hash{}, 77, root, nil),
		"proof":    VerifyConsistency(0, empty, 77, root, tlog.TreeProof{root}),
		"new root": VerifyConsistency(0, empty, 0, root, nil),
	} {
		if !errors.Is(err, ErrInvalidProof) {
			t.Errorf("consistency from empty tree with bad %s: got %v, want ErrInvalidProof", what, err)
		}
	}
}

func TestEmptyTree(t *testing.T) {
	tree, _ := newTestTree(t, nil)
	want := tlog.Hash(sha256.Sum256(nil))
	if got := must(tree.Root()); got != want {
		t.Errorf("Root() = %v, want %v", got, want)
	}
	if got := must(tree.RootAt(0)); got != want {
		t.Errorf("RootAt(0) = %v, want %v", got, want)
	}
	if got := must(RootFromLeaves(nil)); got != want {
		t.Errorf("RootFromLeaves(nil) = %v, want %v", got, want)
	}
	if p := must(tree.ConsistencyProof(0, 0)); len(p) != 0 {
		t.Errorf("ConsistencyProof(0, 0) = %v, want empty", p)
	}
	if l := must(tree.Leaves(0, 0)); len(l) != 0 {
		t.Errorf("Leaves(0, 0) = %v, want none", l)
	}
}

func TestOutOfRange(t *testing.T) {
	tree, s := newTestTree(t, testLeaves(10))
	errs := map[string]error{}

	_, errs["RootAt(-1)"] = tree.RootAt(-1)
	_, errs["RootAt(11)"] = tree.RootAt(11)
	_, errs["Leaves(-1, 2)"] = tree.Leaves(-1, 2)
	_, errs["Leaves(5, 4)"] = tree.Leaves(5, 4)
	_, errs["Leaves(0, 11)"] = tree.Leaves(0, 11)
	_, errs["InclusionProof(-1, 5)"] = tree.InclusionProof(-1, 5)
	_, errs["InclusionProof(5, 5)"] = tree.InclusionProof(5, 5)
	_, errs["InclusionProof(0, 11)"] = tree.InclusionProof(0, 11)
	_, errs["ConsistencyProof(-1, 5)"] = tree.ConsistencyProof(-1, 5)
	_, errs["ConsistencyProof(6, 5)"] = tree.ConsistencyProof(6, 5)
	_, errs["ConsistencyProof(5, 11)"] = tree.ConsistencyProof(5, 11)
	errs["VerifyInclusion(5, 5)"] = VerifyInclusion(nil, 5, 5, tlog.Hash{}, nil)
	errs["VerifyInclusion(-1, 5)"] = VerifyInclusion(nil, -1, 5, tlog.Hash{}, nil)
	errs["VerifyConsistency(6, 5)"] = VerifyConsistency(6, tlog.Hash{}, 5, tlog.Hash{}, nil)
	errs["VerifyConsistency(-1, 5)"] = VerifyConsistency(-1, tlog.Hash{}, 5, tlog.Hash{}, nil)
	_, errs["MemStore.ReadHashes"] = s.ReadHashes([]int64{0, 1 << 40})
	_, errs["MemStore.ReadLeaves"] = s.ReadLeaves(3, 12)
	errs["MemStore.AppendLeaf"] = s.AppendLeaf(9, nil)
	errs["MemStore.WriteHashes"] = s.WriteHashes(1<<40, []tlog.Hash{{}})

	for what, err := range errs {
		if !errors.Is(err, ErrIndexOutOfRange) {
			t.Errorf("%s: got %v, want ErrIndexOutOfRange", what, err)
		}
	}
	if got := tree.Size(); got != 10 {
		t.Errorf("Size() = %d after failed calls, want 10", got)
	}
}

func TestLeafSizeLimit(t *testing.T) {
	tree, _ := newTestTree(t, nil)
	if _, err := tree.Append(make([]byte, MaxLeafSize)); err != nil {
		t.Fatalf("Append(MaxLeafSize bytes): %v", err)
	}
	if _, err := tree.Append(make([]byte, MaxLeafSize+1)); !errors.Is(err, ErrLeafTooLarge) {
		t.Fatalf("Append(MaxLeafSize+1 bytes): got %v, want ErrLeafTooLarge", err)
	}
	if _, err := RootFromLeaves([][]byte{nil, make([]byte, MaxLeafSize+1)}); !errors.Is(err, ErrLeafTooLarge) {
		t.Fatalf("RootFromLeaves with a large leaf: got %v, want ErrLeafTooLarge", err)
	}
	if got := tree.Size(); got != 1 {
		t.Errorf("Size() = %d, want 1", got)
	}
}

func TestLeavesAreCopies(t *testing.T) {
	leaf := []byte("hello")
	tree, _ := newTestTree(t, [][]byte{leaf})
	leaf[0] = 'j'
	got := must(tree.Leaves(0, 1))
	if string(got[0]) != "hello" {
		t.Fatalf("Leaves(0, 1) = %q after caller reused its buffer, want hello", got[0])
	}
	got[0][0] = 'y'
	if again := must(tree.Leaves(0, 1)); string(again[0]) != "hello" {
		t.Fatalf("Leaves(0, 1) = %q after caller modified a result, want hello", again[0])
	}
}

func TestReopen(t *testing.T) {
	leaves := testLeaves(50)
	tree, s := newTestTree(t, leaves)
	reopened, err := NewTree(s)
	if err != nil {
		t.Fatal(err)
	}
	if reopened.Size() != 50 || must(reopened.Root()) != must(tree.Root()) {
		t.Fatalf("reopened tree has size %d, root %v; want 50, %v", reopened.Size(), must(reopened.Root()), must(tree.Root()))
	}
	if _, err := reopened.Append([]byte("more")); err != nil {
		t.Fatal(err)
	}
	if got, want := must(reopened.Root()), tlog.Hash(refRoot(append(leaves, []byte("more")))); got != want {
		t.Fatalf("Root() after reopen and append = %v, want %v", got, want)
	}
}

// failingStore fails AppendLeaf when fail is set, after its hashes were written.
type failingStore struct {
	*MemStore
	fail bool
}

func (s *failingStore) AppendLeaf(index int64, leaf []byte) error {
	if s.fail {
		return errors.New("disk full")
	}
	return s.MemStore.AppendLeaf(index, leaf)
}

func TestFailedAppendLeavesTreeUnchanged(t *testing.T) {
	s := &failingStore{MemStore: NewMemStore()}
	tree := must(NewTree(s))
	leaves := testLeaves(20)
	for i, leaf := range leaves {
		if i%3 == 1 {
			// A failed append of some other leaf leaves hashes behind, which
			// the next append must overwrite.
			s.fail = true
			if _, err := tree.Append([]byte("lost")); err == nil {
				t.Fatalf("Append with failing store succeeded")
			}
			s.fail = false
			if got := tree.Size(); got != int64(i) {
				t.Fatalf("Size() = %d after failed append, want %d", got, i)
			}
		}
		if _, err := tree.Append(leaf); err != nil {
			t.Fatal(err)
		}
	}
	// Each leaf was appended once, over the hashes a failed attempt left.
	if got, want := must(tree.Root()), tlog.Hash(refRoot(leaves)); got != want {
		t.Fatalf("Root() = %v, want %v", got, want)
	}
	if got, want := must(NewTree(s)).Size(), int64(len(leaves)); got != want {
		t.Fatalf("reopened Size() = %d, want %d", got, want)
	}
}

func TestConcurrentReaders(t *testing.T) {
	const n = 200
	leaves := testLeaves(n)
	tree, _ := newTestTree(t, nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for tree.Size() < n {
				size := tree.Size()
				if size == 0 {
					continue
				}
				root, err := tree.RootAt(size)
				if err != nil {
					t.Error(err)
					return
				}
				index := size / 2
				p, err := tree.InclusionProof(index, size)
				if err != nil {
					t.Error(err)
					return
				}
				if err := VerifyInclusion(leaves[index], index, size, root, p); err != nil {
					t.Error(err)
					return
				}
				cp, err := tree.ConsistencyProof(size/3, size)
				if err != nil {
					t.Error(err)
					return
				}
				if err := VerifyConsistency(size/3, must(tree.RootAt(size/3)), size, root, cp); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for _, leaf := range leaves {
		if _, err := tree.Append(leaf); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

func BenchmarkAppend(b *testing.B) {
	tree, _ := newTestTree(b, nil)
	leaf := bytes.Repeat([]byte{'x'}, 1024)
	b.SetBytes(int64(len(leaf)))
	for b.Loop() {
		if _, err := tree.Append(leaf); err != nil {
			b.Fatal(err)
		}
	}
}
