package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hashfed/hashfed/client"
)

// defaultAuditState is where `hashfed audit` keeps its state unless told.
const defaultAuditState = "hashfed-audit.state.json"

func runAudit(args []string) error {
	fs := newFlags("audit", "audit [--state FILE] [--full] [--json] [--min-orgs N] [client flags]")
	cf := addClientFlags(fs)
	fs.Lookup("node").Usage = "node API address host:port, or several separated by commas to compare their checkpoints (env HASHFED_NODE)"
	statePath := fs.String("state", defaultAuditState, `file keeping the last verified checkpoint; later audits verify only what was added since. "" keeps no state`)
	full := fs.Bool("full", false, "verify the whole ledger from the genesis, ignoring the saved state (which is then replaced)")
	asJSON := fs.Bool("json", false, "print one JSON object instead of text")
	minOrgs := fs.Int("min-orgs", 0, "accept a checkpoint only if signed by this many voting orgs (default: a majority of them)")
	if err := parse(fs, args); err != nil {
		return err
	}
	out := auditOutput{Mode: "full", StatePath: *statePath}
	rep, err := audit(cf, *statePath, *full, client.CheckpointPolicy{MinOrgs: *minOrgs}, &out)
	out.fill(rep, err)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(out); jerr != nil {
			return jerr
		}
	} else {
		out.print(os.Stdout)
	}
	return err
}

// audit runs one audit and saves the state after a successful one.
func audit(cf clientFlags, statePath string, full bool, policy client.CheckpointPolicy, out *auditOutput) (*client.AuditReport, error) {
	opts := client.AuditOptions{Policy: policy, Full: full}
	if statePath != "" && !full {
		st, err := client.LoadAuditState(statePath)
		switch {
		case err == nil:
			opts.State = st
			out.Mode = "incremental"
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("%w (audit with --full to start afresh)", err)
		}
	}
	nodes := splitList(*cf.node)
	if len(nodes) == 0 {
		nodes = []string{""} // Dial explains what is missing
	}
	var clients []*client.Client
	for _, n := range nodes {
		c, err := client.Dial(client.Config{Node: n, Genesis: *cf.genesis, Cert: *cf.cert, Key: *cf.key})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rep, err := client.AuditNodes(ctx, clients, opts)
	if err != nil {
		return rep, err
	}
	if statePath != "" {
		if err := rep.State.Save(statePath); err != nil {
			return rep, err
		}
		out.StateSaved = true
	}
	return rep, nil
}

// auditOutput is what `hashfed audit --json` prints: one object.
type auditOutput struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Index is the ledger entry the error concerns, if any.
	Index *int64 `json:"index,omitempty"`
	// Mode is "full" or "incremental"; From the size verified before.
	Mode       string            `json:"mode"`
	From       int64             `json:"from"`
	Checkpoint *auditCheckpoint  `json:"checkpoint,omitempty"`
	Nodes      []auditCheckpoint `json:"nodes,omitempty"`
	// The counts of what was verified.
	Entries           int64      `json:"entries_verified"`
	InclusionProofs   int64      `json:"inclusion_proofs"`
	ConsistencyProofs int64      `json:"consistency_proofs"`
	Statements        int64      `json:"statements"`
	Signals           int64      `json:"signals"`
	SplitView         *splitView `json:"split_view,omitempty"`
	StatePath         string     `json:"state_file,omitempty"`
	StateSaved        bool       `json:"state_saved"`
}

type auditCheckpoint struct {
	Node     string   `json:"node"`
	Origin   string   `json:"origin,omitempty"`
	Size     int64    `json:"size,omitempty"`
	Root     string   `json:"root,omitempty"`
	SignedBy []string `json:"signed_by,omitempty"`
	Orgs     []string `json:"orgs,omitempty"`
	// Note is the signed checkpoint note as served.
	Note  string `json:"note,omitempty"`
	Error string `json:"error,omitempty"`
}

type splitView struct {
	Reason string   `json:"reason"`
	A      evidence `json:"a"`
	B      evidence `json:"b"`
}

