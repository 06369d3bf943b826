package federation_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestExportRoundTrip writes signals in every export layout and reads them
// back with the importer: the same signals with the same labels.
func TestExportRoundTrip(t *testing.T) {
	want := []*hashfedv1.Signal{
		sig(federation.MD5, md5Hex(1), "A1"),
		sig(federation.SHA1, sha1Hex(2), "B2", "tag-x"),
		sig(federation.SHA256, sha256Hex(3)),
		sig(federation.PDQ, pdqHex(4), "A2", "B1", "video"),
		sig(federation.PhotoDNA, photoDNA(5), "A1"),
	}
	for _, format := range federation.ExportFormats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := federation.NewSignalWriter(&buf, format)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range want {
				ty, _ := federation.SignalTypeFromProto(s.Type)
				if err := w.Write(ty, s.Value, s.Labels); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			in := federation.FormatCSV
			if format == federation.ExportJSONL {
				in = federation.FormatJSONL
			}
			got, err := federation.ReadSignals(strings.NewReader(buf.String()), in)
			if err != nil {
				t.Fatalf("reading back the %s export: %v\n%s", format, err, buf.String())
			}
			if !slices.EqualFunc(got, want, func(a, b *hashfedv1.Signal) bool { return proto.Equal(a, b) }) {
				t.Errorf("round trip through %s:\n got %v\nwant %v\nfile:\n%s", format, got, want, buf.String())
			}
		})
	}
	if _, err := federation.NewSignalWriter(&bytes.Buffer{}, "xml"); err == nil {
		t.Error("NewSignalWriter accepted an unknown format")
	}
}
