package otelbridge

// Soundness checks from the review of branch review-bridge: the areas the
// review found sound stay so.

import (
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	collogpb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/protobuf/proto"

	"github.com/slogaudit/slogaudit/chain"
)

func chaosBridge(t *testing.T, dir, endpoint string, timeout time.Duration, opts ...Option) *Bridge {
	exp, err := otlploghttp.New(context.Background(),
		otlploghttp.WithEndpointURL(endpoint+"/v1/logs"),
		otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}),
		otlploghttp.WithTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	all := append([]Option{WithDir(dir), WithBatch(100, 5*time.Millisecond), withBackoff(time.Millisecond, 20*time.Millisecond)}, opts...)
	b, err := New(exp, all...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every kind of misbehaviour in turn; every line arrives with its own chain
// value, no foreign record arrives, counters add up.
func TestSoundChaosReceiver(t *testing.T) {
	var n atomic.Int64
	var r *receiver
	r = newGatedReceiver(t, func(w http.ResponseWriter, req *http.Request) bool {
		switch n.Add(1) % 9 {
		case 1:
			io.Copy(io.Discard, req.Body)
			http.Error(w, "x", http.StatusServiceUnavailable)
		case 2:
			io.Copy(io.Discard, req.Body)
			w.Header().Set("Retry-After", "0")
			http.Error(w, "x", http.StatusTooManyRequests)
		case 3: // reset mid-body
			buf := make([]byte, 100)
			io.ReadFull(req.Body, buf)
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.(interface{ SetLinger(int) error }).SetLinger(0)
			c.Close()
		case 4: // store, then hang past the client timeout
			r.serve(httptest.NewRecorder(), req)
			time.Sleep(300 * time.Millisecond)
		case 5: // store, answer 503
			r.serve(httptest.NewRecorder(), req)
			http.Error(w, "x", http.StatusBadGateway)
		case 6: // partial success with nothing rejected (a warning)
			rec := httptest.NewRecorder()
			r.serve(rec, req)
			out, _ := proto.Marshal(&collogpb.ExportLogsServiceResponse{PartialSuccess: &collogpb.ExportLogsPartialSuccess{ErrorMessage: "warn"}})
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(out)
		default:
			return false
		}
		return true
	})
	dir := t.TempDir()
	mp := &countingMeterProvider{}
	b := chaosBridge(t, dir, r.endpoint(), 100*time.Millisecond, WithQueueSize(32<<10), WithMeterProvider(mp))
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 3000, "chaos")
	h.Close()
	if err := shutdown(t, b, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	lines := fileLines(t, dir)
	got := r.receivedChains()
	file := map[int64]string{}
	for _, ln := range lines {
		c := hex.EncodeToString(ln.MAC[:])
		file[int64(ln.Seq)] = c
		if !got[int64(ln.Seq)][c] {
			t.Errorf("seq %d missing", ln.Seq)
		}
	}
	for s, cs := range got {
		if len(cs) != 1 || !cs[file[s]] {
			t.Errorf("seq %d: chains %v", s, cs)
		}
	}
	st := b.Stats()
	t.Logf("%d lines; %+v; requests %d", len(lines), st, n.Load())
	for name, v := range map[string]uint64{"exported": st.Exported, "replayed": st.Replayed, "dropped": st.Dropped, "export_failures": st.ExportFailures, "skipped": st.Skipped} {
		if mp.get("slogaudit.otlp."+name) != int64(v) {
			t.Errorf("metric %s %d, Stats %d", name, mp.get("slogaudit.otlp."+name), v)
		}
	}
	if st.Cursor != lines[len(lines)-1].Seq || st.Skipped != 0 || st.Exported < uint64(len(lines)) || st.Replayed < st.Dropped {
		t.Errorf("stats %+v", st)
	}
	if seq, _, _ := readCursor(cursorPath(dir, chain.DefaultPrefix)); seq != st.Cursor {
		t.Errorf("cursor file %d", seq)
	}
}

// Shutdown against a receiver that accepts connections and never answers
// returns by its deadline; the cursor file stays where the acknowledgements
// were.
func TestSoundShutdownHungReceiver(t *testing.T) {
	var hang atomic.Bool
	block := make(chan struct{})
	t.Cleanup(func() { close(block) })
	r := newGatedReceiver(t, func(w http.ResponseWriter, req *http.Request) bool {
		if hang.Load() {
			<-block
			return true
		}
		return false
	})
	dir := t.TempDir()
	b := chaosBridge(t, dir, r.endpoint(), time.Hour)
	h := newTestHandler(t, dir, b)
	writeRecords(t, h, 200, "a")
	eventually(t, 5*time.Second, "acked", func() bool { return b.Stats().Cursor >= 200 })
	hang.Store(true)
	writeRecords(t, h, 200, "b")
	h.Close()
	start := time.Now()
	err := shutdown(t, b, 300*time.Millisecond)
	if d := time.Since(start); d > time.Second || err == nil {
		t.Errorf("Shutdown took %v: %v", d, err)
	}
	seq, _, _ := readCursor(cursorPath(dir, chain.DefaultPrefix))
	var want []uint64
	for s := uint64(1); s <= seq; s++ {
		want = append(want, s)
	}
	if miss := r.missing(want); len(miss) != 0 || seq != b.Stats().Cursor {
		t.Errorf("cursor %d (stats %d) claims %v", seq, b.Stats().Cursor, miss)
	}
	if err := shutdown(t, b, time.Second); err == nil {
		t.Errorf("second Shutdown: nil")
	}
}

// A process killed right after an acknowledged export, before any cursor
// write: the next one sends everything again, same seq and chain.
func TestSoundKilledBeforeCursorWrite(t *testing.T) {
	r := newReceiver(t)
	dir := writtenTrail(t, 700)
	var calls atomic.Int32
	freeze := make(chan struct{})
	exp, _ := otlploghttp.New(context.Background(), otlploghttp.WithEndpointURL(r.endpoint()+"/v1/logs"), otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}))
	killed := &killExporter{Exporter: exp, after: 3, calls: &calls, freeze: freeze}
	b1, err := New(killed, WithDir(dir), WithBatch(100, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	// Abandoned ("killed"); at the end it is let go and stopped, so that
	// it does not write its cursor while the directory is removed.
	t.Cleanup(func() {
		close(freeze)
		shutdown(t, b1, 5*time.Second)
	})
	eventually(t, 5*time.Second, "three exports acknowledged by the receiver", func() bool { return calls.Load() >= 3 })
	if _, err := os.Stat(cursorPath(dir, chain.DefaultPrefix)); err == nil {
		seq, _, _ := readCursor(cursorPath(dir, chain.DefaultPrefix))
		t.Logf("cursor file at %d", seq)
	}
	b2 := chaosBridge(t, dir, r.endpoint(), time.Second)
	if err := shutdown(t, b2, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, r, dir, time.Second)
}

type killExporter struct {
	sdklog.Exporter
	after  int32
	calls  *atomic.Int32
	freeze chan struct{}
}

// Export exports, and from the after-th call on never returns: the process
// died between the acknowledgement and the cursor.
func (k *killExporter) Export(ctx context.Context, recs []sdklog.Record) error {
	err := k.Exporter.Export(ctx, recs)
	if k.calls.Add(1) >= k.after {
		<-k.freeze
	}
	return err
}

// A cursor pointing into a compressed file resumes right after it.
func TestSoundCursorInGzip(t *testing.T) {
	r := newReceiver(t)
	dir := writtenTrail(t, 2500)
	files := fileListing(t, dir)
	if len(files) < 3 || files[1][len(files[1])-3:] != ".gz" {
		t.Fatalf("%v", files)
	}
	second := fileLinesOf(t, files[1])
	c := second[len(second)/2]
	if err := writeCursor(cursorPath(dir, chain.DefaultPrefix), c.Seq, c.MAC); err != nil {
		t.Fatal(err)
	}
	b := newTestBridge(t, dir, r.endpoint())
	if err := shutdown(t, b, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	lines := fileLines(t, dir)
	var want []uint64
	for _, l := range lines {
		if l.Seq > c.Seq {
			want = append(want, l.Seq)
		}
	}
	if miss := r.missing(want); len(miss) > 0 || b.Stats().Exported != uint64(len(want)) || b.Stats().Skipped != 0 {
		t.Errorf("missing %v; %+v; want %d", miss, b.Stats(), len(want))
	}
}

// The receiver goes down and up repeatedly (connection refused) while
// records flow: everything arrives.
func TestSoundFlappingReceiver(t *testing.T) {
	r := newReceiver(t)
	dir := t.TempDir()
	b := chaosBridge(t, dir, r.endpoint(), time.Second, WithQueueSize(64<<10))
	h := newTestHandler(t, dir, b)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		up := true
		for i := 0; ; i++ {
			select {
			case <-stop:
				if !up {
					r.start()
				}
				return
			case <-time.After(15 * time.Millisecond):
			}
			if up {
				r.stop()
			} else {
				r.start()
			}
			up = !up
		}
	}()
	for range 5 {
		writeRecords(t, h, 600, "flap")
	}
	close(stop)
	<-done
	h.Close()
	if err := shutdown(t, b, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	waitDelivered(t, r, dir, time.Second)
	t.Logf("%+v", b.Stats())
}

// Damaged cursors: truncated, garbage, past the end — everything is
// exported again (duplicates, never a gap).
func TestSoundDamagedCursor(t *testing.T) {
	for name, content := range map[string]string{
		"truncated": "v1 12",
		"garbage":   "\x00\x00\x00",
		"empty":     "",
		"pastEnd":   "v1 999999 " + hex.EncodeToString(make([]byte, 32)) + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			r := newReceiver(t)
			dir := writtenTrail(t, 300)
			os.WriteFile(cursorPath(dir, chain.DefaultPrefix), []byte(content), 0o600)
			b := newTestBridge(t, dir, r.endpoint())
			if err := shutdown(t, b, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			waitDelivered(t, r, dir, time.Second)
		})
	}
}
