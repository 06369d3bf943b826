// Package bench measures a hashfed federation on one machine: ingest,
// catch-up of a new subscriber, publish-to-delivery latency, node memory at
// scale, and, as the reference, bare hashicorp/raft carrying the same bytes.
// `hashfed bench` and the package's Go benchmarks run the same workloads.
//
// Every workload runs a real three-voter federation (three orgs, one node
// each) built by [localfed]: mutual TLS on loopback, raft-boltdb log stores,
// file snapshots, the node's own state store under its data directory.
// Clients publish and subscribe over gRPC exactly as `hashfed publish` and
// `hashfed subscribe` do. Nothing is simulated, and every figure is measured
// with the wall clock around real work.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/node"
)

// Workload names.
const (
	WorkloadIngest  = "ingest"
	WorkloadRaft    = "raft"
	WorkloadCatchUp = "catchup"
	WorkloadLatency = "latency"
	WorkloadRSS     = "rss"
)

// Workloads lists every workload in the order [Run] runs them.
var Workloads = []string{WorkloadIngest, WorkloadRaft, WorkloadCatchUp, WorkloadLatency, WorkloadRSS}

// An IngestSpec is one ingest run: Contributions contributions of Size
// signals each.
type IngestSpec struct {
	Size          int `json:"signals_per_contribution"`
	Contributions int `json:"contributions"`
}

// Config says which workloads to run and how big.
type Config struct {
	// Dir is where the federations' files go; it must exist. Each workload
	// uses a subdirectory, removed afterwards unless Keep is set.
	Dir  string
	Keep bool
	// Workloads to run, from [Workloads].
	Workloads []string
	// Concurrency is how many publishers publish at once, each to a set of
	// its own: per-(org, set) sequence numbers are strictly serial, so one
	// set has at most one contribution in flight.
	Concurrency int
	// SignalType is the type of the generated signals: pdq or md5.
	SignalType federation.SignalType
	// Processes runs the ingest, catch-up and latency federations' nodes as
	// separate processes (with NodeCommand) instead of in this process. The
	// rss workload always does.
	Processes bool

	// Ingest lists the ingest runs; the raft workload uses the same sizes.
	Ingest []IngestSpec

	// CatchUpSignals is the size of the ledger a new subscriber catches up
	// with, loaded in contributions of CatchUpSize signals.
	CatchUpSignals int
	CatchUpSize    int
	// CatchUpRuns is how many new subscribers catch up, one after another;
	// the median counts.
	CatchUpRuns int

	// LatencySubscribers follow the ledger while publishers publish
	// LatencyRate contributions of LatencySize signals per second (in all)
	// for LatencyDuration.
	LatencySubscribers int
	LatencyRate        float64
	LatencySize        int
	LatencyDuration    time.Duration

	// RSSSignals are loaded, in contributions of RSSSize signals, into a
	// federation of node processes whose memory is then read.
	RSSSignals int
	RSSSize    int
	// RSSSettle is how long the nodes idle before their memory is read.
	RSSSettle time.Duration

	// NodeCommand returns the command that runs one node from its YAML
	// configuration file (`hashfed node --config FILE`); needed by the rss
	// workload and by Processes.
	NodeCommand func(config string) *exec.Cmd

	// Raft timing for every node; zero values take node.DefaultConfig's.
	Raft node.RaftConfig
	// CheckpointInterval for every node; zero takes node.DefaultConfig's.
	CheckpointInterval time.Duration

	// Progress receives a line for each step; nil discards them.
	Progress io.Writer
}

// DefaultConfig returns the sizes of a quick run of every workload (a few
// minutes on two cores).
func DefaultConfig() Config {
	return Config{
		Workloads:          slices.Clone(Workloads),
		Concurrency:        8,
		SignalType:         federation.PDQ,
		Ingest:             []IngestSpec{{Size: 1, Contributions: 2000}, {Size: 1000, Contributions: 500}},
		CatchUpSignals:     1_000_000,
		CatchUpSize:        1000,
		CatchUpRuns:        3,
		LatencySubscribers: 100,
		LatencyRate:        10,
		LatencySize:        100,
		LatencyDuration:    15 * time.Second,
		RSSSignals:         1_000_000,
		RSSSize:            1000,
		RSSSettle:          5 * time.Second,
	}
}

