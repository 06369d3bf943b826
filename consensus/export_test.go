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
