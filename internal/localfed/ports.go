package localfed

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// ListenLoopback binds a loopback TCP port below the kernel's ephemeral
// range. A node that is stopped and started again binds its configured
// ports anew; a port from the ephemeral range may meanwhile have become the
// local end of some outgoing connection (any process's), and the node would
// then fail to start with "address already in use". Ports below the range
// are handed out only to explicit binds.
func ListenLoopback() (net.Listener, error) {
	low := ephemeralLow()
	const base = 10000
	if low > base+1000 {
		for range 64 {
			port := base + rand.IntN(low-base)
			if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				return ln, nil
			}
		}
	}
	return net.Listen("tcp", "127.0.0.1:0")
}

// ephemeralLow returns the first port of the kernel's ephemeral range
// (Linux: /proc/sys/net/ipv4/ip_local_port_range), or 32768, the usual one.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 32768
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil || low <= 0 {
		return 32768
	}
	return low
}
