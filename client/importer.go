package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// DefaultBatch is how many signals an import puts in one contribution
// unless told otherwise.
const DefaultBatch = 1000

// A SplitOptions says how a [Splitter] cuts signals into contributions. The
// statement fields are needed to bound the signed statement's size; the
// same options always give the same contributions.
type SplitOptions struct {
	// Federation, Org and Set are the statement's.
	Federation, Org, Set string
	// Op is the change, one of [federation.Ops]. For a retraction or
	// feedback the signals' labels are dropped: those name signals by type
	// and value only.
	Op string
	// Reason and Verdict are the change's (see [federation.Change]).
	Reason, Verdict string
	// Batch is the most signals in one contribution: 1 to
	// [federation.MaxSignals]; 0 means [DefaultBatch].
	Batch int
}

// A Splitter reads signals from a [federation.SignalReader], skips exact
// duplicates (same type and value as a signal read before; the first one
// wins, labels included) and cuts the rest, in file order, into
// contributions of at most Batch signals that also respect
// [federation.MaxPayloadSize], [federation.MaxEnvelopeSize] and
// [federation.MaxStatementLabels]: a contribution ends early when the next
// signal would break a limit.
//
// The cut depends only on the signals read and the [SplitOptions], never on
// sequence numbers, timestamps or keys, so reading the same file again with
// the same options gives the same contributions: that is what lets an
// interrupted import resume.
//
// To find duplicates it keeps a 16-byte digest (the first half of the
// SHA-256 of type and value) of every distinct signal in a Go map: about 40
// bytes per signal including the map's overhead, so some 400 MB for a file
// of 10 million distinct signals (measured with Go 1.26: 10^6 digests take 37 MB). Two
// different signals share a digest with probability below 10^-24 for such a
// file.
type Splitter struct {
	src  *federation.SignalReader
	opts SplitOptions

	seen    map[[16]byte]struct{}
	skipped int64
	signals int64
	carry   *hashfedv1.Signal

	payloadBudget int // payload bytes for the signals
	labelBudget   int // statement bytes for the label list
}

// envelopeReserve is what a statement's DSSE envelope holds besides the
// base64 of the statement: the payload type, a key ID and a signature
// (ECDSA P-256 at most 72 bytes, Ed25519 64), JSON punctuation.
const envelopeReserve = 1024

// NewSplitter returns a splitter of the signals src reads.
func NewSplitter(src *federation.SignalReader, opts SplitOptions) (*Splitter, error) {
	if opts.Batch == 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Batch < 1 || opts.Batch > federation.MaxSignals {
		return nil, fmt.Errorf("a batch of %d signals is out of range: a contribution holds 1 to %d signals", opts.Batch, federation.MaxSignals)
	}
	// The largest statement without labels this change can produce: the
	// longest sequence number, count, types list, digest and timestamp.
	worst := federation.Statement{
		Federation: opts.Federation, Org: opts.Org, Set: opts.Set,
		Sequence: math.MaxUint64, Op: opts.Op, Verdict: opts.Verdict,
		Count: federation.MaxSignals, PayloadSHA256: strings.Repeat("0", 64),
		IssuedAt: strings.Repeat("0", 64),
	}
	for _, t := range federation.SignalTypes {
		worst.Types = append(worst.Types, string(t))
	}
	b, err := json.Marshal(worst)
	if err != nil {
		return nil, err
	}
	maxStatement := (federation.MaxEnvelopeSize - envelopeReserve) / 4 * 3
	s := &Splitter{
		src:           src,
		opts:          opts,
		seen:          map[[16]byte]struct{}{},
		payloadBudget: federation.MaxPayloadSize - proto.Size(&hashfedv1.Payload{Reason: opts.Reason}) - 64,
		labelBudget:   maxStatement - len(b) - len(`,"labels":[]`),
	}
	if s.labelBudget < 1024 {
		return nil, fmt.Errorf("the federation, org and set names are too long to leave room for labels in a statement of at most %d bytes", federation.MaxEnvelopeSize)
	}
	return s, nil
}

// stripsLabels reports whether op names signals without their labels.
func stripsLabels(op string) bool { return op == federation.OpRetract || op == federation.OpFeedback }

