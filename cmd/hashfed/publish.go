package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
)

func runPublish(args []string) error {
	return runChange("publish", args)
}

func runFeedback(args []string) error {
	return runChange("feedback", args)
}

// runChange is `hashfed publish` (add, retract, relabel, feedback) and
// `hashfed feedback` (feedback only, with --verdict).
func runChange(cmd string, args []string) error {
	var fs *flag.FlagSet
	if cmd == "feedback" {
		fs = newFlags(cmd, "feedback --set OWNER/LIST --verdict true_positive|false_positive|disputed --signing-key FILE --file signals.csv [--reason NOTE] [import flags] [client flags]")
	} else {
		fs = newFlags(cmd, "publish --set ORG/LIST --signing-key FILE --file signals.csv [--retract --reason TEXT | --relabel | --feedback VERDICT] [import flags] [client flags]")
	}
	cf := addClientFlags(fs)
	set := fs.String("set", "", "the hash set to change: your org's own, or for feedback one your org reads (required)")
	keyPath := fs.String("signing-key", "", "your org's statement-signing private key (required)")
	file := fs.String("file", "", "CSV or JSON-lines file of signals; - for standard input (no total, no resume) (required)")
	format := fs.String("format", "", "csv or jsonl (default: from the file name)")
	receiptDir := fs.String("receipt-dir", ".", "where to write the inclusion receipt of the (last) contribution, <org>_<list>_<sequence>.tlog-proof; empty: none")
	batch := fs.Int("batch", client.DefaultBatch, fmt.Sprintf("most signals in one contribution (1 to %d); a contribution also ends early to stay within the size and label limits", federation.MaxSignals))
	journal := fs.String("journal", "", "resume journal (default: <file>.hashfed-import.json for an add, <file>.hashfed-<op>.json otherwise)")
	progress := fs.String("progress", "auto", "progress on standard error: bar, plain (a line every few seconds), none, or auto (bar on a terminal, plain otherwise)")
	reason := fs.String("reason", "", "why: required with --retract, an optional note otherwise")
	var retract, relabel *bool
	var verdict *string
	if cmd == "feedback" {
		verdict = fs.String("verdict", "", "your verdict on the signals: true_positive, false_positive or disputed (required)")
	} else {
		retract = fs.Bool("retract", false, "take the file's signals out of the set (needs --reason; labels in the file are ignored)")
		relabel = fs.Bool("relabel", false, "give the file's signals, already in the set, the labels the file gives them")
		verdict = fs.String("feedback", "", "record feedback with this verdict (true_positive, false_positive, disputed) on signals of a set your org reads")
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if *set == "" || *keyPath == "" || *file == "" {
		return exitError{2, "--set, --signing-key and --file are required"}
	}
	op := federation.OpAdd
	switch {
	case cmd == "feedback":
		if *verdict == "" {
			return exitError{2, "--verdict is required: true_positive, false_positive or disputed"}
		}
		op = federation.OpFeedback
	case btoi(*retract)+btoi(*relabel)+btoi(*verdict != "") > 1:
		return exitError{2, "--retract, --relabel and --feedback each name a different change: give at most one"}
	case *retract:
		if strings.TrimSpace(*reason) == "" {
			return exitError{2, "--retract needs --reason: say why the signals are taken out (e.g. --reason \"false positive, confirmed by review\")"}
		}
		op = federation.OpRetract
	case *relabel:
		op = federation.OpRelabel
	case *verdict != "":
		op = federation.OpFeedback
	}
	switch *progress {
	case "auto":
		*progress = "plain"
		if term.IsTerminal(int(os.Stderr.Fd())) {
			*progress = "bar"
		}
	case "bar", "plain", "none":
	default:
		return exitError{2, fmt.Sprintf("--progress %q: want auto, bar, plain or none", *progress)}
	}
	if *batch < 1 || *batch > federation.MaxSignals {
		return exitError{2, fmt.Sprintf("--batch %d: want 1 to %d", *batch, federation.MaxSignals)}
	}
	if *file == "-" && *journal != "" {
		return exitError{2, "--journal needs a file: standard input cannot be read again, so an import from it cannot resume"}
	}

	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	signer, err := federation.LoadSigner(c.Identity().Org, *keyPath)
	if err != nil {
		return err
	}

	// The first Ctrl-C (or SIGTERM) stops the import after the contribution
	// in flight; a second one kills the process the default way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()

	name := *file
	if name == "-" {
		name = "standard input"
	}
	pr := newProgressReporter(*progress, os.Stderr, name)
	opts := client.ImportOptions{
		Set: *set, Op: op, Reason: *reason, Verdict: *verdict, Format: *format,
		Batch: *batch, Journal: *journal, Progress: pr.update,
	}
	var res *client.ImportResult
	if *file == "-" {
		if *progress != "none" {
			fmt.Fprintln(os.Stderr, "reading standard input: no total or ETA, and no resume if interrupted (give a file for those)")
		}
		res, err = c.ImportStream(ctx, signer, os.Stdin, opts)
	} else {
		if *progress != "none" {
			fmt.Fprintf(os.Stderr, "checking every line of %s before sending anything\n", *file)
		}
		res, err = c.ImportFile(ctx, signer, *file, opts)
	}
	pr.finish()
	if errors.Is(err, client.ErrInterrupted) {
		if *file == "-" {
			return exitError{130, fmt.Sprintf("%v; standard input cannot resume: publish the rest from a file", err)}
		}
		if _, serr := os.Stat(res.Journal); serr != nil {
			return exitError{130, err.Error()}
		}
		return exitError{130, fmt.Sprintf("%v.\nThe journal %s is saved: run the same command again to resume.", err, res.Journal)}
	}
	if err != nil {
		if *file != "-" {
			if res != nil && res.Committed > 0 {
				fmt.Fprintf(os.Stderr, "this run committed %d contributions (%d signals) before the error; the journal %s records them\n", res.Committed, res.SignalsSent, res.Journal)
			}
		} else if res != nil && res.Committed > 0 {
			fmt.Fprintf(os.Stderr, "%d contributions (%d signals, sequences %d to %d) were committed before the error; standard input cannot resume: publish the rest from a file\n",
				res.Committed, res.SignalsSent, res.StartSequence, res.StartSequence+uint64(res.Committed)-1)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	if res.AlreadyDone {
		fmt.Printf("already done: %s records all %d contributions (%d signals) of %s to %s as committed, sequences %d to %d; nothing sent.\nTo publish this file again as a new change, move the journal away or pass --journal with another path.\n",
			res.Journal, res.Contributions, res.Signals, *file, *set, res.StartSequence, res.StartSequence+uint64(res.Contributions)-1)
		return nil
	}
	printSummary(res, op, *verdict, *set)
	if *receiptDir == "" || res.Last == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	last := res.Last
	receipt, info, err := c.Receipt(rctx, last.Index)
	if err != nil {
		return fmt.Errorf("the contributions are committed, but the receipt of ledger entry %d is not available yet (do not publish the file again; fetch the receipt later with grpcurl LedgerService/GetReceipt index %d): %w", last.Index, last.Index, err)
	}
	org := last.Statement.Org
	fname := fmt.Sprintf("%s_%s_%d.tlog-proof", org, strings.ReplaceAll(strings.TrimPrefix(*set, org+"/"), "/", "_"), last.Statement.Sequence)
	path := filepath.Join(*receiptDir, fname)
	if err := writeNew(path, receipt, 0o644); err != nil {
		return err
	}
	fmt.Printf("receipt %s: entry %d under a checkpoint of size %d cosigned by %s (check it offline: hashfed verify-receipt %s)\n",
		path, info.Index, info.Checkpoint.Size, strings.Join(info.SignedBy, ", "), path)
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// changeText says what n signals of op did to set.
func changeText(op, verdict string, n int64, set string) string {
	switch op {
	case federation.OpRetract:
		return fmt.Sprintf("retraction of %d signals from %s", n, set)
	case federation.OpRelabel:
		return fmt.Sprintf("new labels of %d signals of %s", n, set)
	case federation.OpFeedback:
		return fmt.Sprintf("%s feedback on %d signals of %s", verdict, n, set)
	default:
		return fmt.Sprintf("%d signals to %s", n, set)
	}
}

func printSummary(res *client.ImportResult, op, verdict, set string) {
	if res.Contributions == 1 && res.Committed == 1 {
		st := res.Last.Statement
		fmt.Printf("committed %s as sequence %d: ledger entry %d (ledger size %d)\n",
			changeText(op, verdict, int64(st.Count), set), st.Sequence, res.Last.Index, res.Last.TreeSize)
	} else {
		fmt.Printf("committed %s in %d contributions, sequences %d to %d", changeText(op, verdict, res.Signals, set), res.Contributions,
			res.StartSequence, res.StartSequence+uint64(res.Contributions)-1)
		if res.FirstIndex >= 0 {
			fmt.Printf(", ledger entries %d to %d", res.FirstIndex, res.LastIndex)
		}
		fmt.Println()
		if res.Resumed > 0 {
			fmt.Printf("resumed: %d contributions were committed by an earlier run, %d (%d signals) by this one\n", res.Resumed, res.Committed, res.SignalsSent)
		}
	}
	if res.Contributions == 1 && res.Skipped == 0 {
		return
	}
	rate := ""
	if s := res.Elapsed.Seconds(); s > 0 && res.SignalsSent > 0 {
		rate = fmt.Sprintf(", %s signals/s", group(int64(float64(res.SignalsSent)/s)))
	}
	fmt.Printf("%d signals, %d exact duplicates skipped, %d contributions, in %s%s\n",
		res.Signals, res.Skipped, res.Contributions, res.Elapsed.Round(time.Millisecond), rate)
}

// A progressReporter shows an import's progress on a terminal (a bar
// redrawn at most ten times a second) or as plain lines (one every five
// seconds and one at the end).
type progressReporter struct {
	mode  string
	w     io.Writer
	name  string
	t0    time.Time
	drawn time.Time
	last  client.ImportProgress
	seen  bool
	width int
}

const (
	barInterval   = 100 * time.Millisecond
	plainInterval = 5 * time.Second
)

func newProgressReporter(mode string, w io.Writer, name string) *progressReporter {
	p := &progressReporter{mode: mode, w: w, name: name, width: 80}
	if f, ok := w.(*os.File); ok && mode == "bar" {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			p.width = cols
		}
	}
	return p
}

func (p *progressReporter) update(ip client.ImportProgress) {
	if !p.seen {
		p.seen, p.t0 = true, time.Now()
	}
	p.last = ip
	now := time.Now()
	switch p.mode {
	case "bar":
		if now.Sub(p.drawn) >= barInterval {
			p.drawn = now
			p.drawBar()
		}
	case "plain":
		if p.drawn.IsZero() || now.Sub(p.drawn) >= plainInterval {
			p.drawn = now
			fmt.Fprintln(p.w, p.line())
		}
	}
}

// finish draws the final state.
func (p *progressReporter) finish() {
	if !p.seen {
		return
	}
	switch p.mode {
	case "bar":
		p.drawBar()
		fmt.Fprintln(p.w)
	case "plain":
		fmt.Fprintln(p.w, p.line())
	}
}

// rate returns this run's signals per second.
func (p *progressReporter) rate() float64 {
	s := time.Since(p.t0).Seconds()
	if s <= 0 {
		return 0
	}
	return float64(p.last.Signals-p.last.Resumed) / s
}

// stats is the count, rate and ETA part of a progress report.
func (p *progressReporter) stats() string {
	ip := p.last
	var b strings.Builder
	if ip.Total >= 0 {
		fmt.Fprintf(&b, "%s/%s signals", group(ip.Signals), group(ip.Total))
	} else {
		fmt.Fprintf(&b, "%s signals", group(ip.Signals))
	}
	r := p.rate()
	fmt.Fprintf(&b, "  %s signals/s", group(int64(r)))
	if ip.Total >= 0 {
		switch {
		case ip.Signals >= ip.Total:
			b.WriteString("  done")
		case r > 0:
			eta := time.Duration(float64(ip.Total-ip.Signals) / r * float64(time.Second))
			fmt.Fprintf(&b, "  ETA %s", eta.Round(time.Second))
		default:
			b.WriteString("  ETA --")
		}
	}
	return b.String()
}

func (p *progressReporter) line() string {
	ip := p.last
	contribs := fmt.Sprintf("%d contributions", ip.Contributions)
	pct := ""
	if ip.TotalContributions >= 0 {
		contribs = fmt.Sprintf("%d/%d contributions", ip.Contributions, ip.TotalContributions)
	}
	if ip.Total > 0 {
		pct = fmt.Sprintf(" (%.1f%%)", 100*float64(ip.Signals)/float64(ip.Total))
	}
	return fmt.Sprintf("progress %s: %s%s, %s, %d duplicates skipped", p.name, p.stats(), pct, contribs, ip.Skipped)
}

func (p *progressReporter) drawBar() {
	ip := p.last
	stats := p.stats()
	barWidth := p.width - len(stats) - 10
	if barWidth > 50 {
		barWidth = 50
	}
	var bar string
	if ip.Total > 0 && barWidth >= 10 {
		fill := int(int64(barWidth) * ip.Signals / ip.Total)
		bar = "[" + strings.Repeat("=", fill) + strings.Repeat(" ", barWidth-fill) + "] "
		bar += fmt.Sprintf("%3d%% ", 100*ip.Signals/ip.Total)
	}
	s := bar + stats
	if len(s) > p.width-1 {
		s = s[:p.width-1]
	}
	// \r returns to the line's start; \x1b[K clears what a longer earlier
	// line left.
	fmt.Fprintf(p.w, "\r%s\x1b[K", s)
}

// group formats n with thousands separators: 1,234,567.
func group(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
