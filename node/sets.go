package node

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Paging of SetService.ListSignals.
const (
	// defaultPageSize is the page size of a request that names none.
	defaultPageSize = 1000
	// maxPageSize caps a request's page size.
	maxPageSize = 10000
	// pageBytes ends a page early once its signals take this many bytes.
	// One more chunk (below 400 KiB even at 16 labels of 64 bytes per
	// signal) keeps the response under MaxMessageSize.
	pageBytes = 2 << 20
	// pageChunk is how many signals a page reads from the state at a time.
	pageChunk = 256
)

type setService struct {
	hashfedv1.UnimplementedSetServiceServer
	n *Node
}

// catchUp waits until this node has applied everything the leader had
// committed when it was called, so an answer reflects every change
// acknowledged before the call, through any node.
func (s *setService) catchUp(ctx context.Context) error {
	if err := s.n.cons.Sync(ctx); err != nil {
		if ctx.Err() != nil {
			return status.FromContextError(ctx.Err()).Err()
		}
		return status.Errorf(codes.Unavailable, "this node cannot catch up with the leader, so it cannot answer with every change committed before your call (%v): retry, or ask another node", err)
	}
	return nil
}

// access returns what org may see of set's signals.
func (s *setService) access(org *federation.Org, set string) hashfedv1.SetAccess {
	switch {
	case s.n.state.CanRead(org.Name, set):
		return hashfedv1.SetAccess_SET_ACCESS_VALUES
	case org.HasRole(federation.RoleAuditor):
		return hashfedv1.SetAccess_SET_ACCESS_DIGESTS
	default:
		return hashfedv1.SetAccess_SET_ACCESS_NONE
	}
}

// readAccess returns the caller's access to set's signals, or the gRPC
// error for a set that does not exist or that the caller may not list.
func (s *setService) readAccess(ctx context.Context, set string) (hashfedv1.SetAccess, error) {
	org := callerFrom(ctx).Org
	if !s.n.state.HasSet(set) {
		return 0, unknownSet(set)
	}
	a := s.access(org, set)
	if a == hashfedv1.SetAccess_SET_ACCESS_NONE {
		return 0, status.Errorf(codes.PermissionDenied, "org %q may not see the signals of set %q: only its owner, the orgs it names as readers, and auditors (without values) may. "+
			"Ask org %q to have your org added as a reader of %s (a set-readers governance act); GetSet (hashfed set show) tells anyone how many signals it holds", org.Name, set, ownerOf(set), set)
	}
	return a, nil
}

func unknownSet(set string) error {
	return status.Errorf(codes.NotFound, "set %q does not exist (sets are named <owner org>/<list>; hashfed gov show lists them)", set)
}

func ownerOf(set string) string { return federation.Set{Name: set}.Owner() }

func (s *setService) GetSet(ctx context.Context, req *hashfedv1.GetSetRequest) (*hashfedv1.GetSetResponse, error) {
	if err := s.catchUp(ctx); err != nil {
		return nil, err
	}
	name := req.GetSet()
	set, ok := s.n.state.Registry().Sets[name]
	if !ok {
		return nil, unknownSet(name)
	}
	count, err := s.n.state.SetCount(name)
	if err != nil {
		return nil, rejectStatus(err)
	}
	out := &hashfedv1.GetSetResponse{
		Set:          name,
		Owner:        set.Owner(),
		Readers:      set.Readers,
		Count:        count,
		NextSequence: s.n.state.NextSequence(set.Owner(), name),
		Access:       s.access(callerFrom(ctx).Org, name),
	}
	for _, t := range set.Types {
		out.Types = append(out.Types, t.Proto())
	}
	return out, nil
}

