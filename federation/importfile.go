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

// Column names a CSV header may use, lowercased. The HMA spellings come from
// python-threatexchange's `threatexchange dataset --csv` export (columns
// collab, signal_type, signal_str, category, tags; tags separated by
// spaces); the per-type hash columns follow the NCMEC hash-sharing
// fingerprint names (md5, sha1, pdna, pdq) with a classification.
var (
	typeColumns  = []string{"type", "signal_type", "hash_type"}
	valueColumns = []string{"value", "signal_value", "signal_str", "signal", "hash_value"}
	labelColumns = []string{"labels", "tags", "label"}
	classColumns = []string{"classification", "category"}
)

// typeAliases maps other names for the signal types, as column headers
// or as type cells (lowercased), to hashfed's: NCMEC calls PhotoDNA "pdna",
// python-threatexchange calls a file MD5 "video_md5", ThreatExchange's
// indicator types are HASH_MD5, HASH_PDQ and so on.
var typeAliases = map[string]SignalType{
	"pdna":           PhotoDNA,
	"photo_dna":      PhotoDNA,
	"hash_photodna":  PhotoDNA,
	"video_md5":      MD5,
	"hash_md5":       MD5,
	"video_hash_md5": MD5,
	"sha-1":          SHA1,
	"hash_sha1":      SHA1,
	"sha-256":        SHA256,
	"hash_sha256":    SHA256,
	"hash_pdq":       PDQ,
}

// parseImportType parses a type name as files write it: hashfed's names or
// one of [typeAliases], case-insensitively.
func parseImportType(s string) (SignalType, error) {
	if t, ok := typeAliases[strings.ToLower(strings.TrimSpace(s))]; ok {
		return t, nil
	}
	return ParseSignalType(s)
}

// A SignalReader reads signals from a file one at a time, so that a file of
// millions of signals is never held in memory. It does not de-duplicate:
// see [ReadSignals] for a reader that does.
//
// CSV needs a header row, whose column names are matched
// case-insensitively. Either one signal per row, with a type column (type,
// signal_type or hash_type), a value column (value, signal_value,
// signal_str, signal or hash_value) and optional labels (labels, tags or
// label, holding labels separated by spaces, ';' or '|') and
// classification (classification or category, one label) columns; or one
// column per signal type (md5, sha1, sha256, pdq, photodna, or pdna for
// PhotoDNA) with optional classification and labels columns, every
// non-empty hash cell becoming a signal that carries the row's labels.
// Other columns (an id, HMA's collab) are ignored. Type cells may also be
// spelled as ThreatExchange does (HASH_MD5, HASH_PDQ, video_md5, ...).
//
// JSON lines: one object per line, {"type": "md5", "value": "...",
// "labels": ["A1"]}; signal_type, signal_value or signal_str, tags and
// classification are accepted too. Blank lines are skipped in both formats.
//
// Every signal returned is valid (see [ValidateSignal]): its value is
// canonical and its labels are sorted and distinct.
type SignalReader struct {
	next func() (*hashfedv1.Signal, int, error)
	err  error // sticky

	// CSV
	cr                 *csv.Reader
	header             bool
	names              []string
	perRow             bool
	typeCol, valueCol  int
	labelCol, classCol int
	hashCols           []int
	hashTypes          []SignalType
	pending            []*hashfedv1.Signal
	pendingLine        int

	// JSON lines
	sc   *bufio.Scanner
	line int
}

// NewSignalReader returns a reader of r in format ([FormatCSV] or
// [FormatJSONL]). It reads nothing until the first call of Next.
func NewSignalReader(r io.Reader, format string) (*SignalReader, error) {
	sr := &SignalReader{}
	switch format {
	case FormatCSV:
		sr.cr = csv.NewReader(r)
		sr.cr.FieldsPerRecord = -1
		sr.cr.TrimLeadingSpace = true
		sr.cr.ReuseRecord = true
		sr.next = sr.nextCSV
	case FormatJSONL:
		sr.sc = bufio.NewScanner(r)
		sr.sc.Buffer(make([]byte, 64<<10), 1<<20)
		sr.next = sr.nextJSONL
	default:
		return nil, fmt.Errorf("unknown format %q (want csv or jsonl)", format)
	}
	return sr, nil
}

// Next returns the next signal and the number of the line it is on. At the
// end of the input it returns io.EOF. Any other error names the line and
// what is wrong with it, and every later call returns it again.
func (sr *SignalReader) Next() (*hashfedv1.Signal, int, error) {
	if sr.err != nil {
		return nil, 0, sr.err
	}
	s, line, err := sr.next()
	if err != nil {
		sr.err = err
		return nil, 0, err
	}
	return s, line, nil
}

// ReadSignals reads a whole file of signals (see [SignalReader] for the
// layouts) and returns them with canonical values, in file order.
//
// The error names the line and what is wrong with it. An exact duplicate
// (same type and value) is an error too: a contribution names each signal
// once. A file with no signals is an error.
func ReadSignals(r io.Reader, format string) ([]*hashfedv1.Signal, error) {
	sr, err := NewSignalReader(r, format)
	if err != nil {
		return nil, err
	}
	seen := map[string]int{}
	var out []*hashfedv1.Signal
	for {
		s, line, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		t, _ := SignalTypeFromProto(s.Type)
		k := string(t) + ":" + s.Value
		if prev, ok := seen[k]; ok {
			return nil, fmt.Errorf("line %d: %s signal %s duplicates line %d", line, t, short(s.Value), prev)
		}
		seen[k] = line
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, errors.New("the file holds no signals")
	}
	return out, nil
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

// newSignal canonicalises one signal read from line.
func newSignal(line int, t SignalType, value string, labels []string) (*hashfedv1.Signal, error) {
	v, err := CanonicalValue(t, value)
	if err != nil {
		return nil, fmt.Errorf("line %d: %w", line, err)
	}
	if len(labels) > 0 {
		labels = slices.Compact(slices.Sorted(slices.Values(labels)))
	}
	s := &hashfedv1.Signal{Type: t.Proto(), Value: v, Labels: labels}
	if err := ValidateSignal(s); err != nil {
		return nil, fmt.Errorf("line %d: %w", line, err)
	}
	return s, nil
}

func splitLabels(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ';' || r == '|' || r == '\t' })
}

