package node_test

// The tests in this file run a corrupted node: a federation member whose
// code was changed so that, as Raft leader, it lies. It is a real node's
// identity, data and keys (it takes over the node's data directory once the
// honest process has stopped, and is then handed the lead) running Raft with
// no Prepare step, so it proposes whatever it likes without the checks an
// honest leader makes before proposing, and it signs whatever it likes with
// its checkpoint key.
// What it cannot change is the other nodes' code: every node's state
// machine checks each command it applies (federation.State.Apply), and each
// node cosigns only a checkpoint of the tree it holds itself
// (clusterService.Cosign in checkpoint.go).
//
// client/tamper_test.go covers the other threat, a node that alters what it
// serves to clients; here the node lies through consensus.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/consensus"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A lyingLeader is the corrupted node. Its state machine is the honest one
// (a node's own ledger is whatever it applied); a leader whose state machine
// is corrupted too is modelled by the trees the tests build next to it and
// serve with [lyingLeader.serve].
type lyingLeader struct {
	f      *localfed.Federation
	id     string
	nf     *localfed.NodeFiles
	cons   *consensus.Node
	state  *federation.State
	signer note.Signer // its checkpoint key
	cert   tls.Certificate
	trust  certs.TrustSource
}

// startLyingLeader stops node id and starts the corrupted node in its place
// (its data, identity and keys), then has leadership handed to it. The other
// nodes keep running the real code.
//
// Raft hands leadership to the most up-to-date follower, the first in
// configuration (genesis) order on a tie, so the tests corrupt techco-1:
// ngo-1 hands over to it directly, auditor-1 by way of ngo-1.
func startLyingLeader(t *testing.T, f *localfed.Federation, id string) *lyingLeader {
	t.Helper()
	waitReady(t, f)
	l := &lyingLeader{f: f, id: id}
	for _, nf := range f.Files {
		if nf.ID == id {
			l.nf = nf
		}
	}
	if l.nf == nil {
		t.Fatalf("no node %q", id)
	}
	if err := f.StopNode(id); err != nil {
		t.Fatal(err)
	}
	cfg := l.nf.NodeConfig()
	doc, err := os.ReadFile(f.Genesis)
	if err != nil {
		t.Fatal(err)
	}
	if l.state, err = federation.OpenState(filepath.Join(cfg.DataDir, "state"), doc, federation.StateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.state.Close() })
	if l.cert, err = certs.LoadKeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
		t.Fatal(err)
	}
	cas, err := l.state.Registry().CAs()
	if err != nil {
		t.Fatal(err)
	}
	l.trust = certs.NewBundle(cas)
	l.signer = noteSigner(t, f, id)
	ln, err := net.Listen("tcp", l.nf.RaftAddress)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Raft
	l.cons, err = consensus.Start(consensus.Config{
		ID:        id,
		DataDir:   filepath.Join(cfg.DataDir, "raft"),
		Listener:  ln,
		ServerTLS: certs.ServerConfig(l.cert, l.trust, []certs.Kind{certs.KindNode}),
		ClientTLS: certs.ClientConfig(l.cert, l.trust),
		FSM:       l.state,
		// No Prepare: what an honest leader refuses before proposing
		// (node.prepare) goes into the Raft log as it is.
		Prepare:            nil,
		HeartbeatTimeout:   r.HeartbeatTimeout,
		ElectionTimeout:    r.ElectionTimeout,
		LeaderLeaseTimeout: r.LeaderLeaseTimeout,
		CommitTimeout:      r.CommitTimeout,
		SnapshotInterval:   r.SnapshotInterval,
		SnapshotThreshold:  r.SnapshotThreshold,
		TrailingLogs:       r.TrailingLogs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.cons.Close() })

	// Whoever leads hands leadership over until the corrupted node leads and
	// every honest node follows it.
	eventually(t, "the corrupted node taking the lead", func() error {
		if l.cons.IsLeader() {
			for nid, n := range f.Nodes {
				if st, err := n.Consensus().Status(); err != nil || st.LeaderID != id {
					return errors.New(nid + " does not follow the corrupted node yet")
				}
			}
			return nil
		}
		if leader := f.Leader(); leader != "" && l.state.AppliedIndex() >= f.Nodes[leader].State().AppliedIndex() {
			f.Nodes[leader].Consensus().TransferLeadership()
		}
		return errors.New("another node leads")
	})
	return l
}

