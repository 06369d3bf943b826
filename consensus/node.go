package consensus

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/hashfed/hashfed/internal/netlimit"
)

// Errors callers branch on.
var (
	// ErrNotLeader is returned when an operation that needs the leader runs elsewhere.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrNoLeader is returned when no leader is known before the context ends.
	ErrNoLeader = errors.New("no raft leader is known; the cluster may be electing one or may have lost its majority")
)

// A Peer is one voter of the initial configuration.
type Peer struct {
	ID      string
	Address string
}

// Config configures a [Node]. Zero durations take the defaults of [DefaultConfig].
type Config struct {
	// ID is the node's Raft server ID.
	ID string
	// DataDir holds raft.db (log and stable store) and snapshots/.
	DataDir string
	// Listener is the bound TCP listener for Raft and forwarded requests.
	Listener net.Listener
	// Advertise is host:port other nodes dial; empty means Listener's address.
	Advertise string
	// ServerTLS authenticates incoming connections; ClientTLS outgoing ones.
	ServerTLS, ClientTLS *tls.Config
	// Bootstrap is the initial voter set. A node with no Raft state bootstraps
	// with it; empty means the node waits to be added with Join.
	Bootstrap []Peer
	// Rejoin says the node joins a running cluster. If it starts without
	// Raft state (new, or a voter that lost its data), it refuses to vote
	// until its log reaches the commit index of the first leader that
	// contacts it (see voteGuard).
	Rejoin bool
	// FSM is the state machine Raft drives.
	FSM StateMachine
	// Prepare runs on the leader and turns a request into the command to
	// commit, or returns reject, the result to answer with without committing.
	// Nil commits requests as they are.
	Prepare func(req []byte) (cmd, reject []byte)
	// Log receives the node's and Raft's log lines.
	Log *slog.Logger
	// AuthorizePeer decides, after ServerTLS has verified a peer's
	// certificate, whether the peer may use this connection: raft is true
	// for a Raft RPC connection (only voters send those: AppendEntries,
	// RequestVote, snapshots), false for a forwarding connection (any
	// member of the configuration sends writes, joins and sync requests to
	// the leader). members reports whether a server ID is in the latest
	// configuration this node knows. Nil allows every peer ServerTLS accepts.
	AuthorizePeer func(cs tls.ConnectionState, raft bool, members func(id string) bool) error
	// AuthorizeJoin runs on the leader before it adds a server, whoever
	// forwarded the request, and refuses joins the federation does not allow
	// (such as a voter the founding configuration does not list). Nil allows
	// every join.
	AuthorizeJoin func(id, address string, voter bool) error
	// AuthorizeServer decides, after ClientTLS has verified the certificate
	// of a server this node dialed to send Raft RPCs (which carry the whole
	// log), whether it may receive them. id is the server the latest
	// configuration lists at the dialed address, "" if none. A refused dial
	// fails; so does a connection refused when [Node.RecheckServers] runs.
	// Nil allows every server ClientTLS accepts.
	AuthorizeServer func(id string, cs tls.ConnectionState) error
	// OnRefusedServer, if set, is called on a goroutine of its own with the
	// ID of each server AuthorizeServer refused.
	OnRefusedServer func(id string)

	// Raft timing. For federations spanning continents raise these well above
	// the round-trip time (e.g. 1.5 s heartbeat and election timeouts for 150 ms RTT).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval and SnapshotThreshold: how often Raft checks, and how
	// many new log entries trigger a snapshot. TrailingLogs are kept after it.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// ApplyTimeout bounds one write when the caller's context has no deadline.
	ApplyTimeout time.Duration
	// DialTimeout bounds connecting to another node.
	DialTimeout time.Duration
	// MaxConns bounds the connections open at once on the Raft listener,
	// handshakes in progress included; past it, new connections are closed
	// at once. 0 means [DefaultMaxConns].
	MaxConns int
	// MaxForwardConns bounds the forward connections served at once; 0
	// means [DefaultMaxForwardConns].
	MaxForwardConns int
	// ForwardIdleTimeout is how long a served forward connection may wait
	// for its next request; ForwardFrameTimeout bounds reading one request
	// once it has begun, and writing its response. 0 means the defaults.
	ForwardIdleTimeout  time.Duration
	ForwardFrameTimeout time.Duration
	// HandshakeTimeout bounds a connection's TLS handshake and kind byte on
	// the Raft listener; 0 means [DefaultHandshakeTimeout].
	HandshakeTimeout time.Duration
}

