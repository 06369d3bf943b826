package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"slices"
	"time"
)

// ServerConfig returns a TLS 1.3 server configuration that presents cert and
// requires every client to present a certificate that [VerifyChain] accepts
// against trust for client authentication, with an identity of one of
// clientKinds. Nodes accepting other nodes pass [KindNode]; nodes serving
// command-line users too pass [KindNode] and [KindClient].
//
// The check runs in the config's VerifyConnection on every handshake,
// including resumed sessions, against the contents of trust at that moment;
// callers may adjust other fields but must keep VerifyConnection. If
// nextProtos is not empty, it becomes the config's NextProtos (ALPN).
func ServerConfig(cert tls.Certificate, trust TrustSource, clientKinds []Kind, nextProtos ...string) *tls.Config {
	kinds := slices.Clone(clientKinds)
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		// Go's own client certificate verification cannot express
		// per-org roots, so it only demands a certificate, and
		// VerifyConnection does the verifying.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if _, err := VerifyChain(trust, cs.PeerCertificates, x509.ExtKeyUsageClientAuth, time.Now(), kinds...); err != nil {
				return fmt.Errorf("rejected client certificate: %w", err)
			}
			return nil
		},
	}
	if len(nextProtos) > 0 {
		cfg.NextProtos = slices.Clone(nextProtos)
	}
	return cfg
}

// ClientConfig returns a TLS 1.3 client configuration that presents cert and
// accepts only servers whose certificate [VerifyChain] accepts against trust
// for server authentication with a [KindNode] identity. If the connection has
// a DNS server name (set in the config, or derived from the dialled address
// by [tls.Dial] or gRPC), the server's certificate must also be valid for
// that name.
//
// Any node of any trusted org passes these checks, and a server dialled by IP
// address is not checked against that address: [tls.ConnectionState] reports
// no server name for IP addresses, as they are not sent in SNI. Callers that
// must reach a particular node or org check [PeerIdentity] once the handshake
// is done.
//
// The config sets InsecureSkipVerify, because Go's built-in verification
// checks a server against one fixed pool of roots and so cannot enforce that
// a certificate chains to the CA of the org it names. This is safe: the
// config's VerifyConnection, which Go runs on every handshake whatever
// InsecureSkipVerify says, performs the full verification instead (chain,
// validity, key usage and host name), and a failure aborts the handshake.
// Callers must not remove VerifyConnection.
func ClientConfig(cert tls.Certificate, trust TrustSource, nextProtos ...string) *tls.Config {
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // VerifyConnection verifies instead; see above.
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := VerifyChain(trust, cs.PeerCertificates, x509.ExtKeyUsageServerAuth, time.Now(), KindNode)
			if err != nil {
				return fmt.Errorf("rejected server certificate: %w", err)
			}
			if cs.ServerName != "" {
				if err := cs.PeerCertificates[0].VerifyHostname(cs.ServerName); err != nil {
					return fmt.Errorf("rejected server certificate: %w: %s is not valid for host %q: %w", ErrNotTrusted, id, cs.ServerName, err)
				}
			}
			return nil
		},
	}
	if len(nextProtos) > 0 {
		cfg.NextProtos = slices.Clone(nextProtos)
	}
	return cfg
}

// PeerIdentity returns the identity of the peer of a finished handshake.
// It does not verify the peer's certificate again: it relies on cs coming
// from a connection made with [ServerConfig] or [ClientConfig], which
// verified it.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, ErrNoCertificate
	}
	return IdentityFromCert(cs.PeerCertificates[0])
}
