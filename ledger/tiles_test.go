package ledger_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/ledger"
)

func TestTilePathRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		path string
		want ledger.TilePath
	}{
		{"tile/0/000", ledger.TilePath{Level: 0, N: 0, Width: 256}},
		{"tile/0/005", ledger.TilePath{Level: 0, N: 5, Width: 256}},
		{"tile/0/999", ledger.TilePath{Level: 0, N: 999, Width: 256}},
		{"tile/0/x001/000", ledger.TilePath{Level: 0, N: 1000, Width: 256}},
		{"tile/1/x001/x234/067", ledger.TilePath{Level: 1, N: 1234067, Width: 256}},
		{"tile/2/x001/x000/000.p/1", ledger.TilePath{Level: 2, N: 1000000, Width: 1}},
		{"tile/0/000.p/255", ledger.TilePath{Level: 0, N: 0, Width: 255}},
		{"tile/63/000.p/17", ledger.TilePath{Level: 63, N: 0, Width: 17}},
		{"tile/10/x009/x223/x372/x036/x854/x775/807", ledger.TilePath{Level: 10, N: 1<<63 - 1, Width: 256}},
		{"tile/entries/000", ledger.TilePath{Entries: true, Width: 256}},
		{"tile/entries/x001/x234/067.p/112", ledger.TilePath{Entries: true, N: 1234067, Width: 112}},
		{"tile/entries/273.p/1", ledger.TilePath{Entries: true, N: 273, Width: 1}},
	} {
		got, err := ledger.ParseTilePath(tc.path)
		if err != nil {
			t.Errorf("ParseTilePath(%q): %v", tc.path, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseTilePath(%q) = %+v, want %+v", tc.path, got, tc.want)
		}
		if s := tc.want.String(); s != tc.path {
			t.Errorf("%+v.String() = %q, want %q", tc.want, s, tc.path)
		}
	}
}

// TestTilePathMatchesTlog checks hash tile paths against tlog's own
// encoding, which C2SP's is with the tile height left out.
func TestTilePathMatchesTlog(t *testing.T) {
	for _, n := range []int64{0, 1, 9, 10, 99, 100, 999, 1000, 1001, 65535, 999999, 1000000, 1234067, 1<<40 + 7, 1<<63 - 1} {
		for _, w := range []int{1, 2, 17, 255, 256} {
			for _, l := range []int64{0, 1, 7, 63} {
				tile := tlog.Tile{H: 8, L: int(l), N: n, W: w}
				want := strings.Replace(tile.Path(), "tile/8/", "tile/", 1)
				p := ledger.TilePath{Level: l, N: n, Width: w}
				if got := p.String(); got != want {
					t.Errorf("%+v.String() = %q, want %q", p, got, want)
				}
				if got, err := ledger.ParseTilePath(want); err != nil || got != p {
					t.Errorf("ParseTilePath(%q) = %+v, %v; want %+v", want, got, err, p)
				}
			}
		}
	}
}

