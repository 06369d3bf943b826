package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/federation"
)

// TestCLIMirror keeps a mirror with `subscribe --out DIR` across two runs
// (adds, then a retraction and a relabel), checks status, and exports the
// set in every layout: each export reads back as exactly the set's current
// signals with their current labels.
func TestCLIMirror(t *testing.T) {
	f := startImportFed(t)
	dir := f.dir
	var csv strings.Builder
	csv.WriteString("md5,classification,labels\n")
	var want []string
	for i := range 30 {
		fmt.Fprintf(&csv, "%s,A1,batch\n", md5N(i))
	}
	writeFile(t, filepath.Join(dir, "add.csv"), csv.String())
	run(t, dir, f.env("ngo"), f.publishArgs("ngo", "add.csv", "--batch", "8", "--receipt-dir", "", "--progress", "none")...)

	mirror := filepath.Join(dir, "techco-mirror")
	stdout, stderr, err := runSplit(dir, f.env("techco"), "subscribe", "--out", mirror, "--set", "ngo/csam")
	if err != nil {
		t.Fatalf("subscribe --out: %v\n%s", err, stderr)
	}
	if stdout != "" || !strings.Contains(stderr, "verified against a cosigned checkpoint") {
		t.Errorf("subscribe --out: stdout %q (want nothing without --jsonl), stderr:\n%s", stdout, stderr)
	}

	// Retract five, relabel five, then resume the mirror where it stopped.
	var retract, relabel strings.Builder
	retract.WriteString("md5\n")
	relabel.WriteString("md5,classification\n")
	for i := range 5 {
		fmt.Fprintf(&retract, "%s\n", md5N(i))
		fmt.Fprintf(&relabel, "%s,B2\n", md5N(10+i))
	}
	writeFile(t, filepath.Join(dir, "retract.csv"), retract.String())
	writeFile(t, filepath.Join(dir, "relabel.csv"), relabel.String())
	run(t, dir, f.env("ngo"), f.publishArgs("ngo", "retract.csv", "--retract", "--reason", "not abuse", "--receipt-dir", "", "--progress", "none")...)
	run(t, dir, f.env("ngo"), f.publishArgs("ngo", "relabel.csv", "--relabel", "--receipt-dir", "", "--progress", "none")...)
	run(t, dir, f.env("techco"), "subscribe", "--out", mirror, "--jsonl", filepath.Join(dir, "second.jsonl"))
	second := readLines(t, filepath.Join(dir, "second.jsonl"))
	if len(second) != 10 || second[0].Op != federation.OpRetract || second[9].Op != federation.OpRelabel {
		t.Errorf("the resumed run printed %d lines (%+v), want the 5 tombstones and 5 relabels only", len(second), second)
	}
	for i := 5; i < 30; i++ {
		labels := "A1 batch"
		if i >= 10 && i < 15 {
			labels = "B2"
		}
		want = append(want, md5N(i)+" "+labels)
	}
	slices.Sort(want)

	status := run(t, dir, nil, "mirror", "status", "--dir", mirror)
	if !strings.Contains(status, "ngo/csam") || !strings.Contains(status, "25 signals") || !strings.Contains(status, "verified against a cosigned checkpoint") {
		t.Errorf("mirror status:\n%s", status)
	}
	for _, format := range federation.ExportFormats {
		path := filepath.Join(dir, "export."+format)
		run(t, dir, nil, "mirror", "export", "--dir", mirror, "--set", "ngo/csam", "--format", format, "--out", path)
		r, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		in := federation.FormatCSV
		if format == federation.ExportJSONL {
			in = federation.FormatJSONL
		}
		sigs, err := federation.ReadSignals(r, in)
		r.Close()
		if err != nil {
			t.Fatalf("reading back the %s export: %v", format, err)
		}
		var got []string
		for _, s := range sigs {
			got = append(got, s.Value+" "+strings.Join(s.Labels, " "))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s export holds %v\nwant %v", format, got, want)
		}
	}

	// A mirror refuses to change what it mirrors, and to mix in filters.
	if out, err := runErr(dir, f.env("techco"), "subscribe", "--out", mirror, "--set", "ngo/other"); err == nil || !strings.Contains(out, "mirrors sets") {
		t.Errorf("reopening the mirror for other sets: %v\n%s", err, out)
	}
	if out, err := runErr(dir, f.env("techco"), "subscribe", "--out", mirror, "--type", "md5"); err == nil || !strings.Contains(out, "cannot be combined") {
		t.Errorf("--out with --type: %v\n%s", err, out)
	}
}
