package localfed

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// SampleSignals returns n harmless signals derived from the text "hashfed
// sample <i>", cycling through every signal type, with industry
// classification labels. They stand in for a real hash list in demos and tests.
func SampleSignals(n int) []*hashfedv1.Signal {
	labels := []string{"A1", "A2", "B1", "B2"}
	var out []*hashfedv1.Signal
	for i := range n {
		seed := fmt.Sprintf("hashfed sample %d", i)
		var t federation.SignalType
		var v string
		switch i % 5 {
		case 0:
			s := md5.Sum([]byte(seed))
			t, v = federation.MD5, hex.EncodeToString(s[:])
		case 1:
			s := sha1.Sum([]byte(seed))
			t, v = federation.SHA1, hex.EncodeToString(s[:])
		case 2:
			s := sha256.Sum256([]byte(seed))
			t, v = federation.SHA256, hex.EncodeToString(s[:])
		case 3:
			s := sha256.Sum256([]byte("pdq " + seed))
			t, v = federation.PDQ, hex.EncodeToString(s[:])
		case 4:
			var b []byte
			for j := 0; len(b) < 144; j++ {
				s := sha256.Sum256(fmt.Appendf(nil, "photodna %s %d", seed, j))
				b = append(b, s[:]...)
			}
			t, v = federation.PhotoDNA, base64.StdEncoding.EncodeToString(b[:144])
		}
		out = append(out, &hashfedv1.Signal{Type: t.Proto(), Value: v, Labels: []string{labels[i%len(labels)]}})
	}
	return out
}

// DemoSet is the set the demo publishes into.
const DemoSet = "ngo/csam-demo"

// RunDemo starts the demo federation created from [DemoOptions], walks one
// signed update from the NGO through Raft to the tech firm and the auditor,
// and writes what happened to w. It returns the running federation; the
// caller closes it.
func RunDemo(ctx context.Context, w io.Writer, dir string, log func(f *Federation)) (*Federation, error) {
	f, err := Create(DemoOptions(dir))
	if err != nil {
		return nil, err
	}
	if log != nil {
		log(f)
	}
	fail := func(err error) (*Federation, error) { f.Close(); return nil, err }
	start := time.Now()
	if err := f.Start(); err != nil {
		return fail(err)
	}
	readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := f.WaitReady(readyCtx); err != nil {
		return fail(err)
	}
	fmt.Fprintf(w, "federation  %q: orgs ngo (publisher), techco (subscriber), auditor (auditor); 3 voting nodes on 127.0.0.1, mutual TLS\n", f.Opts.Federation)
	fmt.Fprintf(w, "raft        leader %s elected, genesis recorded as ledger entry 0 (%s)\n", f.Leader(), time.Since(start).Round(time.Millisecond))

	// The NGO publishes through its own node; a follower forwards to the leader.
	ngo, err := f.Client("ngo", "ngo-1")
	if err != nil {
		return fail(err)
	}
	defer ngo.Close()
	signer, err := f.Signer("ngo")
	if err != nil {
		return fail(err)
	}
	signals := SampleSignals(10)
	res, err := ngo.Publish(ctx, signer, DemoSet, signals, time.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return fail(fmt.Errorf("publishing: %w", err))
	}
	fmt.Fprintf(w, "publish     ngo signed %d signals (md5, sha1, sha256, pdq, photodna) for %s, sequence %d: committed as entry %d\n",
		len(signals), DemoSet, res.Statement.Sequence, res.Index)

	// The tech firm reads from its own node, verifying every entry.
	tech, err := f.Client("techco", "techco-1")
	if err != nil {
		return fail(err)
	}
	defer tech.Close()
	var got []*hashfedv1.Signal
	err = tech.Subscribe(ctx, 0, nil, func(u *client.Update) error {
		got = append(got, u.Signals...)
		if u.Index >= res.Index {
			return io.EOF
		}
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("subscribing: %w", err))
	}
	if !sameSignals(got, signals) {
		return fail(fmt.Errorf("subscriber received %d signals that differ from the %d published", len(got), len(signals)))
	}
	fmt.Fprintf(w, "subscribe   techco streamed entries 0..%d from techco-1: %d signals, signature and payload digest verified, identical to those published\n", res.Index, len(got))

	root, err := SameCheckpoint(ctx, f, res.TreeSize)
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(w, "ledger      all 3 nodes hold the same %d entries, root %s\n", res.TreeSize, root)

	// The NGO's receipt: an inclusion proof under a checkpoint cosigned by a
	// majority of voting orgs, verifiable offline against the genesis alone.
	receipt, info, err := ngo.Receipt(ctx, res.Index)
	if err != nil {
		return fail(err)
	}
	receiptPath := filepath.Join(dir, "ngo", fmt.Sprintf("receipt-%d.tlog-proof", res.Index))
	if err := os.WriteFile(receiptPath, receipt, 0o644); err != nil {
		return fail(err)
	}
	fmt.Fprintf(w, "receipt     ngo got an offline-verifiable receipt for entry %d: checkpoint of size %d cosigned by %s\n",
		res.Index, info.Checkpoint.Size, strings.Join(info.SignedBy, ", "))
	// The auditor verifies the ledger from its own node without seeing any value.
	aud, err := f.Client("auditor", "auditor-1")
	if err != nil {
		return fail(err)
	}
	defer aud.Close()
	rep, err := aud.Audit(ctx, client.AuditOptions{}) // a majority of voting orgs must cosign
	if err != nil {
		return fail(err)
	}
	if rep.Checkpoint.Size < res.TreeSize {
		return fail(fmt.Errorf("auditor's checkpoint has size %d, want at least %d", rep.Checkpoint.Size, res.TreeSize))
	}
	fmt.Fprintf(w, "audit       auditor verified the checkpoint cosigned by %s, %d inclusion proof(s) and %d statement signature(s), no hash values seen: OK\n",
		strings.Join(rep.Orgs, ", "), rep.InclusionProofs, rep.Statements)

	return f, nil
}

// SameCheckpoint waits until every running node's ledger has size and checks
// that all of them have the same root.
func SameCheckpoint(ctx context.Context, f *Federation, size int64) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var root string
	for _, nf := range f.Files {
		n := f.Nodes[nf.ID]
		if n == nil {
			continue
		}
		for n.State().Size() < size {
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("node %s holds %d entries, want %d: %w", nf.ID, n.State().Size(), size, ctx.Err())
			case <-n.State().Changed():
			case <-time.After(50 * time.Millisecond):
			}
		}
		cp, err := n.State().Checkpoint()
		if err != nil {
			return "", err
		}
		if cp.Size != size {
			return "", fmt.Errorf("node %s is at size %d, want %d", nf.ID, cp.Size, size)
		}
		if root == "" {
			root = cp.Hash.String()
		} else if cp.Hash.String() != root {
			return "", fmt.Errorf("node %s has root %s at size %d, another node has %s", nf.ID, cp.Hash, size, root)
		}
	}
	return root, nil
}

func sameSignals(a, b []*hashfedv1.Signal) bool {
	return slices.EqualFunc(a, b, func(x, y *hashfedv1.Signal) bool {
		return x.Type == y.Type && x.Value == y.Value && slices.Equal(x.Labels, y.Labels)
	})
}
