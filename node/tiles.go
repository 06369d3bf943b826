package node

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/ledger"
)

// The tile server serves the ledger over HTTPS as a C2SP tlog-tiles log
// (https://c2sp.org/tlog-tiles) whose URL prefix is the server's root:
//
//	GET /checkpoint                  this node's signed checkpoint
//	GET /tile/<L>/<N>[.p/<W>]        hash tiles, tile height 8
//	GET /tile/entries/<N>[.p/<W>]    entry bundles: the ledger's leaves
//
// ([ledger.TilePath] describes the paths.) Like the gRPC API, it uses TLS 1.3
// with client certificates: a caller must present a node or client
// certificate from the CA of the org its identity names, and that org must
// be a member of the federation. Every member may read the whole ledger,
// which holds statements only, never signal values.
//
// Tiles and bundles never change once they exist, so they may be cached
// indefinitely (privately, as they are served only to members); the
// checkpoint and every error response must not be cached.

// tileServerShutdown bounds how long Close waits for tile requests in
// flight.
const tileServerShutdown = 2 * time.Second

// cacheImmutable is the Cache-Control of a tile or entry bundle.
const cacheImmutable = "private, max-age=31536000, immutable"

// A tileServer is a node's running HTTPS tile server.
type tileServer struct {
	srv *http.Server
	ln  net.Listener
}

// startTileServer starts the tile server on cfg.HTTPListener, or else on
// cfg.HTTPListen; it does nothing if neither is set. cert and trust are the
// node's TLS identity and the federation's per-org roots.
func (n *Node) startTileServer(cert tls.Certificate, trust certs.TrustSource) error {
	ln := n.cfg.HTTPListener
	if ln == nil {
		if n.cfg.HTTPListen == "" {
			return nil
		}
		var err error
		if ln, err = net.Listen("tcp", n.cfg.HTTPListen); err != nil {
			return fmt.Errorf("tile server listener: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(n.serveTiles),
		TLSConfig:         certs.ServerConfig(cert, trust, []certs.Kind{certs.KindNode, certs.KindClient}, "h2", "http/1.1"),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// Refused handshakes (certificates from outside the federation)
		// are reported here.
		ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
	}
	n.tiles = &tileServer{srv: srv, ln: ln}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		// The certificate is in TLSConfig, so no files are named.
		if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("tile server stopped", "err", err)
		}
	}()
	n.log.Info("tile server started", "https", ln.Addr().String())
	return nil
}

// stopTileServer stops the tile server, if one runs, waiting briefly for
// requests in flight.
func (n *Node) stopTileServer() {
	if n.tiles == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tileServerShutdown)
	defer cancel()
	if err := n.tiles.srv.Shutdown(ctx); err != nil {
		n.tiles.srv.Close()
	}
}

// HTTPAddr returns the address the tile server listens on, or "" if the
// node runs none.
func (n *Node) HTTPAddr() string {
	if n.tiles == nil {
		return ""
	}
	return n.tiles.ln.Addr().String()
}

// errNoCheckpoint means no cosigned checkpoint has been published yet.
var errNoCheckpoint = errors.New("no checkpoint has been published yet: the leader publishes one within a checkpoint interval once a majority of voting orgs' nodes are up")

// signedCheckpoint returns the latest checkpoint cosigned by a majority of
// voting orgs, as replicated through Raft. GetCheckpoint and the tile
// server's /checkpoint serve it.
func (n *Node) signedCheckpoint() ([]byte, error) {
	signed, _ := n.state.LatestCheckpoint()
	if signed == nil {
		return nil, errNoCheckpoint
	}
	return signed, nil
}

// serveTiles handles every tile server request.
func (n *Node) serveTiles(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	// Tile responses override this; everything else is current only now.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")

	// The handshake verified the chain against the org's CA; what remains
	// is that the org belongs to the federation.
	if r.TLS == nil {
		http.Error(w, "the tile server needs mutual TLS", http.StatusForbidden)
		return
	}
	id, err := certs.PeerIdentity(*r.TLS)
	if err != nil {
		n.log.Warn("refused tile request", "path", r.URL.Path, "err", err)
		http.Error(w, fmt.Sprintf("client certificate: %v", err), http.StatusForbidden)
		return
	}
	if n.state.Member(id.Org) == nil {
		n.log.Warn("refused tile request", "path", r.URL.Path, "caller", id.String(), "err", "org is not a member")
		http.Error(w, fmt.Sprintf("org %q is not a member of this federation", id.Org), http.StatusForbidden)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, fmt.Sprintf("method %s not allowed: the tile server is read-only", r.Method), http.StatusMethodNotAllowed)
		return
	}

	// The escaped path, so that a percent-encoded path is malformed rather
	// than a second name for a resource.
	path := r.URL.EscapedPath()
	if path == "/checkpoint" {
		signed, err := n.signedCheckpoint()
		if err != nil {
			h.Set("Retry-After", "1")
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(signed)))
		w.Write(signed)
		return
	}
	if !strings.HasPrefix(path, "/tile/") {
		http.Error(w, "not found: the tile server serves /checkpoint, /tile/<L>/<N>[.p/<W>] and /tile/entries/<N>[.p/<W>]", http.StatusNotFound)
		return
	}
	p, err := ledger.ParseTilePath(path[1:])
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var data []byte
	if p.Entries {
		data, err = n.state.EntryBundle(p.N, p.Width)
		h.Set("Vary", "Accept-Encoding")
	} else {
		data, err = n.state.HashTile(p.Level, p.N, p.Width)
	}
	switch {
	case errors.Is(err, ledger.ErrTileNotAvailable):
		http.Error(w, fmt.Sprintf("%s is not in this node's ledger of %d entries (yet)", p, n.state.Size()), http.StatusNotFound)
		return
	case err != nil:
		n.log.Error("tile server", "path", path, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// C2SP asks for entry bundles to be compressed; hash tiles would not
	// shrink.
	if p.Entries && acceptsGzip(r.Header.Values("Accept-Encoding")) {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(data)
		zw.Close() // writes to a bytes.Buffer cannot fail
		data = b.Bytes()
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Cache-Control", cacheImmutable)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data)
}

// acceptsGzip reports whether Accept-Encoding header values list gzip with
// a non-zero quality (RFC 9110, Section 12.5.3).
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(item, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			q := 1.0
			for param := range strings.SplitSeq(params, ";") {
				if k, v, ok := strings.Cut(param, "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						q = f
					}
				}
			}
			return q > 0
		}
	}
	return false
}
