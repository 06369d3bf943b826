// Package ledger implements hashfed's transparency log: an append-only
// RFC 6962 Merkle tree of opaque entries, proofs over it, and the signed
// checkpoints that commit to it.
//
// # Leaves
//
// A leaf is an opaque byte string of at most [MaxLeafSize] bytes, the limit
// of an entry in a C2SP tlog-tiles entry bundle. The package never looks
// inside a leaf: encoding statements and payloads into leaves is the
// caller's business. Leaves are numbered from zero in the order they were
// appended.
//
// # Hashing
//
// The tree is the RFC 6962 (Section 2.1) Merkle tree over SHA-256:
//
//	leaf hash     = SHA-256(0x00 || leaf)
//	interior hash = SHA-256(0x01 || left || right)
//	empty tree    = SHA-256("")
//
// Hashing, proofs and the numbering of stored hashes are those of
// [golang.org/x/mod/sumdb/tlog], so proofs made here verify with
// [golang.org/x/mod/sumdb/tlog.CheckRecord] and
// [golang.org/x/mod/sumdb/tlog.CheckTree] and vice versa.
//
// # Checkpoints
//
// A checkpoint is a C2SP tlog-checkpoint (https://c2sp.org/tlog-checkpoint):
// the text of a signed note ([golang.org/x/mod/sumdb/note]) committing to the
// tree at some size. Its body is exactly
//
//	<origin>\n
//	<size>\n
//	<root hash>\n
//
// where origin is the federation's name (non-empty, valid UTF-8, no control
// characters), size is the number of leaves in ASCII decimal with no sign
// and no leading zeros ("0" for the empty tree), and root hash is the
// standard, padded base64 encoding (RFC 4648, Section 4) of the 32-byte tree
// hash. For example, the tree of the three leaves "a", "b" and "c":
//
//	example.org/federation\n
//	3\n
//	NmQuc8JUCrEh46a/lUWwokmCzYMOsT080Z3jzmwCHsE=\n
//
// Every line ends in a newline and none is empty. The C2SP specification
// allows further non-empty "extension" lines after the hash; this package
// never emits them, and [ParseCheckpoint] accepts and ignores them. The note
// is signed with Ed25519 note keys ([GenerateKey]); witnesses may add
// cosignatures, which [OpenCheckpoint] reports in the returned note. The
// body format is fixed by C2SP; should hashfed ever need to commit to more,
// it would do so in extension lines, which older parsers skip.
//
// # Purity
//
// Nothing in this package touches the network, a clock or a logger, or
// reads randomness other than in [GenerateKey]. Given the same inputs it
// computes the same outputs; storage reaches it only through [Store].
package ledger
