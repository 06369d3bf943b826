package ledger

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"

	"github.com/hashfed/hashfed/internal/fixedkeys"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// fuzzTreeSize is the size of the tree the proof targets verify against:
// big enough for proofs of several lengths and a ragged right edge.
const fuzzTreeSize = 13

// hashesOf splits b into 32-byte hashes, dropping a shorter tail.
func hashesOf(b []byte) []tlog.Hash {
	var hs []tlog.Hash
	for len(b) >= tlog.HashSize {
		hs = append(hs, tlog.Hash(b[:tlog.HashSize]))
		b = b[tlog.HashSize:]
	}
	return hs
}

// joinHashes is the inverse of hashesOf.
func joinHashes(hs []tlog.Hash) []byte {
	var b []byte
	for _, h := range hs {
		b = append(b, h[:]...)
	}
	return b
}

// FuzzOpenCheckpoint opens signed notes against a log key and a witness
// key. Only the fuzz target holds the private keys, so whatever opens must
// be one of the bodies it signed, and the signatures that verified must be
// by the two keys.
func FuzzOpenCheckpoint(f *testing.F) {
	const origin = "example.org/log"
	// Keys derive from fixed seeds, so the fuzzing coordinator, which
	// makes the seeds, and its workers, which run them, hold the same.
	newKey := func(name string) (note.Signer, note.Verifier) {
		s, v, _, err := fixedkeys.Deriver("hashfed ledger fuzz ").NoteKey(name, name)
		if err != nil {
			f.Fatal(err)
		}
		return s, v
	}
	logS, logV := newKey(origin)
	witS, witV := newKey("witness.example")
	otherS, _ := newKey("unknown.example")
	verifiers := note.VerifierList(logV, witV)

	tree, _ := newTestTree(f, testLeaves(fuzzTreeSize))
	var bodies []string
	for _, size := range []int64{1, 7, fuzzTreeSize} {
		c := Checkpoint{Origin: origin, Size: size, Hash: must(tree.RootAt(size))}
		bodies = append(bodies, string(c.Marshal()))
		for _, signers := range [][]note.Signer{{logS}, {logS, witS}, {witS}, {logS, otherS}} {
			signed, err := SignCheckpoint(c, signers...)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(signed)
		}
	}
	// A body with an extension line, which ParseCheckpoint accepts.
	ext := string(Checkpoint{Origin: origin, Size: 2, Hash: must(tree.RootAt(2))}.Marshal()) + "extension\n"
	bodies = append(bodies, ext)
	signed, err := note.Sign(&note.Note{Text: ext}, logS, witS)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(signed)
	// A checkpoint of another origin, signed by the witness.
	other := string(Checkpoint{Origin: "other.example", Size: 1, Hash: must(tree.RootAt(1))}.Marshal())
	bodies = append(bodies, other)
	if signed, err = note.Sign(&note.Note{Text: other}, witS); err != nil {
		f.Fatal(err)
	}
	f.Add(signed)

	f.Fuzz(func(t *testing.T, signed []byte) {
		c, n, err := OpenCheckpoint(signed, origin, verifiers)
		if err != nil {
			if n != nil || c != (Checkpoint{}) {
				t.Fatalf("OpenCheckpoint failed (%v) but returned %+v, %v", err, c, n)
			}
			return
		}
		if !slices.Contains(bodies, n.Text) {
			t.Fatalf("OpenCheckpoint accepted a body that was never signed:\n%q", n.Text)
		}
		if c.Origin != origin {
			t.Fatalf("OpenCheckpoint returned origin %q, want %q", c.Origin, origin)
		}
		if want, err := ParseCheckpoint([]byte(n.Text)); err != nil || want != c {
			t.Fatalf("OpenCheckpoint = %+v, but its text parses as %+v, %v", c, want, err)
		}
		if len(n.Sigs) == 0 {
			t.Fatal("OpenCheckpoint accepted a note with no verified signature")
		}
		for _, s := range n.Sigs {
			if s.Name != logV.Name() && s.Name != witV.Name() {
				t.Fatalf("signature by %q counted as verified", s.Name)
			}
		}
	})
}

// FuzzVerifyInclusion checks VerifyInclusion against the RFC 9162
// reference algorithm, and that an inclusion proof it accepts for a real
// root is the one proof for the one leaf at that index.
func FuzzVerifyInclusion(f *testing.F) {
	leaves := testLeaves(fuzzTreeSize)
	tree, _ := newTestTree(f, leaves)
	for _, c := range []struct{ index, size int64 }{{0, 1}, {0, 2}, {5, 13}, {12, 13}, {6, 7}, {3, 8}} {
		p := must(tree.InclusionProof(c.index, c.size))
		f.Add(c.index, c.size, leaves[c.index], joinHashes(p), []byte(nil))
	}
	f.Add(int64(1), int64(0), []byte{}, []byte(nil), []byte("root"))
	f.Add(int64(-1), int64(5), []byte{}, []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, index, size int64, leaf, proof, root []byte) {
		hashes := hashesOf(proof)
		// A root from the fuzzer, or the real one at that size.
		var r tlog.Hash
		realRoot := len(root) == 0 && size >= 1 && size <= fuzzTreeSize
		if realRoot {
			r = must(tree.RootAt(size))
		} else {
			r = sha256.Sum256(root)
		}
		err := VerifyInclusion(leaf, index, size, r, hashes)
		if index < 0 || index >= size {
			if !errors.Is(err, ErrIndexOutOfRange) {
				t.Fatalf("VerifyInclusion(index %d, size %d) = %v, want ErrIndexOutOfRange", index, size, err)
			}
			return
		}
		if ref := refVerifyInclusion(leaf, index, size, r, hashes); ref != (err == nil) {
			t.Fatalf("VerifyInclusion(index %d, size %d, %d hashes) = %v, the reference says %v", index, size, len(hashes), err, ref)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidProof) {
				t.Fatalf("VerifyInclusion error %v does not wrap ErrInvalidProof", err)
			}
			return
		}
		if realRoot {
			want := must(tree.InclusionProof(index, size))
			if !bytes.Equal(leaf, leaves[index]) || !slices.Equal(hashes, want) {
				t.Fatalf("VerifyInclusion accepted leaf %q with %d hashes at index %d of size %d; the tree holds %q, proof of %d hashes", leaf, len(hashes), index, size, leaves[index], len(want))
			}
		}
	})
}

