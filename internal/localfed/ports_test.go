package localfed

import (
	"net"
	"testing"
)

// TestListenLoopbackBelowEphemeralRange: node ports come from below the
// kernel's ephemeral range, where outgoing connections never take them.
func TestListenLoopbackBelowEphemeralRange(t *testing.T) {
	low := ephemeralLow()
	for range 20 {
		ln, err := ListenLoopback()
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if port >= low || port < 10000 {
			t.Fatalf("port %d is outside [10000, %d)", port, low)
		}
	}
}
