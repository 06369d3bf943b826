package node

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/consensus"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// commit proposes a command through the leader and returns the state
// machine's result; a rejection comes back as a *federation.RejectError.
func (n *Node) commit(ctx context.Context, c *hashfedv1.Command) (*federation.Result, error) {
	cmd, err := proto.Marshal(c)
	if err != nil {
		return nil, err
	}
	out, err := n.cons.Apply(ctx, cmd)
	if err != nil {
		return nil, err
	}
	res, err := federation.DecodeResult(out)
	if err != nil {
		return nil, err
	}
	return res, res.Err()
}

// commitStatus maps an error from commit to a gRPC status.
func commitStatus(err error) error {
	if federation.CodeOf(err) != 0 {
		return rejectStatus(err)
	}
	return consensusStatus(err)
}

// consensusStatus maps a failure to commit to a gRPC status.
func consensusStatus(err error) error {
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "not committed in time; the contribution may or may not be on the ledger, retrying with the same sequence number is safe: %v", err)
	default:
		return status.Errorf(codes.Unavailable, "consensus: %v", err)
	}
}

type publishService struct {
	hashfedv1.UnimplementedPublishServiceServer
	n *Node
}

func (s *publishService) Publish(ctx context.Context, req *hashfedv1.PublishRequest) (*hashfedv1.PublishResponse, error) {
	caller := callerFrom(ctx)
	c := req.GetContribution()
	if c == nil || len(c.Envelope) == 0 {
		return nil, status.Error(codes.InvalidArgument, "request carries no contribution")
	}
	st, err := federation.PeekStatement(c.Envelope)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if st.Org != caller.Identity.Org {
		return nil, status.Errorf(codes.PermissionDenied, "caller %s belongs to org %q but the statement is for org %q: an org submits only its own contributions", caller.Identity, caller.Identity.Org, st.Org)
	}
	res, err := s.n.commit(ctx, &hashfedv1.Command{Op: &hashfedv1.Command_Contribution{Contribution: c}})
	if err != nil {
		return nil, commitStatus(err)
	}
	s.n.log.InfoContext(ctx, "contribution committed", "org", st.Org, "set", st.Set, "sequence", st.Sequence, "signals", st.Count, "index", res.Index)
	return &hashfedv1.PublishResponse{Index: res.Index, TreeSize: res.TreeSize}, nil
}

func (s *publishService) GetNextSequence(ctx context.Context, req *hashfedv1.GetNextSequenceRequest) (*hashfedv1.GetNextSequenceResponse, error) {
	caller := callerFrom(ctx)
	// This node may lag the leader: catch up first, so a publisher that just
	// committed through another node gets the number after it.
	if err := s.n.cons.Sync(ctx); err != nil {
		return nil, consensusStatus(err)
	}
	if !s.n.state.HasSet(req.GetSet()) {
		return nil, status.Errorf(codes.NotFound, "set %q does not exist", req.GetSet())
	}
	return &hashfedv1.GetNextSequenceResponse{Sequence: s.n.state.NextSequence(caller.Identity.Org, req.GetSet())}, nil
}

type ledgerService struct {
	hashfedv1.UnimplementedLedgerServiceServer
	n *Node
}

// maxEntriesPerCall bounds GetEntries.
const maxEntriesPerCall = 1000

// checkpointSyncTimeout bounds GetCheckpoint's catch-up with the leader.
const checkpointSyncTimeout = time.Second

func (s *ledgerService) GetCheckpoint(ctx context.Context, _ *hashfedv1.GetCheckpointRequest) (*hashfedv1.GetCheckpointResponse, error) {
	// Catch up with the leader first, so a caller sees every checkpoint
	// published before its call, whichever node it asks. Without a leader
	// (a partition), the local latest still verifies on its own.
	sctx, cancel := context.WithTimeout(ctx, checkpointSyncTimeout)
	if err := s.n.cons.Sync(sctx); err != nil {
		s.n.log.Debug("serving the local checkpoint without catching up", "err", err)
	}
	cancel()
	signed, err := s.n.signedCheckpoint()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &hashfedv1.GetCheckpointResponse{SignedCheckpoint: signed}, nil
}

