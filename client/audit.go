package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// An AuditError is the first thing an audit found wrong, other than a split
// view (a *[SplitViewError]).
type AuditError struct {
	// Node is the address of the node whose answer failed, or "".
	Node string
	// Index is the ledger entry concerned, or -1 when the failure is not
	// about one entry.
	Index int64
	Err   error
}

func (e *AuditError) Error() string {
	var b strings.Builder
	b.WriteString("audit failed")
	if e.Index >= 0 {
		fmt.Fprintf(&b, " at entry %d", e.Index)
	}
	if e.Node != "" {
		fmt.Fprintf(&b, " (node %s)", e.Node)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *AuditError) Unwrap() error { return e.Err }

// AuditOptions configure [AuditNodes].
type AuditOptions struct {
	// Policy says which checkpoints are accepted. The zero value requires
	// signatures from a majority of the voting orgs.
	Policy CheckpointPolicy
	// State is the auditor's state from its last successful audit, or nil
	// for a first audit, which verifies from the genesis.
	State *AuditState
	// Full verifies from the genesis and ignores State.
	Full bool
}

// An AuditReport summarises an audit. [AuditNodes] returns it, as complete
// as the audit got, also when the audit fails.
type AuditReport struct {
	// Checkpoint is the checkpoint audited: the largest one accepted, as
	// served by Node. SignedCheckpoint is its signed note, SignedBy the genesis
	// keys whose signatures on it verified, and Orgs the voting orgs among
	// those keys' nodes.
	Checkpoint       ledger.Checkpoint
	Node             string
	SignedCheckpoint []byte
	SignedBy, Orgs   []string
	// Nodes says what each node asked served, in the order asked.
	Nodes []NodeCheckpoint
	// Full says the audit verified the ledger from entry 0. Otherwise it
	// continued from the saved state's tree of size From.
	Full bool
	From int64
	// Entries counts the entries verified, InclusionProofs the node-served
	// inclusion proofs checked, ConsistencyProofs the consistency proofs
	// checked (from the saved state, and between nodes' checkpoints),
	// Statements the statement signatures verified, and Signals the signals
	// those statements commit to (their values are never fetched).
	Entries, InclusionProofs, ConsistencyProofs, Statements, Signals int64
	// State is the auditor's new state, to pass to the next audit. It is
	// set only when the audit succeeded.
	State *AuditState
}

// A NodeCheckpoint is what one node served when asked for its checkpoint.
type NodeCheckpoint struct {
	// Node is the node's address.
	Node string
	// Checkpoint, SignedCheckpoint, SignedBy and Orgs are as in
	// [AuditReport], and zero if the checkpoint did not verify.
	Checkpoint       ledger.Checkpoint
	SignedCheckpoint []byte
	SignedBy, Orgs   []string
	// Err says why the checkpoint was not accepted, or is nil.
	Err error
}

// Audit audits the ledger through c's node alone; see [AuditNodes].
func (c *Client) Audit(ctx context.Context, opts AuditOptions) (*AuditReport, error) {
	return AuditNodes(ctx, []*Client{c}, opts)
}

// AuditNodes verifies the ledger as the nodes behind clients serve it,
// using statements only, never signal values. All clients must hold the
// same genesis document. It checks that:
//
//   - every node's latest checkpoint is signed for this federation by
//     checkpoint keys the genesis registers, from as many voting orgs as
//     opts.Policy requires;
//   - the accepted checkpoints are views of one ledger, and extend the one
//     in opts.State: equal sizes have equal roots, and the node holding the
//     largest checkpoint proves by consistency proofs that its tree extends
//     each smaller one;
//   - every entry of the largest checkpoint's tree not verified before (all
//     of them with opts.Full or without a state) is served by its node with
//     an inclusion proof that verifies against it; a full audit also
//     recomputes the root from all the entries, and checks that entry 0 is
//     exactly the genesis document;
//   - every statement verifies under the key its org held at the statement's
//     index, names this federation and a set its org owns, and carries the
//     next sequence number for that (org, set), continuing from opts.State.
//
// A split view is returned as a *[SplitViewError] holding both signed
// checkpoints; any other failure as an *[AuditError] (or a plain error for
// bad options). The report says what was verified until then; its State is
// set only on success. A node whose checkpoint is refused (or which does not
// answer) fails the audit, but only after the others were audited.
func AuditNodes(ctx context.Context, clients []*Client, opts AuditOptions) (*AuditReport, error) {
	if len(clients) == 0 {
		return nil, errors.New("audit: no node to ask")
	}
	g, doc := clients[0].genesis, clients[0].doc
	for _, c := range clients[1:] {
		if !bytes.Equal(c.doc, doc) {
			return nil, errors.New("audit: the clients were given different genesis documents")
		}
	}
	if _, err := opts.Policy.need(g); err != nil {
		return nil, err
	}
	rep := &AuditReport{Full: opts.Full || opts.State == nil}

	var saved *seenCheckpoint
	next := map[seqKey]uint64{}
	reg := federation.NewRegistry(g)
	if !rep.Full {
		sc, err := opts.State.check(g, doc)
		if err != nil {
			return rep, &AuditError{Index: -1, Err: err}
		}
		saved = &seenCheckpoint{cp: sc.Checkpoint, ev: Evidence{Node: SavedState, Checkpoint: sc.Note}}
		rep.From = sc.Size
		next = opts.State.sequences()
		if opts.State.Registry != nil {
			reg = opts.State.Registry.Clone()
		}
	}

	// Every node's checkpoint; the first largest accepted one is audited.
	var nodeErr error
	var seen []seenCheckpoint
	var accepted []int // indexes into clients and rep.Nodes, parallel to seen
	largest := -1
	for i, c := range clients {
		nc := c.nodeCheckpoint(ctx, opts.Policy)
		rep.Nodes = append(rep.Nodes, nc)
		if nc.Err != nil {
			if nodeErr == nil {
				nodeErr = &AuditError{Node: nc.Node, Index: -1, Err: nc.Err}
			}
			continue
		}
		seen = append(seen, seenCheckpoint{cp: nc.Checkpoint, ev: Evidence{Node: nc.Node, Checkpoint: nc.SignedCheckpoint}, prove: c.consistencyProof})
		accepted = append(accepted, i)
		if largest < 0 || nc.Checkpoint.Size > seen[largest].cp.Size {
			largest = len(seen) - 1
		}
	}
	if largest < 0 {
		return rep, nodeErr
	}
	top, lc := seen[largest], clients[accepted[largest]]
	nc := rep.Nodes[accepted[largest]]
	rep.Checkpoint, rep.Node, rep.SignedCheckpoint, rep.SignedBy, rep.Orgs = nc.Checkpoint, nc.Node, nc.SignedCheckpoint, nc.SignedBy, nc.Orgs

	// Every accepted checkpoint, and the saved one, must be a view of the
	// audited tree. Views consistent with one tree are consistent with each
	// other, so comparing each with the largest finds any split view.
	others := append([]seenCheckpoint(nil), seen[:largest]...)
	others = append(others, seen[largest+1:]...)
	if saved != nil {
		if saved.cp.Size > top.cp.Size {
			return rep, &AuditError{Node: top.ev.Node, Index: -1, Err: fmt.Errorf(
				"the largest checkpoint served has size %d, smaller than the %d entries verified before: the nodes asked are behind, or have rolled back",
				top.cp.Size, saved.cp.Size)}
		}
		others = append([]seenCheckpoint{*saved}, others...)
	}
	for _, o := range others {
		if err := checkSplitView(ctx, o, top); err != nil {
			var sv *SplitViewError
			if errors.As(err, &sv) {
				return rep, sv
			}
			return rep, &AuditError{Node: top.ev.Node, Index: -1, Err: err}
		}
		if o.cp.Size != top.cp.Size {
			rep.ConsistencyProofs++
		}
	}

	if err := lc.auditEntries(ctx, top.cp, rep.From, reg, next, rep); err != nil {
		return rep, err
	}
	if nodeErr != nil {
		return rep, nodeErr
	}
	sum := federation.Digest(doc)
	rep.State = &AuditState{
		Version:       AuditStateVersion,
		Federation:    g.Federation,
		GenesisSHA256: hex.EncodeToString(sum[:]),
		Size:          top.cp.Size,
		Root:          top.cp.Hash.String(),
		Checkpoint:    string(top.ev.Checkpoint),
		Next:          sortedSequences(next),
		Registry:      reg,
		VerifiedAt:    time.Now().UTC().Format(time.RFC3339),
	}
	return rep, nil
}

// nodeCheckpoint fetches the node's checkpoint and applies policy to it.
func (c *Client) nodeCheckpoint(ctx context.Context, policy CheckpointPolicy) NodeCheckpoint {
	nc := NodeCheckpoint{Node: c.Target()}
	resp, err := c.Ledger.GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{})
	if err != nil {
		nc.Err = Explain(err)
		return nc
	}
	sc, err := policy.accept(c.genesis, resp.GetSignedCheckpoint())
	if err != nil {
		nc.Err = fmt.Errorf("checkpoint not accepted: %w", err)
		return nc
	}
	nc.Checkpoint, nc.SignedCheckpoint, nc.SignedBy, nc.Orgs = sc.Checkpoint, sc.Note, sc.SignedBy, sc.Orgs
	return nc
}

