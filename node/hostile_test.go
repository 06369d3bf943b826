package node_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/ledger"
	"github.com/hashfed/hashfed/node"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestHostileInputs sends each kind of hostile or malformed input a member,
// a former member or a stranger can send to a running federation (real
// gRPC over loopback with mutual TLS, real Raft) and checks, row by row,
// the exact status code, that the message says what is wrong in words a
// person can act on, and that the ledger is unchanged: every node holds the
// same tree, of the same size and root, as before the row, and a trusted
// client verifies the same cosigned checkpoint. docs/SECURITY.md lists the
// rows. Run one with, e.g., -run 'TestHostileInputs/expired_certificate'.
func TestHostileInputs(t *testing.T) {
	h := newHostile(t)
	// The stuck-stream row commits hundreds of contributions, which takes
	// a while under the race detector on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	next := func(t *testing.T, c *client.Client, set string) uint64 {
		t.Helper()
		seq, err := c.NextSequence(ctx, set)
		if err != nil {
			t.Fatal(err)
		}
		return seq
	}
	size := func() int64 { return h.f.Nodes[h.f.Files[0].ID].State().Size() }
	publish := func(c *client.Client, contrib *hashfedv1.Contribution) error {
		_, err := c.Publisher.Publish(ctx, &hashfedv1.PublishRequest{Contribution: contrib})
		return err
	}
	// ngoAdd signs a well-formed addition to ngo/csam as ngo's next
	// contribution (one the federation would accept) with new signals.
	ngoAdd := func(t *testing.T) *hashfedv1.Contribution {
		c, _, err := federation.BuildContribution(h.ngoS, fedName, "ngo/csam", next(t, h.ngo, "ngo/csam"), sampleSignals(100, 2), "")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// ngoRaw signs a payload as ngo's next contribution to set without
	// checking it, as a buggy or hostile publisher could.
	ngoRaw := func(t *testing.T, set string, count int, p *hashfedv1.Payload) *hashfedv1.Contribution {
		return signRaw(t, h.ngoS, set, next(t, h.ngo, set), count, p)
	}
	oneSignal := func(t *testing.T, ty hashfedv1.SignalType, value string) *hashfedv1.Contribution {
		return ngoRaw(t, "ngo/csam", 1, &hashfedv1.Payload{Signals: []*hashfedv1.Signal{{Type: ty, Value: value}}})
	}
	md5Of := func(i int) string {
		s := sha256.Sum256(fmt.Append(nil, "hostile ", i))
		return hex.EncodeToString(s[:16])
	}
	addr := h.f.Files[0].APIAddress

	rows := []hostileRow{
		// The transport: refused in the TLS handshake, before any RPC.
		// The node's log says why (the caller gets only a TLS alert).
		{name: "no_client_certificate", how: handshake, call: h.handshake(addr, ngoAdd),
			msg: []string{"tls: client didn't provide a certificate"}},
		{name: "expired_certificate", how: handshake, call: h.handshake(addr, ngoAdd, h.expired),
			msg: []string{"rejected client certificate", "expired or not yet valid: spiffe://ngo/client/expired is valid from"}},
		{name: "certificate_from_unknown_CA", how: handshake, call: h.handshake(addr, ngoAdd, h.stranger),
			msg: []string{"rejected client certificate", `spiffe://ngo/client/mallory (issuer \"CN=ngo hashfed CA,O=ngo\") does not chain to org \"ngo\"'s CA`}},
		{name: "identity_naming_another_org", how: handshake, call: h.handshake(addr, ngoAdd, h.impostor),
			msg: []string{"rejected client certificate", `spiffe://ngo/client/mallory (issuer \"CN=techco hashfed CA,O=techco\") does not chain to org \"ngo\"'s CA`}},
		{name: "removed_org", how: handshake, call: h.handshake(addr, func(t *testing.T) *hashfedv1.Contribution {
			c, _, err := federation.BuildContribution(h.goneS, fedName, "gone/list", 1, sampleSignals(0, 1), "")
			if err != nil {
				t.Fatal(err)
			}
			return c
		}, h.gone), msg: []string{"rejected client certificate", `unknown org \"gone\": no CA is known for spiffe://gone/client/gone-cli`}},

		// Authorisation by org, role and kind of identity.
		{name: "wrong_role_auditor_publishes", code: codes.PermissionDenied,
			call: func(t *testing.T) error { return publish(dial(t, h.f, "auditor", "ngo-1"), ngoAdd(t)) },
			msg:  []string{`org "auditor" may not call Publish`, "needs the publisher or subscriber role", "holds auditor or operator"}},
		{name: "wrong_role_client_cosigns", code: codes.PermissionDenied,
			call: func(t *testing.T) error {
				_, err := h.ngo.Cluster.Cosign(ctx, &hashfedv1.CosignRequest{Checkpoint: h.checkpointBody(t, size(), nil)})
				return err
			},
			msg: []string{"Cosign may be called only by a node identity", "spiffe://ngo/client/ngo-cli is a client"}},
		{name: "wrong_role_client_joins_raft", code: codes.PermissionDenied,
			call: func(t *testing.T) error {
				_, err := h.ngo.Cluster.Join(ctx, &hashfedv1.JoinRequest{NodeId: "ngo-cli", RaftAddress: "127.0.0.1:1"})
				return err
			},
			msg: []string{"Join may be called only by a node identity"}},
		{name: "another_orgs_statement", code: codes.PermissionDenied,
			call: func(t *testing.T) error { return publish(h.iwf, ngoAdd(t)) },
			msg:  []string{`belongs to org "iwf" but the statement is for org "ngo"`, "only its own"}},

		// Statements: signer, sequence, set.
		{name: "replayed_contribution", code: codes.AlreadyExists,
			call: func(t *testing.T) error {
				err := publish(h.ngo, h.committed)
				// The status also says where the contribution is, for
				// publishers resending after a lost answer.
				if idx, ok := client.CommittedAt(err); !ok || idx != 1 {
					t.Errorf("CommittedAt(%v) = %d, %t; want entry 1", err, idx, ok)
				}
				return err
			},
			msg: []string{`contribution 1 of org "ngo" to set "ngo/csam" is already committed, at entry 1`, "replay", "nothing changed"}},
		{name: "sequence_reused_by_another_change", code: codes.AlreadyExists,
			call: func(t *testing.T) error {
				c, _, err := federation.BuildContribution(h.ngoS, fedName, "ngo/csam", 1, sampleSignals(300, 1), "")
				if err != nil {
					t.Fatal(err)
				}
				err = publish(h.ngo, c)
				if _, ok := client.CommittedAt(err); ok {
					t.Errorf("a different contribution with a used sequence number was answered as committed: %v", err)
				}
				return err
			},
			msg: []string{`sequence 1 of org "ngo" for set "ngo/csam" is already used by a different contribution, at entry 1`, "sign this change again with sequence"}},
		{name: "sequence_gap", code: codes.FailedPrecondition,
			call: func(t *testing.T) error {
				c, _, err := federation.BuildContribution(h.ngoS, fedName, "ngo/csam", 7, sampleSignals(100, 2), "")
				if err != nil {
					t.Fatal(err)
				}
				return publish(h.ngo, c)
			},
			msg: []string{`sequence 7 of org "ngo" for set "ngo/csam" skips ahead: the next must be 2`}},
		{name: "bad_signature", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				c := ngoAdd(t)
				c.Envelope = flipSignature(t, c.Envelope)
				return publish(h.ngo, c)
			},
			msg: []string{`statement signature does not verify under org "ngo"'s registered signing key`}},
		{name: "another_orgs_key", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				// Signed with techco's key, relabelled to claim ngo.
				c, _, err := federation.BuildContribution(h.techS, fedName, "ngo/csam", next(t, h.ngo, "ngo/csam"), sampleSignals(100, 2), "")
				if err != nil {
					t.Fatal(err)
				}
				c.Envelope = relabelOrg(t, c.Envelope, "ngo")
				return publish(h.ngo, c)
			},
			msg: []string{`statement signature does not verify under org "ngo"'s registered signing key`}},
		{name: "statement_for_another_federation", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				c, _, err := federation.BuildContribution(h.ngoS, "other.example", "ngo/csam", next(t, h.ngo, "ngo/csam"), sampleSignals(100, 2), "")
				if err != nil {
					t.Fatal(err)
				}
				return publish(h.ngo, c)
			},
			msg: []string{`statement is for federation "other.example", this is "test.hashfed.local"`}},
		{name: "unknown_set", code: codes.NotFound,
			call: func(t *testing.T) error {
				return publish(h.ngo, signRaw(t, h.ngoS, "ngo/nope", 1, 1, &hashfedv1.Payload{Signals: sampleSignals(100, 1)}))
			},
			msg: []string{`set "ngo/nope" does not exist in federation "test.hashfed.local"`}},
		{name: "another_orgs_set", code: codes.PermissionDenied,
			call: func(t *testing.T) error {
				c, _, err := federation.BuildContribution(h.iwfS, fedName, "ngo/csam", 1, sampleSignals(100, 2), "")
				if err != nil {
					t.Fatal(err)
				}
				return publish(h.iwf, c)
			},
			msg: []string{`set "ngo/csam" belongs to org "ngo"; org "iwf" may not publish into it`}},

		// Payloads: every value is checked against its type and the set.
		{name: "malformed_md5", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				return publish(h.ngo, oneSignal(t, federation.MD5.Proto(), strings.Repeat("z", 32)))
			},
			msg: []string{"signal 0: md5 value", "is not hexadecimal"}},
		{name: "malformed_sha1", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				return publish(h.ngo, oneSignal(t, federation.SHA1.Proto(), strings.Repeat("g", 40)))
			},
			msg: []string{"signal 0: sha1 value", "is not hexadecimal"}},
		{name: "malformed_sha256", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				return publish(h.ngo, oneSignal(t, federation.SHA256.Proto(), strings.Repeat("-", 64)))
			},
			msg: []string{"signal 0: sha256 value", "is not hexadecimal"}},
		{name: "non_canonical_sha256", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				return publish(h.ngo, oneSignal(t, federation.SHA256.Proto(), strings.Repeat("AB", 32)))
			},
			msg: []string{"signal 0: sha256 value", "is not in canonical form (want", strings.Repeat("ab", 8)}},
		{name: "malformed_pdq", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				return publish(h.ngo, oneSignal(t, federation.PDQ.Proto(), strings.Repeat("x", 64)))
			},
			msg: []string{"signal 0: pdq value", "is not hexadecimal"}},
		{name: "malformed_photodna", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				return publish(h.ngo, oneSignal(t, federation.PhotoDNA.Proto(), "not*base64"))
			},
			msg: []string{"signal 0: photodna value", "is not standard base64"}},
		{name: "wrong_length_pdq", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				return publish(h.ngo, oneSignal(t, federation.PDQ.Proto(), strings.Repeat("0f", 31)))
			},
			msg: []string{"signal 0: pdq value", "has 62 characters, want 64 hex digits"}},
		{name: "wrong_length_photodna", code: codes.InvalidArgument,
			call: func(t *testing.T) error { return publish(h.ngo, oneSignal(t, federation.PhotoDNA.Proto(), "AAAA")) },
			msg:  []string{"signal 0: photodna value decodes to 3 bytes, want 144"}},
		{name: "unknown_signal_type", code: codes.InvalidArgument,
			call: func(t *testing.T) error { return publish(h.ngo, oneSignal(t, hashfedv1.SignalType(99), md5Of(0))) },
			msg:  []string{"signal 0: unknown signal type 99", "md5, sha1, sha256, pdq, photodna"}},
		{name: "signal_type_the_set_does_not_take", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				return publish(h.iwf, signRaw(t, h.iwfS, "iwf/list", next(t, h.iwf, "iwf/list"), 1,
					&hashfedv1.Payload{Signals: []*hashfedv1.Signal{sampleSignals(2, 1)[0]}})) // a sha256
			},
			msg: []string{`signal 0: set "iwf/list" does not accept sha256 signals`}},
		{name: "duplicate_signals", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				s := &hashfedv1.Signal{Type: federation.MD5.Proto(), Value: md5Of(1)}
				return publish(h.ngo, ngoRaw(t, "ngo/csam", 2, &hashfedv1.Payload{Signals: []*hashfedv1.Signal{s, s}}))
			},
			msg: []string{"signal 1 duplicates signal 0 (md5:" + md5Of(1)}},
		{name: "signal_already_in_the_set", code: codes.AlreadyExists,
			call: func(t *testing.T) error {
				return publish(h.ngo, ngoRaw(t, "ngo/csam", 1, &hashfedv1.Payload{Signals: sampleSignals(0, 1)}))
			},
			msg: []string{`signal 0 (md5 `, `is already in set "ngo/csam", added at entry 1: relabel it instead`}},
		{name: "empty_contribution", code: codes.InvalidArgument,
			call: func(t *testing.T) error { return publish(h.ngo, ngoRaw(t, "ngo/csam", 0, &hashfedv1.Payload{})) },
			msg:  []string{"contribution carries no signals"}},
		{name: "no_contribution", code: codes.InvalidArgument,
			call: func(t *testing.T) error { return publish(h.ngo, nil) },
			msg:  []string{"request carries no contribution"}},
		{name: "payload_not_the_one_signed", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				c := ngoAdd(t)
				c.Payload = ngoRaw(t, "ngo/csam", 2, &hashfedv1.Payload{Signals: sampleSignals(200, 2)}).Payload
				return publish(h.ngo, c)
			},
			msg: []string{"payload SHA-256", "does not match the statement's"}},
		{name: "oversized_contribution_too_many_signals", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				sigs := make([]*hashfedv1.Signal, federation.MaxSignals+1)
				for i := range sigs {
					sigs[i] = &hashfedv1.Signal{Type: federation.MD5.Proto(), Value: md5Of(i)}
				}
				return publish(h.ngo, ngoRaw(t, "ngo/csam", len(sigs), &hashfedv1.Payload{Signals: sigs}))
			},
			msg: []string{"contribution carries 10001 signals, at most 10000 allowed: split them into several contributions"}},
		{name: "oversized_contribution_payload", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				p := &hashfedv1.Payload{Signals: sampleSignals(100, 1), Reason: strings.Repeat("x", federation.MaxPayloadSize)}
				return publish(h.ngo, ngoRaw(t, "ngo/csam", 1, p))
			},
			msg: []string{fmt.Sprintf("at most %d allowed: split the signals into several contributions", federation.MaxPayloadSize)}},
		{name: "oversized_message", code: codes.ResourceExhausted,
			call: func(t *testing.T) error {
				// The client library refuses to send this; a raw
				// connection without a send limit does.
				conn := h.memberConn(t, h.f.Orgs["ngo"].ClientCert, h.f.Orgs["ngo"].ClientKey, addr)
				p := &hashfedv1.Payload{Signals: sampleSignals(100, 1), Reason: strings.Repeat("x", node.MaxMessageSize)}
				_, err := hashfedv1.NewPublishServiceClient(conn).Publish(ctx, &hashfedv1.PublishRequest{Contribution: ngoRaw(t, "ngo/csam", 1, p)})
				return err
			},
			msg: []string{"larger than max", fmt.Sprint(node.MaxMessageSize)}},
		{name: "garbage_protobuf", code: codes.Internal,
			call: func(t *testing.T) error {
				// gRPC decodes the request before any handler runs, and
				// reports a request that does not parse as Internal
				// (grpc.io/docs/guides/status-codes: "Error parsing
				// request proto").
				var out []byte
				return h.ngo.Conn().Invoke(ctx, hashfedv1.PublishService_Publish_FullMethodName,
					[]byte("\xff\xff\xff\xff this is not a protobuf"), &out, grpc.ForceCodec(rawCodec{}))
			},
			msg: []string{"failed to unmarshal the received message", "cannot parse invalid wire-format data"}},

		// Reads past the end of the ledger.
		{name: "cursor_past_end_subscribe", code: codes.OutOfRange,
			call: func(t *testing.T) error {
				return firstError(ctx, h.tech, &hashfedv1.SubscribeRequest{Cursor: size() + 5})
			},
			msg: []string{fmt.Sprintf("cursor %d is past the end of the ledger, which holds %d entries: resume from a cursor of at most %d", size()+5, size(), size())}},
		{name: "cursor_past_end_get_entries", code: codes.OutOfRange,
			call: func(t *testing.T) error {
				_, err := h.tech.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: size(), End: size() + 1})
				return err
			},
			msg: []string{fmt.Sprintf("entry range [%d, %d) runs past the ledger size %d", size(), size()+1, size())}},
		{name: "cursor_past_end_inclusion_proof", code: codes.OutOfRange,
			call: func(t *testing.T) error {
				_, err := h.tech.Ledger.GetInclusionProof(ctx, &hashfedv1.GetInclusionProofRequest{Index: 0, TreeSize: size() + 5})
				return err
			},
			msg: []string{fmt.Sprintf("tree size %d is larger than this node's ledger (%d)", size()+5, size())}},
		{name: "cursor_past_end_consistency_proof", code: codes.OutOfRange,
			call: func(t *testing.T) error {
				_, err := h.tech.Ledger.GetConsistencyProof(ctx, &hashfedv1.GetConsistencyProofRequest{OldSize: 1, NewSize: size() + 5})
				return err
			},
			msg: []string{fmt.Sprintf("tree size %d is larger than this node's ledger (%d)", size()+5, size())}},
		{name: "cursor_past_end_receipt", code: codes.OutOfRange,
			call: func(t *testing.T) error {
				_, err := h.tech.Ledger.GetReceipt(ctx, &hashfedv1.GetReceiptRequest{Index: size() + 5})
				return err
			},
			msg: []string{fmt.Sprintf("entry %d does not exist: the ledger holds %d entries", size()+5, size())}},

		// Checkpoints: the only place a node takes one from outside is the
		// Cosign RPC between nodes.
		{name: "malformed_checkpoint_cosign", code: codes.InvalidArgument,
			call: func(t *testing.T) error { return h.cosign(t, ctx, []byte("test.hashfed.local\nthree\nnot a hash")) },
			msg:  []string{"checkpoint body: ledger: malformed checkpoint: missing final newline"}},
		{name: "malformed_checkpoint_size_cosign", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				return h.cosign(t, ctx, []byte("test.hashfed.local\n-3\n"+strings.Repeat("A", 43)+"=\n"))
			},
			msg: []string{`checkpoint body: ledger: malformed checkpoint: size "-3" is not a decimal number without leading zeros`}},
		{name: "checkpoint_of_another_origin_cosign", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				cp := ledger.Checkpoint{Origin: "other.example", Size: 1}
				return h.cosign(t, ctx, cp.Marshal())
			},
			msg: []string{`checkpoint origin "other.example" is not this federation ("test.hashfed.local")`}},
		{name: "checkpoint_contradicting_the_ledger_cosign", code: codes.FailedPrecondition,
			call: func(t *testing.T) error { return h.cosign(t, ctx, h.checkpointBody(t, size(), []byte("forged root"))) },
			msg:  []string{fmt.Sprintf("at size %d differs from this node's", size())}},
		{name: "consistency_proof_bogus_old_size", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				_, err := h.tech.Ledger.GetConsistencyProof(ctx, &hashfedv1.GetConsistencyProofRequest{OldSize: size() + 1, NewSize: size()})
				return err
			},
			msg: []string{fmt.Sprintf("no consistency proof from size %d to size %d: want 1 <= old <= new", size()+1, size())}},

		// Proofs: the node serves them and never takes one; a client
		// verifies them offline.
		{name: "inclusion_proof_index_out_of_range", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				_, err := h.tech.Ledger.GetInclusionProof(ctx, &hashfedv1.GetInclusionProofRequest{Index: size(), TreeSize: size()})
				return err
			},
			msg: []string{fmt.Sprintf("entry %d is not in a tree of size %d", size(), size())}},
		{name: "truncated_proof_client_VerifyReceipt", how: local,
			call: func(t *testing.T) error {
				p, err := ledger.ParseProof(h.receipt)
				if err != nil {
					t.Fatal(err)
				}
				p.Hashes = p.Hashes[:len(p.Hashes)-1]
				_, err = client.VerifyReceipt(h.tech.Genesis(), nil, p.Marshal(), 0)
				return err
			},
			msg: []string{"entry 1 is not in the checkpointed tree", "invalid proof"}},
		{name: "truncated_receipt_client_ParseProof", how: local,
			call: func(t *testing.T) error {
				cut := h.receipt[:bytes.Index(h.receipt, []byte("\n\n"))]
				_, err := client.VerifyReceipt(h.tech.Genesis(), nil, cut, 0)
				return err
			},
			msg: []string{"malformed tlog-proof: no blank line before the checkpoint"}},
		{name: "truncated_receipt_checkpoint_client_VerifyReceipt", how: local,
			call: func(t *testing.T) error {
				// Keep the first cosignature line only.
				first := bytes.Index(h.receipt, []byte("\n— ")) + 1
				cut := h.receipt[:first+bytes.IndexByte(h.receipt[first:], '\n')+1]
				_, err := client.VerifyReceipt(h.tech.Genesis(), nil, cut, 0)
				return err
			},
			msg: []string{"receipt checkpoint is cosigned by 1 voting org(s)", "2 required"}},

		// Governance acts.
		{name: "governance_act_without_quorum", code: codes.PermissionDenied,
			call: func(t *testing.T) error {
				a := &federation.Act{Federation: fedName, Sequence: 2, Kind: federation.ActRemoveOrg, Name: "iwf", Reason: "hostile"}
				_, err := h.ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: act(t, a, h.ngoS)})
				return err
			},
			msg: []string{"signed by 1 operator org(s) [ngo], 2 of [auditor ngo techco] required"}},
		{name: "governance_act_replayed", code: codes.AlreadyExists,
			call: func(t *testing.T) error {
				_, err := h.ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: h.removal})
				return err
			},
			msg: []string{"act sequence 1 is already used (the next is 2): this act is a replay"}},
		{name: "governance_act_garbage", code: codes.InvalidArgument,
			call: func(t *testing.T) error {
				_, err := h.ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: []byte("{not json")})
				return err
			},
			msg: []string{"act envelope is not DSSE JSON"}},

		// Availability: a subscriber that never reads while the ledger
		// grows under it. The growth comes from two honest publishers;
		// the row checks it is exactly theirs.
		{name: "stream_that_never_reads", code: codes.OK, grows: 2 * neverReadsCommits,
			call: func(t *testing.T) error { return h.neverReads(t, ctx) }},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) { h.run(t, r) })
	}
}

