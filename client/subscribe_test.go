package client_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A cutProxy forwards TCP connections to a node until Cut closes them all
// at once, as a network failure or a crashed node would: no gRPC goodbye,
// no TLS close, just gone.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	cut   bool
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			if p.cut {
				in.Close()
				out.Close()
			}
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(p.Cut)
	return p
}

func (p *cutProxy) Addr() string { return p.ln.Addr().String() }

// Cut closes the listener and every connection.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use, for logs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestFollowerConnectionCut: the connection to the follower's node is cut
// mid-stream; the follower resumes on the next node and passes every entry
// to fn exactly once, in order, including those committed after the cut.
func TestFollowerConnectionCut(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	publish(t, f, 2)
	publish(t, f, 3)
	proxy := startCutProxy(t, f.Nodes["ngo-1"].APIAddr())
	var log lockedBuffer
	fl := &client.Follower{
		Clients: []*client.Client{dialAs(t, f, "techco", proxy.Addr()), dialAs(t, f, "techco", f.Nodes["ngo-2"].APIAddr())},
		Log:     slog.New(slog.NewTextHandler(&log, nil)),
	}
	var got []int64
	var signals int
	err := fl.Follow(ctx, 0, client.SubscribeOptions{}, func(u *client.Update) error {
		got = append(got, u.Index)
		signals += len(u.Signals)
		switch u.Index {
		case 2:
			// Mid-stream: the connection drops, and more is published
			// before the follower can have moved.
			proxy.Cut()
			publish(t, f, 4)
			publish(t, f, 5)
		case 4:
			return io.EOF
		}
		return nil
	})
	if err != nil {
		t.Fatalf("follow: %v\nlog:\n%s", err, log.String())
	}
	if !slices.Equal(got, []int64{0, 1, 2, 3, 4}) || signals != 2+3+4+5 {
		t.Errorf("fn saw entries %v with %d signals, want 0..4 with %d", got, signals, 2+3+4+5)
	}
	if lines := strings.Count(log.String(), "\n"); lines != 1 || !strings.Contains(log.String(), "failed="+proxy.Addr()) || !strings.Contains(log.String(), "cursor=3") {
		t.Errorf("the follower logged %q, want one line about leaving %s at cursor 3", log.String(), proxy.Addr())
	}
	t.Logf("%s", log.String())
}

