package node

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

type governanceService struct {
	hashfedv1.UnimplementedGovernanceServiceServer
	n *Node
}

// Submit commits a governance act signed by enough operator orgs.
func (s *governanceService) Submit(ctx context.Context, req *hashfedv1.SubmitRequest) (*hashfedv1.SubmitResponse, error) {
	act, err := federation.PeekAct(req.GetEnvelope())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	res, err := s.n.commit(ctx, &hashfedv1.Command{Op: &hashfedv1.Command_Governance{Governance: req.GetEnvelope()}})
	if err != nil {
		return nil, commitStatus(err)
	}
	s.n.log.InfoContext(ctx, "governance act committed", "kind", act.Kind, "sequence", act.Sequence, "index", res.Index, "by", callerFrom(ctx).Identity.String())
	return &hashfedv1.SubmitResponse{Index: res.Index}, nil
}

// GetRegistry returns the registry after catching up with the leader.
func (s *governanceService) GetRegistry(ctx context.Context, _ *hashfedv1.GetRegistryRequest) (*hashfedv1.GetRegistryResponse, error) {
	if err := s.n.cons.Sync(ctx); err != nil {
		return nil, consensusStatus(err)
	}
	reg := s.n.state.Registry()
	b, err := json.MarshalIndent(reg, "", "  ")
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &hashfedv1.GetRegistryResponse{Registry: b, NextAct: reg.NextAct}, nil
}
