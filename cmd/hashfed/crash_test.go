package main_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/internal/localfed"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A procFed is a three-org federation whose nodes are `hashfed node`
// processes: localfed writes the keys, certificates, genesis and
// configurations, and the test runs the built binary on them, so it can
// kill a node with SIGKILL wherever it is (applying a command, writing a
// snapshot, answering a call) and start it again on the same data.
type procFed struct {
	*importFed
	nodes map[string]*nodeProc
}

// A nodeProc is one node's process, or none while it is down.
type nodeProc struct {
	nf   *localfed.NodeFiles
	log  string // the node's output, appended to by every run
	cmd  *exec.Cmd
	done chan error
}

// startProcFed creates the federation's files and starts its three nodes.
// Snapshots are frequent (every 64 commands, keeping 32 log entries), so
// kills land during snapshots too and a node that is far behind catches up
// from one.
func startProcFed(t *testing.T) *procFed {
	t.Helper()
	skipShort(t, "builds the hashfed binary and runs three node processes that it kills and restarts")
	dir := t.TempDir()
	opts := threeOrgOptions(dir, "crash.hashfed.test")
	opts.Raft.SnapshotInterval, opts.Raft.SnapshotThreshold, opts.Raft.TrailingLogs = 200*time.Millisecond, 64, 32
	lf, err := localfed.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	lf.Close() // frees the listeners Create bound; the processes bind the same addresses
	f := &procFed{importFed: &importFed{lf, dir}, nodes: map[string]*nodeProc{}}
	for _, nf := range lf.Files {
		p := &nodeProc{nf: nf, log: filepath.Join(dir, nf.ID+".log")}
		f.nodes[nf.ID] = p
		f.writeConfig(t, nf.ID, nil)
		p.start(t)
	}
	t.Cleanup(func() {
		for _, p := range f.nodes {
			p.stop(t)
		}
		if t.Failed() {
			for _, p := range f.nodes {
				b, _ := os.ReadFile(p.log)
				t.Logf("%s log (last 4 KiB):\n%s", p.nf.ID, b[max(0, len(b)-4096):])
			}
		}
	})
	f.waitReady(t)
	return f
}

// writeConfig writes node id's configuration file, with join addresses.
func (f *procFed) writeConfig(t *testing.T, id string, join []string) {
	t.Helper()
	nf := f.nodes[id].nf
	cfg := nf.NodeConfig()
	cfg.Join = join
	cfg.LogLevel = "info"
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, nf.Config, string(b))
}

func (p *nodeProc) start(t *testing.T) {
	t.Helper()
	if p.cmd != nil {
		t.Fatalf("node %s is already running", p.nf.ID)
	}
	logf, err := os.OpenFile(p.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== start %s\n", time.Now().Format(time.StampMilli))
	p.cmd = exec.Command(hashfedBin, "node", "--config", p.nf.Config)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	logf.Close() // the process holds its own descriptor
	p.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(p.cmd, p.done)
}

// kill kills the node with SIGKILL and waits until it is gone.
func (p *nodeProc) kill(t *testing.T) {
	t.Helper()
	if p.cmd == nil {
		t.Fatalf("node %s is not running", p.nf.ID)
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.done
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("node %s was not killed but exited: %v", p.nf.ID, err)
	}
	p.cmd = nil
}

// stop stops a running node with SIGTERM, as an operator would.
func (p *nodeProc) stop(t *testing.T) {
	t.Helper()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		// A node started a moment ago may not handle signals yet, and
		// dies of this one.
		var ee *exec.ExitError
		if err != nil && (!errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM) {
			t.Errorf("node %s exited with %v after SIGTERM", p.nf.ID, err)
		}
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Errorf("node %s did not stop within 15s of SIGTERM", p.nf.ID)
	}
	p.cmd = nil
}

