package handler

import (
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// fakeClock is an injectable wall and monotonic clock (ClockCheck.now):
// the test moves both, or steps the wall clock alone, and counts the
// checks that read it.
type fakeClock struct {
	mu    sync.Mutex
	wall  time.Time
	mono  time.Duration
	boot  time.Duration // mono plus the time suspended
	reads atomic.Int64
}

func (c *fakeClock) now() (time.Time, time.Duration, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads.Add(1)
	return c.wall, c.mono, c.boot
}

// advance moves the clocks, as time passing does.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.wall, c.mono, c.boot = c.wall.Add(d), c.mono+d, c.boot+d
	c.mu.Unlock()
}

// suspend moves the wall and boot clocks, not the monotonic one, as a
// host that sleeps for d does.
func (c *fakeClock) suspend(d time.Duration) {
	c.mu.Lock()
	c.wall, c.boot = c.wall.Add(d), c.boot+d
	c.mu.Unlock()
}

// step sets the wall clock by d, as settimeofday does.
func (c *fakeClock) step(d time.Duration) {
	c.mu.Lock()
	c.wall = c.wall.Add(d)
	c.mu.Unlock()
}

// checked waits until the watch has read the clock twice more: at least
// one whole check ran after the caller's change.
func (c *fakeClock) checked(t *testing.T) {
	t.Helper()
	n := c.reads.Load()
	waitUntil(t, "a clock check", func() bool { return c.reads.Load() >= n+2 })
}

// A wall clock stepped back an hour is put on record at the next check, as
// a WARN clock_step record with the step and the wall times before and
// after it (the record's time is after), and the default rule clock_step
// alerts; time passing, a step within the threshold, and the checks after
// a step (the baseline moved) write nothing; a second step is on record
// too, its alert held by the rule's cooldown.
func TestClockStep(t *testing.T) {
	clock := &fakeClock{wall: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), mono: time.Minute}
	var alerts alertLog
	f := newFixture(t, Options{
		Clock:  ClockCheck{Interval: time.Millisecond, now: clock.now},
		Alerts: &AlertOptions{OnAlert: alerts.on},
	})
	clock.checked(t)
	clock.advance(time.Hour)
	clock.checked(t)
	clock.step(900 * time.Millisecond) // within the default threshold of 1 s
	clock.checked(t)
	if recs := eventRecords(f.records(t), ClockStep); len(recs) != 0 {
		t.Fatalf("clock_step records without a step beyond the threshold: %v", recs)
	}
	clock.advance(5 * time.Second)
	clock.step(-time.Hour)
	clock.checked(t)
	clock.checked(t)
	recs := eventRecords(f.records(t), ClockStep)
	if len(recs) != 1 {
		t.Fatalf("%d clock_step records after one step, want 1: %v", len(recs), recs)
	}
	r := recs[0]
	before := time.Date(2026, 11, 27, 13, 0, 5, 900e6, time.UTC)
	after := before.Add(-time.Hour)
	ts := func(t time.Time) string { return t.Format("2006-01-02T15:04:05.000000000Z") }
	if r[ActionKey] != ActionCheck || r[ResourceTypeKey] != "clock" || r[ResourceKey] != "wall" || r[StatusKey] != "failed" ||
		r[ReasonKey] != "backward" || r["level"] != "WARN" || r["step"] != float64(-time.Hour) ||
		r["before"] != ts(before) || r["after"] != ts(after) || r["time"] != ts(after) ||
		r["msg"] != "wall clock stepped backward by 1h0m0s" {
		t.Errorf("clock_step record: %v", r)
	}
	if _, _, ok := timeSync(); ok {
		if _, has := r["time_synced"].(bool); !has {
			t.Errorf("no time_synced in %v", r)
		}
	} else if runtime.GOOS == "linux" {
		t.Log("adjtimex failed here: no time_synced")
	}
	if a := alerts.rule("clock_step"); len(a) != 1 || a[0].Severity != slog.LevelWarn || a[0].Err != nil {
		t.Errorf("clock_step alerts: %+v", a)
	}

	clock.step(3 * time.Second)
	clock.checked(t)
	if err := f.h.Close(); err != nil {
		t.Fatal(err)
	}
	recs = eventRecords(f.records(t), ClockStep)
	if len(recs) != 2 || recs[1][ReasonKey] != "forward" || recs[1]["step"] != float64(3*time.Second) {
		t.Fatalf("clock_step records after a second step: %v", recs)
	}
	if a := alerts.rule("clock_step"); len(a) != 1 {
		t.Errorf("%d clock_step alerts, want 1 (the second step falls in the cooldown)", len(a))
	}
	if rep, err := chain.Verify(f.dir, chain.VerifyOptions{Key: testKey}); err != nil || !rep.Intact {
		t.Fatalf("verify: %v", err)
	}
}

