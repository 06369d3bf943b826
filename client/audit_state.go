package client

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
)

// AuditStateVersion is the version of the audit state format. A future
// incompatible format would use a different number.
const AuditStateVersion = 1

// ErrStateMismatch is wrapped by audit errors about a saved [AuditState]
// that does not belong to the genesis audited, or is not self-consistent.
var ErrStateMismatch = errors.New("audit state does not match")

// An AuditState is what an auditor keeps between audits: the last checkpoint
// it verified, and what it needs to verify the entries after it without
// fetching the ones before.
//
// It is stored as JSON (see [AuditState.Marshal]):
//
//	{
//	  "version": 1,
//	  "federation": "example.hashfed",
//	  "genesis_sha256": "<hex SHA-256 of the genesis document>",
//	  "size": 3,
//	  "root": "<base64 root hash of the tree of that size>",
//	  "checkpoint": "<the signed checkpoint note, as served>",
//	  "next": [{"org": "ngo", "set": "ngo/csam", "next": 3}],
//	  "verified_at": "2026-01-02T15:04:05Z"
//	}
type AuditState struct {
	// Version is AuditStateVersion.
	Version int `json:"version"`
	// Federation is the genesis's federation name, and GenesisSHA256 the
	// lowercase hex SHA-256 of the genesis document, entry 0 of the ledger.
	Federation    string `json:"federation"`
	GenesisSHA256 string `json:"genesis_sha256"`
	// Size and Root are the verified tree: its number of entries and its
	// base64 RFC 6962 root hash.
	Size int64  `json:"size"`
	Root string `json:"root"`
	// Checkpoint is the signed checkpoint note for Size and Root that the
	// audit accepted; it is the evidence if a later checkpoint contradicts it.
	Checkpoint string `json:"checkpoint"`
	// Next holds, for each (org, set) with at least one statement in the
	// verified tree, the sequence number its next statement must carry;
	// sorted by org, then set. A pair not listed expects sequence 1.
	Next []SetSequence `json:"next"`
	// Registry is the federation's orgs, keys and sets as of Size, replayed
	// from the genesis and every governance act verified so far, so an
	// incremental audit checks later entries against the keys valid then.
	Registry *federation.Registry `json:"registry,omitempty"`
	// VerifiedAt is when the audit finished, RFC 3339 in UTC; informative.
	VerifiedAt string `json:"verified_at"`
}

// A SetSequence is the next sequence number due from Org in Set.
type SetSequence struct {
	Org  string `json:"org"`
	Set  string `json:"set"`
	Next uint64 `json:"next"`
}

// ParseAuditState decodes and checks the form of an audit state. Unknown
// fields are an error. It does not verify the checkpoint's signatures, which
// need the genesis; an audit does that.
func ParseAuditState(b []byte) (*AuditState, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var s AuditState
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("parsing audit state: %w", err)
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return nil, errors.New("parsing audit state: trailing data after the document")
	}
	if s.Version != AuditStateVersion {
		return nil, fmt.Errorf("audit state: version %d, this hashfed reads version %d", s.Version, AuditStateVersion)
	}
	if s.Size < 1 {
		return nil, fmt.Errorf("audit state: size %d, want at least 1 (the genesis entry)", s.Size)
	}
	if _, err := s.root(); err != nil {
		return nil, err
	}
	if _, err := hex.DecodeString(s.GenesisSHA256); err != nil || len(s.GenesisSHA256) != 64 {
		return nil, fmt.Errorf("audit state: genesis_sha256 %q is not 64 hex digits", s.GenesisSHA256)
	}
	if err := checkRegistryForm(s.Registry); err != nil {
		return nil, fmt.Errorf("audit state: registry: %w", err)
	}
	for i, n := range s.Next {
		if n.Next < 2 {
			return nil, fmt.Errorf("audit state: next sequence %d for org %q set %q, want at least 2", n.Next, n.Org, n.Set)
		}
		if i > 0 && compareSeq(s.Next[i-1], n) >= 0 {
			return nil, errors.New("audit state: next sequences are not sorted by org and set, or repeat one")
		}
	}
	return &s, nil
}

