package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// subscribeLine is one line of `hashfed subscribe` output.
type subscribeLine struct {
	Index   int64    `json:"index"`
	Set     string   `json:"set"`
	Org     string   `json:"org"`
	Seq     uint64   `json:"sequence"`
	Op      string   `json:"op"`
	Type    string   `json:"type"`
	Value   string   `json:"value"`
	Labels  []string `json:"labels"`
	Reason  string   `json:"reason"`
	Verdict string   `json:"verdict"`
}

// readLines decodes `hashfed subscribe` output, refusing unknown fields.
func readLines(t *testing.T, path string) []subscribeLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []subscribeLine
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	for dec.More() {
		var l subscribeLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, b)
		}
		out = append(out, l)
	}
	return out
}

// waitCursor waits until the cursor file holds at least want.
func waitCursor(t *testing.T, path string, want int64, stderr func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if got, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor file %s holds %q, want %d; subscriber said:\n%s", path, b, want, stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockedBuffer collects a process's output; String is safe while it runs.
type lockedBuffer struct {
	mu chan struct{}
	b  bytes.Buffer
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{mu: make(chan struct{}, 1)} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu <- struct{}{}
	defer func() { <-b.mu }()
	return b.b.String()
}

// commit publishes contrib through c until it is committed. A publish
// whose outcome is unknown (Unavailable or DeadlineExceeded: an election, a
// leadership lost while committing) is sent again, as a publisher does:
// the sequence number makes a repeat of a committed one AlreadyExists.
func commit(ctx context.Context, c *client.Client, contrib *hashfedv1.Contribution) error {
	for retried := false; ; retried = true {
		_, err := c.Publisher.Publish(ctx, &hashfedv1.PublishRequest{Contribution: contrib})
		switch code := status.Code(err); {
		case err == nil, retried && code == codes.AlreadyExists:
			return nil
		case (code == codes.Unavailable || code == codes.DeadlineExceeded) && ctx.Err() == nil:
			time.Sleep(50 * time.Millisecond)
		default:
			return err
		}
	}
}

// TestSubscribeFollowFailover runs `hashfed subscribe --follow --node A,B
// --cursor-file F` against a three-node federation, stops node A while the
// NGO keeps publishing through B, and checks that the output holds every
// signal exactly once, in ledger order, the retraction among them as
// tombstones.
func TestSubscribeFollowFailover(t *testing.T) {
	skipShort(t, "runs a three-node federation and the hashfed binary")
	dir := t.TempDir()
	opts := localfed.DemoOptions(dir)
	opts.CheckpointInterval = 50 * time.Millisecond
	opts.Raft = node.RaftConfig{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotInterval:   time.Minute,
		SnapshotThreshold:  8192,
		TrailingLogs:       1024,
	}
	f, err := localfed.Create(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := f.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// B leads and takes the contributions; A is a follower that stops.
	b := f.Leader()
	var a string
	addr := map[string]string{}
	for _, nf := range f.Files {
		addr[nf.ID] = nf.APIAddress
		if nf.ID != b && a == "" {
			a = nf.ID
		}
	}
	tech := f.Orgs["techco"]
	env := []string{"HASHFED_GENESIS=" + f.Genesis, "HASHFED_CERT=" + tech.ClientCert, "HASHFED_KEY=" + tech.ClientKey, "HASHFED_NODE="}

	cmd := exec.Command(hashfedBin, "subscribe", "--follow", "--cursor-file", "techco.cursor", "--jsonl", "techco.jsonl", "--node", addr[a]+","+addr[b])
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stderr := newLockedBuffer()
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	pub, err := f.Client("ngo", b)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	s, err := f.Signer("ngo")
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	var want []subscribeLine
	all := localfed.SampleSignals(2 * n)
	for seq := 1; seq <= n; seq++ {
		sigs := all[2*(seq-1):][:2]
		contrib, _, err := federation.BuildContribution(s, opts.Federation, localfed.DemoSet, uint64(seq), sigs, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := commit(ctx, pub, contrib); err != nil {
			t.Fatalf("publishing contribution %d: %v", seq, err)
		}
		for _, sig := range sigs {
			ty, _ := federation.SignalTypeFromProto(sig.Type)
			want = append(want, subscribeLine{Index: int64(seq), Set: localfed.DemoSet, Org: "ngo", Seq: uint64(seq), Op: federation.OpAdd, Type: string(ty), Value: sig.Value, Labels: sig.Labels})
		}
		if seq == n/3 {
			// The subscriber is mid-stream on A: stop A, and go on
			// publishing while it moves to B.
			waitCursor(t, filepath.Join(dir, "techco.cursor"), 5, stderr.String)
			if err := f.StopNode(a); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A retraction arrives as tombstones, with its reason.
	retracted := []*hashfedv1.Signal{{Type: all[0].Type, Value: all[0].Value}}
	const reason = "duplicate of a signal in another set"
	const seq = n + 1
	contrib, _, err := federation.BuildChange(s, opts.Federation, localfed.DemoSet, seq, federation.Change{Op: federation.OpRetract, Signals: retracted, Reason: reason}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := commit(ctx, pub, contrib); err != nil {
		t.Fatalf("publishing the retraction: %v", err)
	}
	// The genesis is entry 0 and nothing else is published: contribution i
	// is entry i.
	const last = seq
	ty, _ := federation.SignalTypeFromProto(all[0].Type)
	want = append(want, subscribeLine{Index: last, Set: localfed.DemoSet, Org: "ngo", Seq: seq, Op: federation.OpRetract, Type: string(ty), Value: all[0].Value, Reason: reason})

	waitCursor(t, filepath.Join(dir, "techco.cursor"), last+1, stderr.String)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := <-exited; err != nil {
		t.Fatalf("hashfed subscribe exited with %v after SIGTERM:\n%s", err, stderr.String())
	}
	exited <- nil // for the cleanup
	out := stderr.String()
	if !strings.Contains(out, "resuming on another node") || !strings.Contains(out, "failed="+addr[a]) || !strings.Contains(out, "next="+addr[b]) {
		t.Errorf("the subscriber did not say it moved from %s to %s:\n%s", addr[a], addr[b], out)
	}
	if !strings.Contains(out, fmt.Sprintf("read %d entries (%d signals); next entry %d", last+1, len(want), last+1)) {
		t.Errorf("the subscriber's summary:\n%s", out)
	}
	got := readLines(t, filepath.Join(dir, "techco.jsonl"))
	if !slices.EqualFunc(got, want, func(x, y subscribeLine) bool {
		return x.Index == y.Index && x.Set == y.Set && x.Org == y.Org && x.Seq == y.Seq && x.Op == y.Op && x.Type == y.Type &&
			x.Value == y.Value && slices.Equal(x.Labels, y.Labels) && x.Reason == y.Reason && x.Verdict == y.Verdict
	}) {
		t.Fatalf("the subscriber wrote %d lines, want the %d published, once each and in order:\ngot  %+v\nwant %+v", len(got), len(want), got, want)
	}

	// A catch-up through a repeated --node, the first one down, with
	// filters: md5 values only, labels A1; the retraction passes the label
	// filter.
	catchUp := run(t, dir, env, "subscribe", "--from", "1", "--jsonl", "filtered.jsonl", "--node", addr[a], "--node", addr[b], "--type", "md5,sha1", "--type", "pdq", "--label", "A1")
	if !strings.Contains(catchUp, "resuming on another node") {
		t.Errorf("the catch-up did not move off the stopped node:\n%s", catchUp)
	}
	var wantFiltered []subscribeLine
	for _, l := range want {
		if (l.Type == "md5" || l.Type == "sha1" || l.Type == "pdq") && (l.Op == federation.OpRetract || slices.Contains(l.Labels, "A1")) {
			wantFiltered = append(wantFiltered, l)
		}
	}
	filtered := readLines(t, filepath.Join(dir, "filtered.jsonl"))
	if len(filtered) != len(wantFiltered) || len(filtered) == 0 || filtered[len(filtered)-1].Op != federation.OpRetract {
		t.Fatalf("filtered catch-up wrote %+v, want %+v", filtered, wantFiltered)
	}
	for i := range filtered {
		if filtered[i].Index != wantFiltered[i].Index || filtered[i].Value != wantFiltered[i].Value {
			t.Errorf("filtered line %d: %+v, want %+v", i, filtered[i], wantFiltered[i])
		}
	}

	// A cursor past the end is refused, saying what to do; so is a bad type.
	if out, err := runErr(dir, env, "subscribe", "--from", "999", "--node", addr[b]); err == nil || !strings.Contains(out, "OutOfRange") || !strings.Contains(out, fmt.Sprintf("resume from a cursor of at most %d", last+1)) {
		t.Errorf("subscribing past the end: err %v\n%s", err, out)
	}
	if out, err := runErr(dir, env, "subscribe", "--type", "md6", "--node", addr[b]); err == nil || !strings.Contains(out, `unknown signal type "md6"`) {
		t.Errorf("subscribing to type md6: err %v\n%s", err, out)
	}
}
