// Command hashfed runs and uses a hashfed federation: certificates, genesis,
// nodes, publishing, subscribing, auditing, and a demo on loopback.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

type command struct {
	summary string
	run     func(args []string) error
}

var commands = map[string]command{
	"certs":          {"create org CAs, node and client certificates, signing keys", runCerts},
	"genesis":        {"write an org's founder file; assemble the genesis document", runGenesis},
	"node":           {"run a node: hashfed node --config node.yaml; retire a non-voter: hashfed node leave --config node.yaml", runNode},
	"publish":        {"sign and publish a CSV or JSON-lines file of signals (add, retract, relabel), split into contributions, resumable", runPublish},
	"feedback":       {"record your org's verdict (true/false positive, disputed) on signals of a set it reads", runFeedback},
	"subscribe":      {"stream verified ledger entries and signals from a cursor, or keep a verified local mirror (--out DIR)", runSubscribe},
	"mirror":         {"show or export a local mirror kept by subscribe --out", runMirror},
	"audit":          {"verify the ledger: checkpoint signature, every entry's inclusion, every statement's signature", runAudit},
	"status":         {"show a node's view of the cluster", runStatus},
	"gov":            {"governance acts: propose, sign (k of n operator orgs), submit, show the registry", runGov},
	"set":            {"query a set now: show its count, list its signals with labels and feedback tallies, look one up", runSet},
	"verify-receipt": {"verify a contribution's inclusion receipt offline, against the genesis", runVerifyReceipt},
	"demo":           {"start a three-org federation on loopback and walk one update through it", runDemo},
	"bench":          {"measure ingest, catch-up, delivery latency and node memory on a local federation, against bare Raft", runBench},
}

func usage() {
	fmt.Fprintf(os.Stderr, "hashfed: a federation for signed, verifiable hash lists\n\nusage: hashfed <command> [flags]\n\ncommands:\n")
	var names []string
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-15s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'hashfed <command> -h' for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "hashfed: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := cmd.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		var ee exitError
		if errors.As(err, &ee) {
			fmt.Fprintln(os.Stderr, "hashfed "+os.Args[1]+": "+ee.msg)
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "hashfed "+os.Args[1]+": "+err.Error())
		os.Exit(1)
	}
}

// exitError carries an exit status other than 1.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

// newFlags makes a flag set whose errors are returned, not fatal.
func newFlags(name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: hashfed %s\n\nflags:\n", usageLine)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and rejects stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return exitError{2, fmt.Sprintf("unexpected argument %q (flags go before nothing else; see -h)", fs.Arg(0))}
	}
	return nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
