package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Receipt fetches the inclusion receipt of entry index, waiting (up to ctx's
// deadline) for a cosigned checkpoint that covers it, and verifies it before
// returning it.
func (c *Client) Receipt(ctx context.Context, index int64) ([]byte, *ReceiptInfo, error) {
	r, err := c.Ledger.GetReceipt(ctx, &hashfedv1.GetReceiptRequest{Index: index})
	if err != nil {
		return nil, nil, Explain(err)
	}
	reg, err := c.Registry(ctx, index)
	if err != nil {
		return nil, nil, err
	}
	info, err := VerifyReceipt(c.genesis, reg, r.GetReceipt(), 0)
	if err != nil {
		return nil, nil, fmt.Errorf("the node's receipt for entry %d does not verify: %w", index, err)
	}
	if info.Index != index {
		return nil, nil, fmt.Errorf("asked for a receipt of entry %d, got one for entry %d", index, info.Index)
	}
	return r.GetReceipt(), info, nil
}

// ReceiptFrom is [Client.Receipt] through several nodes of one federation:
// it asks each in turn and returns the first receipt that verifies. A node
// that fails, or serves a receipt that does not verify, is skipped; its
// error, naming it, is returned in skipped. Only when every node fails does
// ReceiptFrom fail, naming each node and what it answered.
func ReceiptFrom(ctx context.Context, clients []*Client, index int64) (receipt []byte, info *ReceiptInfo, skipped []error, err error) {
	if len(clients) == 0 {
		return nil, nil, nil, errors.New("receipt: no node to ask")
	}
	for _, c := range clients {
		receipt, info, err := c.Receipt(ctx, index)
		if err == nil {
			return receipt, info, skipped, nil
		}
		if ctx.Err() != nil {
			return nil, nil, skipped, err
		}
		skipped = append(skipped, fmt.Errorf("node %s: %w", c.Target(), err))
	}
	return nil, nil, skipped, fmt.Errorf("no node served a receipt of entry %d that verifies: %w", index, errors.Join(skipped...))
}

// ReceiptInfo is what a verified receipt proves.
type ReceiptInfo struct {
	Index      int64
	Entry      *hashfedv1.LedgerEntry
	Statement  *federation.Statement // nil for the genesis entry
	Checkpoint ledger.Checkpoint
	SignedBy   []string // voting orgs whose nodes cosigned the checkpoint
}

// VerifyReceipt checks a receipt with no network: the checkpoint is cosigned
// by at least minOrgs voting orgs (0: a majority) under the genesis node
// keys, the entry carried in the receipt is included in that checkpoint's
// tree at the stated index, and a statement entry verifies under the key its
// org held at that index according to reg (nil: the genesis keys, enough
// until a key is rotated; an audit state's or 'hashfed gov show' registry
// otherwise).
func VerifyReceipt(g *federation.Genesis, reg *federation.Registry, receipt []byte, minOrgs int) (*ReceiptInfo, error) {
	if reg == nil {
		reg = federation.NewRegistry(g)
	}
	p, err := ledger.ParseProof(receipt)
	if err != nil {
		return nil, err
	}
	if len(p.Extra) == 0 {
		return nil, fmt.Errorf("receipt carries no entry (its extra line holds the entry's leaf bytes)")
	}
	cp, orgs, err := g.OpenCosigned(p.Checkpoint)
	if err != nil {
		return nil, fmt.Errorf("receipt checkpoint: %w", err)
	}
	if minOrgs <= 0 {
		minOrgs = g.CheckpointQuorum()
	}
	if len(orgs) < minOrgs {
		return nil, fmt.Errorf("receipt checkpoint is cosigned by %d voting org(s) %v, %d required", len(orgs), orgs, minOrgs)
	}
	if err := p.Verify(p.Extra, cp); err != nil {
		return nil, fmt.Errorf("entry %d is not in the checkpointed tree: %w", p.Index, err)
	}
	e, claimed, err := federation.DecodeEntry(p.Extra)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", p.Index, err)
	}
	info := &ReceiptInfo{Index: p.Index, Entry: e, Checkpoint: cp, SignedBy: orgs}
	if claimed == nil {
		return info, nil
	}
	key, err := reg.KeyAt(claimed.Org, p.Index)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", p.Index, err)
	}
	if info.Statement, err = federation.OpenStatement(e.GetStatement().GetEnvelope(), key); err != nil {
		return nil, fmt.Errorf("entry %d: %w", p.Index, err)
	}
	return info, nil
}
