package federation

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/vfs"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A State is the federation's replicated state machine: the ledger and what
// it implies (orgs, keys, sets and their current signals, sequence numbers,
// payloads, feedback). Raft drives it through [State.Apply],
// [State.Snapshot] and [State.Restore]; readers use the other methods
// concurrently.
//
// The state lives in a pebble database on disk (see [OpenState]); memory
// holds only the registry, the sequence numbers and the latest checkpoint.
// Each command's effects commit atomically together with its Raft index, so
// a restarted node resumes where its database left off instead of replaying
// the ledger.
//
// Apply is deterministic: it reads no clock, draws no randomness and never
// iterates a map, so every node applying the same commands holds the same
// ledger byte for byte.
type State struct {
	doc     []byte   // the genesis document, byte for byte
	genesis *Genesis // parsed doc
	fs      vfs.FS
	dir     string
	cache   int64
	mirror  bool // a subscriber's mirror: statements may come without payload

	// mu guards everything below. Apply is the only writer: it validates a
	// command without the lock (nothing else changes the state) and holds
	// mu for writing while it commits the command and publishes the result.
	// Readers hold it for reading, also while they read the database.
	mu      sync.RWMutex
	db      *db
	tree    *ledger.Tree
	applied uint64            // Raft index of the last command applied
	reg     *Registry         // orgs, keys and sets as of the ledger's end
	trust   uint64            // counts changes to membership and CAs
	next    map[seqKey]uint64 // next sequence number expected per (org, set)
	changed chan struct{}     // closed and replaced whenever the ledger or its checkpoint grows
	closed  bool
	// snaps are the database snapshots Snapshot took whose writer has not
	// finished. Raft may drop a snapshot without persisting it (a shutdown,
	// a failed sink): Close releases what is left, since pebble refuses to
	// close a database with open snapshots.
	snapMu sync.Mutex
	snaps  map[*pebble.Snapshot]struct{}

	checkpoint []byte // latest published cosigned checkpoint (signed note)
	cpSize     int64  // its size
}

type seqKey struct{ org, set string }

// StateOptions tunes [OpenState].
type StateOptions struct {
	// CacheBytes is the database's block cache; 0 means 64 MiB.
	CacheBytes int64
}

// NewState returns an in-memory state of the federation founded by the
// genesis document doc, before any command is applied (an empty ledger).
// Tests and tools use it; nodes use [OpenState].
func NewState(doc []byte) (*State, error) {
	return openState(vfs.NewMem(), "state", doc, StateOptions{})
}

// OpenState opens the state kept in dir, creating it if dir does not exist.
// The directory must belong to the federation doc founds.
func OpenState(dir string, doc []byte, opts StateOptions) (*State, error) {
	return openState(vfs.Default, dir, doc, opts)
}

