package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A node checks its own storage (see federation/integrity.go for what is
// checked against what). At start it checks the roots against its latest
// cosigned checkpoint and the most recent [DefaultIntegrityStartEntries]
// entries in full, so that starting stays quick on a ledger of millions of
// entries; the background loop then checks the whole ledger, over and over,
// at most [DefaultIntegrityBytesPerSecond]. Every leaf and payload it serves
// is re-hashed on the way out. A node with a damaged record refuses to
// cosign, refuses to serve the damaged entries (DataLoss) and, while a tree
// hash or root is in doubt, every proof and hash tile (Unavailable); its
// health says NOT_SERVING. It repairs each damaged entry from a peer: the
// peer's copy is checked by an inclusion proof against a checkpoint a quorum
// cosigned, so a lying peer cannot repair it wrongly.

const (
	// DefaultIntegrityStartEntries is how many of the latest entries a node
	// checks in full before it starts.
	DefaultIntegrityStartEntries = 10000
	// DefaultIntegrityBytesPerSecond bounds the background check's reads.
	DefaultIntegrityBytesPerSecond = 8 << 20
	// integrityChunk is how many entries the background check reads at once.
	integrityChunk = 256
	// repairTimeout bounds one attempt to repair the damage from peers.
	repairTimeout = 20 * time.Second
	// repairRetry is how often a node still damaged tries again.
	repairRetry = 5 * time.Second
)

// IntegrityConfig tunes the node's checks of its own storage.
type IntegrityConfig struct {
	// StartEntries is how many of the latest entries are checked in full
	// before the node starts; 0 means 10000, -1 none (the background check
	// still reaches them).
	StartEntries int64 `yaml:"start_entries"`
	// BytesPerSecond bounds the background check's reads; 0 means 8 MiB/s,
	// -1 turns the background check off.
	BytesPerSecond int64 `yaml:"bytes_per_second"`
}

// storageRemedy is what an operator does when a node's storage cannot be
// trusted or read: the steps of docs/OPERATIONS.md, "A node whose storage is
// damaged".
func (n *Node) storageRemedy() string {
	return storageRemedy(n.cfg.DataDir)
}

func storageRemedy(dataDir string) string {
	return fmt.Sprintf("wipe this node's data and rejoin: stop the node, move %[1]s aside (mv %[1]s %[1]s.damaged), "+
		"add the API addresses of running nodes to the configuration (join: [\"host:port\", ...]) and start the node again; "+
		"it takes the ledger from the leader (docs/OPERATIONS.md, \"A node whose storage is damaged\")", dataDir)
}

// openStateChecked opens the state database, turning a damaged database
// (pebble corruption, a missing MANIFEST, records that disagree) into an
// error that says what to do. It never lets pebble's panic through.
func openStateChecked(dataDir, dir string, doc []byte) (st *federation.State, err error) {
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("state database %s is damaged (%v): %s", dir, r, storageRemedy(dataDir))
		}
	}()
	st, err = federation.OpenState(dir, doc, federation.StateOptions{})
	if err == nil {
		return st, nil
	}
	if errors.Is(err, fs.ErrPermission) || strings.Contains(err.Error(), "belongs to another federation") {
		return nil, err
	}
	return nil, fmt.Errorf("state database %s cannot be used: %w; %s", dir, err, storageRemedy(dataDir))
}

// checkStorageAtStart checks the roots and the latest entries, and repairs
// what it finds from peers. If damage remains it returns the error that
// stops the node, with the remedy.
func (n *Node) checkStorageAtStart() error {
	st := n.state
	if err := st.VerifyRoots(); err != nil && !errors.Is(err, federation.ErrStorageFault) {
		return fmt.Errorf("checking the state database: %w; %s", err, n.storageRemedy())
	}
	want := n.cfg.Integrity.StartEntries
	if want == 0 {
		want = DefaultIntegrityStartEntries
	}
	size := st.Size()
	for i := max(0, size-max(want, 0)); i < size; i += integrityChunk {
		if _, err := st.VerifyEntries(i, i+integrityChunk); err != nil && !errors.Is(err, federation.ErrStorageFault) {
			return fmt.Errorf("checking the state database: %w; %s", err, n.storageRemedy())
		}
	}
	faults := st.StorageFaults()
	if len(faults) == 0 {
		return nil
	}
	n.logFaults(faults)
	ctx, cancel := context.WithTimeout(context.Background(), repairTimeout)
	defer cancel()
	if err := n.repair(ctx); err != nil {
		return fmt.Errorf("this node's stored ledger is damaged and could not be repaired from its peers (%w); %s", err, n.storageRemedy())
	}
	return nil
}

