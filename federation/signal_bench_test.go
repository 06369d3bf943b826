package federation_test

import (
	"testing"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// benchSignals returns n valid, distinct signals cycling through every type.
func benchSignals(n int) []*hashfedv1.Signal {
	var sigs []*hashfedv1.Signal
	for i := range n {
		switch i % 5 {
		case 0:
			sigs = append(sigs, sig(federation.MD5, md5Hex(i), "A1"))
		case 1:
			sigs = append(sigs, sig(federation.SHA1, sha1Hex(i), "B1"))
		case 2:
			sigs = append(sigs, sig(federation.SHA256, sha256Hex(i)))
		case 3:
			sigs = append(sigs, sig(federation.PDQ, pdqHex(i), "A2", "x"))
		default:
			sigs = append(sigs, sig(federation.PhotoDNA, photoDNA(i)))
		}
	}
	return sigs
}

// BenchmarkValidateSignal: the per-signal check every node and subscriber
// runs on every value (ns/op is per signal).
func BenchmarkValidateSignal(b *testing.B) {
	sigs := benchSignals(1000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := federation.ValidateSignal(sigs[i%len(sigs)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckPayload: what a subscriber does with each statement's
// payload, for a 1,000-signal contribution (ns/op is per payload).
func BenchmarkCheckPayload(b *testing.B) {
	_, signers := newTestGenesis(b)
	sigs := benchSignals(1000)
	c, st, err := federation.BuildContribution(signers["ngo"], testFed, "ngo/csam", 1, sigs, "")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := federation.CheckPayload(st, c.Payload); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/signal")
}
