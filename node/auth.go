package node

import (
	"context"
	"errors"
	"path"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A Caller is the authenticated org identity behind a request.
type Caller struct {
	certs.Identity
	Org *federation.Org
}

type callerKey struct{}

func callerFrom(ctx context.Context) Caller { return ctx.Value(callerKey{}).(Caller) }

// A policy says who may call a method: an org holding any of roles (none
// listed: any member org) with an identity of one of kinds (none: any).
type policy struct {
	roles []federation.Role
	kinds []certs.Kind
}

var anyMember = policy{}

// policies lists every method the node serves. A method missing here is
// refused: authorisation is default-deny.
var policies = map[string]policy{
	// Publishers add, retract and relabel; subscribers publish feedback on
	// sets they read. The state machine checks which op each org may use.
	hashfedv1.PublishService_Publish_FullMethodName:         {roles: []federation.Role{federation.RolePublisher, federation.RoleSubscriber}},
	hashfedv1.PublishService_GetNextSequence_FullMethodName: {roles: []federation.Role{federation.RolePublisher, federation.RoleSubscriber}},
	// Every member may stream the ledger; payload values go only to the
	// orgs each set names as readers (checked per entry).
	hashfedv1.SubscribeService_Subscribe_FullMethodName:        anyMember,
	hashfedv1.LedgerService_GetCheckpoint_FullMethodName:       anyMember,
	hashfedv1.LedgerService_GetEntries_FullMethodName:          anyMember,
	hashfedv1.LedgerService_GetInclusionProof_FullMethodName:   anyMember,
	hashfedv1.LedgerService_GetConsistencyProof_FullMethodName: anyMember,
	hashfedv1.ClusterService_Join_FullMethodName:               {kinds: []certs.Kind{certs.KindNode}},
	hashfedv1.ClusterService_Leave_FullMethodName:              {kinds: []certs.Kind{certs.KindNode}},
	hashfedv1.ClusterService_Status_FullMethodName:             anyMember,
	// Any node may ask; a node signs only what its own ledger holds.
	hashfedv1.ClusterService_Cosign_FullMethodName:                         {kinds: []certs.Kind{certs.KindNode}},
	hashfedv1.LedgerService_GetReceipt_FullMethodName:                      anyMember,
	hashfedv1.GovernanceService_Submit_FullMethodName:                      {roles: []federation.Role{federation.RoleOperator}},
	hashfedv1.GovernanceService_GetRegistry_FullMethodName:                 anyMember,
	healthpb.Health_Check_FullMethodName:                                   anyMember,
	healthpb.Health_Watch_FullMethodName:                                   anyMember,
	healthpb.Health_List_FullMethodName:                                    anyMember,
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      anyMember,
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: anyMember,
	// Any member may describe a set; who sees its signals (readers with
	// values, auditors with digests) is checked per set in the handler.
	hashfedv1.SetService_GetSet_FullMethodName:       anyMember,
	hashfedv1.SetService_ListSignals_FullMethodName:  anyMember,
	hashfedv1.SetService_LookupSignal_FullMethodName: anyMember,
}

// authorize finds the caller's verified identity and checks the method's policy.
func (n *Node) authorize(ctx context.Context, method string) (context.Context, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no peer information")
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "connection is not mutual TLS")
	}
	// The handshake already verified the chain against the org's CA.
	id, err := certs.PeerIdentity(ti.State)
	if err != nil {
		return nil, status.Errorf(codes.Unauthenticated, "client certificate: %v", err)
	}
	org := n.state.Member(id.Org)
	if org == nil {
		return nil, status.Errorf(codes.PermissionDenied, "org %q is not a member of this federation (never admitted, or removed)", id.Org)
	}
	pol, ok := policies[method]
	if !ok {
		return nil, status.Errorf(codes.PermissionDenied, "method %s is not served to anyone", method)
	}
	if len(pol.kinds) > 0 && !slices.Contains(pol.kinds, id.Kind) {
		return nil, status.Errorf(codes.PermissionDenied, "%s may be called only by a node identity; %s is a %s", path.Base(method), id, id.Kind)
	}
	if len(pol.roles) > 0 && !slices.ContainsFunc(pol.roles, org.HasRole) {
		return nil, status.Errorf(codes.PermissionDenied, "org %q may not call %s: that needs the %s role, and the org holds %s", id.Org, path.Base(method), joinRoles(pol.roles), joinRoles(org.Roles))
	}
	return context.WithValue(ctx, callerKey{}, Caller{Identity: id, Org: org}), nil
}

func (n *Node) unaryAuth(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := n.authorize(ctx, info.FullMethod)
	if err != nil {
		n.log.Warn("refused call", "method", info.FullMethod, "err", err)
		return nil, err
	}
	return h(ctx, req)
}

func (n *Node) streamAuth(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := n.authorize(ss.Context(), info.FullMethod)
	if err != nil {
		n.log.Warn("refused call", "method", info.FullMethod, "err", err)
		return err
	}
	return h(srv, &authedStream{ServerStream: ss, ctx: ctx})
}

type authedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authedStream) Context() context.Context { return s.ctx }

func joinRoles(rs []federation.Role) string {
	var ss []string
	for _, r := range rs {
		ss = append(ss, string(r))
	}
	return strings.Join(ss, " or ")
}

// rejectStatus turns a federation rejection into a gRPC status.
func rejectStatus(err error) error {
	code := map[federation.Code]codes.Code{
		federation.CodeInvalid:            codes.InvalidArgument,
		federation.CodePermissionDenied:   codes.PermissionDenied,
		federation.CodeNotFound:           codes.NotFound,
		federation.CodeAlreadyExists:      codes.AlreadyExists,
		federation.CodeFailedPrecondition: codes.FailedPrecondition,
		federation.CodeUnavailable:        codes.Unavailable,
		federation.CodeInternal:           codes.Internal,
	}[federation.CodeOf(err)]
	if code == codes.OK {
		code = codes.Internal
	}
	st := status.New(code, err.Error())
	var re *federation.RejectError
	if errors.As(err, &re) && re.Committed > 0 {
		// A resend of a committed contribution: say where it is, in a form
		// clients read without parsing the message.
		if with, derr := st.WithDetails(&errdetails.ErrorInfo{
			Domain:   federation.ErrorDomain,
			Reason:   federation.ReasonCommitted,
			Metadata: map[string]string{"index": strconv.FormatInt(re.Committed, 10)},
		}); derr == nil {
			st = with
		}
	}
	return st.Err()
}
