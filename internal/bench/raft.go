package bench

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/consensus"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
)

// A noopFSM is the reference state machine: it keeps nothing but the index
// of the last command, so the bare Raft runs measure replication alone.
type noopFSM struct{ applied atomic.Uint64 }

func (f *noopFSM) Apply(index uint64, _ []byte) []byte { f.applied.Store(index); return nil }
func (f *noopFSM) AppliedIndex() uint64                { return f.applied.Load() }

func (f *noopFSM) Snapshot() (func(io.Writer) error, error) {
	return func(io.Writer) error { return nil }, nil
}

func (f *noopFSM) Restore(index uint64, r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	f.applied.Store(index)
	return err
}

// A raftCluster is three consensus.Nodes built as hashfed nodes build
// theirs (the same TLS mux transport with the three orgs' node certificates,
// BoltDB log and stable store, file snapshots, Raft timing) around a
// [noopFSM], with no gRPC, no verification and no state.
type raftCluster struct {
	nodes []*consensus.Node
	sets  []*setWriter
}

// startRaft creates three orgs' certificates with localfed in dir and starts
// the bare Raft cluster on fresh loopback ports.
func startRaft(ctx context.Context, cfg *Config, dir string, nsets int) (*raftCluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	lf, err := localfed.Create(localfed.Options{
		Dir:        dir,
		Federation: benchFederation,
		Orgs: []localfed.OrgSpec{
			{Name: publisherOrg, Roles: []federation.Role{federation.RolePublisher, federation.RoleOperator}, Nodes: 1},
			{Name: subscriberOrg, Roles: []federation.Role{federation.RoleSubscriber, federation.RoleOperator}, Nodes: 1},
			{Name: auditorOrg, Roles: []federation.Role{federation.RoleAuditor, federation.RoleOperator}, Nodes: 1},
		},
	})
	if err != nil {
		return nil, err
	}
	lf.Close() // only its files are used
	doc, err := os.ReadFile(lf.Genesis)
	if err != nil {
		return nil, err
	}
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		return nil, err
	}
	cas := map[string]*x509.Certificate{}
	for _, o := range g.Orgs {
		if cas[o.Name], err = o.CACertificate(); err != nil {
			return nil, err
		}
	}
	trust := certs.NewDynamicBundle(certs.NewBundle(cas))
	signer, err := lf.Signer(publisherOrg)
	if err != nil {
		return nil, err
	}
	rc := &raftCluster{}
	for i := range nsets {
		rc.sets = append(rc.sets, newSetWriter(signer, benchFederation, setName(i), cfg.SignalType))
	}

	var lns []net.Listener
	var peers []consensus.Peer
	for _, nf := range lf.Files {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, err
		}
		lns = append(lns, ln)
		peers = append(peers, consensus.Peer{ID: nf.ID, Address: ln.Addr().String()})
	}
	r := cfg.Raft
	if r.HeartbeatTimeout == 0 {
		r = node.DefaultConfig().Raft
	}
	for i, nf := range lf.Files {
		nc := nf.NodeConfig()
		cert, err := certs.LoadKeyPair(nc.TLSCert, nc.TLSKey)
		if err != nil {
			rc.close()
			return nil, err
		}
		n, err := consensus.Start(consensus.Config{
			ID:                 nf.ID,
			DataDir:            filepath.Join(dir, "raft-"+nf.ID),
			Listener:           lns[i],
			ServerTLS:          certs.ServerConfig(cert, trust, []certs.Kind{certs.KindNode}),
			ClientTLS:          certs.ClientConfig(cert, trust),
			Bootstrap:          peers,
			FSM:                &noopFSM{},
			HeartbeatTimeout:   r.HeartbeatTimeout,
			ElectionTimeout:    r.ElectionTimeout,
			LeaderLeaseTimeout: r.LeaderLeaseTimeout,
			CommitTimeout:      r.CommitTimeout,
			SnapshotInterval:   r.SnapshotInterval,
			SnapshotThreshold:  r.SnapshotThreshold,
			TrailingLogs:       r.TrailingLogs,
		})
		if err != nil {
			lns[i].Close()
			rc.close()
			return nil, err
		}
		rc.nodes = append(rc.nodes, n)
	}
	if _, err := rc.leader(ctx); err != nil {
		rc.close()
		return nil, err
	}
	return rc, nil
}