// A host suspended for two hours is an INFO clock_step record of reason
// suspended (resource host, status success) with the time slept, and no
// alert: the wall clock is right. A step of the wall clock while it slept
// is a step of what is beyond the time slept.
func TestClockSuspend(t *testing.T) {
	clock := &fakeClock{wall: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC), mono: time.Minute, boot: time.Minute}
	var alerts alertLog
	f := newFixture(t, Options{
		Clock:  ClockCheck{Interval: time.Millisecond, now: clock.now},
		Alerts: &AlertOptions{OnAlert: alerts.on},
	})
	clock.checked(t)
	clock.suspend(2 * time.Hour)
	clock.checked(t)
	recs := eventRecords(f.records(t), ClockStep)
	if len(recs) != 1 {
		t.Fatalf("%d clock_step records after a suspend, want 1: %v", len(recs), recs)
	}
	r := recs[0]
	if r[ReasonKey] != "suspended" || r[ResourceKey] != "host" || r[StatusKey] != "success" || r["level"] != "INFO" ||
		r["suspended"] != float64(2*time.Hour) || r["msg"] != "host was suspended for 2h0m0s: no records could be written meanwhile" {
		t.Errorf("suspend record: %v", r)
	}
	if a := alerts.rule("clock_step"); len(a) != 0 {
		t.Errorf("a suspend raised %d clock_step alerts", len(a))
	}
	clock.suspend(30 * time.Minute)
	clock.step(-time.Hour)
	clock.checked(t)
	if err := f.h.Close(); err != nil {
		t.Fatal(err)
	}
	recs = eventRecords(f.records(t), ClockStep)
	if len(recs) != 3 || recs[1][ReasonKey] != "suspended" || recs[1]["suspended"] != float64(30*time.Minute) ||
		recs[2][ReasonKey] != "backward" || recs[2]["step"] != float64(-time.Hour) {
		t.Fatalf("after a suspend of 30m with a step of -1h: %v", recs)
	}
	if a := alerts.rule("clock_step"); len(a) != 1 {
		t.Errorf("%d clock_step alerts, want 1 (the step, not the suspends)", len(a))
	}
}

// The boot clock is read where the kernel has it, and runs at least as
// far as the monotonic one.
func TestBootClock(t *testing.T) {
	b0, ok := bootClock()
	if !ok {
		if runtime.GOOS == "linux" {
			t.Fatal("CLOCK_BOOTTIME unreadable on linux")
		}
		t.Skip("no boot clock on " + runtime.GOOS)
	}
	m0 := time.Now()
	time.Sleep(10 * time.Millisecond)
	b1, _ := bootClock()
	if d, m := b1-b0, time.Since(m0); d < m-time.Millisecond {
		t.Errorf("boot clock advanced %v while the monotonic clock advanced %v", d, m)
	}
}

// Clock.Threshold sets the smallest step on record; negative turns the
// checks off (no goroutine); by default they are on.
func TestClockCheckOptions(t *testing.T) {
	clock := &fakeClock{wall: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	f := newFixture(t, Options{Clock: ClockCheck{Threshold: 100 * time.Millisecond, Interval: time.Millisecond, now: clock.now}})
	clock.checked(t)
	clock.step(200 * time.Millisecond)
	clock.checked(t)
	f.h.Close()
	if recs := eventRecords(f.records(t), ClockStep); len(recs) != 1 {
		t.Errorf("%d clock_step records for a 200 ms step over a 100 ms threshold, want 1", len(recs))
	}

	off := &fakeClock{}
	f = newFixture(t, Options{Clock: ClockCheck{Threshold: -1, Interval: time.Millisecond, now: off.now}})
	if f.h.c.stopClock != nil {
		t.Error("clock checks running with Threshold -1")
	}
	time.Sleep(20 * time.Millisecond)
	if n := off.reads.Load(); n != 0 {
		t.Errorf("the clock was read %d times with the checks off", n)
	}
	if f = newFixture(t, Options{}); f.h.c.stopClock == nil {
		t.Error("no clock checks by default")
	}

	// The real clocks, checked often, with nobody stepping them: no step.
	f = newFixture(t, Options{Clock: ClockCheck{Interval: time.Millisecond}})
	time.Sleep(200 * time.Millisecond)
	f.h.Close()
	if recs := eventRecords(f.records(t), ClockStep); len(recs) != 0 {
		t.Errorf("clock_step records from the real clocks: %v", recs)
	}
}

// A step seen while the audit files cannot be written still alerts
// (OnAlert, with Alert.Err set).
func TestClockStepOnFullDisk(t *testing.T) {
	fs := &switchFS{}
	clock := &fakeClock{wall: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)}
	var alerts alertLog
	f := newFixture(t, Options{
		App:     slog.DiscardHandler,
		Rotate:  rotate.Options{OpenFile: fs.open, LowSpace: -1},
		Clock:   ClockCheck{Interval: time.Millisecond, now: clock.now},
		Alerts:  &AlertOptions{OnAlert: alerts.on},
		OnError: func(error) {},
	})
	clock.checked(t)
	fs.fail.Store(true)
	clock.step(-time.Hour)
	waitUntil(t, "the clock_step alert", func() bool { return len(alerts.rule("clock_step")) == 1 })
	if a := alerts.rule("clock_step"); a[0].Err == nil {
		t.Errorf("clock_step alert on a full disk: %+v", a[0])
	}
	fs.fail.Store(false)
	f.h.Close()
}
