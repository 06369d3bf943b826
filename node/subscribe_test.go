package node_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// payloadsSent opens a raw stream for req and returns, for each entry up to
// last, whether the node sent its payload.
func payloadsSent(t *testing.T, c *client.Client, req *hashfedv1.SubscribeRequest, last int64) map[int64]bool {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	stream, err := c.Subscriber.Subscribe(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]bool{}
	for {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("stream for %v: %v", req, err)
		}
		got[msg.GetIndex()] = len(msg.GetPayload()) > 0
		if msg.GetIndex() == last {
			return got
		}
	}
}

// withPayload lists the entries of got that came with a payload, in order.
func withPayload(got map[int64]bool) []int64 {
	var out []int64
	for i, ok := range got {
		if ok {
			out = append(out, i)
		}
	}
	slices.Sort(out)
	return out
}

// TestSubscribeFilters: the node sends a statement's payload only when its
// signed type and label summaries match the filter, every entry still
// arrives, and the client keeps only the matching signals while verifying
// every omission.
func TestSubscribeFilters(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngo := dial(t, f, "ngo", "ngo-1")
	iwf := dial(t, f, "iwf", "ngo-1")
	s := sampleSignals(0, 10) // signal i has type i%5 and label A1, A2, B1, B2 for i%4 = 0..3
	publish := func(c *client.Client, org, set string, sigs ...*hashfedv1.Signal) int64 {
		t.Helper()
		res, err := c.Publish(ctx, signer(t, f, org), set, sigs, "")
		if err != nil {
			t.Fatal(err)
		}
		return res.Index
	}
	e1 := publish(ngo, "ngo", "ngo/csam", s[0])       // md5 A1
	e2 := publish(ngo, "ngo", "ngo/csam", s[1])       // sha1 A2
	e3 := publish(ngo, "ngo", "ngo/csam", s[2], s[3]) // sha256 B1, pdq B2
	e4 := publish(iwf, "iwf", "iwf/list", s[5], s[8]) // md5 A2, pdq A1
	converge(t, f, e4+1)

	tech := dial(t, f, "techco", "techco-1")
	md5, pdq := federation.MD5.Proto(), federation.PDQ.Proto()
	for _, tc := range []struct {
		name string
		req  *hashfedv1.SubscribeRequest
		want []int64
	}{
		{"no filter", &hashfedv1.SubscribeRequest{}, []int64{e1, e2, e3, e4}},
		{"type md5", &hashfedv1.SubscribeRequest{Types: []hashfedv1.SignalType{md5}}, []int64{e1, e4}},
		{"label B1", &hashfedv1.SubscribeRequest{Labels: []string{"B1"}}, []int64{e3}},
		{"labels A1 or A2", &hashfedv1.SubscribeRequest{Labels: []string{"A2", "A1"}}, []int64{e1, e2, e4}},
		{"type pdq and label A1", &hashfedv1.SubscribeRequest{Types: []hashfedv1.SignalType{pdq}, Labels: []string{"A1"}}, []int64{e4}},
		{"set iwf/list and type sha1", &hashfedv1.SubscribeRequest{Sets: []string{"iwf/list"}, Types: []hashfedv1.SignalType{federation.SHA1.Proto()}}, nil},
		{"set ngo/csam and type md5", &hashfedv1.SubscribeRequest{Sets: []string{"ngo/csam"}, Types: []hashfedv1.SignalType{md5}}, []int64{e1}},
	} {
		got := payloadsSent(t, tech, tc.req, e4)
		if len(got) != int(e4+1) {
			t.Errorf("%s: %d entries arrived, want all %d", tc.name, len(got), e4+1)
		}
		if w := withPayload(got); !slices.Equal(w, tc.want) {
			t.Errorf("%s: payloads came with entries %v, want %v", tc.name, w, tc.want)
		}
	}

	// The client narrows Signals to the filter and keeps the whole
	// verified payload.
	type update struct {
		signals, payload int
	}
	got := map[int64]update{}
	opts := client.SubscribeOptions{Types: []federation.SignalType{federation.PDQ}, Labels: []string{"A1", "B2"}, StopAtEnd: true}
	err := tech.Follow(ctx, 1, opts, func(u *client.Update) error {
		got[u.Index] = update{len(u.Signals), len(u.Payload.GetSignals())}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]update{e1: {}, e2: {}, e3: {1, 2}, e4: {1, 2}}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("entry %d: %d signals of a %d-signal payload, want %d of %d", i, got[i].signals, got[i].payload, w.signals, w.payload)
		}
	}

	// Filters that name no type or label are refused, before anything is sent.
	for _, tc := range []struct {
		name string
		req  *hashfedv1.SubscribeRequest
		msg  string
	}{
		{"unspecified type", &hashfedv1.SubscribeRequest{Types: []hashfedv1.SignalType{hashfedv1.SignalType_SIGNAL_TYPE_UNSPECIFIED}}, "md5, sha1, sha256, pdq or photodna"},
		{"empty label", &hashfedv1.SubscribeRequest{Labels: []string{""}}, "is not a label"},
		{"label with a comma", &hashfedv1.SubscribeRequest{Labels: []string{"A1,A2"}}, "is not a label"},
	} {
		err := firstError(ctx, tech, tc.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want InvalidArgument saying %q", tc.name, err, tc.msg)
		}
	}
	if err := tech.Follow(ctx, 0, client.SubscribeOptions{Types: []federation.SignalType{"md6"}}, nil); err == nil || !strings.Contains(err.Error(), `unknown signal type "md6"`) {
		t.Errorf("following with type md6: %v", err)
	}
}