func (s *setService) ListSignals(ctx context.Context, req *hashfedv1.ListSignalsRequest) (*hashfedv1.ListSignalsResponse, error) {
	set := req.GetSet()
	size := int(req.GetPageSize())
	switch {
	case size < 0:
		return nil, status.Errorf(codes.InvalidArgument, "page_size %d is negative: give 1 to %d, or 0 for %d", size, maxPageSize, defaultPageSize)
	case size == 0:
		size = defaultPageSize
	case size > maxPageSize:
		size = maxPageSize
	}
	if req.GetMinDisputes() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "min_disputes %d is negative: give 0 to list every signal, or the least number of disputing orgs", req.GetMinDisputes())
	}
	after, err := parsePageToken(set, req.GetPageToken())
	if err != nil {
		return nil, err
	}
	// Later pages continue a listing the first page's catch-up started;
	// catching up for each would put a Raft barrier in the log per page.
	if req.GetPageToken() == "" {
		if err := s.catchUp(ctx); err != nil {
			return nil, err
		}
	}
	access, err := s.readAccess(ctx, set)
	if err != nil {
		return nil, err
	}
	out := &hashfedv1.ListSignalsResponse{}
	used := 0 // bytes of the page's signals
	for {
		next, err := s.n.state.ListSignals(set, after, min(pageChunk, size-len(out.Signals)), req.GetMinDisputes(), func(ss *federation.SignalState) error {
			sig := setSignal(ss, access)
			used += proto.Size(sig)
			out.Signals = append(out.Signals, sig)
			return nil
		})
		if err != nil {
			return nil, rejectStatus(err)
		}
		after = next
		if next == "" || len(out.Signals) >= size || used >= pageBytes {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, status.FromContextError(err).Err()
		}
	}
	if after != "" {
		out.NextPageToken = pageToken(set, after)
	}
	return out, nil
}

// A page token is the unpadded URL-safe base64 of the set's name, a
// newline and the state's own token, so a token given out for one set is
// refused for another.
func pageToken(set, after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(set + "\n" + after))
}

func parsePageToken(set, token string) (string, error) {
	if token == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	name, after, ok := strings.Cut(string(b), "\n")
	if err != nil || !ok || after == "" {
		return "", status.Errorf(codes.InvalidArgument, "page_token %q is not one this node gave out: pass the next_page_token of the previous page unchanged, or an empty page_token to start again", shorten(token))
	}
	if name != set {
		return "", status.Errorf(codes.InvalidArgument, "page_token %q continues a listing of set %q, not %q: pass an empty page_token to start listing %s", shorten(token), name, set, set)
	}
	return after, nil
}

func shorten(s string) string {
	if len(s) > 64 {
		return s[:61] + "..."
	}
	return s
}

// setSignal converts a signal's state for a caller with access a, which
// is VALUES or DIGESTS.
func setSignal(ss *federation.SignalState, a hashfedv1.SetAccess) *hashfedv1.SetSignal {
	sig := &hashfedv1.SetSignal{
		Type:      ss.Type.Proto(),
		Value:     ss.Value,
		Labels:    ss.Labels,
		AddedAt:   ss.AddedAt,
		ChangedAt: ss.ChangedAt,
		Tally: &hashfedv1.Tally{
			TruePositive:  ss.Tally.TruePositive,
			FalsePositive: ss.Tally.FalsePositive,
			Disputed:      ss.Tally.Disputed,
		},
	}
	if a != hashfedv1.SetAccess_SET_ACCESS_VALUES {
		sum := sha256.Sum256([]byte(ss.Value))
		sig.Value, sig.ValueSha256 = "", hex.EncodeToString(sum[:])
	}
	return sig
}

func (s *setService) LookupSignal(ctx context.Context, req *hashfedv1.LookupSignalRequest) (*hashfedv1.LookupSignalResponse, error) {
	t, err := federation.SignalTypeFromProto(req.GetType())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "signal type %v is not one hashfed knows: name one of md5, sha1, sha256, pdq, photodna", req.GetType())
	}
	if err := s.catchUp(ctx); err != nil {
		return nil, err
	}
	access, err := s.readAccess(ctx, req.GetSet())
	if err != nil {
		return nil, err
	}
	ss, err := s.n.state.LookupSignal(req.GetSet(), t, req.GetValue())
	if err != nil {
		return nil, rejectStatus(err)
	}
	if ss == nil {
		return &hashfedv1.LookupSignalResponse{}, nil
	}
	return &hashfedv1.LookupSignalResponse{Found: true, Signal: setSignal(ss, access)}, nil
}