// Target returns the address the client dials.
func (c *Client) Target() string { return c.conn.Target() }

// auditEntries verifies entries [from, cp.Size) of the tree cp as served by
// c's node, continuing the sequences in next (which it updates) and counting
// in rep. With from 0 it also recomputes cp's root from all entries.
func (c *Client) auditEntries(ctx context.Context, cp ledger.Checkpoint, from int64, reg *federation.Registry, next map[seqKey]uint64, rep *AuditReport) error {
	node := c.Target()
	fail := func(index int64, err error) error { return &AuditError{Node: node, Index: index, Err: err} }
	var leaves [][]byte // every leaf, kept in a full audit to recompute the root
	for start := from; start < cp.Size; {
		end := min(cp.Size, start+maxEntriesPerCall)
		r, err := c.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: start, End: end})
		if err != nil {
			return fail(start, Explain(err))
		}
		batch := r.GetEntries()
		if len(batch) == 0 || int64(len(batch)) > end-start {
			return fail(start, fmt.Errorf("node returned %d entries for [%d, %d)", len(batch), start, end))
		}
		for i, leaf := range batch {
			idx := start + int64(i)
			proof, err := c.inclusionProof(ctx, idx, cp.Size)
			if err != nil {
				return fail(idx, err)
			}
			if err := ledger.VerifyInclusion(leaf, idx, cp.Size, cp.Hash, proof); err != nil {
				return fail(idx, err)
			}
			rep.InclusionProofs++
			st, err := c.auditEntry(reg, idx, leaf, next)
			if err != nil {
				return fail(idx, err)
			}
			rep.Entries++
			if st != nil {
				rep.Statements++
				rep.Signals += int64(st.Count)
			}
		}
		if from == 0 {
			leaves = append(leaves, batch...)
		}
		start += int64(len(batch))
	}
	if from == 0 {
		root, err := ledger.RootFromLeaves(leaves)
		if err != nil {
			return fail(-1, err)
		}
		if root != cp.Hash {
			return fail(-1, fmt.Errorf("the %d entries served hash to root %s, but the checkpoint says %s", cp.Size, root, cp.Hash))
		}
	}
	return nil
}

