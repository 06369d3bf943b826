// Package localfed creates and runs a small federation on one machine: each
// org gets a real CA, node and client certificates, a statement-signing key,
// a checkpoint key and a founder file; the founders are assembled into a
// genesis; the nodes run in this process on loopback with durable Raft
// stores. It backs `hashfed demo`, the tests and the benchmarks, and goes
// through the same files and functions an operator's commands do.
package localfed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
	"github.com/hashfed/hashfed/node"
)

// An OrgSpec describes one org to create.
type OrgSpec struct {
	Name  string
	Roles []federation.Role
	// Nodes is how many nodes the org runs; all vote if the org is an operator.
	Nodes int
}

// Options configures a local federation.
type Options struct {
	// Dir is where every file goes; it must exist.
	Dir string
	// Federation is the federation name (the checkpoint origin).
	Federation string
	Orgs       []OrgSpec
	// Sets are created in the genesis.
	Sets []federation.Set
	// Raft timing for the nodes; zero values take node.DefaultConfig's.
	Raft node.RaftConfig
	// CheckpointInterval for the nodes; zero takes node.DefaultConfig's.
	CheckpointInterval time.Duration
	// Log receives every node's logs; nil discards them.
	Log *slog.Logger
	// RaftProxy, when set, is called for each node with the loopback
	// address its Raft listener is bound to (target). It returns the
	// address that other nodes dial instead (advertised), which goes into
	// the genesis: a fault proxy forwarding to target, so a test controls
	// the node's inbound Raft traffic. Nil advertises target itself.
	RaftProxy func(nodeID, target string) (advertised string, err error)
}

// DemoOptions is the three-org federation of `hashfed demo`: an NGO that
// publishes, a tech firm that subscribes and an auditor, one voting node each.
func DemoOptions(dir string) Options {
	return Options{
		Dir:        dir,
		Federation: "demo.hashfed.local",
		Orgs: []OrgSpec{
			{Name: "ngo", Roles: []federation.Role{federation.RolePublisher, federation.RoleOperator}, Nodes: 1},
			{Name: "techco", Roles: []federation.Role{federation.RoleSubscriber, federation.RoleOperator}, Nodes: 1},
			{Name: "auditor", Roles: []federation.Role{federation.RoleAuditor, federation.RoleOperator}, Nodes: 1},
		},
		Sets: []federation.Set{{Name: "ngo/csam-demo", Types: federation.SignalTypes, Readers: []string{"techco"}}},
	}
}

// An Org is one created org's files.
type Org struct {
	Name       string
	Dir        string
	SigningKey string // private key file
	ClientCert string // a command-line user's certificate ("client-<org>-cli")
	ClientKey  string
}

// A NodeFiles is one node's files and addresses.
type NodeFiles struct {
	ID, Org    string
	Config     string // YAML configuration file
	APIAddress string
	// RaftAddress is the Raft address other nodes dial, as in the genesis.
	RaftAddress string
	// RaftListen is where the node's Raft listener is bound: RaftAddress,
	// unless [Options.RaftProxy] put a proxy in front of it.
	RaftListen string
	// HTTPAddress is where the node's HTTPS tile server listens.
	HTTPAddress string
	// CheckpointVKey is the node's checkpoint verifier key.
	CheckpointVKey string
	cfg            node.Config
	apiLn          net.Listener
	raftLn         net.Listener
	httpLn         net.Listener
}

// A Federation is a created (and possibly running) local federation.
type Federation struct {
	Opts    Options
	Genesis string // genesis file path
	Orgs    map[string]*Org
	Files   []*NodeFiles
	Nodes   map[string]*node.Node // running nodes by ID
}

// Create writes every file of a new federation into opts.Dir and binds the
// nodes' loopback listeners (so the genesis can name their ports); [Start]
// runs the nodes.
func Create(opts Options) (*Federation, error) {
	f := &Federation{Opts: opts, Orgs: map[string]*Org{}, Nodes: map[string]*node.Node{}}
	var founders []*federation.Founder
	for _, os := range opts.Orgs {
		fo, err := f.createOrg(os)
		if err != nil {
			f.closeListeners()
			return nil, fmt.Errorf("creating org %q: %w", os.Name, err)
		}
		founders = append(founders, fo)
	}
	g, err := federation.Assemble(opts.Federation, founders, opts.Sets)
	if err != nil {
		f.closeListeners()
		return nil, err
	}
	doc, err := g.Marshal()
	if err != nil {
		f.closeListeners()
		return nil, err
	}
	f.Genesis = filepath.Join(opts.Dir, "genesis.json")
	if err := os.WriteFile(f.Genesis, doc, 0o644); err != nil {
		f.closeListeners()
		return nil, err
	}
	for _, nf := range f.Files {
		nf.cfg.Genesis = f.Genesis
		if err := writeConfig(nf); err != nil {
			f.closeListeners()
			return nil, err
		}
	}
	return f, nil
}

