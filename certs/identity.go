package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

var (
	// ErrBadName is wrapped by errors for org names and names that break the
	// naming rule; see [ValidName] and [ValidOrg].
	ErrBadName = errors.New("invalid name")

	// ErrBadIdentity is wrapped by errors for URIs and certificates that do
	// not carry a well-formed [Identity].
	ErrBadIdentity = errors.New("invalid identity")
)

// A Kind says what sort of party an [Identity] names.
type Kind string

const (
	// KindNode names a node, which serves other nodes and clients and dials
	// other nodes.
	KindNode Kind = "node"
	// KindClient names an org's command-line user, which only dials nodes.
	KindClient Kind = "client"
)

func (k Kind) valid() bool { return k == KindNode || k == KindClient }

// scheme is the prefix of every identity URI.
const scheme = "spiffe://"

// maxNameLen is the longest org name or name allowed.
const maxNameLen = 63

// An Identity names an org's node or client. Its canonical form is the URI
// spiffe://<Org>/<Kind>/<Name>, which is carried as the only URI subject
// alternative name of the certificates issued for it.
type Identity struct {
	Org  string
	Kind Kind
	Name string
}

// URI returns the identity as a URL, as it is placed in certificates.
func (id Identity) URI() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.Org, Path: "/" + string(id.Kind) + "/" + id.Name}
}

// String returns the identity's URI, e.g. "spiffe://ncmec/node/n1".
func (id Identity) String() string {
	return scheme + id.Org + "/" + string(id.Kind) + "/" + id.Name
}

// validate reports whether every field of id follows the naming rules.
func (id Identity) validate() error {
	if err := ValidOrg(id.Org); err != nil {
		return fmt.Errorf("%w %q: org: %w", ErrBadIdentity, id.String(), err)
	}
	if !id.Kind.valid() {
		return fmt.Errorf("%w %q: kind %q is neither %q nor %q", ErrBadIdentity, id.String(), id.Kind, KindNode, KindClient)
	}
	if err := ValidName(id.Name); err != nil {
		return fmt.Errorf("%w %q: name: %w", ErrBadIdentity, id.String(), err)
	}
	return nil
}

// ParseIdentity parses an identity URI of the form
// spiffe://<org>/<kind>/<name>.
//
// Only the canonical spelling is accepted: no port, user information, query,
// fragment, percent-encoding, trailing slash or upper case. Hence, when
// ParseIdentity succeeds, the identity's String method returns uri unchanged.
// Errors wrap [ErrBadIdentity].
func ParseIdentity(uri string) (Identity, error) {
	rest, ok := strings.CutPrefix(uri, scheme)
	if !ok {
		return Identity{}, fmt.Errorf("%w %q: must start with %q", ErrBadIdentity, uri, scheme)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 {
		return Identity{}, fmt.Errorf("%w %q: want the form spiffe://<org>/<kind>/<name>", ErrBadIdentity, uri)
	}
	id := Identity{Org: parts[0], Kind: Kind(parts[1]), Name: parts[2]}
	if err := id.validate(); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// IdentityFromCert returns the identity carried by c, which must have exactly
// one URI subject alternative name, and that URI must parse with
// [ParseIdentity]. It does not verify c; see [VerifyChain].
// Errors wrap [ErrBadIdentity].
func IdentityFromCert(c *x509.Certificate) (Identity, error) {
	if c == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrBadIdentity)
	}
	if n := len(c.URIs); n != 1 {
		return Identity{}, fmt.Errorf("%w: certificate (subject %q, serial %x) has %d URI SANs, want exactly 1", ErrBadIdentity, c.Subject.String(), c.SerialNumber, n)
	}
	return ParseIdentity(c.URIs[0].String())
}

// ValidName reports whether s is a valid org name or node or client name:
// 1 to 63 characters of lowercase letters, digits, '-', '_' and '.', starting
// with a letter or a digit. The error, which wraps [ErrBadName], says which
// part of the rule s breaks.
func ValidName(s string) error {
	if s == "" {
		return fmt.Errorf("%w %q: empty (want 1 to %d characters)", ErrBadName, s, maxNameLen)
	}
	if len(s) > maxNameLen {
		return fmt.Errorf("%w %q: %d characters long (want at most %d)", ErrBadName, s, len(s), maxNameLen)
	}
	for i, r := range s {
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
		case r == '-' || r == '_' || r == '.':
			if i == 0 {
				return fmt.Errorf("%w %q: must start with a lowercase letter or a digit, not %q", ErrBadName, s, r)
			}
		default:
			return fmt.Errorf("%w %q: character %q at offset %d is not allowed (use lowercase letters, digits, '-', '_', '.')", ErrBadName, s, r, i)
		}
	}
	return nil
}

// ValidOrg reports whether s is a valid org name. An org name follows
// [ValidName] and, since it is the host of identity URIs and the domain of
// its CA's name constraint, must also have no empty dot-separated labels (no
// ".." and no trailing '.') and must not be an IP address.
// The error wraps [ErrBadName].
func ValidOrg(s string) error {
	if err := ValidName(s); err != nil {
		return err
	}
	if strings.Contains(s, "..") || strings.HasSuffix(s, ".") {
		return fmt.Errorf("%w %q: org names must not contain empty dot-separated labels", ErrBadName, s)
	}
	if net.ParseIP(s) != nil {
		return fmt.Errorf("%w %q: org names must not be IP addresses", ErrBadName, s)
	}
	return nil
}