// maxEntriesPerCall is the most entries a node serves per GetEntries call.
const maxEntriesPerCall = 1000

// auditEntry verifies one entry against the registry and the sequences in
// next, which it advances. It returns the entry's statement, or nil for the
// genesis entry.
func (c *Client) auditEntry(reg *federation.Registry, idx int64, leaf []byte, next map[seqKey]uint64) (*federation.Statement, error) {
	e, _, err := federation.DecodeEntry(leaf)
	if err != nil {
		return nil, err
	}
	if gen := e.GetGenesis(); gen != nil {
		if idx != 0 {
			return nil, errors.New("a genesis entry may only be entry 0")
		}
		if !bytes.Equal(gen.GetDocument(), c.doc) {
			return nil, errors.New("the ledger's genesis document differs from the genesis file given to this client")
		}
		return nil, nil
	}
	if idx == 0 {
		return nil, errors.New("entry 0 is not the genesis entry")
	}
	// Governance acts change the registry in ledger order: each must carry
	// the approvals of operator orgs whose keys were valid at its index.
	if gov := e.GetGovernance(); gov != nil {
		_, err := c.applyAct(reg, gov.GetEnvelope(), idx)
		return nil, err
	}
	env := e.GetStatement().GetEnvelope()
	claimed, err := federation.PeekStatement(env)
	if err != nil {
		return nil, err
	}
	// The key valid at this index: not a later one after a rotation, and
	// none once the org was removed.
	key, err := reg.KeyAt(claimed.Org, idx)
	if err != nil {
		return nil, err
	}
	st, err := federation.OpenStatement(env, key)
	if err != nil {
		return nil, fmt.Errorf("statement of org %q: %w", claimed.Org, err)
	}
	if st.Federation != c.genesis.Federation {
		return nil, fmt.Errorf("statement is for federation %q", st.Federation)
	}
	set := reg.Sets[st.Set]
	if set == nil {
		return nil, fmt.Errorf("statement names set %q, which does not exist", st.Set)
	}
	if o := reg.Orgs[st.Org]; set.Owner() != st.Org || o == nil || !o.HasRole(federation.RolePublisher) {
		return nil, fmt.Errorf("org %q published into set %q, which it may not", st.Org, st.Set)
	}
	k := seqKey{st.Org, st.Set}
	want := max(next[k], 1)
	if st.Sequence != want {
		return nil, fmt.Errorf("statement of org %q for set %q has sequence %d, want %d", st.Org, st.Set, st.Sequence, want)
	}
	next[k] = want + 1
	return st, nil
}

// inclusionProof fetches the node's proof that entry index is in the tree
// of size size.
func (c *Client) inclusionProof(ctx context.Context, index, size int64) (tlog.RecordProof, error) {
	r, err := c.Ledger.GetInclusionProof(ctx, &hashfedv1.GetInclusionProofRequest{Index: index, TreeSize: size})
	if err != nil {
		return nil, Explain(err)
	}
	return toHashes(r.GetHashes())
}

// consistencyProof fetches the node's proof that the tree of newSize
// entries extends the tree of oldSize entries.
func (c *Client) consistencyProof(ctx context.Context, oldSize, newSize int64) (tlog.TreeProof, error) {
	r, err := c.Ledger.GetConsistencyProof(ctx, &hashfedv1.GetConsistencyProofRequest{OldSize: oldSize, NewSize: newSize})
	if err != nil {
		return nil, Explain(err)
	}
	return toHashes(r.GetHashes())
}

func toHashes(raw [][]byte) ([]tlog.Hash, error) {
	hs := make([]tlog.Hash, len(raw))
	for i, h := range raw {
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("proof hash %d has %d bytes, want %d", i, len(h), tlog.HashSize)
		}
		hs[i] = tlog.Hash(h)
	}
	return hs, nil
}
