package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
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
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// A lyingNode is a member's node that lies: a gRPC server presenting a real
// node certificate (for ngo-1, issued by ngo's CA) over mutual TLS exactly
// as a node does, which answers LedgerService, SubscribeService and
// GovernanceService.GetRegistry calls by asking a real node and altering
// the answers as its lies say. It is the threat model of an audit: a
// malicious or buggy member node.
type lyingNode struct {
	hashfedv1.UnimplementedLedgerServiceServer
	hashfedv1.UnimplementedSubscribeServiceServer
	hashfedv1.UnimplementedGovernanceServiceServer

	// ledger reads the real node as the auditor org; reader subscribes to
	// it as techco, a reader of ngo/csam, so that payloads come too.
	ledger, reader *client.Client
	lies           lies
	// Addr is the address the lying node listens on.
	Addr string
}

// lies say how a lyingNode alters what the real node answers. A nil lie
// passes the real answer through. Lies run on the server's goroutines: they
// must not call t.Fatal, and may modify what they are given.
type lies struct {
	// checkpoint replaces the signed checkpoint.
	checkpoint func(signed []byte) []byte
	// entries is the whole ledger as the lying node claims it, given the
	// real one; GetEntries serves ranges of it.
	entries func(leaves [][]byte) [][]byte
	// inclusion and consistency replace proofs.
	inclusion   func(index, size int64, hashes [][]byte) [][]byte
	consistency func(oldSize, newSize int64, hashes [][]byte) [][]byte
	// updates replaces one message of a Subscribe stream by zero or more.
	updates func(msg *hashfedv1.SubscribeResponse) []*hashfedv1.SubscribeResponse
	// registry replaces the registry JSON that GetRegistry returns.
	registry func(reg []byte) []byte
	// receipt replaces the receipt that GetReceipt returns.
	receipt func(receipt []byte) []byte
}

func (n *lyingNode) GetReceipt(ctx context.Context, req *hashfedv1.GetReceiptRequest) (*hashfedv1.GetReceiptResponse, error) {
	r, err := n.ledger.Ledger.GetReceipt(ctx, req)
	if err != nil || n.lies.receipt == nil {
		return r, err
	}
	r.Receipt = n.lies.receipt(r.GetReceipt())
	return r, nil
}

// startLyingNode starts a lying node in front of the real node realID and
// stops it when the test ends.
func startLyingNode(t *testing.T, f *localfed.Federation, realID string, l lies) *lyingNode {
	t.Helper()
	ca, err := certs.LoadCA(f.Orgs["ngo"].Dir)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.IssueNode("ngo-1", []string{"127.0.0.1", "localhost"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cas := map[string]*x509.Certificate{}
	for _, o := range genesisOf(t, f).Orgs {
		c, err := o.CACertificate()
		if err != nil {
			t.Fatal(err)
		}
		cas[o.Name] = c
	}
	n := &lyingNode{lies: l}
	if n.ledger, err = f.Client("auditor", realID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.ledger.Close() })
	if n.reader, err = f.Client("techco", realID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.reader.Close() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n.Addr = ln.Addr().String()
	tlsCfg := certs.ServerConfig(cert, certs.NewBundle(cas), []certs.Kind{certs.KindNode, certs.KindClient}, "h2")
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)))
	hashfedv1.RegisterLedgerServiceServer(srv, n)
	hashfedv1.RegisterSubscribeServiceServer(srv, n)
	hashfedv1.RegisterGovernanceServiceServer(srv, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return n
}

