package ledger

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestSnapshotRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, snapshotBatch, snapshotBatch + 5} {
		leaves := testLeaves(n)
		if n > 3 {
			leaves[3] = make([]byte, MaxLeafSize)
		}
		tree, _ := newTestTree(t, leaves)
		var buf bytes.Buffer
		if err := tree.WriteLeaves(&buf); err != nil {
			t.Fatal(err)
		}
		// Trailing data belongs to the caller and must not be consumed.
		buf.WriteString("after")
		r := bufio.NewReader(&buf)
		restored, err := RestoreTree(NewMemStore(), r)
		if err != nil {
			t.Fatalf("RestoreTree of %d leaves: %v", n, err)
		}
		if restored.Size() != tree.Size() || must(restored.Root()) != must(tree.Root()) {
			t.Errorf("restored tree of %d leaves has size %d, root %v; want %d, %v",
				n, restored.Size(), must(restored.Root()), tree.Size(), must(tree.Root()))
		}
		if rest, _ := io.ReadAll(r); string(rest) != "after" {
			t.Errorf("RestoreTree left %q unread, want %q", rest, "after")
		}
		got := must(restored.Leaves(0, restored.Size()))
		for i := range leaves {
			if !bytes.Equal(got[i], leaves[i]) {
				t.Fatalf("restored leaf %d = %q, want %q", i, got[i], leaves[i])
			}
		}
	}
}

func TestRestoreTreeMalformed(t *testing.T) {
	tree, _ := newTestTree(t, testLeaves(20))
	var buf bytes.Buffer
	if err := tree.WriteLeaves(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()

	corrupt := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	for name, stream := range map[string][]byte{
		"empty":        nil,
		"bad magic":    corrupt(3),
		"bad size":     corrupt(len(snapshotMagic) + 7),
		"bad leaf":     corrupt(len(good) - 40),
		"bad root":     corrupt(len(good) - 1),
		"truncated":    good[:len(good)-1],
		"only header":  good[:len(snapshotMagic)+8],
		"huge size":    append([]byte(snapshotMagic), 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
		"size too big": append([]byte(snapshotMagic), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
	} {
		if _, err := RestoreTree(NewMemStore(), bytes.NewReader(stream)); !errors.Is(err, ErrMalformedSnapshot) {
			t.Errorf("RestoreTree(%s): got %v, want ErrMalformedSnapshot", name, err)
		}
	}

	full, _ := newTestTree(t, testLeaves(1))
	if _, err := RestoreTree(full.s, bytes.NewReader(good)); err == nil {
		t.Errorf("RestoreTree into a non-empty store succeeded")
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestWriteLeavesError(t *testing.T) {
	tree, _ := newTestTree(t, testLeaves(3))
	boom := errors.New("boom")
	if err := tree.WriteLeaves(errWriter{boom}); !errors.Is(err, boom) {
		t.Errorf("WriteLeaves to failing writer: got %v, want %v", err, boom)
	}
}

func FuzzRestoreTree(f *testing.F) {
	for _, n := range []int{0, 1, 5} {
		tree, _ := newTestTree(f, testLeaves(n))
		var buf bytes.Buffer
		if err := tree.WriteLeaves(&buf); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bytes.NewReader(stream)
		tree, err := RestoreTree(NewMemStore(), r)
		if err != nil {
			return
		}
		// A stream that restores is canonical: writing the tree back
		// reproduces the bytes read.
		var buf bytes.Buffer
		if err := tree.WriteLeaves(&buf); err != nil {
			t.Fatal(err)
		}
		if read := stream[:len(stream)-r.Len()]; !bytes.Equal(buf.Bytes(), read) {
			t.Fatalf("RestoreTree read %x, WriteLeaves wrote %x", read, buf.Bytes())
		}
	})
}
