package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/bench"
)

func runBench(args []string) error {
	def := bench.DefaultConfig()
	fs := newFlags("bench", "bench [--workload LIST] [--concurrency N] [--signals N] [--json] [...]")
	workloads := fs.String("workload", strings.Join(def.Workloads, ","), "workloads to run, comma-separated: "+strings.Join(bench.Workloads, ", "))
	conc := fs.Int("concurrency", def.Concurrency, "concurrent publishers, each publishing to a set of its own")
	typ := fs.String("type", string(def.SignalType), "type of the generated signals: pdq or md5")
	procs := fs.Bool("procs", false, "run the ingest, catch-up and latency federations' nodes as separate processes (rss always does)")
	ingest := fs.String("ingest", formatIngest(def.Ingest), "ingest runs as SIGNALS_PER_CONTRIBUTION:CONTRIBUTIONS, comma-separated; raft uses the same")
	cuSignals := fs.Int("catchup-signals", def.CatchUpSignals, "ledger size in signals for the catch-up workload")
	cuSize := fs.Int("catchup-size", def.CatchUpSize, "signals per contribution in the catch-up ledger")
	cuRuns := fs.Int("catchup-runs", def.CatchUpRuns, "new subscribers catching up one after another (the median counts)")
	subs := fs.Int("subscribers", def.LatencySubscribers, "subscribers following the ledger in the latency workload")
	rate := fs.Float64("rate", def.LatencyRate, "contributions per second published in the latency workload (in all)")
	latSize := fs.Int("latency-size", def.LatencySize, "signals per contribution in the latency workload")
	latDur := fs.Duration("latency-duration", def.LatencyDuration, "how long the latency workload publishes")
	rssSignals := fs.Int("signals", def.RSSSignals, "signals the rss workload loads before reading node memory (the aim is stated for 10000000)")
	rssSize := fs.Int("rss-size", def.RSSSize, "signals per contribution in the rss workload")
	settle := fs.Duration("settle", def.RSSSettle, "how long nodes idle before the rss workload reads their memory")
	dir := fs.String("dir", "", "directory for the federations' files (default: a new temporary directory)")
	keep := fs.Bool("keep", false, "keep the federations' files (node logs, data directories) after the run")
	asJSON := fs.Bool("json", false, "print the results as one JSON object instead of tables")
	jsonOut := fs.String("json-out", "", "also write the results as JSON to this file")
	quiet := fs.Bool("quiet", false, "no progress lines on stderr")
	if err := parse(fs, args); err != nil {
		return err
	}

	cfg := def
	cfg.Workloads = splitList(*workloads)
	cfg.Concurrency = *conc
	cfg.SignalType = federation.SignalType(*typ)
	cfg.Processes = *procs
	var err error
	if cfg.Ingest, err = parseIngest(*ingest); err != nil {
		return exitError{2, err.Error()}
	}
	cfg.CatchUpSignals, cfg.CatchUpSize, cfg.CatchUpRuns = *cuSignals, *cuSize, *cuRuns
	cfg.LatencySubscribers, cfg.LatencyRate, cfg.LatencySize, cfg.LatencyDuration = *subs, *rate, *latSize, *latDur
	cfg.RSSSignals, cfg.RSSSize, cfg.RSSSettle = *rssSignals, *rssSize, *settle
	cfg.Keep = *keep
	if !*quiet {
		cfg.Progress = os.Stderr
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary to run nodes with: %w", err)
	}
	cfg.NodeCommand = func(config string) *exec.Cmd { return exec.Command(exe, "node", "--config", config) }

	cfg.Dir = *dir
	if cfg.Dir == "" {
		if cfg.Dir, err = os.MkdirTemp("", "hashfed-bench-"); err != nil {
			return err
		}
		if !*keep {
			defer os.RemoveAll(cfg.Dir)
		}
	} else if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return err
	}
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "hashfed bench in %s\n", cfg.Dir)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, runErr := bench.Run(ctx, cfg)
	if rep != nil && *jsonOut != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if rep != nil {
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			if err := enc.Encode(rep); err != nil {
				return err
			}
		} else {
			rep.Print(os.Stdout)
		}
	}
	return runErr
}

// parseIngest parses "1:2000,1000:500".
func parseIngest(s string) ([]bench.IngestSpec, error) {
	var out []bench.IngestSpec
	for _, item := range splitList(s) {
		a, b, ok := strings.Cut(item, ":")
		size, err1 := strconv.Atoi(a)
		n, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--ingest %q: want SIGNALS_PER_CONTRIBUTION:CONTRIBUTIONS, e.g. 1000:500", item)
		}
		out = append(out, bench.IngestSpec{Size: size, Contributions: n})
	}
	return out, nil
}

func formatIngest(specs []bench.IngestSpec) string {
	var parts []string
	for _, s := range specs {
		parts = append(parts, fmt.Sprintf("%d:%d", s.Size, s.Contributions))
	}
	return strings.Join(parts, ",")
}
