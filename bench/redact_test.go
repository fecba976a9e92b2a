package bench

import (
	"io"
	"log/slog"
	"testing"

	"github.com/slogaudit/slogaudit/redact"
)

// BenchmarkRedactDiscard is our redaction in front of slog's JSON handler;
// its peer is BenchmarkPeerMasq.
func BenchmarkRedactDiscard(b *testing.B) {
	benchLog(b, slog.New(redact.Default().Handler(slog.NewJSONHandler(io.Discard, nil))))
}
