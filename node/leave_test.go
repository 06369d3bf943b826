package node_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/internal/localfed"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// dialAsNode connects to the node at addr with nf's node certificate, as
// `hashfed node leave` does.
func dialAsNode(t *testing.T, f *localfed.Federation, nf *localfed.NodeFiles, addr string) *client.Client {
	t.Helper()
	cfg := nf.NodeConfig()
	c, err := client.Dial(client.Config{Node: addr, Genesis: f.Genesis, Cert: cfg.TLSCert, Key: cfg.TLSKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLeave retires a joined non-voter: stopped for good, it leaves the
// Raft configuration through the leader, as itself. Nobody else may remove
// it, a follower points at the leader, and a founding voter cannot leave
// this way.
func TestLeave(t *testing.T) {
	f := newTestFederation(t)
	ctx := testCtx(t)
	joiner, err := f.AddJoiner("techco", "techco-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.StartNode("techco-2"); err != nil {
		t.Fatal(err)
	}
	converge(t, f, 1)
	if err := f.StopNode("techco-2"); err != nil {
		t.Fatal(err)
	}
	leader := f.Leader()
	var leaderAPI, followerAPI string
	for _, nf := range f.Files {
		switch {
		case nf.ID == leader:
			leaderAPI = nf.APIAddress
		case nf.ID != "techco-2":
			followerAPI = nf.APIAddress
		}
	}
	leave := func(c *client.Client, id string) error {
		_, err := c.Cluster.Leave(ctx, &hashfedv1.LeaveRequest{NodeId: id})
		return err
	}
	wantCode := func(err error, code codes.Code, phrase string) {
		t.Helper()
		if status.Code(err) != code || !strings.Contains(err.Error(), phrase) {
			t.Fatalf("got %v, want %s saying %q", err, code, phrase)
		}
	}

	// Another node of the same org may not remove it.
	wantCode(leave(dialAsNode(t, f, f.Files[1], leaderAPI), "techco-2"), codes.PermissionDenied, "may leave only as itself")
	// A client certificate may not call Leave at all.
	wantCode(leave(dial(t, f, "techco", leader), "techco-2"), codes.PermissionDenied, "Leave")
	// A follower names the leader.
	wantCode(leave(dialAsNode(t, f, joiner, followerAPI), "techco-2"), codes.FailedPrecondition, "ask the leader, "+leader)
	// A founding voter leaves only through governance.
	wantCode(leave(dialAsNode(t, f, f.Files[0], leaderAPI), f.Files[0].ID), codes.FailedPrecondition, "governance")

	if err := leave(dialAsNode(t, f, joiner, leaderAPI), "techco-2"); err != nil {
		t.Fatal(err)
	}
	st, err := dial(t, f, "techco", leader).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.GetMembers() {
		if m.GetNodeId() == "techco-2" || !m.GetVoter() {
			t.Fatalf("after leaving: member %s voter=%t", m.GetNodeId(), m.GetVoter())
		}
	}
	if len(st.GetMembers()) != 3 {
		t.Fatalf("members %v, want the 3 founding voters", st.GetMembers())
	}
	// Leaving twice: it is no longer a member.
	wantCode(leave(dialAsNode(t, f, joiner, leaderAPI), "techco-2"), codes.NotFound, "not in the Raft configuration")
}
