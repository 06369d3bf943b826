package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
)

func runVerifyReceipt(args []string) error {
	fs := newFlags("verify-receipt", "verify-receipt [--genesis FILE] [--min-orgs N] RECEIPT...")
	genesis := fs.String("genesis", envOr("HASHFED_GENESIS", "genesis.json"), "federation genesis file (env HASHFED_GENESIS)")
	minOrgs := fs.Int("min-orgs", 0, "voting orgs that must have cosigned the checkpoint (default: a majority)")
	regPath := fs.String("registry", "", "registry JSON (hashfed gov show) for statements signed after a key rotation; default: the genesis keys")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return exitError{2, "name at least one receipt file"}
	}
	doc, err := os.ReadFile(*genesis)
	if err != nil {
		return err
	}
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		return err
	}
	var reg *federation.Registry
	if *regPath != "" {
		b, err := os.ReadFile(*regPath)
		if err != nil {
			return err
		}
		reg = new(federation.Registry)
		if err := json.Unmarshal(b, reg); err != nil {
			return fmt.Errorf("%s: %w", *regPath, err)
		}
	}
	failed := 0
	for _, path := range fs.Args() {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		info, err := client.VerifyReceipt(g, reg, b, *minOrgs)
		if err != nil {
			fmt.Printf("FAIL %s: %v\n", path, err)
			failed++
			continue
		}
		what := "the genesis entry"
		if st := info.Statement; st != nil {
			what = fmt.Sprintf("org %s's contribution %d to %s (%d signals, payload sha256 %s)", st.Org, st.Sequence, st.Set, st.Count, st.PayloadSHA256)
		}
		fmt.Printf("OK %s: entry %d, %s, is in the ledger of %q at size %d, cosigned by %s\n",
			path, info.Index, what, info.Checkpoint.Origin, info.Checkpoint.Size, strings.Join(info.SignedBy, ", "))
	}
	if failed > 0 {
		return exitError{1, fmt.Sprintf("%d of %d receipts failed", failed, fs.NArg())}
	}
	return nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
