package node

import (
	"errors"
	"io"
	"log/slog"
	"net"

	"google.golang.org/grpc/credentials"
)

// refusalLogger wraps the API's transport credentials so that a refused TLS
// handshake is logged with its reason. A TLS alert is all the refused
// caller receives (its client sees Unavailable), so the node's log is the
// one place that says why: no certificate, expired, not issued by the CA of
// the org it names, an org that is not (or no longer) a member.
type refusalLogger struct {
	credentials.TransportCredentials
	log *slog.Logger
}

func logRefusals(c credentials.TransportCredentials, log *slog.Logger) credentials.TransportCredentials {
	return refusalLogger{TransportCredentials: c, log: log}
}

func (c refusalLogger) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := c.TransportCredentials.ServerHandshake(conn)
	// io.EOF is a peer that closed before saying anything, such as a TCP
	// health check: not worth a warning.
	if err != nil && !errors.Is(err, io.EOF) {
		c.log.Warn("refused TLS handshake", "remote", conn.RemoteAddr().String(), "err", err)
	}
	return out, info, err
}

func (c refusalLogger) Clone() credentials.TransportCredentials {
	return refusalLogger{TransportCredentials: c.TransportCredentials.Clone(), log: c.log}
}
