// Package node runs one hashfed node: it loads the node's configuration and
// the federation's genesis, starts Raft (package consensus) over the node's
// mutual-TLS identity, drives the federation state machine, and serves the
// gRPC API — publish, subscribe, ledger and cluster services, plus gRPC
// health and server reflection — to callers whose certificates chain to
// their own org's CA and whose org holds the role each method needs.
package node
