package consensus

import (
	"strconv"

	"github.com/hashicorp/raft"
)

// LastSnapshotIndex reports the index of the latest snapshot the node has
// taken or installed, 0 if none.
func (n *Node) LastSnapshotIndex() uint64 {
	i, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	return i
}

// TransferLeadershipTo asks the node, which must be the leader, to hand
// leadership to the server id at address.
func (n *Node) TransferLeadershipTo(id, address string) error {
	return n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(address)).Error()
}

// LastIndex reports the index of the last entry in the node's Raft log.
func (n *Node) LastIndex() uint64 { return n.raft.LastIndex() }

// ReadRounds reports how many ReadIndex rounds (leadership confirmations)
// the node has run as leader.
func (n *Node) ReadRounds() uint64 { return n.reads.rounds.Load() }
