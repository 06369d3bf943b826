package ledger

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// ProofHeader is the first line of a C2SP tlog-proof. A future incompatible
// encoding would use a different header.
const ProofHeader = "c2sp.org/tlog-proof@v1"

// ErrMalformedProof is wrapped by errors from [ParseProof].
var ErrMalformedProof = errors.New("malformed tlog-proof")

// A Proof is an offline-verifiable proof that an entry is in a log
// (C2SP tlog-proof): the entry's index, an inclusion proof in the tree the
// checkpoint commits to, optional application data, and the signed checkpoint.
//
// Its text form is
//
//	c2sp.org/tlog-proof@v1
//	extra <base64>          (optional)
//	index <decimal>
//	<base64 hash>           (zero or more, leaf to root)
//
//	<signed checkpoint note>
type Proof struct {
	Extra      []byte // empty when absent
	Index      int64
	Hashes     tlog.RecordProof
	Checkpoint []byte // the signed note, verbatim
}

// Marshal encodes p.
func (p *Proof) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(ProofHeader + "\n")
	if len(p.Extra) > 0 {
		b.WriteString("extra " + base64.StdEncoding.EncodeToString(p.Extra) + "\n")
	}
	fmt.Fprintf(&b, "index %d\n", p.Index)
	for _, h := range p.Hashes {
		b.WriteString(base64.StdEncoding.EncodeToString(h[:]) + "\n")
	}
	b.WriteString("\n")
	b.Write(p.Checkpoint)
	return b.Bytes()
}

// ParseProof decodes a tlog-proof. It checks the syntax only; [Proof.Verify]
// checks the cryptography.
func ParseProof(b []byte) (*Proof, error) {
	head, cp, ok := bytes.Cut(b, []byte("\n\n"))
	if !ok || len(cp) == 0 {
		return nil, fmt.Errorf("%w: no blank line before the checkpoint", ErrMalformedProof)
	}
	lines := strings.Split(string(head), "\n")
	if lines[0] != ProofHeader {
		return nil, fmt.Errorf("%w: first line is %q, want %q", ErrMalformedProof, short(lines[0]), ProofHeader)
	}
	p := &Proof{Checkpoint: cp}
	rest := lines[1:]
	if len(rest) > 0 && strings.HasPrefix(rest[0], "extra ") {
		line := strings.TrimPrefix(rest[0], "extra ")
		e, err := base64.StdEncoding.Strict().DecodeString(line)
		// The decoder skips '\r' and '\n' even in strict mode: only the
		// canonical encoding is accepted, so the proof marshals back to
		// the same bytes.
		if err != nil || len(e) == 0 || base64.StdEncoding.EncodeToString(e) != line {
			return nil, fmt.Errorf("%w: extra line is not non-empty base64", ErrMalformedProof)
		}
		p.Extra = e
		rest = rest[1:]
	}
	if len(rest) == 0 || !strings.HasPrefix(rest[0], "index ") {
		return nil, fmt.Errorf("%w: missing index line", ErrMalformedProof)
	}
	idx, err := strconv.ParseInt(strings.TrimPrefix(rest[0], "index "), 10, 64)
	if err != nil || idx < 0 || strconv.FormatInt(idx, 10) != strings.TrimPrefix(rest[0], "index ") {
		return nil, fmt.Errorf("%w: bad index line %q", ErrMalformedProof, short(rest[0]))
	}
	p.Index = idx
	for _, l := range rest[1:] {
		raw, err := base64.StdEncoding.Strict().DecodeString(l)
		if err != nil || len(raw) != len(tlog.Hash{}) || base64.StdEncoding.EncodeToString(raw) != l {
			return nil, fmt.Errorf("%w: proof line %q is not a base64 SHA-256 hash", ErrMalformedProof, short(l))
		}
		var h tlog.Hash
		copy(h[:], raw)
		p.Hashes = append(p.Hashes, h)
	}
	if len(p.Hashes) > 63 {
		return nil, fmt.Errorf("%w: %d proof hashes, more than any tree needs", ErrMalformedProof, len(p.Hashes))
	}
	return p, nil
}

func short(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// Verify checks that leaf is entry p.Index of the tree that checkpoint cp
// (already opened and verified by the caller) commits to.
func (p *Proof) Verify(leaf []byte, cp Checkpoint) error {
	if p.Index >= cp.Size {
		return fmt.Errorf("%w: entry %d is not in a tree of size %d", ErrInvalidProof, p.Index, cp.Size)
	}
	return VerifyInclusion(leaf, p.Index, cp.Size, cp.Hash, p.Hashes)
}