func (s *ledgerService) GetEntries(ctx context.Context, req *hashfedv1.GetEntriesRequest) (*hashfedv1.GetEntriesResponse, error) {
	start, end := req.GetStart(), req.GetEnd()
	if start < 0 || end <= start {
		return nil, status.Errorf(codes.InvalidArgument, "entry range [%d, %d) is empty or negative", start, end)
	}
	if end-start > maxEntriesPerCall {
		return nil, status.Errorf(codes.InvalidArgument, "entry range [%d, %d) asks for %d entries, at most %d per call", start, end, end-start, maxEntriesPerCall)
	}
	if size := s.n.state.Size(); end > size {
		return nil, status.Errorf(codes.OutOfRange, "entry range [%d, %d) runs past the ledger size %d", start, end, size)
	}
	leaves, err := s.n.state.Entries(start, end)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "reading entries: %v", err)
	}
	return &hashfedv1.GetEntriesResponse{Entries: leaves}, nil
}

func (s *ledgerService) GetInclusionProof(ctx context.Context, req *hashfedv1.GetInclusionProofRequest) (*hashfedv1.GetInclusionProofResponse, error) {
	index, size := req.GetIndex(), req.GetTreeSize()
	if index < 0 || size <= index {
		return nil, status.Errorf(codes.InvalidArgument, "entry %d is not in a tree of size %d", index, size)
	}
	if have := s.n.state.Size(); size > have {
		return nil, status.Errorf(codes.OutOfRange, "tree size %d is larger than this node's ledger (%d)", size, have)
	}
	p, err := s.n.state.InclusionProof(index, size)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "proving inclusion: %v", err)
	}
	return &hashfedv1.GetInclusionProofResponse{Hashes: hashBytes(p)}, nil
}

func (s *ledgerService) GetConsistencyProof(ctx context.Context, req *hashfedv1.GetConsistencyProofRequest) (*hashfedv1.GetConsistencyProofResponse, error) {
	oldSize, newSize := req.GetOldSize(), req.GetNewSize()
	if oldSize < 1 || newSize < oldSize {
		return nil, status.Errorf(codes.InvalidArgument, "no consistency proof from size %d to size %d: want 1 <= old <= new", oldSize, newSize)
	}
	if have := s.n.state.Size(); newSize > have {
		return nil, status.Errorf(codes.OutOfRange, "tree size %d is larger than this node's ledger (%d)", newSize, have)
	}
	p, err := s.n.state.ConsistencyProof(oldSize, newSize)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "proving consistency: %v", err)
	}
	return &hashfedv1.GetConsistencyProofResponse{Hashes: hashBytes(p)}, nil
}

func hashBytes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = h[:]
	}
	return out
}

type clusterService struct {
	hashfedv1.UnimplementedClusterServiceServer
	n *Node
}

func (s *clusterService) Join(ctx context.Context, req *hashfedv1.JoinRequest) (*hashfedv1.JoinResponse, error) {
	caller := callerFrom(ctx)
	if req.GetNodeId() != caller.Identity.Name {
		return nil, status.Errorf(codes.PermissionDenied, "%s may join only as itself, not as node %q", caller.Identity, req.GetNodeId())
	}
	if _, _, err := net.SplitHostPort(req.GetRaftAddress()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "raft address %q: %v", req.GetRaftAddress(), err)
	}
	voter := false
	if gn := s.n.state.Genesis().Node(req.GetNodeId()); gn != nil {
		if gn.Org != caller.Identity.Org {
			return nil, status.Errorf(codes.PermissionDenied, "the genesis lists node %q under org %q, not %q", gn.ID, gn.Org, caller.Identity.Org)
		}
		voter = gn.Voter
	} else if err := s.n.mayHoldLedger(caller.Identity.Org); err != nil {
		return nil, status.Errorf(codes.PermissionDenied, "node %q may not join: %v", req.GetNodeId(), err)
	}
	if err := s.n.cons.Join(ctx, req.GetNodeId(), req.GetRaftAddress(), voter); err != nil {
		return nil, consensusStatus(err)
	}
	s.n.log.InfoContext(ctx, "node joined", "joined", req.GetNodeId(), "raft", req.GetRaftAddress(), "voter", voter)
	return &hashfedv1.JoinResponse{Voter: voter}, nil
}

