package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/node"
)

// Flags for the Go benchmarks, e.g.
//
//	go test -run '^$' -bench Ingest ./internal/bench -args -concurrency 16
var (
	concurrency    = flag.Int("concurrency", 8, "concurrent publishers (one set each) in the ingest benchmarks")
	catchUpSignals = flag.Int("catchup-signals", 200_000, "ledger size in signals for BenchmarkCatchUp")
	subscribers    = flag.Int("subscribers", 100, "subscribers in BenchmarkLatency")
	latencyRate    = flag.Float64("latency-rate", 10, "contributions per second in BenchmarkLatency")
	latencySize    = flag.Int("latency-size", 100, "signals per contribution in BenchmarkLatency")
)

// nodeConfigEnv, when set, makes the test binary run a node from that
// configuration file instead of the tests: the rss workload's node
// processes, without building the hashfed binary.
const nodeConfigEnv = "HASHFED_BENCH_TEST_NODE_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(nodeConfigEnv); path != "" {
		if err := runNode(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runNode is `hashfed node --config path`.
func runNode(path string) error {
	cfg, err := node.LoadConfig(path)
	if err != nil {
		return err
	}
	n, err := node.Start(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return n.Close()
}

// testNodeCommand runs a node as a re-executed test binary.
func testNodeCommand(config string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), nodeConfigEnv+"="+config)
	return cmd
}

// quickRaft elects and commits fast, for tests only: the benchmarks and
// `hashfed bench` measure with the nodes' default timing.
func quickRaft() node.RaftConfig {
	r := node.DefaultConfig().Raft
	r.HeartbeatTimeout = 200 * time.Millisecond
	r.ElectionTimeout = 200 * time.Millisecond
	r.LeaderLeaseTimeout = 100 * time.Millisecond
	return r
}

// TestRun runs every workload at a tiny size and checks that the report
// adds up; it says nothing about speed.
func TestRun(t *testing.T) {
	cfg := Config{
		Dir:                t.TempDir(),
		Workloads:          Workloads,
		Concurrency:        2,
		SignalType:         federation.MD5,
		Ingest:             []IngestSpec{{Size: 1, Contributions: 5}, {Size: 50, Contributions: 4}},
		CatchUpSignals:     250,
		CatchUpSize:        100,
		LatencySubscribers: 4,
		LatencyRate:        20,
		LatencySize:        3,
		LatencyDuration:    300 * time.Millisecond,
		RSSSignals:         120,
		RSSSize:            50,
		NodeCommand:        testNodeCommand,
		Raft:               quickRaft(),
		CheckpointInterval: 100 * time.Millisecond,
	}
	if testing.Verbose() {
		cfg.Progress = os.Stderr
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}

	if len(rep.Ingest) != 4 {
		t.Fatalf("got %d ingest results, want 2 hashfed and 2 raft", len(rep.Ingest))
	}
	for i, r := range rep.Ingest {
		spec := cfg.Ingest[i%2]
		wantSys := SystemHashfed
		if i >= 2 {
			wantSys = SystemRaft
		}
		if r.System != wantSys || r.Size != spec.Size || r.Contributions != spec.Contributions || r.Signals != spec.Size*spec.Contributions ||
			r.Commit.N != spec.Contributions || r.SignalsPerSec <= 0 || r.CommandBytes <= 0 {
			t.Errorf("ingest result %d = %+v, want %s with %d × %d signals", i, r, wantSys, spec.Contributions, spec.Size)
		}
		if (r.OverheadPct != nil) != (r.System == SystemHashfed) {
			t.Errorf("ingest result %d (%s): overhead %v", i, r.System, r.OverheadPct)
		}
	}
	if r := rep.CatchUp; r == nil || r.Signals != cfg.CatchUpSignals || r.Entries != 1+3 || r.SignalsPerSec <= 0 {
		t.Errorf("catch-up = %+v, want %d signals in the genesis and 3 contributions", r, cfg.CatchUpSignals)
	}
	if r := rep.Latency; r == nil || r.Published != 6 || r.Missing != 0 || r.Deliveries != 6*cfg.LatencySubscribers || r.Delivery.P99 <= 0 {
		t.Errorf("latency = %+v, want 6 contributions delivered to each of %d subscribers", r, cfg.LatencySubscribers)
	}
	if r := rep.RSS; r == nil || len(r.Nodes) != 3 || r.Restarted == nil || r.Signals != cfg.RSSSignals || r.Contributions != 3 {
		t.Errorf("rss = %+v, want 3 nodes and a restarted one holding %d signals", r, cfg.RSSSignals)
	} else {
		for _, m := range append(r.Nodes, *r.Restarted) {
			if m.VmRSS <= 0 || m.VmHWM < m.VmRSS || m.RssAnon <= 0 || m.DiskBytes <= 0 {
				t.Errorf("node memory %+v: want positive figures, VmHWM ≥ VmRSS", m)
			}
		}
	}

	var out bytes.Buffer
	rep.Print(&out)
	for _, want := range []string{"ingest", "raft", "catch-up", "latency", "memory", "after restart"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed report lacks %q:\n%s", want, out.String())
		}
	}
	if _, err := json.Marshal(rep); err != nil {
		t.Error(err)
	}
	if testing.Verbose() {
		t.Logf("\n%s", out.String())
	}
}