// signalKey is the de-duplication digest of a signal.
func signalKey(s *hashfedv1.Signal) [16]byte {
	h := sha256.New()
	h.Write([]byte{byte(s.Type)})
	h.Write([]byte(s.Value))
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

// read returns the next signal not seen before.
func (s *Splitter) read() (*hashfedv1.Signal, error) {
	for {
		sig, _, err := s.src.Next()
		if err != nil {
			return nil, err
		}
		k := signalKey(sig)
		if _, dup := s.seen[k]; dup {
			s.skipped++
			continue
		}
		s.seen[k] = struct{}{}
		if stripsLabels(s.opts.Op) {
			sig.Labels = nil
		}
		return sig, nil
	}
}

// Next returns the next contribution's signals, or io.EOF after the last.
// An error reading the file is returned as is (it names the line).
func (s *Splitter) Next() ([]*hashfedv1.Signal, error) {
	var (
		chunk   []*hashfedv1.Signal
		payload int
		labels  = map[string]bool{}
		lbytes  int
	)
	for len(chunk) < s.opts.Batch {
		sig := s.carry
		s.carry = nil
		if sig == nil {
			var err error
			if sig, err = s.read(); err == io.EOF {
				break
			} else if err != nil {
				return nil, err
			}
		}
		size := proto.Size(sig)
		cost := 1 + protowire.SizeVarint(uint64(size)) + size
		var newLabels []string
		newBytes := 0
		for _, l := range sig.Labels {
			if !labels[l] && !slices.Contains(newLabels, l) {
				newLabels = append(newLabels, l)
				b, _ := json.Marshal(l)
				newBytes += len(b) + 1
			}
		}
		if payload+cost > s.payloadBudget || len(labels)+len(newLabels) > federation.MaxStatementLabels || lbytes+newBytes > s.labelBudget {
			if len(chunk) == 0 {
				return nil, fmt.Errorf("signal %s does not fit in a contribution on its own", sig.Value)
			}
			s.carry = sig
			break
		}
		chunk = append(chunk, sig)
		payload += cost
		lbytes += newBytes
		for _, l := range newLabels {
			labels[l] = true
		}
	}
	if len(chunk) == 0 {
		return nil, io.EOF
	}
	s.signals += int64(len(chunk))
	return chunk, nil
}

// Skipped returns how many exact duplicates were skipped so far.
func (s *Splitter) Skipped() int64 { return s.skipped }

// Signals returns how many signals the contributions returned so far hold.
func (s *Splitter) Signals() int64 { return s.signals }

// ImportOptions configures [Client.ImportFile] and [Client.ImportStream].
type ImportOptions struct {
	// Set is the hash set to change.
	Set string
	// Op is the change every contribution makes: one of [federation.Ops];
	// empty means [federation.OpAdd].
	Op string
	// Reason is required for a retraction, an optional note otherwise.
	Reason string
	// Verdict is required for feedback (one of [federation.Verdicts]).
	Verdict string
	// Format is [federation.FormatCSV] or [federation.FormatJSONL]; empty
	// means [federation.FormatOf] the file name (CSV for a stream).
	Format string
	// Batch is the most signals in one contribution; 0 means [DefaultBatch].
	Batch int
	// Journal is the resume journal of ImportFile; empty means
	// [DefaultJournalPath] of the file.
	Journal string
	// Progress, if set, is called once before the first contribution is
	// sent and after every contribution committed, from the importing
	// goroutine.
	Progress func(ImportProgress)
	// Now gives each statement's issued-at time; nil means time.Now.
	Now func() time.Time
	// Timeout bounds each contribution's round trip; 0 means 60 s.
	Timeout time.Duration
}

// An ImportProgress reports how far an import is.
type ImportProgress struct {
	// Signals counts the signals committed, including by earlier runs of a
	// resumed import, out of Total (-1 while unknown: a stream).
	Signals, Total int64
	// Contributions counts the contributions committed, including by
	// earlier runs, out of TotalContributions (-1 while unknown).
	Contributions, TotalContributions int
	// Resumed is the part of Signals committed by earlier runs.
	Resumed int64
	// Skipped counts the exact duplicates skipped (for a file: all of them).
	Skipped int64
	// Last is the contribution just committed; nil in the first report.
	Last *PublishResult
}

// An ImportResult says what an import did.
type ImportResult struct {
	// Signals is the number of distinct signals in the input, Skipped the
	// exact duplicates left out.
	Signals, Skipped int64
	// Contributions is how many contributions the input splits into.
	Contributions int
	// Resumed counts the contributions earlier runs committed; Committed
	// those this run committed, holding SignalsSent signals.
	Resumed, Committed int
	SignalsSent        int64
	// AlreadyDone says an earlier run had committed everything (this run
	// sent nothing).
	AlreadyDone bool
	// StartSequence is the first contribution's sequence number.
	StartSequence uint64
	// FirstIndex and LastIndex are the ledger entries of the import's first
	// and last committed contributions; -1 when unknown or none.
	FirstIndex, LastIndex int64
	// Last is this run's last committed contribution, or nil.
	Last *PublishResult
	// Journal is the journal's path; empty for a stream.
	Journal string
	// Elapsed is how long this run took.
	Elapsed time.Duration
}

// Errors an import returns, wrapped with the details.
var (
	// ErrInterrupted: the context ended between two contributions. The
	// journal is saved; running the import again resumes it.
	ErrInterrupted = errors.New("import interrupted")
	// ErrJournalMismatch: the journal records an import of another file or
	// with other options.
	ErrJournalMismatch = errors.New("the import journal does not match")
	// ErrImportRunning: another process holds the journal's lock.
	ErrImportRunning = errors.New("another import is running with this journal")
	// ErrInconsistent: the node's sequence numbers for the set do not fit
	// the journal, which happens when something else published to the same
	// (org, set) during the import.
	ErrInconsistent = errors.New("the ledger does not match the import journal")
)

// DefaultJournalPath returns where an import of file with op keeps its
// journal: next to the file, "<file>.hashfed-import.json" for an add and
// "<file>.hashfed-<op>.json" for the other ops, so that retracting the
// signals of a file once imported starts a journal of its own.
func DefaultJournalPath(file, op string) string {
	if op == "" || op == federation.OpAdd {
		return file + ".hashfed-import.json"
	}
	return file + ".hashfed-" + op + ".json"
}

// journalVersion is the journal format's version. A future incompatible
// format would use another number; an import never resumes from a journal
// of another version.
const journalVersion = 1

// An importJournal is the JSON resume file of an import. It is written,
// atomically, before the first contribution is sent and after every
// contribution commits. The node's next sequence number, not Committed, is
// the truth about what is committed: a crash between a commit and the
// journal's update leaves Committed one short, and the resume finds that
// contribution on the ledger.
type importJournal struct {
	Version    int    `json:"version"`
	File       string `json:"file"` // informative: the import may resume from a moved file
	FileSHA256 string `json:"file_sha256"`
	FileSize   int64  `json:"file_size"`
	Format     string `json:"format"`
	Federation string `json:"federation"`
	Org        string `json:"org"`
	Set        string `json:"set"`
	Op         string `json:"op"`
	Reason     string `json:"reason,omitempty"`
	Verdict    string `json:"verdict,omitempty"`
	Batch      int    `json:"batch"`

	Signals       int64 `json:"signals"`
	Skipped       int64 `json:"skipped_duplicates"`
	Contributions int   `json:"contributions"`
	// StartSequence is the first contribution's sequence number, and
	// LedgerSize the ledger's size just before it was sent.
	StartSequence uint64 `json:"start_sequence"`
	LedgerSize    int64  `json:"ledger_size_at_start"`

	Committed  int    `json:"committed"`
	FirstIndex int64  `json:"first_index"`
	LastIndex  int64  `json:"last_index"`
	UpdatedAt  string `json:"updated_at"`
}

// mismatch names the first field in which j and want differ, or "".
func (j *importJournal) mismatch(want *importJournal) string {
	type field struct {
		name      string
		got, want any
	}
	for _, f := range []field{
		{"version", j.Version, want.Version},
		{"file SHA-256", j.FileSHA256, want.FileSHA256},
		{"file size", j.FileSize, want.FileSize},
		{"format", j.Format, want.Format},
		{"federation", j.Federation, want.Federation},
		{"org", j.Org, want.Org},
		{"set", j.Set, want.Set},
		{"op", j.Op, want.Op},
		{"reason", j.Reason, want.Reason},
		{"verdict", j.Verdict, want.Verdict},
		{"batch", j.Batch, want.Batch},
	} {
		if f.got != f.want {
			return fmt.Sprintf("its %s is %v, this import's is %v", f.name, f.got, f.want)
		}
	}
	return ""
}

func loadJournal(path string) (*importJournal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var j importJournal
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("%w: %s is not a hashfed import journal (%w); move it away, or pass another journal path", ErrJournalMismatch, path, err)
	}
	// The resume counts from Committed in unsigned sequence arithmetic.
	if j.Committed < 0 || j.Committed > j.Contributions {
		return nil, fmt.Errorf("%w: %s records %d of %d contributions committed, which no import writes; move it away, or pass another journal path", ErrJournalMismatch, path, j.Committed, j.Contributions)
	}
	return &j, nil
}