// dial dials node id as org's command-line user; the caller closes it.
func (f *procFed) dial(t *testing.T, org, id string) *client.Client {
	t.Helper()
	c, err := f.Client(org, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// status asks node id for its view of the cluster, briefly.
func (f *procFed) status(t *testing.T, id string) (*hashfedv1.StatusResponse, error) {
	t.Helper()
	c := f.dial(t, "ngo", id)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.Status(ctx)
}

// poll calls cond until it returns nil, for up to 30 seconds.
func poll(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until every running node knows the same leader and holds
// the genesis entry.
func (f *procFed) waitReady(t *testing.T) {
	t.Helper()
	poll(t, "federation ready", func() error {
		var leader string
		for id, p := range f.nodes {
			if p.cmd == nil {
				continue
			}
			st, err := f.status(t, id)
			if err != nil {
				return err
			}
			if st.GetLedgerSize() < 1 || st.GetLeaderId() == "" || (leader != "" && st.GetLeaderId() != leader) {
				return fmt.Errorf("%s: ledger size %d, leader %q", id, st.GetLedgerSize(), st.GetLeaderId())
			}
			leader = st.GetLeaderId()
		}
		return nil
	})
}

// leader returns the ID of the node the running nodes follow.
func (f *procFed) leader(t *testing.T) string {
	t.Helper()
	var leader string
	poll(t, "a leader", func() error {
		for id, p := range f.nodes {
			if p.cmd == nil {
				continue
			}
			st, err := f.status(t, id)
			if err != nil {
				return err
			}
			if l := st.GetLeaderId(); l != "" && f.nodes[l].cmd != nil {
				leader = l
				return nil
			}
		}
		return errors.New("no running node knows a running leader")
	})
	return leader
}

// envAt is what ngo's command-line user sets to reach the federation
// through node id.
func (f *procFed) envAt(id string) []string {
	o := f.Orgs["ngo"]
	return []string{"HASHFED_NODE=" + f.nodes[id].nf.APIAddress, "HASHFED_GENESIS=" + f.Genesis,
		"HASHFED_CERT=" + o.ClientCert, "HASHFED_KEY=" + o.ClientKey}
}

// running returns the IDs of the running nodes, in genesis order.
func (f *procFed) running() []string {
	var ids []string
	for _, nf := range f.Files {
		if f.nodes[nf.ID].cmd != nil {
			ids = append(ids, nf.ID)
		}
	}
	return ids
}

// converged waits until every node holds the same ledger of the given size
// (or, for size 0, of any size they agree on) under one identical cosigned
// checkpoint of all of it, and returns that checkpoint.
func (f *procFed) converged(t *testing.T, size int64) []byte {
	t.Helper()
	var signed []byte
	poll(t, "every node holding one ledger under one checkpoint", func() error {
		signed = nil
		var want int64 = -1
		for _, id := range f.running() {
			c := f.dial(t, "auditor", id)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			st, err := c.Status(ctx)
			var cp *hashfedv1.GetCheckpointResponse
			if err == nil {
				cp, err = c.Ledger.GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{})
			}
			cancel()
			c.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			got := st.GetLedgerSize()
			if size > 0 && got != size {
				return fmt.Errorf("%s holds %d entries, want %d", id, got, size)
			}
			if want >= 0 && got != want {
				return fmt.Errorf("%s holds %d entries, another node %d", id, got, want)
			}
			want = got
			if !strings.HasPrefix(string(cp.GetSignedCheckpoint()), fmt.Sprintf("%s\n%d\n", f.Opts.Federation, got)) {
				return fmt.Errorf("%s serves a checkpoint not covering its %d entries:\n%s", id, got, cp.GetSignedCheckpoint())
			}
			if signed != nil && string(cp.GetSignedCheckpoint()) != string(signed) {
				return fmt.Errorf("%s serves checkpoint\n%s\nanother node\n%s", id, cp.GetSignedCheckpoint(), signed)
			}
			signed = cp.GetSignedCheckpoint()
		}
		return nil
	})
	return signed
}

// checkSet checks, on every running node, that ngo/csam holds exactly
// values and that ngo's next sequence number follows contributions.
func (f *procFed) checkSet(t *testing.T, values []string, contributions int) {
	t.Helper()
	want := slices.Sorted(slices.Values(values))
	for _, id := range f.running() {
		c := f.dial(t, "techco", id)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		set, err := c.GetSet(ctx, "ngo/csam")
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if set.GetCount() != int64(len(values)) || set.GetNextSequence() != uint64(contributions+1) {
			t.Errorf("%s: ngo/csam holds %d signals, ngo's next sequence %d; want %d and %d", id, set.GetCount(), set.GetNextSequence(), len(values), contributions+1)
		}
		var got []string
		err = c.ListSignals(ctx, "ngo/csam", client.ListOptions{}, func(s *hashfedv1.SetSignal) error {
			got = append(got, s.GetValue())
			return nil
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: ngo/csam lists %d signals that differ from the %d imported", id, len(got), len(want))
		}
	}
}

// An importRun drives `hashfed publish` of one file to completion while
// nodes die under it: whenever the command fails, it is run again, through
// a node that is up, and resumes from its journal.
type importRun struct {
	f       *procFed
	args    []string
	journal string
	pub     *publishRun
	runs    int
	done    bool
}

// advance waits until the journal records k more committed contributions
// than now (or the import is done), rerunning the command as it fails.
func (im *importRun) advance(t *testing.T, k int) {
	t.Helper()
	target := journalCommitted(im.journal) + k
	deadline := time.Now().Add(60 * time.Second)
	for !im.done && journalCommitted(im.journal) < target {
		if im.pub == nil {
			if im.runs++; im.runs > 100 {
				t.Fatalf("the import needed more than 100 runs")
			}
			ids := im.f.running()
			im.pub = im.f.startPublish(t, ids[im.runs%len(ids)], im.args)
		}
		select {
		case err := <-im.pub.done:
			out := im.pub.out.String()
			im.pub = nil
			if err == nil {
				im.done = true
				return
			}
			// A node failing under the command (or not listening yet) is
			// something to run it again for. A refusal, or a ledger that
			// does not match the journal, would be a bug.
			for _, bad := range []string{"was refused", "Something else published", "does not match", "panic"} {
				if strings.Contains(out, bad) {
					t.Fatalf("publish failed (%v) otherwise than for want of a node:\n%s", err, out)
				}
			}
			time.Sleep(100 * time.Millisecond)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal did not reach %d commits (at %d)", target, journalCommitted(im.journal))
		}
	}
}

// startPublish starts `hashfed publish` as ngo through node id.
func (f *procFed) startPublish(t *testing.T, id string, args []string) *publishRun {
	t.Helper()
	p := &publishRun{cmd: exec.Command(hashfedBin, args...), out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Dir = f.dir
	p.cmd.Env = append(os.Environ(), f.envAt(id)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	return p
}

// TestNodeKill9MidApply imports a large file while it kills node processes
// with SIGKILL: a follower, then the leader, three times, at different
// points (once the leader right after the follower came back, before it
// caught up), restarting each. The import is rerun until it completes.
// Then every node holds the same ledger under one identical cosigned
// checkpoint, also after all three are killed at once and restarted; the
// set holds exactly the imported signals on every node (no duplicate, no
// gap); and ngo's contributions carry sequences 1 to N, once each.
func TestNodeKill9MidApply(t *testing.T) {
	f := startProcFed(t)
	const signals, batch = 16000, 20
	const contributions = signals / batch
	values := bigImport(t, f.importFed, "big.csv", 0, signals)
	im := &importRun{f: f, journal: filepath.Join(f.dir, "big.csv.hashfed-import.json"),
		args: f.publishArgs("ngo", "big.csv", "--batch", fmt.Sprint(batch), "--progress", "none", "--receipt-dir", "")}

	for round, at := range []struct{ before, down, back int }{{10, 20, 20}, {60, 10, 0}, {30, 40, 10}} {
		im.advance(t, at.before)
		leader := f.leader(t)
		var follower string
		for _, id := range f.running() {
			if id != leader && (follower == "" || round%2 == 1) {
				follower = id
			}
		}
		t.Logf("round %d: killing follower %s at %d contributions", round, follower, journalCommitted(im.journal))
		f.nodes[follower].kill(t)
		im.advance(t, at.down)
		f.nodes[follower].start(t)
		im.advance(t, at.back)
		leader = f.leader(t)
		t.Logf("round %d: killing leader %s at %d contributions", round, leader, journalCommitted(im.journal))
		f.nodes[leader].kill(t)
		im.advance(t, at.down)
		f.nodes[leader].start(t)
	}
	for !im.done {
		im.advance(t, contributions)
	}
	t.Logf("import complete after %d runs of publish", im.runs)

	size := int64(1 + contributions)
	signed := f.converged(t, size)
	v := f.ledger(t)
	v.checkOnce(t, values)
	if len(v.seqs["ngo"]) != contributions || len(v.values) != signals || v.size != size {
		t.Fatalf("the ledger holds %d entries, %d contributions of ngo with %d distinct signals; want %d, %d and %d",
			v.size, len(v.seqs["ngo"]), len(v.values), size, contributions, signals)
	}
	f.checkSet(t, values, contributions)
	out := run(t, f.dir, f.envAt(f.running()[0]), im.args...)
	if !strings.Contains(out, "already done") {
		t.Fatalf("a rerun of the finished import said:\n%s", out)
	}

	// All three killed at once and restarted: the same ledger, the same
	// checkpoint.
	for _, id := range f.running() {
		f.nodes[id].kill(t)
	}
	for _, id := range []string{"auditor-1", "ngo-1", "techco-1"} {
		f.nodes[id].start(t)
	}
	f.waitReady(t)
	if again := f.converged(t, size); string(again) != string(signed) {
		t.Fatalf("after every node was killed and restarted the checkpoint is\n%s\nwant\n%s", again, signed)
	}
	// An audit of all three: their checkpoints agree and verify, every
	// entry is proven and every statement in sequence.
	var clients []*client.Client
	for _, id := range f.running() {
		c := f.dial(t, "auditor", id)
		defer c.Close()
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := client.AuditNodes(ctx, clients, client.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checkpoint.Size != size || rep.Statements != contributions || rep.Signals != signals {
		t.Fatalf("audit verified %+v with %d statements and %d signals", rep.Checkpoint, rep.Statements, rep.Signals)
	}
}

// TestVoterWipedRejoins: a founding voter loses its data (killed, data
// directory deleted) and is started again with join addresses, so that it
// asks the leader to take it back instead of bootstrapping. It catches up
// (from a snapshot: the others have compacted their logs) to the same
// checkpoint, every node lists it as a voter, and it votes again: with another voter killed, the federation
// still elects a leader, commits and publishes checkpoints, which takes the
// rejoined node's vote and cosignature.
//
// The other two voters run while the wiped one comes back. It is not safe
// otherwise: until it has caught up, the wiped node votes with an empty log
// under its old identity, so with another voter down it can elect a leader
// that lacks entries it had itself acknowledged before losing them.
func TestVoterWipedRejoins(t *testing.T) {
	f := startProcFed(t)
	publish := func(name string, from, n int) []string {
		t.Helper()
		values := bigImport(t, f.importFed, name, from, n)
		im := &importRun{f: f, journal: filepath.Join(f.dir, name+".hashfed-import.json"),
			args: f.publishArgs("ngo", name, "--batch", "20", "--progress", "none", "--receipt-dir", "")}
		for !im.done {
			im.advance(t, n)
		}
		return values
	}
	values := publish("first.csv", 0, 2000) // 100 contributions
	f.converged(t, 101)

	leader := f.leader(t)
	victim := "auditor-1"
	if victim == leader {
		victim = "techco-1"
	}
	f.nodes[victim].kill(t)
	if err := os.RemoveAll(f.nodes[victim].nf.NodeConfig().DataDir); err != nil {
		t.Fatal(err)
	}
	var join []string
	for _, nf := range f.Files {
		if nf.ID != victim {
			join = append(join, nf.APIAddress)
		}
	}
	f.writeConfig(t, victim, join)
	values = append(values, publish("second.csv", 10000, 500)...) // 25 more, while it is gone
	f.converged(t, 126)

	// Started while the others are stopped, it does not found a cluster
	// of its own (with the genesis voters, as bootstrapping would): it
	// holds no Raft configuration and waits to be taken back.
	others := f.running()
	for _, id := range others {
		f.nodes[id].stop(t)
	}
	f.nodes[victim].start(t)
	poll(t, "the wiped node answering", func() error {
		_, err := f.status(t, victim)
		return err
	})
	time.Sleep(time.Second) // a few election timeouts
	if alone, err := f.status(t, victim); err != nil || len(alone.GetMembers()) != 0 || alone.GetTerm() != 0 || alone.GetLedgerSize() != 0 {
		t.Fatalf("the wiped node, alone: %v, %v; want no members, term 0 and an empty ledger", alone, err)
	}
	for _, id := range others {
		f.nodes[id].start(t)
	}
	f.converged(t, 126)

	out := run(t, f.dir, f.envAt(victim), "status")
	for _, id := range []string{"ngo-1", "techco-1", "auditor-1"} {
		if !listsMember(out, id, "voter") {
			t.Fatalf("status of %s does not show %s as a voter:\n%s", victim, id, out)
		}
	}
	for _, id := range f.running() {
		st, err := f.status(t, id)
		if err != nil {
			t.Fatal(err)
		}
		var voter bool
		for _, m := range st.GetMembers() {
			voter = voter || (m.GetNodeId() == victim && m.GetVoter())
		}
		if !voter || len(st.GetMembers()) != 3 {
			t.Fatalf("%s's view of the members: %v; want the three voters, %s among them", id, st.GetMembers(), victim)
		}
	}

	// Kill the leader (or, if the victim leads, the other node): the two
	// left need the victim's vote to elect a leader and its acknowledgement
	// to commit, and its cosignature for a checkpoint.
	other := f.leader(t)
	if other == victim {
		other = slices.DeleteFunc(f.running(), func(id string) bool { return id == victim })[0]
	}
	f.nodes[other].kill(t)
	values = append(values, publish("third.csv", 20000, 100)...) // 5 more
	signed := f.converged(t, 131)
	if !strings.Contains(string(signed), "\n— "+f.Opts.Federation+"/"+victim+" ") {
		t.Fatalf("the checkpoint published with %s down is not cosigned by %s:\n%s", other, victim, signed)
	}
	f.nodes[other].start(t)
	f.converged(t, 131)
	f.checkSet(t, values, 130)
}

// listsMember reports whether `hashfed status` output lists id with role.
func listsMember(out, id, role string) bool {
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 4 && fields[0] == "member" && fields[1] == id && fields[3] == role {
			return true
		}
	}
	return false
}
