package otelbridge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/internal/testpeers"
)

// otlpJSON is the part of the OTLP/JSON encoding (the collector's file
// exporter, format json) that the test reads.
type otlpJSON struct {
	ResourceLogs []struct {
		Resource struct {
			Attributes []otlpKV `json:"attributes"`
		} `json:"resource"`
		ScopeLogs []struct {
			LogRecords []struct {
				TimeUnixNano   string   `json:"timeUnixNano"`
				SeverityNumber int      `json:"severityNumber"`
				SeverityText   string   `json:"severityText"`
				EventName      string   `json:"eventName"`
				Body           otlpAny  `json:"body"`
				Attributes     []otlpKV `json:"attributes"`
				TraceID        string   `json:"traceId"`
				SpanID         string   `json:"spanId"`
			} `json:"logRecords"`
		} `json:"scopeLogs"`
	} `json:"resourceLogs"`
}

type otlpKV struct {
	Key   string  `json:"key"`
	Value otlpAny `json:"value"`
}

type otlpAny struct {
	StringValue *string  `json:"stringValue"`
	IntValue    *string  `json:"intValue"` // int64 is a string in OTLP/JSON
	BoolValue   *bool    `json:"boolValue"`
	DoubleValue *float64 `json:"doubleValue"`
}

func (a otlpAny) String() string {
	switch {
	case a.StringValue != nil:
		return *a.StringValue
	case a.IntValue != nil:
		return *a.IntValue
	case a.BoolValue != nil:
		return strconv.FormatBool(*a.BoolValue)
	case a.DoubleValue != nil:
		return strconv.FormatFloat(*a.DoubleValue, 'g', -1, 64)
	}
	return ""
}

type exportedRecord struct {
	service, body, sevText, event, traceID, spanID string
	sev                                            int
	attrs                                          map[string]string
}

// readCollectorExport parses the file exporter's output by audit.seq.
func readCollectorExport(t *testing.T, path string) map[uint64]exportedRecord {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := make(map[uint64]exportedRecord)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var m otlpJSON
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // a line being written
		}
		for _, rl := range m.ResourceLogs {
			var service string
			for _, kv := range rl.Resource.Attributes {
				if kv.Key == "service.name" {
					service = kv.Value.String()
				}
			}
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					r := exportedRecord{service: service, body: lr.Body.String(), sevText: lr.SeverityText, sev: lr.SeverityNumber,
						event: lr.EventName, traceID: lr.TraceID, spanID: lr.SpanID, attrs: map[string]string{}}
					for _, kv := range lr.Attributes {
						r.attrs[kv.Key] = kv.Value.String()
					}
					seq, _ := strconv.ParseUint(r.attrs[SeqKey], 10, 64)
					out[seq] = r
				}
			}
		}
	}
	return out
}

// collectorConfig is testpeers.CollectorConfig's logs pipeline with the file
// exporter appending (its default truncates the file when the collector
// restarts, which would lose what it wrote before the outage).
const collectorConfig = `receivers:
  otlp:
    protocols:
      http:
        endpoint: ${env:` + testpeers.EnvOTLPHTTPEndpoint + `}
processors:
  batch:
    timeout: 100ms
exporters:
  file:
    path: ${env:` + testpeers.EnvDir + `}/export.jsonl
    format: json
    append: true
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [file]
`

