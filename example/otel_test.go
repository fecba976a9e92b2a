package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/internal/testpeers"
	"github.com/slogaudit/slogaudit/otelbridge"
)

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// The example exports to the real collector, which sends logs to
// VictoriaLogs (the Loki stand-in) and traces to Jaeger: the audit records
// of a request sent with a known traceparent are, in VictoriaLogs, exactly
// those in the local file; Jaeger has the trace; no credential value passes.
func TestExampleExportsThroughCollector(t *testing.T) {
	vl := testpeers.StartVictoriaLogs(t)
	jg := testpeers.StartJaeger(t)
	col := testpeers.DeployCollector(t, map[string]string{
		"LOGS_OTLP_ENDPOINT":   vl.URL + "/insert/opentelemetry",
		"TRACES_OTLP_ENDPOINT": jg.OTLPHTTPURL,
		"DEBUG_VERBOSITY":      "detailed",
	})
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "audit-logs")
	p := startEnv(t, map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": col.OTLPHTTPURL,
		"OTEL_SERVICE_NAME":           "example-e2e",
		"OTEL_BSP_SCHEDULE_DELAY":     "100",
	}, "-audit-dir", dir, "-key-file", filepath.Join(tmp, "k"), "-sync", "none")
	if !strings.Contains(p.stdout.String(), "OTLP export: on") {
		t.Fatalf("export not enabled:\n%s", p.stdout)
	}
	traceID := randomHex(16)
	for _, c := range []struct{ method, path, body, token string }{
		{"POST", "/servers/obsidian/start", "", p.token},
		{"PUT", "/credentials/obsidian_api_key", secret, p.admin},
		{"GET", "/credentials/obsidian_api_key", "", p.token},
	} {
		req, _ := http.NewRequest(c.method, p.base+c.path, strings.NewReader(c.body))
		req.Header.Set("traceparent", "00-"+traceID+"-"+randomHex(8)+"-01")
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	p.do(t, "POST", "/servers/other/start", "") // another trace
	p.stop(t)

	var want []string
	for _, e := range events(t, dir) {
		if e["trace_id"] == traceID {
			want = append(want, strconv.FormatFloat(e["seq"].(float64), 'f', -1, 64))
		}
	}
	if len(want) != 7 { // start initiated+success, create, get, 3 activity records
		t.Fatalf("%d local records with the trace id", len(want))
	}
	rows := vl.WaitQuery(t, "trace_id:"+traceID, len(want), 60*time.Second)
	var got []string
	for _, r := range rows {
		got = append(got, r["audit.seq"])
	}
	if !sameSet(got, want) {
		t.Errorf("VictoriaLogs has seqs %v for the trace, the file %v", got, want)
	}
	if body := jg.Trace(t, traceID, 60*time.Second); !strings.Contains(string(body), traceID) {
		t.Errorf("Jaeger trace: %s", body)
	}
	all := vl.Query(t, "*")
	raw, _ := json.Marshal(all)
	colLog, _ := os.ReadFile(col.LogPath)
	if strings.Contains(string(raw), secret) || strings.Contains(string(colLog), secret) {
		t.Error("credential value reached the collector or VictoriaLogs")
	}
	if !strings.Contains(string(colLog), "obsidian_api_key") {
		t.Error("collector debug output lacks the records")
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

// exportedSeqs reads the audit.seq of every log record in the collector's
// file exporter output (OTLP JSON, one request per line).
func exportedSeqs(t *testing.T, path string) map[int64]bool {
	t.Helper()
	seqs := map[int64]bool{}
	f, err := os.Open(path)
	if err != nil {
		return seqs
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var req struct {
			ResourceLogs []struct {
				ScopeLogs []struct {
					LogRecords []struct {
						Attributes []struct {
							Key   string `json:"key"`
							Value struct {
								IntValue string `json:"intValue"`
							} `json:"value"`
						} `json:"attributes"`
					} `json:"logRecords"`
				} `json:"scopeLogs"`
			} `json:"resourceLogs"`
		}
		if json.Unmarshal(sc.Bytes(), &req) != nil {
			continue // a line being written
		}
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					for _, a := range lr.Attributes {
						if a.Key == "audit.seq" {
							n, _ := strconv.ParseInt(a.Value.IntValue, 10, 64)
							seqs[n] = true
						}
					}
				}
			}
		}
	}
	return seqs
}

