package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
)

func runNode(args []string) error {
	fs := newFlags("node", "node --config node.yaml")
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
