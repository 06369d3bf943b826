package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"slices"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/federation"
)

// authorizePeer decides who may use the Raft port once TLS has verified the
// peer's certificate against the member orgs' CAs. Being a member org is
// not enough: any member's CA can issue a node certificate, and a peer on
// the Raft channel can send AppendEntries and votes.
//
//   - Raft RPC connections carry requests only voters send (the leader's
//     entries and snapshots, a candidate's votes), and only the genesis names
//     voters, so only the genesis's voting nodes may open one.
//   - Forwarding connections (writes, joins and sync requests sent on to the
//     leader) are open to the genesis nodes and to servers already in the
//     Raft configuration, such as non-voters that joined through the API.
//
// A founding node's name is bound to its org by the genesis: another org's
// certificate for that name is refused.
func (n *Node) authorizePeer(cs tls.ConnectionState, raftRPC bool, member func(id string) bool) error {
	id, gn, err := n.nodeIdentity(cs)
	if err != nil {
		return err
	}
	if raftRPC {
		if gn == nil || !gn.Voter {
			return fmt.Errorf("%s may not send Raft RPCs: only the voting nodes the genesis lists do", id)
		}
		return nil
	}
	if gn != nil || member(id.Name) {
		return nil
	}
	return fmt.Errorf("%s is not in the Raft configuration: a node joins through the API (ClusterService.Join) before it forwards requests", id)
}

// nodeIdentity returns the node identity of the other end of a connection
// between nodes, and its genesis entry if it is a founding node. A
// founding node's name is bound to its genesis org.
func (n *Node) nodeIdentity(cs tls.ConnectionState) (certs.Identity, *federation.Node, error) {
	if len(cs.PeerCertificates) == 0 {
		return certs.Identity{}, nil, errors.New("the other node sent no certificate")
	}
	id, err := certs.IdentityFromCert(cs.PeerCertificates[0])
	if err != nil {
		return certs.Identity{}, nil, err
	}
	if id.Kind != certs.KindNode {
		return certs.Identity{}, nil, fmt.Errorf("%s is not a node identity", id)
	}
	gn := n.state.Genesis().Node(id.Name)
	if gn != nil && gn.Org != id.Org {
		return certs.Identity{}, nil, fmt.Errorf("%s names founding node %q, which the genesis lists under org %q", id, gn.ID, gn.Org)
	}
	return id, gn, nil
}

// authorizeJoin runs on the leader for every join, including joins another
// node forwarded: only the voters the genesis lists may be added as voters,
// and a founding node only with the suffrage the genesis gives it.
func (n *Node) authorizeJoin(id, _ string, voter bool) error {
	gn := n.state.Genesis().Node(id)
	switch {
	case gn == nil && voter:
		return fmt.Errorf("node %q may join only as a non-voter: the genesis does not list it, and only the voters it lists vote", id)
	case gn != nil && gn.Voter != voter:
		return fmt.Errorf("the genesis lists node %q with voter=%t, not voter=%t", id, gn.Voter, voter)
	}
	return nil
}

// mayHoldLedger decides whether a node of org that the genesis does not list
// may join the Raft configuration. Every node holds the whole log, with the
// values of every set, so such a node is allowed only to a member org that
// already runs a founding node (it holds the log anyway) or that reads every
// set. Other orgs keep a mirror instead ('hashfed subscribe --out'), which
// receives only the sets they read.
func (n *Node) mayHoldLedger(org string) error {
	reg := n.state.Registry()
	if reg.Org(org) == nil {
		return fmt.Errorf("org %q is not a member of the federation", org)
	}
	for _, gn := range n.state.Genesis().Nodes {
		if gn.Org == org {
			return nil
		}
	}
	var sets []string
	for name := range reg.Sets {
		sets = append(sets, name)
	}
	slices.Sort(sets)
	for _, set := range sets {
		if !reg.CanRead(org, set) {
			return fmt.Errorf("a node holds the values of every set, and org %q does not read set %q: keep a mirror of the sets it reads instead (hashfed subscribe --out DIR)", org, set)
		}
	}
	return nil
}

// authorizeServer decides whether this node may send Raft RPCs, which carry
// the whole log, to the server whose certificate cs holds; id is the server
// the Raft configuration lists at the address dialed. A founding node must
// present its genesis org's certificate. Any other server must be the one
// the configuration lists there, of an org that may hold the log. This is
// checked on every dial and, when governance changes membership or read
// access, on every open connection (Node.RecheckServers).
func (n *Node) authorizeServer(id string, cs tls.ConnectionState) error {
	ident, gn, err := n.nodeIdentity(cs)
	if err != nil {
		return err
	}
	if id != "" && id != ident.Name {
		return fmt.Errorf("the raft configuration lists node %q at this address, but its certificate names %s", id, ident)
	}
	if gn != nil {
		return nil
	}
	if id == "" {
		return fmt.Errorf("%s is neither a founding node nor in the raft configuration", ident)
	}
	return n.mayHoldLedger(ident.Org)
}

// onRefusedServer runs when authorizeServer refused a server of the Raft
// configuration. The leader removes a joined server whose org may no
// longer hold the log (it would otherwise be retried forever); founding
// nodes leave only through governance (enforceMembership).
func (n *Node) onRefusedServer(id string) {
	if n.state.Genesis().Node(id) != nil {
		return
	}
	if _, busy := n.removing.LoadOrStore(id, true); busy {
		return
	}
	defer n.removing.Delete(id)
	select {
	case <-n.consReady:
	case <-n.stop:
		return
	}
	if !n.cons.IsLeader() {
		return
	}
	if err := n.cons.RemoveServer(id); err != nil {
		n.log.Warn("removing a joined node that may not hold the log", "node", id, "err", err)
		return
	}
	n.log.Warn("removed a joined node from raft: its org may not hold the log", "node", id)
}
