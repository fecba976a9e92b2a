package otelbridge

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A collector that is down does not keep Shutdown retrying for ever when
// its ctx has no deadline (what `defer shutdown(ctx)` with a background ctx
// does): it gives up after the default timeout, says why, and leaves the
// cursor at what was acknowledged, so that the next start exports the rest.
func TestShutdownDefaultTimeout(t *testing.T) {
	r := newReceiver(t)
	r.setStatus(http.StatusServiceUnavailable) // down
	dir := t.TempDir()
	b := newTestBridge(t, dir, r.endpoint(), WithShutdownTimeout(300*time.Millisecond))
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 20, "outage")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := b.Shutdown(context.Background())
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Shutdown took %v with a default timeout of 300ms", d)
	}
	if err == nil || !strings.Contains(err.Error(), "default timeout (300ms)") || !strings.Contains(err.Error(), "the next start exports the rest") {
		t.Fatalf("Shutdown = %v; want the default timeout named, and the rest left to the next start", err)
	}
	if c := b.Stats().Cursor; c != 0 {
		t.Fatalf("cursor %d: nothing was acknowledged", c)
	}
	r.setStatus(http.StatusOK) // the next start
	if err := shutdown(t, newTestBridge(t, dir, r.endpoint()), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	checkExactlyTheFiles(t, r, dir)
}

// The shutdown function of Setup is Bridge.Shutdown: with the endpoint of a
// collector that is not there (a developer's OTEL_EXPORTER_OTLP_ENDPOINT,
// say) and a background ctx it returns; a negative WithShutdownTimeout
// waits until the ctx is done instead.
func TestSetupShutdownDoesNotHang(t *testing.T) {
	clearOTLPEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + ln.Addr().String()
	ln.Close() // nobody listens there now
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)

	for _, tc := range []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		want    string
	}{
		{"default", 200 * time.Millisecond, func() (context.Context, context.CancelFunc) { return context.Background(), func() {} }, "default timeout (200ms)"},
		{"ctx deadline wins", time.Hour, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, "deadline exceeded"},
		{"no default", -1, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b, shutdown, err := Setup(context.Background(), WithDir(dir), WithShutdownTimeout(tc.timeout), withBackoff(10*time.Millisecond, 50*time.Millisecond))
			if err != nil || b == nil {
				t.Fatalf("Setup = %v, %v", b, err)
			}
			h := newTestHandler(t, dir, b)
			writeRecords(t, h, 5, "x")
			h.Close()
			ctx, cancel := tc.ctx()
			defer cancel()
			start := time.Now()
			err = shutdown(ctx)
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("shutdown took %v", d)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("shutdown = %v; want it to say %q", err, tc.want)
			}
		})
	}
}
