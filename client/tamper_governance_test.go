package client_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/consensus"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/ledger"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestAuditKeyAfterRotationAndRemovedOrg: governance acts really rotate
// ngo's key and remove techco; a lying node then serves the real ledger plus
// one more statement that the state machine would have refused — signed
// with ngo's rotated-out key, or by the removed techco — under a checkpoint
// cosigned with two real nodes' keys (a malicious majority). The audit
// replays governance and rejects that entry, naming it.
func TestAuditKeyAfterRotationAndRemovedOrg(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	publish(t, f, 2)
	ngo, err := f.Client("ngo", "ngo-1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ngo.Close() })
	oldNgo, err := f.Signer("ngo")
	if err != nil {
		t.Fatal(err)
	}
	techS, err := f.Signer("techco")
	if err != nil {
		t.Fatal(err)
	}
	audS, err := f.Signer("auditor")
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := federation.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "ngo-new.key")
	if err := os.WriteFile(keyPath, priv, 0o600); err != nil {
		t.Fatal(err)
	}
	newNgo, err := federation.LoadSigner("ngo", keyPath)
	if err != nil {
		t.Fatal(err)
	}
	submit := func(a *federation.Act, signers ...*federation.Signer) {
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
		if _, err := ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: env}); err != nil {
			t.Fatal(err)
		}
	}
	submit(&federation.Act{Federation: fedName, Sequence: 1, Kind: federation.ActRotateSigningKey, Name: "ngo", SigningKey: string(pub)}, oldNgo, techS)
	submit(&federation.Act{Federation: fedName, Sequence: 2, Kind: federation.ActRemoveOrg, Name: "techco"}, newNgo, audS)
	// The removed org's node leaves Raft; its operator then stops it.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := f.Nodes["ngo-1"].Consensus().Status()
		if err == nil && !slices.ContainsFunc(st.Members, func(m consensus.Member) bool { return m.ID == "techco-1" }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("techco-1 is still in the raft configuration (%v)", err)
		}
	}
	if err := f.StopNode("techco-1"); err != nil {
		t.Fatal(err)
	}
	publishWith(t, f, newNgo) // the honest ledger goes on under the new key

	honest := dial(t, f, "auditor-1")
	if _, err := honest.Audit(ctx, client.AuditOptions{}); err != nil {
		t.Fatalf("audit of the honest ledger: %v", err)
	}
	signedHonest := served(t, honest)
	cp, err := ledger.ParseCheckpoint(signedHonest[:strings.Index(string(signedHonest), "\n\n")+1])
	if err != nil {
		t.Fatal(err)
	}
	r, err := honest.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: 0, End: cp.Size})
	if err != nil {
		t.Fatal(err)
	}
	honestLeaves := r.GetEntries()
	seq, err := ngo.Publisher.GetNextSequence(ctx, &hashfedv1.GetNextSequenceRequest{Set: "ngo/csam"})
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		signer *federation.Signer
		seq    uint64
		want   string
	}{
		{"statement signed with ngo's rotated-out key", oldNgo, seq.GetSequence(), `statement of org "ngo": statement signature does not verify`},
		{"statement by the removed techco", techS, 1, `org "techco" was removed at entry`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := federation.BuildContribution(tc.signer, fedName, "ngo/csam", tc.seq, localfed.SampleSignals(950)[940:941], "")
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := proto.MarshalOptions{Deterministic: true}.Marshal(&hashfedv1.LedgerEntry{
				TimeUnixNano: 1, Kind: &hashfedv1.LedgerEntry_Statement{Statement: &hashfedv1.StatementEntry{Envelope: c.Envelope}},
			})
			if err != nil {
				t.Fatal(err)
			}
			forged := append(append([][]byte{}, honestLeaves...), leaf)
			tr := tree(t, forged)
			root, err := tr.Root()
			if err != nil {
				t.Fatal(err)
			}
			fcp := ledger.Checkpoint{Origin: fedName, Size: int64(len(forged)), Hash: root}
			signed, err := ledger.SignCheckpoint(fcp, noteSigner(t, f, "ngo-1"), noteSigner(t, f, "auditor-1"))
			if err != nil {
				t.Fatal(err)
			}
			toBytes := func(hs []tlog.Hash, err error) [][]byte {
				out := make([][]byte, len(hs))
				for i, h := range hs {
					out[i] = h[:]
				}
				return out
			}
			liar := startLyingNode(t, f, "ngo-1", lies{
				checkpoint:  func([]byte) []byte { return signed },
				entries:     func([][]byte) [][]byte { return forged },
				inclusion:   func(index, size int64, _ [][]byte) [][]byte { return toBytes(tr.InclusionProof(index, size)) },
				consistency: func(o, n int64, _ [][]byte) [][]byte { return toBytes(tr.ConsistencyProof(o, n)) },
			})
			_, err = dialAs(t, f, "auditor", liar.Addr).Audit(ctx, client.AuditOptions{})
			var ae *client.AuditError
			if !errors.As(err, &ae) || ae.Index != int64(len(forged)-1) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an *AuditError at entry %d saying %q", err, len(forged)-1, tc.want)
			}
			t.Logf("%s", err)
		})
	}
}

// publishWith publishes one contribution of ngo signed by s and waits for a
// checkpoint covering it.
func publishWith(t *testing.T, f *localfed.Federation, s *federation.Signer) {
	t.Helper()
	c, err := f.Client("ngo", "ngo-1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Signals of their own: fixed ones could be what publish added before.
	size, err := localfed.PublishResend(testCtx(t), c, s, "ngo/csam", freshSignals(2))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WaitCheckpoint(testCtx(t), size); err != nil {
		t.Fatal(err)
	}
}
