package node_test

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestPublishSubscribeAudit is the end-to-end path: the NGO publishes, every
// node converges on one checkpoint, the tech firm receives exactly the
// published signals, and the auditor's audit passes.
func TestPublishSubscribeAudit(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngo := dial(t, f, "ngo", "ngo-1")
	want := sampleSignals(0, 25)
	res, err := ngo.Publish(ctx, signer(t, f, "ngo"), "ngo/csam", want, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Index != 1 || res.TreeSize != 2 {
		t.Fatalf("first contribution at index %d (tree size %d), want 1 (2)", res.Index, res.TreeSize)
	}
	cp := converge(t, f, 2)

	// Every node serves the same checkpoint, cosigned by all three voting
	// nodes; the auditor verifies it through each, with the default policy.
	cosigners := []string{fedName + "/ngo-1", fedName + "/techco-1", fedName + "/auditor-1"}
	for _, id := range []string{"ngo-1", "techco-1", "auditor-1"} {
		rep, err := dial(t, f, "auditor", id).Audit(ctx, client.AuditOptions{})
		if err != nil {
			t.Fatalf("audit via %s: %v", id, err)
		}
		if rep.Checkpoint != cp {
			t.Errorf("audit via %s verified checkpoint %+v, want %+v", id, rep.Checkpoint, cp)
		}
		if !slices.Equal(rep.SignedBy, cosigners) {
			t.Errorf("checkpoint from %s signed by %v, want %v", id, rep.SignedBy, cosigners)
		}
		if rep.Entries != 2 || rep.InclusionProofs != 2 || rep.Statements != 1 || rep.Signals != int64(len(want)) {
			t.Errorf("audit via %s: %+v", id, rep)
		}
	}

	var got []*hashfedv1.Signal
	var indexes []int64
	err = dial(t, f, "techco", "techco-1").Subscribe(ctx, 0, nil, func(u *client.Update) error {
		indexes = append(indexes, u.Index)
		got = append(got, u.Signals...)
		if u.Index == 1 {
			return io.EOF
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(indexes, []int64{0, 1}) {
		t.Errorf("subscriber saw entries %v, want [0 1]", indexes)
	}
	if !sameSignals(got, want) {
		t.Errorf("subscriber received %d signals that differ from the %d published", len(got), len(want))
	}
}

func sameSignals(a, b []*hashfedv1.Signal) bool {
	return slices.EqualFunc(a, b, func(x, y *hashfedv1.Signal) bool { return proto.Equal(x, y) })
}

// TestPublishThroughEveryNode shows that a write sent to a follower is
// forwarded to the leader, and that sequence numbers continue across nodes.
func TestPublishThroughEveryNode(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	s := signer(t, f, "ngo")
	var next int64 = 1
	for i, id := range []string{"ngo-1", "techco-1", "auditor-1"} {
		res, err := dial(t, f, "ngo", id).Publish(ctx, s, "ngo/csam", sampleSignals(i*3, 3), "")
		if err != nil {
			t.Fatalf("publish via %s (leader %s): %v", id, f.Leader(), err)
		}
		if res.Index != next || res.Statement.Sequence != uint64(i+1) {
			t.Fatalf("publish via %s: index %d sequence %d, want %d and %d", id, res.Index, res.Statement.Sequence, next, i+1)
		}
		next++
	}
	converge(t, f, next)
}

// TestSubscribeCursorAndAccess: resuming from a cursor, payloads only for
// readers, and refusals for sets a caller may not read.
func TestSubscribeCursorAndAccess(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngo := dial(t, f, "ngo", "ngo-1")
	iwf := dial(t, f, "iwf", "ngo-1")
	if _, err := ngo.Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(0, 4), ""); err != nil {
		t.Fatal(err)
	}
	iwfSignals := []*hashfedv1.Signal{sampleSignals(0, 1)[0], sampleSignals(3, 1)[0]} // md5 and pdq
	if _, err := iwf.Publish(ctx, signer(t, f, "iwf"), "iwf/list", iwfSignals, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := ngo.Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(4, 2), ""); err != nil {
		t.Fatal(err)
	}
	converge(t, f, 4)

	collect := func(c *client.Client, cursor int64, sets []string) (map[int64]int, error) {
		counts := map[int64]int{}
		err := c.Subscribe(ctx, cursor, sets, func(u *client.Update) error {
			counts[u.Index] = len(u.Signals)
			if u.Index == 3 {
				return io.EOF
			}
			return nil
		})
		return counts, err
	}
	tech := dial(t, f, "techco", "techco-1")
	cases := []struct {
		name   string
		c      *client.Client
		cursor int64
		sets   []string
		want   map[int64]int
	}{
		{"reader, all sets", tech, 0, nil, map[int64]int{0: 0, 1: 4, 2: 2, 3: 2}},
		{"reader, resume at 2", tech, 2, nil, map[int64]int{2: 2, 3: 2}},
		{"reader, one set", tech, 1, []string{"iwf/list"}, map[int64]int{1: 0, 2: 2, 3: 0}},
		{"auditor sees statements only", dial(t, f, "auditor", "auditor-1"), 0, nil, map[int64]int{0: 0, 1: 0, 2: 0, 3: 0}},
		{"owner reads its own set only", iwf, 1, nil, map[int64]int{1: 0, 2: 2, 3: 0}},
	}
	for _, tc := range cases {
		got, err := collect(tc.c, tc.cursor, tc.sets)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got entries %v, want %v", tc.name, got, tc.want)
		}
		for i, n := range tc.want {
			if got[i] != n {
				t.Errorf("%s: entry %d carried %d signals, want %d", tc.name, i, got[i], n)
			}
		}
	}

	refusals := []struct {
		name string
		c    *client.Client
		req  *hashfedv1.SubscribeRequest
		code codes.Code
	}{
		{"auditor asks for values", dial(t, f, "auditor", "auditor-1"), &hashfedv1.SubscribeRequest{Sets: []string{"ngo/csam"}}, codes.PermissionDenied},
		{"iwf asks for ngo's set", iwf, &hashfedv1.SubscribeRequest{Sets: []string{"ngo/csam"}}, codes.PermissionDenied},
		{"unknown set", tech, &hashfedv1.SubscribeRequest{Sets: []string{"ngo/nope"}}, codes.NotFound},
		{"negative cursor", tech, &hashfedv1.SubscribeRequest{Cursor: -1}, codes.InvalidArgument},
		{"cursor past the end", tech, &hashfedv1.SubscribeRequest{Cursor: 99}, codes.OutOfRange},
	}
	for _, r := range refusals {
		stream, err := r.c.Subscriber.Subscribe(ctx, r.req)
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != r.code {
			t.Errorf("%s: got %v, want code %v", r.name, err, r.code)
		}
	}
}

// TestLiveTail: a subscriber at the end of the ledger receives a new
// contribution as it commits.
func TestLiveTail(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	got := make(chan *client.Update, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- dial(t, f, "techco", "techco-1").Subscribe(ctx, 1, nil, func(u *client.Update) error {
			got <- u
			return io.EOF
		})
	}()
	want := sampleSignals(10, 3)
	if _, err := dial(t, f, "ngo", "auditor-1").Publish(ctx, signer(t, f, "ngo"), "ngo/csam", want, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("subscription failed: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no live update before the test deadline")
	}
	u := <-got // the callback sent it before ending the subscription
	if u.Index != 1 || !sameSignals(u.Signals, want) {
		t.Errorf("live update at %d with %d signals, want entry 1 with the %d published", u.Index, len(u.Signals), len(want))
	}
}

// TestRejectedContributions: each bad contribution gets the right code, a
// message that says what is wrong, and commits nothing anywhere.
func TestRejectedContributions(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngoSigner, iwfSigner := signer(t, f, "ngo"), signer(t, f, "iwf")
	ngo := dial(t, f, "ngo", "techco-1") // a node of another org, often a follower
	first, err := ngo.Publish(ctx, ngoSigner, "ngo/csam", sampleSignals(0, 5), "")
	if err != nil {
		t.Fatal(err)
	}
	committed, _, err := federation.BuildContribution(ngoSigner, fedName, "ngo/csam", 1, sampleSignals(0, 5), "")
	if err != nil {
		t.Fatal(err)
	}
	build := func(s *federation.Signer, set string, seq uint64) *hashfedv1.Contribution {
		c, _, err := federation.BuildContribution(s, fedName, set, seq, sampleSignals(20, 2), "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tampered := build(ngoSigner, "ngo/csam", 2)
	tampered.Envelope = flipSignature(t, tampered.Envelope)
	otherKey := build(iwfSigner, "ngo/csam", 2)
	otherKey.Envelope = relabelOrg(t, otherKey.Envelope, "ngo") // claims ngo, signed by iwf's key
	wrongPayload := build(ngoSigner, "ngo/csam", 2)
	other, _, err := federation.BuildContribution(ngoSigner, fedName, "ngo/csam", 2, sampleSignals(30, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	wrongPayload.Payload = other.Payload

	cases := []struct {
		name    string
		via     *client.Client
		c       *hashfedv1.Contribution
		code    codes.Code
		message string
	}{
		{"replayed contribution", ngo, committed, codes.AlreadyExists, "replay"},
		{"sequence gap", ngo, build(ngoSigner, "ngo/csam", 5), codes.FailedPrecondition, "the next must be 2"},
		{"tampered signature", ngo, tampered, codes.InvalidArgument, "does not verify"},
		{"statement signed with another org's key", ngo, otherKey, codes.InvalidArgument, "does not verify"},
		{"payload not the one signed", ngo, wrongPayload, codes.InvalidArgument, "does not match"},
		{"org publishing into another org's set", dial(t, f, "iwf", "ngo-1"), build(iwfSigner, "ngo/csam", 1), codes.PermissionDenied, `belongs to org "ngo"`},
		{"org submitting another org's statement", dial(t, f, "iwf", "ngo-1"), build(ngoSigner, "ngo/csam", 2), codes.PermissionDenied, "only its own"},
		{"subscriber org adding signals", dial(t, f, "techco", "ngo-1"), build(signer(t, f, "techco"), "ngo/csam", 1), codes.PermissionDenied, "publisher role"},
		{"unknown set", dial(t, f, "iwf", "ngo-1"), build(iwfSigner, "iwf/nope", 1), codes.NotFound, "does not exist"},
		{"empty request", ngo, nil, codes.InvalidArgument, "no contribution"},
	}
	before := converge(t, f, first.TreeSize)
	for _, tc := range cases {
		_, err := tc.via.Publisher.Publish(ctx, &hashfedv1.PublishRequest{Contribution: tc.c})
		if status.Code(err) != tc.code {
			t.Errorf("%s: got %v, want code %v", tc.name, err, tc.code)
			continue
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, tc.message) {
			t.Errorf("%s: message %q does not say %q", tc.name, msg, tc.message)
		}
	}
	for id, cp := range checkpoints(t, f) {
		if cp != before {
			t.Errorf("node %s moved from %+v to %+v after rejected contributions", id, before, cp)
		}
	}
	// Nothing slipped in behind the rejections: the next good contribution
	// lands right after the first one everywhere.
	next, err := ngo.Publish(ctx, ngoSigner, "ngo/csam", sampleSignals(40, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	if next.Index != first.Index+1 || next.Statement.Sequence != 2 {
		t.Fatalf("next contribution at index %d sequence %d, want %d and 2", next.Index, next.Statement.Sequence, first.Index+1)
	}
	converge(t, f, next.TreeSize)
}

// TestUnauthenticatedCallersGetNothing: callers without a certificate that
// chains to the CA of the org it names are refused at the TLS handshake.
func TestUnauthenticatedCallersGetNothing(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	addr := f.Files[0].APIAddress
	techCA, err := certs.LoadCA(f.Orgs["techco"].Dir)
	if err != nil {
		t.Fatal(err)
	}
	strangerCA, err := certs.NewCA("ngo", time.Hour) // claims to be ngo's CA, is not
	if err != nil {
		t.Fatal(err)
	}
	// The client side does not verify the server here: the point is what the
	// server gives an unverified caller.
	conf := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: certs}
	}
	cases := []struct {
		name string
		conf *tls.Config
	}{
		{"no client certificate", conf()},
		{"certificate from an unknown CA", conf(forgeClientCert(t, strangerCA, "spiffe://ngo/client/mallory"))},
		{"identity naming another org", conf(forgeClientCert(t, techCA, "spiffe://ngo/client/mallory"))},
		{"identity of an org not in the federation", conf(forgeClientCert(t, strangerCA, "spiffe://stranger/client/mallory"))},
	}
	before := converge(t, f, 1)
	contrib, _, err := federation.BuildContribution(signer(t, f, "ngo"), fedName, "ngo/csam", 1, sampleSignals(0, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		conn := rawConn(t, addr, tc.conf)
		_, err := hashfedv1.NewPublishServiceClient(conn).Publish(ctx, &hashfedv1.PublishRequest{Contribution: contrib})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: publish got %v, want Unavailable (handshake refused)", tc.name, err)
		}
		_, err = hashfedv1.NewLedgerServiceClient(conn).GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: read got %v, want Unavailable (handshake refused)", tc.name, err)
		}
	}
	for id, cp := range checkpoints(t, f) {
		if cp != before {
			t.Errorf("node %s moved from %+v to %+v", id, before, cp)
		}
	}
}

// TestHealthAndReflection: grpcurl-style tooling works with a client certificate.
func TestHealthAndReflection(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	c := dial(t, f, "auditor", "techco-1")
	// The node turns SERVING once it holds the genesis entry.
	watch, err := healthpb.NewHealthClient(c.Conn()).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		h, err := watch.Recv()
		if err != nil {
			t.Fatalf("health watch ended before SERVING: %v", err)
		}
		if h.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}
	stream, err := reflectionv1.NewServerReflectionClient(c.Conn()).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	for _, want := range []string{"hashfed.v1.PublishService", "hashfed.v1.SubscribeService", "hashfed.v1.LedgerService", "hashfed.v1.ClusterService", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, missing %s", names, want)
		}
	}
}

// TestLedgerServiceBadRanges: out-of-range requests get clear codes.
func TestLedgerServiceBadRanges(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	l := dial(t, f, "auditor", "auditor-1").Ledger
	check := func(name string, err error, want codes.Code) {
		t.Helper()
		if status.Code(err) != want {
			t.Errorf("%s: got %v, want %v", name, err, want)
		}
	}
	_, err := l.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: 1, End: 1})
	check("empty range", err, codes.InvalidArgument)
	_, err = l.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: 0, End: 5})
	check("range past the end", err, codes.OutOfRange)
	_, err = l.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: 0, End: 5000})
	check("too many entries", err, codes.InvalidArgument)
	_, err = l.GetInclusionProof(ctx, &hashfedv1.GetInclusionProofRequest{Index: 1, TreeSize: 1})
	check("index outside tree", err, codes.InvalidArgument)
	_, err = l.GetInclusionProof(ctx, &hashfedv1.GetInclusionProofRequest{Index: 0, TreeSize: 9})
	check("tree larger than ledger", err, codes.OutOfRange)
	_, err = l.GetConsistencyProof(ctx, &hashfedv1.GetConsistencyProofRequest{OldSize: 0, NewSize: 1})
	check("consistency from 0", err, codes.InvalidArgument)
	_, err = dial(t, f, "auditor", "auditor-1").Cluster.Join(ctx, &hashfedv1.JoinRequest{NodeId: "auditor-9", RaftAddress: "127.0.0.1:1"})
	check("a client joining raft", err, codes.PermissionDenied)
}

