package ledger

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A Checkpoint is a C2SP tlog-checkpoint: a commitment to the tree of Size
// leaves with root hash Hash, made by the log named Origin. Its encoding is
// specified in the package documentation.
type Checkpoint struct {
	// Origin identifies the log; for hashfed it is the federation's name.
	Origin string
	// Size is the number of leaves in the tree.
	Size int64
	// Hash is the tree's RFC 6962 root hash.
	Hash tlog.Hash
}

// Marshal returns the checkpoint body: origin, size and base64 root hash,
// each on its own line. It does not validate c; a Checkpoint that
// [ParseCheckpoint] would not return (such as one with an empty Origin or a
// negative Size) marshals to a body that ParseCheckpoint rejects.
// [SignCheckpoint] validates.
func (c Checkpoint) Marshal() []byte {
	b := make([]byte, 0, len(c.Origin)+1+20+1+base64.StdEncoding.EncodedLen(tlog.HashSize)+1)
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendInt(b, c.Size, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Hash[:])
	b = append(b, '\n')
	return b
}

// ParseCheckpoint parses a checkpoint body, such as the text of a signed
// note. It is strict: the origin must be non-empty, the body valid UTF-8
// without control characters other than newline, the size a decimal number
// without sign or leading zeros that fits an int64, the hash the canonical
// padded standard base64 encoding of 32 bytes, and every line, including
// the last, must end in a newline. Non-empty extension lines after the hash
// are accepted and ignored. Errors wrap [ErrMalformedCheckpoint].
func ParseCheckpoint(body []byte) (Checkpoint, error) {
	if !utf8.Valid(body) {
		return Checkpoint{}, fmt.Errorf("%w: invalid UTF-8", ErrMalformedCheckpoint)
	}
	for _, b := range body {
		if b < 0x20 && b != '\n' {
			return Checkpoint{}, fmt.Errorf("%w: control character %#02x", ErrMalformedCheckpoint, b)
		}
	}
	if len(body) == 0 || body[len(body)-1] != '\n' {
		return Checkpoint{}, fmt.Errorf("%w: missing final newline", ErrMalformedCheckpoint)
	}
	lines := bytes.Split(body[:len(body)-1], []byte("\n"))
	if len(lines) < 3 {
		return Checkpoint{}, fmt.Errorf("%w: %d lines, want at least 3", ErrMalformedCheckpoint, len(lines))
	}
	for i, l := range lines {
		if len(l) == 0 {
			return Checkpoint{}, fmt.Errorf("%w: line %d is empty", ErrMalformedCheckpoint, i+1)
		}
	}

	origin, sizeLine, hashLine := lines[0], lines[1], lines[2]
	size, err := parseSize(sizeLine)
	if err != nil {
		return Checkpoint{}, err
	}
	// Re-encoding rejects non-canonical forms (such as set padding bits), so
	// that a parsed checkpoint marshals back to the same bytes.
	raw, err := base64.StdEncoding.DecodeString(string(hashLine))
	if err != nil || len(raw) != tlog.HashSize || base64.StdEncoding.EncodeToString(raw) != string(hashLine) {
		return Checkpoint{}, fmt.Errorf("%w: root hash %q is not canonical base64 of %d bytes", ErrMalformedCheckpoint, hashLine, tlog.HashSize)
	}
	return Checkpoint{Origin: string(origin), Size: size, Hash: tlog.Hash(raw)}, nil
}

// parseSize parses a checkpoint's size line.
func parseSize(line []byte) (int64, error) {
	bad := len(line) > 1 && line[0] == '0'
	for _, b := range line {
		bad = bad || b < '0' || b > '9'
	}
	if bad {
		return 0, fmt.Errorf("%w: size %q is not a decimal number without leading zeros", ErrMalformedCheckpoint, line)
	}
	size, err := strconv.ParseInt(string(line), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: size %q: %w", ErrMalformedCheckpoint, line, err)
	}
	return size, nil
}

// validate returns an error wrapping [ErrMalformedCheckpoint] unless c
// marshals to a body that parses back to c.
func (c Checkpoint) validate() error {
	got, err := ParseCheckpoint(c.Marshal())
	if err != nil {
		return err
	}
	if got != c {
		return fmt.Errorf("%w: origin %q spans several lines", ErrMalformedCheckpoint, c.Origin)
	}
	return nil
}

// SignCheckpoint returns c as a signed note, signed by each of signers in
// order. It returns an error wrapping [ErrMalformedCheckpoint] if c cannot be
// encoded (see [ParseCheckpoint]), and an error if signers is empty, since a
// note without signatures cannot be opened.
func SignCheckpoint(c Checkpoint, signers ...note.Signer) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("couldn't sign checkpoint: %w", err)
	}
	if len(signers) == 0 {
		return nil, errors.New("couldn't sign checkpoint: no signers")
	}
	signed, err := note.Sign(&note.Note{Text: string(c.Marshal())}, signers...)
	if err != nil {
		return nil, fmt.Errorf("couldn't sign checkpoint: %w", err)
	}
	return signed, nil
}

// OpenCheckpoint verifies signed, a checkpoint in signed-note form, and
// returns the checkpoint and the note. At least one signature must verify
// with verifiers; signatures by unknown keys (such as other witnesses') are
// kept in the note's UnverifiedSigs, and the verified ones in Sigs, so that
// callers can apply their own signature-counting policy.
//
// Errors from [note.Open] are wrapped, so that [errors.As] finds, for
// example, a [*note.UnverifiedNoteError] or [*note.InvalidSignatureError].
// A body that does not parse yields an error wrapping
// [ErrMalformedCheckpoint], and a checkpoint whose origin is not wantOrigin
// one wrapping [ErrWrongOrigin].
func OpenCheckpoint(signed []byte, wantOrigin string, verifiers note.Verifiers) (Checkpoint, *note.Note, error) {
	n, err := note.Open(signed, verifiers)
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("couldn't verify checkpoint note: %w", err)
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("couldn't parse signed checkpoint: %w", err)
	}
	if c.Origin != wantOrigin {
		return Checkpoint{}, nil, fmt.Errorf("%w: got %q, want %q", ErrWrongOrigin, c.Origin, wantOrigin)
	}
	return c, n, nil
}

// GenerateKey generates an Ed25519 note key pair named name, using
// crypto/rand, and returns the encoded signer and verifier keys as
// [note.GenerateKey] does. The name is conventionally the origin of the
// checkpoints the key will sign.
func GenerateKey(name string) (skey, vkey string, err error) {
	skey, vkey, err = note.GenerateKey(rand.Reader, name)
	if err != nil {
		return "", "", fmt.Errorf("couldn't generate note key %q: %w", name, err)
	}
	return skey, vkey, nil
}