// How a row's input is refused.
type refusal int

const (
	rpc       refusal = iota // with a gRPC status from the node
	handshake                // in the TLS handshake: Unavailable, nothing served
	local                    // by the client library, offline
)

type hostileRow struct {
	name string
	how  refusal
	// call sends the input and returns the error its sender got.
	call func(t *testing.T) error
	// code is the status code expected (rpc rows).
	code codes.Code
	// msg are phrases the error message must contain; for handshake
	// rows, the node's log.
	msg []string
	// grows is how many entries honest publishers add during the row.
	grows int64
}

// A hostile is the federation under attack: testOptions plus "gone", a
// publisher removed by governance before the rows run.
type hostile struct {
	f                           *localfed.Federation
	ngo, iwf, tech, trusted     *client.Client
	ngoS, iwfS, techS, goneS    *federation.Signer
	committed                   *hashfedv1.Contribution // ngo's sequence 1, at entry 1
	removal                     []byte                  // the act that removed gone
	receipt                     []byte                  // a receipt for entry 1
	expired, stranger, impostor tls.Certificate
	gone                        tls.Certificate
	roots                       *certs.Bundle
	logs                        *syncBuffer // every node's warnings
}

func newHostile(t *testing.T) *hostile {
	t.Helper()
	opts := testOptions(t.TempDir())
	opts.Orgs = append(opts.Orgs, localfed.OrgSpec{Name: "gone", Roles: []federation.Role{federation.RolePublisher}})
	opts.Sets = append(opts.Sets, federation.Set{Name: "gone/list", Types: []federation.SignalType{federation.MD5}, Readers: []string{"techco"}})
	logs := &syncBuffer{}
	opts.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f := startFederation(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := &hostile{
		f:       f,
		logs:    logs,
		ngo:     dial(t, f, "ngo", "techco-1"), // a node of another org, often a follower
		iwf:     dial(t, f, "iwf", "ngo-1"),
		tech:    dial(t, f, "techco", "auditor-1"),
		trusted: dial(t, f, "auditor", "auditor-1"),
		ngoS:    signer(t, f, "ngo"),
		iwfS:    signer(t, f, "iwf"),
		techS:   signer(t, f, "techco"),
		goneS:   signer(t, f, "gone"),
	}
	cas := map[string]*x509.Certificate{}
	var err error
	for _, o := range h.trusted.Genesis().Orgs {
		if cas[o.Name], err = o.CACertificate(); err != nil {
			t.Fatal(err)
		}
	}
	h.roots = certs.NewBundle(cas)

	// Entry 1: ngo's first contribution, which the replay row sends again.
	h.committed, _, err = federation.BuildContribution(h.ngoS, fedName, "ngo/csam", 1, sampleSignals(0, 5), "")
	if err == nil {
		err = commit(ctx, h.ngo, h.committed)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Entry 2: governance removes gone.
	h.removal = act(t, &federation.Act{Federation: fedName, Sequence: 1, Kind: federation.ActRemoveOrg, Name: "gone", Reason: "left"}, h.ngoS, h.techS)
	sub, err := h.ngo.Governance.Submit(ctx, &hashfedv1.SubmitRequest{Envelope: h.removal})
	if err != nil {
		t.Fatal(err)
	}
	converge(t, f, sub.GetIndex()+1)
	r, err := h.trusted.Ledger.GetReceipt(ctx, &hashfedv1.GetReceiptRequest{Index: 1})
	if err != nil {
		t.Fatal(err)
	}
	h.receipt = r.GetReceipt()

	// Certificates.
	ngoCA, err := certs.LoadCA(f.Orgs["ngo"].Dir)
	if err != nil {
		t.Fatal(err)
	}
	techCA, err := certs.LoadCA(f.Orgs["techco"].Dir)
	if err != nil {
		t.Fatal(err)
	}
	strangerCA, err := certs.NewCA("ngo", time.Hour) // claims to be ngo's CA, is not
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h.expired = clientCert(t, ngoCA, "spiffe://ngo/client/expired", now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	h.stranger = clientCert(t, strangerCA, "spiffe://ngo/client/mallory", now.Add(-time.Hour), now.Add(time.Hour))
	// techco's CA name constraints forbid this identity; x509 signs it
	// regardless, as an attacker holding techco's CA key would.
	h.impostor = clientCert(t, techCA, "spiffe://ngo/client/mallory", now.Add(-time.Hour), now.Add(time.Hour))
	if h.gone, err = certs.LoadKeyPair(f.Orgs["gone"].ClientCert, f.Orgs["gone"].ClientKey); err != nil {
		t.Fatal(err)
	}
	// Nodes rebuild their TLS trust right after applying the removal;
	// wait until every one refuses gone's certificate.
	waitRefused(ctx, t, f, "gone")
	return h
}

// run runs one row and checks its refusal and the ledger around it.
func (h *hostile) run(t *testing.T, r hostileRow) {
	before := h.settled(t)
	mark := len(h.logs.String())
	start := time.Now()
	err := r.call(t)
	t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
	msg := ""
	switch r.how {
	case rpc:
		if status.Code(err) != r.code {
			t.Errorf("got %v, want code %v", err, r.code)
		}
		msg = status.Convert(err).Message()
	case handshake:
		if status.Code(err) != codes.Unavailable {
			t.Errorf("got %v, want Unavailable (refused in the TLS handshake)", err)
		}
		msg = h.waitLog(t, mark, r.msg)
		// What the command-line client prints says what to check.
		if hint := client.Explain(err); hint == nil || !strings.Contains(hint.Error(), "check that --cert was issued by your org's CA") {
			t.Errorf("the client explains %v without pointing at the certificate", hint)
		}
	case local:
		if err == nil {
			t.Fatal("accepted")
		}
		if _, ok := status.FromError(err); ok {
			t.Errorf("got a gRPC status %v from an offline check", err)
		}
		msg = err.Error()
	}
	for _, m := range r.msg {
		if !strings.Contains(msg, m) {
			t.Errorf("message %q does not say %q", msg, m)
		}
	}
	after := h.settled(t)
	switch {
	case r.grows == 0 && after != before:
		t.Errorf("the ledger moved from size %d root %v to size %d root %v", before.Size, before.Hash, after.Size, after.Hash)
	case r.grows != 0:
		h.checkHonestGrowth(t, before, after, r.grows)
	}
}

// waitLog waits until the nodes' log since mark holds every phrase in
// want, and returns it.
func (h *hostile) waitLog(t *testing.T, mark int, want []string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.logs.String()[mark:]
		if !slices.ContainsFunc(want, func(m string) bool { return !strings.Contains(got, m) }) || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settled waits until every node has applied all the leader has committed,
// checks that they hold the same tree and a cosigned checkpoint of all of
// it, and returns that checkpoint as a trusted client, which checks it
// against the genesis, sees it.
func (h *hostile) settled(t *testing.T) ledger.Checkpoint {
	t.Helper()
	ctx := testCtx(t)
	for id, n := range h.f.Nodes {
		if err := n.Consensus().Sync(ctx); err != nil {
			t.Fatalf("catching %s up with the leader: %v", id, err)
		}
	}
	var tree ledger.Checkpoint
	for id, cp := range checkpoints(t, h.f) {
		if tree.Size != 0 && cp != tree {
			t.Fatalf("node %s holds %+v, another %+v", id, cp, tree)
		}
		tree = cp
	}
	if err := h.f.WaitCheckpoint(ctx, tree.Size); err != nil {
		t.Fatal(err)
	}
	res, err := h.trusted.Ledger.GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{})
	if err != nil {
		t.Fatal(err)
	}
	g := h.trusted.Genesis()
	cp, orgs, err := g.OpenCosigned(res.GetSignedCheckpoint())
	if err != nil {
		t.Fatal(err)
	}
	if len(orgs) < g.CheckpointQuorum() || cp != tree {
		t.Fatalf("the trusted client sees %+v cosigned by %v, the nodes hold %+v", cp, orgs, tree)
	}
	return cp
}

// checkHonestGrowth checks that the ledger grew from before to after by
// exactly n statements of the honest publishers, ngo and iwf, and that the
// new tree extends the old one.
func (h *hostile) checkHonestGrowth(t *testing.T, before, after ledger.Checkpoint, n int64) {
	t.Helper()
	ctx := testCtx(t)
	if after.Size != before.Size+n {
		t.Errorf("the ledger grew from %d to %d entries, want the %d honest contributions only", before.Size, after.Size, n)
		return
	}
	p, err := h.trusted.Ledger.GetConsistencyProof(ctx, &hashfedv1.GetConsistencyProofRequest{OldSize: before.Size, NewSize: after.Size})
	if err != nil {
		t.Fatal(err)
	}
	var proof tlog.TreeProof
	for _, b := range p.GetHashes() {
		proof = append(proof, tlog.Hash(b))
	}
	if err := ledger.VerifyConsistency(before.Size, before.Hash, after.Size, after.Hash, proof); err != nil {
		t.Errorf("the grown ledger does not extend the one before: %v", err)
	}
	for start := before.Size; start < after.Size; start += 1000 {
		res, err := h.trusted.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: start, End: min(after.Size, start+1000)})
		if err != nil {
			t.Fatal(err)
		}
		for i, leaf := range res.GetEntries() {
			_, st, err := federation.DecodeEntry(leaf)
			if err != nil || st == nil || !slices.Contains([]string{"ngo/csam", "iwf/list"}, st.Set) {
				t.Errorf("entry %d is not an honest publisher's statement: %v %+v", start+int64(i), err, st)
			}
		}
	}
}

// handshake returns a call that publishes build() and reads the checkpoint
// over a connection presenting cert (none if not given), and returns the
// publish's error. The client does not verify the server here: the point
// is what the server gives the caller.
func (h *hostile) handshake(addr string, build func(*testing.T) *hashfedv1.Contribution, cert ...tls.Certificate) func(*testing.T) error {
	return func(t *testing.T) error {
		conf := &tls.Config{MinVersion: tls.VersionTLS13, InsecureSkipVerify: true, Certificates: cert}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(conf)))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, perr := hashfedv1.NewPublishServiceClient(conn).Publish(ctx, &hashfedv1.PublishRequest{Contribution: build(t)})
		if cp, err := hashfedv1.NewLedgerServiceClient(conn).GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{}); status.Code(err) != codes.Unavailable {
			return fmt.Errorf("publish: %w; but the checkpoint was served: %v, %v", perr, cp, err)
		}
		return perr
	}
}

