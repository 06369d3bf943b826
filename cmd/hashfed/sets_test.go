package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// runSplit runs hashfed in dir and returns its standard output and
// standard error apart, for commands whose output is data.
func runSplit(dir string, env []string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, hashfedBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// exitCode returns the exit status of a finished command, -1 if it did not
// exit.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err == nil {
		return 0
	}
	return -1
}

// setLine is one line of `hashfed set list --format jsonl`.
type setLine struct {
	Type        string           `json:"type"`
	Value       string           `json:"value"`
	ValueSHA256 string           `json:"value_sha256"`
	Labels      []string         `json:"labels"`
	AddedAt     int64            `json:"added_at"`
	ChangedAt   int64            `json:"changed_at"`
	Tally       federation.Tally `json:"tally"`
}

func decodeSetLines(t *testing.T, out string) []setLine {
	t.Helper()
	var lines []setLine
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	for dec.More() {
		var l setLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("decoding set list output: %v\n%s", err, out)
		}
		lines = append(lines, l)
	}
	return lines
}

// TestSetCommands runs `hashfed set show|list|lookup` against a real
// federation after adds, a retraction, a relabel and feedback: as a
// reader, as an auditor and as an org that reads nothing of the set.
func TestSetCommands(t *testing.T) {
	skipShort(t, "runs a three-node federation and the hashfed binary")
	dir := t.TempDir()
	opts := localfed.DemoOptions(dir)
	opts.Orgs = append(opts.Orgs, localfed.OrgSpec{Name: "iwf", Roles: []federation.Role{federation.RolePublisher}})
	opts.CheckpointInterval = 50 * time.Millisecond
	opts.Raft = node.RaftConfig{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotInterval:   time.Minute,
		SnapshotThreshold:  8192,
		TrailingLogs:       1024,
	}
	f, err := localfed.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	const set = localfed.DemoSet
	addr := map[string]string{}
	for _, nf := range f.Files {
		addr[nf.ID] = nf.APIAddress
	}
	env := func(org, nodeID string) []string {
		o := f.Orgs[org]
		return []string{"HASHFED_NODE=" + addr[nodeID], "HASHFED_GENESIS=" + f.Genesis, "HASHFED_CERT=" + o.ClientCert, "HASHFED_KEY=" + o.ClientKey}
	}
	publish := func(org string, ch federation.Change) {
		t.Helper()
		c, err := f.Client(org, "ngo-1")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		s, err := f.Signer(org)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.PublishChange(ctx, s, set, 0, ch, ""); err != nil {
			t.Fatalf("%s's %s: %v", org, ch.Op, err)
		}
	}
	name := func(s *hashfedv1.Signal) *hashfedv1.Signal { return &hashfedv1.Signal{Type: s.Type, Value: s.Value} }

	sigs := localfed.SampleSignals(12)
	publish("ngo", federation.Change{Op: federation.OpAdd, Signals: sigs})
	publish("ngo", federation.Change{Op: federation.OpRetract, Signals: []*hashfedv1.Signal{name(sigs[10]), name(sigs[11])}, Reason: "not abuse material"})
	publish("ngo", federation.Change{Op: federation.OpRelabel, Signals: []*hashfedv1.Signal{{Type: sigs[0].Type, Value: sigs[0].Value, Labels: []string{"C1"}}}})
	publish("techco", federation.Change{Op: federation.OpFeedback, Verdict: federation.VerdictDisputed, Signals: []*hashfedv1.Signal{name(sigs[1]), name(sigs[2])}})
	current := slices.Clone(sigs[:10])
	current[0] = &hashfedv1.Signal{Type: sigs[0].Type, Value: sigs[0].Value, Labels: []string{"C1"}}

	// show: anyone may ask; the answer says what the caller may see.
	out := run(t, dir, env("techco", "auditor-1"), "set", "show", set)
	for _, want := range []string{"owner          ngo", "readers        techco", "signals        10", "next sequence  4", "your access    values"} {
		if !strings.Contains(out, want) {
			t.Errorf("set show as techco lacks %q:\n%s", want, out)
		}
	}
	stdout, stderr, err := runSplit(dir, env("iwf", "techco-1"), "set", "show", "--json", set)
	var shown struct {
		Count  int64  `json:"count"`
		Access string `json:"access"`
	}
	if err != nil || json.Unmarshal([]byte(stdout), &shown) != nil || shown.Count != 10 || shown.Access != "none" {
		t.Errorf("set show --json as iwf: %v, %+v\n%s%s", err, shown, stdout, stderr)
	}

	// list --format csv, over several pages, reads back as exactly the
	// current signals.
	stdout, stderr, err = runSplit(dir, env("techco", "techco-1"), "set", "list", set, "--format", "csv", "--page-size", "3")
	if err != nil {
		t.Fatalf("set list --format csv: %v\n%s", err, stderr)
	}
	if first, _, _ := strings.Cut(stdout, "\n"); first != "signal_type,signal_value,tags" {
		t.Errorf("csv header %q, want signal_type,signal_value,tags", first)
	}
	if !strings.Contains(stderr, "listed 10 signals of "+set) {
		t.Errorf("set list said on standard error:\n%s", stderr)
	}
	back, err := federation.ReadSignals(strings.NewReader(stdout), federation.FormatCSV)
	if err != nil {
		t.Fatalf("the csv listing does not read back: %v\n%s", err, stdout)
	}
	order := func(a, b *hashfedv1.Signal) int {
		return strings.Compare(a.Type.String()+a.Value, b.Type.String()+b.Value)
	}
	slices.SortFunc(back, order)
	slices.SortFunc(current, order)
	if !slices.EqualFunc(back, current, func(a, b *hashfedv1.Signal) bool { return proto.Equal(a, b) }) {
		t.Errorf("the csv listing reads back as\n%v\nwant\n%v", back, current)
	}

	// list --min-disputes (flags after the set, jsonl by default).
	stdout, stderr, err = runSplit(dir, env("ngo", "ngo-1"), "set", "list", set, "--min-disputes", "1")
	if err != nil {
		t.Fatalf("set list --min-disputes 1: %v\n%s", err, stderr)
	}
	var disputed []string
	for _, l := range decodeSetLines(t, stdout) {
		disputed = append(disputed, l.Value)
		if l.Tally != (federation.Tally{Disputed: 1}) {
			t.Errorf("disputed signal %s has tally %+v, want 1 disputed", l.Value, l.Tally)
		}
	}
	slices.Sort(disputed)
	if want := []string{sigs[1].Value, sigs[2].Value}; !slices.Equal(disputed, slices.Sorted(slices.Values(want))) {
		t.Errorf("--min-disputes 1 listed %v, want %v", disputed, want)
	}

	// The auditor lists digests, never values.
	stdout, stderr, err = runSplit(dir, env("auditor", "auditor-1"), "set", "list", set)
	if err != nil {
		t.Fatalf("set list as the auditor: %v\n%s", err, stderr)
	}
	wantDigests := map[string]bool{}
	for _, s := range current {
		sum := sha256.Sum256([]byte(s.Value))
		wantDigests[hex.EncodeToString(sum[:])] = true
	}
	lines := decodeSetLines(t, stdout)
	for _, l := range lines {
		if l.Value != "" || !wantDigests[l.ValueSHA256] {
			t.Errorf("the auditor's listing holds value %q, digest %q", l.Value, l.ValueSHA256)
		}
	}
	if len(lines) != len(current) {
		t.Errorf("the auditor's listing holds %d signals, want %d", len(lines), len(current))
	}
	for _, s := range current {
		if strings.Contains(stdout, s.Value) {
			t.Errorf("a value reached the auditor: %s", s.Value)
		}
	}
	// Its CSV names the digest column, so it cannot pass for a list of signals.
	stdout, stderr, err = runSplit(dir, env("auditor", "auditor-1"), "set", "list", "--format", "csv", set)
	if err != nil {
		t.Fatalf("set list --format csv as the auditor: %v\n%s", err, stderr)
	}
	if first, _, _ := strings.Cut(stdout, "\n"); first != "signal_type,signal_value_sha256,tags" || strings.Count(stdout, "\n") != len(current)+1 {
		t.Errorf("the auditor's csv:\n%s", stdout)
	}
	if _, err := federation.ReadSignals(strings.NewReader(stdout), federation.FormatCSV); err == nil {
		t.Errorf("the auditor's csv of digests reads back as signals:\n%s", stdout)
	}

	// lookup: found (a value in upper case is canonicalised), not found
	// (exit 1), malformed (the node's InvalidArgument).
	out = run(t, dir, env("techco", "ngo-1"), "set", "lookup", set, "md5", strings.ToUpper(sigs[0].Value))
	if !strings.Contains(out, "found          md5 "+sigs[0].Value) || !strings.Contains(out, "labels         C1") {
		t.Errorf("set lookup said:\n%s", out)
	}
	stdout, _, err = runSplit(dir, env("techco", "ngo-1"), "set", "lookup", "--json", set, "sha1", sigs[1].Value)
	if ls := decodeSetLines(t, stdout); err != nil || len(ls) != 1 || ls[0].Value != sigs[1].Value || ls[0].Tally.Disputed != 1 {
		t.Errorf("set lookup --json: %v\n%s", err, stdout)
	}
	out, err = runErr(dir, env("techco", "ngo-1"), "set", "lookup", set, "md5", sigs[10].Value)
	if exitCode(err) != 1 || !strings.Contains(out, "does not hold md5 signal") {
		t.Errorf("lookup of a retracted signal: exit %d\n%s", exitCode(err), out)
	}
	out, err = runErr(dir, env("techco", "ngo-1"), "set", "lookup", set, "md5", "abc")
	if exitCode(err) != 1 || !strings.Contains(out, "InvalidArgument") {
		t.Errorf("lookup of a malformed value: exit %d\n%s", exitCode(err), out)
	}

	// An org that does not read the set is told which set and what to do.
	out, err = runErr(dir, env("iwf", "ngo-1"), "set", "list", set)
	if err == nil || !strings.Contains(out, "PermissionDenied") || !strings.Contains(out, `"`+set+`"`) || !strings.Contains(out, "set-readers") {
		t.Errorf("a non-reader listing: %v\n%s", err, out)
	}

	// Usage errors exit 2 before dialling anything.
	for _, args := range [][]string{{"set"}, {"set", "frob"}, {"set", "list"}, {"set", "list", set, "--format", "xml"}, {"set", "lookup", set, "pdq"}, {"set", "lookup", set, "crc32", "00"}, {"set", "show", set, "extra"}} {
		out, err := runErr(dir, env("techco", "ngo-1"), args...)
		if exitCode(err) != 2 || strings.Contains(out, "goroutine") {
			t.Errorf("hashfed %v: exit %d, want 2\n%s", args, exitCode(err), out)
		}
	}
}
