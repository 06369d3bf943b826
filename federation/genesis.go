package federation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"golang.org/x/mod/sumdb/note"
)

// GenesisVersion is the version of the genesis document format. A future
// incompatible format would use a different number.
const GenesisVersion = 1

// A Role is what an org may do in the federation.
type Role string

// The roles.
const (
	RolePublisher  Role = "publisher"  // publishes hash sets it owns
	RoleSubscriber Role = "subscriber" // reads the sets that list it as a reader
	RoleAuditor    Role = "auditor"    // verifies the ledger; never receives signal values
	RoleOperator   Role = "operator"   // runs voting nodes and takes part in governance
)

var knownRoles = []Role{RolePublisher, RoleSubscriber, RoleAuditor, RoleOperator}

// A Genesis is the document that founds a federation. Every node starts from
// the same bytes; ledger entry 0 records them.
type Genesis struct {
	// Version is GenesisVersion.
	Version int `json:"version"`
	// Federation is the federation's name and the origin line of its checkpoints.
	Federation string `json:"federation"`
	// Orgs are the founding organisations, in a fixed order.
	Orgs []Org `json:"orgs"`
	// Nodes are the founding nodes; the voters form the first Raft configuration.
	Nodes []Node `json:"nodes"`
	// Sets are the hash sets that exist from the start.
	Sets []Set `json:"sets"`
	// GovernanceThreshold is how many operator orgs must sign a governance
	// act; 0 means a strict majority of the operator orgs at the time.
	GovernanceThreshold int `json:"governance_threshold,omitempty"`
}

// An Org is a participating organisation.
type Org struct {
	// Name is the org's short name, also its identity trust domain ("ngo" in spiffe://ngo/...).
	Name string `json:"name"`
	// Roles the org holds.
	Roles []Role `json:"roles"`
	// CACert is the PEM certificate of the org's CA: every identity naming the org must chain to it.
	CACert string `json:"ca_cert"`
	// SigningKey is the PEM public key that verifies the org's statements (Ed25519 or ECDSA P-256).
	SigningKey string `json:"signing_key"`
}

// A Node is one node of an org.
type Node struct {
	// ID is the node's name, unique in the federation; its certificate identity is spiffe://<org>/node/<id>.
	ID string `json:"id"`
	// Org owns and runs the node.
	Org string `json:"org"`
	// RaftAddress is host:port of the node's Raft listener.
	RaftAddress string `json:"raft_address"`
	// APIAddress is host:port of the node's gRPC API.
	APIAddress string `json:"api_address"`
	// CheckpointKey is the note verifier key (Ed25519) the node signs checkpoints with.
	CheckpointKey string `json:"checkpoint_key"`
	// Voter says whether the node votes in Raft.
	Voter bool `json:"voter"`
}

// A Set is a named hash set owned by one publisher org.
type Set struct {
	// Name is "<owner org>/<list>", e.g. "ngo/csam-industry".
	Name string `json:"name"`
	// Types are the signal types the set may hold.
	Types []SignalType `json:"types"`
	// Readers are the orgs, besides the owner, that may receive the set's values.
	Readers []string `json:"readers"`
}

// Owner returns the org part of a set name.
func (s Set) Owner() string { o, _, _ := strings.Cut(s.Name, "/"); return o }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidName checks an org, node or list name: 1-63 characters of lowercase
// letters, digits, '.', '_' and '-', starting with a letter or digit.
func ValidName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("name %q: want 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", s)
	}
	return nil
}

// ValidSetName checks a set name of the form "<org>/<list>".
func ValidSetName(s string) error {
	org, list, ok := strings.Cut(s, "/")
	if !ok {
		return fmt.Errorf("set name %q: want <org>/<list>", s)
	}
	if err := ValidName(org); err != nil {
		return fmt.Errorf("set name %q: %w", s, err)
	}
	if err := ValidName(list); err != nil {
		return fmt.Errorf("set name %q: %w", s, err)
	}
	return nil
}

