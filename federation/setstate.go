package federation

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"

	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

var bloomPolicy = bloom.FilterPolicy(10)

// A set's current state is indexed by signal: the signals added and not
// retracted, their labels, and the feedback orgs gave on them. Keys hold a
// signal's binary form (its type's wire number, then the decoded hash), so
// 10 million PDQ signals take about 40 bytes of key each.

// signalKey returns the binary key of a canonical signal.
func signalKey(t hashfedv1.SignalType, value string) ([]byte, error) {
	k := []byte{byte(t)}
	var (
		raw []byte
		err error
	)
	if t == hashfedv1.SignalType_SIGNAL_TYPE_PHOTODNA {
		raw, err = base64.StdEncoding.DecodeString(value)
	} else {
		raw, err = hex.DecodeString(value)
	}
	if err != nil {
		return nil, fmt.Errorf("signal value %q is not canonical: %w", short(value), err)
	}
	return append(k, raw...), nil
}

// signalFromKey is the inverse of signalKey.
func signalFromKey(k []byte) (SignalType, string, error) {
	if len(k) < 2 {
		return "", "", errors.New("short signal key")
	}
	t, err := SignalTypeFromProto(hashfedv1.SignalType(k[0]))
	if err != nil {
		return "", "", err
	}
	if t == PhotoDNA {
		return t, base64.StdEncoding.EncodeToString(k[1:]), nil
	}
	return t, hex.EncodeToString(k[1:]), nil
}

// A SignalState is a signal as it stands in a set now.
type SignalState struct {
	Type   SignalType
	Value  string
	Labels []string
	// AddedAt is the ledger index of the contribution that added it;
	// ChangedAt of the last one that added or relabelled it.
	AddedAt, ChangedAt int64
	// Tally counts the orgs whose latest feedback on the signal gave each verdict.
	Tally Tally
}

// A Tally counts feedback verdicts on one signal, one per org (its latest).
type Tally struct {
	TruePositive  int64 `json:"true_positive"`
	FalsePositive int64 `json:"false_positive"`
	Disputed      int64 `json:"disputed"`
}

// Disputes counts the orgs that reported the signal as a false positive or
// disputed it.
func (t Tally) Disputes() int64 { return t.FalsePositive + t.Disputed }

func (t *Tally) add(verdict string, d int64) {
	switch verdict {
	case VerdictTruePositive:
		t.TruePositive += d
	case VerdictFalsePositive:
		t.FalsePositive += d
	case VerdictDisputed:
		t.Disputed += d
	}
}

func encodeTally(t Tally) []byte {
	b := binary.AppendUvarint(nil, uint64(t.TruePositive))
	b = binary.AppendUvarint(b, uint64(t.FalsePositive))
	return binary.AppendUvarint(b, uint64(t.Disputed))
}

func decodeTally(b []byte) (Tally, error) {
	var t Tally
	for _, p := range []*int64{&t.TruePositive, &t.FalsePositive, &t.Disputed} {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return t, errors.New("corrupt tally record")
		}
		*p, b = int64(v), b[n:]
	}
	return t, nil
}

// A signal record: uvarint(added at), uvarint(changed at), labels joined by
// newlines (labels never contain one).
func encodeSignal(added, changed int64, labels []string) []byte {
	b := binary.AppendUvarint(nil, uint64(added))
	b = binary.AppendUvarint(b, uint64(changed))
	return append(b, strings.Join(labels, "\n")...)
}

func decodeSignal(b []byte) (added, changed int64, labels []string, err error) {
	a, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, nil, errors.New("corrupt signal record")
	}
	b = b[n:]
	c, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, nil, errors.New("corrupt signal record")
	}
	if len(b[n:]) > 0 {
		labels = strings.Split(string(b[n:]), "\n")
	}
	return int64(a), int64(c), labels, nil
}

// A verdict record: the verdict's position in Verdicts, then uvarint(index).
func encodeVerdict(verdict string, index int64) []byte {
	return binary.AppendUvarint([]byte{byte(slices.Index(Verdicts, verdict))}, uint64(index))
}

func decodeVerdict(b []byte) (string, error) {
	if len(b) < 2 || int(b[0]) >= len(Verdicts) {
		return "", errors.New("corrupt verdict record")
	}
	return Verdicts[b[0]], nil
}

