package handler

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// ClockCheck configures the handler's watch on the wall clock (PCI DSS
// 10.6, ISO 27001 A.8.17). An audit record carries the time slog gave it
// (the caller's time.Now), which follows the wall clock wherever it is
// set: a clock stepped back an hour writes records an hour earlier than
// the ones before them, and neither the chain nor verify compares times.
// So the handler compares, every Interval, on a goroutine of its own
// (nothing on the logging path), how far the wall clock advanced with how
// far the monotonic clock did (time.Now reads both): a difference beyond
// Threshold is a step, put on record as a WARN audit record
//
//	event=clock_step action=check resource_type=clock resource=wall
//	status=failed reason=backward|forward step=<ns, signed> before=<time> after=<time>
//
// with, on Linux, the kernel's synchronization status (adjtimex):
// time_synced (false when no NTP client keeps the clock) and
// time_max_error (its estimated maximum error, ns). before is what the
// wall clock would read had it not been stepped, after what it reads; the
// record's time is after. The default alert rule clock_step raises it to a
// WARN alert. Each check measures from the one before, so a gradual slew
// (NTP's adjustment of the clock rate, at most 0.5 ms a second) is never a
// step, but several steps each within Threshold are not reported either.
// The monotonic clock stops while the host is suspended (a laptop, a
// paused virtual machine) and the wall clock does not; on Linux the boot
// clock (CLOCK_BOOTTIME) counts that time, so a resume is not taken for a
// step: it is put on record as an INFO audit record
//
//	event=clock_step action=check resource_type=clock resource=host
//	status=success reason=suspended suspended=<ns> before=<time> after=<time>
//
// (no alert: the clock is right; the gap in the trail is what it
// explains), and only what the wall clock moved beyond the time slept is
// a step. Elsewhere a resume shows as a forward step of the time slept.
type ClockCheck struct {
	// Threshold is the smallest step put on record; 0 means
	// DefaultClockStepThreshold, negative turns the checks off.
	Threshold time.Duration
	// Interval between checks; 0 means DefaultClockCheckInterval.
	Interval time.Duration

	// now returns the wall clock (without a monotonic reading), the
	// monotonic clock's reading and the boot clock's (the monotonic clock
	// plus the time suspended; the monotonic reading where unknown); nil:
	// time.Now and bootClock. For tests.
	now func() (wall time.Time, mono, boot time.Duration)
}

// Defaults of ClockCheck.
const (
	DefaultClockStepThreshold = time.Second
	DefaultClockCheckInterval = 10 * time.Second
)

// watchClock runs the checks of cc until stop is closed.
func (h *Handler) watchClock(cc ClockCheck, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	now := cc.now
	if now == nil {
		start := time.Now()
		now = func() (time.Time, time.Duration, time.Duration) {
			t := time.Now()
			mono := t.Sub(start) // Sub of two monotonic readings: the monotonic clock
			boot, ok := bootClock()
			if !ok {
				boot = mono
			}
			return t.Round(0), mono, boot
		}
	}
	t := time.NewTicker(cc.Interval)
	defer t.Stop()
	wall0, mono0, boot0 := now()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		wall, mono, boot := now()
		// The wall clock runs on while the host sleeps, as the boot clock
		// does and the monotonic clock does not.
		passed := max(boot-boot0, mono-mono0)
		slept := passed - (mono - mono0)
		before := wall0.Add(passed) // where the wall clock would be
		step := wall.Sub(before)
		if slept > cc.Threshold {
			h.writeSuspended(wall0, before, slept)
		}
		wall0, mono0, boot0 = wall, mono, boot // the next check measures from here
		if step.Abs() > cc.Threshold {
			h.writeClockStep(before, wall, step)
		}
	}
}

// writeSuspended writes the record of a host suspended for slept, some
// time after the wall clock read from and before it read to.
func (h *Handler) writeSuspended(from, to time.Time, slept time.Duration) {
	r := clockRecord(slog.LevelInfo, fmt.Sprintf("host was suspended for %s: no records could be written meanwhile", slept),
		"host", StatusSuccess, "suspended", slog.Duration("suspended", slept), from, to)
	h.Handle(context.Background(), r)
}

// writeClockStep writes the clock_step record through h, the root
// handler; the error of the write goes to OnError (and a failed write to
// the alert rules as well, see alertEngine.observeFailed).
func (h *Handler) writeClockStep(before, after time.Time, step time.Duration) {
	reason := "forward"
	if step < 0 {
		reason = "backward"
	}
	r := clockRecord(slog.LevelWarn, fmt.Sprintf("wall clock stepped %s by %s", reason, step.Abs()),
		"wall", StatusFailed, reason, slog.Duration("step", step), before, after)
	if synced, maxErr, ok := timeSync(); ok {
		r.AddAttrs(slog.Bool("time_synced", synced), slog.Duration("time_max_error", maxErr))
	}
	h.Handle(context.Background(), r)
}

// clockRecord is a clock_step audit record at after: event, action and
// resource type, then resource, status, reason, what happened (a step, a
// time suspended) and the wall times around it.
func clockRecord(level slog.Level, msg, resource string, status Status, reason string, what slog.Attr, before, after time.Time) slog.Record {
	r := slog.NewRecord(after, level, msg, 0)
	r.AddAttrs(Audit,
		slog.String(EventKey, ClockStep),
		slog.String(ActionKey, ActionCheck),
		slog.String(ResourceTypeKey, "clock"),
		slog.String(ResourceKey, resource),
		slog.String(StatusKey, string(status)),
		slog.String(ReasonKey, reason),
		what,
		slog.Time("before", before),
		slog.Time("after", after),
	)
	return r
}