// memberConn dials addr with a member's certificate, verifying the node.
func (h *hostile) memberConn(t *testing.T, certFile, keyFile, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cert, err := certs.LoadKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(certs.ClientConfig(cert, h.roots))))
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// cosign asks ngo-1 to cosign body, as node techco-1.
func (h *hostile) cosign(t *testing.T, ctx context.Context, body []byte) error {
	var from, to *localfed.NodeFiles
	for _, nf := range h.f.Files {
		switch nf.ID {
		case "techco-1":
			from = nf
		case "ngo-1":
			to = nf
		}
	}
	cfg := from.NodeConfig()
	conn := h.memberConn(t, cfg.TLSCert, cfg.TLSKey, to.APIAddress)
	_, err := hashfedv1.NewClusterServiceClient(conn).Cosign(ctx, &hashfedv1.CosignRequest{Checkpoint: body})
	return err
}

// checkpointBody returns the checkpoint body of the ledger at size, with
// its root replaced by SHA-256 of root if root is not nil.
func (h *hostile) checkpointBody(t *testing.T, size int64, root []byte) []byte {
	t.Helper()
	cp, err := h.f.Nodes["ngo-1"].State().RootAt(size)
	if err != nil {
		t.Fatal(err)
	}
	if root != nil {
		cp.Hash = sha256.Sum256(root)
	}
	return cp.Marshal()
}

