package bench

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashfed/hashfed/client"
)

// A CatchUpResult is a new subscriber reading a whole ledger.
type CatchUpResult struct {
	// The ledger: Signals in Entries entries (genesis included), loaded in
	// contributions of Size signals to Sets sets.
	Signals           int     `json:"signals"`
	Entries           int64   `json:"entries"`
	Size              int     `json:"signals_per_contribution"`
	Sets              int     `json:"sets"`
	LoadSignalsPerSec float64 `json:"load_signals_per_sec"`
	// Node served the subscriber ("techco-1 (Follower)").
	Node string `json:"node"`
	// Runs are each run's signals/s, in order; the other figures are the
	// median run's.
	Runs []float64 `json:"runs_signals_per_sec"`
	// Seconds from calling client.CatchUp to its return, every entry verified.
	Seconds       float64 `json:"seconds"`
	SignalsPerSec float64 `json:"signals_per_sec"`
	EntriesPerSec float64 `json:"entries_per_sec"`
	ValueMBPerSec float64 `json:"value_mb_per_sec"`
	// CPUSeconds is the CPU time the nodes and the subscriber used.
	CPUSeconds float64 `json:"cpu_seconds"`
	// OtherCPUSeconds is the CPU time other processes used meanwhile.
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`
}

// RunCatchUp loads cfg.CatchUpSignals into a new federation in dir and
// measures a new subscriber catching up with it.
func RunCatchUp(ctx context.Context, cfg *Config, dir string) (*CatchUpResult, error) {
	cfg.progress("catch-up: starting a federation (%s)", nodesWhere(cfg.Processes))
	c, err := startCluster(ctx, cfg, dir, cfg.Concurrency, cfg.Processes)
	if err != nil {
		return nil, err
	}
	defer c.close()
	cfg.progress("catch-up: loading %d signals", cfg.CatchUpSignals)
	ls, err := c.load(ctx, cfg.CatchUpSignals, cfg.CatchUpSize, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	if err := c.waitSize(ctx, ls.size, 10*time.Minute); err != nil {
		return nil, err
	}
	res := &CatchUpResult{Size: cfg.CatchUpSize, Sets: min(cfg.Concurrency, ls.contributions), LoadSignalsPerSec: float64(ls.signals) / ls.seconds}
	id := c.nodeIDs()[1] // the subscriber org's own node
	st, err := c.status(ctx, id)
	if err != nil {
		return nil, err
	}
	res.Node = fmt.Sprintf("%s (%s)", id, strings.ToLower(st.GetState()))
	// Each run is a new subscriber with a new connection; the result is
	// the median run, so one run slowed by other work on the machine does
	// not decide it.
	type run struct {
		s           catchUpStats
		cpu, others float64
	}
	var runs []run
	for range max(1, cfg.CatchUpRuns) {
		cl, err := c.dial(subscriberOrg, id)
		if err != nil {
			return nil, err
		}
		meter := startCPU(c.cpu)
		cu, err := catchUp(ctx, cl, c.setNames(res.Sets))
		cl.Close()
		if err != nil {
			return nil, err
		}
		cpu, others := meter.stop()
		runs = append(runs, run{cu, cpu, others})
		res.Runs = append(res.Runs, float64(cu.signals)/cu.seconds)
	}
	slices.SortFunc(runs, func(a, b run) int { return cmp.Compare(a.s.seconds, b.s.seconds) })
	med := runs[len(runs)/2]
	cu := med.s
	res.CPUSeconds, res.OtherCPUSeconds = med.cpu, med.others
	res.Signals, res.Entries, res.Seconds = cu.signals, cu.entries, cu.seconds
	res.SignalsPerSec = float64(cu.signals) / cu.seconds
	res.EntriesPerSec = float64(cu.entries) / cu.seconds
	res.ValueMBPerSec = float64(cu.valueBytes) / cu.seconds / 1e6
	cfg.progress("catch-up: %d signals in %.2f s: %.0f signals/s", cu.signals, cu.seconds, res.SignalsPerSec)
	return res, nil
}

func (c *cluster) setNames(n int) []string {
	var out []string
	for _, s := range c.sets[:n] {
		out = append(out, s.name)
	}
	return out
}

type catchUpStats struct {
	entries    int64
	signals    int
	valueBytes int
	seconds    float64
}

// catchUp reads the whole ledger from cursor 0 as a new subscriber does,
// through client.CatchUp, which verifies every entry.
func catchUp(ctx context.Context, cl *client.Client, sets []string) (catchUpStats, error) {
	var s catchUpStats
	start := time.Now()
	err := cl.CatchUp(ctx, 0, sets, func(u *client.Update) error {
		s.entries++
		s.signals += len(u.Signals)
		for _, sig := range u.Signals {
			s.valueBytes += len(sig.GetValue())
		}
		return nil
	})
	s.seconds = time.Since(start).Seconds()
	if err != nil {
		return s, fmt.Errorf("catching up: %w", err)
	}
	return s, nil
}
