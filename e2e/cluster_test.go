//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashfed/hashfed/client"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// federationName is the campaign federation's name.
const federationName = "e2e.hashfed"

// An orgSpec is one org of the campaign federation.
type orgSpec struct {
	name  string
	roles string
	nodes []string // founding nodes; they vote if the org operates
}

// The campaign federation: five voting nodes of four operator orgs, and
// platform, a subscribing org whose one node joins later as a non-voter.
var orgs = []orgSpec{
	{"ngo", "publisher,operator", []string{"ngo-1", "ngo-2"}},
	{"ngo2", "publisher,operator", []string{"ngo2-1"}},
	{"techco", "subscriber,operator", []string{"techco-1"}},
	{"auditor", "auditor,operator", []string{"auditor-1"}},
	{"platform", "subscriber", nil},
}

// joiner is the node of platform, not in the genesis.
const joiner = "platform-1"

// sets are the campaign's sets, one publishing client each; techco and
// platform read them all.
var sets = []string{"ngo/a", "ngo/b", "ngo2/a", "ngo2/b"}

// A node is one node container.
type node struct {
	id, org string
	ip      string
	voter   bool // a founding voter
	// container and volume are the docker names; conf is the host
	// directory mounted read-only at /etc/hashfed.
	container, volume, conf string
	// join is the join list of its current configuration.
	join []string
	// generation counts the containers n has had: a wipe replaces it.
	generation int
	// clients holds a connection to n for each org, by org.
	clients map[string]*client.Client
}

func (n *node) api() string { return fmt.Sprintf("%s:%d", n.ip, apiPort) }

// A cluster is the campaign federation running in containers.
type cluster struct {
	t       *testing.T
	dir     string // host directory: certificates, genesis, configurations
	bin     string // the hashfed binary, for the host
	image   string
	name    string // names (prefixes) every docker object of the run
	network string
	subnet  string // the network's first three octets, once created
	logs    string // where container logs are saved
	genesis string
	nodes   []*node
	byID    map[string]*node

	mu       sync.Mutex
	problems []string // misbehaviour seen while injecting faults
}

