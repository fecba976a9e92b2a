package otelbridge

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/handler"
)

func clearOTLPEnv(t *testing.T) {
	for _, k := range []string{"OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED"} {
		t.Setenv(k, "")
	}
	for _, p := range []string{"OTEL_EXPORTER_OTLP_", "OTEL_EXPORTER_OTLP_LOGS_", "OTEL_EXPORTER_OTLP_TRACES_"} {
		for _, k := range []string{"ENDPOINT", "HEADERS", "COMPRESSION", "TIMEOUT", "CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"} {
			t.Setenv(p+k, "")
		}
	}
}

// (e) Without an endpoint variable Setup is off: nil bridge, no goroutines,
// no error, even without WithDir.
func TestSetupOffWithoutEnv(t *testing.T) {
	clearOTLPEnv(t)
	before := runtime.NumGoroutine()
	b, shutdown, err := Setup(context.Background(), WithTracing())
	if err != nil || b != nil {
		t.Fatalf("Setup = %v, %v; want nil, nil", b, err)
	}
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("goroutines %d -> %d", before, after)
	}

	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_SDK_DISABLED", "true")
	if b, _, err := Setup(context.Background(), WithDir(t.TempDir())); b != nil || err != nil {
		t.Fatalf("OTEL_SDK_DISABLED=true: Setup = %v, %v", b, err)
	}
	t.Setenv("OTEL_SDK_DISABLED", "")
	if _, _, err := Setup(context.Background()); err == nil {
		t.Fatal("enabled without WithDir: no error")
	}
}

// (e) OTEL_EXPORTER_OTLP_ENDPOINT switches it on; otlploghttp takes headers
// and compression from the environment, the resource OTEL_SERVICE_NAME and
// OTEL_RESOURCE_ATTRIBUTES; WithTracing exports spans to the same endpoint.
func TestSetupFromEnv(t *testing.T) {
	clearOTLPEnv(t)
	r := newReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", r.endpoint())
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-audit-token=s3cret")
	t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
	t.Setenv("OTEL_SERVICE_NAME", "from-env")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test")
	dir := t.TempDir()
	ctx := context.Background()
	b, shutdown, err := Setup(ctx, WithDir(dir), WithService("from-code", "1.2.3"), WithTracing())
	if err != nil || b == nil {
		t.Fatalf("Setup = %v, %v", b, err)
	}
	tp := b.TracerProvider()
	if tp == nil {
		t.Fatal("WithTracing: no TracerProvider")
	}
	h := newTestHandler(t, dir, b)
	sctx, span := tp.Tracer("test").Start(ctx, "request")
	slog.New(h).InfoContext(sctx, "configured from the environment", handler.Audit)
	span.End()
	h.Close()
	sdctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := shutdown(sdctx); err != nil {
		t.Fatal(err)
	}
	lines := fileLines(t, dir)
	if miss := r.missing(seqsOf(lines)); len(miss) != 0 {
		t.Fatalf("missing %v", miss)
	}
	r.mu.Lock()
	hdr, spans := r.headers, r.spans
	r.mu.Unlock()
	if hdr.Get("X-Audit-Token") != "s3cret" || hdr.Get("Content-Encoding") != "gzip" {
		t.Errorf("headers from the environment not applied: %v", hdr)
	}
	if spans < 1 {
		t.Errorf("no span exported")
	}
	rec, _ := r.bySeq(lines[1].Seq)
	for key, want := range map[string]string{
		"service.name": "from-env", "service.version": "1.2.3", "deployment.environment.name": "test",
	} {
		if v, _ := attr(rec.res.GetAttributes(), key); v.GetStringValue() != want {
			t.Errorf("resource %s = %q, want %q", key, v.GetStringValue(), want)
		}
	}
	if tid := span.SpanContext().TraceID(); string(rec.rec.TraceId) != string(tid[:]) {
		t.Errorf("audit record trace id %x, span's %s", rec.rec.TraceId, tid)
	}
}

