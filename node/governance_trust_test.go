package node_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// newOrgFiles makes a CA, a signing key and a client certificate for org in
// a fresh directory, as the org itself would.
func newOrgFiles(t *testing.T, org string) (ca *certs.CA, pubPEM []byte, certPath, keyPath string) {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.NewCA(org, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := federation.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	cp, kp, err := ca.IssueClient("cli", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, err = certs.WriteKeyPair(dir, "client-cli", cp, kp)
	if err != nil {
		t.Fatal(err)
	}
	return ca, pub, certPath, keyPath
}

// served reports whether the node at addr answers a Status call made with the
// given client certificate.
func served(t *testing.T, genesis, addr, cert, key string) error {
	c, err := client.Dial(client.Config{Node: addr, Genesis: genesis, Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Status(testCtx(t))
	return err
}

// eventually polls cond (bounded) until it returns nil.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAdmitOrgAndRotateCA(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	ngo := dial(t, f, "ngo", "ngo-1")
	ngoS, techS := signer(t, f, "ngo"), signer(t, f, "techco")
	addr := f.Files[2].APIAddress // auditor-1: neither proposer's node

	// An org that is not (yet) a member is refused at the handshake.
	newCA, newPub, newCert, newKey := newOrgFiles(t, "newco")
	if err := served(t, f.Genesis, addr, newCert, newKey); status.Code(err) != codes.Unavailable {
		t.Fatalf("a stranger org got %v, want Unavailable", err)
	}
	admit := &federation.Act{Federation: fedName, Sequence: 1, Kind: federation.ActAdmitOrg, Org: &federation.Org{
		Name: "newco", Roles: []federation.Role{federation.RoleSubscriber}, CACert: string(newCA.CertPEM()), SigningKey: string(newPub),
	}}
	res, err := ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: act(t, admit, ngoS, techS)})
	if err != nil {
		t.Fatal(err)
	}
	converge(t, f, res.GetIndex()+1)
	eventually(t, "the admitted org is served", func() error { return served(t, f.Genesis, addr, newCert, newKey) })

	// iwf rotates its CA: certificates of the new CA work, the old CA's stop.
	oldCert, oldKey := f.Orgs["iwf"].ClientCert, f.Orgs["iwf"].ClientKey
	if err := served(t, f.Genesis, addr, oldCert, oldKey); err != nil {
		t.Fatalf("iwf before the rotation: %v", err)
	}
	rotCA, _, rotCert, rotKey := newOrgFiles(t, "iwf")
	rot := &federation.Act{Federation: fedName, Sequence: 2, Kind: federation.ActRotateCA, Name: "iwf", CACert: string(rotCA.CertPEM())}
	res, err = ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: act(t, rot, techS, ngoS)})
	if err != nil {
		t.Fatal(err)
	}
	converge(t, f, res.GetIndex()+1)
	eventually(t, "a certificate from iwf's new CA is served", func() error { return served(t, f.Genesis, addr, rotCert, rotKey) })
	eventually(t, "a certificate from iwf's old CA is refused", func() error {
		if err := served(t, f.Genesis, addr, oldCert, oldKey); status.Code(err) != codes.Unavailable {
			return err
		}
		return nil
	})
	// A CA for another org's name cannot be slipped in.
	bad := &federation.Act{Federation: fedName, Sequence: 3, Kind: federation.ActRotateCA, Name: "iwf", CACert: string(newCA.CertPEM())}
	if _, err := ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: act(t, bad, techS, ngoS)}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("rotating iwf's CA to newco's: %v, want InvalidArgument", err)
	}
}
