package federation

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A State is the federation's replicated state machine: the ledger and what
// it implies (orgs, keys, sets, sequence numbers, payloads). Raft drives it
// through [State.Apply], [State.Snapshot] and [State.Restore]; readers use the
// other methods concurrently.
//
// Apply is deterministic: it reads no clock, draws no randomness and never
// iterates a map, so every node applying the same commands holds the same
// ledger byte for byte.
type State struct {
	doc     []byte   // the genesis document, byte for byte
	genesis *Genesis // parsed doc

	mu       sync.RWMutex
	tree     *ledger.Tree
	reg      *Registry         // orgs, keys and sets as of the ledger's end
	trust    uint64            // counts changes to membership and CAs
	next     map[seqKey]uint64 // next sequence number expected per (org, set)
	payloads map[int64][]byte  // ledger index -> payload of that statement
	changed  chan struct{}     // closed and replaced whenever the ledger or its checkpoint grows

	checkpoint []byte // latest published cosigned checkpoint (signed note)
	cpSize     int64  // its size
}

type seqKey struct{ org, set string }

// NewState returns the state of a federation founded by the genesis document
// doc, before any command is applied (an empty ledger).
func NewState(doc []byte) (*State, error) {
	g, err := ParseGenesis(doc)
	if err != nil {
		return nil, err
	}
	s := &State{doc: slices.Clone(doc), genesis: g}
	if err := s.reset(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *State) reset() error {
	tree, err := ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		return err
	}
	s.tree = tree
	s.reg = NewRegistry(s.genesis)
	s.trust++
	s.next = map[seqKey]uint64{}
	s.payloads = map[int64][]byte{}
	s.checkpoint, s.cpSize = nil, 0
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return nil
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
}

// Err returns the rejection as a *RejectError, or nil.
func (r *Result) Err() error {
	if r.Code == 0 {
		return nil
	}
	return &RejectError{Code: r.Code, Msg: r.Msg}
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
	return EncodeResult(&Result{Code: re.Code, Msg: re.Msg})
}

// Apply applies one serialized [hashfedv1.Command] and returns an encoded
// [Result]. A rejected command changes nothing.
func (s *State) Apply(cmd []byte) []byte {
	var c hashfedv1.Command
	if err := proto.Unmarshal(cmd, &c); err != nil {
		return rejectResult(reject(CodeInvalid, "command does not decode: %v", err))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		leaf    []byte
		payload []byte
		st      *Statement
		err     error
	)
	switch op := c.Op.(type) {
	case *hashfedv1.Command_Genesis:
		if err := s.checkGenesisLocked(op.Genesis); err != nil {
			return rejectResult(err)
		}
		leaf, err = marshalEntry(&hashfedv1.LedgerEntry{
			TimeUnixNano: c.TimeUnixNano,
			Kind:         &hashfedv1.LedgerEntry_Genesis{Genesis: &hashfedv1.GenesisEntry{Document: op.Genesis}},
		})
	case *hashfedv1.Command_Checkpoint:
		cp, err := s.checkCheckpointLocked(op.Checkpoint)
		if err != nil {
			return rejectResult(err)
		}
		s.checkpoint, s.cpSize = slices.Clone(op.Checkpoint), cp.Size
		s.notifyLocked()
		return EncodeResult(&Result{TreeSize: cp.Size})
	case *hashfedv1.Command_Governance:
		act, _, err := s.reg.CheckAct(s.genesis.Federation, op.Governance, s.tree.Size())
		if err != nil {
			return rejectResult(err)
		}
		leaf, err := marshalEntry(&hashfedv1.LedgerEntry{
			TimeUnixNano: c.TimeUnixNano,
			Kind:         &hashfedv1.LedgerEntry_Governance{Governance: &hashfedv1.GovernanceEntry{Envelope: op.Governance}},
		})
		if err != nil {
			return rejectResult(err)
		}
		idx, err := s.appendActLocked(leaf, act)
		if err != nil {
			return rejectResult(reject(CodeInvalid, "appending to ledger: %v", err))
		}
		return EncodeResult(&Result{Index: idx, TreeSize: idx + 1})
	case *hashfedv1.Command_Contribution:
		st, err = s.checkContributionLocked(op.Contribution)
		if err != nil {
			return rejectResult(err)
		}
		payload = op.Contribution.Payload
		leaf, err = marshalEntry(&hashfedv1.LedgerEntry{
			TimeUnixNano: c.TimeUnixNano,
			Kind:         &hashfedv1.LedgerEntry_Statement{Statement: &hashfedv1.StatementEntry{Envelope: op.Contribution.Envelope}},
		})
	default:
		return rejectResult(reject(CodeInvalid, "command has no operation"))
	}
	if err != nil {
		return rejectResult(err)
	}
	idx, err := s.appendLocked(leaf, payload, st)
	if err != nil {
		// The ledger refused the leaf (size limits are checked before, so this
		// is an internal failure); nothing was recorded.
		return rejectResult(reject(CodeInvalid, "appending to ledger: %v", err))
	}
	return EncodeResult(&Result{Index: idx, TreeSize: idx + 1})
}

func marshalEntry(e *hashfedv1.LedgerEntry) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(e)
}

// appendLocked appends a leaf and records what it implies. st is nil for
// non-statement entries.
func (s *State) appendLocked(leaf, payload []byte, st *Statement) (int64, error) {
	idx, err := s.tree.Append(leaf)
	if err != nil {
		return 0, err
	}
	if st != nil {
		s.payloads[idx] = payload
		s.next[seqKey{st.Org, st.Set}] = st.Sequence + 1
	}
	s.notifyLocked()
	return idx, nil
}

