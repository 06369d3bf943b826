package consensus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Connection kinds: the first byte a dialer writes after the TLS handshake.
const (
	kindRaft    byte = 'R'
	kindForward byte = 'F'
)

// DefaultHandshakeTimeout bounds a peer's TLS handshake and its kind byte.
const DefaultHandshakeTimeout = 10 * time.Second

// A muxListener accepts TLS connections and sorts them by kind.
type muxListener struct {
	ln        net.Listener
	tlsConf   *tls.Config
	handshake time.Duration
	advertise net.Addr
	log       *slog.Logger
	raftConns chan net.Conn
	forward   func(net.Conn)
	// ready is closed by serveForwards; until then forward connections wait.
	ready     chan struct{}
	readyOnce sync.Once
	authorize func(cs tls.ConnectionState, raft bool) error

	closeOnce sync.Once
	closed    chan struct{}
}

func newMuxListener(ln net.Listener, advertise net.Addr, conf *tls.Config, handshake time.Duration, log *slog.Logger, forward func(net.Conn), authorize func(tls.ConnectionState, bool) error) *muxListener {
	m := &muxListener{
		ln: ln, tlsConf: conf, handshake: handshake, advertise: advertise, log: log, forward: forward, authorize: authorize,
		raftConns: make(chan net.Conn),
		ready:     make(chan struct{}),
		closed:    make(chan struct{}),
	}
	go m.acceptLoop()
	return m
}

// acceptLoop hands each connection to sort until the listener is closed.
// The listener is a [netlimit.Listener] (Start wraps it), which rides out
// accept errors such as EMFILE with a backoff and returns an error only once
// it is closed, so any error here ends the loop.
func (m *muxListener) acceptLoop() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
			default:
				m.log.Error("raft listener closed under the node", "err", err)
				m.Close()
			}
			return
		}
		go m.sort(c)
	}
}

// sort completes the handshake off the accept loop, so a slow or hostile peer
// cannot stall other connections, then routes the connection by kind.
func (m *muxListener) sort(c net.Conn) {
	tc := tls.Server(c, m.tlsConf)
	c.SetDeadline(time.Now().Add(m.handshake))
	if err := tc.HandshakeContext(context.Background()); err != nil {
		m.log.Warn("refused raft connection", "remote", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	var kind [1]byte
	if _, err := tc.Read(kind[:]); err != nil {
		c.Close()
		return
	}
	c.SetDeadline(time.Time{})
	if kind[0] == kindRaft || kind[0] == kindForward {
		if err := m.authorize(tc.ConnectionState(), kind[0] == kindRaft); err != nil {
			m.log.Warn("refused raft connection", "remote", c.RemoteAddr().String(), "kind", string(kind[:]), "err", err)
			tc.Close()
			return
		}
	}
	switch kind[0] {
	case kindRaft:
		select {
		case m.raftConns <- tc:
		case <-m.closed:
			tc.Close()
		}
	case kindForward:
		// The listener accepts before Start has Raft running, and peers may
		// forward at once (a restarted leader hears from followers that still
		// take it for the leader): hold the connection until serveForwards.
		select {
		case <-m.ready:
			m.forward(tc)
		case <-m.closed:
			tc.Close()
		}
	default:
		m.log.Warn("refused raft connection: unknown kind", "remote", c.RemoteAddr().String(), "kind", kind[0])
		tc.Close()
	}
}

// serveForwards lets forward connections through to the forward function,
// once the node can answer them.
func (m *muxListener) serveForwards() { m.readyOnce.Do(func() { close(m.ready) }) }

func (m *muxListener) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.closed)
		err = m.ln.Close()
	})
	return err
}

// streamLayer is the raft.StreamLayer over a muxListener.
type streamLayer struct {
	m       *muxListener
	dialTLS *tls.Config
	// authorize, if set, decides whether the server dialed at an address
	// may receive Raft RPCs.
	authorize func(address string, cs tls.ConnectionState) error

	mu     sync.Mutex
	dialed map[*dialedConn]struct{} // open Raft connections this node dialed
}

// A dialedConn is a Raft connection this node dialed, kept so that recheck
// can close it when its server is no longer allowed the log.
type dialedConn struct {
	*tls.Conn
	address string
	s       *streamLayer
	once    sync.Once
}

func (c *dialedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.dialed, c)
		c.s.mu.Unlock()
	})
	return c.Conn.Close()
}

// recheck authorizes every open dialed connection again and closes those
// refused now.
func (s *streamLayer) recheck() {
	if s.authorize == nil {
		return
	}
	s.mu.Lock()
	conns := make([]*dialedConn, 0, len(s.dialed))
	for c := range s.dialed {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		if err := s.authorize(c.address, c.ConnectionState()); err != nil {
			s.m.log.Warn("closing a raft connection to a server no longer allowed the log", "address", c.address, "err", err)
			c.Close()
		}
	}
}

func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.m.raftConns:
		return c, nil
	case <-s.m.closed:
		return nil, errors.New("raft listener closed")
	}
}

func (s *streamLayer) Close() error   { return s.m.Close() }
func (s *streamLayer) Addr() net.Addr { return s.m.advertise }

func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	// Raft's shutdown waits for its goroutines, and a dial to a peer that
	// never answers (gone from the network, or not completing the handshake)
	// would hold it for the whole timeout: closing the listener, as Close
	// does, cuts the dial short.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.m.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	var check func(tls.ConnectionState) error
	if s.authorize != nil {
		check = func(cs tls.ConnectionState) error {
			if err := s.authorize(string(address), cs); err != nil {
				return fmt.Errorf("raft server at %s may not receive the log: %w", address, err)
			}
			return nil
		}
	}
	tc, err := dialKind(ctx, string(address), timeout, s.dialTLS, kindRaft, check)
	if err != nil {
		return nil, err
	}
	c := &dialedConn{Conn: tc, address: string(address), s: s}
	s.mu.Lock()
	if s.dialed == nil {
		s.dialed = map[*dialedConn]struct{}{}
	}
	s.dialed[c] = struct{}{}
	s.mu.Unlock()
	return c, nil
}

// dialKind opens a TLS connection to address and announces its kind. It
// gives up after timeout or when ctx ends. check, if not nil, runs after the
// handshake and may refuse the server.
func dialKind(ctx context.Context, address string, timeout time.Duration, conf *tls.Config, kind byte, check func(tls.ConnectionState) error) (*tls.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	conf = conf.Clone()
	conf.ServerName = host
	d := &net.Dialer{Timeout: timeout}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := (&tls.Dialer{NetDialer: d, Config: conf}).DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
	if check != nil {
		if err := check(tc.ConnectionState()); err != nil {
			tc.Close()
			return nil, err
		}
	}
	tc.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := tc.Write([]byte{kind}); err != nil {
		tc.Close()
		return nil, err
	}
	tc.SetWriteDeadline(time.Time{})
	return tc, nil
}

// tcpAddr is a net.Addr for an advertised host:port that need not resolve locally.
type tcpAddr string

func (a tcpAddr) Network() string { return "tcp" }
func (a tcpAddr) String() string  { return string(a) }