// FuzzVerifyConsistency checks VerifyConsistency against the RFC 9162
// reference algorithm, and that a proof it accepts between two real roots
// is the tree's own.
func FuzzVerifyConsistency(f *testing.F) {
	tree, _ := newTestTree(f, testLeaves(fuzzTreeSize))
	for _, c := range []struct{ old, new int64 }{{1, 2}, {3, 7}, {4, 8}, {7, 13}, {8, 13}, {13, 13}, {0, 5}} {
		p := must(tree.ConsistencyProof(c.old, c.new))
		f.Add(c.old, c.new, joinHashes(p), []byte(nil), []byte(nil))
	}
	f.Add(int64(5), int64(3), []byte(nil), []byte(nil), []byte(nil))
	f.Add(int64(2), int64(40), []byte(nil), []byte("a"), []byte("b"))
	f.Fuzz(func(t *testing.T, oldSize, newSize int64, proof, oldRoot, newRoot []byte) {
		hashes := hashesOf(proof)
		root := func(size int64, b []byte) (tlog.Hash, bool) {
			if len(b) == 0 && size >= 0 && size <= fuzzTreeSize {
				return must(tree.RootAt(size)), true
			}
			return sha256.Sum256(b), false
		}
		or, oldReal := root(oldSize, oldRoot)
		nr, newReal := root(newSize, newRoot)
		err := VerifyConsistency(oldSize, or, newSize, nr, hashes)
		if oldSize < 0 || oldSize > newSize {
			if !errors.Is(err, ErrIndexOutOfRange) {
				t.Fatalf("VerifyConsistency(%d, %d) = %v, want ErrIndexOutOfRange", oldSize, newSize, err)
			}
			return
		}
		if err != nil && !errors.Is(err, ErrInvalidProof) {
			t.Fatalf("VerifyConsistency error %v does not wrap ErrInvalidProof", err)
		}
		var ref bool
		switch {
		case oldSize == 0:
			ref = len(hashes) == 0 && or == emptyRoot && (newSize != 0 || nr == emptyRoot)
		case oldSize == newSize:
			ref = len(hashes) == 0 && or == nr
		default:
			ref = refVerifyConsistency(oldSize, or, newSize, nr, hashes)
		}
		if ref != (err == nil) {
			t.Fatalf("VerifyConsistency(%d, %d, %d hashes) = %v, the reference says %v", oldSize, newSize, len(hashes), err, ref)
		}
		if err == nil && oldReal && newReal && oldSize > 0 {
			if want := must(tree.ConsistencyProof(oldSize, newSize)); !slices.Equal(hashes, want) {
				t.Fatalf("VerifyConsistency(%d, %d) accepted %d hashes, not the tree's proof of %d", oldSize, newSize, len(hashes), len(want))
			}
		}
	})
}

// FuzzProofVerify parses a tlog-proof and verifies it against a real
// checkpoint, as a receipt is: an accepted proof must carry a leaf of the
// tree at its index, with the tree's own inclusion proof.
func FuzzProofVerify(f *testing.F) {
	leaves := testLeaves(fuzzTreeSize)
	leaves[0] = []byte("genesis") // empty leaves carry no extra line
	tree, _ := newTestTree(f, leaves)
	cp := Checkpoint{Origin: "example.org/log", Size: fuzzTreeSize, Hash: must(tree.Root())}
	body := cp.Marshal()
	for _, i := range []int64{0, 1, 6, 12} {
		p := &Proof{Extra: leaves[i], Index: i, Hashes: must(tree.InclusionProof(i, fuzzTreeSize)), Checkpoint: body}
		f.Add(p.Marshal())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProof(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedProof) {
				t.Fatalf("ParseProof error %v does not wrap ErrMalformedProof", err)
			}
			return
		}
		if err := p.Verify(p.Extra, cp); err != nil {
			return
		}
		want := must(tree.InclusionProof(p.Index, cp.Size))
		if !bytes.Equal(p.Extra, leaves[p.Index]) || !slices.Equal(p.Hashes, want) {
			t.Fatalf("a proof for entry %d verified with extra %q and %d hashes; the tree holds %q, proof of %d hashes", p.Index, p.Extra, len(p.Hashes), leaves[p.Index], len(want))
		}
	})
}
