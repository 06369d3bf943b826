package federation

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Export layouts: each is one [ReadSignals] reads back.
const (
	// ExportHMA is CSV with the header signal_type,signal_value,tags (tags
	// separated by spaces), the layout of HMA-style exports.
	ExportHMA = "hma"
	// ExportNCMEC is CSV with one column per signal type plus
	// classification (an industry class: A1, A2, B1 or B2) and labels (the
	// other labels), one signal per row.
	ExportNCMEC = "ncmec"
	// ExportJSONL is one {"type","value","labels"} object per line.
	ExportJSONL = "jsonl"
)

// ExportFormats lists the export layouts.
var ExportFormats = []string{ExportHMA, ExportNCMEC, ExportJSONL}

// industryClasses are the labels the NCMEC-style layout puts in its
// classification column.
var industryClasses = []string{"A1", "A2", "B1", "B2"}

// A SignalWriter writes signals in one export layout.
type SignalWriter struct {
	format string
	bw     *bufio.Writer
	cw     *csv.Writer
	enc    *json.Encoder
	n      int
}

// NewSignalWriter starts an export in format (see [ExportFormats]) to w,
// writing the header row for the CSV layouts.
func NewSignalWriter(w io.Writer, format string) (*SignalWriter, error) {
	sw := &SignalWriter{format: format, bw: bufio.NewWriterSize(w, 1<<16)}
	switch format {
	case ExportHMA:
		sw.cw = csv.NewWriter(sw.bw)
		sw.cw.Write([]string{"signal_type", "signal_value", "tags"})
	case ExportNCMEC:
		sw.cw = csv.NewWriter(sw.bw)
		sw.cw.Write(append(typeNames(), "classification", "labels"))
	case ExportJSONL:
		sw.enc = json.NewEncoder(sw.bw)
	default:
		return nil, fmt.Errorf("unknown export format %q (want one of %s)", format, strings.Join(ExportFormats, ", "))
	}
	return sw, nil
}

func typeNames() []string {
	var out []string
	for _, t := range SignalTypes {
		out = append(out, string(t))
	}
	return out
}

// Write writes one signal. The CSV layouts cannot carry a label holding
// white space, ';' or '|' (see [csvLabel]); for such a label Write writes
// nothing and returns an error naming the jsonl layout, which can.
func (w *SignalWriter) Write(t SignalType, value string, labels []string) error {
	if w.format != ExportJSONL {
		for _, l := range labels {
			if !csvLabel(l) {
				return fmt.Errorf("%s signal %s has label %q, which holds white space, ';' or '|': the %s layout separates labels with those, so export as %s", t, short(value), short(l), w.format, ExportJSONL)
			}
		}
	}
	w.n++
	switch w.format {
	case ExportHMA:
		return w.cw.Write([]string{string(t), value, strings.Join(labels, " ")})
	case ExportNCMEC:
		row := make([]string, len(SignalTypes)+2)
		row[slices.Index(SignalTypes, t)] = value
		// The classification column holds one class; any other labels
		// (a second class too) go to the labels column.
		var class string
		var other []string
		for _, l := range labels {
			if class == "" && slices.Contains(industryClasses, l) {
				class = l
			} else {
				other = append(other, l)
			}
		}
		row[len(SignalTypes)] = class
		row[len(SignalTypes)+1] = strings.Join(other, " ")
		return w.cw.Write(row)
	default:
		return w.enc.Encode(struct {
			Type   string   `json:"type"`
			Value  string   `json:"value"`
			Labels []string `json:"labels,omitempty"`
		}{string(t), value, labels})
	}
}

// csvLabel reports whether the CSV layouts carry label l unchanged:
// [SignalReader] splits a label cell at spaces, tabs, ';' and '|' and trims
// white space around cells and labels, so a label with any of those would
// read back as other labels.
func csvLabel(l string) bool {
	return !strings.ContainsAny(l, " \t;|") && strings.TrimSpace(l) == l
}

// Count returns the number of signals written.
func (w *SignalWriter) Count() int { return w.n }

// Close flushes what is buffered.
func (w *SignalWriter) Close() error {
	if w.cw != nil {
		w.cw.Flush()
		if err := w.cw.Error(); err != nil {
			return err
		}
	}
	return w.bw.Flush()
}
