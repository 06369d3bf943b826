package node_test

import (
	"context"
	"crypto/tls"
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
	"github.com/hashfed/hashfed/ledger"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

const fedName = "test.hashfed.local"

// testOptions: three voting orgs with one node each, plus iwf, a publisher
// that runs no node, so that two orgs own sets.
func testOptions(dir string) localfed.Options {
	return localfed.Options{
		Dir:        dir,
		Federation: fedName,
		Orgs: []localfed.OrgSpec{
			{Name: "ngo", Roles: []federation.Role{federation.RolePublisher, federation.RoleOperator}, Nodes: 1},
			{Name: "techco", Roles: []federation.Role{federation.RoleSubscriber, federation.RoleOperator}, Nodes: 1},
			{Name: "auditor", Roles: []federation.Role{federation.RoleAuditor, federation.RoleOperator}, Nodes: 1},
			{Name: "iwf", Roles: []federation.Role{federation.RolePublisher}},
		},
		Sets: []federation.Set{
			{Name: "ngo/csam", Types: federation.SignalTypes, Readers: []string{"techco"}},
			{Name: "iwf/list", Types: []federation.SignalType{federation.MD5, federation.PDQ}, Readers: []string{"techco"}},
		},
		CheckpointInterval: 50 * time.Millisecond,
		// Fast elections on loopback; nothing asserts on time.
		Raft: node.RaftConfig{
			HeartbeatTimeout:   300 * time.Millisecond,
			ElectionTimeout:    300 * time.Millisecond,
			LeaderLeaseTimeout: 150 * time.Millisecond,
			CommitTimeout:      5 * time.Millisecond,
			SnapshotInterval:   time.Minute,
			SnapshotThreshold:  8192,
			TrailingLogs:       1024,
		},
	}
}

// newTestFederation creates and starts a federation in t.TempDir and waits
// until it has a leader and the genesis entry everywhere.
func newTestFederation(t *testing.T) *localfed.Federation {
	t.Helper()
	return startFederation(t, testOptions(t.TempDir()))
}

// startFederation creates and starts a federation from opts and waits until
// it has a leader and the genesis entry everywhere.
func startFederation(t *testing.T, opts localfed.Options) *localfed.Federation {
	t.Helper()
	f, err := localfed.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, f)
	return f
}

func waitReady(t *testing.T, f *localfed.Federation) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, f *localfed.Federation, org, nodeID string) *client.Client {
	t.Helper()
	c, err := f.Client(org, nodeID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func signer(t *testing.T, f *localfed.Federation, org string) *federation.Signer {
	t.Helper()
	s, err := f.Signer(org)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkpoints returns every running node's current checkpoint by node ID.
func checkpoints(t *testing.T, f *localfed.Federation) map[string]ledger.Checkpoint {
	t.Helper()
	out := map[string]ledger.Checkpoint{}
	for id, n := range f.Nodes {
		cp, err := n.State().Checkpoint()
		if err != nil {
			t.Fatal(err)
		}
		out[id] = cp
	}
	return out
}

// converge waits until every running node holds size entries, checks they
// all have the same root, and waits until each holds a cosigned checkpoint
// covering them (what GetCheckpoint, audits and receipts serve).
func converge(t *testing.T, f *localfed.Federation, size int64) ledger.Checkpoint {
	t.Helper()
	if _, err := localfed.SameCheckpoint(testCtx(t), f, size); err != nil {
		t.Fatal(err)
	}
	if err := f.WaitCheckpoint(testCtx(t), size); err != nil {
		t.Fatal(err)
	}
	for _, cp := range checkpoints(t, f) {
		return cp
	}
	t.Fatal("no running nodes")
	return ledger.Checkpoint{}
}

// waitRefused waits until every node refuses org's client certificates at
// the handshake, as nodes do right after applying the org's removal.
func waitRefused(ctx context.Context, t *testing.T, f *localfed.Federation, org string) {
	t.Helper()
	for _, nf := range f.Files {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := f.Client(org, nf.ID)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Status(ctx)
			c.Close()
			if status.Code(err) == codes.Unavailable {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s still serves removed org %s: %v", nf.ID, org, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// rawConn dials a node's API with an arbitrary TLS client configuration.
func rawConn(t *testing.T, addr string, conf *tls.Config) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// forgeClientCert makes a client certificate whose URI names identity but
// which is signed by ca (which may belong to another org, or to nobody),
// valid for the hour around now.
func forgeClientCert(t *testing.T, ca *certs.CA, identity string) tls.Certificate {
	t.Helper()
	return clientCert(t, ca, identity, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

func sampleSignals(from, n int) []*hashfedv1.Signal {
	return localfed.SampleSignals(from + n)[from:]
}
