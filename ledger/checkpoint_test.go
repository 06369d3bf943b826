package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const testOrigin = "example.org/federation"

// testHash is a hash whose base64 form contains both '+' and '/'.
var testHash = tlog.Hash(bytes.Repeat([]byte{0xfb, 0xef, 0xff}, 11)[:32])

func TestCheckpointRoundTrip(t *testing.T) {
	for _, c := range []Checkpoint{
		{Origin: testOrigin, Size: 0, Hash: tlog.Hash(sha256.Sum256(nil))},
		{Origin: testOrigin, Size: 1, Hash: testHash},
		{Origin: "ünïcode origin", Size: 1<<63 - 1, Hash: tlog.Hash{}},
	} {
		body := c.Marshal()
		got, err := ParseCheckpoint(body)
		if err != nil {
			t.Fatalf("ParseCheckpoint(%q): %v", body, err)
		}
		if got != c {
			t.Errorf("ParseCheckpoint(%q) = %+v, want %+v", body, got, c)
		}
		// The encoding is that of transparency-dev/formats.
		want := log.Checkpoint{Origin: c.Origin, Size: uint64(c.Size), Hash: c.Hash[:]}.Marshal()
		if !bytes.Equal(body, want) {
			t.Errorf("Marshal() = %q, formats/log says %q", body, want)
		}
	}
}

func TestParseCheckpointExtensions(t *testing.T) {
	c := Checkpoint{Origin: testOrigin, Size: 42, Hash: testHash}
	body := append(c.Marshal(), "— extension line\nanother\n"...)
	got, err := ParseCheckpoint(body)
	if err != nil {
		t.Fatalf("ParseCheckpoint with extension lines: %v", err)
	}
	if got != c {
		t.Errorf("ParseCheckpoint with extension lines = %+v, want %+v", got, c)
	}
}

func TestParseCheckpointMalformed(t *testing.T) {
	h := base64.StdEncoding.EncodeToString(testHash[:])
	zero := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct {
		name, body string
	}{
		{"empty", ""},
		{"no final newline", "o\n1\n" + h},
		{"two lines", "o\n1\n"},
		{"empty origin", "\n1\n" + h + "\n"},
		{"empty size", "o\n\n" + h + "\n"},
		{"empty hash", "o\n1\n\n"},
		{"leading zero", "o\n01\n" + h + "\n"},
		{"double zero", "o\n00\n" + h + "\n"},
		{"plus sign", "o\n+1\n" + h + "\n"},
		{"minus sign", "o\n-1\n" + h + "\n"},
		{"minus zero", "o\n-0\n" + h + "\n"},
		{"space in size", "o\n 1\n" + h + "\n"},
		{"hex size", "o\n0x1\n" + h + "\n"},
		{"size overflow", "o\n9223372036854775808\n" + h + "\n"},
		{"short hash", "o\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n"},
		{"long hash", "o\n1\n" + base64.StdEncoding.EncodeToString(make([]byte, 33)) + "\n"},
		{"unpadded hash", "o\n1\n" + strings.TrimSuffix(h, "=") + "\n"},
		{"URL-safe hash", "o\n1\n" + base64.URLEncoding.EncodeToString(testHash[:]) + "\n"},
		{"padding bits set", "o\n1\n" + zero[:42] + "B=\n"},
		{"space in hash", "o\n1\n" + h[:20] + " " + h[20:] + "\n"},
		{"CR in hash line", "o\n1\n" + h + "\r\n"},
		{"tab in origin", "o\tx\n1\n" + h + "\n"},
		{"NUL in origin", "o\x00\n1\n" + h + "\n"},
		{"invalid UTF-8", "o\xff\n1\n" + h + "\n"},
		{"blank line after hash", "o\n1\n" + h + "\n\n"},
		{"blank line before extension", "o\n1\n" + h + "\n\next\n"},
		{"extension without newline", "o\n1\n" + h + "\next"},
		{"signed note, not body", "o\n1\n" + h + "\n\n— o AAAAAAAA\n"},
	} {
		c, err := ParseCheckpoint([]byte(tc.body))
		if !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("%s: ParseCheckpoint(%q) = %+v, %v; want ErrMalformedCheckpoint", tc.name, tc.body, c, err)
		}
	}
}