// neverReadsCommits is how many contributions each of two publishers makes
// while a subscriber reads nothing: enough that the entries outgrow both
// gRPC's flow-control windows and one subscription batch.
const neverReadsCommits = 200

// neverReads opens a subscription whose client never calls Recv, with
// gRPC's smallest flow-control windows, and grows the ledger under it by
// 2*neverReadsCommits honest contributions through the same node. The node
// must keep serving everyone else (a subscriber reading along, unary
// calls, the publishers themselves) and must hold the stuck stream to at
// most one batch of entries read ahead; once the client reads, it gets
// every entry in order.
func (h *hostile) neverReads(t *testing.T, ctx context.Context) error {
	nodeID := h.f.Leader()
	if nodeID == "" {
		nodeID = "ngo-1"
	}
	n := h.f.Nodes[nodeID]
	start := n.State().Size()
	total := int64(2 * neverReadsCommits)

	// A subscriber that reads, opened (and past its first entry, so its
	// stream reports to no meter) before the meter watches the node.
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	reader, err := dial(t, h.f, "techco", nodeID).Subscriber.Subscribe(rctx, &hashfedv1.SubscribeRequest{Cursor: start - 1})
	if err != nil {
		return err
	}
	if _, err := reader.Recv(); err != nil {
		return fmt.Errorf("the reading subscriber: %w", err)
	}
	meter := node.MeterReadAhead(t, n)

	const window = 64 << 10 // gRPC's minimum
	tc := h.f.Orgs["techco"]
	conn := h.memberConn(t, tc.ClientCert, tc.ClientKey, n.APIAddr(), grpc.WithInitialWindowSize(window), grpc.WithInitialConnWindowSize(window))
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	stuck, err := hashfedv1.NewSubscribeServiceClient(conn).Subscribe(sctx, &hashfedv1.SubscribeRequest{Cursor: start})
	if err != nil {
		return err
	}
	if md, err := stuck.Header(); err != nil || md == nil {
		_, err = stuck.Recv()
		return fmt.Errorf("the node did not accept the subscription: %w", err)
	}

	// Two publishers through the same node; each contribution adds two
	// new signals (iwf/list takes md5 and pdq only).
	all := sampleSignals(1000, 5*neverReadsCommits*2/2)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for _, p := range []struct {
		c    *client.Client
		s    *federation.Signer
		set  string
		iwfs bool
	}{{dial(t, h.f, "ngo", nodeID), h.ngoS, "ngo/csam", false}, {dial(t, h.f, "iwf", nodeID), h.iwfS, "iwf/list", true}} {
		sigs := slices.DeleteFunc(slices.Clone(all), func(s *hashfedv1.Signal) bool {
			return (s.Type == federation.MD5.Proto() || s.Type == federation.PDQ.Proto()) != p.iwfs
		})
		first, err := p.c.NextSequence(ctx, p.set)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint64(neverReadsCommits) {
				contrib, _, err := federation.BuildContribution(p.s, fedName, p.set, first+i, sigs[2*i:2*i+2], "")
				if err == nil {
					err = commit(ctx, p.c, contrib)
				}
				if err != nil {
					errs <- fmt.Errorf("%s contribution %d, while a subscriber is stuck: %w", p.s.Org, first+i, err)
					return
				}
			}
		}()
	}
	// Meanwhile the reading subscriber receives every entry as it commits,
	// and the node answers other calls.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for want := start; want < start+total; want++ {
			msg, err := reader.Recv()
			if err == nil && msg.GetIndex() != want {
				err = fmt.Errorf("got entry %d, want %d", msg.GetIndex(), want)
			}
			if err != nil {
				errs <- fmt.Errorf("the reading subscriber on the same node: %w", err)
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	if _, err := dial(t, h.f, "auditor", nodeID).Ledger.GetCheckpoint(ctx, &hashfedv1.GetCheckpointRequest{}); err != nil {
		return fmt.Errorf("a unary call to the node with the stuck stream: %w", err)
	}
	t.Logf("stuck stream on %s: %d of %d new entries read from the state, %d sent; at most %d read ahead", nodeID, meter.Read(), total, meter.Sent(), meter.MaxAhead())
	if ahead := meter.MaxAhead(); ahead > node.SubscribeBatch {
		return fmt.Errorf("the node read up to %d entries ahead of what the stuck stream sent, want at most one batch of %d", ahead, node.SubscribeBatch)
	}
	if sent := meter.Sent(); sent >= total {
		return fmt.Errorf("the node handed all %d entries to a stream that reads nothing: flow control did not hold it back", sent)
	}

	// The client wakes up and gets every entry, in order.
	for want := start; want < start+total; want++ {
		msg, err := stuck.Recv()
		if err != nil {
			return fmt.Errorf("the stuck stream, after %d entries: %w", want-start, err)
		}
		if msg.GetIndex() != want {
			return fmt.Errorf("the stuck stream got entry %d, want %d", msg.GetIndex(), want)
		}
	}
	return nil
}

