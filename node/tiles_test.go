package node_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/hashfed/hashfed/certs"
	"github.com/hashfed/hashfed/internal/localfed"
)

// The tile server is verified here with independent code only: net/http,
// tlog's tile paths, TileHashReader and proofs, and transparency-dev's
// checkpoint parser. Nothing from hashfed's ledger package is used.

// tileClient is an HTTPS client of one node's tile server.
type tileClient struct {
	t    *testing.T
	c    *http.Client
	base string // "https://127.0.0.1:port"
}

// newTileClient returns a client for node nf that presents cert (none if
// nil) and trusts the CA of nf's org, as a user following the README would.
func newTileClient(t *testing.T, f *localfed.Federation, nf *localfed.NodeFiles, cert *tls.Certificate) *tileClient {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(f.Orgs[nf.Org].Dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in ca.crt")
	}
	conf := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS13}
	if cert != nil {
		conf.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &tileClient{t: t, c: &http.Client{Transport: tr, Timeout: 10 * time.Second}, base: "https://" + nf.HTTPAddress}
}

func (tc *tileClient) do(method, path string) (*http.Response, []byte, error) {
	req, err := http.NewRequest(method, tc.base+path, nil)
	if err != nil {
		tc.t.Fatal(err)
	}
	res, err := tc.c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res, body, err
}

// get fetches path, which must succeed with status 200.
func (tc *tileClient) get(path string) (*http.Response, []byte) {
	tc.t.Helper()
	res, body, err := tc.do(http.MethodGet, path)
	if err != nil {
		tc.t.Fatalf("GET %s: %v", path, err)
	}
	if res.StatusCode != http.StatusOK {
		tc.t.Fatalf("GET %s: %s: %s", path, res.Status, body)
	}
	return res, body
}

// Height, ReadTiles and SaveTiles make a tileClient a [tlog.TileReader].
func (tc *tileClient) Height() int { return 8 }

func (tc *tileClient) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		res, body, err := tc.do(http.MethodGet, "/"+c2spTilePath(tile))
		if err != nil {
			return nil, err
		}
		if res.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", c2spTilePath(tile), res.Status)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/octet-stream" {
			return nil, fmt.Errorf("GET %s: Content-Type %q", c2spTilePath(tile), ct)
		}
		out[i] = body
	}
	return out, nil
}

func (tc *tileClient) SaveTiles([]tlog.Tile, [][]byte) {}

// c2spTilePath turns a tlog tile of height 8 into its C2SP tlog-tiles path:
// tlog's own path without the height, with "entries" for tlog's "data".
func c2spTilePath(tile tlog.Tile) string {
	p := strings.Replace(tile.Path(), "tile/8/", "tile/", 1)
	return strings.Replace(p, "tile/data/", "tile/entries/", 1)
}

// checkpoint fetches and verifies the node's checkpoint.
func (tc *tileClient) checkpoint(nf *localfed.NodeFiles) *log.Checkpoint {
	tc.t.Helper()
	res, body := tc.get("/checkpoint")
	if ct := res.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		tc.t.Errorf("checkpoint Content-Type %q", ct)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		tc.t.Errorf("checkpoint Cache-Control %q, want no-store", cc)
	}
	v, err := note.NewVerifier(nf.CheckpointVKey)
	if err != nil {
		tc.t.Fatal(err)
	}
	cp, _, _, err := log.ParseCheckpoint(body, fedName, v)
	if err != nil {
		tc.t.Fatalf("checkpoint of %s: %v\n%s", nf.ID, err, body)
	}
	return cp
}

// entries fetches the ledger's entries [0, size) from entry bundles and
// splits them with a parser of the test's own.
func (tc *tileClient) entries(size int64) [][]byte {
	tc.t.Helper()
	var out [][]byte
	for n := int64(0); n*256 < size; n++ {
		w := int(min(256, size-n*256))
		path := "/" + c2spTilePath(tlog.Tile{H: 8, L: -1, N: n, W: w})
		_, body := tc.get(path)
		var got [][]byte
		for b := body; len(b) > 0; {
			if len(b) < 2 || len(b) < 2+(int(b[0])<<8|int(b[1])) {
				tc.t.Fatalf("%s: truncated entry bundle", path)
			}
			l := int(b[0])<<8 | int(b[1])
			got, b = append(got, b[2:2+l]), b[2+l:]
		}
		if len(got) != w {
			tc.t.Fatalf("%s holds %d entries, want %d", path, len(got), w)
		}
		out = append(out, got...)
	}
	return out
}

// publishMany publishes count contributions of one signal each, as ngo to
// ngo/csam through the leader.
func publishMany(t *testing.T, f *localfed.Federation, from, count int) {
	t.Helper()
	ctx := testCtx(t)
	c := dial(t, f, "ngo", f.Leader())
	s := signer(t, f, "ngo")
	for i := from; i < from+count; i++ {
		if _, err := c.Publish(ctx, s, "ngo/csam", sampleSignals(i, 1), ""); err != nil {
			t.Fatalf("publishing contribution %d: %v", i, err)
		}
	}
}

