package otelbridge

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"

	"github.com/slogaudit/slogaudit/chain"
)

// reports collects what a bridge reports through WithOnStall and
// WithOnChainMismatch.
type reports struct {
	mu         sync.Mutex
	stalls     []Stall
	mismatches []ChainMismatch
}

func (r *reports) options() []Option {
	return []Option{
		WithOnStall(func(s Stall) { r.mu.Lock(); r.stalls = append(r.stalls, s); r.mu.Unlock() }),
		WithOnChainMismatch(func(m ChainMismatch) { r.mu.Lock(); r.mismatches = append(r.mismatches, m); r.mu.Unlock() }),
	}
}

func (r *reports) get() ([]Stall, []ChainMismatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slicesClone(r.stalls), slicesClone(r.mismatches)
}

func slicesClone[T any](s []T) []T { return append([]T(nil), s...) }

// A collector that fails for longer than the threshold is reported once,
// with the records waiting and the last error (no credential of the
// endpoint URL in it); its recovery is reported once too.
func TestStallReportedAndRecovery(t *testing.T) {
	r := newReceiver(t)
	// Refusing every request (a wrong key, say): otlploghttp's error then
	// quotes the URL, which a 503's does not.
	r.setStatus(http.StatusUnauthorized)
	dir := t.TempDir()
	var rep reports
	const threshold = 200 * time.Millisecond
	// Credentials in the endpoint URL. (otlploghttp leaves them out of the
	// URL its errors quote; another exporter may not: TestRedactURLs.)
	endpoint := strings.Replace(r.endpoint(), "://", "://auditor:s3cret@", 1) + "/v1/logs?api_key=s3cret"
	exp, err := otlploghttp.New(context.Background(), otlploghttp.WithEndpointURL(endpoint),
		otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}), otlploghttp.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(exp, append(rep.options(), WithDir(dir), WithStallThreshold(threshold),
		WithBatch(256, 20*time.Millisecond), withBackoff(10*time.Millisecond, 50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shutdown(t, b, 5*time.Second) })
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 10, "outage") // seqs 1 (open) to 11

	eventually(t, 10*time.Second, "the stall reported", func() bool { s, _ := rep.get(); return len(s) > 0 })
	stalls, _ := rep.get()
	s := stalls[0]
	if s.Recovered || s.Since.IsZero() || s.At.Sub(s.Since) < threshold {
		t.Errorf("stall report %+v: want not recovered, at least %v after Since", s, threshold)
	}
	if s.PendingFrom != 1 || s.PendingTo < 11 || s.Pending() != s.PendingTo {
		t.Errorf("stall report: pending %d to %d (%d), want 1 to at least 11", s.PendingFrom, s.PendingTo, s.Pending())
	}
	if s.Failures == 0 || !strings.Contains(s.LastError, "/v1/logs: 401 Unauthorized") || strings.Contains(s.LastError, "s3cret") || strings.Contains(s.LastError, "auditor") {
		t.Errorf("stall report: %d failures, last error %q: want the 401 and no credential", s.Failures, s.LastError)
	}
	t.Logf("stall: %+v", s)

	r.setStatus(http.StatusOK) // back
	eventually(t, 10*time.Second, "the recovery reported", func() bool { s, _ := rep.get(); return len(s) > 1 })
	waitDelivered(t, r, dir, 10*time.Second)
	writeRecords(t, h, 10, "after") // acknowledged at once: nothing more to report
	eventually(t, 10*time.Second, "the later records exported", func() bool { return len(r.missing(seqsOf(fileLines(t, dir)))) == 0 })
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := shutdown(t, b, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	stalls, _ = rep.get()
	if len(stalls) != 2 {
		t.Fatalf("%d reports, want the stall and the recovery: %+v", len(stalls), stalls)
	}
	rec := stalls[1]
	if !rec.Recovered || !rec.Since.Equal(s.Since) || rec.PendingFrom != 1 || rec.PendingTo < 11 || rec.Failures < s.Failures || rec.At.Before(s.At) {
		t.Errorf("recovery report %+v after the stall %+v", rec, s)
	}
	if !strings.Contains(rec.LastError, "401") || strings.Contains(rec.LastError, "s3cret") {
		t.Errorf("recovery report: last error %q", rec.LastError)
	}
}

