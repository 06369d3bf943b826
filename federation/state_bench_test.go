package federation_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/hashfed/hashfed/federation"
	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// BenchmarkStateApply measures one node's state machine applying
// contributions of 1 and 1,000 PDQ signals to an on-disk state (signature
// check, payload check, set-index lookups and writes, tree append, commit).
// Contributions are built and signed before the timer starts.
//
//	go test -run - -bench StateApply -benchtime 2000x ./federation
func BenchmarkStateApply(b *testing.B) {
	for _, per := range []int{1, 1000} {
		b.Run(fmt.Sprintf("signals=%d", per), func(b *testing.B) {
			doc, signers := newTestGenesis(b)
			s, err := federation.OpenState(filepath.Join(b.TempDir(), "state"), doc, federation.StateOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			mustApply(b, s, genesisCmd(b, doc, 1), 0)
			cmds := make([][]byte, b.N)
			for i := range b.N {
				sigs := make([]*hashfedv1.Signal, per)
				for j := range sigs {
					sigs[j] = sig(federation.PDQ, fmt.Sprintf("%064x", i*per+j), "A1")
				}
				cmds[i] = contributionCmd(b, contribute(b, signers["ngo"], "ngo/csam", uint64(i+1), sigs...), int64(i))
			}
			b.ResetTimer()
			for i := range b.N {
				if r := apply(b, s, cmds[i]); r.Code != 0 {
					b.Fatal(r.Msg)
				}
			}
			b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "signals/s")
		})
	}
}