// TestFollowerUnreachableNode: a node that cannot be reached at all is
// skipped; the catch-up completes on the next one.
func TestFollowerUnreachableNode(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	publish(t, f, 2)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	var log lockedBuffer
	fl := &client.Follower{
		Clients: []*client.Client{dialAs(t, f, "techco", dead), dialAs(t, f, "techco", f.Nodes["techco-1"].APIAddr())},
		Log:     slog.New(slog.NewTextHandler(&log, nil)),
	}
	var got []int64
	if err := fl.Follow(ctx, 0, client.SubscribeOptions{StopAtEnd: true}, func(u *client.Update) error {
		got = append(got, u.Index)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int64{0, 1}) {
		t.Errorf("fn saw entries %v, want 0 and 1", got)
	}
	if !strings.Contains(log.String(), "failed="+dead) || strings.Count(log.String(), "\n") != 1 {
		t.Errorf("the follower logged %q, want one line about %s", log.String(), dead)
	}

	// With no node reachable, it gives up after its attempts, saying why.
	fl = &client.Follower{Clients: []*client.Client{dialAs(t, f, "techco", dead)}, Attempts: 2}
	err = fl.Follow(ctx, 0, client.SubscribeOptions{StopAtEnd: true}, func(*client.Update) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "no node could serve the subscription from entry 0 (2 attempts in a row failed") || !strings.Contains(err.Error(), "nothing is listening") {
		t.Errorf("following an unreachable node: %v", err)
	}
}

// TestFollowerMisbehavingNode: a node that serves a repeat, or withholds a
// payload the subscription selects, is a bad node: the follower keeps the
// evidence, resumes at the entry due on the next node and finishes there;
// when every node serves the entry due corrupted, it fails naming each.
func TestFollowerMisbehavingNode(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	publish(t, f, 1) // entry 1: md5 only
	publish(t, f, 4) // entry 2: md5, sha1, sha256, pdq
	for _, tc := range []struct {
		name    string
		updates func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse
		opts    client.SubscribeOptions
		want    string
	}{
		{
			name: "repeat",
			updates: func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
				if m.GetIndex() == 1 {
					return []*hashfedv1.SubscribeResponse{m, m}
				}
				return []*hashfedv1.SubscribeResponse{m}
			},
			want: "node sent entry 1 where entry 2 was due: refusing a gap or repeat",
		},
		{
			// Entry 1 holds no pdq: leaving its payload out is right.
			name: "payload withheld despite the type filter",
			updates: func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
				m.Payload = nil
				return []*hashfedv1.SubscribeResponse{m}
			},
			opts: client.SubscribeOptions{Types: []federation.SignalType{federation.PDQ}},
			want: "entry 2: the node withheld the payload of ngo's contribution 2 to ngo/csam",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The lying node first: the follower keeps its evidence and
			// finishes on the honest node, every entry once, in order.
			liar := startLyingNode(t, f, "ngo-1", lies{updates: tc.updates})
			var log lockedBuffer
			fl := &client.Follower{
				Clients: []*client.Client{dialAs(t, f, "techco", liar.Addr), dialAs(t, f, "techco", f.Nodes["ngo-2"].APIAddr())},
				Log:     slog.New(slog.NewTextHandler(&log, nil)),
			}
			var got []int64
			tc.opts.StopAtEnd = true
			err := fl.Follow(ctx, 0, tc.opts, func(u *client.Update) error {
				got = append(got, u.Index)
				return nil
			})
			if err != nil {
				t.Fatalf("follow with one honest node: %v", err)
			}
			if !slices.Equal(got, []int64{0, 1, 2}) {
				t.Errorf("fn saw entries %v, want 0, 1 and 2 once each", got)
			}
			if len(fl.Bad) != 1 || fl.Bad[0].Node != liar.Addr || fl.Bad[0].Index != 2 || !strings.Contains(fl.Bad[0].Error(), tc.want) {
				t.Errorf("bad nodes %v, want %s at entry 2 saying %q", fl.Bad, liar.Addr, tc.want)
			}
			if !strings.Contains(log.String(), "fails verification") {
				t.Errorf("the follower did not log its move: %s", log.String())
			}

			// Every node lying about entry 2: the follower fails, naming each.
			corrupt := func(m *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse {
				if m.GetIndex() == 2 {
					m.Entry = flipInEnvelope(t, m.Entry)
				}
				return []*hashfedv1.SubscribeResponse{m}
			}
			liar1 := startLyingNode(t, f, "ngo-1", lies{updates: corrupt})
			liar2 := startLyingNode(t, f, "ngo-2", lies{updates: corrupt})
			fl = &client.Follower{Clients: []*client.Client{dialAs(t, f, "techco", liar1.Addr), dialAs(t, f, "techco", liar2.Addr)}}
			got = nil
			err = fl.Follow(ctx, 0, tc.opts, func(u *client.Update) error {
				got = append(got, u.Index)
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), "every node served entry 2") ||
				!strings.Contains(err.Error(), liar1.Addr) || !strings.Contains(err.Error(), liar2.Addr) || !strings.Contains(err.Error(), "fails verification") {
				t.Fatalf("got %v, want an error naming both nodes", err)
			}
			if !slices.Equal(got, []int64{0, 1}) {
				t.Errorf("fn saw entries %v, want 0 and 1 only", got)
			}
		})
	}
}

// TestFollowFromCursorKeepsVerifying: resuming from a cursor replays the
// registry and the sequences first, so the first update is checked as
// strictly as in a subscription from the genesis, and Signals are narrowed
// by the label filter.
func TestFollowFromCursorKeepsVerifying(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	publish(t, f, 4) // labels A1 A2 B1 B2
	publish(t, f, 4)
	c := dialAs(t, f, "techco", f.Nodes["techco-1"].APIAddr())
	var got []*client.Update
	err := c.Follow(ctx, 2, client.SubscribeOptions{Labels: []string{"B1"}, StopAtEnd: true}, func(u *client.Update) error {
		got = append(got, u)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Index != 2 || got[0].Statement.Sequence != 2 || len(got[0].Signals) != 1 || got[0].Signals[0].Labels[0] != "B1" || len(got[0].Payload.GetSignals()) != 4 {
		t.Fatalf("updates from cursor 2: %+v", got)
	}
	if err := c.Follow(ctx, -1, client.SubscribeOptions{}, nil); err == nil || !strings.Contains(err.Error(), "cursor -1 is negative") {
		t.Errorf("following from cursor -1: %v", err)
	}
	if err := c.Follow(ctx, 0, client.SubscribeOptions{StopAtEnd: true}, func(*client.Update) error { return errors.New("disk full") }); err == nil || err.Error() != "disk full" {
		t.Errorf("fn's error came back as %v", err)
	}
}
