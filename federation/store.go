package federation

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/ledger"
)

// Key prefixes of the state's pebble database. Every key starts with one
// byte naming what it holds; numbers are big-endian so that keys sort in
// numeric order.
const (
	kMeta     = 0x01 // kMeta + name → value (see meta* below)
	kHash     = 0x02 // kHash + be64(stored hash index) → 32-byte hash
	kLeaf     = 0x03 // kLeaf + be64(entry index) → leaf
	kPayload  = 0x04 // kPayload + be64(entry index) → payload of a statement
	kSequence = 0x05 // kSequence + org + 0 + set → be64(next sequence)
	kActEntry = 0x06 // kActEntry + be64(entry index) → nothing: a governance entry
	kContrib  = 0x07 // kContrib + org + 0 + set + 0 + be64(sequence) → be64(entry index) of that contribution
	kSignal   = 0x10 // kSignal + set + 0 + signal key → signal record
	kCount    = 0x11 // kCount + set → be64(signals in the set)
	kVerdict  = 0x12 // kVerdict + set + 0 + signal key + org → verdict record
	kTally    = 0x13 // kTally + set + 0 + signal key → tally record
)

// Names under kMeta.
const (
	metaApplied    = "applied"    // be64: Raft index of the last command applied
	metaGenesis    = "genesis"    // SHA-256 hex of the genesis document
	metaCheckpoint = "checkpoint" // latest published cosigned checkpoint
)

func metaKey(name string) []byte { return append([]byte{kMeta}, name...) }

func indexKey(prefix byte, i int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefix}, uint64(i))
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// contribKey is the key recording where contribution seq of org to set is.
func contribKey(org, set string, seq uint64) []byte {
	b := append(append(append(append([]byte{kContrib}, org...), 0), set...), 0)
	return binary.BigEndian.AppendUint64(b, seq)
}

// setPrefix returns prefix + set + 0: the start of every key of set under prefix.
func setPrefix(prefix byte, set string) []byte {
	b := append([]byte{prefix}, set...)
	return append(b, 0)
}

// prefixEnd returns the smallest key greater than every key starting with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// db is the state's pebble database and the writes of the command being
// applied. Apply runs on one goroutine; readers hold State.mu for reading,
// Apply holds it for writing while it commits.
type db struct {
	fs   vfs.FS
	dir  string
	opts *pebble.Options
	p    *pebble.DB

	// batch collects the writes of the command being applied; pending holds
	// the tree's hashes and leaf written to it, which the tree reads back
	// before the batch commits.
	batch   *pebble.Batch
	pending map[int64]tlog.Hash
	leaf    []byte // leaf appended by the current command (index = size)
	size    int64  // committed leaves
	closed  bool   // set by close; reads then fail instead of panicking in pebble
}

// errClosed is what reads of a closed state return.
var errClosed = errors.New("the node's state is closed (the node is shutting down)")

// quietLogger drops pebble's informational lines; Fatalf is pebble's own
// assertion of corruption and must stop the process.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// openDB opens the database in dir on fs, creating it if needed.
func openDB(fs vfs.FS, dir string, cacheBytes int64) (*db, error) {
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{
		FS:                          fs,
		Cache:                       cache,
		MemTableSize:                16 << 20,
		MemTableStopWritesThreshold: 4,
		MaxOpenFiles:                256,
		Logger:                      quietLogger{},
	}
	// Signal keys are looked up one by one when a contribution is applied,
	// mostly for signals not (yet) in the set: bloom filters answer those
	// without reading a block.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloomPolicy
		opts.Levels[i].BlockSize = 16 << 10
	}
	p, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("opening state database %s: %w", dir, err)
	}
	d := &db{fs: fs, dir: dir, opts: opts, p: p}
	if d.size, err = d.countLeaves(); err != nil {
		p.Close()
		return nil, err
	}
	return d, nil
}