// checkRegistryForm checks that a saved registry has the form the registry
// code relies on, so that an audit resuming from it cannot crash: orgs and
// sets present (not null), each under its own name.
func checkRegistryForm(r *federation.Registry) error {
	if r == nil {
		return nil
	}
	if r.Orgs == nil || r.Sets == nil {
		return errors.New("orgs and sets must be present")
	}
	for name, o := range r.Orgs {
		if o == nil || o.Name != name {
			return fmt.Errorf("org %q is null or named otherwise", name)
		}
	}
	for name, set := range r.Sets {
		if set == nil || set.Name != name {
			return fmt.Errorf("set %q is null or named otherwise", name)
		}
	}
	return nil
}

// Marshal encodes s as indented JSON, the form [AuditState.Save] writes.
func (s *AuditState) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// LoadAuditState reads and parses the audit state at path. If the file does
// not exist, the error wraps [fs.ErrNotExist].
func LoadAuditState(path string) (*AuditState, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseAuditState(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Save replaces the file at path with s atomically: it writes a temporary
// file in the same directory, syncs it and renames it over path, so a crash
// leaves either the old state or the new one. When Save returns nil, the
// new state is on disk.
func (s *AuditState) Save(path string) error {
	b, err := s.Marshal()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, b); err != nil {
		return fmt.Errorf("couldn't save audit state: %w", err)
	}
	return nil
}

func (s *AuditState) root() (tlog.Hash, error) {
	raw, err := base64.StdEncoding.DecodeString(s.Root)
	if err != nil || len(raw) != tlog.HashSize {
		return tlog.Hash{}, fmt.Errorf("audit state: root %q is not base64 of %d bytes", s.Root, tlog.HashSize)
	}
	return tlog.Hash(raw), nil
}

// check verifies that s belongs to the ledger founded by doc and is
// self-consistent: its checkpoint note verifies against the genesis keys and
// states its Size and Root. It does not apply a [CheckpointPolicy]: the
// checkpoint was accepted when it was saved. Errors wrap [ErrStateMismatch]
// or come from verifying the note.
func (s *AuditState) check(g *federation.Genesis, doc []byte) (*signedCheckpoint, error) {
	if s.Federation != g.Federation {
		return nil, fmt.Errorf("%w: it is for federation %q, the genesis founds %q", ErrStateMismatch, s.Federation, g.Federation)
	}
	if sum := federation.Digest(doc); s.GenesisSHA256 != hex.EncodeToString(sum[:]) {
		return nil, fmt.Errorf("%w: it is for the genesis with SHA-256 %s, the genesis file has %x", ErrStateMismatch, s.GenesisSHA256, sum)
	}
	root, err := s.root()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateMismatch, err)
	}
	sc, err := openCheckpoint(g, []byte(s.Checkpoint))
	if err != nil {
		return nil, fmt.Errorf("%w: its checkpoint: %w", ErrStateMismatch, err)
	}
	if want := (ledger.Checkpoint{Origin: g.Federation, Size: s.Size, Hash: root}); sc.Checkpoint != want {
		return nil, fmt.Errorf("%w: it records size %d root %s, but its signed checkpoint says size %d root %s", ErrStateMismatch, s.Size, s.Root, sc.Size, sc.Hash)
	}
	return sc, nil
}

// seqKey identifies one publisher's sequence: an org and a set.
type seqKey struct{ org, set string }

// sequences returns s.Next as a map.
func (s *AuditState) sequences() map[seqKey]uint64 {
	m := make(map[seqKey]uint64, len(s.Next))
	for _, n := range s.Next {
		m[seqKey{n.Org, n.Set}] = n.Next
	}
	return m
}

// sortedSequences returns m as a sorted slice for [AuditState.Next].
func sortedSequences(m map[seqKey]uint64) []SetSequence {
	out := make([]SetSequence, 0, len(m))
	for k, n := range m {
		out = append(out, SetSequence{Org: k.org, Set: k.set, Next: n})
	}
	slices.SortFunc(out, compareSeq)
	return out
}

func compareSeq(a, b SetSequence) int {
	return cmp.Or(cmp.Compare(a.Org, b.Org), cmp.Compare(a.Set, b.Set))
}
