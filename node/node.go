package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/consensus"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// MaxMessageSize bounds one gRPC message in either direction: a contribution
// (payload ≤ 3 MiB plus its envelope) fits with room to spare.
const MaxMessageSize = 4 << 20

// A Node is one running hashfed node.
type Node struct {
	cfg    Config
	log    *slog.Logger
	id     certs.Identity
	state  *federation.State
	cons   *consensus.Node
	signer note.Signer
	grpc   *grpc.Server
	health *health.Server
	apiLn  net.Listener
	trust  *certs.DynamicBundle // per-org roots of the current members
	// peerCreds authenticate this node to other nodes' APIs (cosigning).
	peerCreds credentials.TransportCredentials
	cosigners cosigners
	tiles     *tileServer // nil without http_listen

	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	// consReady is closed once cons is set.
	consReady chan struct{}
	// removing holds the joined servers being removed for holding the log
	// without the right to (see onRefusedServer).
	removing sync.Map
}

// Start starts a node: Raft, the state machine, the gRPC API and, if
// configured, the HTTPS tile server. It returns once they are listening;
// the federation may still be electing a leader.
func Start(cfg Config) (_ *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.logger().With("node", cfg.NodeID)
	doc, err := os.ReadFile(cfg.Genesis)
	if err != nil {
		return nil, fmt.Errorf("reading genesis: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	state, err := federation.OpenState(filepath.Join(cfg.DataDir, "state"), doc, federation.StateOptions{})
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			state.Close()
		}
	}()
	g := state.Genesis()

	cert, err := certs.LoadKeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("loading node certificate: %w", err)
	}
	id, err := certs.IdentityFromCert(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w", err)
	}
	if id.Kind != certs.KindNode || id.Name != cfg.NodeID {
		return nil, fmt.Errorf("node certificate names %s, but node_id is %q: issue it with hashfed certs create-node --name %s", id, cfg.NodeID, cfg.NodeID)
	}
	if g.Org(id.Org) == nil {
		return nil, fmt.Errorf("node certificate belongs to org %q, which is not in the genesis of %q", id.Org, g.Federation)
	}
	gn := g.Node(cfg.NodeID)
	if gn != nil && gn.Org != id.Org {
		return nil, fmt.Errorf("genesis lists node %q under org %q, but its certificate is from org %q", cfg.NodeID, gn.Org, id.Org)
	}

	skey, err := os.ReadFile(cfg.CheckpointKey)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint key: %w", err)
	}
	signer, err := note.NewSigner(string(trimSpace(skey)))
	if err != nil {
		return nil, fmt.Errorf("checkpoint key %s: %w", cfg.CheckpointKey, err)
	}
	if want := federation.CheckpointKeyName(g.Federation, cfg.NodeID); signer.Name() != want {
		return nil, fmt.Errorf("checkpoint key is named %q, want %q", signer.Name(), want)
	}
	if gn != nil {
		v, _ := note.NewVerifier(gn.CheckpointKey)
		if v.KeyHash() != signer.KeyHash() {
			return nil, fmt.Errorf("checkpoint key %s does not match the key the genesis lists for node %q", cfg.CheckpointKey, cfg.NodeID)
		}
	}

	trust, err := trustBundle(state)
	if err != nil {
		return nil, err
	}
	// Raft and forwarded writes: only nodes of member orgs.
	raftServerTLS := certs.ServerConfig(cert, trust, []certs.Kind{certs.KindNode})
	clientTLS := certs.ClientConfig(cert, trust)
	// The API: nodes and org users alike.
	apiTLS := certs.ServerConfig(cert, trust, []certs.Kind{certs.KindNode, certs.KindClient}, "h2")

	raftLn, apiLn := cfg.RaftListener, cfg.APIListener
	raftListen, apiListen, advertise := cfg.RaftListen, cfg.APIListen, cfg.RaftAdvertise
	if gn != nil {
		raftListen = orDefault(raftListen, gn.RaftAddress)
		apiListen = orDefault(apiListen, gn.APIAddress)
		advertise = orDefault(advertise, gn.RaftAddress)
	} else if len(cfg.Join) > 0 {
		// A joining node tells the leader where to dial it for Raft. Its
		// listen address does only if it names a host (not ":7401").
		advertise = orDefault(advertise, raftListen)
		if host, _, err := net.SplitHostPort(advertise); err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
			return nil, fmt.Errorf("config: a node that joins needs raft_advertise, the host:port other nodes dial for Raft; %q names no host they can dial (e.g. raft_advertise: \"%s.example.org:7401\")", advertise, cfg.NodeID)
		}
	}
	if raftLn == nil {
		if raftListen == "" {
			return nil, errors.New("config: raft_listen is required for a node not listed in the genesis")
		}
		if raftLn, err = net.Listen("tcp", raftListen); err != nil {
			return nil, fmt.Errorf("raft listener: %w", err)
		}
	}
	if apiLn == nil {
		if apiListen == "" {
			raftLn.Close()
			return nil, errors.New("config: api_listen is required for a node not listed in the genesis")
		}
		if apiLn, err = net.Listen("tcp", apiListen); err != nil {
			raftLn.Close()
			return nil, fmt.Errorf("api listener: %w", err)
		}
	}

	n := &Node{cfg: cfg, log: log, id: id, state: state, signer: signer, apiLn: apiLn, stop: make(chan struct{}), consReady: make(chan struct{})}
	n.peerCreds = credentials.NewTLS(clientTLS)
	n.trust = trust
	n.cosigners.n = n

	var boot []consensus.Peer
	for _, gn := range g.Nodes {
		if gn.Voter {
			boot = append(boot, consensus.Peer{ID: gn.ID, Address: gn.RaftAddress})
		}
	}
	if gn == nil || !gn.Voter {
		boot = nil // non-voters wait to be added
	}
	if len(cfg.Join) > 0 {
		// A node given join addresses never bootstraps: it is a node that
		// joins later, or a founding voter that lost its data and rejoins
		// the running federation (docs/OPERATIONS.md). It asks the leader to
		// add it back and takes the ledger from a snapshot and the log.
		boot = nil
	}
	r := cfg.Raft
	n.cons, err = consensus.Start(consensus.Config{
		ID:                 cfg.NodeID,
		DataDir:            filepath.Join(cfg.DataDir, "raft"),
		Listener:           raftLn,
		Advertise:          advertise,
		ServerTLS:          raftServerTLS,
		ClientTLS:          clientTLS,
		Bootstrap:          boot,
		Rejoin:             len(cfg.Join) > 0,
		FSM:                state,
		Prepare:            n.prepare,
		AuthorizePeer:      n.authorizePeer,
		AuthorizeJoin:      n.authorizeJoin,
		AuthorizeServer:    n.authorizeServer,
		OnRefusedServer:    n.onRefusedServer,
		Log:                log,
		HeartbeatTimeout:   r.HeartbeatTimeout,
		ElectionTimeout:    r.ElectionTimeout,
		LeaderLeaseTimeout: r.LeaderLeaseTimeout,
		CommitTimeout:      r.CommitTimeout,
		SnapshotInterval:   r.SnapshotInterval,
		SnapshotThreshold:  r.SnapshotThreshold,
		TrailingLogs:       r.TrailingLogs,
	})
	if err != nil {
		raftLn.Close()
		apiLn.Close()
		return nil, err
	}
	close(n.consReady)

	n.grpc = grpc.NewServer(
		grpc.Creds(logRefusals(credentials.NewTLS(apiTLS), log)),
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.ChainUnaryInterceptor(n.unaryAuth),
		grpc.ChainStreamInterceptor(n.streamAuth),
	)
	hashfedv1.RegisterPublishServiceServer(n.grpc, &publishService{n: n})
	hashfedv1.RegisterSubscribeServiceServer(n.grpc, &subscribeService{n: n})
	hashfedv1.RegisterLedgerServiceServer(n.grpc, &ledgerService{n: n})
	hashfedv1.RegisterClusterServiceServer(n.grpc, &clusterService{n: n})
	hashfedv1.RegisterGovernanceServiceServer(n.grpc, &governanceService{n: n})
	hashfedv1.RegisterSetServiceServer(n.grpc, &setService{n: n})
	n.health = health.NewServer()
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(n.grpc, n.health)
	reflection.Register(n.grpc)

	n.wg.Add(2)
	go func() {
		defer n.wg.Done()
		if err := n.grpc.Serve(apiLn); err != nil {
			log.Error("gRPC server stopped", "err", err)
		}
	}()
	go func() { defer n.wg.Done(); n.recordGenesis() }()
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.checkpointLoop(cfg.CheckpointInterval) }()
	go func() { defer n.wg.Done(); n.trustLoop() }()
	if err := n.startTileServer(cert, trust); err != nil {
		n.Close()
		return nil, err
	}
	if len(cfg.Join) > 0 {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.joinLoop(advertise, cert) }()
	}
	log.Info("node started", "identity", id.String(), "api", apiLn.Addr().String(), "raft", advertise, "federation", g.Federation)
	return n, nil
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == ' ') {
		b = b[:len(b)-1]
	}
	return b
}

