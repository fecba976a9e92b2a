package handler_test

// Regressions the review of session 5's diff found, each fixed.

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/rotate"
)

// blockingFS: while armed, the next Write signals entered, waits for
// release and fails with ENOSPC.
type blockingFS struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
}

type blockingFile struct {
	*os.File
	fs *blockingFS
}

func (f blockingFile) Write(p []byte) (int, error) {
	if f.fs.armed.CompareAndSwap(true, false) {
		close(f.fs.entered)
		<-f.fs.release
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (fs *blockingFS) open(name string, flag int, perm os.FileMode) (rotate.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return blockingFile{f, fs}, nil
}

// A record whose write is in flight when Close starts, and fails, is put
// on record before the close record: Close waits for writes in flight.
func TestOutageLostWhenWriteInFlightAtClose(t *testing.T) {
	dir := t.TempDir()
	fs := &blockingFS{entered: make(chan struct{}), release: make(chan struct{})}
	var nerr atomic.Int32
	h := probeHandler(t, dir, handler.Options{Rotate: rotate.Options{OpenFile: fs.open}, OnError: func(error) { nerr.Add(1) }})
	l := slog.New(h)
	l.Info("before", handler.Audit, "event", "x")
	fs.armed.Store(true)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		l.Info("lost", handler.Audit, "event", "x")
	}()
	<-fs.entered
	closed := make(chan error)
	go func() { closed <- h.Close() }()
	time.Sleep(200 * time.Millisecond) // Close is past its outage check, waiting for the writer
	close(fs.release)
	<-logged
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if nerr.Load() == 0 {
		t.Fatal("the write did not fail")
	}
	lines := auditLines(t, dir)
	for _, l := range lines {
		if strings.Contains(l, `"event":"audit_outage"`) {
			return
		}
	}
	t.Errorf("a record lost at Close is not on record (README: records lost with nothing written after them are put on record at Close):\n%s", strings.Join(lines, "\n"))
}

// alertProbe returns a handler whose one rule fires on every audit event
// with event=credential_access, and the alerts it raised.
func alertProbe(t *testing.T, dir string) (*handler.Handler, *atomic.Int32) {
	var fired atomic.Int32
	h := probeHandler(t, dir, handler.Options{Alerts: &handler.AlertOptions{
		Rules: []handler.AlertRule{{ID: "probe", Match: []handler.AlertMatch{{Event: []string{"credential_access"}}},
			By: handler.ByAll, Window: time.Hour, Threshold: 1, Severity: slog.LevelWarn}},
		OnAlert: func(handler.Alert) { fired.Add(1) },
	}})
	return h, &fired
}

func fileEvent(t *testing.T, dir string) string {
	t.Helper()
	recs := recordLines(t, dir)
	var m map[string]any
	if err := json.Unmarshal([]byte(recs[0]), &m); err != nil {
		t.Fatal(err)
	}
	s, _ := m["event"].(string)
	return s
}

// An attribute the file elides (an empty group) does not take the name for
// the alert rules either: they read what the line holds.
func TestAlertSeesElidedWithAttr(t *testing.T) {
	dir := t.TempDir()
	h, fired := alertProbe(t, dir)
	l := slog.New(h).With(slog.Group("event")) // elided, as slog does
	l.Info("read", handler.Audit, "event", "credential_access")
	if ev := fileEvent(t, dir); ev != "credential_access" {
		t.Fatalf("file event %q", ev)
	}
	if fired.Load() != 1 {
		t.Errorf("the file holds event=credential_access, the rule did not see it (alerts: %d)", fired.Load())
	}
}

// Same, with an attribute inlined from a group with an empty key: the
// inlined member holds the top-level name, for the file and the rules.
func TestAlertSeesInlinedMember(t *testing.T) {
	dir := t.TempDir()
	h, fired := alertProbe(t, dir)
	slog.New(h).Info("read", handler.Audit, slog.Group("", slog.String("event", "credential_access")), "event", "other")
	if ev := fileEvent(t, dir); ev != "credential_access" {
		t.Fatalf("file event %q: %s", ev, recordLines(t, dir)[0])
	}
	if fired.Load() != 1 {
		t.Errorf("the file holds event=credential_access, the rule saw another value (alerts: %d)\n%s", fired.Load(), recordLines(t, dir)[0])
	}
}

// A record with more than 32 top-level attributes costs no map per record
// in claim (the maps stay with the pooled buffer).
func TestWideRecordAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts mean nothing under the race detector")
	}
	h := probeHandler(t, t.TempDir(), handler.Options{NoRedaction: true})
	l := slog.New(h)
	allocs := func(n int) float64 {
		attrs := []slog.Attr{handler.Audit}
		for i := range n {
			attrs = append(attrs, slog.Int("attr_"+strconv.Itoa(i), i))
		}
		return testing.AllocsPerRun(200, func() { l.LogAttrs(_ctx, slog.LevelInfo, "m", attrs...) })
	}
	if narrow, wide := allocs(32), allocs(64); wide > narrow {
		t.Errorf("allocs/record: %v with 32 top-level attributes, %v with 64", narrow, wide)
	}
}

var _ctx = context.Background()
