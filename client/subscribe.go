package client

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// An Update is one verified ledger entry.
type Update struct {
	// Index is the entry's ledger index; resume after it with cursor Index+1.
	Index int64
	Entry *hashfedv1.LedgerEntry
	// Statement is set for statement entries, verified against its org's key.
	Statement *federation.Statement
	// Act is set for governance entries, verified and applied.
	Act *federation.Act
	// Signals are the statement's values, checked against its digest; nil when
	// the node sent no payload (a set the caller does not read or did not ask for).
	// For a retraction they are the tombstones: the signals taken out of the set.
	Signals []*hashfedv1.Signal
	// Reason is the payload's reason (a retraction's, or a relabel's or a
	// feedback's note).
	Reason string
}

// Subscribe streams entries from cursor on and calls fn with each, in ledger
// order, after verifying it. It stops when ctx ends, the stream fails, or fn
// returns an error (io.EOF from fn stops it without error). Any entry that
// fails verification stops the stream with an error naming the entry.
func (c *Client) Subscribe(ctx context.Context, cursor int64, sets []string, fn func(*Update) error) error {
	return c.subscribe(ctx, &hashfedv1.SubscribeRequest{Cursor: cursor, Sets: sets}, fn)
}

// CatchUp is Subscribe that returns nil once every entry committed before the
// call (through any node) has been passed to fn.
func (c *Client) CatchUp(ctx context.Context, cursor int64, sets []string, fn func(*Update) error) error {
	return c.subscribe(ctx, &hashfedv1.SubscribeRequest{Cursor: cursor, Sets: sets, StopAtEnd: true}, fn)
}

func (c *Client) subscribe(ctx context.Context, req *hashfedv1.SubscribeRequest, fn func(*Update) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	reg, seqs, err := c.replay(ctx, req.GetCursor())
	if err != nil {
		return err
	}
	// A catch-up must reach at least the latest checkpoint a majority of
	// voting orgs cosigned, or the node ended the stream early.
	var mustReach int64
	if req.GetStopAtEnd() {
		r, err := c.Ledger.GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{})
		if err != nil {
			return Explain(err)
		}
		sc, err := CheckpointPolicy{}.accept(c.genesis, r.GetSignedCheckpoint())
		if err != nil {
			return fmt.Errorf("the node's checkpoint: %w", err)
		}
		mustReach = sc.Size
	}
	stream, err := c.Subscriber.Subscribe(ctx, req)
	if err != nil {
		return Explain(err)
	}
	next := req.GetCursor()
	for {
		msg, err := stream.Recv()
		if err == io.EOF && req.GetStopAtEnd() {
			if next < mustReach {
				return fmt.Errorf("node ended the catch-up at entry %d, before the %d entries of its cosigned checkpoint", next, mustReach)
			}
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return Explain(err)
		}
		if msg.GetIndex() != next {
			return fmt.Errorf("node sent entry %d where entry %d was due: refusing a gap or repeat", msg.GetIndex(), next)
		}
		u, err := c.VerifyEntry(reg, msg.GetIndex(), msg.GetEntry(), msg.GetPayload())
		if err != nil {
			return err
		}
		if st := u.Statement; st != nil {
			// Contributions are numbered per (org, set): a dropped, replayed
			// or renumbered one breaks the sequence.
			if err := seqs.advance(st); err != nil {
				return fmt.Errorf("entry %d: %w", u.Index, err)
			}
			wanted := len(req.GetSets()) == 0 || slices.Contains(req.GetSets(), st.Set)
			if wanted && u.Signals == nil && reg.CanRead(c.identity.Org, st.Set) {
				return fmt.Errorf("entry %d: the node withheld the payload of %s's contribution %d to %s, which your org reads", u.Index, st.Org, st.Sequence, st.Set)
			}
		}
		if err := fn(u); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		next++
	}
}

// sequences tracks the next contribution number per (org, set).
type sequences map[seqKey]uint64

func (s sequences) advance(st *federation.Statement) error {
	k := seqKey{st.Org, st.Set}
	want := max(s[k], 1)
	if st.Sequence != want {
		return fmt.Errorf("contribution %d of org %q to %s arrived where %d was due: a contribution was dropped, replayed or reordered", st.Sequence, st.Org, st.Set, want)
	}
	s[k] = want + 1
	return nil
}