// signRaw signs a statement for payload p, claiming count signals, as s's
// contribution seq to set, without checking the payload: what a buggy or
// hostile publisher could send.
func signRaw(t *testing.T, s *federation.Signer, set string, seq uint64, count int, p *hashfedv1.Payload) *hashfedv1.Contribution {
	t.Helper()
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var types, labels []string
	for _, sig := range p.GetSignals() {
		ty, err := federation.SignalTypeFromProto(sig.GetType())
		if err == nil && !slices.Contains(types, string(ty)) {
			types = append(types, string(ty))
		}
		for _, l := range sig.GetLabels() {
			if !slices.Contains(labels, l) {
				labels = append(labels, l)
			}
		}
	}
	slices.Sort(types)
	slices.Sort(labels)
	sum := sha256.Sum256(payload)
	env, err := s.SignStatement(&federation.Statement{
		Federation: fedName, Org: s.Org, Set: set, Sequence: seq, Op: federation.OpAdd,
		Count: count, Types: types, Labels: labels, PayloadSHA256: hex.EncodeToString(sum[:]),
	})
	if err != nil {
		t.Fatal(err)
	}
	return &hashfedv1.Contribution{Envelope: env, Payload: payload}
}

// clientCert makes a client certificate for identity, signed by ca and
// valid from notBefore to notAfter, by hand: no CA of the federation
// would issue these.
func clientCert(t *testing.T, ca *certs.CA, identity string, notBefore, notAfter time.Time) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(identity)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "hostile"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// rawCodec sends and receives bytes as they are, so a test can put
// anything on the wire as a request. Its name is "proto", so the node
// decodes what it receives as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, errors.New("rawCodec sends []byte only")
	}
	return b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return errors.New("rawCodec receives into *[]byte only")
	}
	*p = slices.Clone(data)
	return nil
}

func (rawCodec) Name() string { return "proto" }