func openState(fs vfs.FS, dir string, doc []byte, opts StateOptions) (*State, error) {
	g, err := ParseGenesis(doc)
	if err != nil {
		return nil, err
	}
	if opts.CacheBytes == 0 {
		opts.CacheBytes = 64 << 20
	}
	s := &State{doc: slices.Clone(doc), genesis: g, fs: fs, dir: dir, cache: opts.CacheBytes, changed: make(chan struct{})}
	// A restore interrupted by a crash leaves its half-written copy behind.
	if err := fs.RemoveAll(dir + restoreSuffix); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

const restoreSuffix = ".restoring"

// open opens the database in s.dir and loads what memory holds.
func (s *State) open() error {
	d, err := openDB(s.fs, s.dir, s.cache)
	if err != nil {
		return err
	}
	if err := s.load(d); err != nil {
		d.close()
		return err
	}
	return nil
}

// load reads the in-memory part of the state from d and makes d current.
func (s *State) load(d *db) error {
	l, err := s.inspect(d)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db, s.tree, s.applied, s.reg, s.next = d, l.tree, l.applied, l.reg, l.next
	s.trust++
	s.checkpoint, s.cpSize = l.checkpoint, l.cpSize
	s.notifyLocked()
	return nil
}

// loaded is the in-memory part of a state database.
type loaded struct {
	tree       *ledger.Tree
	applied    uint64
	reg        *Registry
	next       map[seqKey]uint64
	checkpoint []byte // verified against tree and reg
	cpSize     int64  // checkpoint's size
}

// inspect reads the in-memory part of the state from d, checking that d
// belongs to this federation and holds a consistent tree, and that its
// stored checkpoint verifies against that tree. It changes nothing in s, so
// Restore can check a snapshot with it before the snapshot replaces anything.
func (s *State) inspect(d *db) (*loaded, error) {
	sum := Digest(s.doc)
	want := hex.EncodeToString(sum[:])
	got, ok, err := d.get(metaKey(metaGenesis))
	if err != nil {
		return nil, err
	}
	if !ok {
		if d.size != 0 {
			return nil, fmt.Errorf("state database %s holds entries but no genesis digest: it is damaged", s.dir)
		}
		if err := d.p.Set(metaKey(metaGenesis), []byte(want), pebble.Sync); err != nil {
			return nil, err
		}
	} else if string(got) != want {
		return nil, fmt.Errorf("state database %s belongs to another federation (genesis %s, this node's is %s): point data_dir elsewhere", s.dir, got, want)
	}
	var applied uint64
	if b, ok, err := d.get(metaKey(metaApplied)); err != nil {
		return nil, err
	} else if ok {
		if len(b) != 8 {
			return nil, fmt.Errorf("state database %s: corrupt applied index %x", s.dir, b)
		}
		applied = binary.BigEndian.Uint64(b)
	}
	tree, err := ledger.NewTree(d)
	if err != nil {
		return nil, fmt.Errorf("state database %s: %w", s.dir, err)
	}
	reg := NewRegistry(s.genesis)
	acts, err := d.p.NewIter(&pebble.IterOptions{LowerBound: []byte{kActEntry}, UpperBound: []byte{kActEntry + 1}})
	if err != nil {
		return nil, err
	}
	for ok := acts.First(); ok; ok = acts.Next() {
		if len(acts.Key()) != 9 {
			acts.Close()
			return nil, fmt.Errorf("state database %s: corrupt governance entry key %x", s.dir, acts.Key())
		}
		idx := int64(binary.BigEndian.Uint64(acts.Key()[1:]))
		leaf, ok, err := d.get(indexKey(kLeaf, idx))
		if err == nil && !ok {
			err = fmt.Errorf("governance entry %d is missing", idx)
		}
		if err == nil {
			err = applyLeafAct(reg, leaf, idx)
		}
		if err != nil {
			acts.Close()
			return nil, fmt.Errorf("state database %s: %w", s.dir, err)
		}
	}
	if err := acts.Close(); err != nil {
		return nil, err
	}
	next := map[seqKey]uint64{}
	seqs, err := d.p.NewIter(&pebble.IterOptions{LowerBound: []byte{kSequence}, UpperBound: []byte{kSequence + 1}})
	if err != nil {
		return nil, err
	}
	for ok := seqs.First(); ok; ok = seqs.Next() {
		org, set, ok := strings.Cut(string(seqs.Key()[1:]), "\x00")
		if !ok || len(seqs.Value()) != 8 {
			seqs.Close()
			return nil, fmt.Errorf("state database %s: corrupt sequence record %q", s.dir, seqs.Key())
		}
		next[seqKey{org, set}] = binary.BigEndian.Uint64(seqs.Value())
	}
	if err := seqs.Close(); err != nil {
		return nil, err
	}
	cp, _, err := d.get(metaKey(metaCheckpoint))
	if err != nil {
		return nil, err
	}
	l := &loaded{tree: tree, applied: applied, reg: reg, next: next, checkpoint: cp}
	if cp != nil {
		// The checks a checkpoint command passes, against the state loaded.
		c, err := (&State{genesis: s.genesis, tree: tree, reg: reg}).checkCheckpointLocked(cp)
		if err != nil {
			return nil, fmt.Errorf("state database %s: stored checkpoint: %w", s.dir, err)
		}
		l.cpSize = c.Size
	}
	return l, nil
}

// applyLeafAct applies the governance act of the leaf at idx to reg.
func applyLeafAct(reg *Registry, leaf []byte, idx int64) error {
	e, _, err := DecodeEntry(leaf)
	if err != nil {
		return err
	}
	act, err := PeekAct(e.GetGovernance().GetEnvelope())
	if err != nil {
		return fmt.Errorf("entry %d: %w", idx, err)
	}
	return reg.ApplyAct(act, idx)
}

// Close closes the database. The State must not be used afterwards.
func (s *State) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.snapMu.Lock()
	for snap := range s.snaps {
		snap.Close()
	}
	s.snaps = nil
	s.snapMu.Unlock()
	return s.db.close()
}

