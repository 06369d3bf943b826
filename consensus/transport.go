package consensus

import (
	"context"
	"crypto/tls"
	"errors"
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

// handshakeTimeout bounds a peer's TLS handshake and its kind byte.
const handshakeTimeout = 10 * time.Second

// A muxListener accepts TLS connections and sorts them by kind.
type muxListener struct {
	ln        net.Listener
	tlsConf   *tls.Config
	advertise net.Addr
	log       *slog.Logger
	raftConns chan net.Conn
	forward   func(net.Conn)

	closeOnce sync.Once
	closed    chan struct{}
}

func newMuxListener(ln net.Listener, advertise net.Addr, conf *tls.Config, log *slog.Logger, forward func(net.Conn)) *muxListener {
	m := &muxListener{
		ln: ln, tlsConf: conf, advertise: advertise, log: log, forward: forward,
		raftConns: make(chan net.Conn),
		closed:    make(chan struct{}),
	}
	go m.acceptLoop()
	return m
}

func (m *muxListener) acceptLoop() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			m.log.Error("raft listener stopped", "err", err)
			m.Close()
			return
		}
		go m.sort(c)
	}
}

// sort completes the handshake off the accept loop, so a slow or hostile peer
// cannot stall other connections, then routes the connection by kind.
func (m *muxListener) sort(c net.Conn) {
	tc := tls.Server(c, m.tlsConf)
	c.SetDeadline(time.Now().Add(handshakeTimeout))
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
	switch kind[0] {
	case kindRaft:
		select {
		case m.raftConns <- tc:
		case <-m.closed:
			tc.Close()
		}
	case kindForward:
		m.forward(tc)
	default:
		m.log.Warn("refused raft connection: unknown kind", "remote", c.RemoteAddr().String(), "kind", kind[0])
		tc.Close()
	}
}

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
	return dialKind(string(address), timeout, s.dialTLS, kindRaft)
}

// dialKind opens a TLS connection to address and announces its kind.
func dialKind(address string, timeout time.Duration, conf *tls.Config, kind byte) (*tls.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	conf = conf.Clone()
	conf.ServerName = host
	d := &net.Dialer{Timeout: timeout}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := (&tls.Dialer{NetDialer: d, Config: conf}).DialContext(ctx, "tcp", address)
	if err != nil {
		return nil, err
	}
	tc := c.(*tls.Conn)
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