// save replaces the journal file atomically and durably: a temporary file
// in the same directory, fsync, rename, fsync of the directory.
func (j *importJournal) save(path string) error {
	j.UpdatedAt = time.Now().UTC().Format(time.RFC3339)
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("writing the import journal %s: %w", path, err)
	}
	return nil
}

// lockJournal takes the journal's lock file, "<journal>.lock", created
// exclusively and holding "pid host". A lock left by a process of this
// host that no longer runs (a kill -9) is taken over. It returns the
// function that releases the lock.
func lockJournal(journal string) (func(), error) {
	path := journal + ".lock"
	host, _ := os.Hostname()
	for attempt := 0; ; attempt++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, werr := fmt.Fprintf(f, "%d %s\n", os.Getpid(), host)
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			if werr != nil {
				os.Remove(path)
				return nil, fmt.Errorf("writing the lock file %s: %w", path, werr)
			}
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("creating the lock file %s: %w", path, err)
		}
		b, _ := os.ReadFile(path)
		fields := strings.Fields(string(b))
		var pid int
		var owner string
		if len(fields) == 2 {
			pid, _ = strconv.Atoi(fields[0])
			owner = fields[1]
		}
		if attempt == 0 && pid > 0 && owner == host && !processAlive(pid) {
			// Its owner died without releasing it.
			os.Remove(path)
			continue
		}
		who := fmt.Sprintf("process %d on %s", pid, owner)
		if pid == 0 {
			who = "a process"
		}
		return nil, fmt.Errorf("%w: %s holds %s. Wait for that import to finish; if no import is running, delete %s and run again", ErrImportRunning, who, path, path)
	}
}

