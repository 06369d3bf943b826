package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

const setUsage = `set <subcommand> SET [flags]

Query a hash set as it stands now: the signals added and not retracted,
their current labels and the feedback reader orgs gave on them. Values go
only to the set's owner and readers; an auditor org sees each signal's
SHA-256 digest instead of its value; any member may run show.

subcommands:
  show    SET                    the set's owner, types, readers, signal count, the
                                 owner's next sequence number and what your org may see
  list    SET [--min-disputes N] [--format jsonl|csv] [--page-size N]
                                 every current signal, streamed to standard output:
                                 jsonl with labels, ledger indexes and tally, or csv
                                 (signal_type,signal_value,tags) that hashfed publish
                                 reads back
  lookup  SET TYPE VALUE         one signal: its labels and tally; exits 1 if the set
                                 does not hold it

Every subcommand takes the client flags (--node --genesis --cert --key, or
HASHFED_NODE, HASHFED_GENESIS, HASHFED_CERT, HASHFED_KEY).`

func runSet(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: hashfed "+setUsage)
		if len(args) == 0 {
			return exitError{2, "missing subcommand"}
		}
		return nil
	}
	switch args[0] {
	case "show":
		return setShow(args[1:])
	case "list":
		return setList(args[1:])
	case "lookup":
		return setLookup(args[1:])
	default:
		return exitError{2, fmt.Sprintf("unknown subcommand %q\nusage: hashfed %s", args[0], setUsage)}
	}
}

// parsePositional parses flags given before, between or after the
// positional arguments, and returns the positional ones; they must number
// exactly len(names).
func parsePositional(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...) // everything after -- is positional
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) != len(names) {
		fs.Usage()
		return nil, exitError{2, fmt.Sprintf("want %d argument(s), %s; got %d", len(names), strings.Join(names, " "), len(pos))}
	}
	return pos, nil
}

