package node_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// The state database's keys, as federation/store.go lays them out: a prefix
// byte and a big-endian index.
const (
	keyHash    = 0x02
	keyLeaf    = 0x03
	keyPayload = 0x04
)

func stateKey(prefix byte, i int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefix}, uint64(i))
}

// flipStored flips one bit of the value of key in a stopped node's state
// database, writing through pebble so that pebble's own checksums stay valid.
func flipStored(t *testing.T, nf *localfed.NodeFiles, key []byte) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(nf.NodeConfig().DataDir, "state"), &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v, closer, err := db.Get(key)
	if err != nil {
		t.Fatalf("reading key %x: %v", key, err)
	}
	b := bytes.Clone(v)
	closer.Close()
	b[len(b)/2] ^= 0x10
	if err := db.Set(key, b, pebble.Sync); err != nil {
		t.Fatal(err)
	}
}

// quietPebble drops pebble's informational lines.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)           {}
func (quietPebble) Fatalf(format string, a ...any) { panic(fmt.Sprintf(format, a...)) }

// integrityFed is a federation holding four entries (genesis and three
// statements of ngo/csam, which techco reads), all cosigned.
func integrityFed(t *testing.T) *localfed.Federation {
	t.Helper()
	f := newTestFederation(t)
	ctx := testCtx(t)
	c := dial(t, f, "ngo", "ngo-1")
	for i := range 3 {
		if _, err := c.Publish(ctx, signer(t, f, "ngo"), "ngo/csam", sampleSignals(i, 1), ""); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, f, 4)
	return f
}

// lockedBuffer collects a node's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startWith starts a stopped node of f with its configuration changed by
// edit, logging into the returned buffer.
func startWith(t *testing.T, f *localfed.Federation, nf *localfed.NodeFiles, edit func(*node.Config)) (*node.Node, *lockedBuffer, error) {
	t.Helper()
	cfg := nf.NodeConfig()
	logs := &lockedBuffer{}
	cfg.Log = slog.New(slog.NewTextHandler(logs, nil))
	if edit != nil {
		edit(&cfg)
	}
	n, err := node.Start(cfg)
	if err == nil {
		f.Nodes[nf.ID] = n
	}
	return n, logs, err
}

// TestDamagedRecordRepairedAtStart: a node restarted with one bit flipped in
// a stored leaf, tree hash or payload finds it before it starts, fetches the
// entry from a peer, checks it by proof against a cosigned checkpoint,
// rewrites it and starts clean.
func TestDamagedRecordRepairedAtStart(t *testing.T) {
	f := integrityFed(t)
	nf := f.Files[1] // techco-1: its org reads ngo/csam, so it may fetch payloads
	want, err := f.Nodes["ngo-1"].State().Entries(0, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		key    []byte
		record string
	}{
		{"leaf", stateKey(keyLeaf, 2), `record=leaf`},
		// Stored hash 2 is level 1, entries 0 and 1: written by the append
		// of entry 1, read by no root of the ledger's size.
		{"tree hash", stateKey(keyHash, tlog.StoredHashIndex(1, 0)), `record="tree hash"`},
		{"payload", stateKey(keyPayload, 3), `record=payload`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.StopNode(nf.ID); err != nil {
				t.Fatal(err)
			}
			flipStored(t, nf, tc.key)
			n, logs, err := startWith(t, f, nf, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), "stored ledger record is damaged") || !strings.Contains(logs.String(), tc.record) {
				t.Fatalf("no damage reported in the log:\n%s", logs)
			}
			if !strings.Contains(logs.String(), "repaired a damaged ledger record from a peer") {
				t.Fatalf("no repair in the log:\n%s", logs)
			}
			if faults := n.State().StorageFaults(); len(faults) != 0 {
				t.Fatalf("faults after repair: %v", faults)
			}
			got, err := n.State().Entries(0, 4)
			if err != nil {
				t.Fatal(err)
			}
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("entry %d differs from the peer's after repair", i)
				}
			}
			if _, err := n.State().VerifyEntries(0, 4); err != nil {
				t.Fatal(err)
			}
			if n.State().Payload(3) == nil {
				t.Fatal("payload of entry 3 missing after repair")
			}
		})
	}
}

