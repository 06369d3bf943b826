// Package client is hashfed's client library: it dials a node over mutual
// TLS with an org's client certificate, publishes signed contributions,
// follows the ledger with every entry verified, and audits the ledger.
//
// Everything a node returns is checked against the genesis document the
// caller holds: statement signatures against the orgs' registered keys,
// payloads against their statements' digests, checkpoints against the nodes'
// registered checkpoint keys, entries against checkpoints by Merkle proofs.
package client

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// Config says which node to talk to and with what credentials.
type Config struct {
	// Node is the node's API address, host:port.
	Node string
	// Genesis is the path of the federation's genesis document.
	Genesis string
	// Cert and Key are an org client (or node) certificate and its key.
	Cert, Key string
}

// A Client is a connection to one node.
type Client struct {
	conn     *grpc.ClientConn
	genesis  *federation.Genesis
	doc      []byte
	identity certs.Identity

	Publisher  hashfedv1.PublishServiceClient
	Subscriber hashfedv1.SubscribeServiceClient
	Ledger     hashfedv1.LedgerServiceClient
	Cluster    hashfedv1.ClusterServiceClient
	Governance hashfedv1.GovernanceServiceClient

	// PublishAttempts bounds how often [Client.PublishChange] sends one
	// contribution whose outcome stays unknown; 0 means
	// [DefaultPublishAttempts].
	PublishAttempts int
}

// maxMessageSize matches the node's limit.
const maxMessageSize = 4 << 20

// Dial prepares a client; the connection opens on first use.
func Dial(cfg Config) (*Client, error) {
	if cfg.Node == "" || cfg.Genesis == "" || cfg.Cert == "" || cfg.Key == "" {
		return nil, errors.New("a node address, the genesis file, a client certificate and its key are all required (flags --node --genesis --cert --key, or HASHFED_NODE, HASHFED_GENESIS, HASHFED_CERT, HASHFED_KEY)")
	}
	doc, err := os.ReadFile(cfg.Genesis)
	if err != nil {
		return nil, fmt.Errorf("reading genesis: %w", err)
	}
	g, err := federation.ParseGenesis(doc)
	if err != nil {
		return nil, err
	}
	cert, err := certs.LoadKeyPair(cfg.Cert, cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("loading client certificate: %w", err)
	}
	id, err := certs.IdentityFromCert(cert.Leaf)
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	cas := map[string]*x509.Certificate{}
	for _, o := range g.Orgs {
		c, err := o.CACertificate()
		if err != nil {
			return nil, err
		}
		cas[o.Name] = c
	}
	creds := credentials.NewTLS(certs.ClientConfig(cert, certs.NewBundle(cas)))
	conn, err := grpc.NewClient(cfg.Node,
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageSize), grpc.MaxCallSendMsgSize(maxMessageSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", cfg.Node, err)
	}
	return &Client{
		conn: conn, genesis: g, doc: doc, identity: id,
		Publisher:  hashfedv1.NewPublishServiceClient(conn),
		Subscriber: hashfedv1.NewSubscribeServiceClient(conn),
		Ledger:     hashfedv1.NewLedgerServiceClient(conn),
		Cluster:    hashfedv1.NewClusterServiceClient(conn),
		Governance: hashfedv1.NewGovernanceServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Genesis returns the genesis the client verifies against.
func (c *Client) Genesis() *federation.Genesis { return c.genesis }

// Identity returns the client's own identity.
func (c *Client) Identity() certs.Identity { return c.identity }

// GenesisDocument returns the genesis document the client verifies against.
func (c *Client) GenesisDocument() []byte { return slices.Clone(c.doc) }

// Conn returns the underlying gRPC connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Explain adds a hint to errors whose cause a user may not see from the status
// alone. A node that refuses a client certificate closes the connection
// during the TLS 1.3 handshake, which the client sees as a reset, a broken
// pipe, an EOF or a TLS alert, depending on timing.
func Explain(err error) error {
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.Unavailable {
		return err
	}
	msg := s.Message()
	switch {
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("%w\nhint: nothing is listening at that address; check --node (or HASHFED_NODE)", err)
	case strings.Contains(msg, "no such host"), strings.Contains(msg, "i/o timeout"):
		return fmt.Errorf("%w\nhint: the node's address cannot be reached; check --node (or HASHFED_NODE)", err)
	case strings.Contains(msg, "rejected server certificate"):
		return fmt.Errorf("%w\nhint: the node's certificate does not chain to the CA of an org in your genesis file; check --genesis and --node", err)
	case strings.Contains(msg, "tls:"), strings.Contains(msg, "certificate"), strings.Contains(msg, "broken pipe"),
		strings.Contains(msg, "connection reset"), strings.Contains(msg, "EOF"):
		return fmt.Errorf("%w\nhint: the node closed the connection during the TLS handshake, which is how it refuses a client certificate: check that --cert was issued by your org's CA (hashfed certs create-client) and that your org is a member", err)
	default:
		return err
	}
}

// Status asks the node for its view of the cluster.
func (c *Client) Status(ctx context.Context) (*hashfedv1.StatusResponse, error) {
	st, err := c.Cluster.Status(ctx, &hashfedv1.StatusRequest{})
	return st, Explain(err)
}