// appendActLocked appends a governance leaf and applies its act.
func (s *State) appendActLocked(leaf []byte, act *Act) (int64, error) {
	idx := s.tree.Size()
	next := s.reg.Clone()
	if err := next.ApplyAct(act, idx); err != nil {
		return 0, err
	}
	if _, err := s.tree.Append(leaf); err != nil {
		return 0, err
	}
	s.reg = next
	s.trust++
	s.notifyLocked()
	return idx, nil
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
	return s.checkContributionLocked(c)
}

func (s *State) checkContributionLocked(c *hashfedv1.Contribution) (*Statement, error) {
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
	case !org.HasRole(RolePublisher):
		return nil, reject(CodePermissionDenied, "org %q does not hold the publisher role", claimed.Org)
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
	if st.Op != OpAdd {
		return nil, reject(CodeInvalid, "statement op %q is not supported (want %q)", st.Op, OpAdd)
	}
	set, ok := s.reg.Sets[st.Set]
	if !ok {
		return nil, reject(CodeNotFound, "set %q does not exist in federation %q", st.Set, s.genesis.Federation)
	}
	if set.Owner() != st.Org {
		return nil, reject(CodePermissionDenied, "set %q belongs to org %q; org %q may not publish into it", st.Set, set.Owner(), st.Org)
	}
	next := s.nextLocked(st.Org, st.Set)
	if st.Sequence < next {
		return nil, reject(CodeAlreadyExists, "sequence %d of org %q for set %q is already committed (the next is %d): this contribution is a replay", st.Sequence, st.Org, st.Set, next)
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
	p, err := CheckPayload(st, c.Payload)
	if err != nil {
		return nil, reject(CodeInvalid, "%v", err)
	}
	for i, sig := range p.Signals {
		t, _ := SignalTypeFromProto(sig.Type)
		if !slices.Contains(set.Types, t) {
			return nil, reject(CodeInvalid, "signal %d: set %q does not accept %s signals (it accepts %v)", i, st.Set, t, set.Types)
		}
	}
	return st, nil
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
	return s.payloads[index]
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
// would use a different line. Version 2: entries (leaf, payload), then the
// latest cosigned checkpoint (empty chunk if none).
const snapshotMagic = "hashfed-state-v2\n"

// Snapshot captures the ledger as of now and returns a function that writes
// it. The function may run while later commands are applied: the ledger is
// append-only, so the first n entries never change.
func (s *State) Snapshot() (func(io.Writer) error, error) {
	n := s.Size()
	cp, _ := s.LatestCheckpoint()
	return func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		bw.WriteString(snapshotMagic)
		writeBytes(bw, binary.AppendUvarint(nil, uint64(n)))
		const batch = 1024
		for start := int64(0); start < n; start += batch {
			leaves, err := s.Entries(start, min(start+batch, n))
			if err != nil {
				return err
			}
			for i, leaf := range leaves {
				writeChunk(bw, leaf)
				writeChunk(bw, s.Payload(start+int64(i)))
			}
		}
		writeChunk(bw, cp)
		return bw.Flush()
	}, nil
}

func writeBytes(w *bufio.Writer, b []byte) { w.Write(b) }

func writeChunk(w *bufio.Writer, b []byte) {
	w.Write(binary.AppendUvarint(nil, uint64(len(b))))
	w.Write(b)
}

// Restore replaces the state with a snapshot written by [State.Snapshot].
// Entries in a snapshot were verified when first applied; Restore rebuilds
// the derived state from them without verifying signatures again.
func (s *State) Restore(r io.Reader) error {
	br := bufio.NewReader(r)
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != snapshotMagic {
		return errors.New("restoring snapshot: not a hashfed state snapshot")
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return fmt.Errorf("restoring snapshot: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reset(); err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		leaf, err := readChunk(br)
		if err != nil {
			return fmt.Errorf("restoring snapshot entry %d: %w", i, err)
		}
		payload, err := readChunk(br)
		if err != nil {
			return fmt.Errorf("restoring snapshot entry %d: %w", i, err)
		}
		e, st, err := DecodeEntry(leaf)
		if err != nil {
			return fmt.Errorf("restoring snapshot entry %d: %w", i, err)
		}
		if g := e.GetGovernance(); g != nil {
			act, err := PeekAct(g.Envelope)
			if err != nil {
				return fmt.Errorf("restoring snapshot entry %d: %w", i, err)
			}
			if _, err := s.appendActLocked(leaf, act); err != nil {
				return fmt.Errorf("restoring snapshot entry %d: %w", i, err)
			}
			continue
		}
		if st == nil {
			payload = nil
		}
		if _, err := s.appendLocked(leaf, payload, st); err != nil {
			return fmt.Errorf("restoring snapshot entry %d: %w", i, err)
		}
	}
	cp, err := readChunk(br)
	if err != nil {
		return fmt.Errorf("restoring snapshot checkpoint: %w", err)
	}
	if cp != nil {
		c, err := s.checkCheckpointLocked(cp)
		if err != nil {
			return fmt.Errorf("restoring snapshot checkpoint: %w", err)
		}
		s.checkpoint, s.cpSize = cp, c.Size
	}
	return nil
}

func readChunk(r *bufio.Reader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, err
	}
	if n > MaxPayloadSize+MaxEnvelopeSize {
		return nil, fmt.Errorf("chunk of %d bytes is larger than any entry or payload", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, nil
	}
	return b, nil
}
