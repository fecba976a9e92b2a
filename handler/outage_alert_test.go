package handler

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// switchFS makes writes to the audit files fail with ENOSPC while fail is
// set, like a full disk.
type switchFS struct{ fail atomic.Bool }

type switchFile struct {
	*os.File
	fs *switchFS
}

func (f switchFile) Write(p []byte) (int, error) {
	if f.fs.fail.Load() {
		return 0, syscall.ENOSPC
	}
	return f.File.Write(p)
}

func (fs *switchFS) open(name string, flag int, perm os.FileMode) (rotate.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return switchFile{f, fs}, nil
}

// While the audit files cannot be written, the default rule
// audit_write_failing alerts at the first failed write, through OnAlert
// (Alert.Err says its own record was not written either) and the app
// handler, and again at most once per cooldown while it goes on (the
// suppressed count says how many failures fell into it). When writes work
// again, the audit_outage record (lost N, the lost alert records among
// them) is written and the rule audit_outage alerts on it, although
// audit_write_failing fired within the hour: neither suppresses the other.
func TestWriteFailingAlerts(t *testing.T) {
	fs := &switchFS{}
	var alerts alertLog
	clock := newClock()
	var nerr atomic.Int64
	f := newFixture(t, Options{
		Rotate:  rotate.Options{OpenFile: fs.open, LowSpace: -1},
		Alerts:  &AlertOptions{OnAlert: alerts.on, Now: clock.Now},
		OnError: func(error) { nerr.Add(1) },
	})
	l := Logger(slog.New(f.h))
	ctx := context.Background()
	ev := Event{Type: AdminAction, Action: "start", ResourceType: "mcp_server", Resource: "x", Status: StatusSuccess}
	if err := Log(ctx, l, ev); err != nil {
		t.Fatal(err)
	}
	fs.fail.Store(true)
	for range 5 {
		if err := Log(ctx, l, ev); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Log on a full disk: %v", err)
		}
	}
	a := alerts.rule("audit_write_failing")
	if len(a) != 1 {
		t.Fatalf("%d audit_write_failing alerts during the outage, want 1: %+v", len(a), alerts.alerts)
	}
	if a[0].Err == nil || !errors.Is(a[0].Err, syscall.ENOSPC) || a[0].Severity != slog.LevelError || a[0].Subject != ByAll {
		t.Errorf("audit_write_failing alert: %+v", a[0])
	}
	if n := len(alerts.rule("audit_outage")); n != 0 {
		t.Errorf("%d audit_outage alerts before anything could be written", n)
	}
	clock.at(61 * time.Minute) // past the cooldown, still failing
	Log(ctx, l, ev)
	a = alerts.rule("audit_write_failing")
	if len(a) != 2 || a[1].Err == nil || a[1].Suppressed != 4 {
		t.Fatalf("audit_write_failing after the cooldown: %+v", a)
	}
	lost := 5 + 1 + 2 // the records and the two alert records
	fs.fail.Store(false)
	if err := Log(ctx, l, ev); err != nil {
		t.Fatal(err)
	}
	o := alerts.rule("audit_outage")
	if len(o) != 1 || o[0].Err != nil || o[0].Severity != slog.LevelError {
		t.Fatalf("audit_outage alerts after the outage: %+v", o)
	}
	if n := len(alerts.rule("audit_write_failing")); n != 2 {
		t.Errorf("%d audit_write_failing alerts, want 2", n)
	}
	if err := f.h.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := chain.Verify(f.dir, chain.VerifyOptions{Key: testKey}); err != nil || !rep.Intact {
		t.Fatalf("verify: %v", err)
	}
	var outage, alert map[string]any
	for _, r := range f.records(t) {
		switch {
		case r[EventKey] == AuditOutage:
			outage = r
		case r[EventKey] == SecurityAlert && r[ResourceKey] == "audit_outage":
			alert = r
		case r[EventKey] == SecurityAlert:
			t.Errorf("alert record of the outage in the file: %v", r)
		}
	}
	if outage == nil || outage["lost"] != float64(lost) || outage[ReasonKey] != "write_failed" {
		t.Errorf("audit_outage record: %v, want lost %d", outage, lost)
	}
	if alert == nil {
		t.Error("no audit_outage alert record in the file")
	}
	// The app handler got every alert, the two that are not in the file too.
	n := 0
	for _, m := range f.appRecords(t) {
		if m[EventKey] == SecurityAlert && m[ResourceKey] == "audit_write_failing" && m["level"] == "ERROR" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d audit_write_failing alerts in the app log, want 2", n)
	}
	if nerr.Load() != int64(lost) {
		t.Errorf("OnError heard %d errors, want %d", nerr.Load(), lost)
	}
}

