package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// benchFederation is the benchmark federations' name.
const benchFederation = "bench.hashfed.local"

// The orgs of a benchmark federation: each runs one voting node.
const (
	publisherOrg  = "ngo"
	subscriberOrg = "techco"
	auditorOrg    = "auditor"
)

// setName names the i-th benchmark set; publisher i writes to it.
func setName(i int) string { return fmt.Sprintf("%s/bench-%03d", publisherOrg, i) }

// A cluster is a running three-voter federation: ngo publishes to its sets,
// techco reads them, auditor audits; each org runs one voting node, in this
// process or as a separate process.
type cluster struct {
	cfg    *Config
	dir    string
	lf     *localfed.Federation
	procs  map[string]*proc          // by node ID, when the nodes are processes
	admin  map[string]*client.Client // one client per node, for Status
	signer *federation.Signer
	sets   []*setWriter
}

// startCluster creates a federation with nsets sets in dir and starts its
// nodes, and returns once a leader holds the genesis entry.
func startCluster(ctx context.Context, cfg *Config, dir string, nsets int, processes bool) (*cluster, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var sets []federation.Set
	for i := range nsets {
		sets = append(sets, federation.Set{Name: setName(i), Types: federation.SignalTypes, Readers: []string{subscriberOrg}})
	}
	lf, err := localfed.Create(localfed.Options{
		Dir:        dir,
		Federation: benchFederation,
		Orgs: []localfed.OrgSpec{
			{Name: publisherOrg, Roles: []federation.Role{federation.RolePublisher, federation.RoleOperator}, Nodes: 1},
			{Name: subscriberOrg, Roles: []federation.Role{federation.RoleSubscriber, federation.RoleOperator}, Nodes: 1},
			{Name: auditorOrg, Roles: []federation.Role{federation.RoleAuditor, federation.RoleOperator}, Nodes: 1},
		},
		Sets:               sets,
		Raft:               cfg.Raft,
		CheckpointInterval: cfg.CheckpointInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("creating the federation: %w", err)
	}
	c := &cluster{cfg: cfg, dir: dir, lf: lf, admin: map[string]*client.Client{}}
	if c.signer, err = lf.Signer(publisherOrg); err != nil {
		lf.Close()
		return nil, err
	}
	for _, s := range sets {
		c.sets = append(c.sets, newSetWriter(c.signer, benchFederation, s.Name, cfg.SignalType))
	}
	if processes {
		// Create bound the nodes' loopback ports to write them into the
		// genesis; release them for the node processes to bind.
		lf.Close()
		c.procs = map[string]*proc{}
		for _, nf := range lf.Files {
			p, err := startProc(cfg, dir, nf)
			if err != nil {
				c.close()
				return nil, err
			}
			c.procs[nf.ID] = p
		}
	} else if err := lf.Start(); err != nil {
		c.close()
		return nil, err
	}
	for _, nf := range lf.Files {
		cl, err := lf.Client(publisherOrg, nf.ID)
		if err != nil {
			c.close()
			return nil, err
		}
		c.admin[nf.ID] = cl
	}
	if err := c.waitSize(ctx, 1, time.Minute); err != nil {
		c.close()
		return nil, fmt.Errorf("waiting for a leader and the genesis entry: %w", err)
	}
	return c, nil
}

// close stops the nodes; their files stay.
func (c *cluster) close() error {
	for _, cl := range c.admin {
		cl.Close()
	}
	errs := []error{c.lf.Close()}
	for _, p := range c.procs {
		errs = append(errs, p.stop())
	}
	return errors.Join(errs...)
}

// status asks node id for its view of the cluster.
func (c *cluster) status(ctx context.Context, id string) (*hashfedv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.admin[id].Status(ctx)
}

// leader returns the leader's node ID and API address.
func (c *cluster) leader(ctx context.Context) (id, api string, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		for _, nf := range c.lf.Files {
			st, err := c.status(ctx, nf.ID)
			if err != nil || st.GetLeaderId() == "" {
				continue
			}
			for _, lf := range c.lf.Files {
				if lf.ID == st.GetLeaderId() {
					return lf.ID, lf.APIAddress, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return "", "", fmt.Errorf("no leader known: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitSize waits until every node holds at least size ledger entries and a
// leader is known.
func (c *cluster) waitSize(ctx context.Context, size int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, leader := true, false
		var last error
		for _, nf := range c.lf.Files {
			st, err := c.status(ctx, nf.ID)
			if err != nil {
				ok, last = false, err
				continue
			}
			ok = ok && st.GetLedgerSize() >= size
			leader = leader || st.GetState() == "Leader"
		}
		if ok && leader {
			return nil
		}
		for _, p := range c.procs {
			if err := p.exited(); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes did not all reach %d entries (last error: %v): %w", size, last, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cpu returns the CPU time, in seconds, this process and the node
// processes (if any) have used.
func (c *cluster) cpu() float64 {
	t := selfCPU()
	for _, p := range c.procs {
		if s, err := procCPU(p.pid()); err == nil {
			t += s
		}
	}
	return t
}

// A cpuMeter measures the CPU time a workload used, and what every other
// process on the machine used meanwhile: a benchmark sharing the CPUs
// with other work measures less than the machine can do.
type cpuMeter struct {
	own         func() float64
	own0, mach0 float64
}

func startCPU(own func() float64) cpuMeter {
	return cpuMeter{own: own, own0: own(), mach0: machineCPU()}
}

// stop returns the seconds of CPU the workload used and the seconds other
// processes used since startCPU.
func (m cpuMeter) stop() (own, others float64) {
	own = m.own() - m.own0
	return own, max(0, machineCPU()-m.mach0-own)
}

// dial returns a new client of org connected to node id.
func (c *cluster) dial(org, id string) (*client.Client, error) { return c.lf.Client(org, id) }

// nodeIDs returns the nodes' IDs in genesis order.
func (c *cluster) nodeIDs() []string {
	var ids []string
	for _, nf := range c.lf.Files {
		ids = append(ids, nf.ID)
	}
	return ids
}

func (c *cluster) apiAddress(id string) string {
	for _, nf := range c.lf.Files {
		if nf.ID == id {
			return nf.APIAddress
		}
	}
	return ""
}

// A proc is a node running as a separate process.
type proc struct {
	id     string
	config string
	log    string
	cmdFn  func(string) *exec.Cmd
	cmd    *exec.Cmd
	done   chan struct{}
	err    error // set when done is closed
}

// startProc writes nf's configuration (as localfed wrote it, logging at warn
// level like the in-process nodes' discarded logs would not) and runs the
// node with cfg.NodeCommand, its output going to <id>.log in dir.
func startProc(cfg *Config, dir string, nf *localfed.NodeFiles) (*proc, error) {
	nc := nf.NodeConfig()
	nc.LogLevel = "warn"
	b, err := yaml.Marshal(nc)
	if err != nil {
		return nil, err
	}
	p := &proc{id: nf.ID, config: filepath.Join(dir, nf.ID+".bench.yaml"), log: filepath.Join(dir, nf.ID+".log"), cmdFn: cfg.NodeCommand}
	if err := os.WriteFile(p.config, b, 0o600); err != nil {
		return nil, err
	}
	return p, p.start()
}

func (p *proc) start() error {
	out, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	p.cmd = p.cmdFn(p.config)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	setParentDeathSignal(p.cmd)
	if err := p.cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("starting node %s: %w", p.id, err)
	}
	p.done = make(chan struct{})
	go func() {
		p.err = p.cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return nil
}

// exited returns an error if the process has ended.
func (p *proc) exited() error {
	select {
	case <-p.done:
		tail, _ := os.ReadFile(p.log)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("node %s exited (%v); its log ends:\n%s", p.id, p.err, tail)
	default:
		return nil
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks the node to stop (SIGTERM) and waits for it, killing it after a
// minute.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(time.Minute):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("node %s did not stop within a minute of SIGTERM; killed", p.id)
	}
}