// TestTileServer verifies a live ledger of more than one tile through each
// node's C2SP tlog-tiles endpoints.
func TestTileServer(t *testing.T) {
	f := newTestFederation(t)
	start := time.Now()
	publishMany(t, f, 0, 290)
	converge(t, f, 291)
	t.Logf("290 contributions published in %v", time.Since(start))

	ngoCert, err := tls.LoadX509KeyPair(f.Orgs["ngo"].ClientCert, f.Orgs["ngo"].ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	olds := map[string]*log.Checkpoint{}
	for _, nf := range f.Files {
		olds[nf.ID] = newTileClient(t, f, nf, &ngoCert).checkpoint(nf)
	}
	publishMany(t, f, 290, 10)
	converge(t, f, 301)

	for _, nf := range f.Files {
		t.Run(nf.ID, func(t *testing.T) {
			tc := newTileClient(t, f, nf, &ngoCert)
			old, cp := olds[nf.ID], tc.checkpoint(nf)
			if old.Size != 291 || cp.Size != 301 {
				t.Fatalf("checkpoint sizes %d then %d, want 291 then 301", old.Size, cp.Size)
			}
			size, root := int64(cp.Size), tlog.Hash(cp.Hash)
			oldSize, oldRoot := int64(old.Size), tlog.Hash(old.Hash)

			// Every tile TileHashReader loads is checked against the root.
			thr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tc)
			if got, err := tlog.TreeHash(size, thr); err != nil || got != root {
				t.Fatalf("TreeHash from tiles = %v, %v; want %v", got, err, root)
			}
			// The older tree's partial tiles are still served.
			oldThr := tlog.TileHashReader(tlog.Tree{N: oldSize, Hash: oldRoot}, tc)
			if got, err := tlog.TreeHash(oldSize, oldThr); err != nil || got != oldRoot {
				t.Fatalf("TreeHash(%d) from tiles = %v, %v; want %v", oldSize, got, err, oldRoot)
			}
			p, err := tlog.ProveTree(size, oldSize, thr)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, size, root, oldSize, oldRoot); err != nil {
				t.Fatalf("consistency from %d to %d: %v", oldSize, size, err)
			}

			leaves := tc.entries(size)
			for _, i := range []int64{0, 1, 255, 256, 257, oldSize - 1, size - 1} {
				p, err := tlog.ProveRecord(size, i, thr)
				if err != nil {
					t.Fatal(err)
				}
				if err := tlog.CheckRecord(p, size, root, i, tlog.RecordHash(leaves[i])); err != nil {
					t.Fatalf("inclusion of entry %d: %v", i, err)
				}
			}
			// Every entry's hash is in the verified level-0 tiles.
			indexes := make([]int64, size)
			for i := range indexes {
				indexes[i] = tlog.StoredHashIndex(0, int64(i))
			}
			hashes, err := thr.ReadHashes(indexes)
			if err != nil {
				t.Fatal(err)
			}
			for i, h := range hashes {
				if tlog.RecordHash(leaves[i]) != h {
					t.Fatalf("entry %d does not hash to its leaf hash in the tile", i)
				}
			}
		})
	}
	t.Logf("total %v", time.Since(start))
}

