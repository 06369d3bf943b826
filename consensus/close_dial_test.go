package consensus_test

import (
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// TestCloseDuringStalledDial: a peer that takes connections but never
// completes the TLS handshake (a host going away, a full backlog) holds
// Raft's dial to it for the transport timeout (10 s). Raft's shutdown waits
// for its replication goroutines, so Close must cut such a dial short. The
// container campaign found a leader stopped with SIGTERM, at the same time as
// its followers, still closing when it was killed 10 s later.
func TestCloseDuringStalledDial(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.leader()
	follower := c.followers(leader)[0]
	c.stop(follower)

	// Where the follower listened, accept connections and say nothing.
	var ln net.Listener
	waitFor(t, "listening on "+follower.addr+" again", func() error {
		var err error
		ln, err = net.Listen("tcp", follower.addr)
		return err
	})
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, conn)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, conn := range held {
			conn.Close()
		}
		mu.Unlock()
	})

	// The leader heartbeats and replicates to the silent address, and soon
	// has a dial stalled in the handshake.
	waitFor(t, "the leader to connect to the silent address", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(held) == 0 {
			return errors.New("no connection yet")
		}
		return nil
	})
	start := time.Now()
	c.stop(leader)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Close took %v with a dial stalled in the TLS handshake; want well below the 10 s dial timeout", took.Round(time.Millisecond))
	}
}