// firstError opens a stream for req and returns the error it ends with
// before its first entry, or nil if an entry arrives.
func firstError(ctx context.Context, c *client.Client, req *hashfedv1.SubscribeRequest) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Subscriber.Subscribe(ctx, req)
	if err != nil {
		return err
	}
	_, err = stream.Recv()
	return err
}

// TestSubscribeRefusals: reading values the caller's org may not read is
// PermissionDenied naming the set, an unknown set is NotFound, and cursors
// outside the ledger are InvalidArgument or OutOfRange with a message that
// says what to do. A Follower ends on each instead of trying another node.
func TestSubscribeRefusals(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	res, err := dial(t, f, "ngo", "ngo-1").Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(0, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	size := res.TreeSize
	converge(t, f, size)
	tech := dial(t, f, "techco", "techco-1")
	for _, tc := range []struct {
		name string
		c    *client.Client
		req  *hashfedv1.SubscribeRequest
		code codes.Code
		msg  []string
	}{
		{"auditor asks for values", dial(t, f, "auditor", "auditor-1"), &hashfedv1.SubscribeRequest{Sets: []string{"ngo/csam"}}, codes.PermissionDenied,
			[]string{`org "auditor" may not read the values of set "ngo/csam"`, "subscribe without naming the set"}},
		{"iwf asks for ngo's set", dial(t, f, "iwf", "ngo-1"), &hashfedv1.SubscribeRequest{Sets: []string{"iwf/list", "ngo/csam"}}, codes.PermissionDenied,
			[]string{`set "ngo/csam"`}},
		{"unknown set", tech, &hashfedv1.SubscribeRequest{Sets: []string{"ngo/nope"}}, codes.NotFound, []string{`set "ngo/nope" does not exist`}},
		{"negative cursor", tech, &hashfedv1.SubscribeRequest{Cursor: -1}, codes.InvalidArgument, []string{"cursor -1 is negative"}},
		{"cursor past the end", tech, &hashfedv1.SubscribeRequest{Cursor: size + 1}, codes.OutOfRange,
			[]string{fmt.Sprintf("cursor %d is past the end of the ledger, which holds %d entries: resume from a cursor of at most %d", size+1, size, size), "another federation"}},
		{"catch-up past the end", tech, &hashfedv1.SubscribeRequest{Cursor: 1000, StopAtEnd: true}, codes.OutOfRange, []string{"holds 2 entries"}},
	} {
		err := firstError(ctx, tc.c, tc.req)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want code %v", tc.name, err, tc.code)
			continue
		}
		for _, m := range tc.msg {
			if !strings.Contains(status.Convert(err).Message(), m) {
				t.Errorf("%s: %q does not say %q", tc.name, status.Convert(err).Message(), m)
			}
		}
		// A follower reports the refusal as it is, without moving on.
		var log bytes.Buffer
		fl := &client.Follower{Clients: []*client.Client{tc.c, dial(t, f, tc.c.Identity().Org, "auditor-1")}, Log: slog.New(slog.NewTextHandler(&log, nil))}
		var types []federation.SignalType
		for _, p := range tc.req.GetTypes() {
			ty, _ := federation.SignalTypeFromProto(p)
			types = append(types, ty)
		}
		opts := client.SubscribeOptions{Sets: tc.req.GetSets(), Types: types, Labels: tc.req.GetLabels(), StopAtEnd: true}
		err = fl.Follow(ctx, tc.req.GetCursor(), opts, func(*client.Update) error { return nil })
		// (It may move for an election, which is Unavailable, but never
		// for the refusal.)
		if err == nil || strings.Contains(err.Error(), "no node could serve") || strings.Contains(log.String(), "code = "+tc.code.String()) ||
			(tc.req.GetCursor() >= 0 && status.Code(err) != tc.code) {
			t.Errorf("%s: a follower ended with %v after logging %q, want code %v and no move for it", tc.name, err, log.String(), tc.code)
		}
	}
	// The end of the ledger itself is a valid cursor: the stream waits there.
	ctx2, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := tech.Subscriber.Subscribe(ctx2, &hashfedv1.SubscribeRequest{Cursor: size})
	if err != nil {
		t.Fatal(err)
	}
	// Header returns no error, but no headers either, for a refused stream.
	if md, err := stream.Header(); err != nil || md == nil {
		_, err = stream.Recv()
		t.Errorf("subscribing at the end of the ledger: %v", err)
	}
}