// processAlive reports whether a process with this pid exists.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// countingHash hashes and counts what is read through it.
type countingHash struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (c *countingHash) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

func (c *countingHash) sum() string { return hex.EncodeToString(c.h.Sum(nil)) }

// payloadDigest is the hex SHA-256 of the payload a contribution of
// signals carries, as [federation.BuildChange] serializes it.
func payloadDigest(signals []*hashfedv1.Signal, reason string) (string, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&hashfedv1.Payload{Signals: signals, Reason: reason})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// checkOptions fills in defaults and checks the change the options
// describe, before anything is read.
func (c *Client) checkOptions(signer *federation.Signer, opts *ImportOptions, name string) (SplitOptions, error) {
	if opts.Op == "" {
		opts.Op = federation.OpAdd
	}
	if opts.Format == "" {
		opts.Format = federation.FormatOf(name)
	}
	if opts.Batch == 0 {
		opts.Batch = DefaultBatch
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Set == "" {
		return SplitOptions{}, errors.New("no set given: name the hash set to change")
	}
	// A stand-in signal checks the op, reason and verdict now rather than at
	// the first contribution.
	stand := &hashfedv1.Signal{Type: federation.MD5.Proto(), Value: strings.Repeat("0", 32)}
	if _, _, err := federation.CheckChange(opts.Op, opts.Verdict, &hashfedv1.Payload{Signals: []*hashfedv1.Signal{stand}, Reason: opts.Reason}); err != nil {
		return SplitOptions{}, err
	}
	return SplitOptions{
		Federation: c.genesis.Federation, Org: signer.Org, Set: opts.Set,
		Op: opts.Op, Reason: opts.Reason, Verdict: opts.Verdict, Batch: opts.Batch,
	}, nil
}

// importer publishes the contributions of one import, in order.
type importer struct {
	c      *Client
	signer *federation.Signer
	opts   ImportOptions
	res    *ImportResult
	total  int64 // -1: unknown
	chunks int   // -1: unknown
	// resumed counts the signals earlier runs committed.
	resumed int64
	// skipped is the file's count of duplicates, known before the first
	// contribution; a stream counts as it goes.
	skipped int64
	// onCommit records a commit (the journal's update); may be nil.
	onCommit func(i int, r *PublishResult) error
}

func (im *importer) progress(done int, signals int64, skipped int64, last *PublishResult) {
	if im.opts.Progress == nil {
		return
	}
	im.opts.Progress(ImportProgress{
		Signals: signals, Total: im.total,
		Contributions: done, TotalContributions: im.chunks,
		Resumed: im.resumed, Skipped: max(skipped, im.skipped), Last: last,
	})
}

// publish sends chunks from sp, the first as contribution index first
// (sequence StartSequence+first), until sp ends or ctx does.
func (im *importer) publish(ctx context.Context, sp *Splitter, first int, signalsBefore int64) error {
	done, signals := first, signalsBefore
	im.resumed = signalsBefore
	im.progress(done, signals, sp.Skipped(), nil)
	for {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s committed (%d signals)", ErrInterrupted, progressOf(done, im.chunks), signals)
		}
		chunk, err := sp.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w (%s committed before it)", err, progressOf(done, im.chunks))
		}
		seq := im.res.StartSequence + uint64(done)
		// The contribution in flight is finished even if ctx ends: stopping
		// mid-call would leave the user not knowing whether it committed.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), im.opts.Timeout)
		ch := federation.Change{Op: im.opts.Op, Signals: chunk, Reason: im.opts.Reason, Verdict: im.opts.Verdict}
		r, err := im.c.PublishChange(rctx, im.signer, im.opts.Set, seq, ch, im.opts.Now().UTC().Format(time.RFC3339))
		cancel()
		if err != nil {
			what := fmt.Sprintf("contribution %d (sequence %d, %d signals)", done+1, seq, len(chunk))
			return im.publishError(ctx, what, seq, done, err)
		}
		done++
		signals += int64(len(chunk))
		im.res.Committed++
		im.res.SignalsSent += int64(len(chunk))
		im.res.Last = r
		if im.res.FirstIndex < 0 {
			im.res.FirstIndex = r.Index
		}
		im.res.LastIndex = r.Index
		if im.onCommit != nil {
			if err := im.onCommit(done, r); err != nil {
				return err
			}
		}
		im.progress(done, signals, sp.Skipped(), r)
	}
}