func TestParseTilePathMalformed(t *testing.T) {
	for _, path := range []string{
		"",
		"tile",
		"tile/",
		"tile/0",
		"tile/0/",
		"/tile/0/000",
		"tile/0/000/",
		"tiles/0/000",
		"TILE/0/000",
		"tile/8/0/000",     // tlog's form, with the height
		"tile/00/000",      // leading zero in the level
		"tile/01/000",      // leading zero in the level
		"tile/64/000",      // level out of range
		"tile/-1/000",      // negative level
		"tile/+1/000",      // signed level
		"tile/data/000",    // tlog's name for entry tiles
		"tile/entries",     // no index
		"tile/entries/",    // empty index
		"tile/entries/0/0", // an entries level
		"tile/0/0",         // index not zero-padded
		"tile/0/00",        // index not zero-padded
		"tile/0/0000",      // index too wide
		"tile/0/1234",      // index too wide
		"tile/0/x000",      // x on the last element
		"tile/0/x001",      // x on the last element
		"tile/0/001/234",   // no x on a non-final element
		"tile/0/x000/001",  // leading zero group
		"tile/0/x000/x001/002",
		"tile/0/x1/234",          // non-final element too short
		"tile/0/x0001/234",       // non-final element too long
		"tile/0/xx01/234",        // double x
		"tile/0/X001/234",        // capital X
		"tile/0/x001//234",       // empty element
		"tile/0/ 01",             // space
		"tile/0/-01",             // sign
		"tile/0/0a1",             // not a digit
		"tile/0/000.p",           // partial without width
		"tile/0/000.p/",          // empty width
		"tile/0/000.p/0",         // empty partial tile
		"tile/0/000.p/256",       // a full tile spelt as partial
		"tile/0/000.p/300",       // too wide
		"tile/0/000.p/017",       // leading zero in the width
		"tile/0/000.p/-1",        // negative width
		"tile/0/000.p/1/2",       // trailing element
		"tile/0/000.p.p/1",       // double suffix
		"tile/0/.p/1",            // no index
		"tile/0/x001.p/234",      // suffix on a non-final element
		"tile/0/x001.p/002/3",    // suffix in the middle
		"tile/0/000.P/1",         // capital P
		"tile/0/000.q/1",         // other suffix
		"tile/0/000?x=1",         // query
		"tile/0/000#f",           // fragment
		"tile/entries/000.p/0",   // empty bundle
		"tile/entries/x000/000",  // leading zero group
		"tile/entries/000.p/256", // full bundle spelt as partial
		"tile/0/x009/x223/x372/x036/x854/x775/808",      // MaxInt64+1
		"tile/0/x999/x999/x999/x999/x999/x999/999",      // overflow
		"tile/0/x001/x000/x000/x000/x000/x000/x000/000", // overflow
	} {
		if p, err := ledger.ParseTilePath(path); err == nil {
			t.Errorf("ParseTilePath(%q) = %+v, want error", path, p)
		} else if !errors.Is(err, ledger.ErrMalformedTilePath) {
			t.Errorf("ParseTilePath(%q) error %v does not wrap ErrMalformedTilePath", path, err)
		}
	}
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{
		"tile/0/000", "tile/1/x001/x234/067", "tile/0/000.p/255", "tile/entries/x001/234.p/17",
		"tile/63/x009/x223/x372/x036/x854/x775/807", "tile/0/x000/001", "tile/0/000.p/0", "tile/8/0/000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		p, err := ledger.ParseTilePath(path)
		if err != nil {
			if !errors.Is(err, ledger.ErrMalformedTilePath) {
				t.Fatalf("ParseTilePath(%q) error %v does not wrap ErrMalformedTilePath", path, err)
			}
			// tlog (without a level limit or overflow check) must not
			// accept what we refuse, unless that is why we refused.
			if rest, ok := strings.CutPrefix(path, "tile/"); ok {
				if tile, err := tlog.ParseTilePath("tile/8/" + rest); err == nil && tile.L <= ledger.MaxTileLevel && strings.Count(rest, "/") < 7 {
					t.Fatalf("ParseTilePath(%q) refused what tlog accepts as %+v: %v", path, tile, err)
				}
			}
			return
		}
		if got := p.String(); got != path {
			t.Fatalf("ParseTilePath(%q) = %+v, which formats as %q", path, p, got)
		}
		if p.Level < 0 || p.Level > ledger.MaxTileLevel || p.N < 0 || p.Width < 1 || p.Width > ledger.TileWidth || p.Entries && p.Level != 0 {
			t.Fatalf("ParseTilePath(%q) = %+v, out of range", path, p)
		}
		if !p.Entries {
			tile, err := tlog.ParseTilePath(strings.Replace(path, "tile/", "tile/8/", 1))
			if err != nil || tile != (tlog.Tile{H: 8, L: int(p.Level), N: p.N, W: p.Width}) {
				t.Fatalf("ParseTilePath(%q) = %+v, but tlog says %+v, %v", path, p, tile, err)
			}
		}
	})
}

func ExampleTilePath() {
	p := ledger.TilePath{Level: 1, N: 1234067, Width: 17}
	fmt.Println(p)
	fmt.Println(ledger.TilePath{Entries: true, N: 5, Width: ledger.TileWidth})

	q, err := ledger.ParseTilePath("tile/entries/x001/234.p/112")
	if err != nil {
		panic(err)
	}
	fmt.Println(q.Entries, q.Level, q.N, q.Width)
	_, err = ledger.ParseTilePath("tile/0/x000/005")
	fmt.Println(err)
	// Output:
	// tile/1/x001/x234/067.p/17
	// tile/entries/005
	// true 0 1234 112
	// ledger: malformed tile path "tile/0/x000/005": index has leading zeros
}

