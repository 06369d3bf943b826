package main_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
)

// importFed is a running three-org federation (localfed, real nodes over
// mutual TLS on loopback) for the publish tests, which run the binary
// against it.
type importFed struct {
	*localfed.Federation
	dir string
}

// threeOrgOptions: ngo publishes ngo/csam, techco reads it, auditor audits;
// each runs one voting node. Fast elections on loopback.
func threeOrgOptions(dir, fedName string) localfed.Options {
	return localfed.Options{
		Dir:        dir,
		Federation: fedName,
		Orgs: []localfed.OrgSpec{
			{Name: "ngo", Roles: []federation.Role{federation.RolePublisher, federation.RoleOperator}, Nodes: 1},
			{Name: "techco", Roles: []federation.Role{federation.RoleSubscriber, federation.RoleOperator}, Nodes: 1},
			{Name: "auditor", Roles: []federation.Role{federation.RoleAuditor, federation.RoleOperator}, Nodes: 1},
		},
		Sets:               []federation.Set{{Name: "ngo/csam", Types: federation.SignalTypes, Readers: []string{"techco"}}},
		CheckpointInterval: 50 * time.Millisecond,
		Raft: node.RaftConfig{
			HeartbeatTimeout: 300 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond,
			LeaderLeaseTimeout: 150 * time.Millisecond, CommitTimeout: 5 * time.Millisecond,
			SnapshotInterval: time.Minute, SnapshotThreshold: 8192, TrailingLogs: 1024,
		},
	}
}

