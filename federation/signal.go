package federation

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A SignalType names a kind of hash in files and statements: "md5", "sha1",
// "sha256", "pdq" or "photodna".
type SignalType string

// The signal types hashfed validates.
const (
	MD5      SignalType = "md5"
	SHA1     SignalType = "sha1"
	SHA256   SignalType = "sha256"
	PDQ      SignalType = "pdq"
	PhotoDNA SignalType = "photodna"
)

// SignalTypes lists every known type in a fixed order.
var SignalTypes = []SignalType{MD5, SHA1, SHA256, PDQ, PhotoDNA}

var typeToProto = map[SignalType]hashfedv1.SignalType{
	MD5:      hashfedv1.SignalType_SIGNAL_TYPE_MD5,
	SHA1:     hashfedv1.SignalType_SIGNAL_TYPE_SHA1,
	SHA256:   hashfedv1.SignalType_SIGNAL_TYPE_SHA256,
	PDQ:      hashfedv1.SignalType_SIGNAL_TYPE_PDQ,
	PhotoDNA: hashfedv1.SignalType_SIGNAL_TYPE_PHOTODNA,
}

// ParseSignalType parses a type name, case-insensitively.
func ParseSignalType(s string) (SignalType, error) {
	t := SignalType(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := typeToProto[t]; !ok {
		return "", fmt.Errorf("unknown signal type %q (want one of md5, sha1, sha256, pdq, photodna)", s)
	}
	return t, nil
}

// Proto returns the wire enum for t.
func (t SignalType) Proto() hashfedv1.SignalType { return typeToProto[t] }

// SignalTypeFromProto maps a wire enum back to a SignalType.
func SignalTypeFromProto(p hashfedv1.SignalType) (SignalType, error) {
	switch p {
	case hashfedv1.SignalType_SIGNAL_TYPE_MD5:
		return MD5, nil
	case hashfedv1.SignalType_SIGNAL_TYPE_SHA1:
		return SHA1, nil
	case hashfedv1.SignalType_SIGNAL_TYPE_SHA256:
		return SHA256, nil
	case hashfedv1.SignalType_SIGNAL_TYPE_PDQ:
		return PDQ, nil
	case hashfedv1.SignalType_SIGNAL_TYPE_PHOTODNA:
		return PhotoDNA, nil
	}
	return "", fmt.Errorf("unknown signal type %d", int32(p))
}

// photoDNALen is the size of a PhotoDNA hash in bytes.
const photoDNALen = 144

// CanonicalValue checks that value is a well-formed hash of type t and returns
// its canonical form: lowercase hex for md5, sha1, sha256 and pdq; standard
// padded base64 for photodna. The error says what is wrong in words a
// publisher can act on.
func CanonicalValue(t SignalType, value string) (string, error) {
	v := strings.TrimSpace(value)
	switch t {
	case MD5, SHA1, SHA256, PDQ:
		want := hexLen(t)
		if len(v) != want {
			return "", fmt.Errorf("%s value %q has %d characters, want %d hex digits", t, short(v), len(v), want)
		}
		if _, err := hex.DecodeString(v); err != nil {
			return "", fmt.Errorf("%s value %q is not hexadecimal", t, short(v))
		}
		return strings.ToLower(v), nil
	case PhotoDNA:
		b, err := base64.StdEncoding.Strict().DecodeString(v)
		if err != nil {
			return "", fmt.Errorf("photodna value %q is not standard base64", short(v))
		}
		if len(b) != photoDNALen {
			return "", fmt.Errorf("photodna value decodes to %d bytes, want %d", len(b), photoDNALen)
		}
		return base64.StdEncoding.EncodeToString(b), nil
	default:
		return "", fmt.Errorf("unknown signal type %q", string(t))
	}
}

// isCanonical reports, without allocating, whether CanonicalValue(t, v)
// would return v itself: for the hex types, exactly the right number of
// lowercase hex digits; for photodna, the 192 characters of the base64 of
// 144 bytes (no padding, every character from the standard alphabet, so
// strict decoding succeeds and encoding gives the same text back). When it
// reports false, CanonicalValue decides.
func isCanonical(t SignalType, v string) bool {
	switch t {
	case MD5, SHA1, SHA256, PDQ:
		if len(v) != hexLen(t) {
			return false
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
		return true
	case PhotoDNA:
		if len(v) != base64.StdEncoding.EncodedLen(photoDNALen) || photoDNALen%3 != 0 {
			return false
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '+' && c != '/' {
				return false
			}
		}
		return true
	}
	return false
}

// hexLen is the number of hex digits of a value of a hex signal type.
func hexLen(t SignalType) int {
	switch t {
	case MD5:
		return 32
	case SHA1:
		return 40
	default: // SHA256, PDQ
		return 64
	}
}

// short trims long input for error messages.
func short(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// maxLabels and maxLabelLen bound a signal's labels.
const (
	maxLabels   = 16
	maxLabelLen = 64
)

// ValidateSignal checks one wire signal: a known type, a canonical value and
// sane labels. Values must already be canonical so that every node and every
// subscriber sees byte-identical payloads.
func ValidateSignal(s *hashfedv1.Signal) error {
	t, err := SignalTypeFromProto(s.GetType())
	if err != nil {
		return fmt.Errorf("%w (want one of md5, sha1, sha256, pdq, photodna)", err)
	}
	c := s.GetValue()
	if !isCanonical(t, c) {
		// Not canonical: CanonicalValue says why, or what the canonical form is.
		if c, err = CanonicalValue(t, s.GetValue()); err != nil {
			return err
		}
		if c != s.GetValue() {
			return fmt.Errorf("%s value %q is not in canonical form (want %q)", t, short(s.GetValue()), short(c))
		}
	}
	if len(s.GetLabels()) > maxLabels {
		return fmt.Errorf("signal %s:%s has %d labels, at most %d allowed", t, short(c), len(s.GetLabels()), maxLabels)
	}
	for _, l := range s.GetLabels() {
		if l == "" || len(l) > maxLabelLen || !utf8.ValidString(l) || strings.ContainsAny(l, "\x00\n\r\t,") {
			return fmt.Errorf("signal %s:%s has label %q: labels are 1-%d bytes of UTF-8 without commas, tabs or newlines", t, short(c), short(l), maxLabelLen)
		}
	}
	return nil
}
