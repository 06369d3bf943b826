package certs

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

var (
	// ErrUnknownOrg is wrapped by errors for identities that name an org the
	// trust source does not know.
	ErrUnknownOrg = errors.New("unknown org")

	// ErrNoCertificate is returned when the peer presented no certificate.
	ErrNoCertificate = errors.New("no certificate presented")

	// ErrWrongKind is wrapped by errors for identities of a kind not
	// accepted in the place they were presented, such as a client identity
	// presented by a server.
	ErrWrongKind = errors.New("wrong kind of identity")

	// ErrNotTrusted is wrapped by all errors for certificates that do not
	// verify against the roots of the org they name. The more specific
	// errors below wrap it.
	ErrNotTrusted = errors.New("untrusted certificate")

	// ErrWrongCA is wrapped by errors for certificates that do not chain to
	// the CA of the org their identity names, such as one minted by another
	// org's CA, or by a CA the federation does not know.
	ErrWrongCA = fmt.Errorf("%w: not issued by the CA of the org it names", ErrNotTrusted)

	// ErrExpired is wrapped by errors for certificates used outside their
	// validity period.
	ErrExpired = fmt.Errorf("%w: expired or not yet valid", ErrNotTrusted)

	// ErrWrongUsage is wrapped by errors for certificates whose extended
	// key usage does not allow the use they were presented for, such as a
	// client certificate presented by a server.
	ErrWrongUsage = fmt.Errorf("%w: not valid for this use", ErrNotTrusted)
)

// VerifyChain verifies a peer's certificate chain, chain[0] being the leaf
// and chain[1:] intermediates, and returns the identity it proves.
//
// The leaf must carry an identity (see [IdentityFromCert]) of one of kinds;
// with no kinds, no identity is accepted. The chain must verify at time now
// against trust.Roots(org), where org is the one the identity names, and the
// leaf must allow the extended key usage usage.
//
// The error says plainly what is wrong and wraps one of [ErrNoCertificate],
// [ErrBadIdentity], [ErrWrongKind], [ErrUnknownOrg] or [ErrNotTrusted] (or a
// more specific error wrapping it: [ErrWrongCA], [ErrExpired],
// [ErrWrongUsage]), as well as any underlying [crypto/x509] error.
func VerifyChain(trust TrustSource, chain []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time, kinds ...Kind) (Identity, error) {
	if len(chain) == 0 || chain[0] == nil {
		return Identity{}, ErrNoCertificate
	}
	leaf := chain[0]
	id, err := IdentityFromCert(leaf)
	if err != nil {
		return Identity{}, err
	}
	if leaf.IsCA {
		return Identity{}, fmt.Errorf("%w: %s is a CA certificate, not a leaf", ErrBadIdentity, id)
	}
	if !slices.Contains(kinds, id.Kind) {
		return Identity{}, fmt.Errorf("%w: %s is a %s identity, want %s", ErrWrongKind, id, id.Kind, kindList(kinds))
	}
	roots, ok := trust.Roots(id.Org)
	if !ok || roots == nil {
		return Identity{}, fmt.Errorf("%w %q: no CA is known for %s", ErrUnknownOrg, id.Org, id)
	}
	opts := x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{usage},
	}
	if len(chain) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := leaf.Verify(opts); err != nil {
		return Identity{}, explain(id, leaf, usage, now, err)
	}
	return id, nil
}

// explain turns err, returned by verifying leaf, into an error that says in
// hashfed's terms what is wrong.
func explain(id Identity, leaf *x509.Certificate, usage x509.ExtKeyUsage, now time.Time, err error) error {
	var unknown x509.UnknownAuthorityError
	if errors.As(err, &unknown) {
		return fmt.Errorf("%w: %s (issuer %q) does not chain to org %q's CA: %w", ErrWrongCA, id, leaf.Issuer.String(), id.Org, err)
	}
	var invalid x509.CertificateInvalidError
	if errors.As(err, &invalid) {
		switch invalid.Reason {
		case x509.Expired:
			c := invalid.Cert
			if c == nil {
				c = leaf
			}
			what := id.String()
			if c != leaf {
				what = fmt.Sprintf("CA certificate %q in the chain of %s", c.Subject.String(), id)
			}
			return fmt.Errorf("%w: %s is valid from %s until %s, not at %s: %w", ErrExpired, what,
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), err)
		case x509.IncompatibleUsage, x509.CANotAuthorizedForExtKeyUsage:
			return fmt.Errorf("%w: %s is not valid for %s: %w", ErrWrongUsage, id, usageName(usage), err)
		case x509.CANotAuthorizedForThisName:
			return fmt.Errorf("%w: the CA trusted for org %q may not issue %s: %w", ErrWrongCA, id.Org, id, err)
		}
	}
	return fmt.Errorf("%w: %s: %w", ErrNotTrusted, id, err)
}

// kindList formats kinds for an error message, e.g. "node or client".
func kindList(kinds []Kind) string {
	if len(kinds) == 0 {
		return "none"
	}
	s := make([]string, len(kinds))
	for i, k := range kinds {
		s[i] = string(k)
	}
	return strings.Join(s, " or ")
}

// usageName names usage for an error message.
func usageName(usage x509.ExtKeyUsage) string {
	switch usage {
	case x509.ExtKeyUsageServerAuth:
		return "server authentication"
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	}
	return fmt.Sprintf("extended key usage %d", usage)
}
