package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A Mirror is a subscriber's verified local copy of the ledger and of the
// current state of the sets it reads, kept in a directory:
//
//	mirror.json   which federation and sets it mirrors
//	state/        the ledger and set state (the node's own state machine)
//
// Every entry is re-applied under the node's rules (signatures, rights,
// sequence numbers, payload digests, set state) and every cosigned
// checkpoint is checked against the mirror's own tree, so a mirror holds
// nothing a quorum of voting orgs did not sign. It survives restarts: its
// cursor is its ledger size.
type Mirror struct {
	dir   string
	meta  mirrorMeta
	state *federation.State
}

// mirrorMetaVersion is the version of mirror.json. A future incompatible
// layout would use another number.
const mirrorMetaVersion = 1

type mirrorMeta struct {
	Version    int      `json:"version"`
	Federation string   `json:"federation"`
	Genesis    string   `json:"genesis_sha256"`
	Org        string   `json:"org"`
	Sets       []string `json:"sets"`
}

// parseMirrorMeta decodes mirror.json. Unknown fields, trailing data and
// versions other than [mirrorMetaVersion] are errors: a mirror opened with
// metadata it misreads could mirror the wrong org's view.
func parseMirrorMeta(b []byte) (mirrorMeta, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m mirrorMeta
	if err := dec.Decode(&m); err != nil {
		return mirrorMeta{}, err
	}
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return mirrorMeta{}, errors.New("trailing data after the metadata")
	}
	if m.Version != mirrorMetaVersion {
		return mirrorMeta{}, fmt.Errorf("version %d, this hashfed reads version %d", m.Version, mirrorMetaVersion)
	}
	return m, nil
}

// OpenMirror opens the mirror in dir, creating it for org's view of sets
// (every set org reads, when empty at creation) if dir holds none.
// Reopening with other sets or another org is an error: a set's state is
// only complete if the mirror received every payload of it from the first
// entry.
func OpenMirror(dir string, genesisDoc []byte, org string, sets []string) (*Mirror, error) {
	g, err := federation.ParseGenesis(genesisDoc)
	if err != nil {
		return nil, err
	}
	sum := federation.Digest(genesisDoc)
	want := mirrorMeta{Version: mirrorMetaVersion, Federation: g.Federation, Genesis: fmt.Sprintf("%x", sum[:]), Org: org, Sets: slices.Sorted(slices.Values(sets))}
	path := filepath.Join(dir, "mirror.json")
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		if err := writeFileAtomic(filepath.Join(dir, "genesis.json"), genesisDoc); err != nil {
			return nil, err
		}
		b, _ := json.MarshalIndent(want, "", "  ")
		if err := writeFileAtomic(path, append(b, '\n')); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		have, err := parseMirrorMeta(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if have.Genesis != want.Genesis {
			return nil, fmt.Errorf("%s mirrors federation %q (genesis %s), not %q: use another directory", dir, have.Federation, have.Genesis, g.Federation)
		}
		if have.Org != org {
			return nil, fmt.Errorf("%s is org %q's mirror, not %q's: use another directory", dir, have.Org, org)
		}
		if len(sets) > 0 && !slices.Equal(have.Sets, want.Sets) {
			return nil, fmt.Errorf("%s mirrors sets %v, not %v: a set's state is complete only from the first entry, so mirror other sets in another directory", dir, have.Sets, want.Sets)
		}
		want = have
	}
	st, err := federation.OpenMirror(filepath.Join(dir, "state"), genesisDoc)
	if err != nil {
		return nil, err
	}
	return &Mirror{dir: dir, meta: want, state: st}, nil
}

