package chaos

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// An Input is the input of one operation of a [Recorder]'s history: a
// publish of C, or (Publish false) a read of the whole ledger.
type Input struct {
	Publish bool
	C       Contribution
}

// An Output is the result of one operation: a publish's outcome and, when
// OK, the ledger index acknowledged; a read's entries 1..n.
type Output struct {
	Outcome Outcome
	Index   uint64
	Entries []Contribution
}

// A ledger is one state of the model: the contributions at ledger indexes
// 1..n (entry 0, the genesis, is implied). It is never modified once made.
type ledger struct {
	entries []Contribution
	hash    uint64 // of entries, so states compare cheaply
}

func (l *ledger) has(c Contribution) bool { return slices.Contains(l.entries, c) }

// with returns a new ledger with c appended; l is unchanged.
func (l *ledger) with(c Contribution) *ledger {
	entries := append(l.entries[:len(l.entries):len(l.entries)], c)
	return &ledger{entries: entries, hash: l.hash*1099511628211 + contributionHash(c)}
}

func contributionHash(c Contribution) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", c.Set, c.Seq)
	return h.Sum64()
}

// Model returns the sequential specification of the ledger that the
// federation must be linearizable to: an ordered list of contributions,
// empty at first (the genesis entry is implied).
//
//   - A publish that returned OK at index i appends its contribution, which
//     must not be present yet, as entry i, so i must be the ledger's size.
//   - A publish that returned AlreadyPresent changes nothing and requires the
//     contribution present.
//   - A Failed publish changes nothing.
//   - An Unknown publish either appends its contribution (only if it is not
//     present) or changes nothing.
//   - A read returns exactly the entries of the state.
//
// The model knows only contributions: a history in which the ledger gains
// another kind of entry (a governance act) is not linearizable to it.
func Model() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Init: func() []any { return []any{&ledger{}} },
		Step: func(state, input, output any) []any {
			l := state.(*ledger)
			in, out := input.(Input), output.(Output)
			if !in.Publish {
				if slices.Equal(l.entries, out.Entries) {
					return []any{l}
				}
				return nil
			}
			switch out.Outcome {
			case OK:
				if l.has(in.C) || out.Index != uint64(len(l.entries))+1 {
					return nil
				}
				return []any{l.with(in.C)}
			case AlreadyPresent:
				if !l.has(in.C) {
					return nil
				}
				return []any{l}
			case Failed:
				return []any{l}
			default: // Unknown
				if l.has(in.C) {
					return []any{l}
				}
				return []any{l, l.with(in.C)}
			}
		},
		Equal: func(a, b any) bool {
			la, lb := a.(*ledger), b.(*ledger)
			return la.hash == lb.hash && slices.Equal(la.entries, lb.entries)
		},
		Hash:              func(s any) uint64 { return s.(*ledger).hash },
		DescribeOperation: describeOperation,
		DescribeState:     func(s any) string { return describeEntries(s.(*ledger).entries) },
	}
	return nm.ToModel()
}

func describeOperation(input, output any) string {
	in, out := input.(Input), output.(Output)
	if !in.Publish {
		return "read -> " + describeEntries(out.Entries)
	}
	if out.Outcome == OK {
		return fmt.Sprintf("publish %s -> ok at %d", in.C, out.Index)
	}
	return fmt.Sprintf("publish %s -> %s", in.C, out.Outcome)
}

// describeEntries shows a ledger's size and its last few entries, which is
// where histories usually disagree; history.json has every entry.
func describeEntries(entries []Contribution) string {
	const tail = 6
	var b strings.Builder
	fmt.Fprintf(&b, "%d entries [", len(entries))
	from := max(0, len(entries)-tail)
	if from > 0 {
		b.WriteString("... ")
	}
	for i, c := range entries[from:] {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%s", from+i+1, c)
	}
	b.WriteByte(']')
	return b.String()
}
