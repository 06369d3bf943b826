package client_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// importMD5 is the i-th MD5 value of the import tests, apart from the
// values other client tests publish.
func importMD5(i int) string { return fmt.Sprintf("%032x", 1<<40+i) }

// testSigner is a fresh statement signer for org.
func testSigner(t *testing.T, org string) *federation.Signer {
	t.Helper()
	priv, _, err := federation.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(path, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := federation.LoadSigner(org, path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// split runs a Splitter over in and returns its contributions.
func split(t *testing.T, in, format string, opts client.SplitOptions) ([][]*hashfedv1.Signal, *client.Splitter) {
	t.Helper()
	sr, err := federation.NewSignalReader(strings.NewReader(in), format)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := client.NewSplitter(sr, opts)
	if err != nil {
		t.Fatal(err)
	}
	var chunks [][]*hashfedv1.Signal
	for {
		c, err := sp.Next()
		if err == io.EOF {
			return chunks, sp
		}
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, c)
	}
}

// TestSplitter checks the cut into contributions against every limit by
// building (and signing) each contribution as an import would, and checks
// that the cut is deterministic and does not end contributions needlessly
// early.
func TestSplitter(t *testing.T) {
	signer := testSigner(t, "ngo")
	longLabel := func(i int) string { return fmt.Sprintf("%04d", i) + strings.Repeat("<", 60) } // 6 bytes each in JSON
	var sixteen []string
	for i := range 16 {
		sixteen = append(sixteen, fmt.Sprintf("%02d", i)+strings.Repeat("x", 62))
	}
	photo := func(i int) string {
		b := make([]byte, 144)
		copy(b, fmt.Sprint(i))
		return base64.StdEncoding.EncodeToString(b)
	}
	type csvRow struct{ typ, value, labels string }
	csvOf := func(rows []csvRow) string {
		var b strings.Builder
		b.WriteString("type,value,labels\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "%s,%s,%s\n", r.typ, r.value, r.labels)
		}
		return b.String()
	}
	var plain, dups, manyLabels, escaped, heavy []csvRow
	for i := range 2500 {
		plain = append(plain, csvRow{"md5", importMD5(i), "A1"})
		dups = append(dups, csvRow{"md5", importMD5(i % 700), fmt.Sprint("L", i/700)})
		manyLabels = append(manyLabels, csvRow{"md5", importMD5(i), fmt.Sprint("label", i)})
	}
	for i := range 300 {
		escaped = append(escaped, csvRow{"md5", importMD5(i), longLabel(i)})
	}
	for i := range 3000 {
		heavy = append(heavy, csvRow{"photodna", photo(i), strings.Join(sixteen, " ")})
	}
	for _, tt := range []struct {
		name        string
		rows        []csvRow
		op, reason  string
		verdict     string
		batch       int
		wantSizes   []int  // nil: check only the limits
		wantSkipped int64  // exact duplicates
		limit       string // the limit that ends contributions early
	}{
		{name: "batch", rows: plain, batch: 1000, wantSizes: []int{1000, 1000, 500}},
		{name: "default batch", rows: plain, wantSizes: []int{1000, 1000, 500}},
		{name: "duplicates skipped, first kept", rows: dups, batch: 300, wantSizes: []int{300, 300, 100}, wantSkipped: 1800},
		{name: "distinct labels", rows: manyLabels, batch: 10000, wantSizes: []int{256, 256, 256, 256, 256, 256, 256, 256, 256, 196}, limit: "labels"},
		{name: "escaped labels fill the envelope", rows: escaped, batch: 10000, limit: "envelope"},
		{name: "payload size", rows: heavy, batch: 10000, limit: "payload"},
		{name: "retraction drops labels", rows: manyLabels, op: federation.OpRetract, reason: "false positive", batch: 1000, wantSizes: []int{1000, 1000, 500}},
		{name: "feedback drops labels", rows: escaped, op: federation.OpFeedback, verdict: federation.VerdictDisputed, batch: 10000, wantSizes: []int{300}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			op := tt.op
			if op == "" {
				op = federation.OpAdd
			}
			opts := client.SplitOptions{Federation: "split.test", Org: "ngo", Set: "ngo/csam", Op: op, Reason: tt.reason, Verdict: tt.verdict, Batch: tt.batch}
			in := csvOf(tt.rows)
			chunks, sp := split(t, in, federation.FormatCSV, opts)
			again, _ := split(t, in, federation.FormatCSV, opts)
			if diff := cmp.Diff(chunks, again, protocmp.Transform()); diff != "" {
				t.Fatalf("the same input split differently twice:\n%s", diff)
			}
			var sizes []int
			total := 0
			for _, c := range chunks {
				sizes = append(sizes, len(c))
				total += len(c)
			}
			if tt.wantSizes != nil && !slices.Equal(sizes, tt.wantSizes) {
				t.Errorf("contribution sizes %v, want %v", sizes, tt.wantSizes)
			}
			if sp.Skipped() != tt.wantSkipped || sp.Signals() != int64(total) || int64(total)+tt.wantSkipped != int64(len(tt.rows)) {
				t.Errorf("Skipped() = %d, Signals() = %d over %d contributions of %d rows; want %d skipped", sp.Skipped(), sp.Signals(), total, len(tt.rows), tt.wantSkipped)
			}
			// Every contribution is valid and within the limits, and (but for
			// the last) full: the limit the case is about leaves little room.
			seen := map[string]bool{}
			for i, c := range chunks {
				contrib, st, err := federation.BuildChange(signer, opts.Federation, opts.Set, 1<<62, federation.Change{Op: op, Signals: c, Reason: tt.reason, Verdict: tt.verdict}, "2026-01-02T03:04:05Z")
				if err != nil {
					t.Fatalf("contribution %d of %d signals does not build: %v", i, len(c), err)
				}
				if len(contrib.Payload) > federation.MaxPayloadSize {
					t.Fatalf("contribution %d: payload of %d bytes", i, len(contrib.Payload))
				}
				for _, s := range c {
					k := s.Type.String() + s.Value
					if seen[k] {
						t.Fatalf("signal %s in two contributions", s.Value)
					}
					seen[k] = true
					if (op == federation.OpRetract || op == federation.OpFeedback) && len(s.Labels) > 0 {
						t.Fatalf("a %s signal carries labels %q", op, s.Labels)
					}
					if tt.wantSkipped > 0 && !slices.Equal(s.Labels, []string{"L0"}) {
						t.Fatalf("signal %s kept with labels %q, not its first occurrence's", s.Value, s.Labels)
					}
				}
				if i == len(chunks)-1 {
					continue
				}
				switch tt.limit {
				case "labels":
					if len(st.Labels) != federation.MaxStatementLabels {
						t.Errorf("contribution %d carries %d labels, want the limit %d", i, len(st.Labels), federation.MaxStatementLabels)
					}
				case "envelope":
					if len(contrib.Envelope) < federation.MaxEnvelopeSize*3/4 {
						t.Errorf("contribution %d: envelope of %d bytes ended early (limit %d)", i, len(contrib.Envelope), federation.MaxEnvelopeSize)
					}
				case "payload":
					if len(contrib.Payload) < federation.MaxPayloadSize*99/100 {
						t.Errorf("contribution %d: payload of %d bytes ended early (limit %d)", i, len(contrib.Payload), federation.MaxPayloadSize)
					}
				}
			}
			if tt.limit != "" && len(chunks) < 2 {
				t.Errorf("the %s limit never ended a contribution (%d contributions)", tt.limit, len(chunks))
			}
		})
	}
	sr, _ := federation.NewSignalReader(strings.NewReader(""), federation.FormatCSV)
	for _, batch := range []int{-1, federation.MaxSignals + 1} {
		if _, err := client.NewSplitter(sr, client.SplitOptions{Op: federation.OpAdd, Batch: batch}); err == nil || !strings.Contains(err.Error(), "out of range") {
			t.Errorf("NewSplitter with batch %d: %v", batch, err)
		}
	}
}

// writeImportFile writes a CSV of the signals importMD5(from..from+n-1),
// each repeated once more every tenth row, and returns its path.
func writeImportFile(t *testing.T, dir, name string, from, n int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("type,value,labels\n")
	for i := from; i < from+n; i++ {
		fmt.Fprintf(&b, "md5,%s,A%d\n", importMD5(i), i%3)
		if i%10 == 0 {
			fmt.Fprintf(&b, "md5,%s,dup\n", strings.ToUpper(importMD5(i)))
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// ledgerView is what a reader of ngo/csam finds on the ledger.
type ledgerView struct {
	count map[string]int // signal value: how many contributions carry it
	seqs  []uint64       // ngo's contributions to ngo/csam, in ledger order
}

// readLedger catches up with the whole ledger as techco, a reader of
// ngo/csam, with every entry verified.
func readLedger(t *testing.T, f *localfed.Federation) ledgerView {
	t.Helper()
	c, err := f.Client("techco", "techco-1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A catch-up reads up to the latest cosigned checkpoint: wait until one
	// covers everything committed (on a loaded machine the first one may
	// not be out yet).
	var size int64
	for _, n := range f.Nodes {
		size = max(size, n.State().Size())
	}
	if err := f.WaitCheckpoint(testCtx(t), size); err != nil {
		t.Fatal(err)
	}
	v := ledgerView{count: map[string]int{}}
	err = c.CatchUp(testCtx(t), 0, []string{"ngo/csam"}, func(u *client.Update) error {
		if u.Statement == nil || u.Statement.Org != "ngo" || u.Statement.Set != "ngo/csam" {
			return nil
		}
		v.seqs = append(v.seqs, u.Statement.Sequence)
		for _, s := range u.Signals {
			v.count[s.Value]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkExactlyOnce checks that the ledger holds each of importMD5(from..to-1)
// exactly once and that ngo's sequence numbers run 1, 2, ... without a gap.
func (v ledgerView) checkExactlyOnce(t *testing.T, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if n := v.count[importMD5(i)]; n != 1 {
			t.Errorf("signal %d is on the ledger %d times, want once", i, n)
		}
	}
	for i, s := range v.seqs {
		if s != uint64(i+1) {
			t.Fatalf("ngo's contributions to ngo/csam carry sequences %v: not 1, 2, ... without a gap", v.seqs)
		}
	}
}

func readJournal(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	return j
}

// TestImportFile imports a file of 2,500 distinct signals (and 250 exact
// duplicates) in contributions of 1,000 through a real federation, reruns
// it, and resumes it after a simulated crash between a commit and the
// journal's update.
func TestImportFile(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	c, signer := ngoPublisher(t, f, "ngo-2")
	dir := t.TempDir()
	path := writeImportFile(t, dir, "list.csv", 0, 2500)
	journal := client.DefaultJournalPath(path, federation.OpAdd)

	var reports []client.ImportProgress
	opts := client.ImportOptions{Set: "ngo/csam", Batch: 1000, Progress: func(p client.ImportProgress) { reports = append(reports, p) }}
	res, err := c.ImportFile(ctx, signer, path, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Signals != 2500 || res.Skipped != 250 || res.Contributions != 3 || res.Committed != 3 || res.Resumed != 0 ||
		res.StartSequence != 1 || res.FirstIndex != 1 || res.LastIndex != 3 || res.Last.Statement.Sequence != 3 || res.Journal != journal {
		t.Fatalf("first import: %+v", res)
	}
	var counts []int64
	for _, p := range reports {
		if p.Total != 2500 || p.TotalContributions != 3 || p.Skipped != 250 {
			t.Fatalf("progress report %+v", p)
		}
		counts = append(counts, p.Signals)
	}
	if !slices.Equal(counts, []int64{0, 1000, 2000, 2500}) {
		t.Errorf("progress reported %v signals, want 0, 1000, 2000, 2500", counts)
	}
	if _, err := os.Stat(journal + ".lock"); !os.IsNotExist(err) {
		t.Errorf("the lock file is left after the import (stat: %v)", err)
	}
	readLedger(t, f).checkExactlyOnce(t, 0, 2500)

	// A rerun sends nothing.
	res, err = c.ImportFile(ctx, signer, path, client.ImportOptions{Set: "ngo/csam", Batch: 1000})
	if err != nil || !res.AlreadyDone || res.Committed != 0 || res.Resumed != 3 {
		t.Fatalf("rerun of a finished import: %+v, %v", res, err)
	}
	// So does one after a crash between the last commit and the journal's
	// update: the journal says 1 of 3, the ledger holds all three.
	j := readJournal(t, journal)
	j["committed"], j["last_index"] = 1, 1
	b, _ := json.Marshal(j)
	os.WriteFile(journal, b, 0o644)
	res, err = c.ImportFile(ctx, signer, path, client.ImportOptions{Set: "ngo/csam", Batch: 1000})
	if err != nil || !res.AlreadyDone || res.Committed != 0 || res.FirstIndex != 1 || res.LastIndex != 3 {
		t.Fatalf("rerun after a crash before the journal's update: %+v, %v", res, err)
	}
	if j := readJournal(t, journal); j["committed"] != 3.0 || j["last_index"] != 3.0 {
		t.Errorf("the journal was not brought up to date: %v", j)
	}
	readLedger(t, f).checkExactlyOnce(t, 0, 2500)

	// Other options, or another file under the same journal, are refused.
	for _, tc := range []struct {
		file string
		opts client.ImportOptions
		want string
	}{
		{path, client.ImportOptions{Set: "ngo/csam", Batch: 500}, "its batch is 1000, this import's is 500"},
		{path, client.ImportOptions{Set: "ngo/csam", Batch: 1000, Op: federation.OpRelabel, Journal: journal}, "its op is add, this import's is relabel"},
		{writeImportFile(t, dir, "other.csv", 5000, 10), client.ImportOptions{Set: "ngo/csam", Journal: journal}, "its file SHA-256 is"},
	} {
		if _, err := c.ImportFile(ctx, signer, tc.file, tc.opts); !errors.Is(err, client.ErrJournalMismatch) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "move the journal away") {
			t.Errorf("import with a mismatched journal: %v, want ErrJournalMismatch saying %q", err, tc.want)
		}
	}
	// Nothing is sent for a file with a bad line, wherever it is.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("type,value\nmd5,"+importMD5(9000)+"\nmd5,"+importMD5(9001)+"\nmd5,nothex\n"), 0o644)
	if _, err := c.ImportFile(ctx, signer, bad, client.ImportOptions{Set: "ngo/csam", Batch: 1}); err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("import of a file with a bad line 4: %v", err)
	}
	if _, err := os.Stat(client.DefaultJournalPath(bad, federation.OpAdd)); !os.IsNotExist(err) {
		t.Errorf("a journal was written for a file that was refused (stat: %v)", err)
	}

	// A stream has no journal; it goes on with the next sequence numbers.
	var in strings.Builder
	in.WriteString("type,value\n")
	for i := 3000; i < 3005; i++ {
		fmt.Fprintf(&in, "md5,%s\n", importMD5(i))
	}
	res, err = c.ImportStream(ctx, signer, strings.NewReader(in.String()), client.ImportOptions{Set: "ngo/csam", Batch: 2})
	if err != nil || res.Signals != 5 || res.Contributions != 3 || res.Committed != 3 || res.StartSequence != 4 || res.Journal != "" {
		t.Fatalf("stream import: %+v, %v", res, err)
	}
	v := readLedger(t, f)
	v.checkExactlyOnce(t, 3000, 3005)
	if len(v.seqs) != 6 {
		t.Errorf("ngo's contributions: %v, want 6", v.seqs)
	}

	// A contribution the node refuses for its content (a signal the set
	// already holds) stops the import with what to do, not as a clash of
	// sequence numbers; the contributions before it stay committed.
	again := filepath.Join(dir, "again.csv")
	os.WriteFile(again, fmt.Appendf(nil, "type,value\nmd5,%s\nmd5,%s\nmd5,%s\n", importMD5(4000), importMD5(4001), importMD5(7)), 0o644)
	res, err = c.ImportFile(ctx, signer, again, client.ImportOptions{Set: "ngo/csam", Batch: 2})
	if status.Code(err) != codes.AlreadyExists || errors.Is(err, client.ErrInconsistent) || res.Committed != 1 ||
		!strings.Contains(err.Error(), "contribution 2 (sequence 8, 1 signals) was refused") || !strings.Contains(err.Error(), "1 of 2 contributions committed") {
		t.Fatalf("import of a file holding a signal the set has: %+v, %v", res, err)
	}
	readLedger(t, f).checkExactlyOnce(t, 4000, 4002)
}

// TestImportResume interrupts an import after its first contribution,
// resumes it, and then shows that a contribution something else slipped
// into the import's sequence numbers stops a resume.
func TestImportResume(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	c, signer := ngoPublisher(t, f, "ngo-1")
	dir := t.TempDir()
	path := writeImportFile(t, dir, "list.csv", 0, 300)
	journal := filepath.Join(dir, "state", "import.json")
	os.Mkdir(filepath.Dir(journal), 0o755)

	// Ctrl-C while the first contribution is being sent (Now is called as
	// it is built): it finishes, and nothing more is sent.
	interruptFirst := func() (context.Context, func() time.Time) {
		stop, cancel := context.WithCancel(ctx)
		return stop, func() time.Time {
			cancel()
			return time.Now()
		}
	}
	stop, now := interruptFirst()
	opts := client.ImportOptions{Set: "ngo/csam", Batch: 100, Journal: journal, Now: now}
	res, err := c.ImportFile(stop, signer, path, opts)
	if !errors.Is(err, client.ErrInterrupted) || res.Committed != 1 {
		t.Fatalf("interrupted import: %+v, %v", res, err)
	}
	if j := readJournal(t, journal); j["committed"] != 1.0 || j["start_sequence"] != 1.0 || j["contributions"] != 3.0 {
		t.Fatalf("journal after the interruption: %v", j)
	}
	// A second process cannot run the same import at once...
	lock := journal + ".lock"
	os.WriteFile(lock, fmt.Appendf(nil, "%d %s\n", os.Getpid(), hostname(t)), 0o644)
	opts.Now = nil
	if _, err := c.ImportFile(ctx, signer, path, opts); !errors.Is(err, client.ErrImportRunning) || !strings.Contains(err.Error(), fmt.Sprintf("process %d", os.Getpid())) {
		t.Fatalf("import while another holds the lock: %v", err)
	}
	// ...but the lock of a process that died is taken over.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(lock, fmt.Appendf(nil, "%d %s\n", dead.Process.Pid, hostname(t)), 0o644)
	res, err = c.ImportFile(ctx, signer, path, opts)
	if err != nil || res.Resumed != 1 || res.Committed != 2 || res.FirstIndex != 1 || res.LastIndex != 3 {
		t.Fatalf("resumed import: %+v, %v", res, err)
	}
	readLedger(t, f).checkExactlyOnce(t, 0, 300)

	// Another import is interrupted after one contribution; then the same
	// org publishes something else, which takes the import's next sequence
	// number. The resume finds a contribution that is not the file's.
	other := writeImportFile(t, dir, "other.csv", 1000, 300)
	stop, now = interruptFirst()
	opts.Journal, opts.Now = "", now
	if res, err := c.ImportFile(stop, signer, other, opts); !errors.Is(err, client.ErrInterrupted) || res.Committed != 1 {
		t.Fatalf("interrupted import: %+v, %v", res, err)
	}
	if _, err := c.Publish(ctx, signer, "ngo/csam", []*hashfedv1.Signal{{Type: federation.MD5.Proto(), Value: importMD5(7777)}}, ""); err != nil {
		t.Fatal(err)
	}
	opts.Now = nil
	if _, err := c.ImportFile(ctx, signer, other, opts); !errors.Is(err, client.ErrInconsistent) || !strings.Contains(err.Error(), "is not contribution 2 of this file") {
		t.Fatalf("resume after another contribution took the import's sequence number: %v", err)
	}
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestPublishChangeSequences: PublishChange with an explicit sequence
// number is refused as a replay or a gap; NextSequence follows commits.
func TestPublishChangeSequences(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	c, signer := ngoPublisher(t, f, "ngo-1")
	add := func(i int) federation.Change {
		return federation.Change{Op: federation.OpAdd, Signals: []*hashfedv1.Signal{{Type: federation.MD5.Proto(), Value: importMD5(i)}}}
	}
	if seq, err := c.NextSequence(ctx, "ngo/csam"); err != nil || seq != 1 {
		t.Fatalf("NextSequence before any contribution = %d, %v", seq, err)
	}
	r, err := c.PublishChange(ctx, signer, "ngo/csam", 0, add(1), "")
	if err != nil || r.Statement.Sequence != 1 {
		t.Fatalf("PublishChange with sequence 0: %+v, %v", r, err)
	}
	if _, err := c.PublishChange(ctx, signer, "ngo/csam", 1, add(2), ""); status.Code(err) != codes.AlreadyExists {
		t.Errorf("PublishChange replaying sequence 1: %v, want AlreadyExists", err)
	}
	if _, err := c.PublishChange(ctx, signer, "ngo/csam", 3, add(2), ""); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("PublishChange skipping to 3: %v, want FailedPrecondition", err)
	}
	if seq, err := c.NextSequence(ctx, "ngo/csam"); err != nil || seq != 2 {
		t.Errorf("NextSequence after one contribution = %d, %v", seq, err)
	}
	if _, err := c.NextSequence(ctx, "ngo/nope"); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), "ngo/nope") {
		t.Errorf("NextSequence of a set that does not exist: %v", err)
	}
}