// DefaultMaxConns is the default bound on the Raft listener's connections:
// an eighth of the descriptor limit, and at least 256 (a peer holds a few
// Raft connections and one forward connection per write in flight).
func DefaultMaxConns() int { return max(256, netlimit.Share(8)) }

// DefaultMaxForwardConns is the default bound on forward connections served
// at once.
const DefaultMaxForwardConns = 256

// Default forward connection deadlines. A forwarder drops its idle
// connections once the peer closes them (see alive), so the idle timeout
// costs a redial at most.
const (
	DefaultForwardIdleTimeout  = 2 * time.Minute
	DefaultForwardFrameTimeout = 30 * time.Second
)

// DefaultConfig returns timings suited to a LAN or one machine.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   1000 * time.Millisecond,
		ElectionTimeout:    1000 * time.Millisecond,
		LeaderLeaseTimeout: 500 * time.Millisecond,
		CommitTimeout:      20 * time.Millisecond,
		SnapshotInterval:   2 * time.Minute,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
		ApplyTimeout:       10 * time.Second,
		DialTimeout:        5 * time.Second,
	}
}

func (c *Config) fillDefaults() {
	d := DefaultConfig()
	set := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	set(&c.ElectionTimeout, d.ElectionTimeout)
	set(&c.LeaderLeaseTimeout, min(d.LeaderLeaseTimeout, c.HeartbeatTimeout))
	set(&c.CommitTimeout, d.CommitTimeout)
	set(&c.SnapshotInterval, d.SnapshotInterval)
	set(&c.ApplyTimeout, d.ApplyTimeout)
	set(&c.DialTimeout, d.DialTimeout)
	set(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	set(&c.ForwardIdleTimeout, DefaultForwardIdleTimeout)
	set(&c.ForwardFrameTimeout, DefaultForwardFrameTimeout)
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns()
	}
	if c.MaxForwardConns == 0 {
		c.MaxForwardConns = DefaultMaxForwardConns
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// A Node is one running Raft server.
type Node struct {
	cfg     Config
	raft    *raft.Raft
	machine *fsm
	// readyTerm is the latest term in which this node, as leader, has seen
	// every earlier command applied (see leaderReady).
	readyTerm atomic.Uint64
	store     *raftboltdb.BoltStore
	transport *raft.NetworkTransport
	mux       *muxListener
	streams   *streamLayer
	fwd       *forwarder
	// started is raft once it exists, for connections the mux accepts
	// while Start is still running.
	started atomic.Pointer[raft.Raft]

	// served holds the forward connections this node accepted, so Close can
	// end them: a peer must not keep talking to a node that has stopped.
	servedMu sync.Mutex
	served   map[net.Conn]struct{}
	closed   bool
}

// Start opens the node's stores, starts Raft and, on first start with a
// bootstrap list, bootstraps the cluster.
func Start(cfg Config) (*Node, error) {
	cfg.fillDefaults()
	if cfg.ID == "" || cfg.DataDir == "" || cfg.Listener == nil || cfg.FSM == nil || cfg.ServerTLS == nil || cfg.ClientTLS == nil {
		return nil, errors.New("consensus: ID, DataDir, Listener, FSM, ServerTLS and ClientTLS are required")
	}
	if cfg.Advertise == "" {
		cfg.Advertise = cfg.Listener.Addr().String()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg}
	n.fwd = &forwarder{n: n}
	hl := newHCLogger(cfg.Log.With("component", "raft"))

	store, err := raftboltdb.NewBoltStore(filepath.Join(cfg.DataDir, "raft.db"))
	if err != nil {
		return nil, fmt.Errorf("opening raft log store: %w", err)
	}
	n.store = store
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hl)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("opening snapshot store: %w", err)
	}
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		store.Close()
		return nil, err
	}

	n.mux = newMuxListener(netlimit.Listen(cfg.Listener, netlimit.Options{Name: "raft", MaxConns: cfg.MaxConns, Log: cfg.Log}), tcpAddr(cfg.Advertise), cfg.ServerTLS, cfg.HandshakeTimeout, cfg.Log, n.serveForward, n.authorizePeer)
	n.streams = &streamLayer{m: n.mux, dialTLS: cfg.ClientTLS, authorize: n.authorizeServer}
	n.transport = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  n.streams,
		MaxPool: 3,
		// One RPC in flight per follower turns pipelined replication off.
		// hashicorp/raft v1.7.3 can deadlock a pipeline: with the default of 2
		// both pipeline channels are unbuffered, and when the decoder exits on
		// a follower's Success=false the sender blocks forever handing over
		// its next request. The follower then silently stops receiving
		// entries (heartbeats still flow, so no election heals it) and
		// Shutdown hangs. Our node tests hit it when a restarted follower
		// rejected entries; grafana/pyroscope#5518 traces the same path, and
		// raft's own notes (hashicorp/raft#541) find pipelining gains little.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          hl,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.Logger = hl
	// The state machine may be durable: restoreOnStart below decides whether
	// the snapshot is needed, and fsm skips commands the machine holds.
	rc.NoSnapshotRestoreOnStart = true
	if err := raft.ValidateConfig(rc); err != nil {
		n.closeStores()
		return nil, fmt.Errorf("raft config: %w", err)
	}

	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		n.closeStores()
		return nil, err
	}
	machine := newFSM(cfg.FSM)
	if err := restoreOnStart(machine, snaps); err != nil {
		n.closeStores()
		return nil, err
	}
	n.machine = machine
	guard, err := newVoteGuard(n.transport, cfg.DataDir, cfg.Rejoin && !existing, cfg.Log)
	if err != nil {
		n.closeStores()
		return nil, err
	}
	guard.lastIndex = func() (uint64, bool) {
		r := n.started.Load()
		if r == nil {
			return 0, false
		}
		return r.LastIndex(), true
	}
	r, err := raft.NewRaft(rc, machine, logs, store, snaps, guard)
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("starting raft: %w", err)
	}
	n.raft = r
	n.started.Store(r)
	if !existing && len(cfg.Bootstrap) > 0 {
		var servers []raft.Server
		for _, p := range cfg.Bootstrap {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Address)})
		}
		// Every founding node bootstraps with the same configuration, which
		// Raft documents as safe; ErrCantBootstrap means state already exists.
		if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			n.Close()
			return nil, fmt.Errorf("bootstrapping raft: %w", err)
		}
	}
	n.mux.serveForwards()
	return n, nil
}

