package federation_test

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func TestCanonicalValue(t *testing.T) {
	pdna := photoDNA(7)
	for _, tt := range []struct {
		name    string
		typ     federation.SignalType
		in      string
		want    string
		wantErr string // substring of the error; "" means success
	}{
		{"md5", federation.MD5, md5Hex(1), md5Hex(1), ""},
		{"md5 uppercase", federation.MD5, "D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e", ""},
		{"md5 surrounding space", federation.MD5, "  " + md5Hex(2) + "\n", md5Hex(2), ""},
		{"sha1", federation.SHA1, "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709", "da39a3ee5e6b4b0d3255bfef95601890afd80709", ""},
		{"sha256", federation.SHA256, strings.ToUpper(sha256Hex(3)), sha256Hex(3), ""},
		{"pdq", federation.PDQ, "F" + pdqHex(4)[1:], "f" + pdqHex(4)[1:], ""},
		{"photodna", federation.PhotoDNA, pdna, pdna, ""},
		{"photodna with newline inside", federation.PhotoDNA, pdna[:40] + "\n" + pdna[40:], pdna, ""},

		{"md5 too short", federation.MD5, md5Hex(1)[1:], "", "has 31 characters, want 32 hex digits"},
		{"md5 too long", federation.MD5, md5Hex(1) + "0", "", "has 33 characters, want 32"},
		{"md5 empty", federation.MD5, "", "", "has 0 characters"},
		{"md5 sha1-length", federation.MD5, sha1Hex(1), "", "want 32 hex digits"},
		{"sha1 wrong length", federation.SHA1, md5Hex(1), "", "has 32 characters, want 40"},
		{"sha256 wrong length", federation.SHA256, sha1Hex(1), "", "want 64"},
		{"md5 non-hex", federation.MD5, "g" + md5Hex(1)[1:], "", "not hexadecimal"},
		{"sha256 0x prefix", federation.SHA256, "0x" + sha256Hex(1)[2:], "", "not hexadecimal"},
		{"pdq 63 digits", federation.PDQ, pdqHex(1)[1:], "", "pdq value"},
		{"pdq 65 digits", federation.PDQ, pdqHex(1) + "0", "", "has 65 characters, want 64"},
		{"pdq non-hex", federation.PDQ, strings.Repeat("z", 64), "", "not hexadecimal"},
		{"photodna bad base64", federation.PhotoDNA, "!!!" + pdna[3:], "", "not standard base64"},
		{"photodna url-safe base64", federation.PhotoDNA, base64.URLEncoding.EncodeToString(make([]byte, 144)) + "-_", "", "not standard base64"},
		{"photodna unpadded", federation.PhotoDNA, base64.RawStdEncoding.EncodeToString(make([]byte, 143)), "", "not standard base64"},
		{"photodna 143 bytes", federation.PhotoDNA, base64.StdEncoding.EncodeToString(make([]byte, 143)), "", "decodes to 143 bytes, want 144"},
		{"photodna 145 bytes", federation.PhotoDNA, base64.StdEncoding.EncodeToString(make([]byte, 145)), "", "decodes to 145 bytes"},
		{"photodna hex", federation.PhotoDNA, sha256Hex(1), "", "photodna value"},
		{"unknown type", federation.SignalType("tlsh"), md5Hex(1), "", `unknown signal type "tlsh"`},
		{"type is case-sensitive here", federation.SignalType("MD5"), md5Hex(1), "", "unknown signal type"},
		{"empty type", "", md5Hex(1), "", "unknown signal type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := federation.CanonicalValue(tt.typ, tt.in)
			if tt.wantErr == "" {
				if err != nil || got != tt.want {
					t.Fatalf("CanonicalValue(%q, %q) = %q, %v; want %q, nil", tt.typ, tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("CanonicalValue(%q, %q) = %q, %v; want error containing %q", tt.typ, tt.in, got, err, tt.wantErr)
			}
		})
	}
}

func TestCanonicalValueErrorShortensLongInput(t *testing.T) {
	_, err := federation.CanonicalValue(federation.MD5, strings.Repeat("a", 10000))
	if err == nil {
		t.Fatal("CanonicalValue accepted 10000 characters as md5")
	}
	if len(err.Error()) > 200 {
		t.Errorf("error is %d bytes long, want the value shortened: %.300s", len(err.Error()), err)
	}
}

func TestParseSignalType(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want federation.SignalType
		ok   bool
	}{
		{"md5", federation.MD5, true},
		{"SHA1", federation.SHA1, true},
		{" Sha256 ", federation.SHA256, true},
		{"pdq", federation.PDQ, true},
		{"PhotoDNA", federation.PhotoDNA, true},
		{"", "", false},
		{"sha512", "", false},
	} {
		got, err := federation.ParseSignalType(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("ParseSignalType(%q) = %q, %v; want %q, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestSignalTypeProtoRoundTrip(t *testing.T) {
	seen := map[hashfedv1.SignalType]bool{}
	for _, st := range federation.SignalTypes {
		p := st.Proto()
		if p == hashfedv1.SignalType_SIGNAL_TYPE_UNSPECIFIED || seen[p] {
			t.Errorf("%s.Proto() = %v: unspecified or shared with another type", st, p)
		}
		seen[p] = true
		got, err := federation.SignalTypeFromProto(p)
		if err != nil || got != st {
			t.Errorf("SignalTypeFromProto(%v) = %q, %v; want %q", p, got, err, st)
		}
	}
	for _, p := range []hashfedv1.SignalType{hashfedv1.SignalType_SIGNAL_TYPE_UNSPECIFIED, 99} {
		if got, err := federation.SignalTypeFromProto(p); err == nil {
			t.Errorf("SignalTypeFromProto(%v) = %q, want an error", p, got)
		}
	}
}

func TestValidateSignal(t *testing.T) {
	many := func(n int) []string {
		var ls []string
		for i := range n {
			ls = append(ls, "l"+strings.Repeat("x", i))
		}
		return ls
	}
	for _, tt := range []struct {
		name    string
		sig     *hashfedv1.Signal
		wantErr string // "" means valid
	}{
		{"md5 no labels", sig(federation.MD5, md5Hex(1)), ""},
		{"every type", sig(federation.PhotoDNA, photoDNA(1), "A1"), ""},
		{"pdq", sig(federation.PDQ, pdqHex(1), "B2", "csam"), ""},
		{"label with space", sig(federation.SHA256, sha256Hex(1), "two words"), ""},
		{"16 labels", sig(federation.SHA1, sha1Hex(1), many(16)...), ""},
		{"64-byte label", sig(federation.MD5, md5Hex(1), strings.Repeat("x", 64)), ""},

		{"uppercase value", sig(federation.MD5, strings.ToUpper(md5Hex(0xabc))), "not in canonical form"},
		{"value with space", sig(federation.MD5, " "+md5Hex(1)), "not in canonical form"},
		{"photodna with newline", sig(federation.PhotoDNA, photoDNA(1)[:10]+"\n"+photoDNA(1)[10:]), "not in canonical form"},
		{"bad value", sig(federation.SHA1, md5Hex(1)), "want 40 hex digits"},
		{"unspecified type", &hashfedv1.Signal{Value: md5Hex(1)}, "unknown signal type"},
		{"17 labels", sig(federation.MD5, md5Hex(1), many(17)...), "17 labels, at most 16"},
		{"empty label", sig(federation.MD5, md5Hex(1), ""), "has label"},
		{"65-byte label", sig(federation.MD5, md5Hex(1), strings.Repeat("x", 65)), "has label"},
		{"label with comma", sig(federation.MD5, md5Hex(1), "a,b"), "has label"},
		{"label with newline", sig(federation.MD5, md5Hex(1), "a\nb"), "has label"},
		{"label with CR", sig(federation.MD5, md5Hex(1), "a\rb"), "has label"},
		{"label with tab", sig(federation.MD5, md5Hex(1), "a\tb"), "has label"},
		{"label with NUL", sig(federation.MD5, md5Hex(1), "a\x00b"), "has label"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := federation.ValidateSignal(tt.sig)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateSignal(%v) = %v, want nil", tt.sig, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateSignal(%v) = %v, want error containing %q", tt.sig, err, tt.wantErr)
			}
		})
	}
}

// TestValidateSignalRejectsInvalidUTF8Label: a label that is not UTF-8
// cannot be carried in the proto3 string field, so BuildContribution fails
// later with a protobuf error that names no signal.
func TestValidateSignalRejectsInvalidUTF8Label(t *testing.T) {
	s := sig(federation.MD5, md5Hex(1), "\xff")
	if err := federation.ValidateSignal(s); err == nil {
		t.Errorf("ValidateSignal(label %q) = nil, want an error", "\xff")
	}
}