// TestTileServerHTTP checks the server's HTTP behaviour: status codes,
// headers, compression, refused certificates and restarts.
func TestTileServerHTTP(t *testing.T) {
	f := newTestFederation(t)
	publishMany(t, f, 0, 4)
	converge(t, f, 5)
	nf := f.Files[0]

	ngoCert, err := tls.LoadX509KeyPair(f.Orgs["ngo"].ClientCert, f.Orgs["ngo"].ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	tc := newTileClient(t, f, nf, &ngoCert)

	res, body := tc.get("/tile/0/000.p/5")
	if len(body) != 5*32 || res.ProtoMajor != 2 {
		t.Errorf("level-0 tile: %d bytes over HTTP/%d, want 160 over HTTP/2", len(body), res.ProtoMajor)
	}
	if cc := res.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") || !strings.Contains(cc, "immutable") {
		t.Errorf("tile Cache-Control %q, want long-lived and immutable", cc)
	}
	// A narrower partial tile, of an earlier size, is still served.
	if _, body := tc.get("/tile/0/000.p/2"); len(body) != 2*32 {
		t.Errorf("tile 0/000.p/2 is %d bytes", len(body))
	}
	// Go's client asks for gzip and decompresses transparently.
	res, body = tc.get("/tile/entries/000.p/5")
	if !res.Uncompressed || res.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("entry bundle: Uncompressed %v, Content-Type %q; want gzip and application/octet-stream", res.Uncompressed, res.Header.Get("Content-Type"))
	}
	if len(body) < 5*2 {
		t.Errorf("entry bundle of 5 entries is %d bytes", len(body))
	}

	res, body, err = tc.do(http.MethodHead, "/checkpoint")
	if err != nil || res.StatusCode != http.StatusOK || len(body) != 0 {
		t.Errorf("HEAD /checkpoint: %v, %v, %d bytes", res, err, len(body))
	}

	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/tile/0/0", http.StatusBadRequest},
		{"GET", "/tile/0/x000/000", http.StatusBadRequest},
		{"GET", "/tile/64/000", http.StatusBadRequest},
		{"GET", "/tile/0/000.p/0", http.StatusBadRequest},
		{"GET", "/tile/0/000.p/256", http.StatusBadRequest},
		{"GET", "/tile/entries/000.p/05", http.StatusBadRequest},
		{"GET", "/tile/0/%30%30%30", http.StatusBadRequest},
		{"GET", "/tile/0//000", http.StatusBadRequest},
		{"GET", "/tile/0/000", http.StatusNotFound},           // not full yet
		{"GET", "/tile/0/000.p/6", http.StatusNotFound},       // one past the end
		{"GET", "/tile/0/001.p/1", http.StatusNotFound},       // a later tile
		{"GET", "/tile/1/000.p/1", http.StatusNotFound},       // needs 256 entries
		{"GET", "/tile/63/000.p/1", http.StatusNotFound},      // needs 2^504 entries
		{"GET", "/tile/entries/000.p/6", http.StatusNotFound}, // one past the end
		{"GET", "/tile/entries/x001/000", http.StatusNotFound},
		{"GET", "/", http.StatusNotFound},
		{"GET", "/checkpoint/", http.StatusNotFound},
		{"POST", "/checkpoint", http.StatusMethodNotAllowed},
		{"PUT", "/tile/0/000.p/1", http.StatusMethodNotAllowed},
		{"DELETE", "/tile/entries/000.p/1", http.StatusMethodNotAllowed},
	} {
		res, body, err := tc.do(tt.method, tt.path)
		if err != nil {
			t.Errorf("%s %s: %v", tt.method, tt.path, err)
			continue
		}
		if res.StatusCode != tt.status {
			t.Errorf("%s %s: %s (%s), want %d", tt.method, tt.path, res.Status, body, tt.status)
		}
		if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s %s: Cache-Control %q, want no-store", tt.method, tt.path, cc)
		}
		if tt.status == http.StatusMethodNotAllowed && res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", tt.method, tt.path, res.Header.Get("Allow"))
		}
	}

	// Certificates the federation does not accept get nothing: the
	// handshake fails.
	rogue, err := certs.NewCA("ngo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	outsider, err := certs.NewCA("outsider", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	techcoCA, err := certs.LoadCA(f.Orgs["techco"].Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		cert *tls.Certificate
		ok   bool
	}{
		{"no certificate", nil, false},
		{"unknown CA claiming ngo", ptr(forgeClientCert(t, rogue, "spiffe://ngo/client/mallory")), false},
		{"org outside the federation", ptr(forgeClientCert(t, outsider, "spiffe://outsider/client/eve")), false},
		{"techco's CA claiming ngo", ptr(forgeClientCert(t, techcoCA, "spiffe://ngo/client/mallory")), false},
		// The control: a genuine member's certificate is accepted.
		{"techco's CA, techco's name", ptr(forgeClientCert(t, techcoCA, "spiffe://techco/client/alice")), true},
	} {
		_, _, err := newTileClient(t, f, nf, tt.cert).do(http.MethodGet, "/checkpoint")
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case !tt.ok && err == nil:
			// The error itself varies: the server's TLS 1.3 alert arrives
			// after the client's side of the handshake is done.
			t.Errorf("%s: request succeeded, want the handshake refused", tt.name)
		}
	}

	// The configuration written for users names the tile server, and a
	// restarted node listens there again.
	yml, err := os.ReadFile(nf.Config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(yml), "http_listen: "+nf.HTTPAddress) {
		t.Errorf("%s does not set http_listen: %s", nf.Config, nf.HTTPAddress)
	}
	if got := f.Nodes[nf.ID].HTTPAddr(); got != nf.HTTPAddress {
		t.Errorf("HTTPAddr() = %q, want %q", got, nf.HTTPAddress)
	}
	if err := f.StopNode(nf.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tc.do(http.MethodGet, "/checkpoint"); err == nil {
		t.Error("the tile server still answers after Close")
	}
	if err := f.StartNode(nf.ID); err != nil {
		t.Fatal(err)
	}
	converge(t, f, 5)
	if cp := newTileClient(t, f, nf, &ngoCert).checkpoint(nf); cp.Size != 5 {
		t.Errorf("after restart: checkpoint size %d, want 5", cp.Size)
	}
}

func ptr[T any](v T) *T { return &v }
