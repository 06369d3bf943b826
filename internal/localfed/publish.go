package localfed

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// PublishResend adds signals as the signer's org's next contribution to set
// through c and returns a ledger size that covers it. While the outcome is
// unknown (Unavailable or DeadlineExceeded: a leader change on a loaded
// machine, a lost connection) it sends the same contribution again, which
// its sequence number makes safe; AlreadyExists after such a resend means an
// earlier attempt committed it. Only for callers whose org is the set's only
// publisher (tests, the demo): anyone else's contribution with the same
// number would look like ours.
func PublishResend(ctx context.Context, c *client.Client, s *federation.Signer, set string, signals []*hashfedv1.Signal) (int64, error) {
	seq, err := c.NextSequence(ctx, set)
	if err != nil {
		return 0, err
	}
	resent := false
	for {
		res, err := c.PublishChange(ctx, s, set, seq, federation.Change{Op: federation.OpAdd, Signals: signals}, "")
		switch code := status.Code(err); {
		case err == nil:
			return res.TreeSize, nil
		case code == codes.AlreadyExists && resent:
			// NextSequence syncs the node with the leader, so its ledger
			// size then covers the committed contribution.
			if next, err := c.NextSequence(ctx, set); err != nil || next <= seq {
				return 0, fmt.Errorf("contribution %d to %s: refused as a replay, yet the next sequence is %d: %v", seq, set, next, err)
			}
			st, err := c.Status(ctx)
			if err != nil {
				return 0, err
			}
			return st.GetLedgerSize(), nil
		case code != codes.Unavailable && code != codes.DeadlineExceeded:
			return 0, err
		}
		resent = true
		select {
		case <-ctx.Done():
			return 0, errors.Join(ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