// writeRecords sends start requests until the audit file holds n more
// records (three per request: initiated, success, activity).
func writeRecords(t *testing.T, p *proc, n int) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				req, _ := http.NewRequest("POST", fmt.Sprintf("%s/servers/s%d/start", p.base, i), nil)
				req.Header.Set("Authorization", "Bearer "+p.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			}
		}()
	}
	for i := range (n + 2) / 3 {
		work <- i
	}
	close(work)
	wg.Wait()
}

// With the collector down, the audit records pile up only in the file; once
// it is back every seq arrives — also when the example restarts meanwhile.
func TestExampleOutageLosesNothing(t *testing.T) {
	col := testpeers.StartCollector(t, testpeers.CollectorConfig(testpeers.CollectorOptions{}), nil)
	col.Stop()
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "k")
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": col.OTLPHTTPURL, "OTEL_SERVICE_NAME": "example-outage"}
	args := []string{"-audit-dir", dir, "-key-file", keyFile, "-sync", "none", "-rotate-bytes", "262144"}

	p := startEnv(t, env, args...)
	writeRecords(t, p, 3000)
	p.stop(t) // mid-outage: the cursor stays behind
	p = startEnv(t, env, args...)
	writeRecords(t, p, 2000)

	col.Restart()
	key, _ := readKey(keyFile + ".initial")
	testpeers.Eventually(t, 90*time.Second, "the collector has every seq", func() error {
		last := verifyDir(t, dir, key).LastSeq
		seqs := exportedSeqs(t, col.ExportPath())
		var missing []uint64
		for s := uint64(1); s <= last; s++ {
			if !seqs[int64(s)] {
				missing = append(missing, s)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%d of %d seqs missing, e.g. %v", len(missing), last, missing[:min(5, len(missing))])
		}
		if last < 5000 {
			return fmt.Errorf("only %d records written", last)
		}
		return nil
	})
	p.stop(t)
}

func readKey(path string) ([]byte, error) { return chain.ReadKeyFile(path) }

// The compose stack's collector config is valid for the real collector, with
// its defaults and with every endpoint overridden; a broken copy is not (so
// validation really looks).
func TestDeployCollectorConfigValidates(t *testing.T) {
	const path = "../deploy/otel/collector.yaml"
	if err := testpeers.Validate(t, path, nil); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"OTLP_HTTP_LISTEN":     "127.0.0.1:14318",
		"OTLP_GRPC_LISTEN":     "127.0.0.1:14317",
		"LOGS_OTLP_ENDPOINT":   "http://127.0.0.1:9428/insert/opentelemetry",
		"TRACES_OTLP_ENDPOINT": "http://127.0.0.1:4318",
		"DEBUG_VERBOSITY":      "detailed",
		"OTELCOL_STORAGE_DIR":  t.TempDir(),
	}
	if err := testpeers.Validate(t, path, env); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	broken := filepath.Join(t.TempDir(), "broken.yaml")
	os.WriteFile(broken, []byte(strings.Replace(string(data), "exporters: [otlp_http/logs, debug]", "exporters: [otlp_http/logz, debug]", 1)), 0o600)
	if err := testpeers.Validate(t, broken, nil); err == nil {
		t.Error("a pipeline naming an undefined exporter validated")
	}
}

