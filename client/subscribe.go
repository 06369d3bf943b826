package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// An Update is one verified ledger entry.
type Update struct {
	// Index is the entry's ledger index; resume after it with cursor Index+1.
	Index int64
	Entry *hashfedv1.LedgerEntry
	// Statement is set for statement entries, verified against its org's key.
	// Statement.Op says what the contribution does: [federation.OpAdd],
	// [federation.OpRetract] (a tombstone: Signals are the signals taken out
	// of the set), [federation.OpRelabel] or [federation.OpFeedback].
	Statement *federation.Statement
	// Act is set for governance entries, verified and applied.
	Act *federation.Act
	// Signals are the statement's values that the subscription selects (see
	// [SubscribeOptions.Types] and [SubscribeOptions.Labels]), checked
	// against its digest; nil when the node sent no payload (a set the
	// caller does not read or did not ask for, or a statement the filters
	// leave out). For a retraction they are the tombstones: the signals taken
	// out of the set.
	Signals []*hashfedv1.Signal
	// Payload is the statement's whole payload, checked against its digest,
	// before the subscription's filters narrowed it to Signals; nil when the
	// node sent none.
	Payload *hashfedv1.Payload
	// Reason is the payload's reason (a retraction's, or a relabel's or a
	// feedback's note).
	Reason string
	// Leaf and RawPayload are the entry and its payload exactly as the node
	// sent them (RawPayload nil when none came), for a [Mirror].
	Leaf, RawPayload []byte
}

// SubscribeOptions say which values a subscription delivers. Every entry
// arrives whatever the options, so the cursor advances through all of them;
// the options choose which statements come with their payload, and which of
// a payload's signals [Update.Signals] keeps. The node applies the same rule
// to the signed statement, so the client checks that every payload the node
// left out was left out rightly.
type SubscribeOptions struct {
	// Sets are the sets whose values to receive; empty: every set the
	// caller's org reads. A set the org may not read fails the subscription
	// with PermissionDenied naming it, an unknown set with NotFound.
	Sets []string
	// Types, if not empty, selects the signals of these types: a statement
	// holding none of them comes without payload.
	Types []federation.SignalType
	// Labels, if not empty, selects the added signals carrying at least one
	// of these labels: an add carrying none of them comes without payload.
	// Retractions, relabels and feedback are never filtered by label: a
	// retraction or a relabel (which may move a signal out of the labels
	// followed) must reach everyone who may hold its signals.
	Labels []string
	// StopAtEnd ends the subscription, without error, once every entry
	// committed before the call (through any node) has been passed to fn.
	// Otherwise it follows new entries until ctx ends.
	StopAtEnd bool
}

// check validates the options and the cursor before anything is sent.
func (o SubscribeOptions) check(cursor int64) error {
	if cursor < 0 {
		return fmt.Errorf("cursor %d is negative: the first entry is 0, and a subscriber that processed entry i resumes from i+1", cursor)
	}
	for _, t := range o.Types {
		if _, err := federation.ParseSignalType(string(t)); err != nil {
			return fmt.Errorf("subscription filter: %w", err)
		}
	}
	for _, l := range o.Labels {
		if l == "" {
			return errors.New("subscription filter: an empty label")
		}
	}
	return nil
}

func (o SubscribeOptions) request(cursor int64) *hashfedv1.SubscribeRequest {
	req := &hashfedv1.SubscribeRequest{Cursor: cursor, Sets: o.Sets, StopAtEnd: o.StopAtEnd, Labels: o.Labels}
	for _, t := range o.Types {
		req.Types = append(req.Types, t.Proto())
	}
	return req
}

// selects reports whether the options select st's payload, given that the
// caller's org reads its set. It is the node's rule, judged on the signed
// statement.
func (o SubscribeOptions) selects(st *federation.Statement) bool {
	types := make([]string, len(o.Types))
	for i, t := range o.Types {
		types[i] = string(t)
	}
	return federation.SelectsPayload(st, o.Sets, types, o.Labels)
}