// Through a real OpenTelemetry Collector (otelcol-peer, OTLP/HTTP receiver,
// file exporter): every record arrives, including those written while the
// collector was down, with its attributes and trace ids intact.
func TestThroughRealCollector(t *testing.T) {
	c := testpeers.StartCollector(t, collectorConfig, nil)
	dir := t.TempDir()
	b := newTestBridge(t, dir, c.OTLPHTTPURL)
	h := newTestHandler(t, dir, b)
	l := slog.New(h)

	tid, _ := trace.TraceIDFromHex("5b8efff798038103d269b633813fc60c")
	sid, _ := trace.SpanIDFromHex("eee19b7ec3c1b174")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid}))
	l.WarnContext(ctx, "credential denied", handler.Audit, "event", "credential_access", "status", "denied",
		slog.Group("principal", "id", "alice", "roles", 2))
	writeRecords(t, h, 200, "before")
	// These are in the collector's hands before it goes down.
	eventually(t, 10*time.Second, "the first records acknowledged", func() bool { return b.Stats().Cursor >= 202 })

	c.Stop() // outage
	writeRecords(t, h, 300, "during outage")
	eventually(t, 10*time.Second, "export failures while the collector is down", func() bool { return b.Stats().ExportFailures > 0 })
	c.Restart()
	writeRecords(t, h, 100, "after")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t, b, 20*time.Second); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	lines := fileLines(t, dir)
	var got map[uint64]exportedRecord
	var missing []uint64
	for deadline := time.Now().Add(20 * time.Second); ; {
		got = readCollectorExport(t, c.ExportPath())
		missing = missing[:0]
		for _, ln := range lines {
			if _, ok := got[ln.Seq]; !ok {
				missing = append(missing, ln.Seq)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within 20s: %d of %d seqs missing from the collector's export: %v; %+v", len(missing), len(lines), missing, b.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := got[lines[1].Seq]
	if r.body != "credential denied" || r.sev != 13 || r.sevText != "WARN" || r.event != "audit.credential_access" ||
		r.service != "slogaudit-test" || r.traceID != tid.String() || r.spanID != sid.String() ||
		r.attrs["principal.id"] != "alice" || r.attrs["principal.roles"] != "2" || r.attrs["status"] != "denied" ||
		r.attrs[ChainKey] != hex.EncodeToString(lines[1].MAC[:]) {
		t.Errorf("record through the collector: %+v", r)
	}
	if got[lines[0].Seq].event != EventFileOpen || got[lines[len(lines)-1].Seq].event != EventFileClose {
		t.Errorf("open/close records: %+v / %+v", got[lines[0].Seq], got[lines[len(lines)-1].Seq])
	}
	t.Logf("%d lines all exported through the collector; %+v", len(lines), b.Stats())
}

// oldLogsConfig is the logs pipeline deploy/otel/collector.yaml had before
// it queued on disk: the batch processor, which answers the receiver at once
// and holds its batch in memory, then the exporter's default sending queue,
// also in memory.
const oldLogsConfig = `receivers:
  otlp:
    protocols:
      http:
        endpoint: ${env:` + testpeers.EnvOTLPHTTPEndpoint + `}
processors:
  batch:
    timeout: 1s
exporters:
  otlp_http/logs:
    endpoint: ${env:LOGS_OTLP_ENDPOINT}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlp_http/logs]
`

// The bridge counts a record delivered when the collector answers, and
// never sends it again. With the compose stack's config
// (deploy/otel/collector.yaml: no batch processor, the logs exporter's
// queue in file_storage) a collector killed with SIGKILL after answering
// loses nothing: after a restart on the same storage directory it delivers
// every record it had acknowledged. With the old shape (batch processor,
// queue in memory) the same crash loses every one of them.
//
// Downstream is an OTLP/HTTP receiver that answers 503 until the collector
// has been killed, so nothing can have left the collector before the crash:
// whatever arrives afterwards came from its storage.
func TestCollectorCrashAfterAck(t *testing.T) {
	const n = 5000
	t.Run("deploy config: persistent queue", func(t *testing.T) {
		got, want, d := crashAfterAck(t, true, n)
		if missing := missingSeqs(got, want); len(missing) > 0 {
			t.Fatalf("%d of %d acknowledged seqs lost in the crash, e.g. %v", len(missing), len(want), missing[:min(5, len(missing))])
		}
		t.Logf("%d records acknowledged, collector SIGKILLed and restarted: all %d arrived downstream %s after the kill", len(want), len(want), d.Round(time.Millisecond))
	})
	t.Run("old config: batch processor, memory queue", func(t *testing.T) {
		got, want, _ := crashAfterAck(t, false, n)
		missing := missingSeqs(got, want)
		if len(missing) != len(want) {
			t.Fatalf("%d of %d acknowledged seqs lost; the old config was expected to lose all", len(missing), len(want))
		}
		t.Logf("old config: %d of %d acknowledged records lost in the crash (the bridge will not resend them)", len(missing), len(want))
	})
}

// crashAfterAck writes n audit records through a bridge to the collector
// (deploy config or oldLogsConfig) while downstream answers 503, waits until
// the bridge's cursor is at the end (the collector acknowledged all) and
// downstream has refused a request, kills the collector with SIGKILL,
// restarts it on the same storage directory, brings downstream up and
// writes one more record (the sentinel). It returns the seqs downstream
// received once the sentinel arrived (for the deploy config: once every seq
// arrived, or after 60 s), the seqs acknowledged before the crash, and the
// time from the kill to that point.
func crashAfterAck(t *testing.T, deploy bool, n int) (got map[int64]int, acked []uint64, d time.Duration) {
	down := newReceiver(t)
	down.setStatus(http.StatusServiceUnavailable)
	env := map[string]string{"LOGS_OTLP_ENDPOINT": down.endpoint(), "TRACES_OTLP_ENDPOINT": down.endpoint()}
	var c *testpeers.Collector
	if deploy {
		env[testpeers.EnvStorageDir] = t.TempDir()
		c = testpeers.DeployCollector(t, env)
	} else {
		c = testpeers.StartCollector(t, oldLogsConfig, env)
	}
	dir := t.TempDir()
	b := newTestBridge(t, dir, c.OTLPHTTPURL)
	h := newTestHandler(t, dir, b)

	writeRecords(t, h, n, "before the crash")
	lines := fileLines(t, dir)
	last := lines[len(lines)-1].Seq
	eventually(t, 30*time.Second, "the collector acknowledged every record", func() bool { return b.Stats().Cursor >= last })
	eventually(t, 30*time.Second, "the collector tried downstream", func() bool {
		down.mu.Lock()
		defer down.mu.Unlock()
		return down.requests > 0
	})
	if recs, _ := down.counts(); recs != 0 {
		t.Fatalf("downstream accepted %d records while answering 503", recs)
	}
	for _, ln := range lines {
		acked = append(acked, ln.Seq)
	}

	killed := time.Now()
	c.Kill()
	c.Restart()
	down.setStatus(http.StatusOK)
	writeRecords(t, h, 1, "sentinel")
	sentinel := last + 1
	eventually(t, 60*time.Second, "the sentinel record arrived downstream", func() bool { return len(down.missing([]uint64{sentinel})) == 0 })
	if deploy {
		deadline := time.Now().Add(60 * time.Second)
		for len(down.missing(acked)) > 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	d = time.Since(killed)
	down.mu.Lock()
	got = maps.Clone(down.seqs)
	down.mu.Unlock()
	return got, acked, d
}

func missingSeqs(got map[int64]int, want []uint64) []uint64 {
	var out []uint64
	for _, s := range want {
		if got[int64(s)] == 0 {
			out = append(out, s)
		}
	}
	return out
}