// A collector that acknowledges nothing for -otlp-stall-after is an audit
// event (audit_export failed stalled, naming the collector by host:port and
// the seqs waiting), and its return another (success recovered), each
// once. The collector here is a stand-in that answers 503, then 200.
func TestExampleRecordsExportStall(t *testing.T) {
	var up atomic.Bool
	var requests atomic.Int64
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		requests.Add(1)
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK) // an empty ExportLogsServiceResponse: all accepted
	}))
	defer col.Close()
	u, _ := url.Parse(col.URL)
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "audit-logs")
	p := startEnv(t, map[string]string{
		// user:password in the URL: not in the records.
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://auditor:" + secret + "@" + u.Host,
	}, "-audit-dir", dir, "-key-file", filepath.Join(tmp, "k"), "-sync", "none", "-otlp-stall-after", "300ms")
	p.do(t, "POST", "/servers/obsidian/start", "")

	exportEvents := func() (failed, recovered []map[string]any) {
		for _, line := range strings.Split(auditText(t, dir), "\n") {
			m := map[string]any{}
			if json.Unmarshal([]byte(line), &m) != nil || m["event"] != "audit_export" {
				continue // also a line being written
			}
			switch {
			case m["status"] == "failed" && m["reason"] == "stalled":
				failed = append(failed, m)
			case m["status"] == "success" && m["reason"] == "recovered":
				recovered = append(recovered, m)
			default:
				t.Errorf("audit_export record %v", m)
			}
		}
		return failed, recovered
	}
	testpeers.Eventually(t, 20*time.Second, "an audit_export stalled record", func() error {
		if f, _ := exportEvents(); len(f) == 0 {
			return fmt.Errorf("none yet (%d requests to the collector)", requests.Load())
		}
		return nil
	})
	up.Store(true)
	testpeers.Eventually(t, 30*time.Second, "an audit_export recovered record", func() error {
		if _, r := exportEvents(); len(r) == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	p.do(t, "POST", "/servers/other/start", "") // exported at once: no more reports
	p.stop(t)

	failed, recovered := exportEvents()
	if len(failed) != 1 || len(recovered) != 1 {
		t.Fatalf("%d stalled and %d recovered records, want one each", len(failed), len(recovered))
	}
	for _, m := range []map[string]any{failed[0], recovered[0]} {
		if m["action"] != "export" || m["resource_type"] != "collector" || m["resource"] != u.Host {
			t.Errorf("record %v: want action export, resource_type collector, resource %s", m, u.Host)
		}
		from, _ := m["pending_from"].(float64)
		to, _ := m["pending_to"].(float64)
		if from != 1 || to < from {
			t.Errorf("record %v: pending %v to %v, want from 1 (nothing was ever acknowledged)", m, from, to)
		}
		if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["since"])); err != nil {
			t.Errorf("record %v: since: %v", m, err)
		}
	}
	if failed[0]["since"] != recovered[0]["since"] {
		t.Errorf("since %v, then %v: the same stall", failed[0]["since"], recovered[0]["since"])
	}
	if text := dirText(t, dir); strings.Contains(text, secret) || strings.Contains(text, "auditor:") {
		t.Error("the endpoint's credentials reached the audit directory")
	}
}

// The bridge's hint that the files changed after it read them is a failed
// chain verification in the trail; before the trail is open, or after it
// closed, it goes to stderr.
func TestExportHealthMismatch(t *testing.T) {
	dir := t.TempDir()
	var stderr syncBuffer
	x := &exportHealth{collector: "collector:4318", stderr: &stderr}
	m := otelbridge.ChainMismatch{Seq: 11, Prev: 10, File: filepath.Join(dir, "audit-x.jsonl"), At: time.Now()}
	x.mismatch(m) // no handler yet
	if !strings.Contains(stderr.String(), "AUDIT FAILURE") || !strings.Contains(stderr.String(), "record 11") {
		t.Errorf("stderr %q", stderr.String())
	}
	h, err := handler.New(handler.Options{Dir: dir, App: slog.NewJSONHandler(io.Discard, nil)})
	if err != nil {
		t.Fatal(err)
	}
	x.h.Store(h)
	x.mismatch(m)
	h.Close()
	var found int
	for _, e := range events(t, dir) {
		if e["event"] == "chain_verification" {
			found++
			if e["status"] != "failed" || !strings.Contains(fmt.Sprint(e["error"]), "does not follow the record exported as 10") ||
				!strings.Contains(fmt.Sprint(e["detail"]), "record 11 of audit-x.jsonl") {
				t.Errorf("record %v", e)
			}
		}
	}
	if found != 1 {
		t.Errorf("%d chain_verification records, want 1", found)
	}
}
