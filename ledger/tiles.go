package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// This file serves the tree in the form of the C2SP tlog-tiles API
// (https://c2sp.org/tlog-tiles): hash tiles and entry bundles, and the paths
// that name them. Fetching the checkpoint is the caller's business, and so is
// all I/O.

// TileHeight is the height of a C2SP tlog-tiles tile: a full tile holds
// 2^TileHeight hashes, and a full entry bundle as many entries.
const TileHeight = 8

// TileWidth is the number of hashes in a full tile and of entries in a full
// entry bundle.
const TileWidth = 1 << TileHeight

// MaxTileLevel is the highest tile level a tile path may name.
const MaxTileLevel = 63

var (
	// ErrTileNotAvailable is returned, wrapped, by [Tree.HashTile] and
	// [Tree.EntryBundle] for a tile or bundle that the tree does not (yet)
	// hold in full at the requested width. It wraps [ErrIndexOutOfRange].
	ErrTileNotAvailable = fmt.Errorf("%w: tile not available", ErrIndexOutOfRange)

	// ErrMalformedTilePath is returned, wrapped, by [ParseTilePath] for a
	// path that is not in the canonical form C2SP tlog-tiles prescribes.
	ErrMalformedTilePath = errors.New("ledger: malformed tile path")
)

// A TilePath names a resource of the C2SP tlog-tiles API, relative to the
// log's URL prefix: a hash tile
//
//	tile/<L>/<N>[.p/<W>]
//
// or an entry bundle
//
//	tile/entries/<N>[.p/<W>]
//
// <L> is the level, a decimal number from 0 to [MaxTileLevel] without
// leading zeros. <N> is the tile's index within its level, written as
// zero-padded 3-digit path elements, all but the last prefixed with "x":
// index 1234067 is "x001/x234/067", index 5 is "005". The ".p/<W>" suffix
// appears only on a partial tile, whose width <W> is a decimal number from 1
// to [TileWidth]-1 without leading zeros.
type TilePath struct {
	// Entries is true for an entry bundle and false for a hash tile.
	Entries bool
	// Level is the tile's level, from 0 to MaxTileLevel. It is 0 for an
	// entry bundle.
	Level int64
	// N is the tile's index within its level, at least 0.
	N int64
	// Width is the number of hashes or entries the resource holds:
	// TileWidth for a full tile, 1 to TileWidth-1 for a partial one.
	Width int
}

// String returns the path p names, such as "tile/0/x001/234.p/17" or
// "tile/entries/000". It does not validate p: a TilePath that [ParseTilePath]
// would not return (such as one with a Width of 0) gives a path that
// ParseTilePath rejects, or one naming a different resource.
func (p TilePath) String() string {
	var b strings.Builder
	b.WriteString("tile/")
	if p.Entries {
		b.WriteString("entries/")
	} else {
		b.WriteString(strconv.FormatInt(p.Level, 10))
		b.WriteByte('/')
	}
	b.WriteString(formatTileIndex(p.N))
	if p.Width != TileWidth {
		b.WriteString(".p/")
		b.WriteString(strconv.Itoa(p.Width))
	}
	return b.String()
}