// releaseSnapshot closes snap unless Close already has.
func (s *State) releaseSnapshot(snap *pebble.Snapshot) {
	s.snapMu.Lock()
	defer s.snapMu.Unlock()
	if _, ok := s.snaps[snap]; ok {
		delete(s.snaps, snap)
		snap.Close()
	}
}

// AppliedIndex returns the Raft index of the last command applied; it
// survives restarts.
func (s *State) AppliedIndex() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.applied
}

// Genesis returns the parsed genesis document. It must not be modified.
func (s *State) Genesis() *Genesis { return s.genesis }

// GenesisDocument returns the genesis document's bytes.
func (s *State) GenesisDocument() []byte { return slices.Clone(s.doc) }

// A Result is what applying a command produced: the ledger index of a new
// entry, or the reason it was rejected. Its JSON form travels from the leader
// back to the node that received the request.
type Result struct {
	Index    int64  `json:"index,omitempty"`
	TreeSize int64  `json:"tree_size,omitempty"`
	Code     Code   `json:"code,omitempty"`
	Msg      string `json:"msg,omitempty"`
	// Committed: see [RejectError.Committed].
	Committed int64 `json:"committed,omitempty"`
}

// Err returns the rejection as a *RejectError, or nil.
func (r *Result) Err() error {
	if r.Code == 0 {
		return nil
	}
	return &RejectError{Code: r.Code, Msg: r.Msg, Committed: r.Committed}
}

// EncodeResult encodes r for transport.
func EncodeResult(r *Result) []byte {
	b, _ := json.Marshal(r) // cannot fail: plain struct
	return b
}

// DecodeResult decodes a result produced by [EncodeResult].
func DecodeResult(b []byte) (*Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decoding apply result: %w", err)
	}
	return &r, nil
}

func rejectResult(err error) []byte {
	var re *RejectError
	if !errors.As(err, &re) {
		re = &RejectError{Code: CodeInvalid, Msg: err.Error()}
	}
	return EncodeResult(&Result{Code: re.Code, Msg: re.Msg, Committed: re.Committed})
}

