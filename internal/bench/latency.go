package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
)

// A LatencyResult is publish-to-delivery latency with many subscribers
// following the ledger.
type LatencyResult struct {
	Subscribers  int     `json:"subscribers"`
	Publishers   int     `json:"publishers"`
	Size         int     `json:"signals_per_contribution"`
	TargetRate   float64 `json:"target_contributions_per_sec"`
	AchievedRate float64 `json:"achieved_contributions_per_sec"`
	Seconds      float64 `json:"seconds"`
	Published    int     `json:"published"`
	Deliveries   int     `json:"deliveries"`
	// Missing counts (contribution, subscriber) pairs never delivered.
	Missing int `json:"missing"`
	// Retries counts publishes sent again after a leader change;
	// Rejections, publishes wrongly rejected as out of sequence.
	Retries    int `json:"retries"`
	Rejections int `json:"rejections,omitempty"`
	// CPUSeconds is the CPU time the nodes, publishers and subscribers used
	// while publishing and delivering; OtherCPUSeconds what every other
	// process on the machine used meanwhile.
	CPUSeconds      float64 `json:"cpu_seconds"`
	OtherCPUSeconds float64 `json:"other_cpu_seconds"`
	// Delivery is from the publisher calling Publish to a subscriber's
	// callback receiving the verified entry, over every subscriber and
	// contribution.
	Delivery Dist `json:"delivery"`
	// Commit is from calling Publish to its return.
	Commit Dist `json:"commit"`
}

// RunLatency starts a federation in dir with cfg.LatencySubscribers
// subscribers following it, and measures how long published contributions
// take to reach each of them.
func RunLatency(ctx context.Context, cfg *Config, dir string) (*LatencyResult, error) {
	total := max(1, int(math.Round(cfg.LatencyRate*cfg.LatencyDuration.Seconds())))
	pubs := min(cfg.Concurrency, total)
	cfg.progress("latency: starting a federation (%s)", nodesWhere(cfg.Processes))
	c, err := startCluster(ctx, cfg, dir, pubs, cfg.Processes)
	if err != nil {
		return nil, err
	}
	defer c.close()
	pb, err := build(c.sets, IngestSpec{Size: cfg.LatencySize, Contributions: total}, pubs)
	if err != nil {
		return nil, err
	}
	cfg.progress("latency: %d subscribers", cfg.LatencySubscribers)
	return c.latency(ctx, pb, cfg.LatencySubscribers, cfg.LatencyRate)
}

type contribKey struct {
	set string
	seq uint64
}

// A follower is one subscriber of the latency run.
type follower struct {
	lat     []time.Duration // written by its Subscribe callback only
	reached atomic.Int64    // last index received
	done    chan struct{}
	err     error // set before done is closed
}

