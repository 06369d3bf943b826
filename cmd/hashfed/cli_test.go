package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/ledger"
)

// hashfedBin is the binary under test, built once by TestMain.
var hashfedBin string

// skipShort skips a test under -short, saying what it would have run
// (what): the CLI tests run the built binary against real federations.
func skipShort(t *testing.T, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short given: this test " + what + "; run go test without -short to include it")
	}
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hashfed-cli-test-")
	if err != nil {
		panic(err)
	}
	hashfedBin = filepath.Join(dir, "hashfed")
	if out, err := exec.Command("go", "build", "-o", hashfedBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building hashfed: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs hashfed in dir and fails the test unless it exits 0.
func run(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, env, args...)
	if err != nil {
		t.Fatalf("hashfed %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func runErr(dir string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hashfedBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// freeAddr returns a loopback address that was free a moment ago, below
// the ephemeral range (see localfed.ListenLoopback).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := localfed.ListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestOperatorWorkflow follows the README's "Running a real federation"
// section with the real binary: three orgs make their keys and founder
// files, one assembles the genesis, three node processes form the
// federation, and the NGO publishes, the tech firm subscribes (resuming from
// a cursor file) and the auditor audits.
func TestOperatorWorkflow(t *testing.T) {
	skipShort(t, "builds the hashfed binary and runs three node processes")
	dir := t.TempDir()
	const fed = "example.hashfed"
	type org struct{ name, roles, api, raft string }
	orgs := []org{
		{"ngo", "publisher,operator", freeAddr(t), freeAddr(t)},
		{"techco", "subscriber,operator", freeAddr(t), freeAddr(t)},
		{"auditor", "auditor,operator", freeAddr(t), freeAddr(t)},
	}
	var founders []string
	for _, o := range orgs {
		id := o.name + "-1"
		run(t, dir, nil, "certs", "create-ca", "--org", o.name, "--dir", o.name)
		run(t, dir, nil, "certs", "create-signing-key", "--dir", o.name)
		run(t, dir, nil, "certs", "create-node", "--ca-dir", o.name, "--name", id, "--hosts", "127.0.0.1,localhost", "--federation", fed)
		run(t, dir, nil, "certs", "create-client", "--ca-dir", o.name, "--name", "cli")
		run(t, dir, nil, "genesis", "org", "--name", o.name, "--roles", o.roles,
			"--ca", o.name+"/ca.crt", "--signing-key", o.name+"/signing.pub",
			"--node", fmt.Sprintf("id=%s,raft=%s,api=%s,checkpoint-key=%s/node-%s.vkey", id, o.raft, o.api, o.name, id),
			"--out", o.name+".founder.json")
		founders = append(founders, o.name+".founder.json")
		cfg := fmt.Sprintf("genesis: ../genesis.json\nnode_id: %s\ndata_dir: data-%s\ntls_cert: node-%s.crt\ntls_key: node-%s.key\ncheckpoint_key: node-%s.note\ncheckpoint_interval: 50ms\nraft:\n  heartbeat_timeout: 300ms\n  election_timeout: 300ms\n  leader_lease_timeout: 150ms\nlog_level: warn\n", id, id, id, id, id)
		if err := os.WriteFile(filepath.Join(dir, o.name, "node.yaml"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	keyInfo, err := os.Stat(filepath.Join(dir, "ngo", "ca.key"))
	if err != nil || keyInfo.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v (err %v), want 0600", keyInfo.Mode().Perm(), err)
	}
	if _, err := runErr(dir, nil, "certs", "create-ca", "--org", "ngo", "--dir", "ngo"); err == nil {
		t.Fatal("create-ca overwrote an existing CA")
	}
	run(t, dir, nil, append([]string{"genesis", "assemble", "--federation", fed,
		"--set", "ngo/csam:types=md5,sha256,pdq:readers=techco", "--out", "genesis.json"}, founders...)...)

	for _, o := range orgs {
		cmd := exec.Command(hashfedBin, "node", "--config", filepath.Join(o.name, "node.yaml"))
		cmd.Dir = dir
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		name := o.name
		t.Cleanup(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("node %s exited with %v after SIGTERM:\n%s", name, err, logs.String())
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				t.Errorf("node %s did not stop within 15s of SIGTERM", name)
			}
			if t.Failed() {
				t.Logf("node %s log:\n%s", name, logs.String())
			}
		})
	}
	env := func(o org) []string {
		return []string{"HASHFED_NODE=" + o.api, "HASHFED_GENESIS=genesis.json",
			"HASHFED_CERT=" + o.name + "/client-cli.crt", "HASHFED_KEY=" + o.name + "/client-cli.key"}
	}
	// Wait until the federation has recorded its genesis entry.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := runErr(dir, env(orgs[0]), "status")
		if err == nil && strings.Contains(out, "ledger size 1") && !strings.Contains(out, "leader  (") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("federation not ready: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	signals := "type,value,labels\nmd5,0CC175B9C0F1B6A831C399E269772661,A1\nsha256,ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb,A1 B2\n"
	if err := os.WriteFile(filepath.Join(dir, "batch1.csv"), []byte(signals), 0o644); err != nil {
		t.Fatal(err)
	}
	out := run(t, dir, env(orgs[0]), "publish", "--set", "ngo/csam", "--signing-key", "ngo/signing.key", "--file", "batch1.csv")
	if !strings.Contains(out, "committed 2 signals to ngo/csam as sequence 1: ledger entry 1") ||
		!strings.Contains(out, "receipt ngo_csam_1.tlog-proof: entry 1 under a checkpoint") {
		t.Fatalf("publish said:\n%s", out)
	}
	// The receipt verifies offline, against the genesis alone; a receipt
	// claiming another index, or carrying another entry, does not.
	if out := run(t, dir, nil, "verify-receipt", "ngo_csam_1.tlog-proof"); !strings.Contains(out, "OK ngo_csam_1.tlog-proof: entry 1, org ngo's contribution 1 to ngo/csam (2 signals") {
		t.Fatalf("verify-receipt said:\n%s", out)
	}
	receipt, _ := os.ReadFile(filepath.Join(dir, "ngo_csam_1.tlog-proof"))
	os.WriteFile(filepath.Join(dir, "moved.tlog-proof"), bytes.Replace(receipt, []byte("\nindex 1\n"), []byte("\nindex 0\n"), 1), 0o644)
	if out, err := runErr(dir, nil, "verify-receipt", "moved.tlog-proof"); err == nil || !strings.Contains(out, "FAIL moved.tlog-proof: entry 0 is not in the checkpointed tree") {
		t.Fatalf("verify-receipt of a receipt with another index: err %v\n%s", err, out)
	}
	// A bad file is refused before anything is sent, naming the line.
	os.WriteFile(filepath.Join(dir, "bad.csv"), []byte("type,value\npdq,abcd\n"), 0o644)
	if out, err := runErr(dir, env(orgs[0]), "publish", "--set", "ngo/csam", "--signing-key", "ngo/signing.key", "--file", "bad.csv"); err == nil || !strings.Contains(out, "line 2") {
		t.Fatalf("publishing a bad file: err %v, output:\n%s", err, out)
	}

	sub := func() string {
		return run(t, dir, env(orgs[1]), "subscribe", "--cursor-file", "techco.cursor", "--jsonl", "techco.jsonl")
	}
	sub()
	got, _ := os.ReadFile(filepath.Join(dir, "techco.jsonl"))
	if lines := strings.Count(string(got), "\n"); lines != 2 || !strings.Contains(string(got), `"value":"0cc175b9c0f1b6a831c399e269772661"`) {
		t.Fatalf("subscriber wrote:\n%s", got)
	}
	// The tech firm comes back later and resumes from its cursor: it gets
	// only the new contribution, nothing twice.
	os.WriteFile(filepath.Join(dir, "batch2.jsonl"), []byte(`{"type":"pdq","value":"f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22","labels":["B1"]}`+"\n"), 0o644)
	run(t, dir, env(orgs[0]), "publish", "--set", "ngo/csam", "--signing-key", "ngo/signing.key", "--file", "batch2.jsonl")
	if out := sub(); !strings.Contains(out, "read 1 entries (1 signals); next entry 3") {
		t.Fatalf("resumed subscribe said:\n%s", out)
	}
	got, _ = os.ReadFile(filepath.Join(dir, "techco.jsonl"))
	if lines := strings.Count(string(got), "\n"); lines != 3 {
		t.Fatalf("after resuming the subscriber holds %d lines, want 3:\n%s", lines, got)
	}

	// A policy the federation cannot meet fails and saves no state.
	if out, err := runErr(dir, env(orgs[2]), "audit", "--min-orgs", "4"); err == nil || !strings.Contains(out, "signed by 4 orgs, but the federation has only 3 voting orgs") {
		t.Fatalf("audit with an impossible policy: err %v, output:\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "hashfed-audit.state.json")); !os.IsNotExist(err) {
		t.Fatalf("a failed audit saved its state (stat: %v)", err)
	}
	// The default policy: a majority of the voting orgs cosigned.
	out = run(t, dir, env(orgs[2]), "audit")
	if !strings.HasPrefix(out, "OK: checkpoint of \"example.hashfed\" size 3") || !strings.Contains(out, "full audit from the genesis: 3 entries") ||
		!strings.Contains(out, "state saved to hashfed-audit.state.json") {
		t.Fatalf("audit said:\n%s", out)
	}
	// After another contribution, an audit of all three nodes verifies only
	// the new entry.
	os.WriteFile(filepath.Join(dir, "batch3.csv"), []byte("type,value\nmd5,92eb5ffee6ae2fec3ad71c777531578f\n"), 0o644)
	run(t, dir, env(orgs[0]), "publish", "--set", "ngo/csam", "--signing-key", "ngo/signing.key", "--file", "batch3.csv")
	all := orgs[0].api + "," + orgs[1].api + "," + orgs[2].api
	rep := auditJSON(t, dir, env(orgs[2]), true, "--node", all)
	if !rep.OK || rep.Mode != "incremental" || rep.From != 3 || rep.Entries != 1 || rep.Statements != 1 || rep.Checkpoint.Size != 4 ||
		len(rep.Nodes) != 3 || !rep.StateSaved || rep.Checkpoint.Origin != fed || len(rep.Checkpoint.SignedBy) != 3 || !strings.HasPrefix(rep.Checkpoint.Note, fed+"\n4\n") {
		t.Fatalf("incremental audit of three nodes: %+v", rep)
	}
	rep = auditJSON(t, dir, env(orgs[2]), true, "--full", "--node", all)
	if !rep.OK || rep.Mode != "full" || rep.From != 0 || rep.Entries != 4 || rep.InclusionProofs != 4 || rep.Checkpoint.Size != 4 {
		t.Fatalf("full audit: %+v", rep)
	}
	// A state from another genesis is refused, with a non-zero exit status.
	state, _ := os.ReadFile(filepath.Join(dir, "hashfed-audit.state.json"))
	os.WriteFile(filepath.Join(dir, "other.state.json"), []byte(strings.Replace(string(state), `"federation": "example.hashfed"`, `"federation": "other.hashfed"`, 1)), 0o644)
	rep = auditJSON(t, dir, env(orgs[2]), false, "--state", "other.state.json")
	if rep.OK || !strings.Contains(rep.Error, "audit state does not match") || rep.StateSaved {
		t.Fatalf("audit from another federation's state: %+v", rep)
	}
	// A saved checkpoint of the same size with another root, validly signed
	// with a node's registered key, is a split view; both notes are evidence.
	forged := forgeState(t, dir, string(state), "ngo/node-ngo-1.note")
	rep = auditJSON(t, dir, env(orgs[2]), false, "--state", "forked.state.json", "--node", all)
	if sv := rep.SplitView; rep.OK || sv == nil || sv.A.Node != "saved audit state" || sv.A.Note != forged || !strings.Contains(all, sv.B.Node) ||
		sv.B.Note != rep.Checkpoint.Note || !strings.Contains(sv.Reason, "size 4 with different roots") || !strings.HasPrefix(rep.Error, "split view") {
		t.Fatalf("audit from a forked state: %+v", rep)
	}
	out, _ = runErr(dir, env(orgs[2]), "audit", "--state", "forked.state.json", "--node", all)
	if !strings.HasPrefix(out, "FAIL\n") || !strings.Contains(out, "SPLIT VIEW") || !strings.Contains(out, "    "+strings.ReplaceAll(strings.TrimSuffix(forged, "\n"), "\n", "\n    ")) {
		t.Fatalf("audit from a forked state said:\n%s", out)
	}
	rep = auditJSON(t, dir, env(orgs[2]), false, "--min-orgs", "4", "--node", orgs[1].api)
	if rep.OK || !strings.Contains(rep.Error, "only 3 voting orgs") {
		t.Fatalf("audit with an impossible policy: %+v", rep)
	}
	// Governance from the command line: ngo proposes a new set, ngo and
	// techco (two of the three operator orgs) sign, and it is in use at once.
	run(t, dir, env(orgs[0]), "gov", "propose", "--kind", "create-set", "--set", "ngo/urgent:types=md5:readers=techco", "--out", "act1.json")
	if out, err := runErr(dir, env(orgs[0]), "gov", "submit", "act1.json"); err == nil || !strings.Contains(out, "signed by 0 operator org(s)") {
		t.Fatalf("submitting an unsigned act: err %v\n%s", err, out)
	}
	run(t, dir, nil, "gov", "sign", "--org", "ngo", "--signing-key", "ngo/signing.key", "act1.json")
	run(t, dir, nil, "gov", "sign", "--org", "techco", "--signing-key", "techco/signing.key", "act1.json")
	if out := run(t, dir, env(orgs[1]), "gov", "submit", "act1.json"); !strings.Contains(out, "act committed as ledger entry") {
		t.Fatalf("gov submit said:\n%s", out)
	}
	if out := run(t, dir, env(orgs[2]), "gov", "show"); !strings.Contains(out, `"ngo/urgent"`) || !strings.Contains(out, `"next_act": 2`) {
		t.Fatalf("gov show said:\n%s", out)
	}
	os.WriteFile(filepath.Join(dir, "urgent.csv"), []byte("type,value\nmd5,d41d8cd98f00b204e9800998ecf8427e\n"), 0o644)
	run(t, dir, env(orgs[0]), "publish", "--set", "ngo/urgent", "--signing-key", "ngo/signing.key", "--file", "urgent.csv")
	if out := run(t, dir, env(orgs[2]), "audit"); !strings.HasPrefix(out, "OK:") {
		t.Fatalf("audit after governance said:\n%s", out)
	}

	// The auditor's org may not read values.
	if out, err := runErr(dir, env(orgs[2]), "subscribe", "--set", "ngo/csam"); err == nil || !strings.Contains(out, "PermissionDenied") {
		t.Fatalf("auditor reading values: err %v, output:\n%s", err, out)
	}
	// A client certificate from a CA the federation does not know gets nothing.
	run(t, dir, nil, "certs", "create-ca", "--org", "ngo", "--dir", "rogue")
	run(t, dir, nil, "certs", "create-client", "--ca-dir", "rogue", "--name", "mallory")
	rogue := []string{"HASHFED_NODE=" + orgs[0].api, "HASHFED_GENESIS=genesis.json", "HASHFED_CERT=rogue/client-mallory.crt", "HASHFED_KEY=rogue/client-mallory.key"}
	if out, err := runErr(dir, rogue, "audit"); err == nil || !strings.Contains(out, "Unavailable") {
		t.Fatalf("rogue client: err %v, output:\n%s", err, out)
	}
}

// auditOutput is the shape of `hashfed audit --json`.
type auditOutput struct {
	OK         bool   `json:"ok"`
	Error      string `json:"error"`
	Index      *int64 `json:"index"`
	Mode       string `json:"mode"`
	From       int64  `json:"from"`
	Checkpoint struct {
		Node, Origin, Root, Note string
		Size                     int64
		SignedBy                 []string `json:"signed_by"`
		Orgs                     []string
	} `json:"checkpoint"`
	Nodes []struct {
		Node, Origin, Root, Error string
		Size                      int64
		SignedBy                  []string `json:"signed_by"`
		Orgs                      []string
	} `json:"nodes"`
	Entries           int64 `json:"entries_verified"`
	InclusionProofs   int64 `json:"inclusion_proofs"`
	ConsistencyProofs int64 `json:"consistency_proofs"`
	Statements        int64 `json:"statements"`
	Signals           int64 `json:"signals"`
	SplitView         *struct {
		Reason string
		A, B   struct{ Node, Note string }
	} `json:"split_view"`
	StateFile  string `json:"state_file"`
	StateSaved bool   `json:"state_saved"`
}

// auditJSON runs `hashfed audit --json`, checks that it exits 0 exactly if
// ok, and decodes the one object it prints on standard output.
func auditJSON(t *testing.T, dir string, env []string, ok bool, args ...string) auditOutput {
	t.Helper()
	cmd := exec.Command(hashfedBin, append([]string{"audit", "--json"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if (err == nil) != ok {
		t.Fatalf("hashfed audit --json %v: exit %v, want success %v\nstdout:\n%s\nstderr:\n%s", args, err, ok, stdout, stderr.String())
	}
	var out auditOutput
	dec := json.NewDecoder(bytes.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil || dec.More() {
		t.Fatalf("hashfed audit --json %v printed something other than one JSON object (%v):\n%s", args, err, stdout)
	}
	return out
}

// forgeState writes forked.state.json: state with its checkpoint replaced
// by one of the same size with another root, signed with the note key in
// keyFile. It returns the forged signed note.
func forgeState(t *testing.T, dir, state, keyFile string) string {
	t.Helper()
	st, err := client.ParseAuditState([]byte(state))
	if err != nil {
		t.Fatal(err)
	}
	skey, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(strings.TrimSpace(string(skey)))
	if err != nil {
		t.Fatal(err)
	}
	cp := ledger.Checkpoint{Origin: st.Federation, Size: st.Size, Hash: sha256.Sum256([]byte("a fork"))}
	signed, err := ledger.SignCheckpoint(cp, signer)
	if err != nil {
		t.Fatal(err)
	}
	st.Checkpoint, st.Root = string(signed), cp.Hash.String()
	if err := st.Save(filepath.Join(dir, "forked.state.json")); err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// TestDemo runs the README's first command.
func TestDemo(t *testing.T) {
	out, err := runErr(t.TempDir(), nil, "demo")
	if err != nil {
		t.Fatalf("hashfed demo: %v\n%s", err, out)
	}
	for _, want := range []string{"leader", "committed as entry 1", "identical to those published", "all 3 nodes hold the same 2 entries", "receipt for entry 1: checkpoint of size 2 cosigned by", "cosigned by ngo, techco, auditor", ": OK", "demo OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// TestUsageErrors: wrong invocations exit 2 with a message, not a stack trace.
func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"certs"}, {"certs", "create-ca"}, {"publish"}, {"node"}, {"genesis", "assemble"}} {
		out, err := runErr(t.TempDir(), []string{"HASHFED_NODE=", "HASHFED_CERT=", "HASHFED_KEY="}, args...)
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("hashfed %v: exit %v, want status 2\n%s", args, err, out)
		}
		if strings.Contains(out, "goroutine") || strings.TrimSpace(out) == "" {
			t.Errorf("hashfed %v printed:\n%s", args, out)
		}
	}
}
