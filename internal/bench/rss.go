package bench

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/hashfed/hashfed/client"
)

// A NodeMemory is one node process's memory, from /proc/<pid>/status, and
// the size of its data directory.
type NodeMemory struct {
	ID   string `json:"id"`
	Role string `json:"role"`
	// VmRSS is the resident set: RssAnon (heap, stacks) + RssFile (mapped
	// files, e.g. the BoltDB log's mmap) + RssShmem.
	VmRSS    int64 `json:"vm_rss_bytes"`
	RssAnon  int64 `json:"rss_anon_bytes"`
	RssFile  int64 `json:"rss_file_bytes"`
	RssShmem int64 `json:"rss_shmem_bytes"`
	// VmHWM is the peak resident set since the process started.
	VmHWM     int64 `json:"vm_hwm_bytes"`
	DiskBytes int64 `json:"data_dir_bytes"`
}

// An RSSResult is the memory of node processes holding a large ledger.
type RSSResult struct {
	Signals           int     `json:"signals"`
	Contributions     int     `json:"contributions"`
	Size              int     `json:"signals_per_contribution"`
	Concurrency       int     `json:"concurrency"`
	LoadSeconds       float64 `json:"load_seconds"`
	LoadSignalsPerSec float64 `json:"load_signals_per_sec"`
	SettleSeconds     float64 `json:"settle_seconds"`
	// Retries and Rejections of the load (see [IngestResult]).
	Retries    int `json:"retries"`
	Rejections int `json:"rejections,omitempty"`
	// Nodes are read after the load, once every node holds the whole
	// ledger and has idled for SettleSeconds.
	Nodes []NodeMemory `json:"nodes"`
	// Restarted is a follower read again after a restart, once it serves
	// the whole ledger and has idled for SettleSeconds; RestartSeconds is
	// from starting its process to its serving the whole ledger.
	Restarted      *NodeMemory `json:"restarted,omitempty"`
	RestartSeconds float64     `json:"restart_seconds,omitempty"`
}

// RunRSS starts a federation of node processes in dir, loads
// cfg.RSSSignals into it, reads each node's memory, then restarts a
// follower and reads its memory again.
func RunRSS(ctx context.Context, cfg *Config, dir string) (*RSSResult, error) {
	cfg.progress("rss: starting three node processes")
	c, err := startCluster(ctx, cfg, dir, cfg.Concurrency, true)
	if err != nil {
		return nil, err
	}
	defer c.close()
	cfg.progress("rss: loading %d signals in contributions of %d", cfg.RSSSignals, cfg.RSSSize)
	ls, err := c.load(ctx, cfg.RSSSignals, cfg.RSSSize, cfg.Concurrency)
	if err != nil {
		return nil, err
	}
	res := &RSSResult{
		Signals: ls.signals, Contributions: ls.contributions, Size: cfg.RSSSize,
		Concurrency: min(cfg.Concurrency, ls.contributions),
		LoadSeconds: ls.seconds, LoadSignalsPerSec: float64(ls.signals) / ls.seconds,
		SettleSeconds: cfg.RSSSettle.Seconds(),
		Retries:       ls.retries, Rejections: ls.rejections,
	}
	cfg.progress("rss: loaded in %.1f s (%.0f signals/s); waiting for every node to hold all %d entries", ls.seconds, res.LoadSignalsPerSec, ls.size)
	if err := c.waitSize(ctx, ls.size, 30*time.Minute); err != nil {
		return res, err
	}
	if err := sleep(ctx, cfg.RSSSettle); err != nil {
		return res, err
	}
	follower := ""
	for _, id := range c.nodeIDs() {
		m, err := c.memory(ctx, id)
		if err != nil {
			return res, err
		}
		res.Nodes = append(res.Nodes, m)
		if follower == "" && m.Role == "Follower" {
			follower = id
		}
	}
	if follower == "" {
		return res, fmt.Errorf("no follower to restart")
	}

	cfg.progress("rss: restarting %s", follower)
	p := c.procs[follower]
	if err := p.stop(); err != nil {
		return res, err
	}
	c.admin[follower].Close()
	start := time.Now()
	if err := p.start(); err != nil {
		return res, err
	}
	// A fresh connection per poll: a client that saw the node down backs
	// off for seconds before redialling.
	for {
		st, err := freshStatus(ctx, c, follower)
		if err == nil && st >= ls.size {
			break
		}
		if err := p.exited(); err != nil {
			return res, err
		}
		if time.Since(start) > 30*time.Minute {
			return res, fmt.Errorf("restarted %s did not serve %d entries within 30 minutes", follower, ls.size)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return res, err
		}
	}
	res.RestartSeconds = time.Since(start).Seconds()
	if c.admin[follower], err = c.dial(publisherOrg, follower); err != nil {
		return res, err
	}
	if err := sleep(ctx, cfg.RSSSettle); err != nil {
		return res, err
	}
	m, err := c.memory(ctx, follower)
	if err != nil {
		return res, err
	}
	res.Restarted = &m
	return res, nil
}

// freshStatus returns node id's ledger size, asked over a new connection.
func freshStatus(ctx context.Context, c *cluster, id string) (int64, error) {
	cl, err := c.dial(publisherOrg, id)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	st, err := cl.Status(ctx)
	if err != nil {
		return 0, client.Explain(err)
	}
	return st.GetLedgerSize(), nil
}

// memory reads node id's process memory, role and data directory size.
func (c *cluster) memory(ctx context.Context, id string) (NodeMemory, error) {
	m := NodeMemory{ID: id}
	st, err := c.status(ctx, id)
	if err != nil {
		return m, err
	}
	m.Role = st.GetState()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.procs[id].pid()))
	if err != nil {
		return m, fmt.Errorf("reading node %s's memory: %w", id, err)
	}
	for name, dst := range map[string]*int64{"VmRSS": &m.VmRSS, "RssAnon": &m.RssAnon, "RssFile": &m.RssFile, "RssShmem": &m.RssShmem, "VmHWM": &m.VmHWM} {
		kb, _ := procField(b, name)
		*dst = kb * 1024
	}
	for _, nf := range c.lf.Files {
		if nf.ID == id {
			m.DiskBytes = dirSize(nf.NodeConfig().DataDir)
		}
	}
	return m, nil
}

// dirSize returns the bytes of the files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