func (rc *raftCluster) close() {
	for _, n := range rc.nodes {
		n.Close()
	}
}

func (rc *raftCluster) leader(ctx context.Context) (*consensus.Node, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		for _, n := range rc.nodes {
			if n.IsLeader() {
				return n, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("bare raft elected no leader: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// RunBareRaft starts the bare Raft cluster in dir and, for each of
// cfg.Ingest's runs, applies the Raft commands of the same contributions
// hashfed's run publishes, with the same concurrency.
func RunBareRaft(ctx context.Context, cfg *Config, dir string) ([]IngestResult, error) {
	cfg.progress("raft: starting three bare consensus nodes in this process")
	rc, err := startRaft(ctx, cfg, dir, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	defer rc.close()
	var out []IngestResult
	for _, spec := range cfg.Ingest {
		r, err := rc.ingest(ctx, spec, cfg.Concurrency)
		if err != nil {
			return out, err
		}
		cfg.progress("raft: %d × %d signals: %.0f signals/s, %.1f contributions/s", r.Contributions, r.Size, r.SignalsPerSec, r.ContributionsPerSec)
		out = append(out, r)
	}
	return out, nil
}

// ingest applies spec's contributions as Raft commands on the leader.
func (rc *raftCluster) ingest(ctx context.Context, spec IngestSpec, conc int) (IngestResult, error) {
	pb, err := build(rc.sets, spec, conc)
	if err != nil {
		return IngestResult{}, err
	}
	return rc.applyAll(ctx, pb)
}

// applyAll applies each publisher's warm-up command on the leader, then
// measures applying the rest, each publisher one at a time.
func (rc *raftCluster) applyAll(ctx context.Context, pb *prebuilt) (IngestResult, error) {
	var err error
	warm := make([][]byte, len(pb.warm))
	for i, ct := range pb.warm {
		if warm[i], err = commandBytes(ct); err != nil {
			return IngestResult{}, err
		}
	}
	work := make([][][]byte, len(pb.work))
	for i, cts := range pb.work {
		for _, ct := range cts {
			b, err := commandBytes(ct)
			if err != nil {
				return IngestResult{}, err
			}
			work[i] = append(work[i], b)
		}
	}
	// Only the command bytes are needed from here on.
	pb.warm = nil
	for i := range pb.work {
		pb.work[i] = nil
	}
	appliers := make([]*applier, len(work))
	for i := range appliers {
		l, err := rc.leader(ctx)
		if err != nil {
			return IngestResult{}, err
		}
		appliers[i] = &applier{rc: rc, node: l}
	}
	if err := parallel(ctx, len(warm), func(ctx context.Context, i int) error {
		return appliers[i].apply(ctx, warm[i])
	}); err != nil {
		return IngestResult{}, fmt.Errorf("warming up: %w", err)
	}
	retriesBefore := 0
	for _, a := range appliers {
		retriesBefore += a.retries
	}
	lat := make([][]time.Duration, len(work))
	meter := startCPU(selfCPU)
	start := time.Now()
	err = parallel(ctx, len(work), func(ctx context.Context, i int) error {
		for _, cmd := range work[i] {
			t := time.Now()
			if err := appliers[i].apply(ctx, cmd); err != nil {
				return err
			}
			lat[i] = append(lat[i], time.Since(t))
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return IngestResult{}, err
	}
	r := newIngestResult(SystemRaft, pb, elapsed, lat)
	r.CPUSeconds, r.OtherCPUSeconds = meter.stop()
	for _, a := range appliers {
		r.Retries += a.retries
	}
	r.Retries -= retriesBefore
	return r, nil
}

// An applier is one publisher of the bare Raft runs. It is not safe for
// concurrent use.
type applier struct {
	rc      *raftCluster
	node    *consensus.Node
	retries int
}

// apply commits cmd through the leader. After an error (a leader change
// under load) it finds the leader and applies cmd again: the no-op machine
// does not mind a command committed twice.
func (a *applier) apply(ctx context.Context, cmd []byte) error {
	deadline := time.Now().Add(retryFor)
	for {
		_, err := a.node.Apply(ctx, cmd)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		a.retries++
		if l, lerr := a.rc.leader(ctx); lerr == nil {
			a.node = l
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}