// Apply applies one serialized [hashfedv1.Command], committed at Raft log
// index, and returns an encoded [Result]. A rejected command changes nothing
// but the recorded index.
//
// Apply panics if the database fails: a node that cannot record what the
// federation agreed must stop rather than diverge.
func (s *State) Apply(index uint64, cmd []byte) []byte {
	var c hashfedv1.Command
	if err := proto.Unmarshal(cmd, &c); err != nil {
		return s.rejected(index, reject(CodeInvalid, "command does not decode: %v", err))
	}
	switch op := c.Op.(type) {
	case *hashfedv1.Command_Genesis:
		if err := s.checkGenesisLocked(op.Genesis); err != nil {
			return s.rejected(index, err)
		}
		return s.appendEntry(index, &hashfedv1.LedgerEntry{
			TimeUnixNano: c.TimeUnixNano,
			Kind:         &hashfedv1.LedgerEntry_Genesis{Genesis: &hashfedv1.GenesisEntry{Document: op.Genesis}},
		}, nil)
	case *hashfedv1.Command_Checkpoint:
		cp, err := s.checkCheckpointLocked(op.Checkpoint)
		if err != nil {
			return s.rejected(index, err)
		}
		s.commit(index, func() func() {
			s.db.set(metaKey(metaCheckpoint), op.Checkpoint)
			return func() { s.checkpoint, s.cpSize = slices.Clone(op.Checkpoint), cp.Size }
		})
		return EncodeResult(&Result{TreeSize: cp.Size})
	case *hashfedv1.Command_Governance:
		act, _, err := s.reg.CheckAct(s.genesis.Federation, op.Governance, s.tree.Size())
		if err != nil {
			return s.rejected(index, err)
		}
		next := s.reg.Clone()
		if err := next.ApplyAct(act, s.tree.Size()); err != nil {
			return s.rejected(index, err)
		}
		return s.appendEntry(index, &hashfedv1.LedgerEntry{
			TimeUnixNano: c.TimeUnixNano,
			Kind:         &hashfedv1.LedgerEntry_Governance{Governance: &hashfedv1.GovernanceEntry{Envelope: op.Governance}},
		}, func(idx int64) func() {
			s.db.set(indexKey(kActEntry, idx), nil)
			return func() { s.reg = next; s.trust++ }
		})
	case *hashfedv1.Command_Contribution:
		st, p, err := s.checkContributionLocked(op.Contribution)
		if err != nil {
			if CodeOf(err) == CodeInternal {
				panic(fmt.Sprintf("hashfed: state database failed while applying command %d: %v", index, err))
			}
			return s.rejected(index, err)
		}
		payload := op.Contribution.Payload
		return s.appendEntry(index, &hashfedv1.LedgerEntry{
			TimeUnixNano: c.TimeUnixNano,
			Kind:         &hashfedv1.LedgerEntry_Statement{Statement: &hashfedv1.StatementEntry{Envelope: op.Contribution.Envelope}},
		}, func(idx int64) func() {
			k := seqKey{st.Org, st.Set}
			s.db.set(append(append(append([]byte{kSequence}, st.Org...), 0), st.Set...), be64(st.Sequence+1))
			s.db.set(contribKey(st.Org, st.Set, st.Sequence), be64(uint64(idx)))
			if p != nil {
				s.db.set(indexKey(kPayload, idx), payload)
				if err := s.writeChangeLocked(st, p, idx); err != nil {
					panic(fmt.Sprintf("hashfed: state database failed while applying command %d: %v", index, err))
				}
			}
			return func() { s.next[k] = st.Sequence + 1 }
		})
	default:
		return s.rejected(index, reject(CodeInvalid, "command has no operation"))
	}
}

// rejected records that the command at index was applied (as a no-op) and
// returns the encoded rejection.
func (s *State) rejected(index uint64, err error) []byte {
	s.commit(index, nil)
	return rejectResult(err)
}

// appendEntry appends e as the next leaf. effects, if not nil, adds the
// entry's other writes to the batch and returns what to change in memory
// once they are committed.
func (s *State) appendEntry(index uint64, e *hashfedv1.LedgerEntry, effects func(idx int64) func()) []byte {
	leaf, err := marshalEntry(e)
	if err == nil && len(leaf) > ledger.MaxLeafSize {
		err = fmt.Errorf("entry of %d bytes is larger than the %d a ledger leaf may hold", len(leaf), ledger.MaxLeafSize)
	}
	if err != nil {
		return s.rejected(index, reject(CodeInvalid, "%v", err))
	}
	idx := s.tree.Size()
	s.commit(index, func() func() {
		var publish func()
		if effects != nil {
			publish = effects(idx)
		}
		if _, err := s.tree.Append(leaf); err != nil {
			panic(fmt.Sprintf("hashfed: appending entry %d (command %d): %v", idx, index, err))
		}
		return publish
	})
	return EncodeResult(&Result{Index: idx, TreeSize: idx + 1})
}