// publishError explains why contribution seq (done committed before it)
// failed and what to do about it.
func (im *importer) publishError(ctx context.Context, what string, seq uint64, done int, err error) error {
	committed := progressOf(done, im.chunks) + " committed"
	if im.res.Journal != "" {
		committed += " (journal " + im.res.Journal + ")"
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Aborted, codes.ResourceExhausted, codes.Internal, codes.Unknown, codes.Canceled:
		if im.res.Journal == "" {
			return fmt.Errorf("%s: %w\n%s; a stream cannot resume: check the ledger (hashfed subscribe) to see whether this one committed, then publish the rest from a file", what, err, committed)
		}
		return fmt.Errorf("%s: %w\n%s; run the same command again to resume (whether this one committed is checked then)", what, err, committed)
	case codes.AlreadyExists, codes.FailedPrecondition:
		// Either the sequence number was taken by something else, or (add)
		// a signal is already in the set: the node's next number tells.
		nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), im.opts.Timeout)
		next, nerr := im.c.NextSequence(nctx, im.opts.Set)
		cancel()
		if nerr == nil && next != seq {
			return fmt.Errorf("%w: %s: %w\nSomething else published to %s as org %s during this import (its next sequence number is now %d); check the ledger (hashfed subscribe) before publishing again", ErrInconsistent, what, err, im.opts.Set, im.signer.Org, next)
		}
	}
	return fmt.Errorf("%s was refused: %w\n%s; nothing after them was sent. Running the same command again would send the same contribution and be refused again: fix what the node says (for example, drop signals the set already holds, or relabel them), then publish the signals not yet committed from a new file", what, err, committed)
}

