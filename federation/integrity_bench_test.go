package federation_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashfed/hashfed/federation"
)

// BenchmarkVerifyEntries measures the storage check (leaf, tree hashes and
// payload of each entry) on a disk-backed state of 20,000 one-signal
// contributions: what the start check and a background pass cost per entry
// without a rate limit.
func BenchmarkVerifyEntries(b *testing.B) {
	const entries = 20000
	doc, signers := newTestGenesis(b)
	s, err := federation.OpenState(filepath.Join(b.TempDir(), "state"), doc, federation.StateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	mustApply(b, s, genesisCmd(b, doc, 1), 0)
	for i := range entries - 1 {
		c := contribute(b, signers["ngo"], "ngo/csam", uint64(i+1), sig(federation.PDQ, fmt.Sprintf("%064x", i), "A1"))
		if r := apply(b, s, contributionCmd(b, c, int64(i))); r.Code != 0 {
			b.Fatal(r.Msg)
		}
	}
	b.ResetTimer()
	var read int64
	for range b.N {
		for i := int64(0); i < entries; i += 256 {
			n, err := s.VerifyEntries(i, i+256)
			if err != nil {
				b.Fatal(err)
			}
			read += n
		}
	}
	b.ReportMetric(float64(b.N*entries)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(float64(read)/b.Elapsed().Seconds()/(1<<20), "MiB/s")
}