// commit writes a command's effects and its index in one batch, then
// publishes the in-memory changes and wakes waiters. write (if not nil) adds
// the command's writes to the batch and returns what to change in memory
// (or nil). All of it runs under the write lock, so readers never see a
// command half applied; the expensive checks ran before, without it.
func (s *State) commit(index uint64, write func() func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db.begin()
	var publish func()
	if write != nil {
		publish = write()
	}
	s.db.set(metaKey(metaApplied), be64(index))
	if err := s.db.commit(); err != nil {
		panic(fmt.Sprintf("hashfed: committing command %d to the state database: %v", index, err))
	}
	s.applied = index
	if publish != nil {
		publish()
	}
	if write != nil {
		s.notifyLocked()
	}
}

func marshalEntry(e *hashfedv1.LedgerEntry) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(e)
}

func (s *State) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *State) checkGenesisLocked(doc []byte) error {
	if s.tree.Size() != 0 {
		return reject(CodeAlreadyExists, "the genesis entry is already recorded")
	}
	if Digest(doc) != Digest(s.doc) {
		return reject(CodeInvalid, "genesis document differs from the one this node started from")
	}
	return nil
}

// Check validates a contribution against the current state without applying
// it. The leader runs it before proposing, so bad input is refused before it
// reaches the Raft log; Apply runs the same rules again.
func (s *State) Check(c *hashfedv1.Contribution) (*Statement, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, _, err := s.checkContributionLocked(c)
	return st, err
}

// checkContributionLocked verifies a contribution against the current state
// and returns its statement and payload.
func (s *State) checkContributionLocked(c *hashfedv1.Contribution) (*Statement, *hashfedv1.Payload, error) {
	st, err := s.checkStatementLocked(c)
	if err != nil {
		return nil, nil, err
	}
	if s.mirror && len(c.Payload) == 0 {
		// A mirror receives values only of the sets it reads; it keeps the
		// other statements (verified above) and no state of their sets.
		return st, nil, nil
	}
	p, err := CheckPayload(st, c.Payload)
	if err != nil {
		return nil, nil, reject(CodeInvalid, "%v", err)
	}
	set := s.reg.Sets[st.Set]
	for i, sig := range p.Signals {
		t, _ := SignalTypeFromProto(sig.Type)
		if !slices.Contains(set.Types, t) {
			return nil, nil, reject(CodeInvalid, "signal %d: set %q does not accept %s signals (it accepts %v)", i, st.Set, t, set.Types)
		}
	}
	if err := s.checkChangeStateLocked(st, p); err != nil {
		return nil, nil, err
	}
	return st, p, nil
}