func setShow(args []string) error {
	fs := newFlags("set show", "set show SET [--json] [client flags]")
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the answer as one JSON object")
	pos, err := parsePositional(fs, args, "SET")
	if err != nil {
		return err
	}
	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.GetSet(ctx, pos[0])
	if err != nil {
		return err
	}
	var types []string
	for _, t := range s.GetTypes() {
		st, err := federation.SignalTypeFromProto(t)
		if err != nil {
			return err
		}
		types = append(types, string(st))
	}
	access := map[hashfedv1.SetAccess]string{
		hashfedv1.SetAccess_SET_ACCESS_VALUES:  "values",
		hashfedv1.SetAccess_SET_ACCESS_DIGESTS: "digests",
		hashfedv1.SetAccess_SET_ACCESS_NONE:    "none",
	}[s.GetAccess()]
	if *asJSON {
		return printJSON(os.Stdout, struct {
			Set          string   `json:"set"`
			Owner        string   `json:"owner"`
			Types        []string `json:"types"`
			Readers      []string `json:"readers"`
			Count        int64    `json:"count"`
			NextSequence uint64   `json:"next_sequence"`
			Access       string   `json:"access"`
		}{s.GetSet(), s.GetOwner(), types, orEmpty(s.GetReaders()), s.GetCount(), s.GetNextSequence(), access})
	}
	readers := strings.Join(s.GetReaders(), ", ")
	if readers == "" {
		readers = "(none: only the owner)"
	}
	explain := map[string]string{
		"values":  "your org owns or reads the set: list and lookup show values",
		"digests": "your org audits: list and lookup show each value's SHA-256, labels and tally, never the value",
		"none":    fmt.Sprintf("your org may not list the set's signals; ask org %s to have it added as a reader (a set-readers governance act)", s.GetOwner()),
	}[access]
	fmt.Printf("set            %s\nowner          %s\ntypes          %s\nreaders        %s\nsignals        %d\nnext sequence  %d\nyour access    %s (%s)\n",
		s.GetSet(), s.GetOwner(), strings.Join(types, ", "), readers, s.GetCount(), s.GetNextSequence(), access, explain)
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// A signalJSON is one line of `hashfed set list --format jsonl` and the
// answer of `hashfed set lookup --json`.
type signalJSON struct {
	Type        string           `json:"type"`
	Value       string           `json:"value,omitempty"`
	ValueSHA256 string           `json:"value_sha256,omitempty"`
	Labels      []string         `json:"labels"`
	AddedAt     int64            `json:"added_at"`
	ChangedAt   int64            `json:"changed_at"`
	Tally       federation.Tally `json:"tally"`
}

func toJSON(s *hashfedv1.SetSignal) (signalJSON, error) {
	t, err := federation.SignalTypeFromProto(s.GetType())
	if err != nil {
		return signalJSON{}, err
	}
	return signalJSON{
		Type: string(t), Value: s.GetValue(), ValueSHA256: s.GetValueSha256(), Labels: orEmpty(s.GetLabels()),
		AddedAt: s.GetAddedAt(), ChangedAt: s.GetChangedAt(),
		Tally: federation.Tally{
			TruePositive:  s.GetTally().GetTruePositive(),
			FalsePositive: s.GetTally().GetFalsePositive(),
			Disputed:      s.GetTally().GetDisputed(),
		},
	}, nil
}

func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func setList(args []string) error {
	fs := newFlags("set list", "set list SET [--min-disputes N] [--format jsonl|csv] [--page-size N] [client flags]")
	cf := addClientFlags(fs)
	minDisputes := fs.Int64("min-disputes", 0, "list only signals at least N orgs dispute (their latest feedback is false_positive or disputed)")
	format := fs.String("format", "jsonl", "jsonl: one object per signal with labels, ledger indexes and tally; csv: signal_type,signal_value,tags, which hashfed publish reads back")
	pageSize := fs.Int("page-size", 0, "signals per call to the node (default 1000, at most 10000)")
	pos, err := parsePositional(fs, args, "SET")
	if err != nil {
		return err
	}
	if *format != federation.FormatJSONL && *format != federation.FormatCSV {
		return exitError{2, fmt.Sprintf("--format %q: want jsonl or csv", *format)}
	}
	if *minDisputes < 0 {
		return exitError{2, fmt.Sprintf("--min-disputes %d: want 0 (every signal) or more", *minDisputes)}
	}
	if *pageSize < 0 || *pageSize > 10000 {
		return exitError{2, fmt.Sprintf("--page-size %d: want 1 to 10000, or 0 for the node's default", *pageSize)}
	}
	set := pos[0]
	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	out := bufio.NewWriterSize(os.Stdout, 64<<10)
	cw := csv.NewWriter(out)
	header := false
	n := 0
	err = c.ListSignals(ctx, set, client.ListOptions{MinDisputes: *minDisputes, PageSize: int32(*pageSize)}, func(s *hashfedv1.SetSignal) error {
		n++
		if *format == federation.FormatJSONL {
			js, err := toJSON(s)
			if err != nil {
				return err
			}
			return printJSON(out, js)
		}
		t, err := federation.SignalTypeFromProto(s.GetType())
		if err != nil {
			return err
		}
		// An auditor's listing has digests, not values: its CSV says so
		// in the header rather than pass for a re-importable list.
		if !header {
			if err := cw.Write([]string{"signal_type", valueColumn(s), "tags"}); err != nil {
				return err
			}
			header = true
		}
		value := s.GetValue()
		if value == "" {
			value = s.GetValueSha256()
		}
		if err := cw.Write([]string{string(t), value, strings.Join(s.GetLabels(), " ")}); err != nil {
			return err
		}
		cw.Flush()
		return cw.Error()
	})
	if err == nil && *format == federation.FormatCSV && !header {
		// An empty listing is still a well-formed file.
		cw.Write([]string{"signal_type", "signal_value", "tags"})
		cw.Flush()
		err = cw.Error()
	}
	if ferr := out.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("writing standard output: %w", ferr)
	}
	if err != nil {
		return err
	}
	what := "signals"
	if *minDisputes > 0 {
		what = fmt.Sprintf("signals with at least %d dispute(s)", *minDisputes)
	}
	fmt.Fprintf(os.Stderr, "listed %d %s of %s\n", n, what, set)
	return nil
}

func valueColumn(s *hashfedv1.SetSignal) string {
	if s.GetValue() == "" && s.GetValueSha256() != "" {
		return "signal_value_sha256"
	}
	return "signal_value"
}

func setLookup(args []string) error {
	fs := newFlags("set lookup", "set lookup SET TYPE VALUE [--json] [client flags]")
	cf := addClientFlags(fs)
	asJSON := fs.Bool("json", false, "print the signal as one JSON object (nothing when it is not found)")
	pos, err := parsePositional(fs, args, "SET", "TYPE", "VALUE")
	if err != nil {
		return err
	}
	set := pos[0]
	t, err := federation.ParseSignalType(pos[1])
	if err != nil {
		return exitError{2, err.Error()}
	}
	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.LookupSignal(ctx, set, t, pos[2])
	if err != nil {
		return err
	}
	if s == nil {
		return exitError{1, fmt.Sprintf("set %s does not hold %s signal %s", set, t, strings.TrimSpace(pos[2]))}
	}
	js, err := toJSON(s)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(os.Stdout, js)
	}
	value := js.Value
	if value == "" {
		value = "(withheld) sha256 " + js.ValueSHA256
	}
	labels := strings.Join(js.Labels, " ")
	if labels == "" {
		labels = "(none)"
	}
	fmt.Printf("found          %s %s in %s\nlabels         %s\nadded          at ledger entry %d\nlast changed   at ledger entry %d\ntally          %d true_positive, %d false_positive, %d disputed (%d dispute(s))\n",
		js.Type, value, set, labels, js.AddedAt, js.ChangedAt, js.Tally.TruePositive, js.Tally.FalsePositive, js.Tally.Disputed, js.Tally.Disputes())
	return nil
}