func (n *Node) logFaults(faults []*federation.StorageFaultError) {
	for _, f := range faults {
		n.log.Error("stored ledger record is damaged: not cosigning or serving it until repaired",
			"entry", f.Index, "record", f.Record, "hash_index", f.HashIndex, "stored", f.Stored, "expected", f.Expected)
	}
}

// integrityLoop checks the whole ledger in the background, at the
// configured rate, and repairs what it finds.
func (n *Node) integrityLoop() {
	rate := n.cfg.Integrity.BytesPerSecond
	if rate == 0 {
		rate = DefaultIntegrityBytesPerSecond
	}
	var cursor int64
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-n.stop:
			return false
		case <-t.C:
			return true
		}
	}
	for {
		if faults := n.state.StorageFaults(); len(faults) > 0 {
			n.setHealth()
			n.logFaults(faults)
			ctx, cancel := context.WithTimeout(context.Background(), repairTimeout)
			err := n.repair(ctx)
			cancel()
			n.setHealth()
			if err != nil {
				n.log.Error("repairing damaged ledger records from peers", "err", err, "if_it_persists", n.storageRemedy())
				if !wait(repairRetry) {
					return
				}
				continue
			}
			n.log.Info("damaged ledger records repaired from peers and verified against a cosigned checkpoint")
		}
		if rate < 0 {
			if !wait(repairRetry) {
				return
			}
			continue
		}
		size := n.state.Size()
		if cursor >= size {
			cursor = 0
			n.state.VerifyRoots()
			if size == 0 && !wait(time.Second) {
				return
			}
			continue
		}
		read, _ := n.state.VerifyEntries(cursor, cursor+integrityChunk)
		cursor += integrityChunk
		if !wait(time.Duration(float64(max(read, 1)) / float64(rate) * float64(time.Second))) {
			return
		}
	}
}

// setHealth reports NOT_SERVING while storage faults remain, SERVING once
// the node holds the genesis entry and none does.
func (n *Node) setHealth() {
	s := healthpb.HealthCheckResponse_SERVING
	if n.state.Size() == 0 || len(n.state.StorageFaults()) > 0 {
		s = healthpb.HealthCheckResponse_NOT_SERVING
	}
	select {
	case <-n.stop:
		return
	default:
	}
	if n.health != nil {
		n.health.SetServingStatus("", s)
	}
}

// storageFault returns the status refusing a call while any stored record
// is damaged, or nil.
func (n *Node) storageFault() error {
	faults := n.state.StorageFaults()
	if len(faults) == 0 {
		return nil
	}
	return status.Errorf(codes.Unavailable, "this node's stored ledger is damaged (%v; %d damaged record(s)) and is being repaired from its peers: ask another node", faults[0], len(faults))
}

// treeFault returns the status refusing proofs and hash tiles while a
// stored tree hash or root is damaged, or nil.
func (n *Node) treeFault() error {
	for _, f := range n.state.StorageFaults() {
		if f.Record == "tree hash" || f.Record == "root" || f.Record == "leaf" {
			return status.Errorf(codes.Unavailable, "this node's stored tree is damaged (%v) and is being repaired from its peers: ask another node", f)
		}
	}
	return nil
}

// storageStatus turns an error reading entries [start, end) into the status
// a client sees: DataLoss naming the range when the records are damaged.
func storageStatus(err error, start, end int64) error {
	if errors.Is(err, federation.ErrStorageFault) {
		return status.Errorf(codes.DataLoss, "this node's stored copy of entries [%d, %d) is damaged (%v); it is repairing it from its peers: ask another node", start, end, err)
	}
	return status.Errorf(codes.Internal, "reading entries [%d, %d): %v", start, end, err)
}