func (n *Node) closeStores() {
	if n.transport != nil {
		n.transport.Close()
	}
	if n.mux != nil {
		n.mux.Close()
	}
	n.store.Close()
}

// Close stops Raft and releases the stores and the listener.
func (n *Node) Close() error {
	f := n.raft.Shutdown()
	// Close the transport before waiting for Raft's goroutines: a peer RPC
	// stalled on a dead connection would otherwise hold shutdown until its
	// timeout. The stores close only after every goroutine has stopped.
	n.transport.Close()
	n.transport.CloseStreams() // pooled outgoing Raft connections
	n.mux.Close()
	n.servedMu.Lock()
	n.closed = true
	for c := range n.served {
		c.Close()
	}
	n.servedMu.Unlock()
	err := f.Error()
	n.fwd.closeAll()
	n.store.Close()
	return err
}

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderCh reports leadership changes of this node (see raft.Raft.LeaderCh).
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// Apply commits req through the leader: on the leader directly, elsewhere by
// forwarding. It returns the state machine's result for the command, or
// Prepare's rejection. It retries while no leader is known and while a
// request provably did not reach one, until ctx ends.
func (n *Node) Apply(ctx context.Context, req []byte) ([]byte, error) {
	return n.toLeader(ctx, func(ctx context.Context) ([]byte, error) { return n.applyLocal(ctx, req) }, opApply, req)
}

