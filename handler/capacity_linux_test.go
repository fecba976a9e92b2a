package handler

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// On a real 64 MiB tmpfs, with eight goroutines logging audit records and
// files rotating every 256 KiB (MaxBackups 2): filling the file system
// below the threshold puts one audit_capacity record on record, written
// from rotate's background goroutine between the loggers' records; freeing
// it and filling it again puts a second one; the default rule alerts once
// (its one-hour cooldown holds the second: no alarm storm); Close returns
// while the loggers are still logging, and the trail verifies. Needs root
// (mount): skipped without it, except under CI=true. Run it with -race.
func TestCapacityTmpfsConcurrent(t *testing.T) {
	mnt := mountTmpfs(t, "64m")
	dir := filepath.Join(mnt, "audit")
	var alerts alertLog
	sink := &capacitySink{}
	var lows atomic.Int64
	var errMu sync.Mutex
	var errs []error
	h, err := New(Options{Dir: dir, Key: testKey, App: slog.DiscardHandler,
		Rotate: rotate.Options{LowSpace: 16 << 20, MaxBytes: 256 << 10, MaxBackups: 2,
			OnLowSpace: func(rotate.Space) { lows.Add(1) }},
		Alerts: &AlertOptions{OnAlert: alerts.on},
		Sinks:  []Sink{sink},
		OnError: func(err error) {
			errMu.Lock()
			errs = append(errs, err)
			errMu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	stop := make(chan struct{})
	var stopOnce sync.Once
	var wg sync.WaitGroup
	var logged atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			l := Logger(slog.New(h))
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := Log(context.Background(), l, Event{Type: CredentialAccess, Action: "get", ResourceType: "credential",
					Resource: "k", Status: StatusSuccess, Attrs: []slog.Attr{slog.Int("worker", i)}})
				if errors.Is(err, ErrClosed) {
					return
				} else if err != nil {
					t.Errorf("Log: %v", err)
					return
				}
				logged.Add(1)
				time.Sleep(200 * time.Microsecond)
			}
		})
	}
	defer func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }()
	waitUntil(t, "records", func() bool { return logged.Load() > 1000 })
	if n := lows.Load(); n != 0 {
		t.Fatalf("low space on an empty 64 MiB file system (%d calls)", n)
	}

	filler := filepath.Join(mnt, "filler")
	fill := func() { // fallocate: quick, and counted as used like written data
		f, err := os.OpenFile(filler, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, 52<<20); err != nil {
			t.Fatal(err)
		}
	}
	fill()
	waitUntil(t, "the first low-space call", func() bool { return lows.Load() == 1 })
	waitUntil(t, "the audit_low_space alert", func() bool { return len(alerts.rule("audit_low_space")) == 1 })
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // rotations go on: a check (at most one a second) sees the space back
	if n := lows.Load(); n != 1 {
		t.Fatalf("%d low-space calls, want 1 before the second fill", n)
	}
	fill()
	waitUntil(t, "the second low-space call", func() bool { return lows.Load() == 2 })
	time.Sleep(100 * time.Millisecond) // records keep coming while the second record is written

	if err := h.Close(); err != nil { // loggers still running
		t.Fatal(err)
	}
	stopOnce.Do(func() { close(stop) })
	wg.Wait()

	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: testKey})
	if err != nil || !rep.Intact {
		t.Fatalf("verify: %v", err)
	}
	// Retention (MaxBackups 2) removed most files: the sink saw every
	// record once it was in the file.
	if n := sink.n.Load(); n != 2 {
		t.Errorf("%d audit_capacity records written, want 2", n)
	}
	if a := alerts.rule("audit_low_space"); len(a) != 1 {
		t.Errorf("%d audit_low_space alerts, want 1 (the second drop falls in the cooldown)", len(a))
	}
	errMu.Lock()
	defer errMu.Unlock()
	for _, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("OnError(%v)", err)
		}
	}
	t.Logf("%d records logged", logged.Load())
}

// capacitySink counts the audit_capacity records written.
type capacitySink struct{ n atomic.Int64 }

func (s *capacitySink) Audit(body []byte, _ chain.Position) {
	if bytes.Contains(body, []byte(`"event":"audit_capacity"`)) {
		s.n.Add(1)
	}
}

// On a real tmpfs filled to the last byte, the audit writes fail with
// ENOSPC and the default rule audit_write_failing alerts while the disk
// is full (OnAlert with Alert.Err set), not only once space is back; the
// audit_low_space alert of the audit_capacity record whose write failed
// comes too. Freeing the space, the next record is preceded by the
// audit_outage record, which alerts too, and the trail verifies. Needs
// root (mount): skipped without it, except under CI=true.
func TestWriteFailingTmpfs(t *testing.T) {
	mnt := mountTmpfs(t, "8m")
	dir := filepath.Join(mnt, "audit")
	var alerts alertLog
	h, err := New(Options{Dir: dir, Key: testKey, App: slog.DiscardHandler,
		Rotate:  rotate.Options{LowSpace: -1}, // the record below stands for the writer's check, whose timing varies
		Alerts:  &AlertOptions{OnAlert: alerts.on},
		OnError: func(error) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l := Logger(slog.New(h))
	ev := Event{Type: CredentialAccess, Action: "get", ResourceType: "credential", Resource: "k", Status: StatusSuccess}
	if err := Log(context.Background(), l, ev); err != nil {
		t.Fatal(err)
	}
	// Fill what is left, to the last byte.
	filler := filepath.Join(mnt, "filler")
	fd, err := os.OpenFile(filler, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fallocate(int(fd.Fd()), 0, 0, int64(st.Bavail)*int64(st.Bsize)); err != nil {
		t.Fatal(err)
	}
	fd.Close()
	failed := 0
	for i := 0; i < 100000 && failed < 20; i++ {
		if err := Log(context.Background(), l, ev); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("Log: %v", err)
			}
			failed++
		}
	}
	if failed < 20 {
		t.Fatal("the writes did not fail on a full file system")
	}
	// The writer's check (off above: it may come before the disk is full,
	// after 4 MiB written or within a minute) writes this record; on a
	// full disk the write fails.
	h.writeCapacity(rotate.Space{Free: 0, Total: 8 << 20, Threshold: 1 << 20}, dir)
	a := alerts.rule("audit_write_failing")
	if len(a) != 1 || !errors.Is(a[0].Err, syscall.ENOSPC) {
		t.Fatalf("audit_write_failing alerts while the disk is full: %+v", a)
	}
	if a := alerts.rule("audit_low_space"); len(a) != 1 || a[0].Err == nil {
		t.Errorf("audit_low_space alerts while the disk is full: %+v", a)
	}
	if a := alerts.rule("audit_outage"); len(a) != 0 {
		t.Errorf("audit_outage alerts while the disk is full: %+v", a)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := Log(context.Background(), l, ev); err != nil {
		t.Fatal(err)
	}
	if a := alerts.rule("audit_outage"); len(a) != 1 || a[0].Err != nil {
		t.Errorf("audit_outage alerts after the disk has room: %+v", a)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if rep, err := chain.Verify(dir, chain.VerifyOptions{Key: testKey}); err != nil || !rep.Intact {
		t.Fatalf("verify: %v", err)
	}
}

// mountTmpfs mounts a tmpfs of size (mount's size=, e.g. "8m") for the
// test and returns its mount point. Needs root: skipped without it, except
// under CI=true, where the tests run as root.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "mode=0700,size="+size); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs: %v (under CI=true the tests run as root)", err)
		}
		t.Skipf("mount tmpfs: %v (needs root)", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return mnt
}