func progressOf(done, total int) string {
	if total < 0 {
		return fmt.Sprintf("%d contributions", done)
	}
	return fmt.Sprintf("%d of %d contributions", done, total)
}

// ImportStream publishes the signals r holds as one or more contributions
// of opts.Op to opts.Set, one after another. A stream cannot be read twice,
// so there is no journal and no resume, and the file is checked as it is
// read: a bad line stops the import with the contributions before it
// committed. Use [Client.ImportFile] for files.
func (c *Client) ImportStream(ctx context.Context, signer *federation.Signer, r io.Reader, opts ImportOptions) (*ImportResult, error) {
	t0 := time.Now()
	so, err := c.checkOptions(signer, &opts, "")
	if err != nil {
		return nil, err
	}
	sr, err := federation.NewSignalReader(r, opts.Format)
	if err != nil {
		return nil, err
	}
	sp, err := NewSplitter(sr, so)
	if err != nil {
		return nil, err
	}
	res := &ImportResult{FirstIndex: -1, LastIndex: -1}
	if res.StartSequence, err = c.NextSequence(ctx, opts.Set); err != nil {
		return nil, err
	}
	im := &importer{c: c, signer: signer, opts: opts, res: res, total: -1, chunks: -1}
	err = im.publish(ctx, sp, 0, 0)
	res.Signals, res.Skipped, res.Contributions = sp.Signals(), sp.Skipped(), res.Committed
	res.Elapsed = time.Since(t0)
	if err == nil && res.Signals == 0 {
		err = errors.New("the input holds no signals")
	}
	return res, err
}