// checkStatementLocked verifies the statement of a contribution: signer,
// signature, federation, op, set, rights and sequence.
func (s *State) checkStatementLocked(c *hashfedv1.Contribution) (*Statement, error) {
	if s.tree.Size() == 0 {
		return nil, reject(CodeUnavailable, "the federation has not recorded its genesis entry yet; retry shortly")
	}
	if c == nil || len(c.Envelope) == 0 {
		return nil, reject(CodeInvalid, "contribution has no statement envelope")
	}
	if len(c.Envelope) > MaxEnvelopeSize {
		return nil, reject(CodeInvalid, "statement envelope is %d bytes, at most %d allowed", len(c.Envelope), MaxEnvelopeSize)
	}
	if len(c.Payload) > MaxPayloadSize {
		return nil, reject(CodeInvalid, "payload is %d bytes, at most %d allowed: split the signals into several contributions", len(c.Payload), MaxPayloadSize)
	}
	claimed, err := PeekStatement(c.Envelope)
	if err != nil {
		return nil, reject(CodeInvalid, "%v", err)
	}
	org := s.reg.Orgs[claimed.Org]
	switch {
	case org == nil:
		return nil, reject(CodePermissionDenied, "org %q is not a member of federation %q", claimed.Org, s.genesis.Federation)
	case org.Removed != 0:
		return nil, reject(CodePermissionDenied, "org %q was removed from federation %q at entry %d", claimed.Org, s.genesis.Federation, org.Removed)
	}
	key, err := s.reg.KeyAt(claimed.Org, s.tree.Size())
	if err != nil {
		return nil, reject(CodePermissionDenied, "%v", err)
	}
	st, err := OpenStatement(c.Envelope, key)
	if err != nil {
		return nil, reject(CodeInvalid, "statement signature does not verify under org %q's registered signing key", claimed.Org)
	}
	if st.Federation != s.genesis.Federation {
		return nil, reject(CodeInvalid, "statement is for federation %q, this is %q", st.Federation, s.genesis.Federation)
	}
	if !slices.Contains(Ops, st.Op) {
		return nil, reject(CodeInvalid, "statement op %q is unknown (want one of %s)", st.Op, strings.Join(Ops, ", "))
	}
	set, ok := s.reg.Sets[st.Set]
	if !ok {
		return nil, reject(CodeNotFound, "set %q does not exist in federation %q", st.Set, s.genesis.Federation)
	}
	if st.Op == OpFeedback {
		// Feedback comes from the set's readers, about signals they received.
		if set.Owner() == st.Org {
			return nil, reject(CodePermissionDenied, "org %q owns set %q: an owner retracts or relabels its signals instead of giving feedback on them", st.Org, st.Set)
		}
		if !s.reg.CanRead(st.Org, st.Set) {
			return nil, reject(CodePermissionDenied, "org %q does not read set %q, so it may not give feedback on its signals", st.Org, st.Set)
		}
	} else {
		if !org.HasRole(RolePublisher) {
			return nil, reject(CodePermissionDenied, "org %q does not hold the publisher role", claimed.Org)
		}
		if set.Owner() != st.Org {
			return nil, reject(CodePermissionDenied, "set %q belongs to org %q; org %q may not publish into it", st.Set, set.Owner(), st.Org)
		}
	}
	next := s.nextLocked(st.Org, st.Set)
	if st.Sequence < next {
		return nil, s.replayLocked(st, next)
	}
	if st.Sequence > next {
		return nil, reject(CodeFailedPrecondition, "sequence %d of org %q for set %q skips ahead: the next must be %d", st.Sequence, st.Org, st.Set, next)
	}
	if st.Count < 1 {
		return nil, reject(CodeInvalid, "contribution carries no signals")
	}
	if st.Count > MaxSignals {
		return nil, reject(CodeInvalid, "contribution carries %d signals, at most %d allowed: split them into several contributions", st.Count, MaxSignals)
	}
	return st, nil
}

