// Package netlimit bounds what a stranger can hold of a node's listeners:
// the connections open at once (in all and per remote IP address), and
// accept errors, which it rides out instead of giving up.
//
// A node runs out of file descriptors when someone opens enough TCP
// connections, certificate or not: every connection costs a descriptor
// from the moment it is accepted until its TLS handshake fails or times
// out. A [Listener] refuses (accepts and closes at once) connections past
// its limits, so the API and tile listeners leave descriptors for Raft, the
// state database and outgoing dials; and when accept fails anyway (EMFILE,
// ENFILE, ECONNABORTED, a timeout) it backs off and tries again, so only
// Close ends it.
package netlimit

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// Accept retries back off exponentially from minBackoff to maxBackoff.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// logEvery bounds how often a Listener logs refusals and accept errors.
const logEvery = 5 * time.Second

// Options are a Listener's limits.
type Options struct {
	// Name names the listener in log lines, e.g. "api".
	Name string
	// MaxConns bounds the connections open at once; 0 means no bound.
	MaxConns int
	// MaxConnsPerIP bounds the connections open at once from one remote IP
	// address; 0 means no bound.
	MaxConnsPerIP int
	// Log receives rate-limited reports of refusals and accept errors.
	Log *slog.Logger
}

// A Listener is a net.Listener that bounds open connections and retries
// accept errors. It is safe for concurrent use.
type Listener struct {
	ln   net.Listener
	opts Options

	mu    sync.Mutex
	open  int
	perIP map[string]int
	// Rate limiting of log lines: the last line's time and how many
	// events were not logged since.
	lastLog    time.Time
	suppressed int

	closeOnce sync.Once
	closed    chan struct{}
}

// Listen wraps ln.
func Listen(ln net.Listener, opts Options) *Listener {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Listener{ln: ln, opts: opts, perIP: map[string]int{}, closed: make(chan struct{})}
}

// Accept returns the next connection within the limits. It returns an error
// only once the listener is closed; any other accept error is logged and
// retried after a backoff.
func (l *Listener) Accept() (net.Conn, error) {
	var delay time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.closed:
				return nil, net.ErrClosed
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return nil, err
			}
			delay = min(max(2*delay, minBackoff), maxBackoff)
			l.report("accept failed; retrying", "err", err, "retry_in", delay, "descriptors_exhausted", errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-l.closed:
				t.Stop()
				return nil, net.ErrClosed
			}
			continue
		}
		delay = 0
		if lc, ok := l.admit(c); ok {
			return lc, nil
		}
		c.Close()
	}
}

// admit counts c in, or refuses it past a limit.
func (l *Listener) admit(c net.Conn) (net.Conn, bool) {
	ip := remoteIP(c)
	l.mu.Lock()
	switch {
	case l.opts.MaxConns > 0 && l.open >= l.opts.MaxConns:
		l.mu.Unlock()
		l.report("connection refused: listener at its connection limit", "remote", ip, "max_conns", l.opts.MaxConns)
		return nil, false
	case l.opts.MaxConnsPerIP > 0 && l.perIP[ip] >= l.opts.MaxConnsPerIP:
		l.mu.Unlock()
		l.report("connection refused: remote address at its connection limit", "remote", ip, "max_conns_per_ip", l.opts.MaxConnsPerIP)
		return nil, false
	}
	l.open++
	l.perIP[ip]++
	l.mu.Unlock()
	return &conn{Conn: c, l: l, ip: ip}, true
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	l.open--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
	l.mu.Unlock()
}

// Open returns the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// report logs msg at most once per logEvery, counting the lines it drops.
func (l *Listener) report(msg string, args ...any) {
	l.mu.Lock()
	now := time.Now()
	if now.Sub(l.lastLog) < logEvery {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	l.lastLog = now
	n := l.suppressed
	l.suppressed = 0
	l.mu.Unlock()
	l.opts.Log.Warn(l.opts.Name+" listener: "+msg, append(args, "similar_since_last_report", n)...)
}

// Close closes the listener; connections already accepted stay open.
func (l *Listener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.ln.Close()
	})
	return err
}

// Addr returns the listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

func remoteIP(c net.Conn) string {
	a := c.RemoteAddr()
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if host, _, err := net.SplitHostPort(a.String()); err == nil {
		return host
	}
	return a.String()
}

// A conn gives its slot back when closed.
type conn struct {
	net.Conn
	l    *Listener
	ip   string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}