// keeps reports whether the options keep one signal of a statement of op.
func (o SubscribeOptions) keeps(op string, s *hashfedv1.Signal) bool {
	if len(o.Types) > 0 {
		t, _ := federation.SignalTypeFromProto(s.GetType())
		if !slices.Contains(o.Types, t) {
			return false
		}
	}
	if len(o.Labels) > 0 && labelled(op) && !slices.ContainsFunc(s.GetLabels(), func(l string) bool { return slices.Contains(o.Labels, l) }) {
		return false
	}
	return true
}

// labelled reports whether a label filter applies to statements of op.
func labelled(op string) bool { return op == federation.OpAdd }

// Subscribe streams entries from cursor on and calls fn with each, in ledger
// order, after verifying it. It stops when ctx ends, the stream fails, or fn
// returns an error (io.EOF from fn stops it without error). Any entry that
// fails verification stops the stream with an error naming the entry.
//
// It is [Client.Follow] with only [SubscribeOptions.Sets] set.
func (c *Client) Subscribe(ctx context.Context, cursor int64, sets []string, fn func(*Update) error) error {
	return c.Follow(ctx, cursor, SubscribeOptions{Sets: sets}, fn)
}

// CatchUp is Subscribe that returns nil once every entry committed before the
// call (through any node) has been passed to fn.
func (c *Client) CatchUp(ctx context.Context, cursor int64, sets []string, fn func(*Update) error) error {
	return c.Follow(ctx, cursor, SubscribeOptions{Sets: sets, StopAtEnd: true}, fn)
}

// Follow streams entries from cursor on and calls fn with each, in ledger
// order, after verifying it, with the values opts selects. It stops when ctx
// ends, when fn returns an error (io.EOF from fn stops it without error),
// with opts.StopAtEnd once caught up, or when the stream fails: any entry
// that fails verification stops it with an error naming the entry, and so
// does a failure of the node. A [Follower] moves to another node instead.
func (c *Client) Follow(ctx context.Context, cursor int64, opts SubscribeOptions, fn func(*Update) error) error {
	if err := opts.check(cursor); err != nil {
		return err
	}
	s := newSubscription(c, cursor, opts, fn)
	_, err := s.attempt(ctx, c)
	var nf *nodeFailure
	if errors.As(err, &nf) {
		return nf.err
	}
	return err
}

// A Follower follows the ledger through any of several nodes of one
// federation. When its node fails, or the connection to it does, it resumes
// on another node from the entry after the last one passed to fn, keeping
// what it has verified (the registry and every (org, set) contribution
// number), so fn sees every entry exactly once, in ledger order, however
// often it moves.
//
// It moves for failures that are not the caller's: the node is unavailable
// or shutting down, the connection broke or timed out, or the node served
// an entry that fails verification (a bad leaf, signature or payload, a gap
// or a repeat), whose evidence it keeps in [Follower.Bad]. A refusal
// (PermissionDenied, NotFound, InvalidArgument, OutOfRange) and an error
// from fn end [Follower.Follow] instead, and so does an entry that every
// node serves in a form that fails verification.
type Follower struct {
	// Clients are connections to nodes of the same federation, made with
	// the same genesis and identity. Follow starts with the first and moves
	// round them in order.
	Clients []*Client
	// Log receives one line each time the follower moves to another node
	// (or, with one client, reconnects); nil logs nothing.
	Log *slog.Logger
	// Attempts is how many connection attempts in a row may fail before
	// Follow gives up; an attempt that the node accepts starts the count
	// afresh. Zero means 5 for each client; negative: never give up (until
	// ctx ends).
	Attempts int
	// MaxBackoff bounds the pause between attempts. The first move after
	// progress is immediate; each further failure without an entry in
	// between doubles the pause, from 250ms up to MaxBackoff (zero: 5s).
	MaxBackoff time.Duration
	// Bad is set by Follow: the evidence against each node that served an
	// entry failing verification, in the order found. Follow moved past
	// each to another node; it fails only when every node served the entry
	// due in a form that fails verification.
	Bad []*BadNodeError
}

