package federation

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Import formats.
const (
	FormatCSV   = "csv"
	FormatJSONL = "jsonl"
)

// ReadSignals reads a file of signals in one of two layouts and returns them
// with canonical values, in file order.
//
// CSV needs a header row. Either one signal per row, with columns
// type (or signal_type), value (or signal_value) and optionally labels (or
// tags) holding labels separated by spaces, ';' or '|'; or one column per
// signal type (md5, sha1, sha256, pdq, photodna) with optional
// classification and labels columns, every non-empty hash cell becoming a
// signal that carries the row's labels.
//
// JSON lines: one object per line, {"type": "md5", "value": "...",
// "labels": ["A1"]} (signal_type, signal_value and tags are accepted too).
//
// The error names the line and what is wrong with it. An exact duplicate
// (same type and value) is an error too: a contribution adds each signal once.
func ReadSignals(r io.Reader, format string) ([]*hashfedv1.Signal, error) {
	var (
		sigs []*hashfedv1.Signal
		err  error
	)
	switch format {
	case FormatCSV:
		sigs, err = readCSV(r)
	case FormatJSONL:
		sigs, err = readJSONL(r)
	default:
		return nil, fmt.Errorf("unknown format %q (want csv or jsonl)", format)
	}
	if err != nil {
		return nil, err
	}
	if len(sigs) == 0 {
		return nil, errors.New("the file holds no signals")
	}
	return sigs, nil
}

// FormatOf guesses a format from a file name: .jsonl/.ndjson/.json are JSON lines, anything else CSV.
func FormatOf(name string) string {
	for _, ext := range []string{".jsonl", ".ndjson", ".json"} {
		if strings.HasSuffix(strings.ToLower(name), ext) {
			return FormatJSONL
		}
	}
	return FormatCSV
}

// collector canonicalises and de-duplicates signals as they are read.
type collector struct {
	seen map[string]int
	out  []*hashfedv1.Signal
}

func (c *collector) add(line int, typ, value string, labels []string) error {
	t, err := ParseSignalType(typ)
	if err != nil {
		return fmt.Errorf("line %d: %w", line, err)
	}
	v, err := CanonicalValue(t, value)
	if err != nil {
		return fmt.Errorf("line %d: %w", line, err)
	}
	labels = slices.Compact(slices.Sorted(slices.Values(labels)))
	s := &hashfedv1.Signal{Type: t.Proto(), Value: v, Labels: labels}
	if err := ValidateSignal(s); err != nil {
		return fmt.Errorf("line %d: %w", line, err)
	}
	if c.seen == nil {
		c.seen = map[string]int{}
	}
	k := string(t) + ":" + v
	if prev, ok := c.seen[k]; ok {
		return fmt.Errorf("line %d: %s signal %s duplicates line %d", line, t, short(v), prev)
	}
	c.seen[k] = line
	c.out = append(c.out, s)
	return nil
}

func splitLabels(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ';' || r == '|' || r == '\t' })
}

func readCSV(r io.Reader) ([]*hashfedv1.Signal, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("the CSV file is empty: want a header row")
	}
	if err != nil {
		return nil, fmt.Errorf("line 1: %w", err)
	}
	// ReuseRecord: the header slice is overwritten by the next Read, so keep
	// normalised copies of the names.
	names := make([]string, len(header))
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		names[i] = h
		if _, dup := col[h]; dup {
			return nil, fmt.Errorf("line 1: column %q appears twice", h)
		}
		col[h] = i
	}
	pick := func(names ...string) int {
		for _, n := range names {
			if i, ok := col[n]; ok {
				return i
			}
		}
		return -1
	}
	typeCol, valueCol := pick("type", "signal_type"), pick("value", "signal_value")
	labelCol, classCol := pick("labels", "tags"), pick("classification", "category")
	var hashCols []int
	for _, t := range SignalTypes {
		if i, ok := col[string(t)]; ok {
			hashCols = append(hashCols, i)
		}
	}
	perRow := typeCol >= 0 && valueCol >= 0
	if !perRow && len(hashCols) == 0 {
		return nil, fmt.Errorf("line 1: header %q has neither type and value columns nor any of the columns md5, sha1, sha256, pdq, photodna", strings.Join(names, ","))
	}
	cell := func(rec []string, i int) string {
		if i < 0 || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	var c collector
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err // a *csv.ParseError names the line
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		labels := splitLabels(cell(rec, labelCol))
		if cl := cell(rec, classCol); cl != "" {
			labels = append(labels, cl)
		}
		if perRow {
			if err := c.add(line, cell(rec, typeCol), cell(rec, valueCol), labels); err != nil {
				return nil, err
			}
			continue
		}
		n := 0
		for _, i := range hashCols {
			if v := cell(rec, i); v != "" {
				if err := c.add(line, names[i], v, labels); err != nil {
					return nil, err
				}
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("line %d: no hash in any of the hash columns", line)
		}
	}
	return c.out, nil
}

type jsonSignal struct {
	Type        string   `json:"type"`
	SignalType  string   `json:"signal_type"`
	Value       string   `json:"value"`
	SignalValue string   `json:"signal_value"`
	Labels      []string `json:"labels"`
	Tags        []string `json:"tags"`
}

func readJSONL(r io.Reader) ([]*hashfedv1.Signal, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var c collector
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var js jsonSignal
		if err := dec.Decode(&js); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if dec.More() || len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
			return nil, fmt.Errorf("line %d: more than one JSON value on the line (want one object per line)", line)
		}
		typ, val := js.Type, js.Value
		if typ == "" {
			typ = js.SignalType
		}
		if val == "" {
			val = js.SignalValue
		}
		if err := c.add(line, typ, val, append(js.Labels, js.Tags...)); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return c.out, nil
}
