package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/client"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Systems measured by the ingest runs.
const (
	SystemHashfed = "hashfed"
	SystemRaft    = "raft"
)

// An IngestResult is one ingest run: contributions published (hashfed) or
// their Raft commands applied (raft) by Concurrency publishers at once.
type IngestResult struct {
	System        string `json:"system"`
	Size          int    `json:"signals_per_contribution"`
	Contributions int    `json:"contributions"`
	Signals       int    `json:"signals"`
	Concurrency   int    `json:"concurrency"`
	// CommandBytes is the mean size of the serialized Raft command.
	CommandBytes        int     `json:"command_bytes"`
	Seconds             float64 `json:"seconds"`
	ContributionsPerSec float64 `json:"contributions_per_sec"`
	SignalsPerSec       float64 `json:"signals_per_sec"`
	// MBPerSec is command bytes committed per second (10^6 bytes).
	MBPerSec float64 `json:"mb_per_sec"`
	// CPUSeconds is the CPU time the nodes and the publishers used during
	// the run (user and system, every process of the federation).
	CPUSeconds float64 `json:"cpu_seconds"`
	// OtherCPUSeconds is the CPU time every other process on the machine
	// used meanwhile.
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`
	// Commit is the time from calling Publish (or Apply) to its return.
	Commit Dist `json:"commit"`
	// BuildSignalsPerSec is how fast the client built and signed the
	// contributions beforehand, on one core; not part of Seconds.
	BuildSignalsPerSec float64 `json:"build_signals_per_sec,omitempty"`
	// Retries counts contributions sent again because an error (a leader
	// change) left their outcome unknown; their time is in the figures.
	Retries int `json:"retries"`
	// Rejections counts contributions a leader wrongly rejected as out of
	// sequence just after a leader change, and accepted when sent again.
	Rejections int `json:"rejections,omitempty"`
	// OverheadPct (hashfed only) is how much longer hashfed took per signal
	// than bare Raft at the same size: raft rate / hashfed rate - 1, in %.
	OverheadPct *float64 `json:"overhead_pct,omitempty"`
}

// RunIngest starts a federation in dir and runs cfg.Ingest against it, in
// order, the contributions built and signed ahead of time.
func RunIngest(ctx context.Context, cfg *Config, dir string) ([]IngestResult, error) {
	cfg.progress("ingest: starting a federation (%s)", nodesWhere(cfg.Processes))
	c, err := startCluster(ctx, cfg, dir, cfg.Concurrency, cfg.Processes)
	if err != nil {
		return nil, err
	}
	defer c.close()
	var out []IngestResult
	for _, spec := range cfg.Ingest {
		r, err := c.ingest(ctx, spec, cfg.Concurrency)
		if err != nil {
			return out, err
		}
		cfg.progress("ingest: %d × %d signals: %.0f signals/s, %.1f contributions/s", r.Contributions, r.Size, r.SignalsPerSec, r.ContributionsPerSec)
		out = append(out, r)
	}
	return out, nil
}

func nodesWhere(processes bool) string {
	if processes {
		return "three node processes"
	}
	return "three nodes in this process"
}

// prebuilt is the contributions of one ingest run, built and signed: one
// warm-up contribution per publisher, then each publisher's measured ones.
type prebuilt struct {
	size          int
	warm          []*hashfedv1.Contribution
	work          [][]*hashfedv1.Contribution
	contributions int
	commandBytes  int
	buildSignalsS float64
}

// build builds the contributions for spec with conc publishers (at most one
// per contribution), publisher p writing to sets[p].
func build(sets []*setWriter, spec IngestSpec, conc int) (*prebuilt, error) {
	p := &prebuilt{size: spec.Size, contributions: spec.Contributions}
	n := min(conc, spec.Contributions, len(sets))
	p.work = make([][]*hashfedv1.Contribution, n)
	for i := range n {
		ct, err := sets[i].next(spec.Size)
		if err != nil {
			return nil, err
		}
		p.warm = append(p.warm, ct)
	}
	start := time.Now()
	var bytes int
	for i := range spec.Contributions {
		ct, err := sets[i%n].next(spec.Size)
		if err != nil {
			return nil, err
		}
		p.work[i%n] = append(p.work[i%n], ct)
		bytes += proto.Size(&hashfedv1.Command{TimeUnixNano: time.Now().UnixNano(), Op: &hashfedv1.Command_Contribution{Contribution: ct}})
	}
	p.buildSignalsS = float64(spec.Contributions*spec.Size) / time.Since(start).Seconds()
	p.commandBytes = bytes / spec.Contributions
	return p, nil
}

// ingest builds spec's contributions and publishes them.
func (c *cluster) ingest(ctx context.Context, spec IngestSpec, conc int) (IngestResult, error) {
	pb, err := build(c.sets, spec, conc)
	if err != nil {
		return IngestResult{}, err
	}
	return c.publishAll(ctx, pb)
}

// publishAll publishes each publisher's warm-up contribution, then measures
// publishing the rest through the leader, each publisher one at a time.
func (c *cluster) publishAll(ctx context.Context, pb *prebuilt) (IngestResult, error) {
	pubs := make([]*pubConn, len(pb.work))
	for i := range pubs {
		var err error
		if pubs[i], err = c.newPubConn(ctx); err != nil {
			return IngestResult{}, err
		}
		defer pubs[i].close()
	}
	if err := parallel(ctx, len(pb.warm), func(ctx context.Context, i int) error {
		_, err := pubs[i].publish(ctx, pb.warm[i])
		return err
	}); err != nil {
		return IngestResult{}, fmt.Errorf("warming up: %w", err)
	}
	retriesBefore, rejectionsBefore := 0, 0
	for _, p := range pubs {
		retriesBefore += p.retries
		rejectionsBefore += p.rejections
	}
	lat := make([][]time.Duration, len(pb.work))
	meter := startCPU(c.cpu)
	start := time.Now()
	err := parallel(ctx, len(pb.work), func(ctx context.Context, i int) error {
		for _, ct := range pb.work[i] {
			t := time.Now()
			if _, err := pubs[i].publish(ctx, ct); err != nil {
				return err
			}
			lat[i] = append(lat[i], time.Since(t))
		}
		return nil
	})
	elapsed := time.Since(start)
	if err != nil {
		return IngestResult{}, err
	}
	r := newIngestResult(SystemHashfed, pb, elapsed, lat)
	r.CPUSeconds, r.OtherCPUSeconds = meter.stop()
	for _, p := range pubs {
		r.Retries += p.retries
		r.Rejections += p.rejections
	}
	r.Retries -= retriesBefore
	r.Rejections -= rejectionsBefore
	return r, nil
}

func newIngestResult(system string, pb *prebuilt, elapsed time.Duration, lat [][]time.Duration) IngestResult {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	s := elapsed.Seconds()
	return IngestResult{
		System:              system,
		Size:                pb.size,
		Contributions:       pb.contributions,
		Signals:             pb.contributions * pb.size,
		Concurrency:         len(pb.work),
		CommandBytes:        pb.commandBytes,
		Seconds:             s,
		ContributionsPerSec: float64(pb.contributions) / s,
		SignalsPerSec:       float64(pb.contributions*pb.size) / s,
		MBPerSec:            float64(pb.contributions*pb.commandBytes) / s / 1e6,
		Commit:              distOf(all),
		BuildSignalsPerSec:  pb.buildSignalsS,
	}
}

// A pubConn is one publisher's connection to the leader, as the publisher
// org's client. It is not safe for concurrent use.
type pubConn struct {
	c    *cluster
	cl   *client.Client
	node string
	// retries counts publishes sent again after an error left their outcome
	// unknown (a leader change under load); rejections, those sent again
	// after a FailedPrecondition answer (see publish).
	retries, rejections int
}

func (c *cluster) newPubConn(ctx context.Context) (*pubConn, error) {
	id, _, err := c.leader(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := c.dial(publisherOrg, id)
	if err != nil {
		return nil, err
	}
	return &pubConn{c: c, cl: cl, node: id}, nil
}

func (p *pubConn) close() { p.cl.Close() }

// retryFor bounds how long a publish or apply is retried.
const retryFor = 2 * time.Minute

// rejectedFor bounds how long publish retries a contribution the leader
// rejected as out of sequence.
const rejectedFor = 10 * time.Second

// publish submits one signed contribution, as client.Publish does once it
// has signed it. When the node answers Unavailable or DeadlineExceeded (the
// leader changed, say, and the outcome is unknown) it finds the leader and
// sends the contribution again: the sequence number makes that safe, and
// AlreadyExists then means an earlier attempt committed it, and the
// response is nil.
//
// It also sends again, for up to rejectedFor, a contribution rejected with
// FailedPrecondition (a sequence number that "skips ahead"). Every
// contribution before it was acknowledged, so the rejection is wrong; it
// happens just after a leader change, when the new leader checks
// contributions against a state that has not yet applied everything
// committed before, and the same contribution is accepted moments later.
// Such rejections are counted, and reported.
func (p *pubConn) publish(ctx context.Context, ct *hashfedv1.Contribution) (*hashfedv1.PublishResponse, error) {
	deadline := time.Now().Add(retryFor)
	var firstRejected time.Time
	for retried := false; ; retried = true {
		res, err := p.cl.Publisher.Publish(ctx, &hashfedv1.PublishRequest{Contribution: ct})
		if err == nil {
			return res, nil
		}
		code := status.Code(err)
		if retried && code == codes.AlreadyExists {
			return nil, nil
		}
		if code == codes.FailedPrecondition && ctx.Err() == nil {
			if firstRejected.IsZero() {
				firstRejected = time.Now()
			}
			if time.Since(firstRejected) < rejectedFor {
				p.rejections++
				if err := sleep(ctx, 100*time.Millisecond); err != nil {
					return nil, err
				}
				continue
			}
		}
		if ctx.Err() != nil || (code != codes.Unavailable && code != codes.DeadlineExceeded) || time.Now().After(deadline) {
			return nil, fmt.Errorf("publishing: %w", client.Explain(err))
		}
		p.retries++
		if id, _, lerr := p.c.leader(ctx); lerr == nil && id != p.node {
			cl, derr := p.c.dial(publisherOrg, id)
			if derr != nil {
				return nil, derr
			}
			p.cl.Close()
			p.cl, p.node = cl, id
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// parallel runs fn(ctx, 0..n-1) concurrently and returns the first error,
// cancelling the others' ctx when one fails.
func parallel(ctx context.Context, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := range n {
		wg.Go(func() {
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		})
	}
	wg.Wait()
	return first
}

// A loadStats says how a ledger was loaded.
type loadStats struct {
	signals, contributions int
	seconds                float64
	size                   int64 // ledger size after the load
	retries, rejections    int
}

// load publishes total signals in contributions of size through the
// leader, conc publishers at once, each building and signing its next
// contribution while the previous one is in flight. It fills ledgers for
// the catch-up and rss workloads and reports progress every 10 s.
func (c *cluster) load(ctx context.Context, total, size, conc int) (loadStats, error) {
	n := (total + size - 1) / size
	conc = min(conc, n, len(c.sets))
	var done, retries, rejections atomic.Int64
	var maxSize atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	start := time.Now()
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				d := done.Load()
				c.cfg.progress("loading: %d of %d signals, %.0f signals/s", d, total, float64(d)/time.Since(start).Seconds())
			}
		}
	}()
	err := parallel(ctx, conc, func(ctx context.Context, p int) error {
		pc, err := c.newPubConn(ctx)
		if err != nil {
			return err
		}
		defer func() {
			retries.Add(int64(pc.retries))
			rejections.Add(int64(pc.rejections))
			pc.close()
		}()
		type job struct {
			ct      *hashfedv1.Contribution
			signals int
		}
		built := make(chan job, 2)
		errc := make(chan error, 1)
		go func() {
			defer close(built)
			for i := p; i < n; i += conc {
				k := min(size, total-i*size)
				ct, err := c.sets[p].next(k)
				if err != nil {
					errc <- err
					return
				}
				select {
				case built <- job{ct, k}:
				case <-ctx.Done():
					return
				}
			}
		}()
		for j := range built {
			res, err := pc.publish(ctx, j.ct)
			if err != nil {
				return err
			}
			done.Add(int64(j.signals))
			for {
				cur := maxSize.Load()
				if res.GetTreeSize() <= cur || maxSize.CompareAndSwap(cur, res.GetTreeSize()) {
					break
				}
			}
		}
		select {
		case err := <-errc:
			return err
		default:
			return ctx.Err()
		}
	})
	if err != nil {
		return loadStats{}, err
	}
	ls := loadStats{signals: total, contributions: n, seconds: time.Since(start).Seconds(), retries: int(retries.Load()), rejections: int(rejections.Load())}
	// A contribution committed by a retried attempt returned no tree size:
	// ask the leader for the ledger's size.
	ls.size = maxSize.Load()
	if id, _, err := c.leader(ctx); err == nil {
		if st, err := c.status(ctx, id); err == nil {
			ls.size = max(ls.size, st.GetLedgerSize())
		}
	}
	return ls, nil
}
