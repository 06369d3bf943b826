package federation

import (
	"bytes"
	"fmt"

	"google.golang.org/protobuf/proto"

	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// OpenMirror opens (or creates) a subscriber's mirror of the ledger in dir:
// the same state a node keeps, built by [State.ApplyLeaf] from the entries
// a node serves, verified by the same rules. Statements of sets the
// subscriber does not receive values of are kept without payload, and the
// mirror holds no current state for those sets.
func OpenMirror(dir string, doc []byte) (*State, error) {
	s, err := OpenState(dir, doc, StateOptions{CacheBytes: 16 << 20})
	if err != nil {
		return nil, err
	}
	s.mirror = true
	return s, nil
}

// ApplyLeaf applies a ledger entry as served by a node: leaf is the entry
// exactly as hashed into the tree, payload its statement's payload (nil if
// the subscriber did not receive it). It checks everything a node checks
// when it first applied the entry (signatures, rights, sequence, payload,
// set state) and that leaf is the entry's canonical encoding, so that the
// mirror's tree is the federation's tree byte for byte. A rejected entry
// changes nothing and is returned as an error naming its index.
func (s *State) ApplyLeaf(leaf, payload []byte) error {
	index := s.Size()
	var e hashfedv1.LedgerEntry
	if err := proto.Unmarshal(leaf, &e); err != nil {
		return fmt.Errorf("entry %d does not decode: %w", index, err)
	}
	if canon, err := marshalEntry(&e); err != nil || !bytes.Equal(canon, leaf) {
		return fmt.Errorf("entry %d is not in canonical form", index)
	}
	c := &hashfedv1.Command{TimeUnixNano: e.TimeUnixNano}
	switch k := e.Kind.(type) {
	case *hashfedv1.LedgerEntry_Genesis:
		c.Op = &hashfedv1.Command_Genesis{Genesis: k.Genesis.GetDocument()}
	case *hashfedv1.LedgerEntry_Statement:
		c.Op = &hashfedv1.Command_Contribution{Contribution: &hashfedv1.Contribution{Envelope: k.Statement.GetEnvelope(), Payload: payload}}
	case *hashfedv1.LedgerEntry_Governance:
		c.Op = &hashfedv1.Command_Governance{Governance: k.Governance.GetEnvelope()}
	default:
		return fmt.Errorf("entry %d has no kind", index)
	}
	return s.applyExpect(c, index)
}

// ApplyCheckpoint records a cosigned checkpoint after checking it as a node
// does: signed by a quorum of voting member orgs, larger than the last one,
// and with the root this ledger has at its size.
func (s *State) ApplyCheckpoint(signed []byte) error {
	return s.applyExpect(&hashfedv1.Command{Op: &hashfedv1.Command_Checkpoint{Checkpoint: signed}}, -1)
}

// applyExpect applies c as the next command; want is the ledger index the
// command must append at (-1: none).
func (s *State) applyExpect(c *hashfedv1.Command, want int64) error {
	cmd, err := proto.Marshal(c)
	if err != nil {
		return err
	}
	r, err := DecodeResult(s.Apply(s.AppliedIndex()+1, cmd))
	if err != nil {
		return err
	}
	if err := r.Err(); err != nil {
		if want >= 0 {
			return fmt.Errorf("entry %d: %w", want, err)
		}
		return err
	}
	if want >= 0 && r.Index != want {
		return fmt.Errorf("entry %d landed at index %d", want, r.Index)
	}
	return nil
}