// propose commits c through Raft as the corrupted leader and returns its own
// state machine's result, once every running node has applied (or refused)
// the command. It fails the test if the command did not go through this
// node's Raft log, e.g. because leadership moved and it was forwarded to an
// honest leader, whose Prepare step would answer instead.
func (l *lyingLeader) propose(t *testing.T, c *hashfedv1.Command) *federation.Result {
	t.Helper()
	c.TimeUnixNano = time.Now().UnixNano()
	req, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	before := l.state.AppliedIndex()
	out, err := l.cons.Apply(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	index := l.state.AppliedIndex()
	if index <= before || !l.cons.IsLeader() {
		t.Fatalf("the command did not go through the corrupted leader's Raft log (applied index %d, then %d; leading: %v)", before, index, l.cons.IsLeader())
	}
	res, err := federation.DecodeResult(out)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "every node applying the corrupted leader's command", func() error {
		for id, n := range l.f.Nodes {
			if n.State().AppliedIndex() < index {
				return errors.New(id + " has not applied it yet")
			}
		}
		return nil
	})
	return res
}

func contribution(c *hashfedv1.Contribution) *hashfedv1.Command {
	return &hashfedv1.Command{Op: &hashfedv1.Command_Contribution{Contribution: c}}
}

// cosign asks node id to cosign body with the corrupted node's identity, as
// its checkpoint loop would.
func (l *lyingLeader) cosign(t *testing.T, id string, body []byte) ([]byte, error) {
	t.Helper()
	cfg := l.nf.NodeConfig()
	var addr string
	for _, nf := range l.f.Files {
		if nf.ID == id {
			addr = nf.APIAddress
		}
	}
	c, err := client.Dial(client.Config{Node: addr, Genesis: l.f.Genesis, Cert: cfg.TLSCert, Key: cfg.TLSKey})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Cluster.Cosign(testCtx(t), &hashfedv1.CosignRequest{Checkpoint: body})
	return res.GetSignatures(), err
}

// wantCosignRefused checks that every honest node refuses to cosign cp, a
// checkpoint of a tree of the corrupted node's making. The check that
// refuses it is Cosign's comparison of cp's root with the node's own root at
// cp's size; without it they would sign and this fails.
func (l *lyingLeader) wantCosignRefused(t *testing.T, cp ledger.Checkpoint) {
	t.Helper()
	for id, n := range l.f.Nodes {
		if n.State().Size() < cp.Size {
			t.Fatalf("%s holds %d entries, fewer than the checkpoint's %d: it would refuse for that reason alone", id, n.State().Size(), cp.Size)
		}
		sigs, err := l.cosign(t, id, cp.Marshal())
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(status.Convert(err).Message(), "differs from this node's") {
			t.Errorf("%s asked to cosign %+v: signatures %q, err %v; want FailedPrecondition saying the root differs from its own", id, cp, sigs, err)
		}
	}
}

