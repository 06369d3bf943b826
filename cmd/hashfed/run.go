package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

func runNode(args []string) error {
	if len(args) > 0 && args[0] == "leave" {
		return runNodeLeave(args[1:])
	}
	fs := newFlags("node", "node --config node.yaml | node leave --config node.yaml [--via ADDR,...]")
	cfgPath := fs.String("config", "", "node configuration file (YAML; see README)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return exitError{2, "--config is required"}
	}
	cfg, err := node.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	n, err := node.Start(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return n.Close()
}

// runNodeLeave takes a retired node out of the Raft configuration, as the
// node itself: it needs the node's configuration (certificate, key and
// genesis), not the node running. It asks each candidate address until the
// leader answers.
func runNodeLeave(args []string) error {
	fs := newFlags("node leave", "node leave --config node.yaml [--via ADDR,...]")
	cfgPath := fs.String("config", "", "the retired node's configuration file")
	via := fs.String("via", "", "API addresses of running nodes to ask (default: the config's join list, then every node the genesis lists)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *cfgPath == "" {
		return exitError{2, "--config is required"}
	}
	cfg, err := node.LoadConfig(*cfgPath)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(cfg.Genesis)
	if err != nil {
		return err
	}
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		return err
	}
	if gn := g.Node(cfg.NodeID); gn != nil && gn.Voter {
		return fmt.Errorf("node %s is a voter the genesis lists: it leaves Raft only when governance removes org %s (hashfed gov)", cfg.NodeID, gn.Org)
	}
	addrs := splitList(*via)
	if len(addrs) == 0 {
		addrs = append(addrs, cfg.Join...)
		for _, gn := range g.Nodes {
			if gn.ID != cfg.NodeID && !slices.Contains(addrs, gn.APIAddress) {
				addrs = append(addrs, gn.APIAddress)
			}
		}
	}
	var last error
	for _, addr := range addrs {
		c, err := client.Dial(client.Config{Node: addr, Genesis: cfg.Genesis, Cert: cfg.TLSCert, Key: cfg.TLSKey})
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		_, err = c.Cluster.Leave(ctx, &hashfedv1.LeaveRequest{NodeId: cfg.NodeID})
		cancel()
		c.Close()
		switch status.Code(err) {
		case codes.OK:
			fmt.Printf("node %s left the Raft configuration (asked %s)\n", cfg.NodeID, addr)
			return nil
		case codes.NotFound:
			fmt.Printf("node %s is not in the Raft configuration (asked the leader, %s)\n", cfg.NodeID, addr)
			return nil
		case codes.PermissionDenied, codes.InvalidArgument:
			return fmt.Errorf("%s: %w", addr, client.Explain(err))
		}
		last = fmt.Errorf("%s: %w", addr, client.Explain(err))
	}
	if last == nil {
		return errors.New("no node to ask: give --via ADDR,...")
	}
	return fmt.Errorf("no leader took the request; last answer: %w", last)
}

// clientFlags are the flags every command that talks to a node takes.
type clientFlags struct{ node, genesis, cert, key *string }

func addClientFlags(fs *flag.FlagSet) clientFlags {
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	return clientFlags{
		node:    fs.String("node", env("HASHFED_NODE", ""), "node API address host:port (env HASHFED_NODE)"),
		genesis: fs.String("genesis", env("HASHFED_GENESIS", "genesis.json"), "federation genesis file (env HASHFED_GENESIS)"),
		cert:    fs.String("cert", env("HASHFED_CERT", ""), "client certificate from your org's CA (env HASHFED_CERT)"),
		key:     fs.String("key", env("HASHFED_KEY", ""), "client certificate key (env HASHFED_KEY)"),
	}
}

func (c clientFlags) dial() (*client.Client, error) {
	return client.Dial(client.Config{Node: *c.node, Genesis: *c.genesis, Cert: *c.cert, Key: *c.key})
}

func runStatus(args []string) error {
	fs := newFlags("status", "status [--node ADDR --genesis FILE --cert FILE --key FILE]")
	cf := addClientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("node %s: %s, term %d, applied index %d, ledger size %d\nleader %s (%s)\n",
		st.GetNodeId(), st.GetState(), st.GetTerm(), st.GetAppliedIndex(), st.GetLedgerSize(), st.GetLeaderId(), st.GetLeaderAddress())
	for _, m := range st.GetMembers() {
		role := "non-voter"
		if m.GetVoter() {
			role = "voter"
		}
		fmt.Printf("  member %-16s %-22s %s\n", m.GetNodeId(), m.GetRaftAddress(), role)
	}
	return nil
}

func runDemo(args []string) error {
	fs := newFlags("demo", "demo [--keep] [--dir DIR]")
	keep := fs.Bool("keep", false, "leave the federation running (until Ctrl-C) and print how to talk to it")
	dir := fs.String("dir", "", "directory for the federation's files (default: a new temporary directory, removed on exit unless --keep)")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d := *dir
	if d == "" {
		var err error
		if d, err = os.MkdirTemp("", "hashfed-demo-"); err != nil {
			return err
		}
		if !*keep {
			defer os.RemoveAll(d)
		}
	} else if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	fmt.Printf("hashfed demo in %s\n", d)
	f, err := localfed.RunDemo(ctx, os.Stdout, d, nil)
	if err != nil {
		return err
	}
	defer f.Close()
	if !*keep {
		fmt.Println("demo OK")
		return nil
	}
	ngo := f.Orgs["ngo"]
	tech := f.Orgs["techco"]
	fmt.Printf("\nThe federation keeps running until Ctrl-C. Nodes:\n")
	for _, nf := range f.Files {
		fmt.Printf("  %-10s api %-21s raft %-21s config %s\n", nf.ID, nf.APIAddress, nf.RaftAddress, nf.Config)
	}
	fmt.Printf(`
Talk to it as the NGO (publisher):
  export HASHFED_NODE=%s HASHFED_GENESIS=%s
  export HASHFED_CERT=%s HASHFED_KEY=%s
  hashfed status
  hashfed publish --set %s --signing-key %s --file signals.csv
as the tech firm (subscriber):
  HASHFED_CERT=%s HASHFED_KEY=%s hashfed subscribe --from 0
as the auditor:
  HASHFED_CERT=%s HASHFED_KEY=%s hashfed audit
with grpcurl (reflection is on):
  grpcurl -cacert %s -cert %s -key %s -servername localhost %s list
`, f.Files[0].APIAddress, f.Genesis, ngo.ClientCert, ngo.ClientKey, localfed.DemoSet, ngo.SigningKey,
		tech.ClientCert, tech.ClientKey,
		f.Orgs["auditor"].ClientCert, f.Orgs["auditor"].ClientKey,
		filepath.Join(ngo.Dir, "ca.crt"), ngo.ClientCert, ngo.ClientKey, f.Files[0].APIAddress)
	<-ctx.Done()
	fmt.Println("\nstopping")
	return nil
}