// latency starts subs subscribers, publishes pb's warm-up contributions and
// waits until every subscriber has them, then publishes pb's work at rate
// contributions per second in all and measures each delivery.
func (c *cluster) latency(ctx context.Context, pb *prebuilt, subs int, rate float64) (*LatencyResult, error) {
	var starts sync.Map // contribKey -> time.Time, set just before Publish is called
	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	ids := c.nodeIDs()
	followers := make([]*follower, subs)
	for i := range followers {
		cl, err := c.dial(subscriberOrg, ids[i%len(ids)])
		if err != nil {
			return nil, err
		}
		f := &follower{done: make(chan struct{})}
		f.reached.Store(-1)
		followers[i] = f
		go func() {
			defer close(f.done)
			defer cl.Close()
			err := cl.Subscribe(subCtx, 0, nil, func(u *client.Update) error {
				if st := u.Statement; st != nil {
					if t, ok := starts.Load(contribKey{st.Set, st.Sequence}); ok {
						f.lat = append(f.lat, time.Since(t.(time.Time)))
					}
				}
				f.reached.Store(u.Index)
				return nil
			})
			if subCtx.Err() == nil {
				f.err = fmt.Errorf("subscriber %d stopped: %w", i, err)
				if err == nil {
					f.err = fmt.Errorf("subscriber %d stopped", i)
				}
			}
		}()
	}
	stopAll := func() {
		cancelSubs()
		for _, f := range followers {
			if f != nil {
				<-f.done
			}
		}
	}
	defer stopAll()

	pubConns := make([]*pubConn, len(pb.work))
	for i := range pubConns {
		var err error
		if pubConns[i], err = c.newPubConn(ctx); err != nil {
			return nil, err
		}
		defer pubConns[i].close()
	}
	var maxIndex atomic.Int64
	observe := func(index int64) {
		for {
			cur := maxIndex.Load()
			if index <= cur || maxIndex.CompareAndSwap(cur, index) {
				return
			}
		}
	}
	if err := parallel(ctx, len(pb.warm), func(ctx context.Context, i int) error {
		res, err := pubConns[i].publish(ctx, pb.warm[i])
		if res != nil {
			observe(res.GetIndex())
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("warming up: %w", err)
	}
	if err := waitFollowers(ctx, followers, maxIndex.Load(), 2*time.Minute); err != nil {
		return nil, fmt.Errorf("waiting for every subscriber to receive the warm-up contributions: %w", err)
	}

	keys := make([][]contribKey, len(pb.work))
	for p, cts := range pb.work {
		for _, ct := range cts {
			st, err := federation.PeekStatement(ct.GetEnvelope())
			if err != nil {
				return nil, err
			}
			keys[p] = append(keys[p], contribKey{st.Set, st.Sequence})
		}
	}
	pubs := len(pb.work)
	// Each publisher publishes at rate/pubs, the publishers evenly out of
	// phase; one that falls behind publishes at once and the achieved rate
	// drops below the target.
	interval := time.Duration(float64(pubs) / rate * float64(time.Second))
	commit := make([][]time.Duration, pubs)
	firstStart, lastStart := make([]time.Time, pubs), make([]time.Time, pubs)
	meter := startCPU(c.cpu)
	begin := time.Now()
	err := parallel(ctx, pubs, func(ctx context.Context, p int) error {
		next := begin.Add(time.Duration(p) * interval / time.Duration(pubs))
		for i, ct := range pb.work[p] {
			if d := time.Until(next); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
			t := time.Now()
			next = next.Add(interval)
			if next.Before(t) {
				next = t
			}
			starts.Store(keys[p][i], t)
			if i == 0 {
				firstStart[p] = t
			}
			lastStart[p] = t
			res, err := pubConns[p].publish(ctx, ct)
			if err != nil {
				return err
			}
			commit[p] = append(commit[p], time.Since(t))
			if res != nil {
				observe(res.GetIndex())
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	published := pb.contributions
	first, last := firstStart[0], lastStart[0]
	for p := range pubs {
		if firstStart[p].Before(first) {
			first = firstStart[p]
		}
		if lastStart[p].After(last) {
			last = lastStart[p]
		}
	}
	// A contribution committed by a retried attempt returned no index: the
	// leader's ledger size covers it.
	if id, _, err := c.leader(ctx); err == nil {
		if st, err := c.status(ctx, id); err == nil {
			observe(st.GetLedgerSize() - 1)
		}
	}
	waitErr := waitFollowers(ctx, followers, maxIndex.Load(), 2*time.Minute)
	elapsed := time.Since(begin)
	cpu, others := meter.stop()
	stopAll()
	var all, commits []time.Duration
	for _, f := range followers {
		all = append(all, f.lat...)
	}
	for _, l := range commit {
		commits = append(commits, l...)
	}
	retries, rejections := 0, 0
	for _, p := range pubConns {
		retries += p.retries
		rejections += p.rejections
	}
	res := &LatencyResult{
		Subscribers: subs, Publishers: pubs, Size: pb.size, TargetRate: rate,
		Seconds: elapsed.Seconds(), Published: published, Deliveries: len(all),
		Missing: published*subs - len(all),
		Retries: retries, Rejections: rejections,
		CPUSeconds: cpu, OtherCPUSeconds: others,
		Delivery: distOf(all), Commit: distOf(commits),
	}
	if published > 1 && last.After(first) {
		res.AchievedRate = float64(published-1) / last.Sub(first).Seconds()
	}
	if waitErr != nil {
		return res, waitErr
	}
	return res, nil
}

// waitFollowers waits until every follower has received entry index.
func waitFollowers(ctx context.Context, fs []*follower, index int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		behind := 0
		for _, f := range fs {
			select {
			case <-f.done:
				if f.err != nil {
					return f.err
				}
				return errors.New("a subscriber stopped")
			default:
			}
			if f.reached.Load() < index {
				behind++
			}
		}
		if behind == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d subscribers have not received entry %d: %w", behind, len(fs), index, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
