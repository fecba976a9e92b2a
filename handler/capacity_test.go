package handler

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// alertLog collects OnAlert calls.
type alertLog struct {
	mu     sync.Mutex
	alerts []Alert
}

func (l *alertLog) on(a Alert) {
	l.mu.Lock()
	l.alerts = append(l.alerts, a)
	l.mu.Unlock()
}

func (l *alertLog) rule(id string) []Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Alert
	for _, a := range l.alerts {
		if a.Rule == id {
			out = append(out, a)
		}
	}
	return out
}

// spaceChecked skips the test where rotate has no free-space checks (it
// has them where the syscall package has statfs).
func spaceChecked(t *testing.T) {
	t.Helper()
	switch runtime.GOOS {
	case "linux", "darwin", "freebsd", "dragonfly", "openbsd":
	default:
		t.Skipf("no free-space checks on %s", runtime.GOOS)
	}
}

// waitUntil polls cond for up to 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// eventRecords returns the records of recs whose event is event.
func eventRecords(recs []map[string]any, event string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r[EventKey] == event {
			out = append(out, r)
		}
	}
	return out
}

// A threshold above any free space: the check at start finds the space low,
// and an audit_capacity record says so, once: in the file (chained, it
// verifies), the app log and the sinks, and the default rule
// audit_low_space raises a WARN alert through OnAlert. Later checks (after
// rotations, at least a second apart) find it still low and stay quiet.
func TestCapacityRecord(t *testing.T) {
	spaceChecked(t)
	var alerts alertLog
	sink := &memSink{}
	var errs []error
	var errMu sync.Mutex
	f := newFixture(t, Options{
		Rotate: rotate.Options{LowSpace: math.MaxInt64},
		Alerts: &AlertOptions{OnAlert: alerts.on},
		Sinks:  []Sink{sink},
		OnError: func(err error) {
			errMu.Lock()
			errs = append(errs, err)
			errMu.Unlock()
		},
	})
	waitUntil(t, "the audit_low_space alert", func() bool { return len(alerts.rule("audit_low_space")) > 0 })
	l := Logger(slog.New(f.h))
	for i := range 3 {
		l.Info("after", "i", i)
		if err := f.h.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1200 * time.Millisecond) // past rotate's minimum gap: a check ran since
	l.Info("last")
	if err := f.h.Close(); err != nil {
		t.Fatal(err)
	}

	recs := eventRecords(f.records(t), AuditCapacity)
	if len(recs) != 1 {
		t.Fatalf("%d audit_capacity records, want 1: %v", len(recs), recs)
	}
	r := recs[0]
	abs, _ := filepath.Abs(f.dir)
	free, total, thr := r["free_bytes"].(float64), r["total_bytes"].(float64), r["threshold_bytes"].(float64)
	if r[ActionKey] != ActionCheck || r[StatusKey] != "failed" || r[ReasonKey] != "low_space" || r["level"] != "WARN" ||
		r[ResourceTypeKey] != "audit_log" || r[ResourceKey] != filepath.Base(f.dir) || r["dir"] != abs ||
		thr != float64(math.MaxInt64) || total <= 0 || free > total || !strings.Contains(r["msg"].(string), "low disk space") {
		t.Errorf("audit_capacity record: %v", r)
	}
	rep, err := chain.Verify(f.dir, chain.VerifyOptions{Key: testKey})
	if err != nil || !rep.Intact {
		t.Fatalf("verify: intact=%v, %v", rep != nil && rep.Intact, err)
	}
	if a := alerts.rule("audit_low_space"); len(a) != 1 || a[0].Severity != slog.LevelWarn || a[0].Err != nil {
		t.Errorf("audit_low_space alerts: %+v", a)
	}
	n := 0
	for _, m := range f.appRecords(t) {
		if m[EventKey] == AuditCapacity && m["free_bytes"] == free {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d audit_capacity records in the app log, want 1", n)
	}
	n = 0
	for _, s := range sink.recs {
		if strings.Contains(s.body, `"event":"audit_capacity"`) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d audit_capacity records in the sink, want 1", n)
	}
	errMu.Lock()
	defer errMu.Unlock()
	if len(errs) > 0 {
		t.Errorf("OnError: %v", errs)
	}
}

// Rotate.LowSpace negative: no checks, no record, even where the default
// would warn; a user's Rotate.OnLowSpace is called besides the record.
func TestCapacityOffAndUserCallback(t *testing.T) {
	f := newFixture(t, Options{Rotate: rotate.Options{LowSpace: -1, OnLowSpace: func(rotate.Space) { t.Error("OnLowSpace called with LowSpace -1") }}})
	Logger(slog.New(f.h)).Info("x")
	f.h.Close()
	if recs := eventRecords(f.records(t), AuditCapacity); len(recs) != 0 {
		t.Fatalf("audit_capacity records with LowSpace -1: %v", recs)
	}

	spaceChecked(t)
	got := make(chan rotate.Space, 1)
	f = newFixture(t, Options{Rotate: rotate.Options{LowSpace: math.MaxInt64, OnLowSpace: func(s rotate.Space) { got <- s }}})
	select {
	case s := <-got:
		if s.Threshold != math.MaxInt64 {
			t.Errorf("OnLowSpace(%+v)", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the user's OnLowSpace was not called")
	}
	waitUntil(t, "the record", func() bool {
		for _, s := range f.records(t) {
			if s[EventKey] == AuditCapacity {
				return true
			}
		}
		return false
	})
}

// Close while the low-space call is in progress on rotate's background
// goroutine (held there by the user's OnLowSpace), with records being
// logged: Close returns (rotate's Close waits for that goroutine, which
// must not wait for Close), the late record is dropped quietly rather than
// reported as ErrClosed, and the trail verifies.
func TestCapacityCloseWhileReporting(t *testing.T) {
	spaceChecked(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var errMu sync.Mutex
	var errs []error
	f := newFixture(t, Options{
		Rotate: rotate.Options{LowSpace: math.MaxInt64, OnLowSpace: func(rotate.Space) {
			once.Do(func() { close(entered) })
			<-release
		}},
		Alerts: &AlertOptions{},
		OnError: func(err error) {
			errMu.Lock()
			errs = append(errs, err)
			errMu.Unlock()
		},
	})
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("OnLowSpace was not called")
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var loggersClosed atomic.Int64 // ErrClosed returned to the loggers, which OnError hears too
	for range 4 {
		wg.Go(func() {
			l := Logger(slog.New(f.h))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := Log(context.Background(), l, Event{Type: AdminAction, Action: "start", Status: StatusSuccess}); errors.Is(err, ErrClosed) {
					loggersClosed.Add(1)
					return
				}
			}
		})
	}
	closed := make(chan error, 1)
	go func() { closed <- f.h.Close() }()
	time.Sleep(100 * time.Millisecond) // Close is waiting for rotate's background goroutine
	close(release)
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	close(stop)
	wg.Wait()
	errMu.Lock()
	closedErrs := 0
	for _, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("OnError(%v)", err)
		} else {
			closedErrs++
		}
	}
	errMu.Unlock()
	if n := loggersClosed.Load(); int64(closedErrs) != n {
		t.Errorf("OnError heard ErrClosed %d times, the loggers got it %d times: the late record was reported", closedErrs, n)
	}
	if rep, err := chain.Verify(f.dir, chain.VerifyOptions{Key: testKey}); err != nil || !rep.Intact {
		t.Fatalf("verify: %v", err)
	}
}