func startImportFed(t *testing.T) *importFed {
	t.Helper()
	skipShort(t, "builds the hashfed binary and runs a three-node federation")
	dir := t.TempDir()
	f, err := localfed.Create(threeOrgOptions(dir, "publish.hashfed.test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return &importFed{f, dir}
}

// env is what org's command-line user sets to reach the federation.
func (f *importFed) env(org string) []string {
	o := f.Orgs[org]
	return []string{"HASHFED_NODE=" + f.Files[0].APIAddress, "HASHFED_GENESIS=" + f.Genesis,
		"HASHFED_CERT=" + o.ClientCert, "HASHFED_KEY=" + o.ClientKey}
}

// publishArgs are the arguments of `hashfed publish` for org's key.
func (f *importFed) publishArgs(org, file string, more ...string) []string {
	return append([]string{"publish", "--set", "ngo/csam", "--signing-key", f.Orgs[org].SigningKey, "--file", file}, more...)
}

// committed is the ledger as techco, a reader of ngo/csam, sees it.
type committed struct {
	values map[string]int      // signal value: how many contributions of ngo carry it
	labels map[string][]string // signal value: labels of its latest add or relabel
	ops    map[string]int      // op: how many of ngo's contributions
	seqs   map[string][]uint64 // org: its contributions' sequence numbers, in ledger order
	size   int64
	last   *client.Update
}

func (f *importFed) ledger(t *testing.T) committed {
	t.Helper()
	c, err := f.Client("techco", "techco-1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v := committed{values: map[string]int{}, labels: map[string][]string{}, ops: map[string]int{}, seqs: map[string][]uint64{}}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err = c.CatchUp(ctx, 0, []string{"ngo/csam"}, func(u *client.Update) error {
		v.size = u.Index + 1
		st := u.Statement
		if st == nil || st.Set != "ngo/csam" {
			return nil
		}
		v.seqs[st.Org] = append(v.seqs[st.Org], st.Sequence)
		v.last = u
		if st.Org != "ngo" {
			return nil
		}
		v.ops[st.Op]++
		for _, s := range u.Signals {
			if st.Op == federation.OpAdd {
				v.values[s.Value]++
			}
			if st.Op == federation.OpAdd || st.Op == federation.OpRelabel {
				v.labels[s.Value] = s.Labels
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkOnce checks that each of values was added exactly once and that
// every org's sequence numbers for ngo/csam run 1, 2, ... without a gap.
func (v committed) checkOnce(t *testing.T, values []string) {
	t.Helper()
	for _, val := range values {
		if n := v.values[val]; n != 1 {
			t.Fatalf("signal %s was added %d times, want once", val, n)
		}
	}
	for org, seqs := range v.seqs {
		for i, s := range seqs {
			if s != uint64(i+1) {
				t.Fatalf("%s's contributions to ngo/csam carry sequences %v: not 1, 2, ... without a gap", org, seqs)
			}
		}
	}
}

func md5N(i int) string    { return fmt.Sprintf("%032x", 1<<44+i) }
func sha1N(i int) string   { return fmt.Sprintf("%040x", 1<<44+i) }
func pdqN(i int) string    { return fmt.Sprintf("%064x", 1<<45+i) }
func sha256N(i int) string { return fmt.Sprintf("%064x", 1<<46+i) }
func photoDNAN(i int) string {
	b := bytes.Repeat([]byte{0x5a}, 144)
	copy(b, fmt.Sprint(i))
	return base64.StdEncoding.EncodeToString(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCLIImportLayouts imports an NCMEC-style CSV (a column per
// fingerprint type, pdna for PhotoDNA, a classification), an HMA-style CSV
// (python-threatexchange's dataset export) and a JSON-lines file, each in
// several contributions, then reruns one (nothing is sent) and refuses one
// with a journal that does not match.
func TestCLIImportLayouts(t *testing.T) {
	f := startImportFed(t)
	dir := f.dir
	var ncmec, hma, jsonl strings.Builder
	var ncmecValues, hmaValues, jsonlValues []string
	ncmec.WriteString("ID,MD5,SHA1,PDNA,PDQ,Classification\n")
	for i := range 1200 {
		fmt.Fprintf(&ncmec, "%d,%s,%s,%s,,%s\n", i, strings.ToUpper(md5N(i)), sha1N(i), photoDNAN(i), []string{"A1", "A2", "B1", "B2"}[i%4])
		ncmecValues = append(ncmecValues, md5N(i), sha1N(i), photoDNAN(i))
	}
	fmt.Fprintf(&ncmec, "1200,%s,,,,A1\n", md5N(0)) // an exact duplicate
	hma.WriteString("collab,signal_type,signal_str,category,tags\n")
	for i := range 1500 {
		fmt.Fprintf(&hma, "Sample Data,pdq,%s,POSITIVE_CLASS,csam media_type_photo\n", pdqN(i))
		hmaValues = append(hmaValues, pdqN(i))
	}
	for i := range 1500 {
		fmt.Fprintf(&jsonl, `{"type":"sha256","value":"%s","labels":["B1"]}`+"\n", sha256N(i))
		jsonlValues = append(jsonlValues, sha256N(i))
	}
	writeFile(t, filepath.Join(dir, "ncmec.csv"), ncmec.String())
	writeFile(t, filepath.Join(dir, "hma.csv"), hma.String())
	writeFile(t, filepath.Join(dir, "signals.jsonl"), jsonl.String())

	out := run(t, dir, f.env("ngo"), f.publishArgs("ngo", "ncmec.csv", "--batch", "1000", "--progress", "plain")...)
	for _, want := range []string{
		"checking every line of ncmec.csv before sending anything",
		"progress ncmec.csv: 0/3,600 signals",
		"progress ncmec.csv: 3,600/3,600 signals",
		"committed 3600 signals to ngo/csam in 4 contributions, sequences 1 to 4, ledger entries 1 to 4\n",
		"3600 signals, 1 exact duplicates skipped, 4 contributions, in ",
		"receipt ngo_csam_4.tlog-proof: entry 4 under a checkpoint",
	} {
		if !strings.Contains(out, want) {
			t.Fatalf("publish of the NCMEC-style file lacks %q:\n%s", want, out)
		}
	}
	if out := run(t, dir, nil, "verify-receipt", "ngo_csam_4.tlog-proof"); !strings.Contains(out, "OK ngo_csam_4.tlog-proof") {
		t.Fatalf("verify-receipt said:\n%s", out)
	}
	out = run(t, dir, f.env("ngo"), f.publishArgs("ngo", "hma.csv", "--batch", "400", "--progress", "none", "--receipt-dir", "")...)
	if !strings.Contains(out, "committed 1500 signals to ngo/csam in 4 contributions, sequences 5 to 8") || strings.Contains(out, "progress") || strings.Contains(out, "receipt") {
		t.Fatalf("publish of the HMA-style file said:\n%s", out)
	}
	// The bar: on a terminal by default, here asked for.
	out = run(t, dir, f.env("ngo"), f.publishArgs("ngo", "signals.jsonl", "--batch", "700", "--progress", "bar", "--receipt-dir", "")...)
	if !strings.Contains(out, "committed 1500 signals to ngo/csam in 3 contributions, sequences 9 to 11") ||
		!strings.Contains(out, "\r[") || !strings.Contains(out, "100% 1,500/1,500 signals") || !strings.Contains(out, " signals/s") {
		t.Fatalf("publish of the JSON-lines file said:\n%q", out)
	}
	v := f.ledger(t)
	v.checkOnce(t, append(append(ncmecValues, hmaValues...), jsonlValues...))
	if got := v.labels[photoDNAN(5)]; len(got) != 1 || got[0] != "A2" {
		t.Errorf("labels of an NCMEC-style row: %q, want its classification A2", got)
	}
	if got := v.labels[pdqN(0)]; strings.Join(got, " ") != "POSITIVE_CLASS csam media_type_photo" {
		t.Errorf("labels of an HMA-style row: %q", got)
	}

	// A rerun of a finished import sends nothing.
	out = run(t, dir, f.env("ngo"), f.publishArgs("ngo", "hma.csv", "--batch", "400")...)
	if !strings.Contains(out, "already done: hma.csv.hashfed-import.json records all 4 contributions (1500 signals) of hma.csv to ngo/csam as committed, sequences 5 to 8; nothing sent") {
		t.Fatalf("rerun said:\n%s", out)
	}
	if after := f.ledger(t); after.size != v.size {
		t.Fatalf("the rerun changed the ledger from %d to %d entries", v.size, after.size)
	}
	// A journal of another import is refused, saying what differs and what to do.
	out, err := runErr(dir, f.env("ngo"), f.publishArgs("ngo", "hma.csv", "--batch", "500")...)
	if err == nil || !strings.Contains(out, "the import journal does not match") || !strings.Contains(out, "its batch is 400, this import's is 500") ||
		!strings.Contains(out, "move the journal away or pass --journal with another path") {
		t.Fatalf("publish with a mismatched journal: %v\n%s", err, out)
	}
	out, err = runErr(dir, f.env("ngo"), f.publishArgs("ngo", "signals.jsonl", "--batch", "700", "--journal", "hma.csv.hashfed-import.json")...)
	if err == nil || !strings.Contains(out, "its file SHA-256 is") {
		t.Fatalf("publish of a file with another file's journal: %v\n%s", err, out)
	}
	if after := f.ledger(t); after.size != v.size {
		t.Fatalf("refused imports changed the ledger from %d to %d entries", v.size, after.size)
	}
}

// journalCommitted reads how many contributions the journal records as
// committed (-1: no journal yet).
func journalCommitted(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	var j struct {
		Committed int `json:"committed"`
	}
	if json.Unmarshal(b, &j) != nil {
		return -1
	}
	return j.Committed
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// A publishRun is `hashfed publish` running in the background.
type publishRun struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error // receives Wait's result
}

func startPublish(t *testing.T, f *importFed, args []string) *publishRun {
	t.Helper()
	p := &publishRun{cmd: exec.Command(hashfedBin, args...), out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Dir = f.dir
	p.cmd.Env = append(os.Environ(), f.env("ngo")...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	return p
}

// waitCommitted waits until the journal records at least n commits, and
// fails if the command exits first.
func (p *publishRun) waitCommitted(t *testing.T, journal string, n int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for journalCommitted(journal) < n {
		select {
		case err := <-p.done:
			t.Fatalf("publish exited (%v) before the journal recorded %d commits:\n%s", err, n, p.out)
		case <-deadline:
			t.Fatalf("the journal never recorded %d commits:\n%s", n, p.out)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// bigImport writes a file of n md5 signals starting at from and returns
// its name and values.
func bigImport(t *testing.T, f *importFed, name string, from, n int) []string {
	t.Helper()
	var b strings.Builder
	var values []string
	b.WriteString("type,value,labels\n")
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "md5,%s,A1\n", md5N(i))
		values = append(values, md5N(i))
	}
	writeFile(t, filepath.Join(f.dir, name), b.String())
	return values
}

// TestCLIImportKill9 kills the publishing process with SIGKILL in the
// middle of an import (wherever it is: between a commit and the journal's
// update is one of the places), runs it again, and checks through the node
// that every signal of the file is committed exactly once and the
// contribution sequence has no gap. Then it interrupts another import with
// SIGINT, which stops after the contribution in flight, and resumes it.
func TestCLIImportKill9(t *testing.T) {
	f := startImportFed(t)
	values := bigImport(t, f, "big.csv", 0, 6000)
	journal := filepath.Join(f.dir, "big.csv.hashfed-import.json")
	args := f.publishArgs("ngo", "big.csv", "--batch", "50", "--progress", "plain", "--receipt-dir", "")

	p := startPublish(t, f, args)
	p.waitCommitted(t, journal, 3)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	killedAt := journalCommitted(journal)
	if ee, ok := err.(*exec.ExitError); !ok || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("publish was not killed (it exited with %v after %d contributions):\n%s", err, killedAt, p.out)
	}
	if _, err := os.Stat(journal + ".lock"); err != nil {
		t.Fatalf("a killed import leaves its lock file (stat: %v)", err)
	}
	before := f.ledger(t)
	rerun := runResumable(t, f.dir, f.env("ngo"), args...)
	if !strings.Contains(rerun, "committed 6000 signals to ngo/csam in 120 contributions, sequences 1 to 120") ||
		!strings.Contains(rerun, fmt.Sprintf("resumed: %d contributions were committed by an earlier run", len(before.seqs["ngo"]))) {
		t.Fatalf("the rerun after kill -9 (journal at %d, ledger at %d contributions) said:\n%s", killedAt, len(before.seqs["ngo"]), rerun)
	}
	v := f.ledger(t)
	v.checkOnce(t, values)
	if n := len(v.seqs["ngo"]); n != 120 {
		t.Fatalf("ngo has %d contributions on the ledger, want 120", n)
	}

	// SIGINT: the contribution in flight finishes, the journal is saved, the
	// user is told how to resume.
	values = bigImport(t, f, "second.csv", 10000, 6000)
	journal = filepath.Join(f.dir, "second.csv.hashfed-import.json")
	args = f.publishArgs("ngo", "second.csv", "--batch", "50", "--progress", "plain", "--receipt-dir", "")
	p = startPublish(t, f, args)
	p.waitCommitted(t, journal, 2)
	p.cmd.Process.Signal(syscall.SIGINT)
	err = <-p.done
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 130 || !strings.Contains(p.out.String(), "import interrupted: ") ||
		!strings.Contains(p.out.String(), "run the same command again to resume") {
		t.Fatalf("publish after SIGINT: exit %v\n%s", err, p.out)
	}
	stoppedAt := journalCommitted(journal)
	if v := f.ledger(t); len(v.seqs["ngo"]) != 120+stoppedAt {
		t.Fatalf("after SIGINT the journal records %d contributions and the ledger %d", stoppedAt, len(v.seqs["ngo"])-120)
	}
	if _, err := os.Stat(journal + ".lock"); !os.IsNotExist(err) {
		t.Fatalf("an interrupted import left its lock file (stat: %v)", err)
	}
	rerun = runResumable(t, f.dir, f.env("ngo"), args...)
	if !strings.Contains(rerun, "in 120 contributions, sequences 121 to 240") {
		t.Fatalf("the rerun after SIGINT said:\n%s", rerun)
	}
	f.ledger(t).checkOnce(t, values)
}

// TestCLIRetractRelabelFeedback publishes signals, relabels some, retracts
// some with a reason, and has the reader org record feedback on one.
func TestCLIRetractRelabelFeedback(t *testing.T) {
	f := startImportFed(t)
	dir := f.dir
	writeFile(t, filepath.Join(dir, "list.csv"), fmt.Sprintf("type,value,labels\nmd5,%s,A1\nmd5,%s,A1\npdq,%s,B2\n", md5N(1), md5N(2), pdqN(1)))
	run(t, dir, f.env("ngo"), f.publishArgs("ngo", "list.csv")...)

	writeFile(t, filepath.Join(dir, "relabel.csv"), fmt.Sprintf("type,value,labels\nmd5,%s,A2 reviewed\n", md5N(1)))
	out := run(t, dir, f.env("ngo"), f.publishArgs("ngo", "relabel.csv", "--relabel")...)
	if !strings.Contains(out, "committed new labels of 1 signals of ngo/csam as sequence 2") {
		t.Fatalf("relabel said:\n%s", out)
	}
	// The file a list was published from can be retracted as it is: its
	// labels are ignored, and the retraction keeps a journal of its own.
	out, err := runErr(dir, f.env("ngo"), f.publishArgs("ngo", "list.csv", "--retract")...)
	if err == nil || !strings.Contains(out, "--retract needs --reason") {
		t.Fatalf("retract without a reason: %v\n%s", err, out)
	}
	writeFile(t, filepath.Join(dir, "retract.csv"), fmt.Sprintf("type,value,labels\npdq,%s,B2\n", pdqN(1)))
	out = run(t, dir, f.env("ngo"), f.publishArgs("ngo", "retract.csv", "--retract", "--reason", "not abuse material, confirmed by review")...)
	if !strings.Contains(out, "committed retraction of 1 signals from ngo/csam as sequence 3") {
		t.Fatalf("retract said:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "retract.csv.hashfed-retract.json")); err != nil {
		t.Errorf("the retraction's journal: %v", err)
	}

	writeFile(t, filepath.Join(dir, "fp.jsonl"), fmt.Sprintf(`{"type":"md5","value":"%s"}`+"\n", md5N(2)))
	techco := f.Orgs["techco"]
	out = run(t, dir, f.env("techco"), "feedback", "--set", "ngo/csam", "--verdict", "false_positive", "--reason", "matched a stock photo",
		"--signing-key", techco.SigningKey, "--file", "fp.jsonl")
	if !strings.Contains(out, "committed false_positive feedback on 1 signals of ngo/csam as sequence 1") || !strings.Contains(out, "receipt techco_ngo_csam_1.tlog-proof") {
		t.Fatalf("feedback said:\n%s", out)
	}

	v := f.ledger(t)
	if v.ops[federation.OpAdd] != 1 || v.ops[federation.OpRelabel] != 1 || v.ops[federation.OpRetract] != 1 || len(v.seqs["techco"]) != 1 {
		t.Fatalf("contributions on the ledger: ngo %v, techco %v", v.ops, v.seqs["techco"])
	}
	if got := v.labels[md5N(1)]; strings.Join(got, " ") != "A2 reviewed" {
		t.Errorf("labels after the relabel: %q", got)
	}
	if st := v.last.Statement; st.Org != "techco" || st.Op != federation.OpFeedback || st.Verdict != federation.VerdictFalsePositive || v.last.Reason != "matched a stock photo" {
		t.Errorf("the feedback entry: %+v, reason %q", st, v.last.Reason)
	}
	v.checkOnce(t, nil)
}

// TestCLIPublishUsage: contradictory or incomplete change flags are usage
// errors (exit 2), reported before anything is read or sent.
func TestCLIPublishUsage(t *testing.T) {
	skipShort(t, "runs the hashfed binary")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"publish", "--set", "a/b", "--signing-key", "k", "--file", "f", "--retract", "--relabel"}, "give at most one"},
		{[]string{"publish", "--set", "a/b", "--signing-key", "k", "--file", "f", "--retract"}, "--retract needs --reason"},
		{[]string{"publish", "--set", "a/b", "--signing-key", "k", "--file", "f", "--progress", "fancy"}, `--progress "fancy"`},
		{[]string{"publish", "--set", "a/b", "--signing-key", "k", "--file", "f", "--batch", "0"}, "--batch 0: want 1 to 10000"},
		{[]string{"publish", "--set", "a/b", "--signing-key", "k", "--file", "-", "--journal", "j"}, "standard input cannot be read again"},
		{[]string{"feedback", "--set", "a/b", "--signing-key", "k", "--file", "f"}, "--verdict is required"},
	} {
		out, err := runErr(t.TempDir(), nil, tt.args...)
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(out, tt.want) {
			t.Errorf("hashfed %v: exit %v, want 2 and %q\n%s", tt.args, err, tt.want, out)
		}
	}
}

// runResumable runs an import as a user would: when it stops because the
// outcome of a contribution is unknown (a leader change on a loaded machine:
// Unavailable or DeadlineExceeded) and says to run the same command again,
// it does, up to five times. Any other failure fails the test.
func runResumable(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		out, err := runErr(dir, env, args...)
		if err == nil {
			return out
		}
		ambiguous := strings.Contains(out, "code = Unavailable") || strings.Contains(out, "code = DeadlineExceeded")
		if attempt == 5 || !ambiguous || !strings.Contains(out, "run the same command again to resume") {
			t.Fatalf("hashfed %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("import stopped on an unknown outcome; running it again as it says:\n%s", out)
	}
}
