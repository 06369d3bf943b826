package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

const govUsage = `gov <subcommand> [flags]

Governance acts change who is in the federation. One operator proposes an
act, each approving operator org signs the same file, and anyone of an
operator org submits it once enough have signed (the genesis
governance_threshold, by default a majority of operator orgs).

subcommands:
  propose  write an unsigned act:
           --kind admit-org --founder neworg.founder.json
           --kind remove-org --name ORG [--reason TEXT]
           --kind rotate-signing-key --name ORG --signing-key new-signing.pub
           --kind rotate-ca --name ORG --ca new-ca.crt
           --kind create-set --set ngo/new:types=md5,pdq:readers=techco
           --kind set-readers --name ngo/csam --readers techco,other
           --out act.json [client flags: the next act number is read from a node]
  sign     add your org's signature:  --org ORG --signing-key signing.key act.json
  submit   send a signed act:         act.json [client flags]
  show     print the current registry (orgs, key history, sets) as JSON [client flags]`

func runGov(args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, "usage: hashfed "+govUsage)
		if len(args) == 0 {
			return exitError{2, "missing subcommand"}
		}
		return nil
	}
	switch args[0] {
	case "propose":
		return govPropose(args[1:])
	case "sign":
		return govSign(args[1:])
	case "submit":
		return govSubmit(args[1:])
	case "show":
		return govShow(args[1:])
	default:
		return exitError{2, fmt.Sprintf("unknown subcommand %q\nusage: hashfed %s", args[0], govUsage)}
	}
}

func govPropose(args []string) error {
	fs := newFlags("gov propose", "gov propose --kind KIND [kind flags] --out act.json [client flags]")
	cf := addClientFlags(fs)
	kind := fs.String("kind", "", "admit-org, remove-org, rotate-signing-key, rotate-ca, create-set or set-readers (required)")
	name := fs.String("name", "", "the org (or, for set-readers, the set) the act is about")
	founder := fs.String("founder", "", "admit-org: the new org's founder file (hashfed genesis org)")
	keyPath := fs.String("signing-key", "", "rotate-signing-key: the new public key")
	caPath := fs.String("ca", "", "rotate-ca: the new CA certificate")
	setSpec := fs.String("set", "", "create-set: <org>/<list>[:types=...][:readers=...]")
	readers := fs.String("readers", "", "set-readers: comma-separated reader orgs (empty: none)")
	reason := fs.String("reason", "", "why, recorded on the ledger")
	out := fs.String("out", "act.json", "output file")
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := c.Governance.GetRegistry(ctx, &hashfedv1.GetRegistryRequest{})
	if err != nil {
		return err
	}
	a := &federation.Act{Federation: c.Genesis().Federation, Sequence: reg.GetNextAct(), Kind: *kind, Name: *name, Reason: *reason}
	read := func(p, what string) (string, error) {
		if p == "" {
			return "", exitError{2, fmt.Sprintf("--kind %s needs %s", *kind, what)}
		}
		b, err := os.ReadFile(p)
		return string(b), err
	}
	switch *kind {
	case federation.ActAdmitOrg:
		b, err := read(*founder, "--founder")
		if err != nil {
			return err
		}
		f, err := federation.ParseFounder([]byte(b))
		if err != nil {
			return err
		}
		a.Org, a.Name = &f.Org, f.Org.Name
	case federation.ActRotateSigningKey:
		if a.SigningKey, err = read(*keyPath, "--signing-key"); err != nil {
			return err
		}
	case federation.ActRotateCA:
		if a.CACert, err = read(*caPath, "--ca"); err != nil {
			return err
		}
	case federation.ActCreateSet:
		s, err := federation.ParseSetSpec(*setSpec)
		if err != nil {
			return err
		}
		a.Set = &s
	case federation.ActSetReaders:
		a.Readers = splitList(*readers)
	case federation.ActRemoveOrg:
	default:
		return exitError{2, fmt.Sprintf("--kind %q: want one of %v", *kind, federation.ActKinds)}
	}
	env, err := federation.ProposeAct(a)
	if err != nil {
		return err
	}
	if err := writeNew(*out, env, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s: act %d (%s %s); each approving operator org runs 'hashfed gov sign' on it\n", *out, a.Sequence, a.Kind, a.Name)
	return nil
}

func govSign(args []string) error {
	fs := newFlags("gov sign", "gov sign --org ORG --signing-key signing.key act.json")
	org := fs.String("org", "", "your org (required)")
	keyPath := fs.String("signing-key", "", "your org's signing key (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *org == "" || *keyPath == "" || fs.NArg() != 1 {
		return exitError{2, "--org, --signing-key and one act file are required"}
	}
	path := fs.Arg(0)
	env, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	a, err := federation.PeekAct(env)
	if err != nil {
		return err
	}
	s, err := federation.LoadSigner(*org, *keyPath)
	if err != nil {
		return err
	}
	signed, err := federation.SignAct(env, s)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, signed, 0o644); err != nil {
		return err
	}
	fmt.Printf("signed act %d (%s %s) for org %s in %s\n", a.Sequence, a.Kind, a.Name, *org, path)
	return nil
}

func govSubmit(args []string) error {
	fs := newFlags("gov submit", "gov submit act.json [client flags]")
	cf := addClientFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitError{2, "name one act file"}
	}
	env, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: env})
	if err != nil {
		return err
	}
	fmt.Printf("act committed as ledger entry %d\n", res.GetIndex())
	return nil
}

func govShow(args []string) error {
	fs := newFlags("gov show", "gov show [client flags]")
	cf := addClientFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := cf.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Governance.GetRegistry(ctx, &hashfedv1.GetRegistryRequest{})
	if err != nil {
		return err
	}
	os.Stdout.Write(append(r.GetRegistry(), '\n'))
	return nil
}
