package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/ledger"
)

const certsUsage = `certs <subcommand> [flags]

subcommands:
  create-ca           create an org's CA:              --org ngo [--dir DIR]
  create-node         issue a node certificate and its checkpoint key:
                      --ca-dir DIR --name ngo-1 --hosts 10.0.0.5,node1.ngo.example --federation NAME [--dir DIR]
  create-client       issue a client certificate for the org's command-line users:
                      --ca-dir DIR --name alice [--dir DIR]
  create-signing-key  create the org's statement-signing key pair (Ed25519): [--dir DIR]

Private keys are written with mode 0600 and existing files are never overwritten.`

func runCerts(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: hashfed "+certsUsage)
		if len(args) == 0 {
			return exitError{2, "missing subcommand"}
		}
		return nil
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create-ca":
		fs := newFlags("certs create-ca", "certs create-ca --org NAME [--dir DIR] [--days N]")
		org := fs.String("org", "", "the org's short name, its identity trust domain (required)")
		dir := fs.String("dir", ".", "directory to write ca.crt and ca.key into")
		days := fs.Int("days", 3650, "validity in days")
		if err := parse(fs, rest); err != nil {
			return err
		}
		if *org == "" {
			return exitError{2, "--org is required"}
		}
		ca, err := certs.NewCA(*org, time.Duration(*days)*24*time.Hour)
		if err != nil {
			return err
		}
		if err := ca.WriteFiles(*dir); err != nil {
			return err
		}
		fmt.Printf("wrote %s and %s (CA of org %q; keep ca.key offline)\n", filepath.Join(*dir, "ca.crt"), filepath.Join(*dir, "ca.key"), *org)
		return nil
	case "create-node":
		fs := newFlags("certs create-node", "certs create-node --ca-dir DIR --name ID --hosts H1,H2 --federation NAME [--dir DIR]")
		caDir := fs.String("ca-dir", ".", "directory holding the org's ca.crt and ca.key")
		name := fs.String("name", "", "node ID, unique in the federation (required)")
		hosts := fs.String("hosts", "", "comma-separated DNS names and IP addresses the node is reached at (required)")
		fed := fs.String("federation", "", "federation name; names the node's checkpoint key (required)")
		dir := fs.String("dir", "", "output directory (default: --ca-dir)")
		days := fs.Int("days", 365, "validity in days")
		if err := parse(fs, rest); err != nil {
			return err
		}
		if *name == "" || *hosts == "" || *fed == "" {
			return exitError{2, "--name, --hosts and --federation are required"}
		}
		if *dir == "" {
			*dir = *caDir
		}
		ca, err := certs.LoadCA(*caDir)
		if err != nil {
			return err
		}
		if err := federation.ValidOrigin(*fed); err != nil {
			return err
		}
		cp, kp, err := ca.IssueNode(*name, splitList(*hosts), time.Duration(*days)*24*time.Hour)
		if err != nil {
			return err
		}
		certPath, keyPath, err := certs.WriteKeyPair(*dir, "node-"+*name, cp, kp)
		if err != nil {
			return err
		}
		skey, vkey, err := ledger.GenerateKey(federation.CheckpointKeyName(*fed, *name))
		if err != nil {
			return err
		}
		notePath := filepath.Join(*dir, "node-"+*name+".note")
		vkeyPath := filepath.Join(*dir, "node-"+*name+".vkey")
		if err := writeNew(notePath, []byte(skey+"\n"), 0o600); err != nil {
			return err
		}
		if err := writeNew(vkeyPath, []byte(vkey+"\n"), 0o644); err != nil {
			return err
		}
		fmt.Printf("wrote %s, %s (TLS identity spiffe://%s/node/%s)\n", certPath, keyPath, ca.Org, *name)
		fmt.Printf("wrote %s, %s (checkpoint signing key and its public verifier key for the genesis)\n", notePath, vkeyPath)
		return nil
	case "create-client":
		fs := newFlags("certs create-client", "certs create-client --ca-dir DIR --name NAME [--dir DIR]")
		caDir := fs.String("ca-dir", ".", "directory holding the org's ca.crt and ca.key")
		name := fs.String("name", "", "user name (required)")
		dir := fs.String("dir", "", "output directory (default: --ca-dir)")
		days := fs.Int("days", 365, "validity in days")
		if err := parse(fs, rest); err != nil {
			return err
		}
		if *name == "" {
			return exitError{2, "--name is required"}
		}
		if *dir == "" {
			*dir = *caDir
		}
		ca, err := certs.LoadCA(*caDir)
		if err != nil {
			return err
		}
		cp, kp, err := ca.IssueClient(*name, time.Duration(*days)*24*time.Hour)
		if err != nil {
			return err
		}
		certPath, keyPath, err := certs.WriteKeyPair(*dir, "client-"+*name, cp, kp)
		if err != nil {
			return err
		}
		fmt.Printf("wrote %s, %s (identity spiffe://%s/client/%s)\n", certPath, keyPath, ca.Org, *name)
		return nil
	case "create-signing-key":
		fs := newFlags("certs create-signing-key", "certs create-signing-key [--dir DIR]")
		dir := fs.String("dir", ".", "directory to write signing.key and signing.pub into")
		if err := parse(fs, rest); err != nil {
			return err
		}
		priv, pub, err := federation.GenerateSigningKey()
		if err != nil {
			return err
		}
		kp, pp := filepath.Join(*dir, "signing.key"), filepath.Join(*dir, "signing.pub")
		if err := writeNew(kp, priv, 0o600); err != nil {
			return err
		}
		if err := writeNew(pp, pub, 0o644); err != nil {
			return err
		}
		fmt.Printf("wrote %s (keep secret: signs the org's contributions) and %s (goes into the genesis)\n", kp, pp)
		return nil
	default:
		return exitError{2, fmt.Sprintf("unknown subcommand %q\nusage: hashfed %s", sub, certsUsage)}
	}
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("%w (refusing to overwrite)", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