type evidence struct {
	Node string `json:"node"`
	Note string `json:"note"`
}

// fill records the report and the error.
func (o *auditOutput) fill(rep *client.AuditReport, err error) {
	o.OK = err == nil
	if err != nil {
		o.Error = err.Error()
	}
	var ae *client.AuditError
	if errors.As(err, &ae) && ae.Index >= 0 {
		o.Index = &ae.Index
	}
	var sv *client.SplitViewError
	if errors.As(err, &sv) {
		o.SplitView = &splitView{Reason: sv.Reason,
			A: evidence{Node: sv.A.Node, Note: string(sv.A.Checkpoint)},
			B: evidence{Node: sv.B.Node, Note: string(sv.B.Checkpoint)}}
	}
	if rep == nil {
		return
	}
	if !rep.Full {
		o.Mode = "incremental"
	}
	o.From = rep.From
	if rep.Node != "" {
		o.Checkpoint = &auditCheckpoint{Node: rep.Node, Origin: rep.Checkpoint.Origin, Size: rep.Checkpoint.Size,
			Root: rep.Checkpoint.Hash.String(), SignedBy: rep.SignedBy, Orgs: rep.Orgs, Note: string(rep.SignedCheckpoint)}
	}
	for _, n := range rep.Nodes {
		ac := auditCheckpoint{Node: n.Node}
		if n.Err != nil {
			ac.Error = n.Err.Error()
		} else {
			ac.Origin, ac.Size, ac.Root, ac.SignedBy, ac.Orgs = n.Checkpoint.Origin, n.Checkpoint.Size, n.Checkpoint.Hash.String(), n.SignedBy, n.Orgs
		}
		o.Nodes = append(o.Nodes, ac)
	}
	o.Entries, o.InclusionProofs, o.ConsistencyProofs, o.Statements, o.Signals = rep.Entries, rep.InclusionProofs, rep.ConsistencyProofs, rep.Statements, rep.Signals
}

// print writes the human form: OK or FAIL, what was verified, and for a
// split view both signed checkpoints in full.
func (o *auditOutput) print(w io.Writer) {
	if o.OK {
		c := o.Checkpoint
		fmt.Fprintf(w, "OK: checkpoint of %q size %d root %s signed by %v (orgs %s)\n", c.Origin, c.Size, c.Root, c.SignedBy, strings.Join(c.Orgs, ", "))
	} else {
		fmt.Fprintln(w, "FAIL")
	}
	if o.Checkpoint != nil {
		how := "full audit from the genesis"
		if o.Mode == "incremental" {
			how = fmt.Sprintf("incremental from size %d", o.From)
		}
		if !o.OK {
			how += ", until the failure"
		}
		fmt.Fprintf(w, "    %s: %d entries, %d inclusion proofs, %d consistency proofs, %d statement signatures verified (%d signals committed to)\n",
			how, o.Entries, o.InclusionProofs, o.ConsistencyProofs, o.Statements, o.Signals)
	}
	if len(o.Nodes) > 1 || (len(o.Nodes) == 1 && o.Nodes[0].Error != "") {
		for _, n := range o.Nodes {
			if n.Error != "" {
				fmt.Fprintf(w, "    node %s: %s\n", n.Node, n.Error)
			} else {
				fmt.Fprintf(w, "    node %s: size %d root %s signed by %v\n", n.Node, n.Size, n.Root, n.SignedBy)
			}
		}
	}
	if sv := o.SplitView; sv != nil {
		fmt.Fprintf(w, "SPLIT VIEW: %s\nevidence A, from %s:\n%s\nevidence B, from %s:\n%s\n",
			sv.Reason, sv.A.Node, indent(sv.A.Note), sv.B.Node, indent(sv.B.Note))
	}
	if o.StateSaved {
		fmt.Fprintf(w, "    state saved to %s\n", o.StatePath)
	}
}

func indent(note string) string {
	return "    " + strings.ReplaceAll(strings.TrimSuffix(note, "\n"), "\n", "\n    ")
}
