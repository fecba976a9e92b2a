package query_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// follow runs r.Follow in the background and returns its events as they
// come, and a stop func that returns Follow's error.
func follow(t *testing.T, r *query.Reader, opts query.FollowOptions) (<-chan query.Event, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan query.Event, 1000)
	done := make(chan error, 1)
	go func() {
		done <- r.Follow(ctx, opts, func(e query.Event) error {
			ch <- e
			return nil
		})
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Error("Follow did not return after cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return ch, stop
}

// collect waits for n events from ch, failing after a deadline.
func collect(t *testing.T, ch <-chan query.Event, n int) []query.Event {
	t.Helper()
	var out []query.Event
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case e := <-ch:
			out = append(out, e)
		case <-deadline:
			t.Fatalf("got %d events of %d", len(out), n)
		}
	}
	return out
}

func logEvent(t *testing.T, l *slog.Logger, ev handler.Event) {
	t.Helper()
	if err := handler.Log(context.Background(), l, ev); err != nil {
		t.Fatal(err)
	}
}

// Follow picks up records as they are written, across size rotations, a
// rotation on demand and compression, in order, verified, filtered.
func TestFollowAcrossRotations(t *testing.T) {
	for _, notify := range []bool{false, true} {
		t.Run(fmt.Sprint("notifier=", notify), func(t *testing.T) {
			dir := t.TempDir()
			var n *query.Notifier
			opts := handler.Options{Dir: dir, Key: testKey, App: slog.DiscardHandler,
				Rotate: rotate.Options{MaxBytes: 1200, Compress: true}}
			if notify {
				n = query.NewNotifier()
				opts.Sinks = []handler.Sink{n}
			}
			h, err := handler.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			l := slog.New(h)
			r := newReader(t, dir, testKey)
			ch, stop := follow(t, r, query.FollowOptions{Filter: query.Filter{Action: "start"}, Notifier: n, Poll: 20 * time.Millisecond})
			var want []string
			for i := range 30 {
				action := "start"
				if i%3 == 2 {
					action = "stop"
				} else {
					want = append(want, fmt.Sprint("srv", i))
				}
				logEvent(t, l, handler.Event{Type: handler.AdminAction, Action: action, ResourceType: "mcp_server", Resource: fmt.Sprint("srv", i), Status: handler.StatusSuccess})
				if i == 15 {
					if err := h.Rotate(); err != nil {
						t.Fatal(err)
					}
				}
				if i%10 == 0 {
					time.Sleep(30 * time.Millisecond) // let it catch up now and then
				}
			}
			got := collect(t, ch, len(want))
			files := map[string]bool{}
			for i, e := range got {
				if e.Resource != want[i] || !e.Verified || e.Action != "start" || i > 0 && e.Seq <= got[i-1].Seq {
					t.Errorf("event %d: %+v", i, e)
				}
				files[e.File] = true
			}
			if len(files) < 3 {
				t.Errorf("events from %d files: no rotation seen", len(files))
			}
			select {
			case e := <-ch:
				t.Errorf("extra event %+v", e)
			case <-time.After(100 * time.Millisecond):
			}
			if err := stop(); !errors.Is(err, context.Canceled) {
				t.Errorf("Follow returned %v", err)
			}
		})
	}
}

// From a seq in an old, compressed file: every later event once; Head and
// After = Head give only what comes next.
func TestFollowFromSeqAndHead(t *testing.T) {
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{MaxBytes: 1000, Compress: true})
	l := slog.New(h)
	for i := range 20 {
		logEvent(t, l, handler.Event{Type: "x", Action: "a", Resource: fmt.Sprint("r", i), Status: handler.StatusSuccess})
	}
	seqs := auditSeqs(t, dir)
	r := newReader(t, dir, testKey)
	head, err := r.Head()
	if err != nil || head < seqs[len(seqs)-1] {
		t.Fatalf("head %d %v, last audit seq %d", head, err, seqs[len(seqs)-1])
	}
	ch, _ := follow(t, r, query.FollowOptions{After: seqs[4]})
	got := collect(t, ch, 15)
	for i, e := range got {
		if e.Seq != seqs[5+i] || !e.Verified {
			t.Errorf("event %d: seq %d verified %v, want %d", i, e.Seq, e.Verified, seqs[5+i])
		}
	}
	ch2, _ := follow(t, r, query.FollowOptions{After: head, Poll: 10 * time.Millisecond})
	logEvent(t, l, handler.Event{Type: "x", Action: "new", Status: handler.StatusSuccess})
	if e := collect(t, ch2, 1)[0]; e.Action != "new" {
		t.Errorf("after head: %+v", e)
	}
	if e := collect(t, ch, 1)[0]; e.Action != "new" {
		t.Errorf("first follower: %+v", e)
	}

	empty := newReader(t, t.TempDir()+"/none", testKey)
	if head, err := empty.Head(); head != 0 || err != nil {
		t.Errorf("empty dir: %d %v", head, err)
	}
}

// A bad filter is an error, and fn's error ends Follow.
func TestFollowErrors(t *testing.T) {
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{})
	logEvent(t, slog.New(h), handler.Event{Type: "x", Action: "a", Status: handler.StatusSuccess})
	r := newReader(t, dir, testKey)
	err := r.Follow(context.Background(), query.FollowOptions{Filter: query.Filter{Status: "bogus"}}, nil)
	if pe := (*query.ParamError)(nil); !errors.As(err, &pe) || pe.Param != "status" {
		t.Errorf("bad status: %v", err)
	}
	stop := errors.New("enough")
	if err := r.Follow(context.Background(), query.FollowOptions{}, func(query.Event) error { return stop }); err != stop {
		t.Errorf("fn error: %v", err)
	}
}
