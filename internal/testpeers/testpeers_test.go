package testpeers_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/internal/testpeers"
)

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// otlpLogJSON is one OTLP/JSON logs request (trace and span ids are hex in
// OTLP/JSON).
func otlpLogJSON(body, traceID, spanID string) []byte {
	return fmt.Appendf(nil, `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"testpeers"}}]},`+
		`"scopeLogs":[{"scope":{"name":"testpeers"},"logRecords":[{"timeUnixNano":"%d","observedTimeUnixNano":"%d",`+
		`"severityNumber":9,"severityText":"INFO","body":{"stringValue":%q},"traceId":%q,"spanId":%q,`+
		`"attributes":[{"key":"audit","value":{"boolValue":true}}]}]}]}]}`,
		time.Now().UnixNano(), time.Now().UnixNano(), body, traceID, spanID)
}

// otlpTraceJSON is one OTLP/JSON traces request with a single span.
func otlpTraceJSON(name, traceID, spanID string) []byte {
	end := time.Now()
	start := end.Add(-5 * time.Millisecond)
	return fmt.Appendf(nil, `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"testpeers"}}]},`+
		`"scopeSpans":[{"scope":{"name":"testpeers"},"spans":[{"traceId":%q,"spanId":%q,"name":%q,"kind":2,`+
		`"startTimeUnixNano":"%d","endTimeUnixNano":"%d"}]}]}]}`,
		traceID, spanID, name, start.UnixNano(), end.UnixNano())
}

func post(t *testing.T, url string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, resp, err := testpeers.PostJSON(ctx, url, body)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	if code != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, code, resp)
	}
}

func TestCollectorFileExportStopRestartValidate(t *testing.T) {
	t.Parallel()
	cfg := testpeers.CollectorConfig(testpeers.CollectorOptions{})
	c := testpeers.StartCollector(t, cfg, nil)

	msg := "hello-" + randHex(t, 8)
	post(t, c.OTLPHTTPURL+"/v1/logs", otlpLogJSON(msg, randHex(t, 16), randHex(t, 8)))
	out := c.WaitExport(t, msg, 20*time.Second)
	if !strings.Contains(out, `"resourceLogs"`) {
		t.Fatalf("export is not OTLP/JSON logs:\n%s", out)
	}

	// Outage: the port refuses connections while stopped, and the
	// collector comes back on the same port.
	c.Stop()
	if c.Running() {
		t.Fatal("collector still running after Stop")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if _, _, err := testpeers.PostJSON(ctx, c.OTLPHTTPURL+"/v1/logs", otlpLogJSON("lost", randHex(t, 16), randHex(t, 8))); err == nil {
		t.Error("POST to a stopped collector succeeded")
	}
	cancel()
	c.Restart()
	msg2 := "again-" + randHex(t, 8)
	post(t, c.OTLPHTTPURL+"/v1/logs", otlpLogJSON(msg2, randHex(t, 16), randHex(t, 8)))
	c.WaitExport(t, msg2, 20*time.Second)

	// A crash: SIGKILL, then the same collector again.
	c.Kill()
	if c.Running() {
		t.Fatal("collector still running after Kill")
	}
	c.Restart()
	msg3 := "after-kill-" + randHex(t, 8)
	post(t, c.OTLPHTTPURL+"/v1/logs", otlpLogJSON(msg3, randHex(t, 16), randHex(t, 8)))
	c.WaitExport(t, msg3, 20*time.Second)

	env := map[string]string{
		testpeers.EnvOTLPHTTPEndpoint: "127.0.0.1:1",
		testpeers.EnvOTLPGRPCEndpoint: "127.0.0.1:2",
		testpeers.EnvDir:              t.TempDir(),
	}
	if err := testpeers.Validate(t, c.ConfigPath, env); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(strings.Replace(cfg, "exporters: [file]", "exporters: [nosuch]", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := testpeers.Validate(t, bad, env); err == nil {
		t.Error("config with an undefined exporter accepted")
	} else {
		t.Logf("bad config rejected as expected: %.200s", err)
	}
}

// TestVictoriaLogsViaCollector sends OTLP/JSON to the collector, which
// exports protobuf to VictoriaLogs (the realistic path), then finds the
// record by trace id.
func TestVictoriaLogsViaCollector(t *testing.T) {
	t.Parallel()
	v := testpeers.StartVictoriaLogs(t)
	c := testpeers.StartCollector(t, testpeers.CollectorConfig(testpeers.CollectorOptions{LogsURL: v.IngestURL}), nil)

	traceID, msg := randHex(t, 16), "to-victorialogs-"+randHex(t, 8)
	post(t, c.OTLPHTTPURL+"/v1/logs", otlpLogJSON(msg, traceID, randHex(t, 8)))
	rows := v.WaitQuery(t, "trace_id:"+traceID, 1, 30*time.Second)
	if len(rows) != 1 || rows[0]["_msg"] != msg {
		t.Fatalf("query trace_id:%s = %v, want one entry with _msg %q", traceID, rows, msg)
	}
	t.Logf("victorialogs entry: %v", rows[0])
}

func TestJaeger(t *testing.T) {
	t.Parallel()
	j := testpeers.StartJaeger(t)

	// Directly over OTLP/HTTP.
	traceID, name := randHex(t, 16), "direct-"+randHex(t, 4)
	post(t, j.OTLPHTTPURL+"/v1/traces", otlpTraceJSON(name, traceID, randHex(t, 8)))
	if body := j.Trace(t, traceID, 30*time.Second); !strings.Contains(string(body), name) {
		t.Fatalf("trace %s lacks span %q: %s", traceID, name, body)
	}

	// Through the collector's otlp_http exporter.
	c := testpeers.StartCollector(t, testpeers.CollectorConfig(testpeers.CollectorOptions{TracesURL: j.OTLPHTTPURL + "/v1/traces"}), nil)
	traceID, name = randHex(t, 16), "via-collector-"+randHex(t, 4)
	post(t, c.OTLPHTTPURL+"/v1/traces", otlpTraceJSON(name, traceID, randHex(t, 8)))
	if body := j.Trace(t, traceID, 30*time.Second); !strings.Contains(string(body), name) {
		t.Fatalf("trace %s lacks span %q: %s", traceID, name, body)
	}
}
