package ledger

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"golang.org/x/mod/sumdb/tlog"
)

// snapshotMagic starts every leaf snapshot. A future backwards-incompatible
// encoding would use a different first line.
const snapshotMagic = "hashfed ledger leaves v1\n"

// snapshotBatch is how many leaves WriteLeaves reads from the Store at once.
const snapshotBatch = 1024

// WriteLeaves writes every leaf of the tree, as of the call, to w, in a form
// [RestoreTree] reads back. Appends may proceed concurrently; they are not
// included. The encoding is
//
//	"hashfed ledger leaves v1\n"
//	size:   uint64, big-endian, the number of leaves
//	leaves: size times a uint16 big-endian length and that many bytes
//	root:   32 bytes, the tree's RFC 6962 root hash
//
// The leaf encoding is that of a C2SP tlog-tiles entry bundle. The root lets
// RestoreTree detect a corrupted or truncated stream.
func (t *Tree) WriteLeaves(w io.Writer) error {
	size, root := t.state()
	bw := bufio.NewWriter(w)
	bw.WriteString(snapshotMagic)
	bw.Write(binary.BigEndian.AppendUint64(nil, uint64(size)))
	for start := int64(0); start < size; start += snapshotBatch {
		end := min(start+snapshotBatch, size)
		leaves, err := t.Leaves(start, end)
		if err != nil {
			return fmt.Errorf("couldn't snapshot leaves: %w", err)
		}
		for _, leaf := range leaves {
			// Append keeps leaves within MaxLeafSize, which fits a uint16.
			bw.Write(binary.BigEndian.AppendUint16(nil, uint16(len(leaf))))
			bw.Write(leaf)
		}
	}
	bw.Write(root[:])
	// bufio.Writer remembers the first write error, so checking here is enough.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("couldn't write leaf snapshot: %w", err)
	}
	return nil
}

// RestoreTree reads a leaf snapshot written by [Tree.WriteLeaves] from r,
// appends its leaves to s, which must be empty, and returns the resulting
// Tree. It returns an error wrapping [ErrMalformedSnapshot] if the stream is
// malformed, truncated, or does not hash to the root it records; s then holds
// a partial tree and should be discarded.
//
// RestoreTree reads exactly the snapshot's bytes, so r may go on with other
// data. It reads in small pieces: pass a buffered reader for speed.
func RestoreTree(s Store, r io.Reader) (*Tree, error) {
	if n := s.Size(); n != 0 {
		return nil, fmt.Errorf("couldn't restore into a store of %d leaves: store is not empty", n)
	}
	t, err := NewTree(s)
	if err != nil {
		return nil, err
	}

	var magic [len(snapshotMagic)]byte
	if err := readFull(r, magic[:]); err != nil {
		return nil, err
	}
	if string(magic[:]) != snapshotMagic {
		return nil, fmt.Errorf("%w: unknown header %q", ErrMalformedSnapshot, magic[:])
	}
	var buf [8]byte
	if err := readFull(r, buf[:8]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint64(buf[:8])
	if size > math.MaxInt64 {
		return nil, fmt.Errorf("%w: size %d", ErrMalformedSnapshot, size)
	}

	leaf := make([]byte, 0, MaxLeafSize)
	for i := uint64(0); i < size; i++ {
		if err := readFull(r, buf[:2]); err != nil {
			return nil, err
		}
		leaf = leaf[:binary.BigEndian.Uint16(buf[:2])]
		if err := readFull(r, leaf); err != nil {
			return nil, err
		}
		if _, err := t.Append(leaf); err != nil {
			return nil, fmt.Errorf("couldn't restore leaf %d: %w", i, err)
		}
	}

	var want tlog.Hash
	if err := readFull(r, want[:]); err != nil {
		return nil, err
	}
	if got, _ := t.Root(); got != want {
		return nil, fmt.Errorf("%w: leaves hash to %v, snapshot says %v", ErrMalformedSnapshot, got, want)
	}
	return t, nil
}

// readFull is io.ReadFull, reporting a short stream as malformed.
func readFull(r io.Reader, b []byte) error {
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: %w", ErrMalformedSnapshot, io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("couldn't read leaf snapshot: %w", err)
	}
	return nil
}
