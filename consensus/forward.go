package consensus

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// The forward protocol, spoken on connections of kind 'F': the follower sends
// request frames and reads one response frame for each, in order.
//
//	request:  op (1 byte) | length (4 bytes, big-endian) | body
//	response: status (1 byte) | length (4 bytes, big-endian) | body
const (
	opApply byte = 'A' // body: request bytes for Config.Prepare
	opJoin  byte = 'J' // body: JSON joinRequest
	opSync  byte = 'S' // body: empty; result: the leader's applied index, 8 bytes big-endian

	statusOK        byte = 0 // body: result bytes
	statusError     byte = 1 // body: error message; the outcome is known (nothing applied or rejected)
	statusNotLeader byte = 2 // the receiver is not the leader; nothing was applied, retry elsewhere

	maxFrame = 16 << 20
)

// errRemoteNotLeader means the node we forwarded to was not the leader.
var errRemoteNotLeader = errors.New("forwarded to a node that is not the leader")

type joinRequest struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Voter   bool   `json:"voter"`
}

func writeFrame(w *bufio.Writer, tag byte, body []byte) error {
	var hdr [5]byte
	hdr[0] = tag
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)))
	w.Write(hdr[:])
	w.Write(body)
	return w.Flush()
}

func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("forward frame of %d bytes exceeds %d", n, maxFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

// readRequest reads one request frame from a forward connection: the
// connection may stay idle up to idle before the frame starts, then has
// body to deliver the rest of it. A peer that stalls mid-frame, or holds a
// connection without using it, is cut off.
func readRequest(c net.Conn, r *bufio.Reader, idle, body time.Duration) (byte, []byte, error) {
	c.SetReadDeadline(time.Now().Add(idle))
	if _, err := r.Peek(1); err != nil {
		return 0, nil, err
	}
	c.SetReadDeadline(time.Now().Add(body))
	op, b, err := readFrame(r)
	c.SetReadDeadline(time.Time{})
	return op, b, err
}

// serveForward answers forwarded requests on one connection until it
// closes, it is idle for ForwardIdleTimeout, or a frame takes longer than
// ForwardFrameTimeout to read or write. At most MaxForwardConns are served
// at once; a connection past that is closed unread.
func (n *Node) serveForward(c net.Conn) {
	n.servedMu.Lock()
	if n.closed {
		n.servedMu.Unlock()
		c.Close()
		return
	}
	if len(n.served) >= n.cfg.MaxForwardConns {
		n.servedMu.Unlock()
		n.cfg.Log.Warn("refused a forward connection: at the limit of forward connections served at once", "remote", c.RemoteAddr().String(), "max_forward_conns", n.cfg.MaxForwardConns)
		c.Close()
		return
	}
	if n.served == nil {
		n.served = map[net.Conn]struct{}{}
	}
	n.served[c] = struct{}{}
	n.servedMu.Unlock()
	defer func() {
		n.servedMu.Lock()
		delete(n.served, c)
		n.servedMu.Unlock()
		c.Close()
	}()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		op, body, err := readRequest(c, r, n.cfg.ForwardIdleTimeout, n.cfg.ForwardFrameTimeout)
		if err != nil {
			return
		}
		var (
			res  []byte
			ferr error
		)
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.ApplyTimeout)
		switch op {
		case opApply:
			res, ferr = n.applyLocal(ctx, body)
		case opSync:
			res, ferr = n.syncLocal()
		case opJoin:
			var jr joinRequest
			if ferr = json.Unmarshal(body, &jr); ferr == nil {
				ferr = n.joinLocal(jr)
			}
		default:
			ferr = fmt.Errorf("unknown forward op %q", op)
		}
		cancel()
		c.SetWriteDeadline(time.Now().Add(n.cfg.ForwardFrameTimeout))
		switch {
		case errors.Is(ferr, ErrNotLeader):
			err = writeFrame(w, statusNotLeader, nil)
		case ferr != nil:
			err = writeFrame(w, statusError, []byte(ferr.Error()))
		default:
			err = writeFrame(w, statusOK, res)
		}
		if err != nil {
			return
		}
	}
}

// A forwarder keeps idle forward connections to the leader for reuse.
type forwarder struct {
	n    *Node
	mu   sync.Mutex
	idle map[string][]net.Conn
}

const maxIdlePerAddr = 4

// call sends one request to address. sent reports whether the request may
// have reached the remote node: when it is false, retrying elsewhere cannot
// apply the request twice.
func (f *forwarder) call(ctx context.Context, address string, op byte, body []byte) (res []byte, sent bool, err error) {
	c, err := f.get(address)
	if err != nil {
		return nil, false, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(f.n.cfg.ApplyTimeout + 5*time.Second))
	}
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	if err := writeFrame(w, op, body); err != nil {
		c.Close()
		return nil, false, err
	}
	status, resp, err := readFrame(r)
	if err != nil {
		c.Close()
		return nil, true, fmt.Errorf("forwarding to leader %s: %w (the request may or may not have been applied)", address, err)
	}
	if r.Buffered() != 0 {
		c.Close() // protocol violation; do not reuse
	} else {
		c.SetDeadline(time.Time{})
		f.put(address, c)
	}
	switch status {
	case statusOK:
		return resp, true, nil
	case statusNotLeader:
		return nil, false, errRemoteNotLeader
	default:
		return nil, true, fmt.Errorf("leader %s: %s", address, resp)
	}
}

func (f *forwarder) get(address string) (net.Conn, error) {
	f.mu.Lock()
	for len(f.idle[address]) > 0 {
		cs := f.idle[address]
		c := cs[len(cs)-1]
		f.idle[address] = cs[:len(cs)-1]
		if alive(c) {
			f.mu.Unlock()
			return c, nil
		}
		c.Close()
	}
	f.mu.Unlock()
	return dialKind(context.Background(), address, f.n.cfg.DialTimeout, f.n.cfg.ClientTLS, kindForward, nil)
}

// alive reports whether an idle connection is still open: the remote node
// closes the forward connections it accepted when it shuts down (Node.Close),
// and a request written into a closed connection would leave its outcome
// unknown.
func alive(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	c.SetReadDeadline(time.Time{})
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (f *forwarder) put(address string, c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.idle == nil {
		f.idle = map[string][]net.Conn{}
	}
	if len(f.idle[address]) >= maxIdlePerAddr {
		c.Close()
		return
	}
	f.idle[address] = append(f.idle[address], c)
}

func (f *forwarder) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cs := range f.idle {
		for _, c := range cs {
			c.Close()
		}
	}
	f.idle = nil
}