// testKeys returns a signer and verifier for name.
func testKeys(t *testing.T, name string) (note.Signer, note.Verifier) {
	t.Helper()
	skey, vkey, err := GenerateKey(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestSignOpenCheckpoint(t *testing.T) {
	logS, logV := testKeys(t, testOrigin)
	witS, witV := testKeys(t, "witness.example")
	_, otherV := testKeys(t, testOrigin) // same name, different key

	c := Checkpoint{Origin: testOrigin, Size: 1234, Hash: testHash}
	signed, err := SignCheckpoint(c, logS, witS)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(signed, append(c.Marshal(), '\n')) {
		t.Fatalf("signed note %q does not start with body and blank line", signed)
	}

	got, n, err := OpenCheckpoint(signed, testOrigin, note.VerifierList(logV, witV))
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Errorf("OpenCheckpoint = %+v, want %+v", got, c)
	}
	if len(n.Sigs) != 2 || n.Sigs[0].Name != testOrigin || n.Sigs[1].Name != "witness.example" {
		t.Errorf("OpenCheckpoint verified %+v, want both signatures", n.Sigs)
	}

	// With only the log's key, the witness signature is unverified.
	_, n, err = OpenCheckpoint(signed, testOrigin, note.VerifierList(logV))
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 1 {
		t.Errorf("OpenCheckpoint with log key: %d verified, %d unverified signatures; want 1, 1", len(n.Sigs), len(n.UnverifiedSigs))
	}

	if _, _, err := OpenCheckpoint(signed, "example.org/other", note.VerifierList(logV)); !errors.Is(err, ErrWrongOrigin) {
		t.Errorf("OpenCheckpoint with wrong origin: got %v, want ErrWrongOrigin", err)
	}

	_, _, err = OpenCheckpoint(signed, testOrigin, note.VerifierList(otherV))
	if unverified := (*note.UnverifiedNoteError)(nil); !errors.As(err, &unverified) {
		t.Errorf("OpenCheckpoint with wrong key: got %v, want *note.UnverifiedNoteError", err)
	}

	tampered := bytes.Replace(signed, []byte("\n1234\n"), []byte("\n1235\n"), 1)
	_, _, err = OpenCheckpoint(tampered, testOrigin, note.VerifierList(logV))
	if invalid := (*note.InvalidSignatureError)(nil); !errors.As(err, &invalid) {
		t.Errorf("OpenCheckpoint of tampered note: got %v, want *note.InvalidSignatureError", err)
	}

	if _, _, err := OpenCheckpoint(c.Marshal(), testOrigin, note.VerifierList(logV)); err == nil {
		t.Errorf("OpenCheckpoint of an unsigned body succeeded")
	}

	// A validly signed note whose text is not a checkpoint.
	bad, err := note.Sign(&note.Note{Text: testOrigin + "\n01\n" + base64.StdEncoding.EncodeToString(testHash[:]) + "\n"}, logS)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenCheckpoint(bad, testOrigin, note.VerifierList(logV)); !errors.Is(err, ErrMalformedCheckpoint) {
		t.Errorf("OpenCheckpoint of signed non-checkpoint: got %v, want ErrMalformedCheckpoint", err)
	}
}

func TestSignCheckpointRejectsMalformed(t *testing.T) {
	s, _ := testKeys(t, testOrigin)
	for _, c := range []Checkpoint{
		{Origin: "", Size: 1},
		{Origin: "a\n2", Size: 1},
		{Origin: "a\tb", Size: 1},
		{Origin: testOrigin, Size: -1},
	} {
		if _, err := SignCheckpoint(c, s); !errors.Is(err, ErrMalformedCheckpoint) {
			t.Errorf("SignCheckpoint(%+v): got %v, want ErrMalformedCheckpoint", c, err)
		}
	}
	if _, err := SignCheckpoint(Checkpoint{Origin: testOrigin}); err == nil {
		t.Errorf("SignCheckpoint with no signers succeeded")
	}
}

// TestCheckpointInterop checks that transparency-dev/formats, used by
// witnesses and other log tooling, reads our signed checkpoints.
func TestCheckpointInterop(t *testing.T) {
	logS, logV := testKeys(t, testOrigin)
	witS, witV := testKeys(t, "witness.example")
	tree, _ := newTestTree(t, testLeaves(37))
	c := Checkpoint{Origin: testOrigin, Size: tree.Size(), Hash: must(tree.Root())}
	signed, err := SignCheckpoint(c, logS, witS)
	if err != nil {
		t.Fatal(err)
	}
	got, rest, n, err := log.ParseCheckpoint(signed, testOrigin, logV, witV)
	if err != nil {
		t.Fatalf("formats/log.ParseCheckpoint: %v", err)
	}
	if got.Origin != c.Origin || got.Size != uint64(c.Size) || !bytes.Equal(got.Hash, c.Hash[:]) || len(rest) != 0 {
		t.Errorf("formats/log.ParseCheckpoint = %+v, rest %q; want %+v", got, rest, c)
	}
	if len(n.Sigs) != 2 {
		t.Errorf("formats/log.ParseCheckpoint verified %d signatures, want 2", len(n.Sigs))
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	h := base64.StdEncoding.EncodeToString(testHash[:])
	f.Add([]byte(testOrigin + "\n0\n" + h + "\n"))
	f.Add([]byte(testOrigin + "\n1234\n" + h + "\n"))
	f.Add([]byte(testOrigin + "\n1234\n" + h + "\nextension\n"))
	f.Add([]byte(testOrigin + "\n01\n" + h + "\n"))
	f.Add([]byte(testOrigin + "\n1\n" + h))
	f.Add([]byte("o\n9223372036854775807\n" + h + "\n"))
	f.Add([]byte("o\n1\n" + h + "\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := ParseCheckpoint(body)
		if err != nil {
			if !errors.Is(err, ErrMalformedCheckpoint) {
				t.Fatalf("ParseCheckpoint error %v does not wrap ErrMalformedCheckpoint", err)
			}
			return
		}
		m := c.Marshal()
		if bytes.Count(body, []byte("\n")) == 3 {
			// No extension lines: the encoding is canonical.
			if !bytes.Equal(m, body) {
				t.Fatalf("ParseCheckpoint(%q) = %+v, which marshals to %q", body, c, m)
			}
		} else if !bytes.HasPrefix(body, m) {
			t.Fatalf("ParseCheckpoint(%q) = %+v, which marshals to %q, not a prefix", body, c, m)
		}
		if c2, err := ParseCheckpoint(m); err != nil || c2 != c {
			t.Fatalf("ParseCheckpoint(Marshal(%+v)) = %+v, %v", c, c2, err)
		}
		// Whatever we accept, transparency-dev/formats reads the same way.
		var lc log.Checkpoint
		if _, err := lc.Unmarshal(body); err != nil {
			t.Fatalf("formats/log rejects %q, which we accept: %v", body, err)
		}
		if lc.Origin != c.Origin || lc.Size != uint64(c.Size) || !bytes.Equal(lc.Hash, c.Hash[:]) {
			t.Fatalf("formats/log reads %q as %+v, we read %+v", body, lc, c)
		}
	})
}