// dialAs dials the node at addr as org's command-line user.
func dialAs(t *testing.T, f *localfed.Federation, org, addr string) *client.Client {
	t.Helper()
	o := f.Orgs[org]
	c, err := client.Dial(client.Config{Node: addr, Genesis: f.Genesis, Cert: o.ClientCert, Key: o.ClientKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (n *lyingNode) GetCheckpoint(ctx context.Context, req *hashfedv1.GetCheckpointRequest) (*hashfedv1.GetCheckpointResponse, error) {
	r, err := n.ledger.Ledger.GetCheckpoint(ctx, req)
	if err != nil || n.lies.checkpoint == nil {
		return r, err
	}
	return &hashfedv1.GetCheckpointResponse{SignedCheckpoint: n.lies.checkpoint(r.GetSignedCheckpoint())}, nil
}

func (n *lyingNode) GetEntries(ctx context.Context, req *hashfedv1.GetEntriesRequest) (*hashfedv1.GetEntriesResponse, error) {
	if n.lies.entries == nil {
		return n.ledger.Ledger.GetEntries(ctx, req)
	}
	st, err := n.ledger.Status(ctx)
	if err != nil {
		return nil, err
	}
	var leaves [][]byte
	for start := int64(0); start < st.GetLedgerSize(); start += int64(len(leaves)) {
		r, err := n.ledger.Ledger.GetEntries(ctx, &hashfedv1.GetEntriesRequest{Start: start, End: st.GetLedgerSize()})
		if err != nil {
			return nil, err
		}
		leaves = append(leaves, r.GetEntries()...)
	}
	claimed := n.lies.entries(leaves)
	start, end := req.GetStart(), req.GetEnd()
	if start < 0 || end <= start {
		return nil, status.Errorf(codes.InvalidArgument, "entry range [%d, %d) is empty or negative", start, end)
	}
	end = min(end, int64(len(claimed)))
	start = min(start, end)
	return &hashfedv1.GetEntriesResponse{Entries: claimed[start:end]}, nil
}

func (n *lyingNode) GetInclusionProof(ctx context.Context, req *hashfedv1.GetInclusionProofRequest) (*hashfedv1.GetInclusionProofResponse, error) {
	r, err := n.ledger.Ledger.GetInclusionProof(ctx, req)
	if n.lies.inclusion == nil {
		return r, err
	}
	// A lie may be about a tree the real node does not have; r is nil then.
	return &hashfedv1.GetInclusionProofResponse{Hashes: n.lies.inclusion(req.GetIndex(), req.GetTreeSize(), r.GetHashes())}, nil
}

func (n *lyingNode) GetConsistencyProof(ctx context.Context, req *hashfedv1.GetConsistencyProofRequest) (*hashfedv1.GetConsistencyProofResponse, error) {
	r, err := n.ledger.Ledger.GetConsistencyProof(ctx, req)
	if n.lies.consistency == nil {
		return r, err
	}
	return &hashfedv1.GetConsistencyProofResponse{Hashes: n.lies.consistency(req.GetOldSize(), req.GetNewSize(), r.GetHashes())}, nil
}

func (n *lyingNode) GetRegistry(ctx context.Context, req *hashfedv1.GetRegistryRequest) (*hashfedv1.GetRegistryResponse, error) {
	r, err := n.reader.Governance.GetRegistry(ctx, req)
	if err != nil || n.lies.registry == nil {
		return r, err
	}
	return &hashfedv1.GetRegistryResponse{Registry: n.lies.registry(r.GetRegistry()), NextAct: r.GetNextAct()}, nil
}

func (n *lyingNode) Subscribe(req *hashfedv1.SubscribeRequest, stream grpc.ServerStreamingServer[hashfedv1.SubscribeResponse]) error {
	up, err := n.reader.Subscriber.Subscribe(stream.Context(), req)
	if err != nil {
		return err
	}
	for {
		msg, err := up.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		out := []*hashfedv1.SubscribeResponse{msg}
		if n.lies.updates != nil {
			out = n.lies.updates(msg)
		}
		for _, m := range out {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
	}
}

// flipInEnvelope returns a copy of a statement leaf with one byte of its
// DSSE envelope (a third of the way in, inside the signed statement) changed.
func flipInEnvelope(t *testing.T, leaf []byte) []byte {
	t.Helper()
	_, st, err := federation.DecodeEntry(leaf)
	if err != nil || st == nil {
		t.Fatalf("not a statement entry: %v", err)
	}
	var e hashfedv1.LedgerEntry
	if err := proto.Unmarshal(leaf, &e); err != nil {
		t.Fatal(err)
	}
	env := e.GetStatement().GetEnvelope()
	at := bytes.Index(leaf, env)
	if at < 0 {
		t.Fatal("envelope not found in its leaf")
	}
	out := slices.Clone(leaf)
	out[at+len(env)/3] ^= 0x01
	return out
}

// retime returns a copy of leaf whose leader's time is one nanosecond
// later: a different leaf carrying the same, validly signed statement.
func retime(t *testing.T, leaf []byte) []byte {
	t.Helper()
	var e hashfedv1.LedgerEntry
	if err := proto.Unmarshal(leaf, &e); err != nil {
		t.Fatal(err)
	}
	e.TimeUnixNano++
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rewriteStatement returns a copy of a statement leaf whose statement was
// changed by edit and put back into the envelope without re-signing it.
func rewriteStatement(t *testing.T, leaf []byte, edit func(st *federation.Statement)) []byte {
	t.Helper()
	var e hashfedv1.LedgerEntry
	if err := proto.Unmarshal(leaf, &e); err != nil {
		t.Fatal(err)
	}
	st, err := federation.PeekStatement(e.GetStatement().GetEnvelope())
	if err != nil {
		t.Fatal(err)
	}
	edit(st)
	env := replaceEnvelopePayload(t, e.GetStatement().GetEnvelope(), st)
	e.Kind = &hashfedv1.LedgerEntry_Statement{Statement: &hashfedv1.StatementEntry{Envelope: env}}
	out, err := proto.MarshalOptions{Deterministic: true}.Marshal(&e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// replaceEnvelopePayload returns a copy of the DSSE envelope env carrying
// st as its payload, with env's signatures unchanged.
func replaceEnvelopePayload(t *testing.T, env []byte, st *federation.Statement) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(env, &m); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if m["payload"], err = json.Marshal(base64.StdEncoding.EncodeToString(body)); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tree builds an in-memory Merkle tree over leaves, as a lying node that
// serves a forked ledger consistently would.
func tree(t *testing.T, leaves [][]byte) *ledger.Tree {
	t.Helper()
	tr, err := ledger.NewTree(ledger.NewMemStore())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaves {
		if _, err := tr.Append(l); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}

// signatureLines splits a signed note into its text and its signature
// lines, each "— <key name> <base64>\n".
func signatureLines(t *testing.T, signed []byte) (text []byte, sigs []string) {
	t.Helper()
	text, rest, ok := bytes.Cut(signed, []byte("\n\n"))
	if !ok {
		t.Fatalf("not a signed note: %q", signed)
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(rest), "\n"), "\n") {
		sigs = append(sigs, l+"\n")
	}
	return append(text, '\n'), sigs
}

// withSignatures reassembles a signed note from its text and signature lines.
func withSignatures(text []byte, sigs []string) []byte {
	var b bytes.Buffer
	b.Write(text)
	b.WriteString("\n")
	for _, s := range sigs {
		b.WriteString(s)
	}
	return b.Bytes()
}

// sigKeyName returns the key name of a signature line.
func sigKeyName(line string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(line, "— "), " ")
	return name
}

// oneOrgOnly keeps only the signatures of the org whose node signed first.
func oneOrgOnly(t *testing.T, signed []byte) (note []byte, org string) {
	t.Helper()
	text, sigs := signatureLines(t, signed)
	orgOf := func(line string) string {
		id := strings.TrimPrefix(sigKeyName(line), fedName+"/")
		o, _, _ := strings.Cut(id, "-")
		return o
	}
	org = orgOf(sigs[0])
	var kept []string
	for _, s := range sigs {
		if orgOf(s) == org {
			kept = append(kept, s)
		}
	}
	return withSignatures(text, kept), org
}

// signedBy signs the checkpoint body text with signers and returns only
// their signature lines.
func signedBy(t *testing.T, text []byte, signers ...note.Signer) []string {
	t.Helper()
	signed, err := note.Sign(&note.Note{Text: string(text)}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	_, sigs := signatureLines(t, signed)
	return sigs
}