// Failures shorter than the threshold are not reported, nor is their end.
func TestNoStallBelowThreshold(t *testing.T) {
	r := newReceiver(t)
	r.setStatus(http.StatusServiceUnavailable)
	dir := t.TempDir()
	var rep reports
	b := newTestBridge(t, dir, r.endpoint(), append(rep.options(), WithStallThreshold(time.Hour))...)
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 10, "blip")
	eventually(t, 10*time.Second, "failed exports", func() bool { return b.Stats().ExportFailures >= 3 })
	r.setStatus(http.StatusOK)
	waitDelivered(t, r, dir, 10*time.Second)
	h.Close()
	if err := shutdown(t, b, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if stalls, _ := rep.get(); len(stalls) != 0 {
		t.Errorf("reports for failures below the threshold: %+v", stalls)
	}
}

// A stall is reported on time also while the bridge waits for its next
// attempt (a long backoff here; a collector's Retry-After may ask for up to
// 10 minutes).
func TestStallReportedBetweenAttempts(t *testing.T) {
	srv := newReceiver(t)
	srv.setStatus(http.StatusServiceUnavailable)
	dir := t.TempDir()
	var rep reports
	b := newTestBridge(t, dir, srv.endpoint(), append(rep.options(),
		WithStallThreshold(150*time.Millisecond), withBackoff(time.Hour, time.Hour))...)
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 3, "x")
	eventually(t, 10*time.Second, "the stall reported before the next attempt", func() bool { s, _ := rep.get(); return len(s) == 1 })
	if st := b.Stats(); st.ExportFailures != 1 {
		t.Errorf("%d failed attempts: the report should not wait for the next one", st.ExportFailures)
	}
	shutdown(t, b, 10*time.Millisecond) // not the hour's backoff
}

// A record read back from the files that does not follow the record
// exported before it (the files changed after the bridge read them) is
// reported to WithOnChainMismatch, besides the OTel error handler.
func TestChainMismatchReported(t *testing.T) {
	r := newReceiver(t)
	dir := writtenTrail(t, 20)
	lines := fileLines(t, dir)
	// The cursor names record 10 as exported, with its real chain value...
	if err := writeCursor(cursorPath(dir, chain.DefaultPrefix), 10, lines[9].MAC); err != nil {
		t.Fatal(err)
	}
	// ... and record 11 no longer follows it.
	files := fileListing(t, dir)
	if len(files) != 1 {
		t.Fatalf("files %v", files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf(`{"seq":11,"prev":"%s"`, hex.EncodeToString(lines[9].MAC[:]))
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("no %s in the file", old)
	}
	data = bytes.Replace(data, []byte(old), []byte(fmt.Sprintf(`{"seq":11,"prev":"%s"`, strings.Repeat("ab", 32))), 1)
	if err := os.WriteFile(files[0], data, 0o600); err != nil {
		t.Fatal(err)
	}
	var rep reports
	b := newTestBridge(t, dir, r.endpoint(), rep.options()...)
	eventually(t, 10*time.Second, "records 11 on exported (1 to 10 are before the cursor)", func() bool {
		return len(r.missing(seqsOf(lines[10:]))) == 0
	})
	if err := shutdown(t, b, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	_, ms := rep.get()
	if len(ms) != 1 || ms[0].Seq != 11 || ms[0].Prev != 10 || ms[0].File != files[0] || ms[0].At.IsZero() {
		t.Fatalf("mismatch reports %+v, want one for 11 after 10 in %s", ms, files[0])
	}
	if otelErrorsContaining(ms[0].Error()) == 0 {
		t.Errorf("not reported to the OTel error handler: %q", ms[0].Error())
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		`failed to send logs to https://user:s3cret@collector:4318/v1/logs?api_key=s3cret: 503 Service Unavailable`: `failed to send logs to https://collector:4318/v1/logs?REDACTED: 503 Service Unavailable`,
		`Post "http://tok3n@h:1/v1/logs#frag": dial tcp 127.0.0.1:1: connect: connection refused`:                   `Post "http://h:1/v1/logs": dial tcp 127.0.0.1:1: connect: connection refused`,
		`failed to send logs to http://[::1:4318/v1/logs: x`:                                                        `failed to send logs to [URL not shown]: x`,
		`no URL here: 127.0.0.1:4318`: `no URL here: 127.0.0.1:4318`,
	} {
		if got := redactURLs(in); got != want {
			t.Errorf("redactURLs(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}
