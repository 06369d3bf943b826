package bench

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// labels are the industry classifications the generated signals carry, one
// each, in turn.
var labels = []string{"A1", "A2", "B1", "B2"}

// signalsFor returns signals from, from+1, ..., from+n-1 of set, each a
// distinct, well-formed hash of typ: the MD5 or SHA-256 (standing in for a
// 256-bit PDQ hash) of "hashfed bench <set> <number>". The same arguments
// always give the same signals.
func signalsFor(typ federation.SignalType, set string, from, n int) []*hashfedv1.Signal {
	out := make([]*hashfedv1.Signal, n)
	seed := []byte("hashfed bench " + set + " ")
	prefix := len(seed)
	for i := range n {
		k := from + i
		seed = strconv.AppendInt(seed[:prefix], int64(k), 10)
		var v string
		if typ == federation.MD5 {
			s := md5.Sum(seed)
			v = hex.EncodeToString(s[:])
		} else {
			s := sha256.Sum256(seed)
			v = hex.EncodeToString(s[:])
		}
		out[i] = &hashfedv1.Signal{Type: typ.Proto(), Value: v, Labels: []string{labels[k%len(labels)]}}
	}
	return out
}

// A setWriter builds the contributions of one publisher to one set, in
// sequence. It is not safe for concurrent use.
type setWriter struct {
	name       string
	federation string
	signer     *federation.Signer
	typ        federation.SignalType
	seq        uint64 // the next contribution's sequence number
	signals    int    // signals generated so far
}

func newSetWriter(signer *federation.Signer, fed, set string, typ federation.SignalType) *setWriter {
	return &setWriter{name: set, federation: fed, signer: signer, typ: typ, seq: 1}
}

// next builds and signs the set's next contribution of size signals, as a
// publisher does before calling Publish.
func (w *setWriter) next(size int) (*hashfedv1.Contribution, error) {
	sigs := signalsFor(w.typ, w.name, w.signals, size)
	c, _, err := federation.BuildContribution(w.signer, w.federation, w.name, w.seq, sigs, time.Now().UTC().Format(time.RFC3339))
	if err != nil {
		return nil, err
	}
	w.seq++
	w.signals += size
	return c, nil
}

// commandBytes serializes c as the Raft command the leader commits for it
// (with the leader's time stamped in), the bytes bare Raft carries in the
// reference runs.
func commandBytes(c *hashfedv1.Contribution) ([]byte, error) {
	return proto.Marshal(&hashfedv1.Command{
		TimeUnixNano: time.Now().UnixNano(),
		Op:           &hashfedv1.Command_Contribution{Contribution: c},
	})
}
