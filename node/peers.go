package node

import (
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/hashfed/hashfed/certs"
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
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer sent no certificate")
	}
	id, err := certs.IdentityFromCert(cs.PeerCertificates[0])
	if err != nil {
		return err
	}
	if id.Kind != certs.KindNode {
		return fmt.Errorf("%s is not a node identity", id)
	}
	gn := n.state.Genesis().Node(id.Name)
	if gn != nil && gn.Org != id.Org {
		return fmt.Errorf("%s names founding node %q, which the genesis lists under org %q", id, gn.ID, gn.Org)
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
