// Package certs issues and verifies the certificates that hashfed nodes and
// clients present to each other over mutual TLS.
//
// # Identities
//
// Every participating organisation (an "org") is its own trust domain with its
// own certificate authority, a [CA]. Every certificate an org's CA issues
// carries exactly one URI subject alternative name, its [Identity]:
//
//	spiffe://<org>/node/<name>     a node run by the org
//	spiffe://<org>/client/<name>   a command-line user of the org
//
// Org names and names are 1 to 63 characters of lowercase letters, digits,
// '-', '_' and '.', starting with a letter or a digit (see [ValidName]). Org
// names are also URI hosts, so they must not contain empty dot-separated
// labels or look like an IPv4 address (see [ValidOrg]). Identities are
// compared and printed in exactly this form: [ParseIdentity] accepts nothing
// else, so an identity has one spelling.
//
// # The trust rule
//
// A certificate is accepted only if it chains to the CA of the org its
// identity names. Org A's CA cannot mint an identity for org B: [VerifyChain]
// reads the org out of the leaf certificate first and then verifies the chain
// against that org's roots alone, as given by a [TrustSource]. As a second,
// independent line of defence, each CA certificate made by [NewCA] carries a
// critical X.509 name constraint permitting only URIs whose host is its own
// org, so even a trust source that wrongly lists A's CA for org B does not
// make A's certificates for B verify. (X.509 lets such a constraint also
// match subdomains: CA "b" may sign for org "x.b" as far as the constraint
// goes; the per-org roots are what reject that.)
//
// Both sides of every connection present certificates. [ServerConfig] and
// [ClientConfig] build TLS 1.3 configurations that enforce the trust rule on
// every handshake, including resumed sessions, against the trust source's
// contents at that moment; [PeerIdentity] then tells who is on the other end.
//
// # Files
//
// Certificates and keys are stored PEM-encoded: certificates as CERTIFICATE
// blocks, private keys as PKCS #8 PRIVATE KEY blocks. An org's CA lives in
// ca.crt and ca.key ([CA.WriteFiles], [LoadCA]); issued key pairs live in
// <base>.crt and <base>.key ([WriteKeyPair], [LoadKeyPair]). Key files are
// written with mode 0600, and no function in this package overwrites an
// existing file.
package certs