func (sr *SignalReader) readHeader() error {
	header, err := sr.cr.Read()
	if err == io.EOF {
		return errors.New("the CSV file is empty: want a header row")
	}
	if err != nil {
		return fmt.Errorf("line 1: %w", err)
	}
	// ReuseRecord: the header slice is overwritten by the next Read, so keep
	// normalised copies of the names.
	sr.names = make([]string, len(header))
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		sr.names[i] = h
		if _, dup := col[h]; dup {
			return fmt.Errorf("line 1: column %q appears twice", h)
		}
		col[h] = i
	}
	pick := func(names []string) int {
		for _, n := range names {
			if i, ok := col[n]; ok {
				return i
			}
		}
		return -1
	}
	sr.typeCol, sr.valueCol = pick(typeColumns), pick(valueColumns)
	sr.labelCol, sr.classCol = pick(labelColumns), pick(classColumns)
	for i, n := range sr.names {
		t, ok := typeAliases[n]
		if !ok && slices.Contains(SignalTypes, SignalType(n)) {
			t, ok = SignalType(n), true
		}
		if ok {
			sr.hashCols = append(sr.hashCols, i)
			sr.hashTypes = append(sr.hashTypes, t)
		}
	}
	sr.perRow = sr.typeCol >= 0 && sr.valueCol >= 0
	if !sr.perRow && len(sr.hashCols) == 0 {
		return fmt.Errorf("line 1: header %q has neither a type and a value column (type or signal_type, and value, signal_value or signal_str) nor any hash column (md5, sha1, sha256, pdq, photodna or pdna)", strings.Join(sr.names, ","))
	}
	return nil
}

func (sr *SignalReader) nextCSV() (*hashfedv1.Signal, int, error) {
	if !sr.header {
		if err := sr.readHeader(); err != nil {
			return nil, 0, err
		}
		sr.header = true
	}
	if len(sr.pending) > 0 {
		s := sr.pending[0]
		sr.pending = sr.pending[1:]
		return s, sr.pendingLine, nil
	}
	cell := func(rec []string, i int) string {
		if i < 0 || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	for {
		rec, err := sr.cr.Read()
		if err != nil {
			return nil, 0, err // io.EOF, or a *csv.ParseError, which names the line
		}
		line, _ := sr.cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		labels := splitLabels(cell(rec, sr.labelCol))
		if cl := cell(rec, sr.classCol); cl != "" {
			labels = append(labels, cl)
		}
		if sr.perRow {
			t, err := parseImportType(cell(rec, sr.typeCol))
			if err != nil {
				return nil, 0, fmt.Errorf("line %d: %w", line, err)
			}
			s, err := newSignal(line, t, cell(rec, sr.valueCol), labels)
			if err != nil {
				return nil, 0, err
			}
			return s, line, nil
		}
		sr.pending = sr.pending[:0]
		for j, i := range sr.hashCols {
			v := cell(rec, i)
			if v == "" {
				continue
			}
			s, err := newSignal(line, sr.hashTypes[j], v, slices.Clone(labels))
			if err != nil {
				return nil, 0, err
			}
			sr.pending = append(sr.pending, s)
		}
		if len(sr.pending) == 0 {
			return nil, 0, fmt.Errorf("line %d: no hash in any of the hash columns", line)
		}
		s := sr.pending[0]
		sr.pending, sr.pendingLine = sr.pending[1:], line
		return s, line, nil
	}
}

type jsonSignal struct {
	Type           string   `json:"type"`
	SignalType     string   `json:"signal_type"`
	Value          string   `json:"value"`
	SignalValue    string   `json:"signal_value"`
	SignalStr      string   `json:"signal_str"`
	Labels         []string `json:"labels"`
	Tags           []string `json:"tags"`
	Classification string   `json:"classification"`
}

func (sr *SignalReader) nextJSONL() (*hashfedv1.Signal, int, error) {
	for sr.sc.Scan() {
		sr.line++
		line := sr.line
		b := bytes.TrimSpace(sr.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		var js jsonSignal
		if err := dec.Decode(&js); err != nil {
			return nil, 0, fmt.Errorf("line %d: %w", line, err)
		}
		if dec.More() || len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
			return nil, 0, fmt.Errorf("line %d: more than one JSON value on the line (want one object per line)", line)
		}
		typ, val := js.Type, js.Value
		if typ == "" {
			typ = js.SignalType
		}
		if val == "" {
			val = js.SignalValue
		}
		if val == "" {
			val = js.SignalStr
		}
		t, err := parseImportType(typ)
		if err != nil {
			return nil, 0, fmt.Errorf("line %d: %w", line, err)
		}
		labels := append(js.Labels, js.Tags...)
		if js.Classification != "" {
			labels = append(labels, js.Classification)
		}
		s, err := newSignal(line, t, val, labels)
		if err != nil {
			return nil, 0, err
		}
		return s, line, nil
	}
	if err := sr.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, 0, fmt.Errorf("line %d: longer than 1 MiB: want one signal object per line", sr.line+1)
		}
		return nil, 0, err
	}
	return nil, 0, io.EOF
}
