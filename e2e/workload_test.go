//go:build e2e

package e2e

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/chaos"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Workload timing.
const (
	publishTimeout = 5 * time.Second       // one publish attempt
	publishPause   = 50 * time.Millisecond // between a publisher's contributions
	readTimeout    = 30 * time.Second      // one whole-ledger read
	// drainTimeout bounds how long a stopped publisher keeps retrying the
	// contribution it was publishing.
	drainTimeout = 90 * time.Second
)

// A publisher publishes numbered contributions to one set, one at a time,
// through one node, moving to the next node after an error. A contribution
// is retried with the same sequence number, and the same bytes, until a node
// acknowledges it or answers AlreadyExists.
type publisher struct {
	id      int // the recorder's client number
	set     string
	signer  *federation.Signer
	clients []*client.Client // one per node, its own node first
	rec     *chaos.Recorder

	acked, attempts atomic.Int64
	mu              sync.Mutex
	failures        map[string]int // Failed outcomes by message
}

// contribution builds contribution seq of p's set: one MD5 signal, distinct
// for every (set, seq).
func (p *publisher) contribution(seq uint64) (*hashfedv1.Contribution, error) {
	sum := md5.Sum(fmt.Appendf(nil, "hashfed e2e %s %d", p.set, seq))
	sig := &hashfedv1.Signal{Type: federation.MD5.Proto(), Value: hex.EncodeToString(sum[:]), Labels: []string{"e2e"}}
	c, _, err := federation.BuildChange(p.signer, federationName, p.set, seq, federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{sig}}, time.Now().UTC().Format(time.RFC3339))
	return c, err
}

