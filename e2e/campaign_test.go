//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/chaos"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// skipNoDocker is the exact message of the skip without a Docker engine;
// CI looks for it to refuse a silent skip.
const skipNoDocker = "e2e: skipped: no usable Docker engine (docker info failed)"

// defaultFaults is how many faults a run injects unless HASHFED_E2E_FAULTS
// says otherwise: seven rounds of the eight kinds.
const defaultFaults = 56

// Timeouts of the campaign's phases.
const (
	startTimeout    = 3 * time.Minute // the federation forms, platform-1 joins
	healTimeout     = 90 * time.Second
	convergeTimeout = 3 * time.Minute // after the faults: same ledger and checkpoint everywhere
	linearTimeout   = 10 * time.Minute
	// reserve is the time kept for the final checks: no fault is injected
	// once the test's deadline is closer.
	reserve = 10 * time.Minute
)

// TestContainerFaultCampaign runs the container fault campaign; see the
// package documentation and docs/FAULTS.md.
func TestContainerFaultCampaign(t *testing.T) {
	if err := dockerAvailable(); err != nil {
		t.Logf("docker: %v", err)
		t.Skip(skipNoDocker)
	}
	seed := rand.Uint64()
	if s := os.Getenv("HASHFED_E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("HASHFED_E2E_SEED=%q: %v", s, err)
		}
		seed = v
	}
	nfaults := defaultFaults
	if s := os.Getenv("HASHFED_E2E_FAULTS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			t.Fatalf("HASHFED_E2E_FAULTS=%q: want a number of faults", s)
		}
		nfaults = v
	}

	art, keepArtifacts := os.Getenv("HASHFED_E2E_ARTIFACTS"), true
	if art == "" {
		var err error
		if art, err = os.MkdirTemp("", "hashfed-e2e-"); err != nil {
			t.Fatal(err)
		}
		keepArtifacts = false
	}
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("seed %d (replay: HASHFED_E2E_SEED=%d), %d faults; artifacts in %s", seed, seed, nfaults, art)
	if err := os.WriteFile(filepath.Join(art, "seed"), fmt.Appendf(nil, "%d\n", seed), 0o644); err != nil {
		t.Fatal(err)
	}
	faultFile, err := os.Create(filepath.Join(art, "faults.log"))
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: the files close after everything else.
	t.Cleanup(func() { faultFile.Close() })
	flog := &faultLog{start: time.Now(), w: faultFile, logf: t.Logf}
	subLog, err := os.Create(filepath.Join(art, "subscribers.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { subLog.Close() })

	rec := chaos.NewRecorder()
	var (
		linMu     sync.Mutex
		linInfo   porcupine.LinearizationInfo
		linDone   bool
		summaryMu sync.Mutex
		summary   strings.Builder
	)
	report := func(format string, args ...any) {
		summaryMu.Lock()
		defer summaryMu.Unlock()
		line := fmt.Sprintf(format, args...)
		summary.WriteString(line + "\n")
		t.Log(line)
	}
	// errorf and fatalf fail the test and put the failure in the summary.
	errorf := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		summaryMu.Lock()
		summary.WriteString("FAIL: " + msg + "\n")
		summaryMu.Unlock()
		t.Error(msg)
	}
	fatalf := func(format string, args ...any) {
		t.Helper()
		errorf(format, args...)
		t.FailNow()
	}
	// Registered before the cluster, so it runs after the cluster's cleanup
	// has saved the container logs: it writes the history and decides
	// whether the artifacts stay.
	t.Cleanup(func() {
		if !t.Failed() && !keepArtifacts {
			os.RemoveAll(art)
			return
		}
		linMu.Lock()
		if !linDone {
			_, linInfo = chaos.CheckLinearizable(rec, 2*time.Minute)
		}
		info := linInfo
		linMu.Unlock()
		summaryMu.Lock()
		s := fmt.Sprintf("seed %d\nfaults requested %d\nfailed: %v\n\n%s", seed, nfaults, t.Failed(), summary.String())
		summaryMu.Unlock()
		if err := chaos.WriteArtifacts(art, rec, info, s); err != nil {
			t.Errorf("writing artifacts: %v", err)
		}
		t.Logf("artifacts (history, linearizability.html, faults.log, logs/) kept in %s", art)
	})

	begin := time.Now()
	c := newCluster(t, filepath.Join(art, "logs"), func() bool { return t.Failed() || keepArtifacts })
	ctx := context.Background()
	if d, err := c.waitHealthy(ctx, startTimeout); err != nil {
		fatalf("the federation did not form: %v", err)
	} else {
		flog.printf("federation formed: %d nodes healthy after %v", len(c.nodes), d.Round(time.Millisecond))
	}

	// The workload.
	clientsOf := func(org string, first int) []*client.Client {
		var out []*client.Client
		for i := range c.nodes {
			out = append(out, c.nodes[(first+i)%len(c.nodes)].clients[org])
		}
		return out
	}
	var pubs []*publisher
	for i, set := range sets {
		org, _, _ := strings.Cut(set, "/")
		signer, err := federation.LoadSigner(org, c.signingKey(org))
		if err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, &publisher{id: i, set: set, signer: signer, clients: clientsOf(org, i), rec: rec, failures: map[string]int{}})
	}
	readers := []*reader{
		{id: len(pubs), clients: clientsOf("auditor", 1), rec: rec},
		{id: len(pubs) + 1, clients: clientsOf("auditor", 4), rec: rec},
	}
	slogger := slog.New(slog.NewTextHandler(subLog, nil))
	subs := []*subscriber{
		newSubscriber("techco", clientsOf("techco", 3), slogger.With("subscriber", "techco")),
		newSubscriber("platform", clientsOf("platform", 5), slogger.With("subscriber", "platform")),
	}

	stopPublishing := make(chan struct{})
	readCtx, stopReading := context.WithCancel(ctx)
	subCtx, stopSubscribing := context.WithCancel(ctx)
	var pubWG, readWG, subWG sync.WaitGroup
	// Whatever happens, stop the workload before the cluster goes.
	t.Cleanup(func() {
		select {
		case <-stopPublishing:
		default:
			close(stopPublishing)
		}
		stopReading()
		stopSubscribing()
		pubWG.Wait()
		readWG.Wait()
		subWG.Wait()
	})
	pubCtx, cancelPublishing := context.WithCancel(ctx)
	defer cancelPublishing()
	for _, p := range pubs {
		pubWG.Go(func() {
			if err := p.run(pubCtx, stopPublishing); err != nil {
				errorf("publisher of %s: %v", p.set, err)
			}
		})
	}
	for _, r := range readers {
		readWG.Go(func() { r.run(readCtx) })
	}
	for _, s := range subs {
		subWG.Go(func() { s.run(subCtx) })
	}
	time.Sleep(5 * time.Second)

	// The faults.
	plan := schedule(seed, nfaults)
	injected := map[faultKind]int{}
	total := 0
	var maxHeal time.Duration
	faultsStart := time.Now()
	for i, f := range plan {
		if dl, ok := t.Deadline(); ok && time.Until(dl) < reserve {
			flog.printf("stopping after %d faults: the test deadline is %v away", total, time.Until(dl).Round(time.Second))
			errorf("only %d of %d faults injected before the test deadline came close", total, len(plan))
			break
		}
		flog.printf("fault %d/%d: %s", i+1, len(plan), f.kind)
		_, err := c.inject(ctx, f, flog, rec.Fault)
		if err != nil {
			flog.printf("fault %d (%s) went partly wrong: %v", i+1, f.kind, err)
			if herr := c.heal(ctx, flog); herr != nil {
				flog.printf("heal: %v", herr)
			}
		} else {
			injected[f.kind]++
			total++
		}
		d, err := c.waitHealthy(ctx, healTimeout)
		if err != nil {
			// The federation must recover by itself once a fault is healed.
			errorf("after fault %d (%s) the federation did not recover by itself: %v", i+1, f.kind, err)
			flog.printf("after fault %d (%s): %v; healing everything", i+1, f.kind, err)
			if herr := c.heal(ctx, flog); herr != nil {
				flog.printf("heal: %v", herr)
			}
			if d2, err := c.waitHealthy(ctx, healTimeout); err != nil {
				errorf("after fault %d (%s) the federation did not recover: %v", i+1, f.kind, err)
				break
			} else {
				d += d2
			}
		}
		maxHeal = max(maxHeal, d)
		flog.printf("fault %d/%d: healthy again after %v; %s", i+1, len(plan), d.Round(time.Millisecond), progress(pubs, readers, subs))
		time.Sleep(f.quiet)
	}
	faultTime := time.Since(faultsStart)
	flog.printf("faults done: %d injected in %v", total, faultTime.Round(time.Second))

	// Heal, let the workload run a little longer on a healthy federation,
	// then stop it.
	if err := c.heal(ctx, flog); err != nil {
		errorf("final heal: %v", err)
	}
	if _, err := c.waitHealthy(ctx, healTimeout); err != nil {
		errorf("after the faults: %v", err)
	}
	time.Sleep(5 * time.Second)
	close(stopPublishing)
	pubWG.Wait()
	stopReading()
	readWG.Wait()
	flog.printf("workload stopped: %s", progress(pubs, readers, subs))

	for _, line := range c.crashes(ctx) {
		errorf("node crash in the logs: %s", line)
	}
	c.mu.Lock()
	for _, p := range c.problems {
		errorf("%s", p)
	}
	c.mu.Unlock()
	for _, p := range pubs {
		for msg, n := range p.failures {
			// Every contribution is valid and published in order: a refusal
			// means a node lost track of an acknowledged one.
			errorf("publisher of %s: %d attempts refused (Failed): %s", p.set, n, msg)
		}
	}

	// Convergence: every node holds the same ledger and checkpoint.
	size, err := c.converge(ctx, convergeTimeout)
	if err != nil {
		fatalf("the nodes did not converge: %v", err)
	}
	flog.printf("converged: every node holds %d entries under the same checkpoint", size)

	// Subscribers: every entry, once, in order.
	wctx, cancel := context.WithTimeout(ctx, convergeTimeout)
	for _, s := range subs {
		if err := s.waitFor(wctx, size); err != nil {
			errorf("%v", err)
		}
	}
	cancel()
	stopSubscribing()
	subWG.Wait()
	for _, s := range subs {
		for _, p := range s.check(size) {
			errorf("subscriber %s: %s", s.name, p)
		}
	}

	// The final ledger of every node, checked with set semantics, and the
	// same on all.
	var first [][]byte
	var setRes chaos.SetResult
	for _, n := range c.nodes {
		leaves, err := readLeaves(ctx, n.clients["auditor"], size)
		if err != nil {
			errorf("reading the ledger of %s: %v", n.id, err)
			continue
		}
		if first == nil {
			first = leaves
		} else if !slices.EqualFunc(first, leaves, bytes.Equal) {
			errorf("%s holds another ledger than %s", n.id, c.nodes[0].id)
		}
		final := make([]chaos.Contribution, 0, len(leaves)-1)
		for i, l := range leaves[1:] {
			ct, err := contributionOf(l)
			if err != nil {
				errorf("%s: entry %d: %v", n.id, i+1, err)
			}
			final = append(final, ct)
		}
		setRes = chaos.CheckSet(rec, final)
		if !setRes.OK() {
			errorf("set check on %s: %s", n.id, setRes)
		}
	}

	for _, a := range chaos.ReadAnomalies(rec, 20) {
		errorf("read anomaly: %s", a)
	}

	// The audit, over all nodes together and through each one.
	audited := time.Now()
	var auditors []*client.Client
	for _, n := range c.nodes {
		auditors = append(auditors, n.clients["auditor"])
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	rep, err := client.AuditNodes(actx, auditors, client.AuditOptions{Full: true})
	if err != nil {
		errorf("audit of all nodes: %v", err)
	} else if rep.Checkpoint.Size != size {
		errorf("audit of all nodes verified a checkpoint of %d entries, want %d", rep.Checkpoint.Size, size)
	}
	for _, n := range c.nodes {
		if _, err := n.clients["auditor"].Audit(actx, client.AuditOptions{Full: true}); err != nil {
			errorf("audit through %s: %v", n.id, err)
		}
	}
	cancel()
	auditTime := time.Since(audited)

	// Linearizability of the whole history.
	checked := time.Now()
	res, info := chaos.CheckLinearizable(rec, linearTimeout)
	linMu.Lock()
	linInfo, linDone = info, true
	linMu.Unlock()
	if res != porcupine.Ok {
		errorf("the history of publishes and reads is not linearizable: porcupine says %s", res)
	}
	linTime := time.Since(checked)

	// The numbers.
	outcomes, reads, failedReads := rec.Counts()
	report("container campaign: seed %d, %d nodes (%d voters), %d publishers, %d readers, %d subscribers", seed, len(c.nodes), 5, len(pubs), len(readers), len(subs))
	report("faults injected: %d of %d planned in %v (%s); longest recovery %v", total, len(plan), faultTime.Round(time.Second), kindCounts(injected), maxHeal.Round(time.Millisecond))
	report("ledger: %d entries; contributions %s", size, setRes)
	report("publish attempts: ok %d, already-present %d, failed %d, unknown %d; reads: %d ok, %d failed",
		outcomes[chaos.OK], outcomes[chaos.AlreadyPresent], outcomes[chaos.Failed], outcomes[chaos.Unknown], reads, failedReads)
	report("audit %v, linearizability check (%s) %v, whole run %v", auditTime.Round(time.Millisecond), res, linTime.Round(time.Millisecond), time.Since(begin).Round(time.Second))
	if total < nfaults && !t.Failed() {
		errorf("%d faults injected, want %d", total, nfaults)
	}
}