func (f *Federation) createOrg(spec OrgSpec) (*federation.Founder, error) {
	dir := filepath.Join(f.Opts.Dir, spec.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := certs.NewCA(spec.Name, 10*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := ca.WriteFiles(dir); err != nil {
		return nil, err
	}
	priv, pub, err := federation.GenerateSigningKey()
	if err != nil {
		return nil, err
	}
	o := &Org{Name: spec.Name, Dir: dir, SigningKey: filepath.Join(dir, "signing.key")}
	if err := os.WriteFile(o.SigningKey, priv, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "signing.pub"), pub, 0o644); err != nil {
		return nil, err
	}
	cp, kp, err := ca.IssueClient(spec.Name+"-cli", 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	if o.ClientCert, o.ClientKey, err = certs.WriteKeyPair(dir, "client-"+spec.Name+"-cli", cp, kp); err != nil {
		return nil, err
	}
	f.Orgs[spec.Name] = o

	fo := &federation.Founder{Org: federation.Org{Name: spec.Name, Roles: spec.Roles, CACert: string(ca.CertPEM()), SigningKey: string(pub)}}
	voter := false
	for _, r := range spec.Roles {
		voter = voter || r == federation.RoleOperator
	}
	for i := 1; i <= spec.Nodes; i++ {
		id := fmt.Sprintf("%s-%d", spec.Name, i)
		nf, err := f.createNode(dir, spec.Name, id)
		if err != nil {
			return nil, err
		}
		fo.Nodes = append(fo.Nodes, federation.Node{
			ID: id, Org: spec.Name, RaftAddress: nf.RaftAddress, APIAddress: nf.APIAddress,
			CheckpointKey: nf.CheckpointVKey, Voter: voter,
		})
	}
	return fo, nil
}

func (f *Federation) createNode(dir, org, id string) (*NodeFiles, error) {
	ca, err := certs.LoadCA(dir)
	if err != nil {
		return nil, err
	}
	cp, kp, err := ca.IssueNode(id, []string{"127.0.0.1", "localhost"}, 365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	certPath, keyPath, err := certs.WriteKeyPair(dir, "node-"+id, cp, kp)
	if err != nil {
		return nil, err
	}
	skey, vkey, err := ledger.GenerateKey(federation.CheckpointKeyName(f.Opts.Federation, id))
	if err != nil {
		return nil, err
	}
	notePath := filepath.Join(dir, "node-"+id+".note")
	if err := os.WriteFile(notePath, []byte(skey+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "node-"+id+".vkey"), []byte(vkey+"\n"), 0o644); err != nil {
		return nil, err
	}
	apiLn, err := ListenLoopback()
	if err != nil {
		return nil, err
	}
	raftLn, err := ListenLoopback()
	if err != nil {
		apiLn.Close()
		return nil, err
	}
	httpLn, err := ListenLoopback()
	if err != nil {
		apiLn.Close()
		raftLn.Close()
		return nil, err
	}
	nf := &NodeFiles{
		ID: id, Org: org,
		Config:         filepath.Join(dir, "node-"+id+".yaml"),
		APIAddress:     apiLn.Addr().String(),
		RaftAddress:    raftLn.Addr().String(),
		RaftListen:     raftLn.Addr().String(),
		HTTPAddress:    httpLn.Addr().String(),
		CheckpointVKey: vkey,
		apiLn:          apiLn, raftLn: raftLn, httpLn: httpLn,
	}
	if f.Opts.RaftProxy != nil {
		adv, err := f.Opts.RaftProxy(id, nf.RaftListen)
		if err != nil {
			apiLn.Close()
			raftLn.Close()
			httpLn.Close()
			return nil, fmt.Errorf("raft proxy for node %s: %w", id, err)
		}
		nf.RaftAddress = adv
	}
	cfg := node.DefaultConfig()
	cfg.NodeID = id
	cfg.DataDir = filepath.Join(dir, "data-"+id)
	cfg.TLSCert, cfg.TLSKey = certPath, keyPath
	cfg.CheckpointKey = notePath
	cfg.APIListen, cfg.RaftListen, cfg.HTTPListen = nf.APIAddress, nf.RaftListen, nf.HTTPAddress
	if f.Opts.Raft.HeartbeatTimeout != 0 {
		cfg.Raft = f.Opts.Raft
	}
	if f.Opts.CheckpointInterval != 0 {
		cfg.CheckpointInterval = f.Opts.CheckpointInterval
	}
	nf.cfg = cfg
	f.Files = append(f.Files, nf)
	return nf, nil
}

// NodeConfig returns a copy of the node's configuration.
func (nf *NodeFiles) NodeConfig() node.Config { return nf.cfg }

// writeConfig writes the node's YAML configuration, the file `hashfed node
// --config` reads, so a user can stop the demo and run the nodes by hand.
func writeConfig(nf *NodeFiles) error {
	b, err := yaml.Marshal(nf.cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(nf.Config, b, 0o600)
}

func (f *Federation) closeListeners() {
	for _, nf := range f.Files {
		if nf.apiLn != nil {
			nf.apiLn.Close()
			nf.raftLn.Close()
			nf.apiLn, nf.raftLn = nil, nil
		}
		if nf.httpLn != nil {
			nf.httpLn.Close()
			nf.httpLn = nil
		}
	}
}

// Start starts every node that is not running, on the listeners bound by
// Create (the first time) or on its configured addresses (after a restart).
func (f *Federation) Start() error {
	for _, nf := range f.Files {
		if f.Nodes[nf.ID] != nil {
			continue
		}
		if err := f.StartNode(nf.ID); err != nil {
			return err
		}
	}
	return nil
}

// StartNode starts one node.
func (f *Federation) StartNode(id string) error {
	nf := f.file(id)
	if nf == nil {
		return fmt.Errorf("no node %q", id)
	}
	cfg := nf.cfg
	cfg.APIListener, cfg.RaftListener, cfg.HTTPListener = nf.apiLn, nf.raftLn, nf.httpLn
	nf.apiLn, nf.raftLn, nf.httpLn = nil, nil, nil
	cfg.Log = f.Opts.Log
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	n, err := node.Start(cfg)
	if err != nil {
		return fmt.Errorf("starting node %s: %w", id, err)
	}
	f.Nodes[id] = n
	return nil
}

// StopNode stops one node; its data stays for a later StartNode.
func (f *Federation) StopNode(id string) error {
	n := f.Nodes[id]
	if n == nil {
		return fmt.Errorf("node %q is not running", id)
	}
	delete(f.Nodes, id)
	return n.Close()
}

func (f *Federation) file(id string) *NodeFiles {
	for _, nf := range f.Files {
		if nf.ID == id {
			return nf
		}
	}
	return nil
}

// Close stops every node.
func (f *Federation) Close() error {
	var errs []error
	for _, nf := range f.Files {
		if n := f.Nodes[nf.ID]; n != nil {
			errs = append(errs, n.Close())
			delete(f.Nodes, nf.ID)
		}
	}
	f.closeListeners()
	return errors.Join(errs...)
}

// WaitReady waits until a leader is elected and every running node holds the
// genesis entry.
func (f *Federation) WaitReady(ctx context.Context) error {
	for {
		ready := true
		leader := false
		for _, n := range f.Nodes {
			ready = ready && n.State().Size() > 0
			leader = leader || n.Consensus().IsLeader()
		}
		if ready && leader {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("federation not ready: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// WaitCheckpoint waits until every running node holds a cosigned
// checkpoint covering at least size entries.
func (f *Federation) WaitCheckpoint(ctx context.Context, size int64) error {
	for _, nf := range f.Files {
		n := f.Nodes[nf.ID]
		if n == nil {
			continue
		}
		for {
			changed := n.State().Changed()
			if _, got := n.State().LatestCheckpoint(); got >= size {
				break
			}
			select {
			case <-ctx.Done():
				_, got := n.State().LatestCheckpoint()
				return fmt.Errorf("node %s: latest checkpoint covers %d entries, want %d: %w", nf.ID, got, size, ctx.Err())
			case <-changed:
			}
		}
	}
	return nil
}

// Leader returns the ID of the node that leads now, or "".
func (f *Federation) Leader() string {
	for id, n := range f.Nodes {
		if n.Consensus().IsLeader() {
			return id
		}
	}
	return ""
}

// Client dials node id as org's command-line user.
func (f *Federation) Client(org, id string) (*client.Client, error) {
	o := f.Orgs[org]
	nf := f.file(id)
	if o == nil || nf == nil {
		return nil, fmt.Errorf("no org %q or node %q", org, id)
	}
	return client.Dial(client.Config{Node: nf.APIAddress, Genesis: f.Genesis, Cert: o.ClientCert, Key: o.ClientKey})
}

// Signer loads org's statement signer.
func (f *Federation) Signer(org string) (*federation.Signer, error) {
	o := f.Orgs[org]
	if o == nil {
		return nil, fmt.Errorf("no org %q", org)
	}
	return federation.LoadSigner(org, o.SigningKey)
}

// AddJoiner creates a node of org that is not in the genesis and is
// configured to join through the running nodes as a non-voter. Start it with
// StartNode.
func (f *Federation) AddJoiner(org, id string) (*NodeFiles, error) {
	o := f.Orgs[org]
	if o == nil {
		return nil, fmt.Errorf("no org %q", org)
	}
	nf, err := f.createNode(o.Dir, org, id)
	if err != nil {
		return nil, err
	}
	nf.cfg.Genesis = f.Genesis
	nf.cfg.RaftAdvertise = nf.RaftAddress
	for _, other := range f.Files {
		if other != nf {
			nf.cfg.Join = append(nf.cfg.Join, other.APIAddress)
		}
	}
	return nf, writeConfig(nf)
}