// checkChangeStateLocked checks a verified change against the set's current
// state: added signals must be new, the others must be in the set. It looks
// the signals up in key order through one iterator, which costs far less
// than a point lookup each; a violation is reported for the first signal in
// payload order.
func (s *State) checkChangeStateLocked(st *Statement, p *hashfedv1.Payload) error {
	prefix := setPrefix(kSignal, st.Set)
	type lookup struct {
		key []byte
		i   int
	}
	ls := make([]lookup, len(p.Signals))
	for i, sig := range p.Signals {
		k, err := signalKey(sig.Type, sig.Value)
		if err != nil {
			return reject(CodeInvalid, "signal %d: %v", i, err)
		}
		ls[i] = lookup{append(slices.Clip(prefix), k...), i}
	}
	bad, badAdded := -1, int64(0)
	found := func(l lookup, rec []byte, present bool) {
		if present == (st.Op == OpAdd) && (bad < 0 || l.i < bad) {
			bad = l.i
			if present {
				badAdded, _, _, _ = decodeSignal(rec)
			}
		}
	}
	if len(ls) <= 8 {
		// Point lookups (with bloom filters) beat setting up an iterator.
		for _, l := range ls {
			rec, present, err := s.db.get(l.key)
			if err != nil {
				return reject(CodeInternal, "reading set %q: %v", st.Set, err)
			}
			found(l, rec, present)
		}
	} else {
		slices.SortFunc(ls, func(a, b lookup) int { return bytes.Compare(a.key, b.key) })
		if s.db.closed {
			return reject(CodeInternal, "%v", errClosed)
		}
		it, err := s.db.p.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
		if err != nil {
			return reject(CodeInternal, "reading set %q: %v", st.Set, err)
		}
		for _, l := range ls {
			present := it.SeekGE(l.key) && bytes.Equal(it.Key(), l.key)
			var rec []byte
			if present {
				rec = it.Value()
			}
			found(l, rec, present)
		}
		if err := it.Close(); err != nil {
			return reject(CodeInternal, "reading set %q: %v", st.Set, err)
		}
	}
	if bad < 0 {
		return nil
	}
	sig := p.Signals[bad]
	t, _ := SignalTypeFromProto(sig.Type)
	if st.Op == OpAdd {
		return reject(CodeAlreadyExists, "signal %d (%s %s) is already in set %q, added at entry %d: relabel it instead of adding it again", bad, t, short(sig.Value), st.Set, badAdded)
	}
	return reject(CodeNotFound, "signal %d (%s %s) is not in set %q: a %s needs signals the set holds", bad, t, short(sig.Value), st.Set, st.Op)
}

// writeChangeLocked adds a checked change's effects to the current batch.
func (s *State) writeChangeLocked(st *Statement, p *hashfedv1.Payload, index int64) error {
	countKey := append([]byte{kCount}, st.Set...)
	count, err := s.setCountLocked(st.Set)
	if err != nil {
		return err
	}
	prefix := setPrefix(kSignal, st.Set)
	for _, sig := range p.Signals {
		k, err := signalKey(sig.Type, sig.Value)
		if err != nil {
			return err
		}
		key := append(slices.Clip(prefix), k...)
		switch st.Op {
		case OpAdd:
			s.db.set(key, encodeSignal(index, index, sig.Labels))
			count++
		case OpRelabel:
			rec, _, err := s.db.get(key)
			if err != nil {
				return err
			}
			added, _, _, err := decodeSignal(rec)
			if err != nil {
				return err
			}
			s.db.set(key, encodeSignal(added, index, sig.Labels))
		case OpRetract:
			s.db.delete(key)
			count--
			// Feedback on a signal ends with it; the ledger keeps the history.
			tallyKey := append(setPrefix(kTally, st.Set), k...)
			s.db.delete(tallyKey)
			vp := append(setPrefix(kVerdict, st.Set), k...)
			if err := s.db.batch.DeleteRange(vp, prefixEnd(vp), nil); err != nil {
				return err
			}
		case OpFeedback:
			if err := s.writeFeedbackLocked(st, k, index); err != nil {
				return err
			}
		}
	}
	s.db.set(countKey, be64(uint64(count)))
	return nil
}

func (s *State) writeFeedbackLocked(st *Statement, k []byte, index int64) error {
	vkey := append(append(setPrefix(kVerdict, st.Set), k...), st.Org...)
	tkey := append(setPrefix(kTally, st.Set), k...)
	var tally Tally
	if b, ok, err := s.db.get(tkey); err != nil {
		return err
	} else if ok {
		if tally, err = decodeTally(b); err != nil {
			return err
		}
	}
	if b, ok, err := s.db.get(vkey); err != nil {
		return err
	} else if ok {
		old, err := decodeVerdict(b)
		if err != nil {
			return err
		}
		tally.add(old, -1)
	}
	tally.add(st.Verdict, 1)
	s.db.set(vkey, encodeVerdict(st.Verdict, index))
	s.db.set(tkey, encodeTally(tally))
	return nil
}