// Join adds a server to the configuration: a voter or a non-voter.
func (n *Node) Join(ctx context.Context, id, address string, voter bool) error {
	body, _ := json.Marshal(joinRequest{ID: id, Address: address, Voter: voter})
	_, err := n.toLeader(ctx, func(context.Context) ([]byte, error) {
		return nil, n.joinLocal(joinRequest{ID: id, Address: address, Voter: voter})
	}, opJoin, body)
	return err
}

func (n *Node) toLeader(ctx context.Context, local func(context.Context) ([]byte, error), op byte, body []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		defer cancel()
	}
	var lastErr error = ErrNoLeader
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w (last attempt: %w)", err, lastErr)
		}
		if n.IsLeader() {
			res, err := local(ctx)
			if !errors.Is(err, ErrNotLeader) {
				return res, err
			}
		} else if addr, _ := n.raft.LeaderWithID(); addr != "" && string(addr) != n.cfg.Advertise {
			res, sent, err := n.fwd.call(ctx, string(addr), op, body)
			if err == nil || sent {
				return res, err
			}
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (last attempt: %w)", ctx.Err(), lastErr)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (n *Node) applyLocal(ctx context.Context, req []byte) ([]byte, error) {
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	cmd := req
	if n.cfg.Prepare != nil {
		if err := n.leaderReady(); err != nil {
			return nil, err
		}
		var reject []byte
		cmd, reject = n.cfg.Prepare(req)
		if reject != nil {
			return reject, nil
		}
	}
	timeout := n.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	f := n.raft.Apply(cmd, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return nil, ErrNotLeader // not appended: safe to retry
		}
		return nil, fmt.Errorf("committing: %w", err)
	}
	res, _ := f.Response().([]byte)
	return res, nil
}

// leaderReady makes sure a leader has applied every command committed
// before its term before Prepare judges a request against its state. A new
// leader may hold committed commands of the old leader's that it has not
// applied yet; without this, a contribution following one the old leader
// acknowledged could be refused as skipping ahead. One barrier per term.
func (n *Node) leaderReady() error {
	term := n.raft.CurrentTerm()
	if n.readyTerm.Load() == term {
		return nil
	}
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return ErrNotLeader // nothing was proposed: safe to retry
		}
		return fmt.Errorf("barrier: %w", err)
	}
	n.readyTerm.Store(term)
	return nil
}

// Sync waits until this node has applied every command the leader had
// committed when Sync was called, so a read of local state that follows sees
// all writes acknowledged before it (read-your-writes on any node).
func (n *Node) Sync(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.ApplyTimeout)
		defer cancel()
	}
	res, err := n.toLeader(ctx, func(context.Context) ([]byte, error) { return n.syncLocal() }, opSync, nil)
	if err != nil {
		return err
	}
	if len(res) != 8 {
		return fmt.Errorf("sync: leader answered %d bytes, want 8", len(res))
	}
	// Raft's own applied index moves when a command is handed to the state
	// machine, before the machine has applied it; the machine's is exact.
	want := binary.BigEndian.Uint64(res)
	for n.machine.applied.Load() < want {
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting to apply index %d (at %d): %w", want, n.machine.applied.Load(), ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// syncLocal runs on the leader: a barrier makes sure every committed command
// is applied here, and the index of the last command applied is what
// followers must reach (the log after it holds no command, only entries
// such as the barrier, which state machines never see).
func (n *Node) syncLocal() ([]byte, error) {
	if !n.IsLeader() {
		return nil, ErrNotLeader
	}
	if err := n.raft.Barrier(n.cfg.ApplyTimeout).Error(); err != nil {
		// A barrier changes nothing, so one cut short by a leadership change
		// is retried on the new leader like any not-leader answer.
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return nil, ErrNotLeader
		}
		return nil, fmt.Errorf("barrier: %w", err)
	}
	return binary.BigEndian.AppendUint64(nil, n.machine.applied.Load()), nil
}

func (n *Node) joinLocal(jr joinRequest) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	if n.cfg.AuthorizeJoin != nil {
		if err := n.cfg.AuthorizeJoin(jr.ID, jr.Address, jr.Voter); err != nil {
			return err
		}
	}
	var f raft.IndexFuture
	if jr.Voter {
		f = n.raft.AddVoter(raft.ServerID(jr.ID), raft.ServerAddress(jr.Address), 0, n.cfg.ApplyTimeout)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(jr.ID), raft.ServerAddress(jr.Address), 0, n.cfg.ApplyTimeout)
	}
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return ErrNotLeader
		}
		return fmt.Errorf("adding %s to the raft configuration: %w", jr.ID, err)
	}
	return nil
}