// problemf records misbehaviour of a node that the campaign must report,
// such as a node that does not stop cleanly.
func (c *cluster) problemf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// newCluster builds the hashfed binary and image, creates the federation's
// certificates, genesis and configurations with the binary, creates the
// network and starts every node container. Cleanup removes the containers,
// the volumes and the network; saveLogs, if it returns true then, has the
// containers' logs saved to logDir first.
func newCluster(t *testing.T, logDir string, saveLogs func() bool) *cluster {
	t.Helper()
	ctx := context.Background()
	var suffix [3]byte
	rand.Read(suffix[:])
	name := "hfe2e-" + hex.EncodeToString(suffix[:])
	c := &cluster{
		t:       t,
		dir:     t.TempDir(),
		image:   "hashfed:e2e",
		name:    name,
		network: name + "-net",
		logs:    logDir,
		byID:    map[string]*node{},
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	c.bin = filepath.Join(c.dir, "hashfed")
	build := exec.Command("go", "build", "-o", c.bin, "../cmd/hashfed")
	build.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building hashfed: %v\n%s", err, out)
	}
	img := exec.Command("bash", "../deploy/build-image.sh", c.image)
	if out, err := img.CombinedOutput(); err != nil {
		t.Fatalf("building the image: %v\n%s", err, out)
	}
	t.Logf("built the binary and image %s in %v", c.image, time.Since(start).Round(time.Millisecond))

	t.Cleanup(func() {
		if err := c.removeAll(saveLogs()); err != nil {
			t.Error(err)
		}
	})
	if err := c.createNetwork(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("docker network %s on %s.0/24; containers and volumes %s-*", c.network, c.subnet, c.name)

	ip := 11
	for _, o := range orgs {
		ids := o.nodes
		if o.name == "platform" {
			ids = []string{joiner}
		}
		for _, id := range ids {
			n := &node{
				id: id, org: o.name, voter: id != joiner,
				ip:        fmt.Sprintf("%s.%d", c.subnet, ip),
				container: c.name + "-" + id,
				volume:    c.name + "-" + id + "-data",
				conf:      filepath.Join(c.dir, "conf", id),
				clients:   map[string]*client.Client{},
			}
			ip++
			c.nodes = append(c.nodes, n)
			c.byID[id] = n
		}
	}
	c.createFederation()
	for _, n := range c.nodes {
		if n.id == joiner {
			n.join = c.apis(n)
		}
		c.writeConfig(n)
	}
	for _, n := range c.nodes {
		if err := c.runContainer(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.nodes {
		for _, o := range orgs {
			cl, err := client.Dial(client.Config{Node: n.api(), Genesis: c.genesis, Cert: c.clientCert(o.name), Key: c.clientKey(o.name)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cl.Close() })
			n.clients[o.name] = cl
		}
	}
	return c
}

// hashfed runs the hashfed binary in c.dir and fails the test on error.
func (c *cluster) hashfed(args ...string) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Dir = c.dir
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("hashfed %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (c *cluster) clientCert(org string) string {
	return filepath.Join(c.dir, org, "client-e2e.crt")
}
func (c *cluster) clientKey(org string) string { return filepath.Join(c.dir, org, "client-e2e.key") }

// signingKey is the path of org's statement signing key.
func (c *cluster) signingKey(org string) string { return filepath.Join(c.dir, org, "signing.key") }

// createFederation does what each org and the assembler do by hand (see
// README "Running a real federation"), with the real binary: keys and
// certificates, founder files, the genesis.
func (c *cluster) createFederation() {
	var founders []string
	for _, o := range orgs {
		c.hashfed("certs", "create-ca", "--org", o.name, "--dir", o.name)
		c.hashfed("certs", "create-signing-key", "--dir", o.name)
		c.hashfed("certs", "create-client", "--ca-dir", o.name, "--name", "e2e")
		args := []string{"genesis", "org", "--name", o.name, "--roles", o.roles,
			"--ca", o.name + "/ca.crt", "--signing-key", o.name + "/signing.pub", "--out", o.name + ".founder.json"}
		for _, n := range c.nodes {
			if n.org != o.name {
				continue
			}
			c.hashfed("certs", "create-node", "--ca-dir", o.name, "--name", n.id,
				"--hosts", n.ip+","+n.container+","+n.id, "--federation", federationName)
			if n.voter {
				args = append(args, "--node", fmt.Sprintf("id=%s,raft=%s:%d,api=%s,checkpoint-key=%s/node-%s.vkey", n.id, n.ip, raftPort, n.api(), o.name, n.id))
			}
		}
		c.hashfed(args...)
		founders = append(founders, o.name+".founder.json")
	}
	args := []string{"genesis", "assemble", "--federation", federationName, "--out", "genesis.json"}
	for _, s := range sets {
		args = append(args, "--set", s+":types=md5:readers=techco,platform")
	}
	c.hashfed(append(args, founders...)...)
	c.genesis = filepath.Join(c.dir, "genesis.json")
}

// apis returns the API addresses of the founding voters other than n.
func (c *cluster) apis(n *node) []string {
	var out []string
	for _, m := range c.nodes {
		if m != n && m.voter {
			out = append(out, m.api())
		}
	}
	return out
}

// writeConfig writes n's configuration directory: node.yaml, the genesis,
// its certificate and keys. The container runs as uid 65532, so the files
// are readable by all (test keys only).
func (c *cluster) writeConfig(n *node) {
	c.t.Helper()
	if err := os.MkdirAll(n.conf, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Chmod(n.conf, 0o755); err != nil {
		c.t.Fatal(err)
	}
	for dst, src := range map[string]string{
		"genesis.json": c.genesis,
		"node.crt":     filepath.Join(c.dir, n.org, "node-"+n.id+".crt"),
		"node.key":     filepath.Join(c.dir, n.org, "node-"+n.id+".key"),
		"node.note":    filepath.Join(c.dir, n.org, "node-"+n.id+".note"),
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			c.t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(n.conf, dst), b, 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
	var y strings.Builder
	fmt.Fprintf(&y, `# Written by the e2e campaign for node %s.
genesis: genesis.json
node_id: %s
data_dir: /var/lib/hashfed/node
tls_cert: node.crt
tls_key: node.key
checkpoint_key: node.note
api_listen: ":%d"
raft_listen: ":%d"
raft_advertise: "%s:%d"
log_level: info
checkpoint_interval: 300ms
raft:
  heartbeat_timeout: 800ms
  election_timeout: 800ms
  leader_lease_timeout: 400ms
  commit_timeout: 10ms
  snapshot_interval: 20s
  snapshot_threshold: 2048
  trailing_logs: 1024
`, n.id, n.id, apiPort, raftPort, n.ip, raftPort)
	if len(n.join) > 0 {
		y.WriteString("join:\n")
		for _, a := range n.join {
			fmt.Fprintf(&y, "  - %q\n", a)
		}
	}
	if err := os.WriteFile(filepath.Join(n.conf, "node.yaml"), []byte(y.String()), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// statusTimeout bounds one Status call during the campaign.
const statusTimeout = 2 * time.Second

// status asks n for its view of the cluster.
func (c *cluster) status(ctx context.Context, n *node) (*hashfedv1.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	return n.clients["auditor"].Status(ctx)
}

// leader returns the node that calls itself leader and that the other
// reachable nodes agree on, or an error.
func (c *cluster) leader(ctx context.Context) (*node, error) {
	votes := map[string]int{}
	for _, n := range c.nodes {
		st, err := c.status(ctx, n)
		if err != nil || st.GetLeaderId() == "" {
			continue
		}
		votes[st.GetLeaderId()]++
	}
	best, most := "", 0
	for id, v := range votes {
		if v > most {
			best, most = id, v
		}
	}
	l := c.byID[best]
	if l == nil {
		return nil, errors.New("no node knows a leader")
	}
	st, err := c.status(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("leader %s: %w", l.id, err)
	}
	if st.GetState() != "Leader" {
		return nil, fmt.Errorf("%s is named leader but says it is %s", l.id, st.GetState())
	}
	return l, nil
}

// waitHealthy waits until every node answers, all agree on a leader that
// has every node in its Raft configuration (the founders as voters), and
// every node holds at least the ledger the leader held when all first
// agreed. It returns the time it took.
func (c *cluster) waitHealthy(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	target := int64(-1)
	var why error
	lastInspect := time.Now()
	for time.Now().Before(deadline) {
		if ctx.Err() != nil {
			return time.Since(start), ctx.Err()
		}
		why = c.healthy(ctx, &target)
		if why == nil {
			return time.Since(start), nil
		}
		// A container that exited by itself will not come back: say so now
		// rather than at the timeout.
		if time.Since(lastInspect) > 2*time.Second {
			lastInspect = time.Now()
			if err := c.exited(ctx); err != nil {
				return time.Since(start), err
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return time.Since(start), fmt.Errorf("not healthy after %v: %w", timeout, why)
}

// exited returns an error naming the node containers that are not running,
// with their exit codes, or nil. Between faults every container runs, so a
// stopped one has crashed.
func (c *cluster) exited(ctx context.Context) error {
	var errs []error
	for _, n := range c.nodes {
		out, err := docker(ctx, "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", n.container)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f := strings.Fields(out)
		if len(f) == 2 && f[0] != "running" {
			errs = append(errs, fmt.Errorf("node %s's container is %s with exit code %s (it crashed: see logs/%s.log)", n.id, f[0], f[1], n.id))
		}
	}
	return errors.Join(errs...)
}

// crashes returns the lines of every node's log, its current container's
// and the saved ones of containers it had before, that show a Go runtime
// crash: a panic, a fatal error, a data race.
func (c *cluster) crashes(ctx context.Context) []string {
	var out []string
	scan := func(id, text string) {
		for _, line := range strings.Split(text, "\n") {
			// Saved logs carry a timestamp first.
			if _, rest, ok := strings.Cut(line, "Z "); ok && strings.HasPrefix(line, "20") {
				line = rest
			}
			for _, p := range []string{"panic: ", "fatal error: ", "WARNING: DATA RACE"} {
				if strings.HasPrefix(line, p) {
					out = append(out, id+": "+line)
				}
			}
		}
	}
	for _, n := range c.nodes {
		if b, err := os.ReadFile(filepath.Join(c.logs, n.id+".log")); err == nil {
			scan(n.id, string(b))
		}
		if s, err := docker(ctx, "logs", n.container); err == nil {
			scan(n.id, s)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// healthy is one check of waitHealthy; *target is the ledger size every
// node must reach, -1 until set from the leader.
func (c *cluster) healthy(ctx context.Context, target *int64) error {
	sts := map[string]*hashfedv1.StatusResponse{}
	for _, n := range c.nodes {
		st, err := c.status(ctx, n)
		if err != nil {
			return fmt.Errorf("%s: %w", n.id, err)
		}
		sts[n.id] = st
	}
	lid := sts[c.nodes[0].id].GetLeaderId()
	for id, st := range sts {
		if st.GetLeaderId() == "" || st.GetLeaderId() != lid {
			return fmt.Errorf("%s sees leader %q, %s sees %q", id, st.GetLeaderId(), c.nodes[0].id, lid)
		}
	}
	lst := sts[lid]
	if lst == nil || lst.GetState() != "Leader" {
		return fmt.Errorf("the leader %q is not a node that says it leads", lid)
	}
	for _, n := range c.nodes {
		i := slices.IndexFunc(lst.GetMembers(), func(m *hashfedv1.Member) bool { return m.GetNodeId() == n.id })
		if i < 0 {
			return fmt.Errorf("the leader %s has no %s in its configuration", lid, n.id)
		}
		if lst.GetMembers()[i].GetVoter() != n.voter {
			return fmt.Errorf("the leader %s has %s as voter=%v, want %v", lid, n.id, lst.GetMembers()[i].GetVoter(), n.voter)
		}
	}
	if *target < 0 {
		*target = lst.GetLedgerSize()
	}
	for id, st := range sts {
		if st.GetLedgerSize() < *target {
			return fmt.Errorf("%s holds %d entries, the leader held %d", id, st.GetLedgerSize(), *target)
		}
	}
	return nil
}