// (e) OTEL_EXPORTER_OTLP_LOGS_ENDPOINT alone switches it on too (and, with
// no traces endpoint, WithTracing builds no TracerProvider).
func TestSetupLogsEndpoint(t *testing.T) {
	clearOTLPEnv(t)
	r := newReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", r.endpoint()+"/v1/logs")
	dir := t.TempDir()
	b, shutdown, err := Setup(context.Background(), WithDir(dir), WithTracing())
	if err != nil || b == nil {
		t.Fatalf("Setup = %v, %v", b, err)
	}
	if b.TracerProvider() != nil {
		t.Error("TracerProvider without a traces endpoint")
	}
	h := newTestHandler(t, dir, b)
	slog.New(h).Info("x", handler.Audit)
	h.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if miss := r.missing(seqsOf(fileLines(t, dir))); len(miss) != 0 {
		t.Fatalf("missing %v", miss)
	}
}

// A malformed OTEL_EXPORTER_OTLP_* value is an error of Setup, which names
// the variable (and a header by its key) but never a value: the exporter
// would drop it (a bad header entry drops every header) and quote it, API
// keys included, to the global error handler. OTEL_SDK_DISABLED disables
// only with "true".
func TestSetupRejectsBadEnv(t *testing.T) {
	cert := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(cert, []byte("not checked here"), 0o600); err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-api-key"
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // in the error
	}{
		{"header entry without =", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=" + secret + ",x-tenant"}, "HEADERS: entry 2"},
		{"bad percent-encoding", map[string]string{"OTEL_EXPORTER_OTLP_LOGS_HEADERS": "authorization=Basic%zz" + secret}, `"authorization"`},
		{"value where the key goes", map[string]string{"OTEL_EXPORTER_OTLP_HEADERS": "Bearer " + secret + "=x"}, "entry 1"},
		{"endpoint without scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "127.0.0.1:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT has no scheme; it must be an http:// or https:// URL, e.g. http://localhost:4318"},
		{"host:port without scheme", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT has no scheme"},
		{"malformed endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://[::1"}, "OTEL_EXPORTER_OTLP_ENDPOINT is a malformed URL; it must be an http:// or https:// URL, e.g. http://localhost:4318"},
		{"gRPC endpoint", map[string]string{"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "grpc://collector:4317"}, "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT has a scheme other than http and https"},
		{"endpoint without host", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://:4318"}, "OTEL_EXPORTER_OTLP_ENDPOINT has no host"},
		{"port out of range", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:99999"}, "OTEL_EXPORTER_OTLP_ENDPOINT has an invalid port; it must be a number from 1 to 65535"},
		{"port 0", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:0"}, "invalid port"},
		{"port not a number", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://localhost:43x8"}, "invalid port"},
		{"bad port, credentials", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "https://user:" + secret + "@collector:70000/?token=" + secret}, "invalid port"},
		{"bad traces endpoint with tracing", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://localhost:99999"}, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT has an invalid port"},
		{"missing certificate", map[string]string{"OTEL_EXPORTER_OTLP_CERTIFICATE": filepath.Join(t.TempDir(), "nope.pem")}, "OTEL_EXPORTER_OTLP_CERTIFICATE"},
		{"client certificate without key", map[string]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": cert}, "go together"},
		{"compression", map[string]string{"OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "zstd"}, "COMPRESSION"},
		{"timeout with a unit", map[string]string{"OTEL_EXPORTER_OTLP_TIMEOUT": "10s"}, "milliseconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearOTLPEnv(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			b, _, err := Setup(context.Background(), WithDir(t.TempDir()), WithTracing())
			if err == nil {
				b.Shutdown(context.Background())
				t.Fatal("Setup accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), secret) {
				t.Errorf("error %q: want it to contain %q and no value", err, tc.want)
			}
		})
	}
	// A generic variable that the logs' own overrides is not checked
	// (another SDK in the process may read it its own way).
	clearOTLPEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")
	t.Setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://127.0.0.1:1")
	if b, _, err := Setup(context.Background(), WithDir(t.TempDir())); err != nil || b == nil {
		t.Fatalf("an overridden generic endpoint: %v, %v", b, err)
	} else {
		b.Shutdown(context.Background())
	}
	clearOTLPEnv(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	t.Setenv("OTEL_SDK_DISABLED", "1")
	b, _, err := Setup(context.Background(), WithDir(t.TempDir()))
	if err != nil || b == nil {
		t.Fatalf("OTEL_SDK_DISABLED=1 turned it off: %v, %v", b, err)
	}
	b.Shutdown(context.Background())
}
