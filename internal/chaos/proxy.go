package chaos

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// A Mode is what a [Proxy] does with traffic.
type Mode int

// The modes.
const (
	// Pass forwards every byte as it comes.
	Pass Mode = iota
	// Blackhole accepts connections but forwards nothing either way, and
	// holds what it has read, as a network that drops every packet does: a
	// TCP stream that survives the partition resumes intact when it heals
	// (unless an end gave up on it), and new connections open only then.
	Blackhole
	// Reset closes every connection and refuses new ones (accepts and
	// resets them at once), as a crashed host or a firewall's reject does.
	Reset
	// Delay forwards every chunk read the configured latency after it was
	// read, keeping order.
	Delay
)

var modeNames = [...]string{Pass: "pass", Blackhole: "blackhole", Reset: "reset", Delay: "delay"}

func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// proxyDialTimeout bounds connecting to the target.
const proxyDialTimeout = 5 * time.Second

// queueChunks bounds what a link buffers in each direction (chunks of up to
// chunkSize bytes) while it delays or holds traffic; a full queue stops
// reading, so TCP flow control pushes back on the sender.
const (
	queueChunks = 64
	chunkSize   = 32 << 10
)

// A Proxy is a TCP proxy on loopback whose behaviour can be switched at any
// time: see [Mode]. Its methods are safe for concurrent use by multiple
// goroutines.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	mode    Mode
	delay   time.Duration
	changed chan struct{} // closed and replaced on every change of mode
	links   map[*link]struct{}
	closed  bool
	wg      sync.WaitGroup
}

// NewProxy listens on 127.0.0.1 on a free port and forwards every
// connection it accepts to target, in [Pass] mode.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listener: %w", err)
	}
	p := &Proxy{ln: ln, target: target, changed: make(chan struct{}), links: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Mode returns the current mode and, in [Delay] mode, the latency.
func (p *Proxy) Mode() (Mode, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay
}

// Pass switches to [Pass]: held and delayed traffic flows again.
func (p *Proxy) Pass() { p.set(Pass, 0) }

// Blackhole switches to [Blackhole].
func (p *Proxy) Blackhole() { p.set(Blackhole, 0) }

// Reset switches to [Reset], closing every current connection.
func (p *Proxy) Reset() { p.set(Reset, 0) }

// Delay switches to [Delay] with latency d per chunk.
func (p *Proxy) Delay(d time.Duration) { p.set(Delay, d) }

func (p *Proxy) set(m Mode, d time.Duration) {
	p.mu.Lock()
	p.mode, p.delay = m, d
	close(p.changed)
	p.changed = make(chan struct{})
	var doomed []*link
	if m == Reset {
		for l := range p.links {
			doomed = append(doomed, l)
		}
	}
	p.mu.Unlock()
	for _, l := range doomed {
		l.close()
	}
}

// state returns the mode, the latency and a channel closed at the next
// change.
func (p *Proxy) state() (Mode, time.Duration, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode, p.delay, p.changed
}

// Close stops listening, closes every connection and waits for the proxy's
// goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	var links []*link
	for l := range p.links {
		links = append(links, l)
	}
	close(p.changed)
	p.changed = make(chan struct{})
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		l := &link{p: p, client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed || p.mode == Reset {
			p.mu.Unlock()
			resetConn(c)
			continue
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go l.run()
	}
}

// resetConn closes c so that the peer sees a reset, not an orderly end.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// A link is one proxied connection: the client's and the target's ends.
type link struct {
	p      *Proxy
	client net.Conn

	mu       sync.Mutex
	server   net.Conn // nil until dialled
	isClosed bool
	done     chan struct{} // closed by close
}

func (l *link) close() {
	l.mu.Lock()
	if l.isClosed {
		l.mu.Unlock()
		return
	}
	l.isClosed = true
	close(l.done)
	server := l.server
	l.mu.Unlock()
	resetConn(l.client)
	if server != nil {
		resetConn(server)
	}
}

// wait blocks while the proxy blackholes, and reports whether the link may
// go on (it is not closed, and the proxy does not reset).
func (l *link) wait() bool {
	for {
		m, _, changed := l.p.state()
		switch m {
		case Reset:
			return false
		case Blackhole:
			select {
			case <-changed:
				continue
			case <-l.done:
				return false
			}
		}
		select {
		case <-l.done:
			return false
		default:
			return true
		}
	}
}

func (l *link) run() {
	defer l.p.wg.Done()
	defer func() {
		l.close()
		l.p.mu.Lock()
		delete(l.p.links, l)
		l.p.mu.Unlock()
	}()
	// A blackholed connection is accepted but not dialled through until
	// the partition heals, as a SYN that goes nowhere.
	if !l.wait() {
		return
	}
	server, err := net.DialTimeout("tcp", l.p.target, proxyDialTimeout)
	if err != nil {
		return
	}
	l.mu.Lock()
	if l.isClosed {
		l.mu.Unlock()
		server.Close()
		return
	}
	l.server = server
	l.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pipe(server, l.client) }()
	go func() { defer wg.Done(); l.pipe(l.client, server) }()
	wg.Wait()
}

type chunk struct {
	b    []byte
	read time.Time
}

// pipe copies from src to dst through a queue, applying the proxy's mode to
// each chunk as it is written. When src ends, dst's write side is closed
// after the queue drains; any failure closes the whole link.
func (l *link) pipe(dst, src net.Conn) {
	q := make(chan chunk, queueChunks)
	go func() {
		defer close(q)
		for {
			b := make([]byte, chunkSize)
			n, err := src.Read(b)
			if n > 0 {
				select {
				case q <- chunk{b[:n], time.Now()}:
				case <-l.done:
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					l.close()
				}
				return
			}
		}
	}()
	for c := range q {
		if !l.hold(c.read) {
			l.close()
			// Drain so the reader is not left blocked on a full queue.
			for range q {
			}
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			l.close()
			for range q {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		l.close()
	}
}

// hold waits until a chunk read at t may be written: not while the proxy
// blackholes, and in Delay mode not before t plus the latency. It reports
// false if the link is to close instead.
func (l *link) hold(t time.Time) bool {
	for {
		if !l.wait() {
			return false
		}
		m, d, changed := l.p.state()
		if m != Delay {
			return true
		}
		wait := time.Until(t.Add(d))
		if wait <= 0 {
			return true
		}
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
			return true
		case <-changed:
			timer.Stop()
		case <-l.done:
			timer.Stop()
			return false
		}
	}
}