// TestDamagedLeafNotServedNotCosigned: a node whose peers are down cannot
// repair a damaged leaf; it still starts if told not to check at start, but
// then answers DataLoss for the damaged range, refuses to cosign, reports
// NOT_SERVING and the evidence in Status; once peers are back it repairs
// itself and serves again.
func TestDamagedLeafNotServedNotCosigned(t *testing.T) {
	f := integrityFed(t)
	for _, nf := range f.Files {
		if err := f.StopNode(nf.ID); err != nil {
			t.Fatal(err)
		}
	}
	nf := f.Files[1]
	flipStored(t, nf, stateKey(keyLeaf, 1))
	n, _, err := startWith(t, f, nf, func(c *node.Config) { c.Integrity.StartEntries = -1 })
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	c := dial(t, f, "techco", nf.ID)
	_, err = c.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: 0, End: 3})
	if status.Code(err) != codes.DataLoss || !strings.Contains(err.Error(), "entries [0, 3) is damaged") || !strings.Contains(err.Error(), "leaf of entry 1") {
		t.Fatalf("GetEntries of a damaged range: %v", err)
	}
	h, err := healthpb.NewHealthClient(c.Conn()).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("health with a damaged leaf: %v, %v", h, err)
	}
	st, err := c.Status(ctx)
	if err != nil || len(st.GetStorageFaults()) == 0 || !strings.Contains(st.GetStorageFaults()[0], "entry 1") {
		t.Fatalf("status with a damaged leaf: %v, %v", st, err)
	}
	self := f.Files[0].NodeConfig()
	asNode, err := client.Dial(client.Config{Node: nf.APIAddress, Genesis: f.Genesis, Cert: self.TLSCert, Key: self.TLSKey})
	if err != nil {
		t.Fatal(err)
	}
	defer asNode.Close()
	cp, err := n.State().RootAt(4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := asNode.Cluster.Cosign(ctx, &hashfedv1.CosignRequest{Checkpoint: cp.Marshal()}); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "stored ledger is damaged") {
		t.Fatalf("cosign with a damaged leaf: %v", err)
	}
	if _, err := c.Ledger.GetInclusionProof(ctx, &hashfedv1.GetInclusionProofRequest{Index: 2, TreeSize: 4}); status.Code(err) != codes.Unavailable {
		t.Fatalf("inclusion proof with a damaged tree: %v", err)
	}

	// The peers come back: the node repairs itself and serves again.
	for _, id := range []string{"ngo-1", "auditor-1"} {
		if err := f.StartNode(id); err != nil {
			t.Fatal(err)
		}
	}
	watch, err := healthpb.NewHealthClient(c.Conn()).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for {
		h, err := watch.Recv()
		if err != nil {
			t.Fatalf("waiting for SERVING after repair: %v", err)
		}
		if h.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
	}
	res, err := c.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: 0, End: 4})
	if err != nil {
		t.Fatal(err)
	}
	want, err := f.Nodes["ngo-1"].State().Entries(1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.GetEntries()[1], want[0]) {
		t.Fatal("entry 1 served after repair differs from the peer's")
	}
	if _, err := asNode.Cluster.Cosign(ctx, &hashfedv1.CosignRequest{Checkpoint: cp.Marshal()}); err != nil {
		t.Fatalf("cosign after repair: %v", err)
	}
}

// TestDamagedStorageRefusesStart: damage the node cannot repair (no peer
// up), or a raw sst corruption that pebble itself refuses, stops the start
// with the wipe-and-rejoin steps, not a panic or a bare pebble error.
func TestDamagedStorageRefusesStart(t *testing.T) {
	f := integrityFed(t)
	for _, nf := range f.Files {
		if err := f.StopNode(nf.ID); err != nil {
			t.Fatal(err)
		}
	}
	nf := f.Files[1]
	remedy := []string{"wipe this node's data and rejoin", "mv " + nf.NodeConfig().DataDir, "join:", "docs/OPERATIONS.md"}

	t.Run("leaf, no peer", func(t *testing.T) {
		flipStored(t, nf, stateKey(keyLeaf, 3))
		_, _, err := startWith(t, f, nf, nil)
		if err == nil {
			t.Fatal("node started with a damaged leaf and no peer to repair it from")
		}
		for _, s := range append([]string{"could not be repaired", "leaf of entry 3"}, remedy...) {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("start error lacks %q: %v", s, err)
			}
		}
	})
	t.Run("sst", func(t *testing.T) {
		dir := filepath.Join(nf.NodeConfig().DataDir, "state")
		// Flush the memtable so that the ledger is in an sst, then garble it.
		db, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
		db.Close()
		ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
		if len(ssts) == 0 {
			t.Fatal("no sst after flush")
		}
		for _, p := range ssts {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(b)/2; i += 64 {
				b[i] ^= 0xff
			}
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err = startWith(t, f, nf, nil)
		if err == nil {
			t.Fatal("node started on a garbled sst")
		}
		t.Logf("start refused: %v", err)
		for _, s := range remedy {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("start error lacks %q: %v", s, err)
			}
		}
	})
	t.Run("MANIFEST missing", func(t *testing.T) {
		other := f.Files[2]
		dir := filepath.Join(other.NodeConfig().DataDir, "state")
		manifests, _ := filepath.Glob(filepath.Join(dir, "MANIFEST-*"))
		if len(manifests) == 0 {
			t.Fatal("no MANIFEST")
		}
		for _, p := range manifests {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		_, _, err := startWith(t, f, other, nil)
		if err == nil {
			t.Fatal("node started without its MANIFEST")
		}
		t.Logf("start refused: %v", err)
		for _, s := range []string{"wipe this node's data and rejoin", "mv " + other.NodeConfig().DataDir, "join:"} {
			if !strings.Contains(err.Error(), s) {
				t.Fatalf("start error lacks %q: %v", s, err)
			}
		}
	})
}