// OpenMirrorDir opens an existing mirror with the genesis and org it was
// created with, to query or export it without a node.
func OpenMirrorDir(dir string) (*Mirror, error) {
	b, err := os.ReadFile(filepath.Join(dir, "mirror.json"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a hashfed mirror (create one with hashfed subscribe --out %s): %w", dir, dir, err)
	}
	meta, err := parseMirrorMeta(b)
	if err != nil {
		return nil, fmt.Errorf("%s/mirror.json: %w", dir, err)
	}
	doc, err := os.ReadFile(filepath.Join(dir, "genesis.json"))
	if err != nil {
		return nil, err
	}
	return OpenMirror(dir, doc, meta.Org, nil)
}

// Dir returns the mirror's directory.
func (m *Mirror) Dir() string { return m.dir }

// Close closes the mirror's database.
func (m *Mirror) Close() error { return m.state.Close() }

// Sets returns the sets the mirror asked for (empty: every set its org reads).
func (m *Mirror) Sets() []string { return slices.Clone(m.meta.Sets) }

// ReadSets returns the sets whose state the mirror holds: the sets it
// mirrors that its org reads now.
func (m *Mirror) ReadSets() []string {
	reg := m.state.Registry()
	var out []string
	for _, name := range slices.Sorted(maps.Keys(reg.Sets)) {
		if (len(m.meta.Sets) == 0 || slices.Contains(m.meta.Sets, name)) && reg.CanRead(m.meta.Org, name) {
			out = append(out, name)
		}
	}
	return out
}

// Cursor is the index of the next entry the mirror needs.
func (m *Mirror) Cursor() int64 { return m.state.Size() }

// State returns the mirror's state for queries (counts, lookups, listings).
func (m *Mirror) State() *federation.State { return m.state }

// Apply applies the next entry, as served: leaf and its payload (nil if none came).
func (m *Mirror) Apply(index int64, leaf, payload []byte) error {
	if index != m.Cursor() {
		return fmt.Errorf("mirror needs entry %d, got %d", m.Cursor(), index)
	}
	return m.state.ApplyLeaf(leaf, payload)
}

// Verify fetches the node's latest cosigned checkpoint and, if the mirror
// holds the ledger that far, checks the checkpoint against the mirror's own
// tree and records it. It returns the size the mirror has verified up to.
func (m *Mirror) Verify(ctx context.Context, c *Client) (int64, error) {
	r, err := c.Ledger.GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{})
	if err != nil {
		return 0, Explain(err)
	}
	_, have := m.state.LatestCheckpoint()
	signed := r.GetSignedCheckpoint()
	sc, err := CheckpointPolicy{}.accept(c.genesis, signed)
	if err != nil {
		return have, fmt.Errorf("the node's checkpoint: %w", err)
	}
	if sc.Size <= have || sc.Size > m.Cursor() {
		return have, nil
	}
	if err := m.state.ApplyCheckpoint(signed); err != nil {
		return have, fmt.Errorf("the node's cosigned checkpoint of size %d does not match the mirror's ledger: %w", sc.Size, err)
	}
	return sc.Size, nil
}

// Export writes the current signals of a mirrored set in an export layout
// (see [federation.ExportFormats]) and returns how many it wrote.
func (m *Mirror) Export(w io.Writer, set, format string) (int, error) {
	if len(m.meta.Sets) > 0 && !slices.Contains(m.meta.Sets, set) {
		return 0, fmt.Errorf("the mirror holds sets %s, not %q", strings.Join(m.meta.Sets, ", "), set)
	}
	if !m.state.CanRead(m.meta.Org, set) {
		return 0, fmt.Errorf("org %q does not read set %q, so the mirror holds none of its values", m.meta.Org, set)
	}
	sw, err := federation.NewSignalWriter(w, format)
	if err != nil {
		return 0, err
	}
	if _, err := m.state.ListSignals(set, "", 0, 0, func(s *federation.SignalState) error {
		return sw.Write(s.Type, s.Value, s.Labels)
	}); err != nil {
		return 0, err
	}
	return sw.Count(), sw.Close()
}

// writeFileAtomic replaces path with b durably: a temporary file in the
// same directory, synced, renamed over path, then the directory synced. A
// crash leaves either the old file or the new one.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
