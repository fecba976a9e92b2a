//go:build masq && ignore

package bench

import (
	"io"
	"log/slog"
	"regexp"
	"testing"

	"github.com/m-mizutani/masq"
)

// BenchmarkPeerMasq is masq's ReplaceAttr on slog's JSON handler, set up to
// do work comparable to redact.Default(): secret key names plus value
// patterns (bearer tokens, JWTs, AWS key ids).
//
// The module proxy refused github.com/m-mizutani/masq when this was
// written, so this file is built only with -tags masq,ignore (run.sh:
// BENCH_TAGS=masq), after
//
//	go get github.com/m-mizutani/masq@latest
//
// The "ignore" tag keeps `go mod tidy`, which otherwise considers every
// build tag, from trying to fetch masq; drop it once masq is in go.mod.
func BenchmarkPeerMasq(b *testing.B) {
	ra := masq.New(
		masq.WithFieldName("password"),
		masq.WithFieldName("secret"),
		masq.WithFieldName("token"),
		masq.WithFieldName("api_key"),
		masq.WithFieldName("authorization"),
		masq.WithFieldName("cookie"),
		masq.WithContain("Bearer "),
		masq.WithRegex(regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)),
		masq.WithRegex(regexp.MustCompile(`AKIA[0-9A-Z]{16}`)),
	)
	benchLog(b, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: ra})))
}
