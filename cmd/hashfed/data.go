package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

func runPublish(args []string) error {
	fs := newFlags("publish", "publish --set ORG/LIST --signing-key FILE --file signals.csv [client flags]")
	cf := addClientFlags(fs)
	set := fs.String("set", "", "the hash set to add to, owned by your org (required)")
	keyPath := fs.String("signing-key", "", "your org's statement-signing private key (required)")
	file := fs.String("file", "", "CSV or JSON-lines file of signals; - for standard input (required)")
	format := fs.String("format", "", "csv or jsonl (default: from the file name)")
	receiptDir := fs.String("receipt-dir", ".", "where to write the contribution's inclusion receipt, <org>_<list>_<sequence>.tlog-proof; empty: don't wait for one")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *set == "" || *keyPath == "" || *file == "" {
		return exitError{2, "--set, --signing-key and --file are required"}
	}
	var r io.Reader = os.Stdin
	if *file != "-" {
		f, err := os.Open(*file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if *format == "" {
		*format = federation.FormatOf(*file)
	}
	signals, err := federation.ReadSignals(r, *format)
	if err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	signer, err := federation.LoadSigner(c.Identity().Org, *keyPath)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := c.Publish(ctx, signer, *set, signals, time.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return err
	}
	fmt.Printf("committed %d signals to %s as sequence %d: ledger entry %d (ledger size %d)\n",
		res.Statement.Count, *set, res.Statement.Sequence, res.Index, res.TreeSize)
	if *receiptDir == "" {
		return nil
	}
	receipt, info, err := c.Receipt(ctx, res.Index)
	if err != nil {
		return fmt.Errorf("the contribution is committed, but its receipt is not available yet (run 'hashfed publish' with the same file again later only if it did not commit; fetch the receipt with grpcurl LedgerService/GetReceipt index %d): %w", res.Index, err)
	}
	name := fmt.Sprintf("%s_%s_%d.tlog-proof", res.Statement.Org, strings.ReplaceAll(strings.TrimPrefix(*set, res.Statement.Org+"/"), "/", "_"), res.Statement.Sequence)
	path := filepath.Join(*receiptDir, name)
	if err := writeNew(path, receipt, 0o644); err != nil {
		return err
	}
	fmt.Printf("receipt %s: entry %d under a checkpoint of size %d cosigned by %s (check it offline: hashfed verify-receipt %s)\n",
		path, info.Index, info.Checkpoint.Size, strings.Join(info.SignedBy, ", "), path)
	return nil
}

// subscribedSignal is one line of `hashfed subscribe` output.
type subscribedSignal struct {
	Index  int64    `json:"index"`
	Set    string   `json:"set"`
	Org    string   `json:"org"`
	Seq    uint64   `json:"sequence"`
	Type   string   `json:"type"`
	Value  string   `json:"value"`
	Labels []string `json:"labels,omitempty"`
}

func runSubscribe(args []string) error {
	fs := newFlags("subscribe", "subscribe [--from N | --cursor-file FILE] [--set S ...] [--follow] [--out FILE] [client flags]")
	cf := addClientFlags(fs)
	from := fs.Int64("from", -1, "first ledger entry to read (default: the cursor file's, else 0)")
	cursorFile := fs.String("cursor-file", "", "file holding the next entry to read; updated after every entry, so a rerun resumes exactly")
	var sets repeated
	fs.Var(&sets, "set", "only this set's values (repeatable; default: every set your org reads)")
	follow := fs.Bool("follow", false, "keep streaming new entries (default: stop at the ledger's end as of start)")
	out := fs.String("out", "-", "append signals as JSON lines to this file; - for standard output")
	if err := parse(fs, args); err != nil {
		return err
	}
	cursor := int64(0)
	if *cursorFile != "" {
		if b, err := os.ReadFile(*cursorFile); err == nil {
			if cursor, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil || cursor < 0 {
				return fmt.Errorf("cursor file %s does not hold an entry number", *cursorFile)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if *from >= 0 {
		cursor = *from
	}
	var w io.Writer = os.Stdout
	if *out != "-" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	enc := json.NewEncoder(bw)

	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	subscribe := c.CatchUp
	if *follow {
		subscribe = c.Subscribe
	}
	var entries, signals int64
	err = subscribe(ctx, cursor, sets, func(u *client.Update) error {
		for _, s := range u.Signals {
			t, _ := federation.SignalTypeFromProto(s.Type)
			if err := enc.Encode(subscribedSignal{Index: u.Index, Set: u.Statement.Set, Org: u.Statement.Org, Seq: u.Statement.Sequence, Type: string(t), Value: s.Value, Labels: s.Labels}); err != nil {
				return err
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
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
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