// run publishes until stop is closed, then finishes the contribution under
// way (until it is acknowledged, or ctx ends, or drainTimeout passes).
func (p *publisher) run(ctx context.Context, stop <-chan struct{}) error {
	node := 0
	for seq := uint64(1); ; seq++ {
		select {
		case <-stop:
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		contrib, err := p.contribution(seq)
		if err != nil {
			return err
		}
		var drainBy time.Time
		for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
			p.attempts.Add(1)
			done := p.rec.Publish(p.id, chaos.Contribution{Set: p.set, Seq: seq})
			actx, cancel := context.WithTimeout(ctx, publishTimeout)
			res, err := p.clients[node].Publisher.Publish(actx, &hashfedv1.PublishRequest{Contribution: contrib})
			cancel()
			out := chaos.OutcomeOf(err)
			var index uint64
			if out == chaos.OK {
				index = uint64(res.GetIndex())
			}
			done(out, index)
			if out == chaos.OK || out == chaos.AlreadyPresent {
				p.acked.Add(1)
				break
			}
			if out == chaos.Failed {
				p.mu.Lock()
				p.failures[firstLine(err.Error())]++
				p.mu.Unlock()
			}
			node = (node + 1) % len(p.clients)
			select {
			case <-stop:
				if drainBy.IsZero() {
					drainBy = time.Now().Add(drainTimeout)
				}
			default:
			}
			if !drainBy.IsZero() && time.Now().After(drainBy) {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(publishPause):
		}
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// A reader reads the whole ledger again and again, each time through the
// next node. A read is a catch-up subscription (stop_at_end), which the node
// serves only after catching up with the leader, so it holds every
// contribution acknowledged before it began: it is a linearizable read.
type reader struct {
	id      int
	clients []*client.Client
	rec     *chaos.Recorder

	reads, failed atomic.Int64
	size          atomic.Int64 // entries of the last successful read
}

func (r *reader) run(ctx context.Context) {
	for i := 0; ctx.Err() == nil; i++ {
		c := r.clients[i%len(r.clients)]
		done := r.rec.Read(r.id)
		rctx, cancel := context.WithTimeout(ctx, readTimeout)
		entries, err := readLedger(rctx, c)
		cancel()
		if ctx.Err() != nil {
			// Cut short by the end of the run, not by the federation.
			err = errors.Join(err, ctx.Err())
		}
		done(entries, err)
		if err != nil {
			r.failed.Add(1)
		} else {
			r.reads.Add(1)
			r.size.Store(int64(len(entries)))
		}
		// Reads get longer as the ledger grows: keep them to a few a second.
		pause := 300*time.Millisecond + time.Duration(len(entries))*100*time.Microsecond
		select {
		case <-ctx.Done():
		case <-time.After(pause):
		}
	}
}

// readLedger reads entries 1..n through c's node with a catch-up
// subscription, and returns the contribution at each index.
func readLedger(ctx context.Context, c *client.Client) ([]chaos.Contribution, error) {
	stream, err := c.Subscriber.Subscribe(ctx, &hashfedv1.SubscribeRequest{Cursor: 1, StopAtEnd: true})
	if err != nil {
		return nil, err
	}
	var out []chaos.Contribution
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if want := int64(len(out)) + 1; m.GetIndex() != want {
			return nil, fmt.Errorf("the node sent entry %d where entry %d was due", m.GetIndex(), want)
		}
		ct, err := contributionOf(m.GetEntry())
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", m.GetIndex(), err)
		}
		out = append(out, ct)
	}
}

// contributionOf names the contribution a ledger leaf records; the zero
// Contribution for a leaf that holds none.
func contributionOf(leaf []byte) (chaos.Contribution, error) {
	var e hashfedv1.LedgerEntry
	if err := proto.Unmarshal(leaf, &e); err != nil {
		return chaos.Contribution{}, err
	}
	env := e.GetStatement().GetEnvelope()
	if env == nil {
		return chaos.Contribution{}, nil
	}
	st, err := federation.PeekStatement(env)
	if err != nil {
		return chaos.Contribution{}, err
	}
	return chaos.Contribution{Set: st.Set, Seq: st.Sequence}, nil
}

// A subscriber follows the ledger with the client library's verified
// subscription, moving across nodes on failure, and records the index of
// every entry it is given.
type subscriber struct {
	name     string
	follower *client.Follower

	mu      sync.Mutex
	next    int64    // the index due next
	got     int64    // entries received
	bad     []string // entries received out of order or twice
	err     error    // why Follow ended, if it did
	ended   bool
	changed chan struct{}
}

func newSubscriber(name string, clients []*client.Client, log *slog.Logger) *subscriber {
	return &subscriber{
		name: name,
		follower: &client.Follower{
			Clients:    clients,
			Log:        log,
			Attempts:   -1,
			MaxBackoff: 2 * time.Second,
		},
		changed: make(chan struct{}),
	}
}

func (s *subscriber) run(ctx context.Context) {
	err := s.follower.Follow(ctx, 0, client.SubscribeOptions{}, func(u *client.Update) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if u.Index != s.next && len(s.bad) < 20 {
			s.bad = append(s.bad, fmt.Sprintf("entry %d received when %d was due", u.Index, s.next))
		}
		s.next = u.Index + 1
		s.got++
		close(s.changed)
		s.changed = make(chan struct{})
		return nil
	})
	s.mu.Lock()
	if ctx.Err() == nil {
		s.err = err
	}
	s.ended = true
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// waitFor waits until s received entries 0..size-1, or ctx ends, or s's
// Follow ended.
func (s *subscriber) waitFor(ctx context.Context, size int64) error {
	for {
		s.mu.Lock()
		next, ended, err, ch := s.next, s.ended, s.err, s.changed
		s.mu.Unlock()
		switch {
		case next >= size:
			return nil
		case ended:
			return fmt.Errorf("subscriber %s stopped at entry %d of %d: %w", s.name, next, size, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("subscriber %s is at entry %d of %d: %w", s.name, next, size, ctx.Err())
		case <-ch:
		}
	}
}

// check reports what s got wrong: entries out of order or repeated, a
// number of entries other than size, or an end with an error.
func (s *subscriber) check(size int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]string{}, s.bad...)
	if s.got != size || s.next != size {
		out = append(out, fmt.Sprintf("received %d entries up to index %d, want the %d entries 0..%d", s.got, s.next-1, size, size-1))
	}
	if s.err != nil {
		out = append(out, fmt.Sprintf("Follow ended: %v", s.err))
	}
	return out
}