// allBadAt reports whether every recorded bad node failed at entry index.
func allBadAt(badAt map[int]*BadNodeError, index int64) bool {
	for _, b := range badAt {
		if b.Index != index {
			return false
		}
	}
	return true
}

// Follow is [Client.Follow] through f's nodes, moving to the next one when
// a node fails.
func (f *Follower) Follow(ctx context.Context, cursor int64, opts SubscribeOptions, fn func(*Update) error) error {
	if len(f.Clients) == 0 {
		return errors.New("follower: no nodes to follow")
	}
	for _, c := range f.Clients[1:] {
		if !bytes.Equal(c.doc, f.Clients[0].doc) || c.identity != f.Clients[0].identity {
			return fmt.Errorf("follower: the client for %s has another genesis or identity than the one for %s", c.conn.Target(), f.Clients[0].conn.Target())
		}
	}
	if err := opts.check(cursor); err != nil {
		return err
	}
	attempts := f.Attempts
	if attempts == 0 {
		attempts = 5 * len(f.Clients)
	}
	maxBackoff := f.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = 5 * time.Second
	}
	s := newSubscription(f.Clients[0], cursor, opts, fn)
	f.Bad = nil
	var (
		failed  int           // attempts in a row the node did not accept
		backoff time.Duration // pause before the next attempt
		// badAt holds, per client, the entry at which it last served
		// something that fails verification.
		badAt = map[int]*BadNodeError{}
	)
	for i := 0; ; i = (i + 1) % len(f.Clients) {
		if b := badAt[i]; b != nil && b.Index == s.next {
			if len(badAt) == len(f.Clients) && allBadAt(badAt, s.next) {
				var msgs []string
				for j := range f.Clients {
					msgs = append(msgs, badAt[j].Error())
				}
				return fmt.Errorf("every node served entry %d in a form that fails verification:\n  %s", s.next, strings.Join(msgs, "\n  "))
			}
			continue // it failed at this very entry: try the others first
		}
		c := f.Clients[i]
		before := s.next
		accepted, err := s.attempt(ctx, c)
		var nf *nodeFailure
		if !errors.As(err, &nf) {
			return err
		}
		if nf.bad != nil {
			badAt[i] = nf.bad
			f.Bad = append(f.Bad, nf.bad)
			accepted = false // a node serving bad entries earns no fresh attempts
		}
		if accepted {
			failed = 0
		} else if failed++; attempts > 0 && failed >= attempts {
			return fmt.Errorf("no node could serve the subscription from entry %d (%d attempts in a row failed; the last, on %s): %w", s.resumeAt(), failed, nf.node, nf.err)
		}
		if s.next > before {
			backoff = 0
		}
		to := f.Clients[(i+1)%len(f.Clients)]
		if f.Log != nil {
			f.Log.WarnContext(ctx, "subscription: node failed, resuming on another node", "failed", nf.node, "next", to.conn.Target(), "cursor", s.resumeAt(), "pause", backoff, "err", nf.err)
		}
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
		}
		backoff = min(max(2*backoff, 250*time.Millisecond), maxBackoff)
	}
}

// A nodeFailure is a failure of one node or of the connection to it, which
// another node, or the same one later, may not share.
type nodeFailure struct {
	node string
	err  error
	// bad is set when the node answered, but with an entry that fails
	// verification (err is then a *[BadNodeError]).
	bad *BadNodeError
}

// A BadNodeError is the evidence against a node that served an entry that
// fails verification: which entry, the SHA-256 of the leaf bytes it served,
// and why they do not verify.
type BadNodeError struct {
	Node string
	// Index is the entry that was due.
	Index int64
	// LeafSHA256 is the hex SHA-256 of the leaf as served.
	LeafSHA256 string
	Err        error
}

func (e *BadNodeError) Error() string {
	return fmt.Sprintf("node %s served entry %d (leaf sha256 %s) that fails verification: %s", e.Node, e.Index, e.LeafSHA256, e.Err)
}

