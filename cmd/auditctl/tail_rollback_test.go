package main

import (
	"context"
	"fmt"
	"github.com/slogaudit/slogaudit/internal/faultfile"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/rotate"
)

// tail prints a record whose write the writer then rolls back (auditctl
// tail runs in another process than the writer and cannot know): it says
// so with a RETRACTED line, and prints the record that took the seq.
func TestTailPrintsRetraction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	keyFile := filepath.Join(t.TempDir(), "k")
	key := chain.GenerateKey()
	if err := chain.WriteKeyFile(keyFile, key); err != nil {
		t.Fatal(err)
	}
	fs := faultfile.New()
	h, err := handler.New(handler.Options{Dir: dir, Key: key, App: slog.DiscardHandler, OnError: func(error) {},
		Rotate: rotate.Options{Sync: rotate.SyncAlways, OpenFile: fs.Open}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	log := func(res string) error {
		return handler.Log(context.Background(), slog.New(h), handler.Event{Type: handler.AdminAction, Action: "start",
			ResourceType: "mcp_server", Resource: res, Status: handler.StatusSuccess})
	}
	if err := log("before"); err != nil {
		t.Fatal(err)
	}
	out, _, stop := startTail(t, dir, "--key-file", keyFile, "-n", "1", "--event", "admin_action", "--poll", "5ms")
	waitLines(t, out, 1)
	fs.Arm()
	done := make(chan error, 1)
	go func() { done <- log("phantom") }()
	<-fs.Entered
	waitLines(t, out, 2) // the phantom, printed
	close(fs.Release)
	if err := <-done; err == nil {
		t.Fatal("the phantom's write did not fail")
	}
	if err := log("real"); err != nil {
		t.Fatal(err)
	}
	lines := waitLines(t, out, 4)
	stop()
	if !strings.Contains(lines[1], "mcp_server/phantom") || !strings.HasPrefix(lines[2], "RETRACTED  seq ") ||
		!strings.Contains(lines[3], "mcp_server/real") {
		t.Fatalf("got:\n%s", strings.Join(lines, "\n"))
	}
	var seq int
	fmt.Sscanf(lines[1][strings.Index(lines[1], "seq "):], "seq %d", &seq)
	if !strings.HasPrefix(lines[2], fmt.Sprintf("RETRACTED  seq %d  (", seq)) {
		t.Errorf("retracted the wrong seq (the phantom's is %d):\n%s", seq, strings.Join(lines, "\n"))
	}
	time.Sleep(20 * time.Millisecond)
	if n := len(out.lines()); n != 4 {
		t.Errorf("%d lines:\n%s", n, out)
	}
}
