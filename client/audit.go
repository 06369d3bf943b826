package client

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// An AuditError is the first thing an audit found wrong. Index is the ledger
// entry concerned, or -1 when the failure is not about one entry.
type AuditError struct {
	Index int64
	What  string
}

func (e *AuditError) Error() string {
	if e.Index < 0 {
		return "audit failed: " + e.What
	}
	return fmt.Sprintf("audit failed at entry %d: %s", e.Index, e.What)
}

func auditErr(index int64, format string, args ...any) *AuditError {
	return &AuditError{Index: index, What: fmt.Sprintf(format, args...)}
}

// An AuditReport summarises a successful audit.
type AuditReport struct {
	// Checkpoint is the verified checkpoint; SignedBy the keys that signed it.
	Checkpoint ledger.Checkpoint
	SignedBy   []string
	// Entries counts the entries verified; InclusionProofs the node-served
	// proofs checked; Statements the statement signatures verified; Signals
	// the signals those statements commit to (values never fetched).
	Entries, InclusionProofs, Statements, Signals int64
}

// Audit verifies the node's ledger from the genesis up, using statements only:
//
//   - the latest checkpoint is signed by a node key the genesis registers, for
//     this federation's origin;
//   - the entries the node serves hash to the checkpoint's root, and every
//     entry's inclusion proof from the node verifies against it;
//   - entry 0 is exactly the caller's genesis document;
//   - every statement verifies under its org's key, names this federation, a
//     set its org owns, and the next sequence number for that (org, set).
//
// It returns the first failure as an *AuditError.
func (c *Client) Audit(ctx context.Context) (*AuditReport, error) {
	g := c.genesis
	verifiers, err := g.CheckpointVerifiers()
	if err != nil {
		return nil, err
	}
	resp, err := c.Ledger.GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{})
	if err != nil {
		return nil, Explain(err)
	}
	cp, n, err := ledger.OpenCheckpoint(resp.GetSignedCheckpoint(), g.Federation, verifiers)
	if err != nil {
		return nil, auditErr(-1, "checkpoint does not verify against the genesis node keys: %v", err)
	}
	rep := &AuditReport{Checkpoint: cp}
	for _, s := range n.Sigs {
		rep.SignedBy = append(rep.SignedBy, s.Name)
	}
	if cp.Size == 0 {
		return nil, auditErr(-1, "checkpoint has size 0: the ledger does not even hold its genesis entry")
	}

	leaves := make([][]byte, 0, cp.Size)
	for start := int64(0); start < cp.Size; {
		end := min(cp.Size, start+1000)
		r, err := c.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: start, End: end})
		if err != nil {
			return nil, Explain(err)
		}
		if len(r.GetEntries()) == 0 {
			return nil, auditErr(start, "node returned no entries for [%d, %d)", start, end)
		}
		leaves = append(leaves, r.GetEntries()...)
		start += int64(len(r.GetEntries()))
	}
	if int64(len(leaves)) != cp.Size {
		return nil, auditErr(-1, "node returned %d entries for a checkpoint of size %d", len(leaves), cp.Size)
	}
	root, err := ledger.RootFromLeaves(leaves)
	if err != nil {
		return nil, err
	}
	if root != cp.Hash {
		return nil, auditErr(-1, "the %d entries served hash to root %s, but the checkpoint says %s", cp.Size, root, cp.Hash)
	}

	next := map[[2]string]uint64{}
	for i, leaf := range leaves {
		idx := int64(i)
		pr, err := c.Ledger.GetInclusionProof(ctx, &hashfedv1.GetInclusionProofRequest{Index: idx, TreeSize: cp.Size})
		if err != nil {
			return nil, Explain(err)
		}
		proof := make(tlog.RecordProof, len(pr.GetHashes()))
		for j, h := range pr.GetHashes() {
			if len(h) != len(tlog.Hash{}) {
				return nil, auditErr(idx, "inclusion proof hash %d has %d bytes", j, len(h))
			}
			copy(proof[j][:], h)
		}
		if err := ledger.VerifyInclusion(leaf, idx, cp.Size, cp.Hash, proof); err != nil {
			return nil, auditErr(idx, "inclusion proof does not verify: %v", err)
		}
		rep.InclusionProofs++

		u, err := c.VerifyEntry(idx, leaf, nil)
		if err != nil {
			return nil, auditErr(idx, "%v", err)
		}
		rep.Entries++
		st := u.Statement
		if st == nil {
			continue
		}
		if st.Federation != g.Federation {
			return nil, auditErr(idx, "statement is for federation %q", st.Federation)
		}
		set := setOf(g, st.Set)
		if set == nil {
			return nil, auditErr(idx, "statement names set %q, which does not exist", st.Set)
		}
		if set.Owner() != st.Org || !g.Org(st.Org).HasRole(federation.RolePublisher) {
			return nil, auditErr(idx, "org %q published into set %q, which it may not", st.Org, st.Set)
		}
		k := [2]string{st.Org, st.Set}
		want := next[k]
		if want == 0 {
			want = 1
		}
		if st.Sequence != want {
			return nil, auditErr(idx, "statement of org %q for set %q has sequence %d, want %d", st.Org, st.Set, st.Sequence, want)
		}
		next[k] = want + 1
		rep.Statements++
		rep.Signals += int64(st.Count)
	}
	return rep, nil
}

func setOf(g *federation.Genesis, name string) *federation.Set {
	for i := range g.Sets {
		if g.Sets[i].Name == name {
			return &g.Sets[i]
		}
	}
	return nil
}
