package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
)

const mirrorUsage = `mirror <subcommand> [flags]

Read a local mirror kept by 'hashfed subscribe --out DIR', without a node.

subcommands:
  status --dir DIR                         entries held, the checkpoint verified, and
                                           each mirrored set's signal count
  export --dir DIR --set SET [--format hma|ncmec|jsonl] [--out FILE]
                                           the set's current signals (added and not
                                           retracted, with current labels) in a layout
                                           'hashfed publish' reads back`

func runMirror(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: hashfed "+mirrorUsage)
		if len(args) == 0 {
			return exitError{2, "missing subcommand"}
		}
		return nil
	}
	switch args[0] {
	case "status":
		return mirrorStatus(args[1:])
	case "export":
		return mirrorExport(args[1:])
	default:
		return exitError{2, fmt.Sprintf("unknown subcommand %q\nusage: hashfed %s", args[0], mirrorUsage)}
	}
}

func mirrorStatus(args []string) error {
	fs := newFlags("mirror status", "mirror status --dir DIR")
	dir := fs.String("dir", "", "the mirror's directory (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return exitError{2, "--dir is required"}
	}
	m, err := client.OpenMirrorDir(*dir)
	if err != nil {
		return err
	}
	defer m.Close()
	st := m.State()
	_, verified := st.LatestCheckpoint()
	fmt.Printf("mirror %s of federation %q: %d entries, verified against a cosigned checkpoint up to entry %d\n", *dir, st.Genesis().Federation, m.Cursor(), verified)
	reg := st.Registry()
	for _, set := range m.ReadSets() {
		n, err := st.SetCount(set)
		if err != nil {
			return err
		}
		fmt.Printf("  %-30s %d signals (types %v)\n", set, n, reg.Sets[set].Types)
	}
	return nil
}

func mirrorExport(args []string) error {
	fs := newFlags("mirror export", "mirror export --dir DIR --set SET [--format hma|ncmec|jsonl] [--out FILE]")
	dir := fs.String("dir", "", "the mirror's directory (required)")
	set := fs.String("set", "", "the set to export (required)")
	format := fs.String("format", federation.ExportHMA, "layout: "+strings.Join(federation.ExportFormats, ", "))
	out := fs.String("out", "-", "output file; - for standard output")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" || *set == "" {
		return exitError{2, "--dir and --set are required"}
	}
	m, err := client.OpenMirrorDir(*dir)
	if err != nil {
		return err
	}
	defer m.Close()
	var w io.Writer = os.Stdout
	if *out != "-" {
		f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	n, err := m.Export(w, *set, *format)
	if err != nil {
		return err
	}
	_, verified := m.State().LatestCheckpoint()
	fmt.Fprintf(os.Stderr, "exported %d signals of %s as of entry %d (verified up to entry %d)\n", n, *set, m.Cursor(), verified)
	return nil
}
