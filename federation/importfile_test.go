package federation_test

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func readSignals(t *testing.T, in, format string) []*hashfedv1.Signal {
	t.Helper()
	got, err := federation.ReadSignals(strings.NewReader(in), format)
	if err != nil {
		t.Fatalf("ReadSignals(%s):\n%s\nerror: %v", format, in, err)
	}
	return got
}

func TestReadSignals(t *testing.T) {
	upperMD5 := strings.ToUpper(md5Hex(0xabc))
	for _, tt := range []struct {
		name   string
		format string
		in     string
		want   []*hashfedv1.Signal
	}{
		{
			name:   "csv per row",
			format: federation.FormatCSV,
			in: "type,value,labels\n" +
				"md5," + upperMD5 + ",b2 a1\n" +
				"PDQ, " + pdqHex(1) + " ,\n" +
				"photodna," + photoDNA(3) + ",x;y|x\n",
			want: []*hashfedv1.Signal{
				sig(federation.MD5, md5Hex(0xabc), "a1", "b2"),
				sig(federation.PDQ, pdqHex(1)),
				sig(federation.PhotoDNA, photoDNA(3), "x", "y"),
			},
		},
		{
			name:   "csv per row, other column names and order",
			format: federation.FormatCSV,
			in: "Tags,Signal_Value,Signal_Type\n" +
				"csam;A1," + sha1Hex(1) + ",sha1\n" +
				"," + sha256Hex(2) + ",sha256\n",
			want: []*hashfedv1.Signal{
				sig(federation.SHA1, sha1Hex(1), "A1", "csam"),
				sig(federation.SHA256, sha256Hex(2)),
			},
		},
		{
			name:   "csv per row with classification, BOM, CRLF and blank lines",
			format: federation.FormatCSV,
			in: "\ufefftype,value,classification\r\n" +
				"md5," + md5Hex(1) + ",A1\r\n" +
				"\r\n" +
				"md5," + md5Hex(2) + ",\r\n",
			want: []*hashfedv1.Signal{
				sig(federation.MD5, md5Hex(1), "A1"),
				sig(federation.MD5, md5Hex(2)),
			},
		},
		{
			name:   "csv per row, short rows",
			format: federation.FormatCSV,
			in:     "type,value,labels\nmd5," + md5Hex(1) + "\n",
			want:   []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1))},
		},
		{
			name:   "csv same value under two types",
			format: federation.FormatCSV,
			in:     "type,value\nsha256," + sha256Hex(1) + "\npdq," + sha256Hex(1) + "\n",
			want:   []*hashfedv1.Signal{sig(federation.SHA256, sha256Hex(1)), sig(federation.PDQ, sha256Hex(1))},
		},
		{
			name:   "jsonl",
			format: federation.FormatJSONL,
			in: `{"type": "md5", "value": "` + upperMD5 + `", "labels": ["b2", "a1", "b2"]}` + "\n" +
				"\n" +
				`  {"signal_type": "PDQ", "signal_value": "` + pdqHex(1) + `", "tags": ["t"]}  ` + "\n" +
				`{"type": "photodna", "value": "` + photoDNA(1) + `", "labels": ["x y"], "tags": ["a"]}`,
			want: []*hashfedv1.Signal{
				sig(federation.MD5, md5Hex(0xabc), "a1", "b2"),
				sig(federation.PDQ, pdqHex(1), "t"),
				sig(federation.PhotoDNA, photoDNA(1), "a", "x y"),
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := readSignals(t, tt.in, tt.format)
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("ReadSignals mismatch (-want +got):\n%s", diff)
			}
			for _, s := range got {
				if err := federation.ValidateSignal(s); err != nil {
					t.Errorf("ReadSignals returned an invalid signal: %v", err)
				}
			}
		})
	}
}

// TestReadSignalsCSVColumnPerType covers the second CSV layout: one column
// per signal type, every non-empty cell a signal carrying the row's labels.
//
// It fails because readCSV sets ReuseRecord, so the header slice it keeps is
// overwritten by the next row, and header[i] then holds a hash value, not the
// column's type name.
func TestReadSignalsCSVColumnPerType(t *testing.T) {
	in := "md5,sha1,pdq,photodna,classification,labels\n" +
		strings.ToUpper(md5Hex(1)) + "," + sha1Hex(1) + ",,," + "A1,x y\n" +
		",," + pdqHex(2) + "," + photoDNA(2) + ",B2,\n" +
		md5Hex(3) + ",,,,,\n"
	got := readSignals(t, in, federation.FormatCSV)
	want := []*hashfedv1.Signal{
		sig(federation.MD5, md5Hex(1), "A1", "x", "y"),
		sig(federation.SHA1, sha1Hex(1), "A1", "x", "y"),
		sig(federation.PDQ, pdqHex(2), "B2"),
		sig(federation.PhotoDNA, photoDNA(2), "B2"),
		sig(federation.MD5, md5Hex(3)),
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ReadSignals mismatch (-want +got):\n%s", diff)
	}
}