func (e *BadNodeError) Unwrap() error { return e.Err }

// badNode wraps a verification failure of entry index as served by c's node.
func badNode(c *Client, index int64, leaf []byte, err error) error {
	sum := sha256.Sum256(leaf)
	b := &BadNodeError{Node: c.conn.Target(), Index: index, LeafSHA256: hex.EncodeToString(sum[:]), Err: err}
	return &nodeFailure{node: b.Node, err: b, bad: b}
}

func (e *nodeFailure) Error() string { return e.err.Error() }
func (e *nodeFailure) Unwrap() error { return e.err }

// nodeError classifies err, from a call to the node c: a failure of the
// node or the connection becomes a *nodeFailure; anything else (a refusal,
// or the caller's own ctx ending) is returned as it is. Before the node
// accepted the subscription (connected false), a failure may be a refused
// handshake, and gets [Explain]'s hints.
func nodeError(ctx context.Context, c *Client, err error, connected bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if !connected {
		err = Explain(err)
	}
	if s, ok := status.FromError(err); ok {
		switch s.Code() {
		case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.Canceled:
			return &nodeFailure{node: c.conn.Target(), err: err}
		case codes.Internal:
			// A stream cut by a dying peer can end with an HTTP/2 reset.
			if strings.Contains(s.Message(), "RST_STREAM") {
				return &nodeFailure{node: c.conn.Target(), err: err}
			}
		}
	}
	return err
}

// A subscription is what one Follow has verified so far; it carries over
// from one node to the next.
type subscription struct {
	genesis *Client // for the genesis and the caller's identity
	opts    SubscribeOptions
	fn      func(*Update) error
	// cursor is the first entry for fn; entries before it are verified
	// (statements only) to rebuild the registry and the sequences.
	cursor int64
	// next is the next entry to verify: [0, next) are, and those from
	// cursor on were passed to fn.
	next int64
	reg  *federation.Registry
	seqs sequences
	// mustReach is the size of the latest checkpoint cosigned by a majority
	// of voting orgs seen at the start of a catch-up: a node that ends the
	// catch-up before it cut the stream short.
	mustReach int64
}

func newSubscription(c *Client, cursor int64, opts SubscribeOptions, fn func(*Update) error) *subscription {
	return &subscription{genesis: c, opts: opts, fn: fn, cursor: cursor, reg: federation.NewRegistry(c.genesis), seqs: sequences{}}
}

// resumeAt is the first entry the subscription has not passed to fn.
func (s *subscription) resumeAt() int64 { return max(s.next, s.cursor) }

// attempt runs the subscription on c's node until it ends: nil once done
// (caught up, or fn returned io.EOF), a *nodeFailure if the node or the
// connection failed, any other error if the subscription must end.
// accepted reports whether the node accepted the subscription request.
func (s *subscription) attempt(ctx context.Context, c *Client) (accepted bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if s.opts.StopAtEnd {
		// Before the stream: the node's end of the catch-up must cover
		// the checkpoint.
		r, err := c.Ledger.GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{})
		if err != nil {
			return false, nodeError(ctx, c, err, false)
		}
		sc, err := CheckpointPolicy{}.accept(s.genesis.genesis, r.GetSignedCheckpoint())
		if err != nil {
			return false, fmt.Errorf("the checkpoint of node %s: %w", c.conn.Target(), err)
		}
		s.mustReach = max(s.mustReach, sc.Size)
	}
	// The node checks the cursor (catching up with the leader if it is past
	// its end) and the filters before it accepts.
	stream, err := c.Subscriber.Subscribe(ctx, s.opts.request(s.resumeAt()))
	if err != nil {
		return false, nodeError(ctx, c, err, false)
	}
	md, err := stream.Header()
	if err != nil {
		return false, nodeError(ctx, c, err, false)
	}
	if md == nil {
		// The stream ended before the node accepted it: Recv has its status.
		if _, err := stream.Recv(); err != io.EOF {
			if err == nil {
				err = fmt.Errorf("node %s sent an entry before accepting the subscription", c.conn.Target())
			}
			return false, nodeError(ctx, c, err, false)
		}
	}
	accepted = true
	if err := s.replay(ctx, c, true); err != nil {
		return true, err
	}
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			if !s.opts.StopAtEnd {
				return true, &nodeFailure{node: c.conn.Target(), err: fmt.Errorf("node %s ended the stream at entry %d without an error", c.conn.Target(), s.next)}
			}
			if s.next < s.mustReach {
				return true, fmt.Errorf("node %s ended the catch-up at entry %d, before the %d entries of its cosigned checkpoint", c.conn.Target(), s.next, s.mustReach)
			}
			return true, nil
		}
		if err != nil {
			return true, nodeError(ctx, c, err, true)
		}
		if msg.GetIndex() != s.next {
			return true, badNode(c, s.next, msg.GetEntry(), fmt.Errorf("node sent entry %d where entry %d was due: refusing a gap or repeat (node %s)", msg.GetIndex(), s.next, c.conn.Target()))
		}
		u, err := s.verify(msg.GetIndex(), msg.GetEntry(), msg.GetPayload())
		if err != nil {
			return true, badNode(c, s.next, msg.GetEntry(), err)
		}
		if err := s.fn(u); err != nil {
			if err == io.EOF {
				return true, nil
			}
			return true, err
		}
		s.next++
	}
}