func TestSignalsAreDistinctAndValid(t *testing.T) {
	seen := map[string]bool{}
	for _, typ := range []federation.SignalType{federation.PDQ, federation.MD5} {
		for _, set := range []string{setName(0), setName(1)} {
			a := signalsFor(typ, set, 0, 100)
			b := signalsFor(typ, set, 50, 100)
			for i, s := range a {
				if err := federation.ValidateSignal(s); err != nil {
					t.Fatal(err)
				}
				if seen[s.Value] {
					t.Fatalf("signal %d of %s (%s) repeats %s", i, set, typ, s.Value)
				}
				seen[s.Value] = true
				if i >= 50 && b[i-50].Value != s.Value {
					t.Fatalf("signal %d of %s differs between calls", i, set)
				}
			}
		}
	}
}

func TestDist(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := distOf(ds)
	want := Dist{N: 100, Mean: 50.5, P50: 50, P90: 90, P99: 99, Max: 100}
	if got != want {
		t.Errorf("distOf(1..100 ms) = %+v, want %+v", got, want)
	}
}

// benchConfig is the configuration of the Go benchmarks: the nodes' default
// timing, as `hashfed bench` measures.
func benchConfig(b *testing.B) *Config {
	cfg := DefaultConfig()
	cfg.Dir = b.TempDir()
	cfg.Concurrency = *concurrency
	cfg.NodeCommand = testNodeCommand
	return &cfg
}

// BenchmarkIngest publishes b.N contributions of 1 and of 1,000 signals
// through the leader of an in-process federation; contributions are built
// and signed before the timer runs.
func BenchmarkIngest(b *testing.B) {
	cfg := benchConfig(b)
	ctx := context.Background()
	c, err := startCluster(ctx, cfg, cfg.Dir, cfg.Concurrency, false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.close() })
	for _, size := range []int{1, 1000} {
		b.Run(fmt.Sprintf("signals=%d", size), func(b *testing.B) {
			pb, err := build(c.sets, IngestSpec{Size: size, Contributions: b.N}, cfg.Concurrency)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			r, err := c.publishAll(ctx, pb)
			if err != nil {
				b.Fatal(err)
			}
			reportIngest(b, r)
		})
	}
}

// BenchmarkBareRaft applies the Raft commands of b.N contributions of 1 and
// of 1,000 signals on a bare three-node Raft cluster with a no-op state
// machine: the reference for BenchmarkIngest.
func BenchmarkBareRaft(b *testing.B) {
	cfg := benchConfig(b)
	ctx := context.Background()
	rc, err := startRaft(ctx, cfg, cfg.Dir, cfg.Concurrency)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(rc.close)
	for _, size := range []int{1, 1000} {
		b.Run(fmt.Sprintf("signals=%d", size), func(b *testing.B) {
			pb, err := build(rc.sets, IngestSpec{Size: size, Contributions: b.N}, cfg.Concurrency)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			r, err := rc.applyAll(ctx, pb)
			if err != nil {
				b.Fatal(err)
			}
			reportIngest(b, r)
		})
	}
}