// formatTileIndex writes n in 3-digit groups, all but the last prefixed
// with "x". A negative n is written in decimal with its sign, which
// ParseTilePath rejects.
func formatTileIndex(n int64) string {
	if n < 0 {
		return strconv.FormatInt(n, 10)
	}
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

// ParseTilePath parses a path of the form [TilePath] describes, without a
// leading slash. It is strict, so that every resource has exactly one name:
// it rejects leading zeros beyond the 3-digit groups of <N> (such as
// "x000/005"), levels above [MaxTileLevel], widths outside 1 to
// [TileWidth]-1, an <N> that does not fit an int64, and anything else that
// String would not write. Errors wrap [ErrMalformedTilePath].
func ParseTilePath(path string) (TilePath, error) {
	bad := func(why string) (TilePath, error) {
		return TilePath{}, fmt.Errorf("%w %q: %s", ErrMalformedTilePath, path, why)
	}
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok {
		return bad(`want "tile/" first`)
	}
	var p TilePath
	if rest, ok = strings.CutPrefix(rest, "entries/"); ok {
		p.Entries = true
	} else {
		var level string
		level, rest, _ = strings.Cut(rest, "/")
		l, ok := parseDecimal(level, MaxTileLevel)
		if !ok {
			return bad(fmt.Sprintf("level %q is not a decimal number from 0 to %d without leading zeros", level, MaxTileLevel))
		}
		p.Level = l
	}

	elems := strings.Split(rest, "/")
	p.Width = TileWidth
	if strings.HasSuffix(elems[len(elems)-1], ".p") {
		return bad("partial tile without a width")
	}
	if k := len(elems) - 2; k >= 0 && strings.HasSuffix(elems[k], ".p") {
		w, ok := parseDecimal(elems[k+1], TileWidth-1)
		if !ok || w == 0 {
			return bad(fmt.Sprintf("width %q is not a decimal number from 1 to %d without leading zeros", elems[k+1], TileWidth-1))
		}
		p.Width = int(w)
		elems[k] = strings.TrimSuffix(elems[k], ".p")
		elems = elems[:k+1]
	}

	for i, e := range elems {
		if i < len(elems)-1 {
			d, ok := strings.CutPrefix(e, "x")
			if !ok {
				return bad(fmt.Sprintf("index element %q: every element but the last must be x and three digits", e))
			}
			if i == 0 && d == "000" {
				return bad("index has leading zeros")
			}
			e = d
		}
		if len(e) != 3 || !isDigits(e) {
			return bad(fmt.Sprintf("index element %q is not three digits", elems[i]))
		}
		g := int64(e[0]-'0')*100 + int64(e[1]-'0')*10 + int64(e[2]-'0')
		if p.N > (1<<63-1-g)/1000 {
			return bad("index overflows int64")
		}
		p.N = p.N*1000 + g
	}
	return p, nil
}

// parseDecimal parses s as a decimal number from 0 to max without sign or
// leading zeros.
func parseDecimal(s string, max int64) (int64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' || !isDigits(s) {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v > max {
		return 0, false
	}
	return v, true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// tileFits reports whether the tree of size leaves holds all of the hash
// tile at level and index n with width hashes (for level 0, equally, the
// entry bundle n of width entries); width is TileWidth for a full tile.
func tileFits(size, level, n int64, width int) bool {
	if size < 0 || level < 0 || level > MaxTileLevel || n < 0 || width < 1 || width > TileWidth {
		return false
	}
	// Hashes at tile level l are the roots of the complete subtrees of
	// 256^l leaves; a tree of size leaves has size >> (8*l) of them. A Go
	// shift by 64 or more of a non-negative int64 is 0.
	hashes := size >> (TileHeight * level)
	// n*TileWidth + width <= hashes, without overflow.
	return hashes >= int64(width) && n <= (hashes-int64(width))/TileWidth
}

// HashTile returns the hash tile at level and index n with width hashes, as
// C2SP tlog-tiles serves it: the concatenated 32-byte hashes, where hash i
// of a level-0 tile is the leaf hash of leaf n*256+i, and hash i of a tile
// at a higher level is the root of the subtree spanned by full tile
// n*256+i of the level beneath (as [tlog.ReadTileData] computes with tile
// height [TileHeight]). width is [TileWidth] for a full tile.
//
// A tile is available once the tree holds every leaf below it: for a tree
// of size s, that is when (n*256 + width) * 256^level <= s. This covers
// what the specification requires a log to serve after publishing
// checkpoints up to size s: every full tile, and the partial tile of width
// floor(s' / 256^level) mod 256 for every checkpointed size s' <= s. Any
// size the tree has passed through may have been checkpointed, so every
// narrower width stays available too, as do partial tiles whose full tile
// exists (the specification allows, but does not require, removing them).
// For any other tile HashTile returns an error wrapping
// [ErrTileNotAvailable]. An available tile never changes, so callers may
// cache it indefinitely.
func (t *Tree) HashTile(level, n int64, width int) ([]byte, error) {
	size := t.Size()
	if !tileFits(size, level, n, width) {
		return nil, fmt.Errorf("hash tile %d/%d of width %d in tree of size %d: %w", level, n, width, size, ErrTileNotAvailable)
	}
	tile := tlog.Tile{H: TileHeight, L: int(level), N: n, W: width}
	// Every hash the tile reads was written by an append the size counts,
	// and such hashes are never overwritten.
	data, err := tlog.ReadTileData(tile, t.s)
	if err != nil {
		return nil, fmt.Errorf("couldn't read hash tile %d/%d of width %d: %w", level, n, width, err)
	}
	return data, nil
}

// EntryBundle returns entry bundle n with width entries, as C2SP tlog-tiles
// serves it: leaves n*256 to n*256+width-1, each as a big-endian uint16
// length followed by that many bytes. width is [TileWidth] for a full
// bundle. Each entry's leaf hash is the matching hash of level-0 hash tile
// n.
//
// The bundle is available exactly when level-0 hash tile n of the same
// width is (see [Tree.HashTile]); for any other, EntryBundle returns an
// error wrapping [ErrTileNotAvailable].
func (t *Tree) EntryBundle(n int64, width int) ([]byte, error) {
	size := t.Size()
	if !tileFits(size, 0, n, width) {
		return nil, fmt.Errorf("entry bundle %d of width %d in tree of size %d: %w", n, width, size, ErrTileNotAvailable)
	}
	start := n * TileWidth
	leaves, err := t.Leaves(start, start+int64(width))
	if err != nil {
		return nil, fmt.Errorf("couldn't read entry bundle %d of width %d: %w", n, width, err)
	}
	total := 0
	for _, leaf := range leaves {
		total += 2 + len(leaf)
	}
	b := make([]byte, 0, total)
	for _, leaf := range leaves {
		// Append keeps leaves within MaxLeafSize, which fits a uint16.
		b = binary.BigEndian.AppendUint16(b, uint16(len(leaf)))
		b = append(b, leaf...)
	}
	return b, nil
}
