package client

import (
	"context"
	"fmt"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A PublishResult says where a contribution landed.
type PublishResult struct {
	Index     int64
	TreeSize  int64
	Statement *federation.Statement
}

// NextSequence asks the node for the sequence number the caller's org's
// next contribution to set must carry: 1 for its first, one more than its
// last committed otherwise. The node catches up with the leader first, so
// the answer covers everything committed before the call, through any node.
func (c *Client) NextSequence(ctx context.Context, set string) (uint64, error) {
	res, err := c.Publisher.GetNextSequence(ctx, &hashfedv1.GetNextSequenceRequest{Set: set})
	if err != nil {
		return 0, fmt.Errorf("asking the node for the next sequence number of %s: %w", set, Explain(err))
	}
	return res.GetSequence(), nil
}

// PublishChange signs ch as contribution seq of the signer's org to set and
// submits it; seq 0 asks the node for the next number first. issuedAt is the
// publisher's informative timestamp.
//
// A node refuses a sequence number already committed with AlreadyExists (the
// contribution is a replay) and one that skips ahead with
// FailedPrecondition, so a caller that numbers its own contributions commits
// each at most once and none out of order.
func (c *Client) PublishChange(ctx context.Context, signer *federation.Signer, set string, seq uint64, ch federation.Change, issuedAt string) (*PublishResult, error) {
	if seq == 0 {
		var err error
		if seq, err = c.NextSequence(ctx, set); err != nil {
			return nil, err
		}
	}
	contrib, st, err := federation.BuildChange(signer, c.genesis.Federation, set, seq, ch, issuedAt)
	if err != nil {
		return nil, err
	}
	res, err := c.Publisher.Publish(ctx, &hashfedv1.PublishRequest{Contribution: contrib})
	if err != nil {
		return nil, Explain(err)
	}
	return &PublishResult{Index: res.GetIndex(), TreeSize: res.GetTreeSize(), Statement: st}, nil
}

// Publish signs signals as the next contribution of the signer's org to set,
// adding them, and submits it. issuedAt is the publisher's informative
// timestamp. It is [Client.PublishChange] with [federation.OpAdd] and
// sequence 0.
func (c *Client) Publish(ctx context.Context, signer *federation.Signer, set string, signals []*hashfedv1.Signal, issuedAt string) (*PublishResult, error) {
	return c.PublishChange(ctx, signer, set, 0, federation.Change{Op: federation.OpAdd, Signals: signals}, issuedAt)
}