func (s *State) setCountLocked(set string) (int64, error) {
	b, ok, err := s.db.get(append([]byte{kCount}, set...))
	if err != nil || !ok {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("corrupt count record of set %q", set)
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// SetCount returns how many signals set holds now (added minus retracted).
func (s *State) SetCount(set string) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.reg.Sets[set]; !ok {
		return 0, reject(CodeNotFound, "set %q does not exist in federation %q", set, s.genesis.Federation)
	}
	return s.setCountLocked(set)
}

// LookupSignal returns a signal's state in set, or nil if the set does not hold it.
func (s *State) LookupSignal(set string, t SignalType, value string) (*SignalState, error) {
	v, err := CanonicalValue(t, value)
	if err != nil {
		return nil, reject(CodeInvalid, "%v", err)
	}
	k, err := signalKey(t.Proto(), v)
	if err != nil {
		return nil, reject(CodeInvalid, "%v", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.reg.Sets[set]; !ok {
		return nil, reject(CodeNotFound, "set %q does not exist in federation %q", set, s.genesis.Federation)
	}
	rec, ok, err := s.db.get(append(setPrefix(kSignal, set), k...))
	if err != nil || !ok {
		return nil, err
	}
	return s.signalStateLocked(set, k, rec)
}

func (s *State) signalStateLocked(set string, k, rec []byte) (*SignalState, error) {
	t, v, err := signalFromKey(k)
	if err != nil {
		return nil, err
	}
	added, changed, labels, err := decodeSignal(rec)
	if err != nil {
		return nil, err
	}
	ss := &SignalState{Type: t, Value: v, Labels: labels, AddedAt: added, ChangedAt: changed}
	if b, ok, err := s.db.get(append(setPrefix(kTally, set), k...)); err != nil {
		return nil, err
	} else if ok {
		if ss.Tally, err = decodeTally(b); err != nil {
			return nil, err
		}
	}
	return ss, nil
}

// ListSignals calls fn with up to limit signals of set in key order,
// starting after the page token after ("" for the first page), and returns
// the token of the next page ("" at the end). minDisputes > 0 lists only
// signals with at least that many disputes (see [Tally.Disputes]).
//
// It holds a consistent view of the state for one page, so pages of a set
// that changes between calls may miss or repeat signals changed meanwhile;
// a mirror built from the ledger (subscribe) has no such gap.
func (s *State) ListSignals(set, after string, limit int, minDisputes int64, fn func(*SignalState) error) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.reg.Sets[set]; !ok {
		return "", reject(CodeNotFound, "set %q does not exist in federation %q", set, s.genesis.Federation)
	}
	start := []byte{}
	if after != "" {
		b, err := hex.DecodeString(after)
		if err != nil {
			return "", reject(CodeInvalid, "page token %q is not one this node gave out", short(after))
		}
		start = b
	}
	prefix := setPrefix(kSignal, set)
	if minDisputes > 0 {
		prefix = setPrefix(kTally, set)
	}
	lower := append(slices.Clip(prefix), start...)
	if after != "" {
		lower = append(lower, 0) // strictly after the token's key
	}
	if s.db.closed {
		return "", errClosed
	}
	it, err := s.db.p.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return "", err
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()[len(prefix):]
		var ss *SignalState
		if minDisputes > 0 {
			tally, err := decodeTally(it.Value())
			if err != nil {
				return "", err
			}
			if tally.Disputes() < minDisputes {
				continue
			}
			rec, ok, err := s.db.get(append(setPrefix(kSignal, set), k...))
			if err != nil {
				return "", err
			}
			if !ok {
				continue
			}
			if ss, err = s.signalStateLocked(set, k, rec); err != nil {
				return "", err
			}
		} else if ss, err = s.signalStateLocked(set, k, it.Value()); err != nil {
			return "", err
		}
		if err := fn(ss); err != nil {
			return "", err
		}
		if n++; limit > 0 && n >= limit {
			token := hex.EncodeToString(k)
			if !it.Next() {
				return "", it.Error()
			}
			return token, nil
		}
	}
	return "", it.Error()
}