// RemoveServer removes a server from the configuration (leader only).
func (n *Node) RemoveServer(id string) error {
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return ErrNotLeader
		}
		return fmt.Errorf("removing %s from the raft configuration: %w", id, err)
	}
	return nil
}

// TransferLeadership asks the leader to hand leadership to another voter.
func (n *Node) TransferLeadership() error { return n.raft.LeadershipTransfer().Error() }

// A Member is one server of the Raft configuration.
type Member struct {
	ID      string
	Address string
	Voter   bool
}

// A Status is this node's view of the cluster.
type Status struct {
	ID            string
	State         string
	LeaderID      string
	LeaderAddress string
	Members       []Member
	AppliedIndex  uint64
	Term          uint64
}

// Status reports this node's view of the cluster.
func (n *Node) Status() (Status, error) {
	addr, id := n.raft.LeaderWithID()
	st := Status{
		ID:            n.cfg.ID,
		State:         n.raft.State().String(),
		LeaderID:      string(id),
		LeaderAddress: string(addr),
		AppliedIndex:  n.raft.AppliedIndex(),
	}
	st.Term, _ = strconv.ParseUint(n.raft.Stats()["term"], 10, 64)
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return st, err
	}
	for _, s := range f.Configuration().Servers {
		st.Members = append(st.Members, Member{ID: string(s.ID), Address: string(s.Address), Voter: s.Suffrage == raft.Voter})
	}
	return st, nil
}

// newHCLogger routes hashicorp/raft's hclog output into slog.
func newHCLogger(l *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "raft",
		Level:      hclog.Info,
		Output:     slogWriter{l},
		JSONFormat: false,
	})
}

// slogWriter turns hclog's lines into slog records at a level read from the line.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	line := string(p)
	lvl := slog.LevelInfo
	switch {
	case strings.Contains(line, "[ERROR]"):
		lvl = slog.LevelError
	case strings.Contains(line, "[WARN]"):
		lvl = slog.LevelWarn
	case strings.Contains(line, "[DEBUG]"), strings.Contains(line, "[TRACE]"):
		lvl = slog.LevelDebug
	}
	w.l.Log(context.Background(), lvl, strings.TrimRight(line, "\r\n"))
	return len(p), nil
}

var _ io.Writer = slogWriter{}

// authorizePeer applies Config.AuthorizePeer to a connection the mux accepted.
func (n *Node) authorizePeer(cs tls.ConnectionState, raftRPC bool) error {
	if n.cfg.AuthorizePeer == nil {
		return nil
	}
	return n.cfg.AuthorizePeer(cs, raftRPC, n.isMember)
}

// authorizeServer applies Config.AuthorizeServer to a Raft connection this
// node dialed to address.
func (n *Node) authorizeServer(address string, cs tls.ConnectionState) error {
	if n.cfg.AuthorizeServer == nil {
		return nil
	}
	id := n.serverAt(address)
	err := n.cfg.AuthorizeServer(id, cs)
	if err != nil && id != "" && n.cfg.OnRefusedServer != nil {
		go n.cfg.OnRefusedServer(id)
	}
	return err
}

// RecheckServers runs Config.AuthorizeServer again on every Raft connection
// this node dialed and closes those it now refuses, for when what it
// decides on has changed (membership, read access).
func (n *Node) RecheckServers() {
	if n.streams != nil {
		n.streams.recheck()
	}
}

// serverAt returns the ID the latest configuration lists at address, or "".
func (n *Node) serverAt(address string) string {
	r := n.started.Load()
	if r == nil {
		return ""
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return ""
	}
	for _, s := range f.Configuration().Servers {
		if string(s.Address) == address {
			return string(s.ID)
		}
	}
	return ""
}

// isMember reports whether id is in the latest configuration. Before Raft
// has started no one is.
func (n *Node) isMember(id string) bool {
	r := n.started.Load()
	if r == nil {
		return false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}
