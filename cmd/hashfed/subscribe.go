package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
)

// subscribedSignal is one line of `hashfed subscribe` output: one signal of
// one statement.
type subscribedSignal struct {
	Index int64  `json:"index"`
	Set   string `json:"set"`
	Org   string `json:"org"`
	Seq   uint64 `json:"sequence"`
	// Op is the statement's change: "add", "retract" (the line is a
	// tombstone: the signal was taken out of the set), "relabel" (the
	// signal's labels are now Labels) or "feedback".
	Op     string   `json:"op"`
	Type   string   `json:"type"`
	Value  string   `json:"value"`
	Labels []string `json:"labels,omitempty"`
	// Reason is a retraction's reason, or the note of a relabel or feedback.
	Reason string `json:"reason,omitempty"`
	// Verdict is a feedback statement's verdict.
	Verdict string `json:"verdict,omitempty"`
}

// nodesFlag makes --node repeatable: the first --node replaces the default
// (HASHFED_NODE) and each later one adds an address, as a comma-separated
// list in the string clientFlags reads.
type nodesFlag struct {
	list *string
	set  bool
}

func (f *nodesFlag) String() string {
	if f.list == nil {
		return ""
	}
	return *f.list
}

func (f *nodesFlag) Set(v string) error {
	if f.set {
		*f.list += "," + v
	} else {
		*f.list, f.set = v, true
	}
	return nil
}