// replayLocked explains why st, whose sequence number is already used, is
// refused. A resend of the committed contribution (the same statement, signed
// again or not; only the informative issued_at may differ) is told where the
// contribution is, so a publisher that lost the first answer knows it
// landed. Contributions applied before hashfed recorded their positions get
// the plain replay message.
func (s *State) replayLocked(st *Statement, next uint64) *RejectError {
	b, ok, err := s.db.get(contribKey(st.Org, st.Set, st.Sequence))
	if err != nil || !ok || len(b) != 8 {
		return reject(CodeAlreadyExists, "sequence %d of org %q for set %q is already committed (the next is %d): this contribution is a replay", st.Sequence, st.Org, st.Set, next)
	}
	idx := int64(binary.BigEndian.Uint64(b))
	leaf, ok, err := s.db.get(indexKey(kLeaf, idx))
	var prev *Statement
	if err == nil && ok {
		_, prev, err = DecodeEntry(leaf)
	}
	if err != nil || prev == nil {
		return reject(CodeAlreadyExists, "sequence %d of org %q for set %q is already committed at entry %d (the next is %d): this contribution is a replay", st.Sequence, st.Org, st.Set, idx, next)
	}
	if !SameContribution(prev, st) {
		return reject(CodeAlreadyExists, "sequence %d of org %q for set %q is already used by a different contribution, at entry %d (the next is %d): sign this change again with sequence %d", st.Sequence, st.Org, st.Set, idx, next, next)
	}
	re := reject(CodeAlreadyExists, "contribution %d of org %q to set %q is already committed, at entry %d: this is a resend or replay of it, and nothing changed", st.Sequence, st.Org, st.Set, idx)
	re.Committed = idx
	return re
}

// SameContribution reports whether two statements make the same
// contribution: they agree on everything but the publisher's informative
// issued_at timestamp.
func SameContribution(a, b *Statement) bool {
	return a.Federation == b.Federation && a.Org == b.Org && a.Set == b.Set &&
		a.Sequence == b.Sequence && a.Op == b.Op && a.Verdict == b.Verdict &&
		a.Count == b.Count && slices.Equal(a.Types, b.Types) &&
		slices.Equal(a.Labels, b.Labels) && a.PayloadSHA256 == b.PayloadSHA256
}

func (s *State) nextLocked(org, set string) uint64 {
	if n, ok := s.next[seqKey{org, set}]; ok {
		return n
	}
	return 1
}

// Member returns a copy of a member org (nil if unknown or removed).
func (s *State) Member(name string) *Org {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if o := s.reg.Org(name); o != nil {
		c := o.Org
		return &c
	}
	return nil
}

// Registry returns a copy of the current registry.
func (s *State) Registry() *Registry {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.reg.Clone()
}

// TrustVersion changes whenever membership or a CA certificate may have
// changed; nodes rebuild their TLS trust when it does.
func (s *State) TrustVersion() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.trust
}

// CheckAct runs the checks Apply makes on a governance command.
func (s *State) CheckAct(env []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, _, err := s.reg.CheckAct(s.genesis.Federation, env, s.tree.Size())
	return err
}

// NextSequence returns the sequence number org's next contribution to set must carry.
func (s *State) NextSequence(org, set string) uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nextLocked(org, set)
}

// Size returns the number of ledger entries.
func (s *State) Size() int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Size()
}

// Changed returns a channel closed the next time the ledger grows.
func (s *State) Changed() <-chan struct{} {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.changed
}

// Entries returns ledger leaves [start, end).
func (s *State) Entries(start, end int64) ([][]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.Leaves(start, end)
}

// Payload returns the payload of the statement at index, or nil.
func (s *State) Payload(index int64) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if index < 0 || index >= s.tree.Size() {
		return nil
	}
	// A read error returns nil too: a subscriber then reports the payload
	// as withheld rather than receiving something unverified.
	b, _, _ := s.db.get(indexKey(kPayload, index))
	return b
}

// Checkpoint returns the (unsigned) checkpoint of the current ledger.
func (s *State) Checkpoint() (ledger.Checkpoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	root, err := s.tree.Root()
	if err != nil {
		return ledger.Checkpoint{}, err
	}
	return ledger.Checkpoint{Origin: s.genesis.Federation, Size: s.tree.Size(), Hash: root}, nil
}

// InclusionProof proves entry index is in the tree of the given size.
func (s *State) InclusionProof(index, size int64) (tlog.RecordProof, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.InclusionProof(index, size)
}

// ConsistencyProof proves the tree of oldSize is a prefix of the tree of newSize.
func (s *State) ConsistencyProof(oldSize, newSize int64) (tlog.TreeProof, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.tree.ConsistencyProof(oldSize, newSize)
}