// tileLeaves returns n leaves of varying lengths: every 97th is empty, and
// the others are distinct.
func tileLeaves(n int) [][]byte {
	leaves := make([][]byte, n)
	for i := range leaves {
		if i%97 != 0 {
			leaves[i] = binary.AppendUvarint(bytes.Repeat([]byte{'x'}, i%5), uint64(i))
		}
	}
	return leaves
}

// growTree appends leaves to tree, failing the test on error.
func growTree(t testing.TB, tree *ledger.Tree, leaves [][]byte) {
	t.Helper()
	for _, leaf := range leaves {
		if _, err := tree.Append(leaf); err != nil {
			t.Fatal(err)
		}
	}
}

// treeTiles is a [tlog.TileReader] that reads hash tiles from a Tree.
type treeTiles struct{ tree *ledger.Tree }

func (r treeTiles) Height() int { return ledger.TileHeight }

func (r treeTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		data, err := r.tree.HashTile(int64(tile.L), tile.N, tile.W)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (r treeTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestHashTilesVerifyWithTlog grows a tree past two tile levels and, at
// many sizes, has tlog's TileHashReader (which checks every tile it loads
// against the tree hash) compute the root and inclusion and consistency
// proofs from HashTile's tiles alone: at the size just reached, and again
// for older sizes once the tree has grown, whose partial tiles must stay
// available.
func TestHashTilesVerifyWithTlog(t *testing.T) {
	final := 70000
	if testing.Short() {
		final = 2000
	}
	leaves := tileLeaves(final)
	tree, err := ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	sizes := []int64{1, 2, 3, 255, 256, 257, 300, 511, 512, 513, 767, 1000, 1024, 1025, 2000, 65535, 65536, 65537, 65792, 70000}
	roots := map[int64]tlog.Hash{}
	check := func(size int64) {
		t.Helper()
		root := roots[size]
		thr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, treeTiles{tree})
		got, err := tlog.TreeHash(size, thr)
		if err != nil || got != root {
			t.Fatalf("size %d (tree size %d): TreeHash from tiles = %v, %v; want %v", size, tree.Size(), got, err, root)
		}
		for _, i := range []int64{0, 1, 255, 256, size / 2, size - 2, size - 1} {
			if i < 0 || i >= size {
				continue
			}
			p, err := tlog.ProveRecord(size, i, thr)
			if err != nil {
				t.Fatalf("size %d: ProveRecord(%d) from tiles: %v", size, i, err)
			}
			if err := tlog.CheckRecord(p, size, root, i, tlog.RecordHash(leaves[i])); err != nil {
				t.Fatalf("size %d: CheckRecord(%d): %v", size, i, err)
			}
		}
		for _, old := range []int64{1, 256, 257, size / 3, size - 1} {
			if old < 1 || old >= size {
				continue
			}
			p, err := tlog.ProveTree(size, old, thr)
			if err != nil {
				t.Fatalf("size %d: ProveTree(%d) from tiles: %v", size, old, err)
			}
			if err := tlog.CheckTree(p, size, root, old, roots[old]); err != nil {
				t.Fatalf("size %d: CheckTree(%d): %v", size, old, err)
			}
		}
	}
	for size := int64(1); size <= int64(final); size++ {
		growTree(t, tree, leaves[size-1:size])
		// Record every root, for consistency proofs from any older size.
		roots[size], err = tree.Root()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Check the sizes in reverse: the tree has its final size throughout,
	// so older checkpoints' partial tiles must still be served; then grow
	// a second tree, checking at each size as it is reached.
	for i := len(sizes) - 1; i >= 0; i-- {
		if sizes[i] <= int64(final) {
			check(sizes[i])
		}
	}
	tree, err = ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range sizes {
		if size > int64(final) {
			break
		}
		growTree(t, tree, leaves[tree.Size():size])
		check(size)
	}
}

// TestHashTileContents checks tiles hash by hash against hashes computed
// without tlog's stored-hash machinery.
func TestHashTileContents(t *testing.T) {
	size := 65536 + 300
	if testing.Short() {
		size = 600
	}
	leaves := tileLeaves(size)
	tree, err := ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	growTree(t, tree, leaves)

	// Level 0: leaf hashes, in full tiles and every partial width.
	for n := int64(0); n*256 < int64(size); n++ {
		for _, w := range []int{1, 2, 100, 255, 256} {
			if n*256+int64(w) > int64(size) {
				continue
			}
			got, err := tree.HashTile(0, n, w)
			if err != nil {
				t.Fatalf("HashTile(0, %d, %d): %v", n, w, err)
			}
			var want []byte
			for i := n * 256; i < n*256+int64(w); i++ {
				h := ledger.LeafHash(leaves[i])
				want = append(want, h[:]...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("HashTile(0, %d, %d) differs from the leaf hashes", n, w)
			}
		}
	}
	// Level 1: hash i is the root of the 256 leaves of level-0 tile i.
	if size > 65536 {
		for _, w := range []int{1, 17, 256} {
			got, err := tree.HashTile(1, 0, w)
			if err != nil {
				t.Fatalf("HashTile(1, 0, %d): %v", w, err)
			}
			for i := 0; i < w; i++ {
				want, err := ledger.RootFromLeaves(leaves[i*256 : (i+1)*256])
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[i*32:(i+1)*32], want[:]) {
					t.Fatalf("HashTile(1, 0, %d): hash %d is not the root of leaves [%d, %d)", w, i, i*256, (i+1)*256)
				}
			}
		}
		// Level 2: its only hash so far is the root of the first 65536 leaves.
		got, err := tree.HashTile(2, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ledger.RootFromLeaves(leaves[:65536])
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want[:]) {
			t.Fatal("HashTile(2, 0, 1) is not the root of the first 65536 leaves")
		}
	}
}

// specTiles lists, for every tree size up to limit, the hash tiles C2SP
// tlog-tiles requires a log to serve once it has published a checkpoint of
// every size up to that one, taking the specification's words literally:
// the full tiles, and for each size s' so far and each level l, the partial
// tile of width floor(s' / 256^l) mod 256, if not zero.
func specTiles(limit int64) func(yield func(size int64, tiles map[tlog.Tile]bool) bool) {
	return func(yield func(int64, map[tlog.Tile]bool) bool) {
		tiles := map[tlog.Tile]bool{}
		for s := int64(0); s <= limit; s++ {
			for l, span := 0, int64(1); span <= s; l, span = l+1, span*256 {
				if s%(span*256) == 0 {
					tiles[tlog.Tile{H: 8, L: l, N: s/(span*256) - 1, W: 256}] = true
				}
				if w := (s / span) % 256; w != 0 {
					tiles[tlog.Tile{H: 8, L: l, N: s / (span * 256), W: int(w)}] = true
				}
			}
			if !yield(s, tiles) {
				return
			}
		}
	}
}

// TestTileAvailability checks that a tree serves exactly the tiles the
// specification requires, at sizes around the tile boundaries.
func TestTileAvailability(t *testing.T) {
	last := int64(2*65536 + 300)
	if testing.Short() {
		last = 1100
	}
	checkAt := map[int64]bool{}
	for _, b := range []int64{0, 256, 512, 768, 1024, 65536, 2 * 65536} {
		for d := int64(-2); d <= 2; d++ {
			checkAt[b+d] = true
		}
	}
	checkAt[70000] = true
	checkAt[last] = true

	tree, err := ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	leaves := tileLeaves(int(last))
	for size, want := range specTiles(last) {
		growTree(t, tree, leaves[tree.Size():size])
		if !checkAt[size] {
			continue
		}
		// Only tiles near the start and the right edge of each level are
		// checked, to keep the test fast; the rule is the same in between.
		near := func(l, n int64) bool {
			edge := size >> (8 * (l + 1))
			return n <= 3 || n >= edge-1 && n <= edge+1
		}
		// Everything required is served, at level 0 also as an entry bundle.
		for tile := range want {
			if !near(int64(tile.L), tile.N) {
				continue
			}
			if _, err := tree.HashTile(int64(tile.L), tile.N, tile.W); err != nil {
				t.Errorf("size %d: HashTile(%d, %d, %d): %v", size, tile.L, tile.N, tile.W, err)
			}
			if tile.L == 0 {
				if _, err := tree.EntryBundle(tile.N, tile.W); err != nil {
					t.Errorf("size %d: EntryBundle(%d, %d): %v", size, tile.N, tile.W, err)
				}
			}
		}
		// Nothing else is, among a generous range of candidates.
		for l := int64(-1); l <= 4; l++ {
			edge := size >> (8 * (max(l, 0) + 1))
			for _, n := range []int64{-1, 0, 1, 2, 3, edge - 1, edge, edge + 1} {
				for _, w := range []int{-1, 0, 1, 2, 3, 4, 17, 43, 44, 45, 112, 253, 254, 255, 256, 257} {
					if want[tlog.Tile{H: 8, L: int(l), N: n, W: w}] {
						continue
					}
					_, err := tree.HashTile(l, n, w)
					if !errors.Is(err, ledger.ErrTileNotAvailable) || !errors.Is(err, ledger.ErrIndexOutOfRange) {
						t.Errorf("size %d: HashTile(%d, %d, %d) = %v, want ErrTileNotAvailable", size, l, n, w, err)
					}
					if l == 0 {
						if _, err := tree.EntryBundle(n, w); !errors.Is(err, ledger.ErrTileNotAvailable) {
							t.Errorf("size %d: EntryBundle(%d, %d) = %v, want ErrTileNotAvailable", size, n, w, err)
						}
					}
				}
			}
		}
	}
	for _, tc := range []struct {
		level, n int64
		width    int
	}{
		{63, 0, 1}, {ledger.MaxTileLevel + 1, 0, 1}, {8, 0, 1}, {0, 1<<63 - 1, 256}, {0, 1<<63 - 1, 1}, {1, 1 << 60, 1},
	} {
		if _, err := tree.HashTile(tc.level, tc.n, tc.width); !errors.Is(err, ledger.ErrTileNotAvailable) {
			t.Errorf("HashTile(%d, %d, %d) = %v, want ErrTileNotAvailable", tc.level, tc.n, tc.width, err)
		}
	}
	if _, err := tree.EntryBundle(1<<63-1, 256); !errors.Is(err, ledger.ErrTileNotAvailable) {
		t.Errorf("EntryBundle(MaxInt64, 256) = %v, want ErrTileNotAvailable", err)
	}
}

// parseBundle splits an entry bundle without using the ledger package.
func parseBundle(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("entry bundle ends in a partial length")
		}
		n := int(b[0])<<8 | int(b[1])
		if len(b) < 2+n {
			t.Fatalf("entry bundle entry of length %d runs past the end", n)
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

func TestEntryBundle(t *testing.T) {
	tree, err := ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xab}, ledger.MaxLeafSize)
	growTree(t, tree, [][]byte{[]byte("a"), {}, []byte("hello"), big})

	got, err := tree.EntryBundle(0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte("\x00\x01a\x00\x00\x00\x05hello"); !bytes.Equal(got, want) {
		t.Errorf("EntryBundle(0, 3) = %q, want %q", got, want)
	}
	got, err = tree.EntryBundle(0, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+2+0+2+5+2+2+ledger.MaxLeafSize || !bytes.Equal(got[len(got)-ledger.MaxLeafSize-2:][:2], []byte{0xff, 0xff}) {
		t.Errorf("EntryBundle(0, 4) does not end in a %d-byte entry", ledger.MaxLeafSize)
	}
	for _, w := range []int{5, 256, 0} {
		if _, err := tree.EntryBundle(0, w); !errors.Is(err, ledger.ErrTileNotAvailable) {
			t.Errorf("EntryBundle(0, %d) = %v, want ErrTileNotAvailable", w, err)
		}
	}

	// Full and partial bundles of a larger tree: the entries are the
	// leaves, and hash to the level-0 tile.
	leaves := tileLeaves(600)
	tree, err = ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	growTree(t, tree, leaves)
	for _, tc := range []struct {
		n     int64
		width int
	}{{0, 256}, {1, 256}, {2, 88}, {2, 1}, {0, 7}, {1, 255}} {
		b, err := tree.EntryBundle(tc.n, tc.width)
		if err != nil {
			t.Fatalf("EntryBundle(%d, %d): %v", tc.n, tc.width, err)
		}
		entries := parseBundle(t, b)
		tile, err := tree.HashTile(0, tc.n, tc.width)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != tc.width {
			t.Fatalf("EntryBundle(%d, %d) holds %d entries", tc.n, tc.width, len(entries))
		}
		for i, e := range entries {
			if !bytes.Equal(e, leaves[tc.n*256+int64(i)]) {
				t.Fatalf("EntryBundle(%d, %d) entry %d is not leaf %d", tc.n, tc.width, i, tc.n*256+int64(i))
			}
			if h := tlog.RecordHash(e); !bytes.Equal(h[:], tile[i*32:(i+1)*32]) {
				t.Fatalf("EntryBundle(%d, %d) entry %d does not hash to the tile", tc.n, tc.width, i)
			}
		}
	}
}
