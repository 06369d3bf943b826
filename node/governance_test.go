package node_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// act proposes a and signs it with the named orgs' statement keys.
func act(t *testing.T, a *federation.Act, signers ...*federation.Signer) []byte {
	t.Helper()
	env, err := federation.ProposeAct(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range signers {
		if env, err = federation.SignAct(env, s); err != nil {
			t.Fatal(err)
		}
	}
	return env
}

func TestGovernanceOnRealNodes(t *testing.T) {
	f := newTestFederation(t) // operators: ngo, techco, auditor; a majority is 2
	ctx := testCtx(t)
	ngoS, techS, iwfS := signer(t, f, "ngo"), signer(t, f, "techco"), signer(t, f, "iwf")
	ngo := dial(t, f, "ngo", "ngo-1")
	iwf := dial(t, f, "iwf", "ngo-1")
	_, err := iwf.Publish(ctx, iwfS, "iwf/list", []*hashfedv1.Signal{sampleSignals(0, 1)[0]}, "")
	if err != nil {
		t.Fatal(err)
	}

	// Acts that must not pass.
	remove := &federation.Act{Federation: fedName, Sequence: 1, Kind: federation.ActRemoveOrg, Name: "iwf", Reason: "left the federation"}
	for _, tc := range []struct {
		name string
		c    *client.Client
		env  []byte
		code codes.Code
		msg  string
	}{
		{"one operator of three", ngo, act(t, remove, ngoS), codes.PermissionDenied, "signed by 1 operator org(s) [ngo], 2 of [auditor ngo techco] required"},
		{"a publisher-only org submits", iwf, act(t, remove, ngoS, techS), codes.PermissionDenied, "needs the operator role"},
	} {
		_, err := tc.c.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: tc.env})
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.code, tc.msg)
		}
	}

	// iwf follows the ledger live while it is removed.
	streamErr := make(chan error, 1)
	go func() {
		streamErr <- iwf.Subscribe(ctx, 0, nil, func(*client.Update) error { return nil })
	}()
	res, err := ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: act(t, remove, techS, ngoS)})
	if err != nil {
		t.Fatal(err)
	}
	converge(t, f, res.GetIndex()+1)
	if _, err := ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: act(t, remove, techS, ngoS)}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("replayed act: %v, want AlreadyExists", err)
	}
	select {
	case err := <-streamErr:
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `org "iwf" is no longer a member`) {
			t.Errorf("the removed org's open stream ended with %v, want PermissionDenied", err)
		}
	case <-ctx.Done():
		t.Fatal("the removed org's open stream was not closed")
	}
	// Its new connections are refused at the handshake on every node (the
	// nodes rebuild trust right after applying the act).
	waitRefused(ctx, t, f, "iwf")

	// A key rotation takes effect after its own entry.
	priv, pub, err := federation.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(keyPath, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	newNgo, err := federation.LoadSigner("ngo", keyPath)
	if err != nil {
		t.Fatal(err)
	}
	rot := &federation.Act{Federation: fedName, Sequence: 2, Kind: federation.ActRotateSigningKey, Name: "ngo", SigningKey: string(pub)}
	if _, err := ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: act(t, rot, ngoS, techS)}); err != nil {
		t.Fatal(err)
	}
	if _, err := ngo.Publish(ctx, ngoS, "ngo/csam", sampleSignals(1, 1), ""); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("publishing with the rotated-out key: %v, want InvalidArgument", err)
	}
	last, err := ngo.Publish(ctx, newNgo, "ngo/csam", sampleSignals(1, 1), "")
	if err != nil {
		t.Fatalf("publishing with the new key: %v", err)
	}
	converge(t, f, last.TreeSize)

	// The auditor replays governance: iwf's early statement verifies under
	// the key it held, ngo's latest under the new one.
	rep, err := dial(t, f, "auditor", "auditor-1").Audit(ctx, client.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Entries != last.TreeSize || rep.Statements != 2 {
		t.Errorf("audit verified %d entries and %d statements, want %d and 2", rep.Entries, rep.Statements, last.TreeSize)
	}
	// So does a subscriber reading from the genesis.
	var acts, statements int
	err = dial(t, f, "techco", "techco-1").CatchUp(ctx, 0, nil, func(u *client.Update) error {
		if u.Act != nil {
			acts++
		}
		if u.Statement != nil {
			statements++
		}
		return nil
	})
	if err != nil || acts != 2 || statements != 2 {
		t.Errorf("subscriber from the genesis: %d acts, %d statements, err %v", acts, statements, err)
	}
}
