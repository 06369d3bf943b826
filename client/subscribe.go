package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

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
	Signals []*hashfedv1.Signal
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
	reg, err := c.Registry(ctx, req.GetCursor())
	if err != nil {
		return err
	}
	stream, err := c.Subscriber.Subscribe(ctx, req)
	if err != nil {
		return Explain(err)
	}
	next := req.GetCursor()
	for {
		msg, err := stream.Recv()
		if err == io.EOF && req.GetStopAtEnd() {
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
		if err := fn(u); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		next++
	}
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
		act, _, err := reg.CheckAct(c.genesis.Federation, gov.GetEnvelope(), index)
		if err != nil {
			return nil, fmt.Errorf("entry %d: governance act: %w", index, err)
		}
		if err := reg.ApplyAct(act, index); err != nil {
			return nil, fmt.Errorf("entry %d: governance act: %w", index, err)
		}
		u.Act = act
		return u, nil
	}
	st, err := openStatement(reg, index, e.GetStatement().GetEnvelope())
	if err != nil {
		return nil, err
	}
	u.Statement = st
	if len(payload) > 0 {
		sigs, err := federation.CheckPayload(st, payload)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", index, err)
		}
		u.Signals = sigs
	}
	return u, nil
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

// Registry returns the registry to verify entries from cursor on: for
// cursor 0, the genesis's, so the whole history is verified from the
// genesis up; otherwise the node's current one (which keeps every key's
// history), taken on trust: an audit verifies it.
func (c *Client) Registry(ctx context.Context, cursor int64) (*federation.Registry, error) {
	if cursor == 0 {
		return federation.NewRegistry(c.genesis), nil
	}
	r, err := c.Governance.GetRegistry(ctx, &hashfedv1.GetRegistryRequest{})
	if err != nil {
		return nil, Explain(err)
	}
	var reg federation.Registry
	if err := json.Unmarshal(r.GetRegistry(), &reg); err != nil {
		return nil, fmt.Errorf("decoding the node's registry: %w", err)
	}
	return &reg, nil
}
