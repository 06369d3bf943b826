// Package consensus runs hashicorp/raft for hashfed: a mutual-TLS stream
// layer, a durable BoltDB log and stable store, file snapshots, bootstrap
// from a fixed voter list, joining, and forwarding writes from any node to
// the leader.
//
// It knows nothing of hashes or orgs: it carries opaque request bytes to the
// leader, lets the caller turn them into a log command there ([Config.Prepare]),
// commits the command, and hands it to the [StateMachine] it was given.
//
// One TLS listener serves two kinds of connection, told apart by the first
// byte the dialer writes after the handshake: 'R' for Raft's own RPCs and
// 'F' for forwarded requests. Both require a peer certificate that the
// configured TLS settings accept; in hashfed that means a node of a member org.
package consensus