// repairPeers returns the API addresses of the other nodes: the genesis
// nodes and the join addresses.
func (n *Node) repairPeers() []string {
	seen := map[string]bool{}
	var out []string
	for _, gn := range n.state.Genesis().Nodes {
		if gn.ID != n.cfg.NodeID && gn.APIAddress != "" && !seen[gn.APIAddress] {
			seen[gn.APIAddress] = true
			out = append(out, gn.APIAddress)
		}
	}
	for _, a := range n.cfg.Join {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// repair fetches every damaged entry from a peer, verifies it by an
// inclusion proof against a checkpoint a quorum cosigned, and rewrites it.
func (n *Node) repair(ctx context.Context) error {
	faults := n.state.StorageFaults()
	if len(faults) == 0 {
		return nil
	}
	var errs []error
	for _, addr := range n.repairPeers() {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(n.peerCreds),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize)))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			continue
		}
		for _, f := range n.state.StorageFaults() {
			if err := n.repairEntry(ctx, cc, f); err != nil {
				errs = append(errs, fmt.Errorf("entry %d from %s: %w", f.Index, addr, err))
			}
		}
		cc.Close()
		if len(n.state.StorageFaults()) == 0 {
			return nil
		}
	}
	if len(errs) == 0 {
		errs = append(errs, errors.New("no peer to repair from"))
	}
	return errors.Join(errs...)
}

func (n *Node) repairEntry(ctx context.Context, cc *grpc.ClientConn, f *federation.StorageFaultError) error {
	i := f.Index
	ledgerc := hashfedv1.NewLedgerServiceClient(cc)
	cpr, err := ledgerc.GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{})
	if err != nil {
		return err
	}
	cp, err := n.state.OpenCosignedQuorum(cpr.GetSignedCheckpoint())
	if err != nil {
		return fmt.Errorf("its checkpoint: %w", err)
	}
	if cp.Size <= i {
		return fmt.Errorf("its latest cosigned checkpoint covers %d entries, not entry %d", cp.Size, i)
	}
	er, err := ledgerc.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: i, End: i + 1})
	if err != nil {
		return err
	}
	if len(er.GetEntries()) != 1 {
		return fmt.Errorf("asked for entry %d, got %d entries", i, len(er.GetEntries()))
	}
	leaf := er.GetEntries()[0]
	pr, err := ledgerc.GetInclusionProof(ctx, &hashfedv1.GetInclusionProofRequest{Index: i, TreeSize: cp.Size})
	if err != nil {
		return err
	}
	proof := make(tlog.RecordProof, len(pr.GetHashes()))
	for k, h := range pr.GetHashes() {
		if len(h) != tlog.HashSize {
			return fmt.Errorf("inclusion proof hash of %d bytes", len(h))
		}
		copy(proof[k][:], h)
	}
	if err := tlog.CheckRecord(proof, cp.Size, cp.Hash, i, tlog.RecordHash(leaf)); err != nil {
		return fmt.Errorf("entry %d it served does not verify against the checkpoint of size %d cosigned by a quorum: %w", i, cp.Size, err)
	}
	var payload []byte
	if f.Record == "payload" {
		if payload, err = fetchPayload(ctx, cc, i); err != nil {
			return err
		}
	}
	if err := n.state.RepairEntry(i, leaf, payload); err != nil {
		return err
	}
	n.log.Info("repaired a damaged ledger record from a peer", "entry", i, "record", f.Record, "checkpoint_size", cp.Size)
	return nil
}

// fetchPayload reads the payload of entry i from a peer's Subscribe. The
// node's org must be able to read the entry's set.
func fetchPayload(ctx context.Context, cc *grpc.ClientConn, i int64) ([]byte, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := hashfedv1.NewSubscribeServiceClient(cc).Subscribe(ctx, &hashfedv1.SubscribeRequest{Cursor: i, StopAtEnd: true})
	if err != nil {
		return nil, err
	}
	m, err := s.Recv()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("it sent no entry %d", i)
	}
	if err != nil {
		return nil, err
	}
	if m.GetIndex() != i || m.GetPayload() == nil {
		return nil, fmt.Errorf("it sent no payload for entry %d (this node's org may not read its set)", i)
	}
	return m.GetPayload(), nil
}