// trustBundle builds the per-org CA roots of the current members.
func trustBundle(state *federation.State) (*certs.DynamicBundle, error) {
	cas, err := state.Registry().CAs()
	if err != nil {
		return nil, err
	}
	return certs.NewDynamicBundle(certs.NewBundle(cas)), nil
}

// trustLoop rebuilds the TLS trust whenever governance changes membership or
// a CA certificate. Every new handshake, Raft's and the API's alike, checks
// against the bundle of that moment, so a removed org's new connections are
// refused as soon as the act is applied here.
func (n *Node) trustLoop() {
	seen := n.state.TrustVersion()
	for {
		changed := n.state.Changed()
		if v := n.state.TrustVersion(); v != seen {
			cas, err := n.state.Registry().CAs()
			if err != nil {
				n.log.Error("rebuilding TLS trust", "err", err)
			} else {
				n.trust.Store(certs.NewBundle(cas))
				n.log.Info("TLS trust rebuilt from the ledger", "orgs", len(cas))
			}
			// Membership or read access may have changed: a joined node
			// whose org no longer may hold the log stops receiving it.
			n.cons.RecheckServers()
			seen = v
		}
		select {
		case <-n.stop:
			return
		case <-changed:
		}
	}
}

// APIAddr returns the address the gRPC API listens on.
func (n *Node) APIAddr() string { return n.apiLn.Addr().String() }

