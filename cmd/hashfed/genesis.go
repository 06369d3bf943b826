package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/hashfed/hashfed/federation"
)

const genesisUsage = `genesis <subcommand> [flags]

subcommands:
  org       write one founding org's founder file:
            --name ngo --roles publisher,operator --ca ca.crt --signing-key signing.pub \
            --node id=ngo-1,raft=10.0.0.5:7401,api=10.0.0.5:7400,checkpoint-key=node-ngo-1.vkey[,voter=false] \
            [--out ngo.founder.json]
  assemble  assemble the genesis from every founder file:
            --federation NAME [--set ngo/csam:types=md5,pdq:readers=techco ...] --out genesis.json FOUNDER...

Voting nodes default to voter=true for orgs holding the operator role.`

// repeated collects a repeatable flag.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, " ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

func runGenesis(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: hashfed "+genesisUsage)
		if len(args) == 0 {
			return exitError{2, "missing subcommand"}
		}
		return nil
	}
	switch args[0] {
	case "org":
		return genesisOrg(args[1:])
	case "assemble":
		return genesisAssemble(args[1:])
	default:
		return exitError{2, fmt.Sprintf("unknown subcommand %q\nusage: hashfed %s", args[0], genesisUsage)}
	}
}

func genesisOrg(args []string) error {
	fs := newFlags("genesis org", "genesis org --name ORG --roles R1,R2 --ca ca.crt --signing-key signing.pub --node SPEC... [--out FILE]")
	name := fs.String("name", "", "org name (required)")
	roles := fs.String("roles", "", "comma-separated roles: publisher, subscriber, auditor, operator (required)")
	caPath := fs.String("ca", "ca.crt", "the org's CA certificate")
	keyPath := fs.String("signing-key", "signing.pub", "the org's statement-verification public key")
	out := fs.String("out", "", "output file (default <name>.founder.json)")
	var nodes repeated
	fs.Var(&nodes, "node", "a node: id=ID,raft=HOST:PORT,api=HOST:PORT,checkpoint-key=FILE[,voter=true|false] (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" || *roles == "" {
		return exitError{2, "--name and --roles are required"}
	}
	ca, err := os.ReadFile(*caPath)
	if err != nil {
		return err
	}
	pub, err := os.ReadFile(*keyPath)
	if err != nil {
		return err
	}
	f := federation.Founder{Org: federation.Org{Name: *name, CACert: string(ca), SigningKey: string(pub)}}
	operator := false
	for _, r := range splitList(*roles) {
		f.Org.Roles = append(f.Org.Roles, federation.Role(r))
		operator = operator || r == string(federation.RoleOperator)
	}
	for _, spec := range nodes {
		n := federation.Node{Org: *name, Voter: operator}
		for _, kv := range splitList(spec) {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "id":
				n.ID = v
			case "raft":
				n.RaftAddress = v
			case "api":
				n.APIAddress = v
			case "checkpoint-key":
				b, err := os.ReadFile(v)
				if err != nil {
					return err
				}
				n.CheckpointKey = strings.TrimSpace(string(b))
			case "voter":
				n.Voter = v == "true"
			default:
				return exitError{2, fmt.Sprintf("--node %q: unknown key %q (want id, raft, api, checkpoint-key, voter)", spec, k)}
			}
		}
		f.Nodes = append(f.Nodes, n)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if *out == "" {
		*out = *name + ".founder.json"
	}
	if err := writeNew(*out, append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s: org %q with %d node(s); send it to whoever assembles the genesis\n", *out, *name, len(f.Nodes))
	return nil
}

func genesisAssemble(args []string) error {
	fs := newFlags("genesis assemble", "genesis assemble --federation NAME [--set SPEC...] --out genesis.json FOUNDER...")
	name := fs.String("federation", "", "federation name, also the checkpoint origin (required)")
	out := fs.String("out", "genesis.json", "output file")
	var sets repeated
	fs.Var(&sets, "set", "a hash set: <org>/<list>[:types=md5,pdq][:readers=org1,org2] (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || fs.NArg() == 0 {
		return exitError{2, "--federation and at least one founder file are required"}
	}
	var founders []*federation.Founder
	for _, p := range fs.Args() {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := federation.ParseFounder(b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		founders = append(founders, f)
	}
	var ss []federation.Set
	for _, spec := range sets {
		s, err := federation.ParseSetSpec(spec)
		if err != nil {
			return err
		}
		ss = append(ss, s)
	}
	g, err := federation.Assemble(*name, founders, ss)
	if err != nil {
		return err
	}
	doc, err := g.Marshal()
	if err != nil {
		return err
	}
	if err := writeNew(*out, doc, 0o644); err != nil {
		return err
	}
	d := federation.Digest(doc)
	fmt.Printf("wrote %s: federation %q, %d orgs, %d nodes, %d sets, sha256 %x\nEvery node must start from exactly these bytes.\n", *out, *name, len(g.Orgs), len(g.Nodes), len(g.Sets), d)
	return nil
}