// replay verifies entries [next, cursor) as served by c's node, statements
// only, to bring the registry and contribution numbers up to the cursor.
// Governance acts need real operator signatures, so a node can at worst
// withhold one, which makes later statements fail to verify: it fails
// closed, and cannot slip in a key of its own. connected says whether the
// node already accepted a call on this connection (see nodeError).
func (s *subscription) replay(ctx context.Context, c *Client, connected bool) error {
	for s.next < s.cursor {
		end := min(s.cursor, s.next+maxEntriesPerCall)
		r, err := c.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: s.next, End: end})
		if err != nil {
			return nodeError(ctx, c, err, connected)
		}
		if len(r.GetEntries()) == 0 {
			return fmt.Errorf("node %s returned no entries for [%d, %d)", c.conn.Target(), s.next, end)
		}
		for _, leaf := range r.GetEntries() {
			if s.next == end {
				return fmt.Errorf("node %s returned more entries than asked for [%d, %d)", c.conn.Target(), s.next, end)
			}
			if _, err := s.verify(s.next, leaf, nil); err != nil {
				return badNode(c, s.next, leaf, err)
			}
			s.next++
		}
	}
	return nil
}

// verify checks entry index against the subscription's state and advances
// it: the registry, the contribution numbers, and (from the cursor on) that
// the node sent every payload it should have. It returns the update with
// Signals narrowed to what the options select.
func (s *subscription) verify(index int64, leaf, payload []byte) (*Update, error) {
	u, err := s.genesis.VerifyEntry(s.reg, index, leaf, payload)
	if err != nil {
		return nil, err
	}
	st := u.Statement
	if st == nil {
		return u, nil
	}
	// Contributions are numbered per (org, set): a dropped, replayed or
	// renumbered one breaks the sequence.
	// The state advances only once the entry verified whole, so that
	// another node can serve it again after this one served it wrongly.
	if err := s.seqs.check(st); err != nil {
		return nil, fmt.Errorf("entry %d: %w", u.Index, err)
	}
	if index >= s.cursor && u.Payload == nil && s.opts.selects(st) && s.reg.CanRead(s.genesis.identity.Org, st.Set) {
		return nil, fmt.Errorf("entry %d: the node withheld the payload of %s's contribution %d to %s, which your org reads and this subscription selects", u.Index, st.Org, st.Sequence, st.Set)
	}
	s.seqs.advance(st)
	if index < s.cursor {
		return u, nil
	}
	if u.Payload != nil && (len(s.opts.Types) > 0 || len(s.opts.Labels) > 0) {
		u.Signals = nil
		for _, sig := range u.Payload.GetSignals() {
			if s.opts.keeps(st.Op, sig) {
				u.Signals = append(u.Signals, sig)
			}
		}
	}
	return u, nil
}