// ImportFile publishes the signals of the file at path as contributions of
// opts.Op to opts.Set, split by a [Splitter], one after another, and
// resumes where an earlier run of the same import stopped.
//
// It reads the file twice. The first pass checks every line, counts the
// signals and contributions and takes the file's SHA-256, so that nothing is
// sent if any line is bad. Then, before the first contribution is sent, it
// writes the journal (opts.Journal) with the file's digest, the options and
// the first sequence number; after each commit it updates it. A run that
// finds a journal for the same file and options asks the node for the next
// sequence number, derives how many contributions are committed, checks
// that the ones the journal did not record yet are this file's (by their
// payload digests on the ledger) and continues after them, so that nothing
// is committed twice even if the earlier run was killed between a commit
// and the journal's update. A journal for another file or other options is
// refused with [ErrJournalMismatch]; a second concurrent run with the same
// journal with [ErrImportRunning].
//
// Limitation: something else publishing to the same (org, set) during the
// import (another process with the same key) is detected, as
// [ErrInconsistent], only through the sequence numbers and payload digests
// it disturbs.
//
// When ctx ends, the contribution in flight is finished, the journal saved,
// and the error wraps [ErrInterrupted]; the result is returned with every
// error after the options were checked.
func (c *Client) ImportFile(ctx context.Context, signer *federation.Signer, path string, opts ImportOptions) (*ImportResult, error) {
	t0 := time.Now()
	so, err := c.checkOptions(signer, &opts, path)
	if err != nil {
		return nil, err
	}
	if opts.Journal == "" {
		opts.Journal = DefaultJournalPath(path, opts.Op)
	}
	res := &ImportResult{FirstIndex: -1, LastIndex: -1, Journal: opts.Journal}
	defer func() { res.Elapsed = time.Since(t0) }()
	unlock, err := lockJournal(opts.Journal)
	if err != nil {
		return res, err
	}
	defer unlock()

	// Pass 1: check every line, count, hash.
	want, err := scanFile(ctx, path, so, opts.Format)
	if err != nil {
		return res, err
	}
	res.Signals, res.Skipped, res.Contributions = want.Signals, want.Skipped, want.Contributions
	if abs, err := filepath.Abs(path); err == nil {
		want.File = abs
	}

	j, err := loadJournal(opts.Journal)
	switch {
	case errors.Is(err, os.ErrNotExist):
		j = nil
	case err != nil:
		return res, err
	}
	var ledgerSize int64
	if j != nil {
		if m := j.mismatch(want); m != "" {
			return res, fmt.Errorf("%w: %s records an import of another file or with other options (%s).\nRun with the same file and options to resume that import; to start a new one, move the journal away or pass --journal with another path", ErrJournalMismatch, opts.Journal, m)
		}
		if j.Contributions != want.Contributions || j.Signals != want.Signals {
			return res, fmt.Errorf("%w: %s says the file splits into %d contributions of %d signals, this hashfed splits it into %d of %d: finish the import with the hashfed version that started it", ErrJournalMismatch, opts.Journal, j.Contributions, j.Signals, want.Contributions, want.Signals)
		}
		res.StartSequence, res.FirstIndex, res.LastIndex = j.StartSequence, j.FirstIndex, j.LastIndex
		if j.Committed == j.Contributions {
			res.AlreadyDone, res.Resumed = true, j.Committed
			return res, nil
		}
	}
	next, err := c.NextSequence(ctx, opts.Set)
	if err != nil {
		return res, err
	}
	if j == nil {
		st, err := c.Status(ctx)
		if err != nil {
			return res, fmt.Errorf("asking the node for its ledger size: %w", err)
		}
		ledgerSize = st.GetLedgerSize()
		j = want
		j.Version, j.StartSequence, j.LedgerSize = journalVersion, next, ledgerSize
		j.FirstIndex, j.LastIndex = -1, -1
		if err := j.save(opts.Journal); err != nil {
			return res, err
		}
		res.StartSequence = next
	}
	if next < j.StartSequence || next-j.StartSequence > uint64(j.Contributions) || int(next-j.StartSequence) < j.Committed {
		return res, fmt.Errorf("%w: the node says org %s's next sequence number for %s is %d, but this import (journal %s) started at %d with %d contributions, %d of them recorded as committed.\nSomething else published to %s as %s meanwhile; check the ledger (hashfed subscribe) to see which of this file's signals are committed, then publish the rest from a new file",
			ErrInconsistent, signer.Org, opts.Set, next, opts.Journal, j.StartSequence, j.Contributions, j.Committed, opts.Set, signer.Org)
	}
	done := int(next - j.StartSequence)

	// Pass 2: split again, verify what earlier runs committed, send the rest.
	f, err := os.Open(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	ch := &countingHash{r: f, h: sha256.New()}
	sr, err := federation.NewSignalReader(ch, opts.Format)
	if err != nil {
		return res, err
	}
	sp, err := NewSplitter(sr, so)
	if err != nil {
		return res, err
	}
	var found map[uint64]foundContribution
	if done > j.Committed {
		// Contributions committed after the journal's last update: find
		// them on the ledger and check they are this file's.
		from := j.LedgerSize
		if j.LastIndex >= 0 {
			from = j.LastIndex + 1
		}
		if found, err = c.findContributions(ctx, signer.Org, opts.Set, j.StartSequence+uint64(j.Committed), next, from); err != nil {
			return res, err
		}
	}
	var signalsBefore int64
	for i := 0; i < done; i++ {
		chunk, err := sp.Next()
		if err != nil {
			return res, fmt.Errorf("re-reading %s: %w (did the file change?)", path, err)
		}
		signalsBefore += int64(len(chunk))
		if i < j.Committed {
			continue
		}
		seq := j.StartSequence + uint64(i)
		fc := found[seq]
		d, err := payloadDigest(chunk, opts.Reason)
		if err != nil {
			return res, err
		}
		if fc.digest != d {
			return res, fmt.Errorf("%w: contribution %d of org %s to %s (ledger entry %d) is not contribution %d of this file: its payload digest differs.\nSomething else published to %s as %s during this import; check the ledger (hashfed subscribe) before publishing again", ErrInconsistent, seq, signer.Org, opts.Set, fc.index, i+1, opts.Set, signer.Org)
		}
		if j.FirstIndex < 0 {
			j.FirstIndex = fc.index
		}
		j.LastIndex = fc.index
	}
	if done > j.Committed {
		j.Committed = done
		if err := j.save(opts.Journal); err != nil {
			return res, err
		}
	}
	res.Resumed, res.FirstIndex, res.LastIndex = done, j.FirstIndex, j.LastIndex
	if done == j.Contributions {
		res.AlreadyDone = true
		return res, nil
	}

	im := &importer{c: c, signer: signer, opts: opts, res: res, total: j.Signals, chunks: j.Contributions, skipped: j.Skipped}
	im.onCommit = func(committed int, r *PublishResult) error {
		j.Committed = committed
		if j.FirstIndex < 0 {
			j.FirstIndex = r.Index
		}
		j.LastIndex = r.Index
		return j.save(opts.Journal)
	}
	if err := im.publish(ctx, sp, done, signalsBefore); err != nil {
		res.FirstIndex = j.FirstIndex
		return res, err
	}
	res.FirstIndex = j.FirstIndex
	if ch.sum() != j.FileSHA256 || ch.n != j.FileSize {
		return res, fmt.Errorf("%s changed while it was being imported (its SHA-256 is now %s, it was %s when the import started): check what was committed (hashfed subscribe) before publishing again", path, ch.sum(), j.FileSHA256)
	}
	return res, nil
}

// scanFile is an import's first pass: it reads the whole file, checking
// every line, and returns the journal fields that describe the file and
// its split.
func scanFile(ctx context.Context, path string, so SplitOptions, format string) (*importJournal, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ch := &countingHash{r: f, h: sha256.New()}
	sr, err := federation.NewSignalReader(ch, format)
	if err != nil {
		return nil, err
	}
	sp, err := NewSplitter(sr, so)
	if err != nil {
		return nil, err
	}
	chunks := 0
	for {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w while checking %s, before anything was sent", ErrInterrupted, path)
		}
		_, err := sp.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		chunks++
	}
	if chunks == 0 {
		return nil, fmt.Errorf("%s holds no signals", path)
	}
	return &importJournal{
		Version: journalVersion, File: path, FileSHA256: ch.sum(), FileSize: ch.n, Format: format,
		Federation: so.Federation, Org: so.Org, Set: so.Set, Op: so.Op, Reason: so.Reason, Verdict: so.Verdict,
		Batch: so.Batch, Signals: sp.Signals(), Skipped: sp.Skipped(), Contributions: chunks,
	}, nil
}