// ParseGenesis decodes and validates a genesis document. Unknown fields,
// duplicate or case-variant keys and trailing data are an error (see [decodeStrict]).
func ParseGenesis(b []byte) (*Genesis, error) {
	var g Genesis
	if err := decodeStrict(b, &g); err != nil {
		return nil, fmt.Errorf("parsing genesis: %w", err)
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// Marshal encodes g as indented JSON, the form written to genesis files.
func (g *Genesis) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Digest returns the SHA-256 of a genesis document's bytes.
func Digest(doc []byte) [32]byte { return sha256.Sum256(doc) }

// Validate checks every rule a genesis document must meet and reports the first broken one.
func (g *Genesis) Validate() error {
	if g.Version != GenesisVersion {
		return fmt.Errorf("genesis: version %d, this hashfed reads version %d", g.Version, GenesisVersion)
	}
	if err := ValidOrigin(g.Federation); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	if len(g.Orgs) == 0 {
		return errors.New("genesis: no orgs")
	}
	if err := g.validateOrgs(); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	orgs := map[string]*Org{}
	for i := range g.Orgs {
		orgs[g.Orgs[i].Name] = &g.Orgs[i]
	}
	ids := map[string]bool{}
	addrs := map[string]bool{}
	voters := 0
	for i, n := range g.Nodes {
		if err := ValidName(n.ID); err != nil {
			return fmt.Errorf("genesis: node %d: %w", i, err)
		}
		if ids[n.ID] {
			return fmt.Errorf("genesis: node %q listed twice", n.ID)
		}
		ids[n.ID] = true
		o := orgs[n.Org]
		if o == nil {
			return fmt.Errorf("genesis: node %q belongs to unknown org %q", n.ID, n.Org)
		}
		for _, a := range []string{n.RaftAddress, n.APIAddress} {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return fmt.Errorf("genesis: node %q: address %q: %w", n.ID, a, err)
			}
			if addrs[a] {
				return fmt.Errorf("genesis: address %q used twice", a)
			}
			addrs[a] = true
		}
		v, err := note.NewVerifier(n.CheckpointKey)
		if err != nil {
			return fmt.Errorf("genesis: node %q: checkpoint key: %w", n.ID, err)
		}
		if v.Name() != CheckpointKeyName(g.Federation, n.ID) {
			return fmt.Errorf("genesis: node %q: checkpoint key is named %q, want %q", n.ID, v.Name(), CheckpointKeyName(g.Federation, n.ID))
		}
		if n.Voter {
			voters++
			if !slices.Contains(o.Roles, RoleOperator) {
				return fmt.Errorf("genesis: voting node %q belongs to org %q, which lacks the operator role", n.ID, n.Org)
			}
		}
	}
	if voters == 0 {
		return errors.New("genesis: no voting nodes")
	}
	operators := 0
	for _, o := range g.Orgs {
		if o.HasRole(RoleOperator) {
			operators++
		}
	}
	if g.GovernanceThreshold < 0 || g.GovernanceThreshold > operators {
		return fmt.Errorf("genesis: governance_threshold %d: want 0 (a majority) to %d (every operator org)", g.GovernanceThreshold, operators)
	}
	sets := map[string]bool{}
	for _, s := range g.Sets {
		if err := ValidSetName(s.Name); err != nil {
			return fmt.Errorf("genesis: %w", err)
		}
		if sets[s.Name] {
			return fmt.Errorf("genesis: set %q listed twice", s.Name)
		}
		sets[s.Name] = true
		o := orgs[s.Owner()]
		if o == nil {
			return fmt.Errorf("genesis: set %q: owner org %q is not in the genesis", s.Name, s.Owner())
		}
		if !slices.Contains(o.Roles, RolePublisher) {
			return fmt.Errorf("genesis: set %q: owner org %q lacks the publisher role", s.Name, s.Owner())
		}
		if len(s.Types) == 0 {
			return fmt.Errorf("genesis: set %q allows no signal types", s.Name)
		}
		for _, t := range s.Types {
			if _, err := ParseSignalType(string(t)); err != nil || string(t) != strings.ToLower(string(t)) {
				return fmt.Errorf("genesis: set %q: unknown signal type %q", s.Name, t)
			}
		}
		for _, r := range s.Readers {
			if orgs[r] == nil {
				return fmt.Errorf("genesis: set %q: reader %q is not in the genesis", s.Name, r)
			}
			if !orgs[r].HasRole(RoleSubscriber) && !orgs[r].HasRole(RolePublisher) {
				return fmt.Errorf("genesis: set %q: reader %q holds neither the subscriber nor the publisher role, and only those may receive signal values", s.Name, r)
			}
		}
	}
	return nil
}

// validateOrgs checks each org on its own: name, roles, CA certificate for
// that org, signing key; and that no name repeats.
func (g *Genesis) validateOrgs() error {
	orgs := map[string]*Org{}
	for i := range g.Orgs {
		o := &g.Orgs[i]
		if err := ValidName(o.Name); err != nil {
			return fmt.Errorf("org %d: %w", i, err)
		}
		if orgs[o.Name] != nil {
			return fmt.Errorf("org %q listed twice", o.Name)
		}
		orgs[o.Name] = o
		if len(o.Roles) == 0 {
			return fmt.Errorf("org %q has no roles", o.Name)
		}
		for _, r := range o.Roles {
			if !slices.Contains(knownRoles, r) {
				return fmt.Errorf("org %q: unknown role %q (want publisher, subscriber, auditor or operator)", o.Name, r)
			}
		}
		ca, err := parseCACert(o.CACert)
		if err != nil {
			return fmt.Errorf("org %q: %w", o.Name, err)
		}
		if !slices.Contains(ca.Subject.Organization, o.Name) {
			return fmt.Errorf("org %q: CA certificate is for organization %q", o.Name, ca.Subject.Organization)
		}
		if _, err := ParsePublicKey([]byte(o.SigningKey)); err != nil {
			return fmt.Errorf("org %q: signing key: %w", o.Name, err)
		}
	}
	return nil
}

// Org returns the named org, or nil.
func (g *Genesis) Org(name string) *Org {
	for i := range g.Orgs {
		if g.Orgs[i].Name == name {
			return &g.Orgs[i]
		}
	}
	return nil
}

// Node returns the node with the given ID, or nil.
func (g *Genesis) Node(id string) *Node {
	for i := range g.Nodes {
		if g.Nodes[i].ID == id {
			return &g.Nodes[i]
		}
	}
	return nil
}

// HasRole reports whether org o holds role r.
func (o *Org) HasRole(r Role) bool { return o != nil && slices.Contains(o.Roles, r) }

// CACertificate parses the org's CA certificate.
func (o *Org) CACertificate() (*x509.Certificate, error) { return parseCACert(o.CACert) }

// CheckpointVerifiers returns note verifiers for every genesis node's checkpoint key.
func (g *Genesis) CheckpointVerifiers() (note.Verifiers, error) {
	var vs []note.Verifier
	for _, n := range g.Nodes {
		v, err := note.NewVerifier(n.CheckpointKey)
		if err != nil {
			return nil, fmt.Errorf("node %q checkpoint key: %w", n.ID, err)
		}
		vs = append(vs, v)
	}
	return note.VerifierList(vs...), nil
}

// CheckpointKeyName is the note key name a node's checkpoint key must carry:
// "<federation>/<node id>".
func CheckpointKeyName(federation, nodeID string) string { return federation + "/" + nodeID }

// ValidOrigin checks a federation name: it is a checkpoint origin line and a
// note key name prefix, so it must be non-empty printable ASCII without spaces or '+'.
func ValidOrigin(s string) error {
	if s == "" || len(s) > 200 {
		return fmt.Errorf("federation name %q: want 1-200 characters", s)
	}
	for _, r := range s {
		if r <= ' ' || r > '~' || r == '+' {
			return fmt.Errorf("federation name %q: only printable ASCII without spaces or '+' is allowed", s)
		}
	}
	return nil
}

func parseCACert(p string) (*x509.Certificate, error) {
	blk, _ := pem.Decode([]byte(p))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("CA certificate: no PEM CERTIFICATE block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !c.IsCA {
		return nil, errors.New("CA certificate: not a CA (basic constraints)")
	}
	return c, nil
}

// ParsePublicKey parses a PEM public key and accepts only Ed25519 and ECDSA P-256.
func ParsePublicKey(p []byte) (crypto.PublicKey, error) {
	k, err := cryptoutils.UnmarshalPEMToPublicKey(p)
	if err != nil {
		return nil, err
	}
	switch k := k.(type) {
	case ed25519.PublicKey:
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("ECDSA key is not on P-256")
		}
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T (want Ed25519 or ECDSA P-256)", k)
	}
}