// State returns the node's federation state (read-only use).
func (n *Node) State() *federation.State { return n.state }

// Consensus returns the node's Raft node.
func (n *Node) Consensus() *consensus.Node { return n.cons }

// Close stops the API and Raft. Open subscription streams end.
func (n *Node) Close() error {
	var err error
	n.stopOnce.Do(func() {
		close(n.stop)
		n.health.Shutdown()
		n.stopTileServer()
		stopped := make(chan struct{})
		go func() { n.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			n.grpc.Stop()
		}
		err = n.cons.Close()
		n.wg.Wait()
		n.cosigners.close()
		if cerr := n.state.Close(); err == nil {
			err = cerr
		}
		n.log.Info("node stopped")
	})
	return err
}

// prepare runs on the leader: it stamps the command with the leader's time
// and refuses, before anything reaches the Raft log, contributions the
// current state already rules out.
func (n *Node) prepare(req []byte) (cmd, rejectRes []byte) {
	var c hashfedv1.Command
	if err := proto.Unmarshal(req, &c); err != nil {
		return nil, federation.EncodeResult(&federation.Result{Code: federation.CodeInvalid, Msg: "request does not decode"})
	}
	if env := c.GetGovernance(); env != nil {
		if err := n.state.CheckAct(env); err != nil {
			return nil, federation.EncodeResult(&federation.Result{Code: federation.CodeOf(err), Msg: err.Error()})
		}
	}
	if cp := c.GetCheckpoint(); cp != nil {
		if err := n.state.CheckCheckpoint(cp); err != nil {
			return nil, federation.EncodeResult(&federation.Result{Code: federation.CodeOf(err), Msg: err.Error()})
		}
	}
	if ct := c.GetContribution(); ct != nil {
		if _, err := n.state.Check(ct); err != nil {
			var re *federation.RejectError
			if errors.As(err, &re) {
				return nil, federation.EncodeResult(&federation.Result{Code: re.Code, Msg: re.Msg, Committed: re.Committed})
			}
			return nil, federation.EncodeResult(&federation.Result{Code: federation.CodeInvalid, Msg: err.Error()})
		}
	}
	c.TimeUnixNano = time.Now().UnixNano()
	out, err := proto.Marshal(&c)
	if err != nil {
		return nil, federation.EncodeResult(&federation.Result{Code: federation.CodeInvalid, Msg: err.Error()})
	}
	return out, nil
}

// recordGenesis makes sure ledger entry 0 is the genesis document: whichever
// node leads first proposes it (the state machine ignores repeats), and the
// node reports SERVING once it holds it.
func (n *Node) recordGenesis() {
	req, _ := proto.Marshal(&hashfedv1.Command{Op: &hashfedv1.Command_Genesis{Genesis: n.state.GenesisDocument()}})
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for n.state.Size() == 0 {
		if n.cons.IsLeader() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if _, err := n.cons.Apply(ctx, req); err != nil {
				n.log.Warn("recording genesis entry", "err", err)
			}
			cancel()
		}
		select {
		case <-n.stop:
			return
		case <-n.state.Changed():
		case <-t.C:
		}
	}
	n.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
}