func reportIngest(b *testing.B, r IngestResult) {
	b.ReportMetric(r.Seconds*1e9/float64(r.Contributions), "ns/op")
	b.ReportMetric(r.SignalsPerSec, "signals/s")
	b.ReportMetric(r.ContributionsPerSec, "contribs/s")
	b.ReportMetric(r.Commit.P99, "p99-ms")
}

// BenchmarkCatchUp has a new subscriber catch up b.N times with a ledger of
// -catchup-signals signals in contributions of 1,000.
func BenchmarkCatchUp(b *testing.B) {
	cfg := benchConfig(b)
	ctx := context.Background()
	c, err := startCluster(ctx, cfg, cfg.Dir, cfg.Concurrency, false)
	if err != nil {
		b.Fatal(err)
	}
	defer c.close()
	ls, err := c.load(ctx, *catchUpSignals, 1000, cfg.Concurrency)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.waitSize(ctx, ls.size, 10*time.Minute); err != nil {
		b.Fatal(err)
	}
	id := c.nodeIDs()[1]
	sets := c.setNames(min(cfg.Concurrency, ls.contributions))
	b.ResetTimer()
	var total catchUpStats
	for range b.N {
		cl, err := c.dial(subscriberOrg, id)
		if err != nil {
			b.Fatal(err)
		}
		s, err := catchUp(ctx, cl, sets)
		cl.Close()
		if err != nil {
			b.Fatal(err)
		}
		total.entries += s.entries
		total.signals += s.signals
		total.seconds += s.seconds
	}
	b.ReportMetric(float64(total.signals)/total.seconds, "signals/s")
	b.ReportMetric(float64(total.entries)/total.seconds, "entries/s")
}

// BenchmarkLatency publishes b.N contributions at -latency-rate per second
// while -subscribers subscribers follow, and reports delivery percentiles.
func BenchmarkLatency(b *testing.B) {
	cfg := benchConfig(b)
	ctx := context.Background()
	pubs := min(cfg.Concurrency, b.N)
	c, err := startCluster(ctx, cfg, cfg.Dir, pubs, false)
	if err != nil {
		b.Fatal(err)
	}
	defer c.close()
	pb, err := build(c.sets, IngestSpec{Size: *latencySize, Contributions: b.N}, pubs)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	r, err := c.latency(ctx, pb, *subscribers, *latencyRate)
	if err != nil {
		b.Fatal(err)
	}
	if r.Missing != 0 {
		b.Fatalf("%d deliveries missing", r.Missing)
	}
	b.ReportMetric(r.Delivery.P50, "p50-ms")
	b.ReportMetric(r.Delivery.P99, "p99-ms")
	b.ReportMetric(r.Delivery.Max, "max-ms")
}

// TestLoadSurvivesLeaderChanges moves the leadership around while
// publishers load a ledger: every contribution must land exactly once.
func TestLoadSurvivesLeaderChanges(t *testing.T) {
	cfg := Config{Concurrency: 4, SignalType: federation.MD5, Raft: quickRaft(), CheckpointInterval: 100 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := startCluster(ctx, &cfg, t.TempDir(), cfg.Concurrency, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	stop := make(chan struct{})
	moved := make(chan int)
	go func() {
		n := 0
		defer func() { moved <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(150 * time.Millisecond):
			}
			if l := c.lf.Nodes[c.lf.Leader()]; l != nil && l.Consensus().TransferLeadership() == nil {
				n++
			}
		}
	}()
	ls, err := c.load(ctx, 20000, 50, cfg.Concurrency)
	close(stop)
	t.Logf("%d leadership transfers; load: %+v", <-moved, ls)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.waitSize(ctx, 1+400, time.Minute); err != nil {
		t.Fatal(err)
	}
	id, _, err := c.leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.status(ctx, id); err != nil || st.GetLedgerSize() != 1+400 {
		t.Fatalf("ledger size %d (%v), want the genesis and 400 contributions", st.GetLedgerSize(), err)
	}
}
