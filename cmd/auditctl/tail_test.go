package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/rotate"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) lines() []string {
	out := strings.TrimSuffix(s.String(), "\n")
	if out == "" {
		return nil
	}
	return strings.Split(out, "\n")
}

// startTail runs auditctl tail in the background; stop ends it and returns
// its exit code.
func startTail(t *testing.T, args ...string) (out, errs *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errs = new(syncBuffer), new(syncBuffer)
	done := make(chan int, 1)
	go func() { done <- tail(ctx, args, out, errs) }()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(10 * time.Second):
				t.Error("tail did not stop")
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return out, errs, stop
}

// waitLines waits until out has n lines.
func waitLines(t *testing.T, out *syncBuffer, n int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ls := out.lines()
		if len(ls) >= n {
			return ls
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d lines of %d after 10s:\n%s", len(ls), n, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tail prints the last N matching events, then follows the files while the
// writer appends, rotates by size and on demand, and compresses.
func TestTailFollowsRotations(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	keyFile := filepath.Join(t.TempDir(), "k")
	key := chain.GenerateKey()
	if err := chain.WriteKeyFile(keyFile, key); err != nil {
		t.Fatal(err)
	}
	h, err := handler.New(handler.Options{Dir: dir, Key: key, App: slog.DiscardHandler,
		Rotate: rotate.Options{MaxBytes: 1500, Compress: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l := slog.New(h)
	logN := func(from, to int) {
		for i := from; i < to; i++ {
			ev := handler.Event{Type: handler.CredentialAccess, Action: "get", ResourceType: "credential",
				Resource: fmt.Sprint("r", i), Status: handler.StatusSuccess}
			if i%2 == 1 {
				ev.Status = handler.StatusDenied
			}
			if err := handler.Log(context.Background(), l, ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	logN(0, 10)
	out, errs, stop := startTail(t, dir, "--key-file", keyFile, "-n", "3", "--status", "denied", "--poll", "20ms")
	lines := waitLines(t, out, 3)
	if got := resources(t, strings.Join(lines, "\n")); strings.Join(got, " ") != "r5 r7 r9" {
		t.Fatalf("last 3 denied: %v\n%s", got, out)
	}
	logN(10, 20)
	if err := h.Rotate(); err != nil {
		t.Fatal(err)
	}
	logN(20, 30)
	lines = waitLines(t, out, 3+10)
	want := []string{"r5", "r7", "r9"}
	for i := 11; i < 30; i += 2 {
		want = append(want, fmt.Sprint("r", i))
	}
	if got := resources(t, strings.Join(lines, "\n")); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("followed: %v\nwant %v", got, want)
	}
	for _, line := range lines {
		if !strings.Contains(line, " ✓ WARN ") {
			t.Errorf("not verified: %q", line)
		}
	}
	files, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	if len(files) < 4 {
		t.Errorf("only %d files: no rotations to follow", len(files))
	}
	if code := stop(); code != exitOK || errs.String() != "" {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	if n := len(out.lines()); n != 13 {
		t.Errorf("%d lines, want 13:\n%s", n, out)
	}
}

// --json, -n 0 (only new events), and no key (shown unverified).
func TestTailJSONOnlyNew(t *testing.T) {
	dir, _ := queryDir(t)
	out, _, stop := startTail(t, "--json", "-n", "0", "--poll", "20ms", dir)
	time.Sleep(100 * time.Millisecond)
	if out.String() != "" {
		t.Fatalf("-n 0 printed old events:\n%s", out)
	}
	stop()
	out, _, stop = startTail(t, "--json", "-n", "2", "--resource", "r5", "--poll", "20ms", dir)
	lines := waitLines(t, out, 1)
	var e map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &e); err != nil || e["resource"] != "r5" || e["verified"] != false || e["user.id"] != "alice" {
		t.Fatalf("%v %v", e, err)
	}
	stop()
}

func TestTailUsageErrors(t *testing.T) {
	dir, _ := queryDir(t)
	for _, args := range [][]string{
		{},
		{dir, dir},
		{dir, "-n", "-1"},
		{dir, "-n", "5000"},
		{dir, "--status", "weird"},
		{dir, "--since", "yesterday"},
		{dir, "--poll", "0s"},
		{filepath.Join(dir, "missing")},
		{dir, "--key-file", filepath.Join(dir, "missing")},
	} {
		if code, _, errs := runCmd(append([]string{"tail"}, args...)...); code != exitUsage || errs == "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
	}
}
