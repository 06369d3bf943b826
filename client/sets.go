package client

import (
	"context"
	"fmt"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// sets returns a client of the node's SetService.
func (c *Client) sets() hashfedv1.SetServiceClient { return hashfedv1.NewSetServiceClient(c.conn) }

// GetSet describes set as it stands now: owner, types, readers, how many
// signals it holds, the owner's next sequence number and what the caller's
// org may see of its signals. Any member org may ask. The node catches up
// with the leader first, so the answer covers every change committed before
// the call.
func (c *Client) GetSet(ctx context.Context, set string) (*hashfedv1.GetSetResponse, error) {
	res, err := c.sets().GetSet(ctx, &hashfedv1.GetSetRequest{Set: set})
	if err != nil {
		return nil, fmt.Errorf("describing set %s: %w", set, Explain(err))
	}
	return res, nil
}

// ListOptions narrows and pages [Client.ListSignals].
type ListOptions struct {
	// MinDisputes > 0 lists only signals at least that many orgs dispute
	// (their latest feedback is false_positive or disputed).
	MinDisputes int64
	// PageSize is how many signals to ask for per call; 0 lets the node
	// choose (1000).
	PageSize int32
}

// ListSignals calls fn with every signal set holds now, page after page,
// until the last page or until fn returns an error, which ListSignals then
// returns. Readers of the set (and its owner) receive values; an org
// holding the auditor role that does not read it receives each signal with
// its value withheld and ValueSha256 set instead.
//
// The listing is not a snapshot: signals changed while it runs may be
// missed or seen twice (see SetService.ListSignals). Follow the ledger with
// [Client.Follow] for an exact mirror.
func (c *Client) ListSignals(ctx context.Context, set string, opts ListOptions, fn func(*hashfedv1.SetSignal) error) error {
	sc := c.sets()
	req := &hashfedv1.ListSignalsRequest{Set: set, PageSize: opts.PageSize, MinDisputes: opts.MinDisputes}
	for {
		res, err := sc.ListSignals(ctx, req)
		if err != nil {
			return fmt.Errorf("listing the signals of set %s: %w", set, Explain(err))
		}
		for _, sig := range res.GetSignals() {
			if err := fn(sig); err != nil {
				return err
			}
		}
		if res.GetNextPageToken() == "" {
			return nil
		}
		req.PageToken = res.GetNextPageToken()
	}
}

// LookupSignal returns the signal of type t and value as set holds it now,
// or nil if set does not hold it. value may be in any form
// [federation.CanonicalValue] accepts. The access rule is ListSignals'.
func (c *Client) LookupSignal(ctx context.Context, set string, t federation.SignalType, value string) (*hashfedv1.SetSignal, error) {
	res, err := c.sets().LookupSignal(ctx, &hashfedv1.LookupSignalRequest{Set: set, Type: t.Proto(), Value: value})
	if err != nil {
		return nil, fmt.Errorf("looking up a %s signal in set %s: %w", t, set, Explain(err))
	}
	if !res.GetFound() {
		return nil, nil
	}
	return res.GetSignal(), nil
}
