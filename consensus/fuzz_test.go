package consensus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzReadFrame reads forward-protocol frames (what a peer on the Raft
// port sends after its 'F' byte, and what the leader answers) from
// arbitrary bytes: reading never panics, no frame body exceeds maxFrame,
// and the frames read, written again, are exactly the bytes consumed.
func FuzzReadFrame(f *testing.F) {
	frame := func(tag byte, body string) []byte {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		if err := writeFrame(w, tag, []byte(body)); err != nil {
			f.Fatal(err)
		}
		return b.Bytes()
	}
	f.Add(frame(opApply, "\x0a\x03cmd"))
	f.Add(append(frame(opJoin, `{"id":"n","address":"127.0.0.1:1","voter":false}`), frame(opSync, "")...))
	f.Add(frame(statusNotLeader, ""))
	f.Add([]byte{opApply, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{opApply, 0, 0, 0, 9, 'x'})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		var again bytes.Buffer
		w := bufio.NewWriter(&again)
		for {
			tag, body, err := readFrame(r)
			if err != nil {
				break
			}
			if len(body) > maxFrame {
				t.Fatalf("frame body of %d bytes read, the limit is %d", len(body), maxFrame)
			}
			if err := writeFrame(w, tag, body); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.HasPrefix(in, again.Bytes()) {
			t.Fatalf("frames written again (%x) are not the bytes read (%x)", again.Bytes(), in)
		}
		// A header announcing more than the limit is refused before any
		// allocation, however many bytes follow.
		if len(in) >= 5 && again.Len() == 0 && binary.BigEndian.Uint32(in[1:5]) <= maxFrame && len(in)-5 >= int(binary.BigEndian.Uint32(in[1:5])) {
			t.Fatalf("a complete first frame (%x) was not read", in)
		}
	})
}