// Goroutines logging concurrently into a full disk: one alert (the
// cooldown holds the rest), no deadlock between the failed writes, the
// alert's own failed write and Close; after recovery the audit_outage
// record and its alert. Run it with -race.
func TestWriteFailingConcurrent(t *testing.T) {
	fs := &switchFS{}
	var alerts alertLog
	f := newFixture(t, Options{
		App:     slog.DiscardHandler,
		Rotate:  rotate.Options{OpenFile: fs.open, LowSpace: -1},
		Alerts:  &AlertOptions{OnAlert: alerts.on},
		OnError: func(error) {},
	})
	fs.fail.Store(true)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			l := Logger(slog.New(f.h))
			for range 200 {
				if err := Log(context.Background(), l, Event{Type: AdminAction, Action: "start", Status: StatusSuccess,
					Attrs: []slog.Attr{slog.Int("worker", i)}}); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("loggers stuck: deadlock?")
	}
	if n := failed.Load(); n != 1600 {
		t.Fatalf("%d of 1600 writes failed", n)
	}
	if a := alerts.rule("audit_write_failing"); len(a) != 1 || a[0].Err == nil {
		t.Fatalf("audit_write_failing alerts: %+v", a)
	}
	fs.fail.Store(false)
	if err := Log(context.Background(), Logger(slog.New(f.h)), Event{Type: AdminAction, Action: "stop", Status: StatusSuccess}); err != nil {
		t.Fatal(err)
	}
	if err := f.h.Close(); err != nil {
		t.Fatal(err)
	}
	if a := alerts.rule("audit_outage"); len(a) != 1 || a[0].Err != nil {
		t.Fatalf("audit_outage alerts: %+v", a)
	}
	var lost float64
	for _, r := range f.records(t) {
		if r[EventKey] == AuditOutage {
			lost += r["lost"].(float64)
		}
	}
	if lost != 1601 { // the alert record too
		t.Errorf("lost %v on record, want 1601", lost)
	}
	if rep, err := chain.Verify(f.dir, chain.VerifyOptions{Key: testKey}); err != nil || !rep.Intact {
		t.Fatalf("verify: %v", err)
	}
}

// The handler's own records alert on what they say also when their write
// fails: an audit_capacity record on a full disk raises audit_low_space
// (and audit_write_failing), a chain_verification record
// chain_verification_failed. An ordinary record whose write failed is not
// counted by its own rules (it is not on record; a fail-closed caller did
// not go ahead): only as the failure.
func TestFailedOwnRecordsAlert(t *testing.T) {
	fs := &switchFS{}
	var alerts alertLog
	rules := append(DefaultAlertRules(), AlertRule{ID: "any_start", Match: []AlertMatch{{Event: []string{AdminAction}}},
		By: ByAll, Window: time.Hour, Threshold: 1, Severity: slog.LevelWarn})
	f := newFixture(t, Options{
		App:     slog.DiscardHandler,
		Rotate:  rotate.Options{OpenFile: fs.open, LowSpace: -1},
		Alerts:  &AlertOptions{Rules: rules, OnAlert: alerts.on},
		OnError: func(error) {},
	})
	fs.fail.Store(true)
	f.h.writeCapacity(rotate.Space{Free: 0, Total: 64 << 20, Threshold: 16 << 20}, f.dir)
	if a := alerts.rule("audit_low_space"); len(a) != 1 || a[0].Err == nil || a[0].Severity != slog.LevelWarn {
		t.Errorf("audit_low_space alerts for a failed audit_capacity record: %+v", a)
	}
	if a := alerts.rule("audit_write_failing"); len(a) != 1 || a[0].Err == nil {
		t.Errorf("audit_write_failing alerts: %+v", a)
	}
	if err := f.h.ReportVerifyFailure(errors.New("boom"), "detail"); err == nil {
		t.Error("ReportVerifyFailure wrote on a full disk")
	}
	if a := alerts.rule("chain_verification_failed"); len(a) != 1 || a[0].Err == nil {
		t.Errorf("chain_verification_failed alerts: %+v", a)
	}
	Log(context.Background(), Logger(slog.New(f.h)), Event{Type: AdminAction, Action: "start", Status: StatusSuccess})
	if a := alerts.rule("any_start"); len(a) != 0 {
		t.Errorf("a failed ordinary record was counted by its rule: %+v", a)
	}
	if a := alerts.rule("audit_outage"); len(a) != 0 {
		t.Errorf("audit_outage alerts before recovery: %+v", a)
	}
}
