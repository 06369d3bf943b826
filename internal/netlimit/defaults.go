package netlimit

import "syscall"

// MinConns is the least any derived connection limit is.
const MinConns = 16

// DescriptorLimit returns the process's soft limit on open file descriptors
// (RLIMIT_NOFILE), or 1024 if it cannot be read. The Go runtime raises the
// soft limit to the hard limit when the process starts, so this is the hard
// limit the operator (or systemd's LimitNOFILE) set.
func DescriptorLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil || r.Cur == 0 {
		return 1024
	}
	if r.Cur > 1<<30 {
		return 1 << 30
	}
	return int(r.Cur)
}

// Share returns the connection limit that leaves a listener 1/div of the
// descriptor limit, and at least MinConns.
func Share(div int) int { return max(MinConns, DescriptorLimit()/div) }
