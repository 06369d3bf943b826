package node_test

import (
	"strings"
	"testing"

	"github.com/hashfed/hashfed/internal/localfed"
	"github.com/hashfed/hashfed/node"
)

// TestJoinerNeedsDialableAdvertise: a node that joins tells the leader where
// to dial it for Raft, so a listen address without a host (as in a
// container, ":7401") is refused at start instead of failing every join.
func TestJoinerNeedsDialableAdvertise(t *testing.T) {
	f, err := localfed.Create(testOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	nf, err := f.AddJoiner("techco", "techco-2")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := node.LoadConfig(nf.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ listen, advertise string }{
		{":7401", ""},
		{"0.0.0.0:7401", ""},
		{"127.0.0.1:0", "[::]:7401"},
	} {
		cfg.RaftListen, cfg.RaftAdvertise = tc.listen, tc.advertise
		n, err := node.Start(cfg)
		if err == nil {
			n.Close()
			t.Errorf("raft_listen %q, raft_advertise %q: node started", tc.listen, tc.advertise)
		} else if !strings.Contains(err.Error(), "needs raft_advertise") {
			t.Errorf("raft_listen %q, raft_advertise %q: %v", tc.listen, tc.advertise, err)
		}
	}
}
