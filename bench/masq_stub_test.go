//go:build !(masq && ignore)

package bench

import "testing"

// BenchmarkPeerMasq needs github.com/m-mizutani/masq, which the module
// proxy refused when this was written; see masq_test.go.
func BenchmarkPeerMasq(b *testing.B) {
	b.Skip("github.com/m-mizutani/masq not available: go get it and run with BENCH_TAGS=masq ./run.sh (see masq_test.go)")
}
