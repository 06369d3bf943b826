package client

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A PublishResult says where a contribution landed.
type PublishResult struct {
	Index     int64
	TreeSize  int64
	Statement *federation.Statement
	// Resent is set when the contribution was sent more than once. If a
	// resend found it already committed by an earlier attempt, Index is
	// where that attempt put it and TreeSize is Index+1.
	Resent bool
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
//
// When the node's answer leaves the outcome unknown (Unavailable, or
// DeadlineExceeded while ctx still runs: a leader change, a lost connection),
// PublishChange sends the same signed contribution again, up to
// [Client.PublishAttempts] times in all. That is safe: the sequence number commits
// it at most once, and a node answers a resend of a committed contribution
// with where it is, which PublishChange returns as a success with Resent set.
// The error of the last attempt is returned if none gets an answer.
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
	req := &hashfedv1.PublishRequest{Contribution: contrib}
	attempts := c.PublishAttempts
	if attempts <= 0 {
		attempts = DefaultPublishAttempts
	}
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, err := c.Publisher.Publish(ctx, req)
		if err == nil {
			return &PublishResult{Index: res.GetIndex(), TreeSize: res.GetTreeSize(), Statement: st, Resent: attempt > 1}, nil
		}
		if idx, ok := CommittedAt(err); ok {
			return &PublishResult{Index: idx, TreeSize: idx + 1, Statement: st, Resent: true}, nil
		}
		code := status.Code(err)
		if (code != codes.Unavailable && code != codes.DeadlineExceeded) || attempt >= attempts || ctx.Err() != nil {
			return nil, Explain(err)
		}
		select {
		case <-ctx.Done():
			return nil, Explain(err)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}

// DefaultPublishAttempts is how often [Client.PublishChange] sends one
// contribution whose outcome stays unknown: waiting 0.1 s, 0.2 s, 0.4 s,
// 0.8 s, then 1 s between attempts, about 5 s of retrying in all, longer
// than a leader election takes.
const DefaultPublishAttempts = 8

// CommittedAt reports whether err is a node's answer to a resend of a
// contribution already committed, and at which entry index.
func CommittedAt(err error) (int64, bool) {
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.AlreadyExists {
		return 0, false
	}
	for _, d := range s.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != federation.ErrorDomain || info.GetReason() != federation.ReasonCommitted {
			continue
		}
		idx, err := strconv.ParseInt(info.GetMetadata()["index"], 10, 64)
		if err == nil && idx > 0 {
			return idx, true
		}
	}
	return 0, false
}

// Publish signs signals as the next contribution of the signer's org to set,
// adding them, and submits it. issuedAt is the publisher's informative
// timestamp. It is [Client.PublishChange] with [federation.OpAdd] and
// sequence 0.
func (c *Client) Publish(ctx context.Context, signer *federation.Signer, set string, signals []*hashfedv1.Signal, issuedAt string) (*PublishResult, error) {
	return c.PublishChange(ctx, signer, set, 0, federation.Change{Op: federation.OpAdd, Signals: signals}, issuedAt)
}