// A foundContribution is a contribution found on the ledger.
type foundContribution struct {
	index  int64
	digest string
}

// findContributions reads the ledger from entry from to its end and returns
// org's contributions to set with sequence numbers in [lo, hi), which must
// all be there.
func (c *Client) findContributions(ctx context.Context, org, set string, lo, hi uint64, from int64) (map[uint64]foundContribution, error) {
	st, err := c.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("asking the node for its ledger size: %w", err)
	}
	size := st.GetLedgerSize()
	found := map[uint64]foundContribution{}
	for start := from; start < size && uint64(len(found)) < hi-lo; {
		end := min(size, start+maxEntriesPerCall)
		r, err := c.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: start, End: end})
		if err != nil {
			return nil, fmt.Errorf("reading ledger entries [%d, %d) to find this import's last contributions: %w", start, end, Explain(err))
		}
		if len(r.GetEntries()) == 0 {
			break
		}
		for i, leaf := range r.GetEntries() {
			_, s, err := federation.DecodeEntry(leaf)
			if err != nil {
				return nil, fmt.Errorf("ledger entry %d: %w", start+int64(i), err)
			}
			if s != nil && s.Org == org && s.Set == set && s.Sequence >= lo && s.Sequence < hi {
				found[s.Sequence] = foundContribution{index: start + int64(i), digest: s.PayloadSHA256}
			}
		}
		start += int64(len(r.GetEntries()))
	}
	if uint64(len(found)) != hi-lo {
		return nil, fmt.Errorf("%w: the node says org %s's contributions %d to %d to %s are committed, but only %d of them are in ledger entries %d to %d: check the ledger (hashfed subscribe) before publishing again", ErrInconsistent, org, lo, hi-1, set, len(found), from, size-1)
	}
	return found, nil
}