// TestRestartKeepsLedger: every node stops and starts again from its
// durable Raft store and snapshots; the ledger is intact and grows on.
func TestRestartKeepsLedger(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	s := signer(t, f, "ngo")
	if _, err := dial(t, f, "ngo", "ngo-1").Publish(ctx, s, "ngo/csam", sampleSignals(0, 3), ""); err != nil {
		t.Fatal(err)
	}
	before := converge(t, f, 2)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, f)
	if after := converge(t, f, 2); after != before {
		t.Fatalf("after restart checkpoint %+v, want %+v", after, before)
	}
	res, err := dial(t, f, "ngo", "auditor-1").Publish(ctx, s, "ngo/csam", sampleSignals(3, 3), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Index != 2 || res.Statement.Sequence != 2 {
		t.Fatalf("after restart: index %d sequence %d, want 2 and 2", res.Index, res.Statement.Sequence)
	}
	converge(t, f, 3)
	if _, err := dial(t, f, "auditor", "ngo-1").Audit(ctx, client.AuditOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestJoinNonVoter: a node not in the genesis joins through the cluster
// service as a non-voter and receives the whole ledger.
func TestJoinNonVoter(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	if _, err := dial(t, f, "ngo", "ngo-1").Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(0, 2), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AddJoiner("techco", "techco-2"); err != nil {
		t.Fatal(err)
	}
	if err := f.StartNode("techco-2"); err != nil {
		t.Fatal(err)
	}
	converge(t, f, 2) // includes techco-2
	st, err := dial(t, f, "techco", "techco-1").Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, m := range st.GetMembers() {
		if m.GetNodeId() == "techco-2" {
			found = true
			if m.GetVoter() {
				t.Error("techco-2 joined as a voter, want non-voter")
			}
		}
	}
	if !found || len(st.GetMembers()) != 4 {
		t.Errorf("members %v, want the 3 voters and techco-2", st.GetMembers())
	}
	// The new node serves subscribers too.
	var n int
	err = dial(t, f, "techco", "techco-2").Subscribe(ctx, 0, nil, func(u *client.Update) error {
		n += len(u.Signals)
		if u.Index == 1 {
			return io.EOF
		}
		return nil
	})
	if err != nil || n != 2 {
		t.Fatalf("subscribing via techco-2: %d signals, err %v", n, err)
	}
}

type dsseEnvelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
	Signatures  []struct {
		KeyID string `json:"keyid"`
		Sig   string `json:"sig"`
	} `json:"signatures"`
}

func flipSignature(t *testing.T, env []byte) []byte {
	t.Helper()
	var e dsseEnvelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	sig[0] ^= 1
	e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig)
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// relabelOrg rewrites the statement's org without re-signing.
func relabelOrg(t *testing.T, env []byte, org string) []byte {
	t.Helper()
	var e dsseEnvelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	body, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	var st federation.Statement
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	st.Org = org
	if body, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	e.Payload = base64.StdEncoding.EncodeToString(body)
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
