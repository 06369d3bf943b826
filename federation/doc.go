// Package federation holds hashfed's domain: orgs and their roles, hash sets,
// signals, signed statements and payloads, the genesis document, and the
// deterministic state machine that Raft drives on every node.
//
// Nothing here touches the network, reads a clock, draws randomness or depends
// on map iteration order inside [State.Apply]: every node applying the same
// commands reaches the same state and the same ledger.
package federation