// replay verifies entries [0, cursor) as served by the node, statements
// only, and returns the registry and contribution numbers as of cursor.
// Governance acts need real operator signatures, so a node can at worst
// withhold one, which makes later statements fail to verify: it fails
// closed, and cannot slip in a key of its own.
func (c *Client) replay(ctx context.Context, cursor int64) (*federation.Registry, sequences, error) {
	reg, seqs := federation.NewRegistry(c.genesis), sequences{}
	for start := int64(0); start < cursor; {
		end := min(cursor, start+maxEntriesPerCall)
		r, err := c.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: start, End: end})
		if err != nil {
			return nil, nil, Explain(err)
		}
		if len(r.GetEntries()) == 0 {
			return nil, nil, fmt.Errorf("node returned no entries for [%d, %d)", start, end)
		}
		for i, leaf := range r.GetEntries() {
			u, err := c.VerifyEntry(reg, start+int64(i), leaf, nil)
			if err != nil {
				return nil, nil, err
			}
			if u.Statement != nil {
				if err := seqs.advance(u.Statement); err != nil {
					return nil, nil, fmt.Errorf("entry %d: %w", u.Index, err)
				}
			}
		}
		start += int64(len(r.GetEntries()))
	}
	return reg, seqs, nil
}

// VerifyEntry decodes one ledger entry and checks it against reg, the
// registry as of the entry (see [Client.Registry]): the genesis entry must
// hold exactly the caller's genesis document; a governance act must carry
// the approvals of a threshold of operator orgs, and is applied to reg; a
// statement must verify under the key its org held at that index, and its
// payload (if any) must match it.
func (c *Client) VerifyEntry(reg *federation.Registry, index int64, leaf, payload []byte) (*Update, error) {
	e, _, err := federation.DecodeEntry(leaf)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	u := &Update{Index: index, Entry: e}
	if g := e.GetGenesis(); g != nil {
		if index != 0 {
			return nil, fmt.Errorf("entry %d: a genesis entry may only be entry 0", index)
		}
		if !bytes.Equal(g.GetDocument(), c.doc) {
			return nil, fmt.Errorf("entry 0: the ledger's genesis document differs from the genesis file given to this client")
		}
		return u, nil
	}
	if index == 0 {
		return nil, fmt.Errorf("entry 0 is not the genesis entry")
	}
	if gov := e.GetGovernance(); gov != nil {
		if u.Act, err = c.applyAct(reg, gov.GetEnvelope(), index); err != nil {
			return nil, fmt.Errorf("entry %d: %w", index, err)
		}
		return u, nil
	}
	st, err := openStatement(reg, index, e.GetStatement().GetEnvelope())
	if err != nil {
		return nil, err
	}
	u.Statement = st
	if len(payload) > 0 {
		p, err := federation.CheckPayload(st, payload)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", index, err)
		}
		u.Signals, u.Reason = p.Signals, p.Reason
	}
	return u, nil
}

// applyAct verifies a governance act against reg, the registry just before
// index, and applies it.
func (c *Client) applyAct(reg *federation.Registry, env []byte, index int64) (*federation.Act, error) {
	act, _, err := reg.CheckAct(c.genesis.Federation, env, index)
	if err != nil {
		return nil, fmt.Errorf("governance act: %w", err)
	}
	if err := reg.ApplyAct(act, index); err != nil {
		return nil, fmt.Errorf("governance act: %w", err)
	}
	return act, nil
}

// openStatement verifies a statement under the key its org held at index.
func openStatement(reg *federation.Registry, index int64, env []byte) (*federation.Statement, error) {
	claimed, err := federation.PeekStatement(env)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	key, err := reg.KeyAt(claimed.Org, index)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	st, err := federation.OpenStatement(env, key)
	if err != nil {
		return nil, fmt.Errorf("entry %d: statement of org %q: %w", index, claimed.Org, err)
	}
	return st, nil
}

// Registry returns the registry as of entry index, replayed and verified
// from the genesis through the node's entries (statements only).
func (c *Client) Registry(ctx context.Context, index int64) (*federation.Registry, error) {
	reg, _, err := c.replay(ctx, index)
	return reg, err
}
