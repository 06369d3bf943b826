package node

import (
	"sync/atomic"
	"testing"
)

// SubscribeBatch is how many entries a subscription stream reads from the
// state at a time.
const SubscribeBatch = subscribeBatch

// A ReadAheadMeter watches one node's subscription streams: how many entries
// they read from the state, and how many of those gRPC has taken.
type ReadAheadMeter struct {
	read, sent, maxAhead atomic.Int64
}

// MeterReadAhead starts watching the streams n opens from now on, until the
// test ends. With several streams open, the counts are the latest report of
// any of them; MaxAhead holds for each.
func MeterReadAhead(t testing.TB, n *Node) *ReadAheadMeter {
	m := &ReadAheadMeter{}
	readAheadProbes.Store(n, func(read, sent int64) {
		m.read.Store(read)
		m.sent.Store(sent)
		for {
			cur := m.maxAhead.Load()
			if read-sent <= cur || m.maxAhead.CompareAndSwap(cur, read-sent) {
				break
			}
		}
	})
	t.Cleanup(func() { readAheadProbes.Delete(n) })
	return m
}

// Read is how many entries the stream has read from the state.
func (m *ReadAheadMeter) Read() int64 { return m.read.Load() }

// Sent is how many entries gRPC has taken from the stream.
func (m *ReadAheadMeter) Sent() int64 { return m.sent.Load() }

// MaxAhead is the most entries a stream has held read but not yet sent.
func (m *ReadAheadMeter) MaxAhead() int64 { return m.maxAhead.Load() }