// sequences tracks the next contribution number per (org, set).
type sequences map[seqKey]uint64

// check reports whether st carries the contribution number due.
func (s sequences) check(st *federation.Statement) error {
	if want := max(s[seqKey{st.Org, st.Set}], 1); st.Sequence != want {
		return fmt.Errorf("contribution %d of org %q to %s arrived where %d was due: a contribution was dropped, replayed or reordered", st.Sequence, st.Org, st.Set, want)
	}
	return nil
}

// advance records st, which [sequences.check] accepted.
func (s sequences) advance(st *federation.Statement) { s[seqKey{st.Org, st.Set}] = st.Sequence + 1 }

// VerifyEntry decodes one ledger entry and checks it against reg, the
// registry as of the entry (see [Client.Registry]): the genesis entry must
// hold exactly the caller's genesis document; a governance act must carry
// the approvals of a threshold of operator orgs, and is applied to reg; a
// statement must verify under the key its org held at that index, and its
// payload (if any) must match it.
func (c *Client) VerifyEntry(reg *federation.Registry, index int64, leaf, payload []byte) (*Update, error) {
	e, _, err := federation.DecodeEntry(leaf)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	u := &Update{Index: index, Entry: e, Leaf: leaf}
	if len(payload) > 0 {
		u.RawPayload = payload
	}
	if g := e.GetGenesis(); g != nil {
		if index != 0 {
			return nil, fmt.Errorf("entry %d: a genesis entry may only be entry 0", index)
		}
		if !bytes.Equal(g.GetDocument(), c.doc) {
			return nil, fmt.Errorf("entry 0: the ledger's genesis document differs from the genesis file given to this client")
		}
		return u, nil
	}
	if index == 0 {
		return nil, fmt.Errorf("entry 0 is not the genesis entry")
	}
	if gov := e.GetGovernance(); gov != nil {
		if u.Act, err = c.applyAct(reg, gov.GetEnvelope(), index); err != nil {
			return nil, fmt.Errorf("entry %d: %w", index, err)
		}
		return u, nil
	}
	st, err := openStatement(reg, index, e.GetStatement().GetEnvelope())
	if err != nil {
		return nil, err
	}
	u.Statement = st
	if len(payload) > 0 {
		p, err := federation.CheckPayload(st, payload)
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", index, err)
		}
		u.Payload, u.Signals, u.Reason = p, p.Signals, p.Reason
	}
	return u, nil
}

// applyAct verifies a governance act against reg, the registry just before
// index, and applies it.
func (c *Client) applyAct(reg *federation.Registry, env []byte, index int64) (*federation.Act, error) {
	act, _, err := reg.CheckAct(c.genesis.Federation, env, index)
	if err != nil {
		return nil, fmt.Errorf("governance act: %w", err)
	}
	if err := reg.ApplyAct(act, index); err != nil {
		return nil, fmt.Errorf("governance act: %w", err)
	}
	return act, nil
}

// openStatement verifies a statement under the key its org held at index.
func openStatement(reg *federation.Registry, index int64, env []byte) (*federation.Statement, error) {
	claimed, err := federation.PeekStatement(env)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	key, err := reg.KeyAt(claimed.Org, index)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", index, err)
	}
	st, err := federation.OpenStatement(env, key)
	if err != nil {
		return nil, fmt.Errorf("entry %d: statement of org %q: %w", index, claimed.Org, err)
	}
	return st, nil
}

// Registry returns the registry as of entry index, replayed and verified
// from the genesis through the node's entries (statements only).
func (c *Client) Registry(ctx context.Context, index int64) (*federation.Registry, error) {
	s := newSubscription(c, index, SubscribeOptions{}, nil)
	if err := s.replay(ctx, c, false); err != nil {
		var nf *nodeFailure
		if errors.As(err, &nf) {
			return nil, nf.err
		}
		return nil, err
	}
	return s.reg, nil
}