// TestReadSignalsCSVColumnPerTypeBOM: the header's BOM is stripped when
// columns are looked up, but not from header[i] when it is used as the type.
func TestReadSignalsCSVColumnPerTypeBOM(t *testing.T) {
	in := "\ufeffmd5,sha1\n" + md5Hex(1) + "," + sha1Hex(1) + "\n"
	got := readSignals(t, in, federation.FormatCSV)
	want := []*hashfedv1.Signal{sig(federation.MD5, md5Hex(1)), sig(federation.SHA1, sha1Hex(1))}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("ReadSignals mismatch (-want +got):\n%s", diff)
	}
}

func TestReadSignalsErrors(t *testing.T) {
	var labels []string
	for i := range 17 {
		labels = append(labels, fmt.Sprint("l", i))
	}
	tooManyLabels := strings.Join(labels, " ")
	for _, tt := range []struct {
		name   string
		format string
		in     string
		want   string // substring of the error
	}{
		{"csv empty file", federation.FormatCSV, "", "empty"},
		{"csv header only", federation.FormatCSV, "type,value\n", "no signals"},
		{"csv missing header columns", federation.FormatCSV, "hash,kind\n" + md5Hex(1) + ",md5\n", "line 1: header"},
		{"csv value without type column", federation.FormatCSV, "value,labels\n" + md5Hex(1) + ",a\n", "line 1: header"},
		{"csv duplicate column", federation.FormatCSV, "type,value,Type\n", `line 1: column "type" appears twice`},
		{"csv bad value", federation.FormatCSV, "type,value\nmd5," + md5Hex(1) + "\nmd5,xyz\n", "line 3: md5 value \"xyz\" has 3 characters"},
		{"csv non-hex value", federation.FormatCSV, "type,value\nsha1," + strings.Repeat("g", 40) + "\n", "line 2: sha1 value"},
		{"csv unknown type", federation.FormatCSV, "type,value\nmd5," + md5Hex(1) + "\n\ntlsh,abc\n", `line 4: unknown signal type "tlsh"`},
		{"csv empty type", federation.FormatCSV, "type,value\n," + md5Hex(1) + "\n", "line 2: unknown signal type"},
		{"csv duplicate", federation.FormatCSV, "type,value\nmd5," + md5Hex(1) + "\nsha1," + sha1Hex(1) + "\nMD5," + strings.ToUpper(md5Hex(1)) + "\n", "line 4: md5 signal " + md5Hex(1) + " duplicates line 2"},
		{"csv too many labels", federation.FormatCSV, "type,value,labels\nmd5," + md5Hex(1) + "," + tooManyLabels + "\n", "line 2: signal md5"},
		{"csv label with comma", federation.FormatCSV, "type,value,labels\nmd5," + md5Hex(1) + ",\"a,b\"\n", "line 2: signal md5"},
		{"csv quote error", federation.FormatCSV, "type,value\nmd5,\"" + md5Hex(1) + "\"x\n", "line 2"},
		{"csv columns, row without hash", federation.FormatCSV, "md5,labels\n,a\n", "line 2: no hash"},

		{"jsonl empty file", federation.FormatJSONL, "", "no signals"},
		{"jsonl blank lines only", federation.FormatJSONL, "\n \n\n", "no signals"},
		{"jsonl bad value", federation.FormatJSONL, `{"type":"md5","value":"` + md5Hex(1) + `"}` + "\n" + `{"type":"md5","value":"zz"}`, "line 2: md5 value"},
		{"jsonl unknown type", federation.FormatJSONL, "\n\n" + `{"type":"tlsh","value":"aa"}`, `line 3: unknown signal type "tlsh"`},
		{"jsonl missing type", federation.FormatJSONL, `{"value":"` + md5Hex(1) + `"}`, "line 1: unknown signal type"},
		{"jsonl duplicate", federation.FormatJSONL, `{"type":"md5","value":"` + md5Hex(1) + `"}` + "\n\n" + `{"signal_type":"md5","signal_value":"` + md5Hex(1) + `"}`, "line 3: md5 signal " + md5Hex(1) + " duplicates line 1"},
		{"jsonl unknown field", federation.FormatJSONL, `{"type":"md5","value":"` + md5Hex(1) + `","hash":"x"}`, `line 1: json: unknown field "hash"`},
		{"jsonl not JSON", federation.FormatJSONL, `{"type":"md5","value":"` + md5Hex(1) + `"}` + "\nmd5," + md5Hex(2), "line 2:"},
		{"jsonl labels not a list", federation.FormatJSONL, `{"type":"md5","value":"` + md5Hex(1) + `","labels":"a"}`, "line 1:"},
		{"jsonl empty label", federation.FormatJSONL, `{"type":"md5","value":"` + md5Hex(1) + `","labels":[""]}`, "line 1: signal md5"},

		{"unknown format", "xml", "<signals/>", `unknown format "xml"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := federation.ReadSignals(strings.NewReader(tt.in), tt.format)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadSignals = %v, %v; want error containing %q", got, err, tt.want)
			}
			if got != nil {
				t.Errorf("ReadSignals returned %d signals with an error", len(got))
			}
		})
	}
}

// TestReadSignalsCSVBareQuoteInFirstField: a parse error in a row's first
// field leaves csv.Reader without field positions, and readCSV's
// cr.FieldPos(0) panics instead of returning the error.
func TestReadSignalsCSVBareQuoteInFirstField(t *testing.T) {
	for _, in := range []string{
		"type,value\nmd\"5," + md5Hex(1) + "\n",
		"type,value\nmd5," + md5Hex(1) + "\n\"md5,x\n",
		"type,value\n\"", // found by FuzzReadSignalsCSV
	} {
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("ReadSignals(%q) panicked: %v", in, r)
				}
			}()
			_, err := federation.ReadSignals(strings.NewReader(in), federation.FormatCSV)
			if err == nil || !strings.Contains(err.Error(), "line ") {
				t.Errorf("ReadSignals(%q) = %v, want an error naming the line", in, err)
			}
		}()
	}
}

// TestReadSignalsJSONLTrailingData: a line holding two objects must not lose
// the second silently.
func TestReadSignalsJSONLTrailingData(t *testing.T) {
	in := `{"type":"md5","value":"` + md5Hex(1) + `"} {"type":"md5","value":"` + md5Hex(2) + `"}`
	got, err := federation.ReadSignals(strings.NewReader(in), federation.FormatJSONL)
	if err == nil && len(got) != 2 {
		t.Errorf("ReadSignals(%q) = %d signals, nil error; want both signals or an error", in, len(got))
	}
}

func TestReadSignalsLabelsCompacted(t *testing.T) {
	got := readSignals(t, "type,value,labels\nmd5,"+md5Hex(1)+",c b a b c\n", federation.FormatCSV)
	if want := []string{"a", "b", "c"}; !cmp.Equal(got[0].Labels, want) {
		t.Errorf("labels = %q, want %q", got[0].Labels, want)
	}
}

func TestFormatOf(t *testing.T) {
	for _, tt := range []struct {
		name, want string
	}{
		{"signals.csv", federation.FormatCSV},
		{"signals.CSV", federation.FormatCSV},
		{"signals.txt", federation.FormatCSV},
		{"signals", federation.FormatCSV},
		{"signals.jsonl", federation.FormatJSONL},
		{"signals.ndjson", federation.FormatJSONL},
		{"signals.json", federation.FormatJSONL},
		{"/tmp/x/SIGNALS.JSONL", federation.FormatJSONL},
		{"signals.json.csv", federation.FormatCSV},
		{"jsonl", federation.FormatCSV},
	} {
		if got := federation.FormatOf(tt.name); got != tt.want {
			t.Errorf("FormatOf(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestSignalReaderLayouts covers the header spellings of the lists
// publishers hold: an NCMEC-style export with one column per fingerprint
// (pdna for PhotoDNA) and a classification, python-threatexchange's HMA
// dataset export (collab, signal_type, signal_str, category, tags), and
// ThreatExchange's indicator type names.
func TestSignalReaderLayouts(t *testing.T) {
	type got struct {
		sig  *hashfedv1.Signal
		line int
	}
	for _, tt := range []struct {
		name, format, in string
		want             []got
	}{
		{
			name:   "ncmec-style columns",
			format: federation.FormatCSV,
			in: "ID,MD5,SHA1,PDNA,PDQ,Classification\n" +
				"17," + md5Hex(1) + "," + sha1Hex(1) + "," + photoDNA(1) + ",," + "A1\n" +
				"18,,,," + pdqHex(2) + ",B2\n",
			want: []got{
				{sig(federation.MD5, md5Hex(1), "A1"), 2},
				{sig(federation.SHA1, sha1Hex(1), "A1"), 2},
				{sig(federation.PhotoDNA, photoDNA(1), "A1"), 2},
				{sig(federation.PDQ, pdqHex(2), "B2"), 3},
			},
		},
		{
			name:   "hma dataset export",
			format: federation.FormatCSV,
			in: "collab,signal_type,signal_str,category,tags\n" +
				"Sample Data,pdq," + pdqHex(1) + ",POSITIVE_CLASS,csam media_type_photo\n" +
				"Sample Data,video_md5," + md5Hex(2) + ",POSITIVE_CLASS,\n",
			want: []got{
				{sig(federation.PDQ, pdqHex(1), "POSITIVE_CLASS", "csam", "media_type_photo"), 2},
				{sig(federation.MD5, md5Hex(2), "POSITIVE_CLASS"), 3},
			},
		},
		{
			name:   "threatexchange type names",
			format: federation.FormatCSV,
			in:     "type,value\nHASH_MD5," + md5Hex(1) + "\nHASH_PDQ," + pdqHex(1) + "\nSHA-256," + sha256Hex(1) + "\n",
			want: []got{
				{sig(federation.MD5, md5Hex(1)), 2},
				{sig(federation.PDQ, pdqHex(1)), 3},
				{sig(federation.SHA256, sha256Hex(1)), 4},
			},
		},
		{
			name:   "jsonl signal_str and classification",
			format: federation.FormatJSONL,
			in:     "\n" + `{"signal_type": "pdna", "signal_str": "` + photoDNA(4) + `", "classification": "A1", "tags": ["x"]}` + "\n",
			want:   []got{{sig(federation.PhotoDNA, photoDNA(4), "A1", "x"), 2}},
		},
		{
			// The streaming reader leaves duplicates to its caller.
			name:   "duplicates pass through",
			format: federation.FormatCSV,
			in:     "type,value\nmd5," + md5Hex(1) + "\nMD5," + strings.ToUpper(md5Hex(1)) + "\n",
			want:   []got{{sig(federation.MD5, md5Hex(1)), 2}, {sig(federation.MD5, md5Hex(1)), 3}},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sr, err := federation.NewSignalReader(strings.NewReader(tt.in), tt.format)
			if err != nil {
				t.Fatal(err)
			}
			var all []got
			for {
				s, line, err := sr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Next after %d signals: %v", len(all), err)
				}
				all = append(all, got{s, line})
			}
			if diff := cmp.Diff(tt.want, all, protocmp.Transform(), cmp.AllowUnexported(got{})); diff != "" {
				t.Errorf("signals mismatch (-want +got):\n%s", diff)
			}
			if _, _, err := sr.Next(); err != io.EOF {
				t.Errorf("Next after the end = %v, want io.EOF again", err)
			}
		})
	}
}

// failingReader returns err once its data is consumed.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// TestSignalReaderStreams: the reader hands out signals before it has seen
// the end of its input, so it never needs the whole file in memory, and an
// error is sticky.
func TestSignalReaderStreams(t *testing.T) {
	broken := errors.New("disk on fire")
	for _, tt := range []struct{ format, in string }{
		{federation.FormatCSV, "type,value\nmd5," + md5Hex(1) + "\nmd5," + md5Hex(2) + "\n"},
		{federation.FormatJSONL, `{"type":"md5","value":"` + md5Hex(1) + `"}` + "\n" + `{"type":"md5","value":"` + md5Hex(2) + `"}` + "\n"},
	} {
		sr, err := federation.NewSignalReader(&failingReader{strings.NewReader(tt.in), broken}, tt.format)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 2; i++ {
			if s, _, err := sr.Next(); err != nil || s.Value != md5Hex(i) {
				t.Fatalf("%s: signal %d = %v, %v; want %s before the read error", tt.format, i, s, err, md5Hex(i))
			}
		}
		for range 2 {
			if _, _, err := sr.Next(); !errors.Is(err, broken) {
				t.Fatalf("%s: Next at the broken end = %v, want %v", tt.format, err, broken)
			}
		}
	}
	if _, err := federation.NewSignalReader(strings.NewReader(""), "xml"); err == nil || !strings.Contains(err.Error(), `unknown format "xml"`) {
		t.Errorf("NewSignalReader with format xml: %v", err)
	}
	sr, _ := federation.NewSignalReader(strings.NewReader("type,value\nmd5,xyz\nmd5,"+md5Hex(1)+"\n"), federation.FormatCSV)
	_, _, err1 := sr.Next()
	_, _, err2 := sr.Next()
	if err1 == nil || !strings.Contains(err1.Error(), "line 2") || err2 != err1 {
		t.Errorf("after a bad line Next = %v, then %v; want the same error naming line 2", err1, err2)
	}
}
