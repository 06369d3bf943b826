package node

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// receiptWait bounds how long GetReceipt waits for a covering checkpoint
// when the call has no deadline of its own.
const receiptWait = 10 * time.Second

// GetReceipt returns a C2SP tlog-proof for an entry under the first cosigned
// checkpoint that covers it.
func (s *ledgerService) GetReceipt(ctx context.Context, req *hashfedv1.GetReceiptRequest) (*hashfedv1.GetReceiptResponse, error) {
	index := req.GetIndex()
	if index < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "entry %d: indexes start at 0", index)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, receiptWait)
		defer cancel()
	}
	state := s.n.state
	if index >= state.Size() {
		// The entry may have been committed through another node: catch up.
		if err := s.n.cons.Sync(ctx); err != nil {
			return nil, consensusStatus(err)
		}
		if size := state.Size(); index >= size {
			return nil, status.Errorf(codes.OutOfRange, "entry %d does not exist: the ledger holds %d entries", index, size)
		}
	}
	for {
		changed := state.Changed()
		signed, size := state.LatestCheckpoint()
		if size > index {
			hashes, err := state.InclusionProof(index, size)
			if err != nil {
				return nil, status.Errorf(codes.Internal, "proving inclusion: %v", err)
			}
			leaves, err := state.Entries(index, index+1)
			if err != nil {
				return nil, status.Errorf(codes.Internal, "reading entry: %v", err)
			}
			p := &ledger.Proof{Extra: leaves[0], Index: index, Hashes: hashes, Checkpoint: signed}
			return &hashfedv1.GetReceiptResponse{Receipt: p.Marshal()}, nil
		}
		select {
		case <-ctx.Done():
			return nil, status.Errorf(codes.DeadlineExceeded, "no cosigned checkpoint covers entry %d yet (latest covers %d entries); a majority of voting orgs' nodes must be up to publish one", index, size)
		case <-changed:
		}
	}
}
