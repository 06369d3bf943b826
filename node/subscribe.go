package node

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

type subscribeService struct {
	hashfedv1.UnimplementedSubscribeServiceServer
	n *Node
}

// subscribeBatch is how many entries one read of the ledger takes. It is
// what bounds a stream's memory on the node: the loop reads one batch of
// leaves, then sends them one by one, reading each payload just before its
// send, and stream.Send blocks while the client's flow-control window is
// full. A stream therefore holds at most one batch of leaves and one
// payload beyond what gRPC has accepted, however slow its consumer.
const subscribeBatch = 256

// A subscribeFilter is a request's choice of payloads. It is judged against
// the signed statement only, so a client can check every omission; the
// client library applies the same rule (client.SubscribeOptions).
type subscribeFilter struct {
	sets   []string
	types  []string // signal type names, as statements list them
	labels []string
}

// newSubscribeFilter validates a request's filters.
func newSubscribeFilter(req *hashfedv1.SubscribeRequest) (subscribeFilter, error) {
	f := subscribeFilter{sets: req.GetSets(), labels: req.GetLabels()}
	for _, p := range req.GetTypes() {
		t, err := federation.SignalTypeFromProto(p)
		if err != nil {
			return f, status.Errorf(codes.InvalidArgument, "types: %v; use md5, sha1, sha256, pdq or photodna", err)
		}
		f.types = append(f.types, string(t))
	}
	for _, l := range f.labels {
		if l == "" || !utf8.ValidString(l) || strings.ContainsAny(l, "\x00\n\r\t,") {
			return f, status.Errorf(codes.InvalidArgument, "labels: %q is not a label (labels are non-empty UTF-8 without commas, tabs or newlines)", l)
		}
	}
	return f, nil
}

// selects reports whether a statement's payload passes the filter (the
// set's read permission is checked apart); see [federation.SelectsPayload].
func (f subscribeFilter) selects(st *federation.Statement) bool {
	return federation.SelectsPayload(st, f.sets, f.types, f.labels)
}

// readAheadProbes holds, for nodes under test only, a function that each
// subscription stream calls with how many entries it has read from the
// state so far and how many of them gRPC has taken. Production nodes have
// none.
var readAheadProbes sync.Map // *Node -> func(read, sent int64)

func (s *subscribeService) Subscribe(req *hashfedv1.SubscribeRequest, stream grpc.ServerStreamingServer[hashfedv1.SubscribeResponse]) error {
	ctx := stream.Context()
	org := callerFrom(ctx).Identity.Org
	state := s.n.state
	cursor := req.GetCursor()
	if cursor < 0 {
		return status.Errorf(codes.InvalidArgument, "cursor %d is negative: the first entry is 0, and a client that processed entry i resumes from i+1", cursor)
	}
	filter, err := newSubscribeFilter(req)
	if err != nil {
		return err
	}
	for _, set := range filter.sets {
		if err := readable(state, org, set); err != nil {
			return err
		}
	}
	// A cursor past this node's end may only mean the node lags the
	// leader: catch up before judging it. A catch-up (stop_at_end) must
	// include everything committed before the call, on any node.
	stopAt := int64(-1)
	if req.GetStopAtEnd() || cursor > state.Size() {
		if err := s.syncLeader(ctx); err != nil {
			if size := state.Size(); cursor > size {
				return status.Errorf(codes.Unavailable, "cursor %d is past the end of this node's ledger (%d entries) and the node cannot catch up with the leader to serve it (%v): retry, or subscribe through another node", cursor, size, err)
			}
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return status.Errorf(codes.Unavailable, "this node cannot catch up with the leader, so it cannot tell where the ledger ends (%v): retry, or subscribe through another node", err)
		}
		if req.GetStopAtEnd() {
			stopAt = state.Size()
		}
	}
	if size := state.Size(); cursor > size {
		return status.Errorf(codes.OutOfRange, "cursor %d is past the end of the ledger, which holds %d entries: resume from a cursor of at most %d (0 reads everything again). "+
			"A cursor beyond the end was not issued by this ledger: it may belong to another federation (check --genesis and --node), or to a federation that was created afresh since", cursor, size, size)
	}
	// Accepted: tell the client now, before the first entry, which may be
	// far off for a subscriber at the end of the ledger.
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	probe := func(read, sent int64) {}
	if p, ok := readAheadProbes.Load(s.n); ok {
		probe = p.(func(read, sent int64))
	}
	var read, sent int64
	for {
		changed := state.Changed()
		size := state.Size()
		// Governance may have changed the caller's rights since the last
		// look; the act that did is itself a change, so this runs after it.
		if state.Member(org) == nil {
			return status.Errorf(codes.PermissionDenied, "org %q is no longer a member of the federation", org)
		}
		for _, set := range filter.sets {
			if err := readable(state, org, set); err != nil {
				return err
			}
		}
		for cursor < size {
			select {
			case <-s.n.stop:
				return shuttingDown(cursor)
			default:
			}
			end := min(size, cursor+subscribeBatch)
			leaves, err := state.Entries(cursor, end)
			if err != nil {
				return status.Errorf(codes.Internal, "reading ledger entries [%d, %d): %v", cursor, end, err)
			}
			read += int64(len(leaves))
			probe(read, sent)
			for _, leaf := range leaves {
				msg := &hashfedv1.SubscribeResponse{Index: cursor, Entry: leaf}
				if _, st, err := federation.DecodeEntry(leaf); err == nil && st != nil && filter.selects(st) && state.CanRead(org, st.Set) {
					msg.Payload = state.Payload(cursor)
				}
				// Send blocks while the client's flow-control window is
				// full: a slow consumer slows its own stream, not the node.
				if err := stream.Send(msg); err != nil {
					return err
				}
				sent++
				probe(read, sent)
				cursor++
				if cursor == stopAt {
					return nil
				}
			}
		}
		if stopAt >= 0 && cursor >= stopAt {
			return nil
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.n.stop:
			return shuttingDown(cursor)
		case <-changed:
		}
	}
}

// subscribeSyncTimeout bounds how long a subscription waits to catch up
// with the leader before it starts.
const subscribeSyncTimeout = 10 * time.Second

// syncLeader catches up with the leader (see consensus.Node.Sync). Sync
// changes nothing, so a failure (an election under way, leadership lost
// during the barrier) is retried until subscribeSyncTimeout.
func (s *subscribeService) syncLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, subscribeSyncTimeout)
	defer cancel()
	for {
		err := s.n.cons.Sync(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-s.n.stop:
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readable returns the gRPC error for a subscription to set's values that
// org may not have, or nil.
func readable(state *federation.State, org, set string) error {
	if !state.HasSet(set) {
		return status.Errorf(codes.NotFound, "set %q does not exist (sets are named <owner org>/<list>)", set)
	}
	if !state.CanRead(org, set) {
		return status.Errorf(codes.PermissionDenied, "org %q may not read the values of set %q: only its owner and the orgs it names as readers may. "+
			"Ask the set's owner to have your org added as a reader (a set-readers governance act), or subscribe without naming the set to receive its statements only", org, set)
	}
	return nil
}

func shuttingDown(cursor int64) error {
	return status.Error(codes.Unavailable, fmt.Sprintf("node is shutting down: resume from cursor %d on another node", cursor))
}