func runSubscribe(args []string) error {
	fs := newFlags("subscribe", "subscribe [--out DIR | --from N | --cursor-file FILE] [--set S ...] [--type T ...] [--label L ...] [--follow] [--jsonl FILE] [client flags]")
	cf := addClientFlags(fs)
	nodeFlag := fs.Lookup("node")
	nodeFlag.Value = &nodesFlag{list: cf.node}
	nodeFlag.Usage = "node API address `host:port`; several, separated by commas or as repeated --node, to move to the next when one fails (env HASHFED_NODE)"
	from := fs.Int64("from", -1, "first ledger entry to read (default: the cursor file's, else 0)")
	cursorFile := fs.String("cursor-file", "", "file holding the next entry to read; updated after every entry, so a rerun resumes exactly")
	var sets, types, labels repeated
	fs.Var(&sets, "set", "only this set's values (repeatable; default: every set your org reads)")
	fs.Var(&types, "type", "only signals of this type: md5, sha1, sha256, pdq or photodna (repeatable or comma-separated; default: every type)")
	fs.Var(&labels, "label", "only added or relabelled signals carrying this label; retractions and feedback always come (repeatable or comma-separated; default: every label)")
	follow := fs.Bool("follow", false, "keep streaming new entries (default: stop at the ledger's end as of start)")
	jsonl := fs.String("jsonl", "", "append signals as JSON lines to this file; - for standard output (default: standard output, or nothing with --out)")
	out := fs.String("out", "", "keep a verified local mirror in this directory: the ledger and the current state of the sets read, resumed from where it stopped; export it with 'hashfed mirror export'")
	attempts := fs.Int("attempts", 0, "connection attempts in a row that may fail before giving up; an accepted one resets the count (default: 5 per node; -1: never give up)")
	if err := parse(fs, args); err != nil {
		return err
	}
	opts := client.SubscribeOptions{Sets: sets, StopAtEnd: !*follow}
	for _, t := range splitList(strings.Join(types, ",")) {
		st, err := federation.ParseSignalType(t)
		if err != nil {
			return exitError{2, "--type: " + err.Error()}
		}
		opts.Types = append(opts.Types, st)
	}
	opts.Labels = splitList(strings.Join(labels, ","))
	if *out != "" && (len(opts.Types) > 0 || len(opts.Labels) > 0 || *from >= 0 || *cursorFile != "") {
		return exitError{2, "--out keeps whole sets from the mirror's own cursor: it cannot be combined with --type, --label, --from or --cursor-file"}
	}
	if *jsonl == "" && *out == "" {
		*jsonl = "-"
	}

	cursor := int64(0)
	if *cursorFile != "" {
		c, err := loadCursor(*cursorFile)
		if err != nil {
			return err
		}
		cursor = c
	}
	if *from >= 0 {
		cursor = *from
	}
	var w io.Writer = io.Discard
	switch *jsonl {
	case "":
	case "-":
		w = os.Stdout
	default:
		f, err := os.OpenFile(*jsonl, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	enc := json.NewEncoder(bw)

	follower, err := dialNodes(cf)
	if err != nil {
		return err
	}
	defer func() {
		for _, c := range follower.Clients {
			c.Close()
		}
	}()
	follower.Attempts = *attempts
	follower.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))

	var mirror *client.Mirror
	if *out != "" {
		c := follower.Clients[0]
		if mirror, err = client.OpenMirror(*out, c.GenesisDocument(), c.Identity().Org, sets); err != nil {
			return err
		}
		defer mirror.Close()
		cursor = mirror.Cursor()
		opts.Sets = mirror.Sets()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var entries, signals int64
	var lastVerify time.Time
	err = follower.Follow(ctx, cursor, opts, func(u *client.Update) error {
		if mirror != nil {
			if err := mirror.Apply(u.Index, u.Leaf, u.RawPayload); err != nil {
				return fmt.Errorf("mirror %s: %w", *out, err)
			}
			if *follow && time.Since(lastVerify) > 5*time.Second {
				verifyMirror(ctx, mirror, follower.Clients, false)
				lastVerify = time.Now()
			}
		}
		if st := u.Statement; st != nil {
			for _, s := range u.Signals {
				t, _ := federation.SignalTypeFromProto(s.Type)
				line := subscribedSignal{Index: u.Index, Set: st.Set, Org: st.Org, Seq: st.Sequence, Op: st.Op,
					Type: string(t), Value: s.Value, Labels: s.Labels, Reason: u.Reason, Verdict: st.Verdict}
				if err := enc.Encode(line); err != nil {
					return err
				}
			}
		}
		entries++
		signals += int64(len(u.Signals))
		if *cursorFile != "" {
			// Output first, cursor second: a crash between them repeats an
			// entry's lines rather than losing them.
			if err := bw.Flush(); err != nil {
				return err
			}
			if err := saveCursor(*cursorFile, u.Index+1); err != nil {
				return err
			}
		}
		return nil
	})
	bw.Flush()
	fmt.Fprintf(os.Stderr, "read %d entries (%d signals); next entry %d\n", entries, signals, cursor+entries)
	// The entries read verified from another node: a warning, not a failure.
	for _, b := range follower.Bad {
		fmt.Fprintf(os.Stderr, "warning: bad node: %v (the entry was read from another node)\n", b)
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	if mirror != nil && err == nil {
		vctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if verr := verifyMirror(vctx, mirror, follower.Clients, !*follow); verr != nil {
			return verr
		}
	}
	return err
}

// verifyMirror checks the mirror against the latest cosigned checkpoint of
// the first node that gives one. The checkpoint trails the ledger by up to
// one checkpoint interval; entries past it are verified on a later run.
// strict: fail if no node gave one.
func verifyMirror(ctx context.Context, m *client.Mirror, clients []*client.Client, strict bool) error {
	var last error
	for _, c := range clients {
		size, err := m.Verify(ctx, c)
		if err != nil {
			last = err
			continue
		}
		fmt.Fprintf(os.Stderr, "mirror %s: %d entries, verified against a cosigned checkpoint up to entry %d\n", m.Dir(), m.Cursor(), size)
		return nil
	}
	if strict {
		return fmt.Errorf("mirror %s: no node gave a checkpoint to verify it against: %w", m.Dir(), last)
	}
	return nil
}

// dialNodes prepares a client for each node the flags name.
func dialNodes(cf clientFlags) (*client.Follower, error) {
	nodes := splitList(*cf.node)
	if len(nodes) == 0 {
		nodes = []string{""} // Dial explains what is missing
	}
	f := &client.Follower{}
	for _, n := range nodes {
		c, err := client.Dial(client.Config{Node: n, Genesis: *cf.genesis, Cert: *cf.cert, Key: *cf.key})
		if err != nil {
			for _, c := range f.Clients {
				c.Close()
			}
			return nil, err
		}
		f.Clients = append(f.Clients, c)
	}
	return f, nil
}

// loadCursor reads the cursor file at path: the next entry to read, in
// decimal, as [saveCursor] writes it. A missing file means entry 0.
func loadCursor(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	cursor, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || cursor < 0 {
		return 0, fmt.Errorf("cursor file %s does not hold an entry number", path)
	}
	return cursor, nil
}

// saveCursor replaces the cursor file atomically.
func saveCursor(path string, next int64) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cursor-*")
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(tmp, "%d\n", next); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