func (c *Config) validate() error {
	for _, w := range c.Workloads {
		if !slices.Contains(Workloads, w) {
			return fmt.Errorf("unknown workload %q (want some of %s)", w, strings.Join(Workloads, ","))
		}
	}
	switch {
	case c.Dir == "":
		return errors.New("bench: Dir is required")
	case c.Concurrency < 1:
		return errors.New("bench: concurrency must be at least 1")
	case c.SignalType != federation.PDQ && c.SignalType != federation.MD5:
		return fmt.Errorf("bench: signal type %q: want pdq or md5", c.SignalType)
	}
	for _, s := range c.Ingest {
		if s.Size < 1 || s.Size > federation.MaxSignals || s.Contributions < 1 {
			return fmt.Errorf("bench: ingest run %d:%d: want 1 to %d signals per contribution and at least one contribution", s.Size, s.Contributions, federation.MaxSignals)
		}
	}
	for _, sz := range []int{c.CatchUpSize, c.LatencySize, c.RSSSize} {
		if sz < 1 || sz > federation.MaxSignals {
			return fmt.Errorf("bench: %d signals per contribution: want 1 to %d", sz, federation.MaxSignals)
		}
	}
	if (c.Processes || slices.Contains(c.Workloads, WorkloadRSS)) && c.NodeCommand == nil {
		return errors.New("bench: NodeCommand is required to run nodes as processes")
	}
	if slices.Contains(c.Workloads, WorkloadLatency) && (c.LatencyRate <= 0 || c.LatencySubscribers < 1 || c.LatencyDuration <= 0) {
		return errors.New("bench: latency needs a positive rate, subscribers and duration")
	}
	return nil
}

func (c *Config) progress(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
}

// A Report is the results of one [Run].
type Report struct {
	Env    Env    `json:"env"`
	Config Params `json:"config"`
	// Ingest holds hashfed's runs and the bare Raft runs, in that order.
	Ingest  []IngestResult `json:"ingest,omitempty"`
	CatchUp *CatchUpResult `json:"catchup,omitempty"`
	Latency *LatencyResult `json:"latency,omitempty"`
	RSS     *RSSResult     `json:"rss,omitempty"`
	// LoadAvgAfter is the load averages when the run ended.
	LoadAvgAfter string `json:"load_avg_after,omitempty"`
}

// Params records the configuration a report was measured with.
type Params struct {
	Workloads          []string `json:"workloads"`
	Concurrency        int      `json:"concurrency"`
	SignalType         string   `json:"signal_type"`
	Processes          bool     `json:"node_processes"`
	HeartbeatTimeout   string   `json:"raft_heartbeat_timeout"`
	CommitTimeout      string   `json:"raft_commit_timeout"`
	CheckpointInterval string   `json:"checkpoint_interval"`
}

// Run runs the workloads cfg selects, in the order of [Workloads].
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rep := &Report{Env: ReadEnv()}
	defer func() { rep.LoadAvgAfter = loadAvg() }()
	def := node.DefaultConfig()
	raft := cfg.Raft
	if raft.HeartbeatTimeout == 0 {
		raft = def.Raft
	}
	cpi := cfg.CheckpointInterval
	if cpi == 0 {
		cpi = def.CheckpointInterval
	}
	rep.Config = Params{
		Workloads: cfg.Workloads, Concurrency: cfg.Concurrency, SignalType: string(cfg.SignalType),
		Processes: cfg.Processes, HeartbeatTimeout: raft.HeartbeatTimeout.String(),
		CommitTimeout: raft.CommitTimeout.String(), CheckpointInterval: cpi.String(),
	}
	want := func(w string) bool { return slices.Contains(cfg.Workloads, w) }
	sub := func(name string) (string, func(), error) {
		d := filepath.Join(cfg.Dir, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			return "", nil, err
		}
		return d, func() {
			if !cfg.Keep {
				os.RemoveAll(d)
			}
		}, nil
	}

	if want(WorkloadIngest) {
		dir, done, err := sub("ingest")
		if err != nil {
			return rep, err
		}
		res, err := RunIngest(ctx, &cfg, dir)
		done()
		rep.Ingest = append(rep.Ingest, res...)
		if err != nil {
			return rep, fmt.Errorf("ingest: %w", err)
		}
	}
	if want(WorkloadRaft) {
		dir, done, err := sub("raft")
		if err != nil {
			return rep, err
		}
		res, err := RunBareRaft(ctx, &cfg, dir)
		done()
		rep.Ingest = append(rep.Ingest, res...)
		if err != nil {
			return rep, fmt.Errorf("bare raft: %w", err)
		}
		rep.fillOverhead()
	}
	if want(WorkloadCatchUp) {
		dir, done, err := sub("catchup")
		if err != nil {
			return rep, err
		}
		res, err := RunCatchUp(ctx, &cfg, dir)
		done()
		rep.CatchUp = res
		if err != nil {
			return rep, fmt.Errorf("catch-up: %w", err)
		}
	}
	if want(WorkloadLatency) {
		dir, done, err := sub("latency")
		if err != nil {
			return rep, err
		}
		res, err := RunLatency(ctx, &cfg, dir)
		done()
		rep.Latency = res
		if err != nil {
			return rep, fmt.Errorf("latency: %w", err)
		}
	}
	if want(WorkloadRSS) {
		dir, done, err := sub("rss")
		if err != nil {
			return rep, err
		}
		res, err := RunRSS(ctx, &cfg, dir)
		done()
		rep.RSS = res
		if err != nil {
			return rep, fmt.Errorf("rss: %w", err)
		}
	}
	return rep, nil
}