// TestSubscribeBackpressure: a subscriber that reads nothing, on a connection
// with the smallest flow-control windows, neither holds up publishing through
// its node nor makes the node read ahead for it beyond one batch; once it
// reads, it receives every entry in order.
func TestSubscribeBackpressure(t *testing.T) {
	f := newTestFederation(t)
	// A thousand commits take a while under the race detector on a busy
	// machine; nothing here depends on how long.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// The subscriber and the publishers use the leader, which does the
	// most work for each commit.
	nodeID := f.Leader()
	meter := node.MeterReadAhead(t, f.Nodes[nodeID])

	tech := dial(t, f, "techco", nodeID)
	t.Logf("subscriber and publishers on %s", nodeID)
	cert, err := certs.LoadKeyPair(f.Orgs["techco"].ClientCert, f.Orgs["techco"].ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	cas := map[string]*x509.Certificate{}
	for _, o := range tech.Genesis().Orgs {
		if cas[o.Name], err = o.CACertificate(); err != nil {
			t.Fatal(err)
		}
	}
	const window = 64 << 10 // gRPC's minimum
	conn, err := grpc.NewClient(f.Nodes[nodeID].APIAddr(),
		grpc.WithTransportCredentials(credentials.NewTLS(certs.ClientConfig(cert, certs.NewBundle(cas)))),
		grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := hashfedv1.NewSubscribeServiceClient(conn).Subscribe(ctx, &hashfedv1.SubscribeRequest{Cursor: 0})
	if err != nil {
		t.Fatal(err)
	}
	if md, err := stream.Header(); err != nil || md == nil {
		_, err = stream.Recv()
		t.Fatalf("the node did not accept the subscription: %v", err)
	}

	// Publish through the subscriber's own node, two publishers at once,
	// while the subscriber reads nothing. Every contribution adds three new
	// signals; iwf/list holds md5 and pdq only.
	const perPublisher, perContribution = 500, 3
	all := sampleSignals(0, 5*perPublisher*perContribution/2)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, p := range []struct{ org, set string }{{"ngo", "ngo/csam"}, {"iwf", "iwf/list"}} {
		c := dial(t, f, p.org, nodeID)
		s := signer(t, f, p.org)
		sigs := slices.DeleteFunc(slices.Clone(all), func(s *hashfedv1.Signal) bool {
			iwfType := s.Type == federation.MD5.Proto() || s.Type == federation.PDQ.Proto()
			return iwfType != (p.set == "iwf/list")
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := uint64(1); seq <= perPublisher; seq++ {
				batch := sigs[(seq-1)*perContribution:][:perContribution]
				contrib, _, err := federation.BuildContribution(s, fedName, p.set, seq, batch, "")
				if err == nil {
					err = commit(ctx, c, contrib)
				}
				if err != nil {
					errs <- fmt.Errorf("%s contribution %d, while a subscriber is stuck: %w", p.org, seq, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := int64(1 + 2*perPublisher)
	converge(t, f, total)
	if ahead := meter.MaxAhead(); ahead > node.SubscribeBatch {
		t.Errorf("the node read up to %d entries ahead of what the stuck stream sent, want at most one batch of %d", ahead, node.SubscribeBatch)
	}
	if sent := meter.Sent(); sent >= total {
		t.Errorf("the node handed all %d entries to a stream whose windows hold %d bytes: flow control did not hold it back", sent, 2*window)
	}
	t.Logf("stuck stream: %d of %d entries read from the state, %d sent", meter.Read(), total, meter.Sent())

	// The subscriber wakes up and reads everything, in order, each
	// statement with its payload.
	for next := int64(0); next < total; next++ {
		msg, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d entries: %v", next, err)
		}
		if msg.GetIndex() != next {
			t.Fatalf("got entry %d, want %d", msg.GetIndex(), next)
		}
		if next > 0 && len(msg.GetPayload()) == 0 {
			t.Fatalf("entry %d came without its payload", next)
		}
	}
	if ahead := meter.MaxAhead(); ahead > node.SubscribeBatch {
		t.Errorf("the node read up to %d entries ahead of what the stream sent, want at most %d", ahead, node.SubscribeBatch)
	}
}

// commit publishes contrib through c until it is committed. A publish
// whose outcome is unknown (Unavailable or DeadlineExceeded: an election, a
// leadership lost while committing) is sent again, as a publisher does:
// the sequence number makes a repeat of a committed one AlreadyExists.
func commit(ctx context.Context, c *client.Client, contrib *hashfedv1.Contribution) error {
	for retried := false; ; retried = true {
		_, err := c.Publisher.Publish(ctx, &hashfedv1.PublishRequest{Contribution: contrib})
		switch code := status.Code(err); {
		case err == nil, retried && code == codes.AlreadyExists:
			return nil
		case (code == codes.Unavailable || code == codes.DeadlineExceeded) && ctx.Err() == nil:
			time.Sleep(50 * time.Millisecond)
		default:
			return err
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use, for logs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestSubscribeFailover: a subscriber follows node A while the NGO publishes
// continuously through node B; A stops mid-stream. The follower moves to
// another node and ends with every contribution exactly once, in ledger
// order, including those committed while it was moving.
func TestSubscribeFailover(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	b := f.Leader()
	var followers []string
	for _, nf := range f.Files {
		if nf.ID != b {
			followers = append(followers, nf.ID)
		}
	}
	a, c := followers[0], followers[1]

	var log syncBuffer
	fl := &client.Follower{
		Clients: []*client.Client{dial(t, f, "techco", a), dial(t, f, "techco", c)},
		Log:     slog.New(slog.NewTextHandler(&log, nil)),
	}
	const n = 60
	var got []*client.Update
	progress := make(chan int64, n+1)
	done := make(chan error, 1)
	go func() {
		done <- fl.Follow(ctx, 1, client.SubscribeOptions{}, func(u *client.Update) error {
			got = append(got, u)
			progress <- u.Index
			if u.Index == n {
				return io.EOF
			}
			return nil
		})
	}()

	// The publisher publishes a third of the contributions, waits until the
	// subscriber is mid-stream on A, then goes on while A stops.
	pub := dial(t, f, "ngo", b)
	s := signer(t, f, "ngo")
	published := make([][]*hashfedv1.Signal, n+1)
	for seq := 1; seq <= n; seq++ {
		published[seq] = sampleSignals(3*seq, 3)
	}
	resume := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() {
		for seq := 1; seq <= n; seq++ {
			if seq == n/3+1 {
				<-resume
			}
			contrib, _, err := federation.BuildContribution(s, fedName, "ngo/csam", uint64(seq), published[seq], "")
			if err == nil {
				err = commit(ctx, pub, contrib)
			}
			if err != nil {
				pubErr <- fmt.Errorf("publishing contribution %d through %s: %w", seq, b, err)
				return
			}
		}
		pubErr <- nil
	}()
	for mid := false; !mid; {
		select {
		case i := <-progress:
			mid = i >= 10
		case err := <-pubErr:
			t.Fatal(err)
		case err := <-done:
			t.Fatalf("the follower ended early: %v", err)
		}
	}
	close(resume)
	if err := f.StopNode(a); err != nil {
		t.Fatal(err)
	}
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the follower failed: %v\nlog:\n%s", err, log.String())
		}
	case <-ctx.Done():
		t.Fatalf("the follower did not receive all %d contributions; log:\n%s", n, log.String())
	}
	for i, u := range got {
		want := int64(i + 1)
		if u.Index != want || u.Statement == nil || u.Statement.Sequence != uint64(want) || !sameSignals(u.Signals, published[want]) {
			t.Fatalf("update %d: entry %d (statement %+v), want entry %d, contribution %d with the signals published", i, u.Index, u.Statement, want, want)
		}
	}
	if len(got) != n {
		t.Fatalf("the follower passed on %d updates, want %d", len(got), n)
	}
	// The first move is off A, mid-stream. (An election under load may
	// cause more.)
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if !strings.Contains(lines[0], "failed="+f.Files[index(f, a)].APIAddress) || !strings.Contains(lines[0], "next="+f.Files[index(f, c)].APIAddress) {
		t.Fatalf("the follower logged %q, want one line about moving from %s to %s", log.String(), a, c)
	}
	t.Logf("follower log: %s", lines[0])
	var cursor int64
	if _, err := fmt.Sscanf(lines[0][strings.Index(lines[0], "cursor="):], "cursor=%d", &cursor); err != nil || cursor < 10 || cursor >= n {
		t.Errorf("the follower moved at cursor %d (%v), want one mid-stream", cursor, err)
	}
}

func index(f *localfed.Federation, id string) int {
	return slices.IndexFunc(f.Files, func(nf *localfed.NodeFiles) bool { return nf.ID == id })
}

// TestSubscribeTombstones: a retraction reaches a subscriber as a tombstone
// (op retract, the retracted signals, the reason), and a label filter that
// leaves out the addition does not leave out the retraction.
func TestSubscribeTombstones(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngo := dial(t, f, "ngo", "ngo-1")
	s := signer(t, f, "ngo")
	added := sampleSignals(0, 4) // labels A1, A2, B1, B2
	if _, err := ngo.Publish(ctx, s, "ngo/csam", added, ""); err != nil {
		t.Fatal(err)
	}
	var retracted []*hashfedv1.Signal
	for _, sig := range added[1:3] {
		retracted = append(retracted, &hashfedv1.Signal{Type: sig.Type, Value: sig.Value})
	}
	const reason = "false positive: benign image, reviewed twice"
	contrib, _, err := federation.BuildChange(s, fedName, "ngo/csam", 2, federation.Change{Op: federation.OpRetract, Signals: retracted, Reason: reason}, "")
	if err != nil {
		t.Fatal(err)
	}
	res, err := ngo.Publisher.Publish(ctx, &hashfedv1.PublishRequest{Contribution: contrib})
	if err != nil {
		t.Fatalf("publishing the retraction: %v", err)
	}
	converge(t, f, res.GetTreeSize())

	// Filtering on label C9, which no signal carries: the addition comes
	// without values, the retraction with its tombstones.
	var updates []*client.Update
	opts := client.SubscribeOptions{Labels: []string{"C9"}, StopAtEnd: true}
	if err := dial(t, f, "techco", "techco-1").Follow(ctx, 1, opts, func(u *client.Update) error {
		updates = append(updates, u)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(updates) != 2 {
		t.Fatalf("got %d updates, want 2", len(updates))
	}
	if add := updates[0]; add.Statement.Op != federation.OpAdd || add.Payload != nil || add.Signals != nil {
		t.Errorf("the addition arrived as op %q with %d signals, want add without values", add.Statement.Op, len(add.Signals))
	}
	tomb := updates[1]
	if tomb.Statement.Op != federation.OpRetract || tomb.Reason != reason || !sameSignals(tomb.Signals, retracted) {
		t.Errorf("the retraction arrived as op %q, reason %q, %d signals; want retract, %q and the %d retracted", tomb.Statement.Op, tomb.Reason, len(tomb.Signals), reason, len(retracted))
	}
	// The node itself sent the retraction's payload under the filter.
	got := payloadsSent(t, dial(t, f, "techco", "techco-1"), &hashfedv1.SubscribeRequest{Cursor: 1, Labels: []string{"C9"}}, res.GetIndex())
	if w := withPayload(got); !slices.Equal(w, []int64{res.GetIndex()}) {
		t.Errorf("with label filter C9 the node sent payloads for entries %v, want only the retraction %d", w, res.GetIndex())
	}
}
