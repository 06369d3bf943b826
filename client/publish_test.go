package client_test

import (
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/hashfed/hashfed/client"
	"github.com/hashfed/hashfed/federation"
	"github.com/hashfed/hashfed/internal/localfed"
)

// TestPublishChangeResend: sending a committed contribution again, signed
// again with another issued_at as a publisher that lost the first answer
// would, succeeds with the first attempt's entry and adds nothing; another
// change under the same sequence number is refused.
func TestPublishChangeResend(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	c, s := ngoPublisher(t, f, "ngo-2")
	seq, err := c.NextSequence(ctx, "ngo/csam")
	if err != nil {
		t.Fatal(err)
	}
	add := federation.Change{Op: federation.OpAdd, Signals: localfed.SampleSignals(3)}
	first, err := c.PublishChange(ctx, s, "ngo/csam", seq, add, "2026-11-21T10:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	if first.Resent {
		t.Errorf("the first publish says it was resent: %+v", first)
	}
	again, err := c.PublishChange(ctx, s, "ngo/csam", seq, add, "2026-11-21T10:05:00Z")
	if err != nil {
		t.Fatalf("resending the committed contribution: %v", err)
	}
	if !again.Resent || again.Index != first.Index || again.TreeSize != first.Index+1 {
		t.Errorf("resend = %+v, want Resent at index %d, tree size %d", again, first.Index, first.Index+1)
	}
	if next, err := c.NextSequence(ctx, "ngo/csam"); err != nil || next != seq+1 {
		t.Errorf("next sequence after the resend = %d, %v; want %d", next, err, seq+1)
	}
	if size := f.Nodes["ngo-2"].State().Size(); size != first.Index+1 {
		t.Errorf("ledger size after the resend = %d, want %d", size, first.Index+1)
	}

	other := federation.Change{Op: federation.OpAdd, Signals: localfed.SampleSignals(4)[3:]}
	_, err = c.PublishChange(ctx, s, "ngo/csam", seq, other, "")
	if status.Code(err) != codes.AlreadyExists {
		t.Fatalf("another change with a used sequence number: %v, want AlreadyExists", err)
	}
	if _, ok := client.CommittedAt(err); ok {
		t.Errorf("another change with a used sequence number was taken for a resend: %v", err)
	}
}

// TestPublishChangeRidesOutNodeRestart: the node a publisher talks to is
// down when it publishes; PublishChange keeps sending the contribution
// until the node is back, and it commits once.
func TestPublishChangeRidesOutNodeRestart(t *testing.T) {
	f := newFederation(t, true)
	ctx := testCtx(t)
	c, s := ngoPublisher(t, f, "ngo-2")
	// No bound but ctx: the node's restart takes as long as it takes.
	c.PublishAttempts = 1 << 20
	seq, err := c.NextSequence(ctx, "ngo/csam")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.StopNode("ngo-2"); err != nil {
		t.Fatal(err)
	}
	// While the node is down, its port takes connections and drops them:
	// the first attempts fail, and the node starts only after one has.
	var addr string
	for _, nf := range f.Files {
		if nf.ID == "ngo-2" {
			addr = nf.APIAddress
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	dropped := make(chan struct{})
	go func() {
		var once sync.Once
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
			once.Do(func() { close(dropped) })
		}
	}()
	type result struct {
		res *client.PublishResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := c.PublishChange(ctx, s, "ngo/csam", seq, federation.Change{Op: federation.OpAdd, Signals: localfed.SampleSignals(2)}, "")
		done <- result{res, err}
	}()
	select {
	case <-dropped:
	case r := <-done:
		t.Fatalf("the publish ended while the node was down: %+v, %v", r.res, r.err)
	}
	ln.Close()
	if err := f.StartNode("ngo-2"); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("publishing while the node restarted: %v", r.err)
	}
	if !r.res.Resent {
		t.Errorf("the publish says it went through on its first attempt, which the stopped node dropped: %+v", r.res)
	}
	if next, err := c.NextSequence(ctx, "ngo/csam"); err != nil || next != seq+1 {
		t.Errorf("next sequence = %d, %v; want %d (committed once)", next, err, seq+1)
	}
}