// progress says how far the workload got.
func progress(pubs []*publisher, readers []*reader, subs []*subscriber) string {
	var acked, attempts, reads, failed int64
	for _, p := range pubs {
		acked += p.acked.Load()
		attempts += p.attempts.Load()
	}
	for _, r := range readers {
		reads += r.reads.Load()
		failed += r.failed.Load()
	}
	var s []string
	for _, sub := range subs {
		sub.mu.Lock()
		s = append(s, fmt.Sprintf("%s at %d", sub.name, sub.next))
		sub.mu.Unlock()
	}
	return fmt.Sprintf("%d contributions acknowledged (%d attempts), %d reads (%d failed), subscribers %s", acked, attempts, reads, failed, strings.Join(s, ", "))
}

func kindCounts(m map[faultKind]int) string {
	var s []string
	for _, k := range faultKinds {
		s = append(s, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(s, ", ")
}

// converge waits until every node reports the same ledger size and a
// checkpoint of that size with the same root, and returns the size.
func (c *cluster) converge(ctx context.Context, timeout time.Duration) (int64, error) {
	deadline := time.Now().Add(timeout)
	var why error
	for time.Now().Before(deadline) {
		size, err := c.agreed(ctx)
		if err == nil {
			return size, nil
		}
		why = err
		time.Sleep(500 * time.Millisecond)
	}
	return 0, why
}

func (c *cluster) agreed(ctx context.Context) (int64, error) {
	var size int64 = -1
	var body string
	for _, n := range c.nodes {
		st, err := c.status(ctx, n)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", n.id, err)
		}
		if size >= 0 && st.GetLedgerSize() != size {
			return 0, fmt.Errorf("%s holds %d entries, %s %d", n.id, st.GetLedgerSize(), c.nodes[0].id, size)
		}
		size = st.GetLedgerSize()
		cctx, cancel := context.WithTimeout(ctx, statusTimeout)
		res, err := n.clients["auditor"].Ledger.GetCheckpoint(cctx, &hashfedv1.GetCheckpointRequest{})
		cancel()
		if err != nil {
			return 0, fmt.Errorf("%s: checkpoint: %w", n.id, err)
		}
		b, _, ok := strings.Cut(string(res.GetSignedCheckpoint()), "\n\n")
		if !ok {
			return 0, fmt.Errorf("%s: checkpoint is no signed note", n.id)
		}
		cp, err := ledger.ParseCheckpoint([]byte(b + "\n"))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", n.id, err)
		}
		if cp.Size != size {
			return 0, fmt.Errorf("%s: checkpoint of %d entries, ledger of %d", n.id, cp.Size, size)
		}
		if body != "" && b != body {
			return 0, fmt.Errorf("%s reports checkpoint %q, %s %q", n.id, b, c.nodes[0].id, body)
		}
		body = b
	}
	return size, nil
}

// readLeaves reads entries 0..size-1 through c's node.
func readLeaves(ctx context.Context, c *client.Client, size int64) ([][]byte, error) {
	var out [][]byte
	for start := int64(0); start < size; {
		end := min(start+1000, size)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		res, err := c.Ledger.GetEntries(cctx, &hashfedv1.GetEntriesRequest{Start: start, End: end})
		cancel()
		if err != nil {
			return nil, err
		}
		if len(res.GetEntries()) == 0 {
			return nil, fmt.Errorf("no entries from %d", start)
		}
		out = append(out, res.GetEntries()...)
		start += int64(len(res.GetEntries()))
	}
	return out, nil
}