func (s *clusterService) Leave(ctx context.Context, req *hashfedv1.LeaveRequest) (*hashfedv1.LeaveResponse, error) {
	caller := callerFrom(ctx)
	id := req.GetNodeId()
	if id != caller.Identity.Name {
		return nil, status.Errorf(codes.PermissionDenied, "%s may leave only as itself, not as node %q", caller.Identity, id)
	}
	if gn := s.n.state.Genesis().Node(id); gn != nil {
		if gn.Org != caller.Identity.Org {
			return nil, status.Errorf(codes.PermissionDenied, "the genesis lists node %q under org %q, not %q", gn.ID, gn.Org, caller.Identity.Org)
		}
		if gn.Voter {
			return nil, status.Errorf(codes.FailedPrecondition, "node %q is a voter the genesis lists: it leaves Raft only when governance removes org %q (hashfed gov)", id, gn.Org)
		}
	}
	st, err := s.n.cons.Status()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading raft configuration: %v", err)
	}
	if st.State != "Leader" {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is not the Raft leader; ask the leader, %s (raft %s)", st.ID, orDefault(st.LeaderID, "unknown"), orDefault(st.LeaderAddress, "unknown"))
	}
	if !slices.ContainsFunc(st.Members, func(m consensus.Member) bool { return m.ID == id }) {
		return nil, status.Errorf(codes.NotFound, "node %q is not in the Raft configuration", id)
	}
	if err := s.n.cons.RemoveServer(id); err != nil {
		return nil, consensusStatus(err)
	}
	s.n.log.InfoContext(ctx, "node left", "left", id)
	return &hashfedv1.LeaveResponse{}, nil
}

func (s *clusterService) Status(ctx context.Context, _ *hashfedv1.StatusRequest) (*hashfedv1.StatusResponse, error) {
	st, err := s.n.cons.Status()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "reading raft configuration: %v", err)
	}
	out := &hashfedv1.StatusResponse{
		NodeId:        st.ID,
		State:         st.State,
		LeaderId:      st.LeaderID,
		LeaderAddress: st.LeaderAddress,
		AppliedIndex:  st.AppliedIndex,
		Term:          st.Term,
		LedgerSize:    s.n.state.Size(),
	}
	for _, m := range st.Members {
		out.Members = append(out.Members, &hashfedv1.Member{NodeId: m.ID, RaftAddress: m.Address, Voter: m.Voter})
	}
	return out, nil
}

// joinLoop asks the configured nodes to add this node until one does.
func (n *Node) joinLoop(advertise string, cert tls.Certificate) {
	creds := credentials.NewTLS(certs.ClientConfig(cert, n.trust))
	for attempt := 0; ; attempt++ {
		for _, addr := range n.cfg.Join {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				n.log.Warn("join", "via", addr, "err", err)
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			res, err := hashfedv1.NewClusterServiceClient(conn).Join(ctx, &hashfedv1.JoinRequest{NodeId: n.cfg.NodeID, RaftAddress: advertise})
			cancel()
			conn.Close()
			if err == nil {
				n.log.Info("joined federation", "via", addr, "voter", res.GetVoter())
				return
			}
			if status.Code(err) == codes.PermissionDenied {
				// Retrying helps only once the configuration or governance
				// changes: say so loudly.
				n.log.Error("the federation refuses this node's join; it retries, and joins once the reason is fixed", "via", addr, "err", err)
			} else {
				n.log.Warn("join attempt failed", "via", addr, "err", err)
			}
		}
		select {
		case <-n.stop:
			return
		case <-time.After(time.Duration(min(attempt+1, 10)) * 500 * time.Millisecond):
		}
	}
}