// CanRead reports whether org may receive the values of set: its owner and its readers may.
func (s *State) CanRead(org, set string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.reg.CanRead(org, set)
}

// HasSet reports whether set exists.
func (s *State) HasSet(set string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.reg.Sets[set]
	return ok
}

// DecodeEntry decodes a ledger leaf. For a statement entry it also returns the
// statement, read without verifying its signature (committed entries were
// verified when applied; auditors verify them again with [OpenStatement]).
func DecodeEntry(leaf []byte) (*hashfedv1.LedgerEntry, *Statement, error) {
	var e hashfedv1.LedgerEntry
	if err := proto.Unmarshal(leaf, &e); err != nil {
		return nil, nil, fmt.Errorf("ledger entry does not decode: %w", err)
	}
	if se := e.GetStatement(); se != nil {
		st, err := PeekStatement(se.Envelope)
		if err != nil {
			return nil, nil, err
		}
		return &e, st, nil
	}
	if e.GetGenesis() == nil && e.GetGovernance() == nil {
		return nil, nil, errors.New("ledger entry has no kind")
	}
	return &e, nil, nil
}

// snapshotMagic starts every snapshot; a future incompatible snapshot format
// would use a different line. Version 3: every key of the state database.
const snapshotMagic = "hashfed-state-v3\n"

// Snapshot makes the state durable and captures it; the returned function
// writes that capture (every key of the database) while later commands are
// applied.
func (s *State) Snapshot() (func(io.Writer) error, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errClosed
	}
	// Raft deletes the log entries a snapshot covers, so everything applied
	// must be on disk first: commits do not wait for the disk.
	if err := s.db.sync(); err != nil {
		return nil, fmt.Errorf("syncing state database: %w", err)
	}
	snap := s.db.p.NewSnapshot()
	s.snapMu.Lock()
	if s.snaps == nil {
		s.snaps = map[*pebble.Snapshot]struct{}{}
	}
	s.snaps[snap] = struct{}{}
	s.snapMu.Unlock()
	return func(w io.Writer) error {
		defer s.releaseSnapshot(snap)
		bw := bufio.NewWriterSize(w, 1<<20)
		bw.WriteString(snapshotMagic)
		if err := dump(snap, bw); err != nil {
			return err
		}
		return bw.Flush()
	}, nil
}

// Restore replaces the state with a snapshot written by [State.Snapshot],
// which holds commands up to Raft index index. It loads the snapshot into a
// new database beside the current one and swaps them; a crash half-way
// leaves the old database, which the node then brings up to date again.
func (s *State) Restore(index uint64, r io.Reader) error {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return errors.New("restoring snapshot: not a hashfed state snapshot")
	}
	tmp := s.dir + restoreSuffix
	if err := s.fs.RemoveAll(tmp); err != nil {
		return err
	}
	d, err := openDB(s.fs, tmp, s.cache)
	if err != nil {
		return err
	}
	read := func(b []byte) error { _, err := io.ReadFull(br, b); return err }
	err = load(d.p, br, read)
	if err == nil {
		err = d.p.Set(metaKey(metaApplied), be64(index), pebble.Sync)
	}
	if err == nil {
		// Check it before it replaces anything.
		d.size, err = d.countLeaves()
	}
	if err == nil {
		_, err = s.inspect(d)
	}
	if err != nil {
		d.close()
		s.fs.RemoveAll(tmp)
		return fmt.Errorf("restoring snapshot: %w", err)
	}
	if err := d.close(); err != nil {
		return err
	}

	s.mu.Lock()
	if err := s.db.close(); err != nil {
		s.mu.Unlock()
		return err
	}
	err = s.fs.RemoveAll(s.dir)
	if err == nil {
		err = s.fs.Rename(tmp, s.dir)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("restoring snapshot: replacing %s: %w", s.dir, err)
	}
	return s.open()
}