// countLeaves finds the number of leaves: one more than the last leaf key.
func (d *db) countLeaves() (int64, error) {
	it, err := d.p.NewIter(&pebble.IterOptions{LowerBound: []byte{kLeaf}, UpperBound: []byte{kLeaf + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	// A snapshot may hold any key: check the form before reading it.
	k := it.Key()
	if len(k) != 9 || binary.BigEndian.Uint64(k[1:]) >= 1<<62 {
		return 0, fmt.Errorf("corrupt leaf key %x", k)
	}
	return int64(binary.BigEndian.Uint64(k[1:])) + 1, nil
}

func (d *db) close() error {
	d.closed = true
	if d.batch != nil {
		d.batch.Close()
		d.batch = nil
	}
	return d.p.Close()
}

// get returns a copy of the value of key, or nil and false if there is none.
func (d *db) get(key []byte) ([]byte, bool, error) {
	if d.closed {
		return nil, false, errClosed
	}
	v, closer, err := d.p.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

// begin starts the batch of a command.
func (d *db) begin() {
	d.batch = d.p.NewBatch()
	d.pending = map[int64]tlog.Hash{}
	d.leaf = nil
}

// abort drops the batch of a command that was rejected.
func (d *db) abort() {
	if d.batch != nil {
		d.batch.Close()
	}
	d.batch, d.pending, d.leaf = nil, nil, nil
}

// commit writes the batch. It does not wait for the disk: the Raft log is
// durable and a restarted node re-applies what the database lost; snapshots
// sync first (see [State.Snapshot]).
func (d *db) commit() error {
	err := d.batch.Commit(pebble.NoSync)
	d.batch.Close()
	if err == nil && d.leaf != nil {
		d.size++
	}
	d.batch, d.pending, d.leaf = nil, nil, nil
	return err
}

func (d *db) set(key, value []byte) {
	if err := d.batch.Set(key, value, nil); err != nil {
		panic(err) // only fails on a closed batch: a bug
	}
}

func (d *db) delete(key []byte) {
	if err := d.batch.Delete(key, nil); err != nil {
		panic(err)
	}
}

// sync makes every committed batch durable.
func (d *db) sync() error { return d.p.LogData(nil, pebble.Sync) }

// The ledger.Store the tree runs on. Reads see committed data plus the
// current command's pending hashes and leaf.

var _ ledger.Store = (*db)(nil)

func (d *db) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if h, ok := d.pending[x]; ok {
			out[i] = h
			continue
		}
		v, ok, err := d.get(indexKey(kHash, x))
		if err != nil {
			return nil, err
		}
		if !ok || len(v) != tlog.HashSize {
			return nil, fmt.Errorf("stored hash %d is missing", x)
		}
		copy(out[i][:], v)
	}
	return out, nil
}

func (d *db) WriteHashes(start int64, hashes []tlog.Hash) error {
	if d.batch == nil {
		return errors.New("writing hashes outside a command")
	}
	for i, h := range hashes {
		d.pending[start+int64(i)] = h
		d.set(indexKey(kHash, start+int64(i)), h[:])
	}
	return nil
}

func (d *db) ReadLeaves(start, end int64) ([][]byte, error) {
	if start < 0 || start > end || end > d.Size() {
		return nil, fmt.Errorf("leaves [%d, %d) of %d: %w", start, end, d.Size(), ledger.ErrIndexOutOfRange)
	}
	if d.closed {
		return nil, errClosed
	}
	out := make([][]byte, 0, end-start)
	if start < d.size {
		it, err := d.p.NewIter(&pebble.IterOptions{LowerBound: indexKey(kLeaf, start), UpperBound: indexKey(kLeaf, min(end, d.size))})
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			out = append(out, append([]byte(nil), it.Value()...))
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	if end > d.size {
		out = append(out, append([]byte(nil), d.leaf...))
	}
	if int64(len(out)) != end-start {
		return nil, fmt.Errorf("state database holds %d of leaves [%d, %d)", len(out), start, end)
	}
	return out, nil
}

func (d *db) AppendLeaf(index int64, leaf []byte) error {
	if d.batch == nil || d.leaf != nil || index != d.size {
		return fmt.Errorf("appending leaf %d to %d leaves: %w", index, d.size, ledger.ErrIndexOutOfRange)
	}
	d.leaf = append([]byte(nil), leaf...)
	d.set(indexKey(kLeaf, index), leaf)
	return nil
}

func (d *db) Size() int64 {
	if d.leaf != nil {
		return d.size + 1
	}
	return d.size
}

// dump writes every key of a consistent view of the database: uvarint key
// length, key, uvarint value length, value; a zero key length ends it.
func dump(snap *pebble.Snapshot, w io.Writer) error {
	it, err := snap.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	var hdr []byte
	for ok := it.First(); ok; ok = it.Next() {
		hdr = binary.AppendUvarint(hdr[:0], uint64(len(it.Key())))
		hdr = append(hdr, it.Key()...)
		hdr = binary.AppendUvarint(hdr, uint64(len(it.Value())))
		if _, err := w.Write(hdr); err != nil {
			return err
		}
		if _, err := w.Write(it.Value()); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	_, err = w.Write([]byte{0})
	return err
}

// load writes the keys of a dump into an empty database.
func load(p *pebble.DB, r io.ByteReader, read func([]byte) error) error {
	b := p.NewBatch()
	defer func() { b.Close() }()
	for {
		kl, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("reading snapshot: %w", err)
		}
		if kl == 0 {
			break
		}
		if kl > 1<<16 {
			return fmt.Errorf("reading snapshot: key of %d bytes", kl)
		}
		k := make([]byte, kl)
		if err := read(k); err != nil {
			return fmt.Errorf("reading snapshot: %w", err)
		}
		vl, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("reading snapshot: %w", err)
		}
		if vl > MaxPayloadSize+MaxEnvelopeSize {
			return fmt.Errorf("reading snapshot: value of %d bytes", vl)
		}
		v := make([]byte, vl)
		if err := read(v); err != nil {
			return fmt.Errorf("reading snapshot: %w", err)
		}
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() > 8<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return err
			}
			b.Close()
			b = p.NewBatch()
		}
	}
	return b.Commit(pebble.Sync)
}