// cosignedByAll returns cp signed by the corrupted node and cosigned by every
// honest node, failing the test if one refuses.
func (l *lyingLeader) cosignedByAll(t *testing.T, cp ledger.Checkpoint) []byte {
	t.Helper()
	signed, err := ledger.SignCheckpoint(cp, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	for id := range l.f.Nodes {
		sigs, err := l.cosign(t, id, cp.Marshal())
		if err != nil {
			t.Fatalf("%s refused to cosign %+v, a checkpoint of the ledger it holds: %v", id, cp, err)
		}
		signed = append(signed, sigs...)
	}
	return signed
}

// wantCheckpointRefused proposes signed as a checkpoint command through Raft
// and checks that the corrupted node's state machine refuses it with code
// saying msg, and that no node keeps it: every node's latest checkpoint is
// unchanged. The honest nodes' state machines check what the corrupted one
// does (federation.State.checkCheckpointLocked).
func (l *lyingLeader) wantCheckpointRefused(t *testing.T, signed []byte, code federation.Code, msg string) {
	t.Helper()
	before := map[string][]byte{l.id: latest(l.state)}
	for id, n := range l.f.Nodes {
		before[id] = latest(n.State())
	}
	res := l.propose(t, &hashfedv1.Command{Op: &hashfedv1.Command_Checkpoint{Checkpoint: signed}})
	if res.Code != code || !strings.Contains(res.Msg, msg) {
		t.Errorf("checkpoint command: result %+v, want code %v saying %q", res, code, msg)
	}
	after := map[string][]byte{l.id: latest(l.state)}
	for id, n := range l.f.Nodes {
		after[id] = latest(n.State())
	}
	for id, cp := range after {
		if string(cp) != string(before[id]) {
			t.Errorf("%s took the checkpoint: its latest is now\n%s", id, cp)
		}
	}
}

func latest(s *federation.State) []byte {
	signed, _ := s.LatestCheckpoint()
	return signed
}

// noteSigner loads node id's checkpoint signing key.
func noteSigner(t *testing.T, f *localfed.Federation, id string) note.Signer {
	t.Helper()
	for _, nf := range f.Files {
		if nf.ID != id {
			continue
		}
		skey, err := os.ReadFile(nf.NodeConfig().CheckpointKey)
		if err != nil {
			t.Fatal(err)
		}
		s, err := note.NewSigner(strings.TrimSpace(string(skey)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Fatalf("no node %q", id)
	return nil
}

// leafTree returns the Merkle tree of leaves and its checkpoint.
func leafTree(t *testing.T, leaves [][]byte) (*ledger.Tree, ledger.Checkpoint) {
	t.Helper()
	tr, err := ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	for _, leaf := range leaves {
		if _, err := tr.Append(leaf); err != nil {
			t.Fatal(err)
		}
	}
	root, err := tr.Root()
	if err != nil {
		t.Fatal(err)
	}
	return tr, ledger.Checkpoint{Origin: fedName, Size: tr.Size(), Hash: root}
}

// statementLeaf is the ledger leaf a state machine that accepted c would
// append.
func statementLeaf(t *testing.T, c *hashfedv1.Contribution) []byte {
	t.Helper()
	leaf, err := proto.MarshalOptions{Deterministic: true}.Marshal(&hashfedv1.LedgerEntry{
		TimeUnixNano: time.Now().UnixNano(),
		Kind:         &hashfedv1.LedgerEntry_Statement{Statement: &hashfedv1.StatementEntry{Envelope: c.Envelope}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// retimed returns a copy of leaf stamped a nanosecond later: another leaf
// carrying the same validly signed statement.
func retimed(t *testing.T, leaf []byte) []byte {
	t.Helper()
	var e hashfedv1.LedgerEntry
	if err := proto.Unmarshal(leaf, &e); err != nil {
		t.Fatal(err)
	}
	e.TimeUnixNano++
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// entries returns the corrupted node's (honest) ledger.
func (l *lyingLeader) entries(t *testing.T) [][]byte {
	t.Helper()
	leaves, err := l.state.Entries(0, l.state.Size())
	if err != nil {
		t.Fatal(err)
	}
	return leaves
}

// waitSize waits until every node, the corrupted one included, holds size
// entries with one root.
func (l *lyingLeader) waitSize(t *testing.T, size int64) {
	t.Helper()
	root, err := localfed.SameCheckpoint(testCtx(t), l.f, size)
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := l.state.Checkpoint(); err != nil || cp.Size != size || cp.Hash.String() != root {
		t.Fatalf("the corrupted node holds %+v (%v), the others size %d with root %s", cp, err, size, root)
	}
}

// A ledgerServer serves a ledger of the corrupted node's making as its
// LedgerService: what a leader whose state machine accepted it would serve.
type ledgerServer struct {
	hashfedv1.UnimplementedLedgerServiceServer
	leaves [][]byte
	tree   *ledger.Tree
	signed []byte
}

// serve serves leaves under the signed checkpoint with the corrupted node's
// certificate, until the test ends, and returns a client of it as org.
func (l *lyingLeader) serve(t *testing.T, leaves [][]byte, signed []byte, org string) *client.Client {
	t.Helper()
	tr, _ := leafTree(t, leaves)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(certs.ServerConfig(l.cert, l.trust, []certs.Kind{certs.KindNode, certs.KindClient}, "h2"))))
	hashfedv1.RegisterLedgerServiceServer(srv, &ledgerServer{leaves: leaves, tree: tr, signed: signed})
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	o := l.f.Orgs[org]
	c, err := client.Dial(client.Config{Node: ln.Addr().String(), Genesis: l.f.Genesis, Cert: o.ClientCert, Key: o.ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (s *ledgerServer) GetCheckpoint(context.Context, *hashfedv1.GetCheckpointRequest) (*hashfedv1.GetCheckpointResponse, error) {
	return &hashfedv1.GetCheckpointResponse{SignedCheckpoint: s.signed}, nil
}

func (s *ledgerServer) GetEntries(_ context.Context, req *hashfedv1.GetEntriesRequest) (*hashfedv1.GetEntriesResponse, error) {
	start, end := req.GetStart(), min(req.GetEnd(), int64(len(s.leaves)))
	if start < 0 || end <= start {
		return nil, status.Errorf(codes.OutOfRange, "entry range [%d, %d) of %d", start, end, len(s.leaves))
	}
	return &hashfedv1.GetEntriesResponse{Entries: s.leaves[start:end]}, nil
}

func (s *ledgerServer) GetInclusionProof(_ context.Context, req *hashfedv1.GetInclusionProofRequest) (*hashfedv1.GetInclusionProofResponse, error) {
	p, err := s.tree.InclusionProof(req.GetIndex(), req.GetTreeSize())
	if err != nil {
		return nil, status.Error(codes.OutOfRange, err.Error())
	}
	return &hashfedv1.GetInclusionProofResponse{Hashes: rawHashes(p)}, nil
}

func (s *ledgerServer) GetConsistencyProof(_ context.Context, req *hashfedv1.GetConsistencyProofRequest) (*hashfedv1.GetConsistencyProofResponse, error) {
	p, err := s.tree.ConsistencyProof(req.GetOldSize(), req.GetNewSize())
	if err != nil {
		return nil, status.Error(codes.OutOfRange, err.Error())
	}
	return &hashfedv1.GetConsistencyProofResponse{Hashes: rawHashes(p)}, nil
}

func rawHashes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i, h := range hs {
		out[i] = h[:]
	}
	return out
}

func toHashes(t *testing.T, raw [][]byte) []tlog.Hash {
	t.Helper()
	out := make([]tlog.Hash, len(raw))
	for i, h := range raw {
		if len(h) != tlog.HashSize {
			t.Fatalf("proof hash %d has %d bytes", i, len(h))
		}
		out[i] = tlog.Hash(h)
	}
	return out
}

// TestLyingLeaderInsertsUnsignedContribution: the leader proposes, through
// Raft, contributions in ngo's name that ngo never signed. Every node's
// state machine refuses them, the corrupted one's included, and the ledger
// does not change. A leader whose own state machine had accepted one holds
// a tree nobody else does: no honest node cosigns it, its own signature is
// not a checkpoint, and an audit of what it serves fails at the forged
// entry.
func TestLyingLeaderInsertsUnsignedContribution(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngo := signer(t, f, "ngo")
	first, err := dial(t, f, "ngo", "ngo-1").Publish(ctx, ngo, "ngo/csam", sampleSignals(0, 3), "")
	if err != nil {
		t.Fatal(err)
	}
	converge(t, f, first.TreeSize)
	l := startLyingLeader(t, f, "techco-1")
	size := l.state.Size()

	// Three forgeries of ngo's contribution 2.
	priv, _, err := federation.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "leaders-own.key")
	if err := os.WriteFile(keyFile, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	build := func(key string) *hashfedv1.Contribution {
		s, err := federation.LoadSigner("ngo", key)
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := federation.BuildContribution(s, fedName, "ngo/csam", 2, sampleSignals(10, 2), "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ownKey := build(keyFile)
	tampered := build(f.Orgs["ngo"].SigningKey)
	tampered.Envelope = flipSignature(t, tampered.Envelope)
	iwfKey := build(f.Orgs["iwf"].SigningKey) // a member's real key, not ngo's

	// The check that refuses them: checkStatementLocked verifies the
	// statement under the key the registry holds for the org it names.
	for _, tc := range []struct {
		name string
		c    *hashfedv1.Contribution
	}{
		{"signed with a key of the leader's making", ownKey},
		{"ngo's signature corrupted", tampered},
		{"signed with iwf's registered key", iwfKey},
	} {
		res := l.propose(t, contribution(tc.c))
		if res.Code != federation.CodeInvalid || !strings.Contains(res.Msg, `statement signature does not verify under org "ngo"'s registered signing key`) {
			t.Errorf("%s: the corrupted node's own state machine answered %+v, want a refusal of the signature", tc.name, res)
		}
		states := map[string]*federation.State{l.id + " (corrupted)": l.state}
		for id, n := range f.Nodes {
			states[id] = n.State()
		}
		for id, s := range states {
			if got, next := s.Size(), s.NextSequence("ngo", "ngo/csam"); got != size || next != 2 {
				t.Errorf("%s: %s holds %d entries with ngo's next sequence %d, want %d and 2: it took the forgery", tc.name, id, got, next, size)
			}
		}
	}

	// The corrupted node does lead a working federation: ngo's real
	// contribution 2, proposed by it, commits everywhere.
	genuine, _, err := federation.BuildContribution(ngo, fedName, "ngo/csam", 2, sampleSignals(10, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	if res := l.propose(t, contribution(genuine)); res.Code != 0 || res.Index != size {
		t.Fatalf("ngo's real contribution through the corrupted leader: %+v, want entry %d", res, size)
	}
	l.waitSize(t, size+1)

	// A leader whose state machine took the forgery instead holds entry
	// `size` forged. No honest node cosigns that tree, and its own signature
	// alone is not a checkpoint: checkCheckpointLocked wants a quorum of
	// voting orgs (and its root), on every node.
	forgedLeaves := append(slices.Clone(l.entries(t)[:size]), statementLeaf(t, ownKey))
	_, forged := leafTree(t, forgedLeaves)
	l.wantCosignRefused(t, forged)
	selfSigned, err := ledger.SignCheckpoint(forged, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	l.wantCheckpointRefused(t, selfSigned, federation.CodeInvalid, "a quorum is 2 of [ngo techco auditor]")

	// Served to an auditor: the checkpoint fails the policy (a majority of
	// voting orgs); an auditor content with one org's signature still finds
	// the forged entry, whose statement does not verify under ngo's key
	// (client's auditEntry).
	aud := l.serve(t, forgedLeaves, selfSigned, "auditor")
	_, err = aud.Audit(ctx, client.AuditOptions{})
	var pe *client.PolicyError
	if !errors.As(err, &pe) || !slices.Equal(pe.Orgs, []string{"techco"}) {
		t.Errorf("audit of the forged ledger: %v, want a policy error for a checkpoint signed by techco alone", err)
	}
	_, err = aud.Audit(ctx, client.AuditOptions{Policy: client.CheckpointPolicy{MinOrgs: 1}})
	var ae *client.AuditError
	if !errors.As(err, &ae) || ae.Index != size || !errors.Is(err, federation.ErrBadSignature) || !strings.Contains(err.Error(), `statement of org "ngo"`) {
		t.Errorf("audit of the forged ledger under a one-org policy: %v, want a bad signature of ngo's statement at entry %d", err, size)
	}
}

// TestLyingLeaderDropsAcknowledgedContribution: ngo holds a receipt for its
// contribution, under a checkpoint cosigned by every org, and the auditor a
// saved state of that checkpoint. The corrupted leader then rewrites the
// ledger without it, to the same size and to a larger one. No honest node
// cosigns the rewrite; even signed by a second, colluding org (a quorum),
// no node keeps it as a checkpoint; and served, it fails both the receipt's
// consistency check and the auditor's saved state.
func TestLyingLeaderDropsAcknowledgedContribution(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngo := signer(t, f, "ngo")
	pub := dial(t, f, "ngo", "ngo-1")
	if _, err := pub.Publish(ctx, ngo, "ngo/csam", sampleSignals(0, 2), ""); err != nil {
		t.Fatal(err)
	}
	acked, err := pub.Publish(ctx, ngo, "ngo/csam", sampleSignals(2, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	converge(t, f, acked.TreeSize)
	receipt, info, err := pub.Receipt(ctx, acked.Index)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := dial(t, f, "auditor", "auditor-1").Audit(ctx, client.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saved := rep.State
	if info.Checkpoint.Size != acked.TreeSize || saved.Size != acked.TreeSize {
		t.Fatalf("receipt under a checkpoint of size %d, audit state at %d; want both %d", info.Checkpoint.Size, saved.Size, acked.TreeSize)
	}

	l := startLyingLeader(t, f, "techco-1")
	// The federation goes on under the corrupted leader.
	for seq := uint64(3); seq <= 4; seq++ {
		c, _, err := federation.BuildContribution(ngo, fedName, "ngo/csam", seq, sampleSignals(int(seq)*10, 2), "")
		if err != nil {
			t.Fatal(err)
		}
		if res := l.propose(t, contribution(c)); res.Code != 0 {
			t.Fatalf("ngo's contribution %d through the corrupted leader: %+v", seq, res)
		}
	}
	l.waitSize(t, acked.TreeSize+2)
	leaves := l.entries(t)
	dropped := slices.Delete(slices.Clone(leaves), int(acked.Index), int(acked.Index)+1)
	proof, err := ledger.ParseProof(receipt)
	if err != nil {
		t.Fatal(err)
	}
	colluder := noteSigner(t, f, "auditor-1") // a second org's real key

	for _, tc := range []struct {
		name string
		size int64
		// code and msg: why the state machines refuse the colluded
		// checkpoint (checkCheckpointLocked).
		code federation.Code
		msg  string
	}{
		{"same size as the receipt's checkpoint", acked.TreeSize, federation.CodeAlreadyExists, "not larger than the last published"},
		{"larger", acked.TreeSize + 1, federation.CodeInvalid, "differs from this ledger's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rewritten := dropped[:tc.size]
			_, cp := leafTree(t, rewritten)
			l.wantCosignRefused(t, cp)
			colluded, err := ledger.SignCheckpoint(cp, l.signer, colluder)
			if err != nil {
				t.Fatal(err)
			}
			l.wantCheckpointRefused(t, colluded, tc.code, tc.msg)

			// Served: ngo checks that the new checkpoint extends the one of
			// its receipt, and that its entry is still in it; both proofs
			// fail (ledger.VerifyConsistency, ledger.VerifyInclusion).
			c := l.serve(t, rewritten, colluded, "ngo")
			cr, err := c.Ledger.GetConsistencyProof(ctx, &hashfedv1.GetConsistencyProofRequest{OldSize: info.Checkpoint.Size, NewSize: cp.Size})
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.VerifyConsistency(info.Checkpoint.Size, info.Checkpoint.Hash, cp.Size, cp.Hash, toHashes(t, cr.GetHashes())); !errors.Is(err, ledger.ErrInvalidProof) {
				t.Errorf("consistency of the receipt's checkpoint with the rewritten one: %v, want an invalid proof", err)
			}
			ir, err := c.Ledger.GetInclusionProof(ctx, &hashfedv1.GetInclusionProofRequest{Index: proof.Index, TreeSize: cp.Size})
			if err != nil {
				t.Fatal(err)
			}
			if err := ledger.VerifyInclusion(proof.Extra, proof.Index, cp.Size, cp.Hash, toHashes(t, ir.GetHashes())); !errors.Is(err, ledger.ErrInvalidProof) {
				t.Errorf("the receipt's entry in the rewritten tree: %v, want an invalid proof", err)
			}

			// The auditor's saved state: a split view (checkSplitView).
			aud := l.serve(t, rewritten, colluded, "auditor")
			_, err = aud.Audit(ctx, client.AuditOptions{State: saved})
			var sv *client.SplitViewError
			if !errors.As(err, &sv) || sv.A.Node != client.SavedState || sv.A.Checkpoint == nil || string(sv.B.Checkpoint) != string(colluded) {
				t.Fatalf("audit of the rewritten ledger from the saved state: %v, want a split view between the saved checkpoint and the served one", err)
			}
			t.Logf("%s", err)
		})
	}
}

// TestLyingLeaderSignsInconsistentCheckpoint: after a checkpoint of size 5
// that every org cosigned (through the corrupted leader, whose honest
// cosigning works), the leader's checkpoint key signs trees that contradict
// it: another root at size 5, another at a smaller size, a larger tree that
// does not extend it, and the true but smaller tree of size 4 (a rollback).
// No honest node cosigns a contradiction; no node keeps any of them as its
// checkpoint, whether signed by the leader alone or with a colluding second
// org; and the auditor's saved state calls the non-extending tree a split
// view. TestAuditForkedCheckpoint (client/tamper_test.go) covers the
// auditor comparing two nodes that serve such forks.
func TestLyingLeaderSignsInconsistentCheckpoint(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngo := signer(t, f, "ngo")
	pub := dial(t, f, "ngo", "auditor-1")
	for i := range 3 {
		if _, err := pub.Publish(ctx, ngo, "ngo/csam", sampleSignals(i*10, 2), ""); err != nil {
			t.Fatal(err)
		}
	}
	converge(t, f, 4)
	l := startLyingLeader(t, f, "techco-1")
	publish := func(seq uint64) {
		t.Helper()
		c, _, err := federation.BuildContribution(ngo, fedName, "ngo/csam", seq, sampleSignals(int(seq)*10, 2), "")
		if err != nil {
			t.Fatal(err)
		}
		if res := l.propose(t, contribution(c)); res.Code != 0 {
			t.Fatalf("ngo's contribution %d through the corrupted leader: %+v", seq, res)
		}
	}

	// Honest first: a checkpoint of size 5, cosigned by all and kept by all.
	publish(4)
	l.waitSize(t, 5)
	true5, err := l.state.RootAt(5)
	if err != nil {
		t.Fatal(err)
	}
	published := l.cosignedByAll(t, true5)
	if res := l.propose(t, &hashfedv1.Command{Op: &hashfedv1.Command_Checkpoint{Checkpoint: published}}); res.Code != 0 {
		t.Fatalf("the honest checkpoint through the corrupted leader: %+v", res)
	}
	for id, n := range f.Nodes {
		if string(latest(n.State())) != string(published) {
			t.Fatalf("%s did not keep the honest checkpoint of size 5", id)
		}
	}
	rep, err := dial(t, f, "auditor", "auditor-1").Audit(ctx, client.AuditOptions{})
	if err != nil || rep.State.Size != 5 {
		t.Fatalf("audit at size 5: %+v, %v", rep, err)
	}
	saved := rep.State
	publish(5)
	l.waitSize(t, 6)
	leaves := l.entries(t)

	// fork returns the tree of the first size leaves with leaf at retimed.
	fork := func(size, at int) ([][]byte, ledger.Checkpoint) {
		forked := slices.Clone(leaves[:size])
		forked[at] = retimed(t, forked[at])
		_, cp := leafTree(t, forked)
		return forked, cp
	}
	colluder := noteSigner(t, f, "auditor-1") // a second org's real key
	same, sameCP := fork(5, 4)
	smaller, smallerCP := fork(3, 2)
	larger, largerCP := fork(6, 1)
	for _, tc := range []struct {
		name   string
		leaves [][]byte
		cp     ledger.Checkpoint
		// code and msg: why the state machines refuse the colluded
		// checkpoint (checkCheckpointLocked): sizes only grow, and a
		// checkpoint's root must be the node's own.
		code federation.Code
		msg  string
	}{
		{"another root at the published size", same, sameCP, federation.CodeAlreadyExists, "not larger than the last published (5)"},
		{"another root at a smaller size", smaller, smallerCP, federation.CodeAlreadyExists, "not larger than the last published (5)"},
		{"a larger tree that does not extend the published one", larger, largerCP, federation.CodeInvalid, "differs from this ledger's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l.wantCosignRefused(t, tc.cp)
			selfSigned, err := ledger.SignCheckpoint(tc.cp, l.signer)
			if err != nil {
				t.Fatal(err)
			}
			l.wantCheckpointRefused(t, selfSigned, federation.CodeInvalid, "a quorum is 2")
			colluded, err := ledger.SignCheckpoint(tc.cp, l.signer, colluder)
			if err != nil {
				t.Fatal(err)
			}
			l.wantCheckpointRefused(t, colluded, tc.code, tc.msg)
			if tc.cp.Size <= saved.Size {
				return
			}
			// Served to the auditor whose saved state is the published
			// checkpoint of size 5: the node cannot prove that its tree
			// extends it (checkSplitView, ledger.VerifyConsistency).
			_, err = l.serve(t, tc.leaves, colluded, "auditor").Audit(ctx, client.AuditOptions{State: saved})
			var sv *client.SplitViewError
			if !errors.As(err, &sv) || sv.A.Node != client.SavedState || !errors.Is(err, ledger.ErrInvalidProof) ||
				!strings.Contains(err.Error(), "cannot prove that its checkpoint of size 6 extends the one of size 5") {
				t.Fatalf("audit of the fork from the saved state: %v, want a split view for want of a consistency proof", err)
			}
		})
	}

	// A rollback: the true tree of size 4. The honest nodes cosign it (it is
	// history they hold), but checkpoint sizes only grow: no node replaces
	// its checkpoint of size 5 with it.
	t.Run("a true but smaller checkpoint", func(t *testing.T) {
		true4, err := l.state.RootAt(4)
		if err != nil {
			t.Fatal(err)
		}
		l.wantCheckpointRefused(t, l.cosignedByAll(t, true4), federation.CodeAlreadyExists, "checkpoint of size 4 is not larger than the last published (5)")
	})
}
