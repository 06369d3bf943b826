package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// A Dist summarises measured durations, in milliseconds.
type Dist struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

// distOf summarises ds (which it sorts).
func distOf(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	// The nearest-rank percentile: the smallest value with at least q of
	// the values at or below it.
	rank := func(q float64) float64 { return ms(ds[max(0, int(math.Ceil(q*float64(len(ds))))-1)]) }
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return Dist{N: len(ds), Mean: ms(sum / time.Duration(len(ds))), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: ms(ds[len(ds)-1])}
}

// fillOverhead sets each hashfed ingest result's overhead over the bare
// Raft result of the same size.
func (r *Report) fillOverhead() {
	for i := range r.Ingest {
		h := &r.Ingest[i]
		if h.System != SystemHashfed {
			continue
		}
		for _, b := range r.Ingest {
			if b.System == SystemRaft && b.Size == h.Size && h.SignalsPerSec > 0 {
				o := (b.SignalsPerSec/h.SignalsPerSec - 1) * 100
				h.OverheadPct = &o
			}
		}
	}
}

// Print writes the report as readable tables.
func (r *Report) Print(w io.Writer) {
	e := r.Env
	commit := e.Commit
	if commit == "" {
		commit = "unknown"
	}
	if e.Modified {
		commit += " with uncommitted changes"
	}
	fmt.Fprintf(w, "hashfed bench, %s\n", e.Time)
	fmt.Fprintf(w, "machine  %d CPUs (%s), GOMAXPROCS %d, %s RAM, %s/%s, kernel %s\n", e.NumCPU, e.CPUModel, e.GOMAXPROCS, size(e.MemTotal), e.OS, e.Arch, e.Kernel)
	fmt.Fprintf(w, "load     average %s before the run, %s after (other processes share the CPUs)\n", e.LoadAvg, r.LoadAvgAfter)
	fmt.Fprintf(w, "code     %s, %s\n", commit, e.GoVersion)
	c := r.Config
	fmt.Fprintf(w, "setup    3 voting nodes (orgs ngo, techco, auditor), loopback mTLS, raft-boltdb; raft heartbeat %s, commit timeout %s; checkpoints every %s\n",
		c.HeartbeatTimeout, c.CommitTimeout, c.CheckpointInterval)
	fmt.Fprintf(w, "         %s signals; %d concurrent publishers, one set each\n", c.SignalType, c.Concurrency)

	if len(r.Ingest) > 0 {
		where := "nodes in the bench process"
		if c.Processes {
			where = "hashfed nodes as separate processes, bare raft in the bench process"
		}
		fmt.Fprintf(w, "\ningest (contributions built and signed ahead of time; published to the leader; %s)\n", where)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "system\tsignals/contrib\tcontribs\tcmd bytes\tseconds\tcontribs/s\tsignals/s\tMB/s\tcommit p50 ms\tp99 ms\tCPU ms/contrib\tCPU busy\tothers\tretries\toverhead\t")
		for _, x := range r.Ingest {
			over := "-"
			if x.OverheadPct != nil {
				over = fmt.Sprintf("%.0f%%", *x.OverheadPct)
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.1f\t%.0f\t%.1f\t%.1f\t%.1f\t%.2f\t%s\t%s\t%d\t%s\t\n",
				x.System, x.Size, x.Contributions, x.CommandBytes, x.Seconds, x.ContributionsPerSec, x.SignalsPerSec, x.MBPerSec, x.Commit.P50, x.Commit.P99,
				x.CPUSeconds*1000/float64(x.Contributions), e.busy(x.CPUSeconds, x.Seconds), e.busy(x.OtherCPUSeconds, x.Seconds), x.Retries, over)
		}
		tw.Flush()
		for _, x := range r.Ingest {
			if x.System == SystemHashfed && x.BuildSignalsPerSec > 0 {
				fmt.Fprintf(w, "client build+sign at %d signals/contrib: %.0f signals/s on one core (not in the figures above)\n", x.Size, x.BuildSignalsPerSec)
			}
		}
		fmt.Fprintln(w, "CPU = user+system time of every process of the federation and its publishers; busy = CPU ÷ (seconds × CPUs);")
		fmt.Fprintln(w, "others = what every other process on the machine used meanwhile, as busy")
		fmt.Fprintln(w, "overhead = bare raft signals/s ÷ hashfed signals/s − 1")
		for _, x := range r.Ingest {
			if x.Rejections > 0 {
				fmt.Fprintf(w, "%s at %d signals/contrib: %d contributions wrongly rejected as out of sequence after a leader change, accepted when sent again\n", x.System, x.Size, x.Rejections)
			}
		}
	}
	if x := r.CatchUp; x != nil {
		fmt.Fprintf(w, "\ncatch-up (a new techco subscriber, client.CatchUp from cursor 0 with its %d sets, verifying every entry, served by %s)\n", x.Sets, x.Node)
		fmt.Fprintf(w, "  ledger  %d entries, %d signals in contributions of %d (loaded at %.0f signals/s)\n", x.Entries, x.Signals, x.Size, x.LoadSignalsPerSec)
		var runs []string
		for _, r := range x.Runs {
			runs = append(runs, fmt.Sprintf("%.0f", r))
		}
		fmt.Fprintf(w, "  runs    %s signals/s; the median run:\n", strings.Join(runs, ", "))
		fmt.Fprintf(w, "  result  %.2f s: %.0f signals/s, %.0f entries/s, %.1f MB/s of hash values; CPU %.2f s (%s busy, others %s)\n",
			x.Seconds, x.SignalsPerSec, x.EntriesPerSec, x.ValueMBPerSec, x.CPUSeconds, e.busy(x.CPUSeconds, x.Seconds), e.busy(x.OtherCPUSeconds, x.Seconds))
	}
	if x := r.Latency; x != nil {
		fmt.Fprintf(w, "\nlatency (%d techco subscribers following with client.Subscribe, spread over the 3 nodes; %d publishers publishing %d-signal contributions at %.1f/s in all for %s)\n",
			x.Subscribers, x.Publishers, x.Size, x.TargetRate, time.Duration(x.Seconds*float64(time.Second)).Round(time.Millisecond))
		fmt.Fprintf(w, "  published %d (%.1f/s achieved, %d retried); %d deliveries, %d missing; CPU %s busy, others %s\n",
			x.Published, x.AchievedRate, x.Retries, x.Deliveries, x.Missing, e.busy(x.CPUSeconds, x.Seconds), e.busy(x.OtherCPUSeconds, x.Seconds))
		if x.Rejections > 0 {
			fmt.Fprintf(w, "  %d publishes wrongly rejected as out of sequence after a leader change, accepted when sent again\n", x.Rejections)
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "\tn\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
		for _, d := range []struct {
			name string
			d    Dist
		}{{"publish start → delivered to subscriber", x.Delivery}, {"publish start → Publish returned", x.Commit}} {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", d.name, d.d.N, d.d.P50, d.d.P90, d.d.P99, d.d.Max)
		}
		tw.Flush()
	}
	if x := r.RSS; x != nil {
		fmt.Fprintf(w, "\nmemory (node processes holding %d signals in %d contributions of %d; loaded at %.0f signals/s by %d publishers, %d retried, %d wrongly rejected)\n",
			x.Signals, x.Contributions, x.Size, x.LoadSignalsPerSec, x.Concurrency, x.Retries, x.Rejections)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "node\twhen\tVmRSS\tRssAnon\tRssFile\tVmHWM\tdata dir\t")
		row := func(m NodeMemory, when string) {
			fmt.Fprintf(tw, "%s (%s)\t%s\t%s\t%s\t%s\t%s\t%s\t\n", m.ID, strings.ToLower(m.Role), when, size(m.VmRSS), size(m.RssAnon), size(m.RssFile), size(m.VmHWM), size(m.DiskBytes))
		}
		for _, m := range x.Nodes {
			row(m, "after load")
		}
		if x.Restarted != nil {
			row(*x.Restarted, fmt.Sprintf("after restart (%.1f s to serve)", x.RestartSeconds))
		}
		tw.Flush()
	}
}

// busy formats cpu seconds used over seconds as a share of the machine's CPUs.
func (e Env) busy(cpu, seconds float64) string {
	if seconds <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*cpu/seconds/float64(max(1, e.NumCPU)))
}

// size formats a byte count in binary units.
func size(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", float64(b)/(1<<10))
	}
}
