package main

import (
	"bufio"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/middleware"
)

// The live stream's flushes go through the middleware, and a stream the
// client closes is a delivered response: its activity record is a plain
// success, not marked as cut off.
func TestExampleStreamClosedByClientNotCutOff(t *testing.T) {
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "audit.key")
	p := start(t, "-audit-dir", dir, "-key-file", keyFile, "-admin-token", "tok-admin", "-sync", "none")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	resp := getStream(ctx, t, p, "backlog=1")
	// "live" arrives while the handler runs: it was flushed.
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != "event: live" {
	}
	if sc.Err() != nil || sc.Text() != "event: live" {
		t.Fatalf("no live event: %v", sc.Err())
	}
	cancel() // the client leaves
	resp.Body.Close()

	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, e := range events(t, dir) {
			if e["event"] != "http_request" || e["url.path"] != "/audit/stream" {
				continue
			}
			if e["status"] != "success" || e["http.response.status_code"] != 200.0 {
				t.Errorf("stream's record: status %v code %v", e["status"], e["http.response.status_code"])
			}
			for _, k := range []string{middleware.ResponseWriteErrorKey, middleware.CancelCauseKey} {
				if v, ok := e[k]; ok {
					t.Errorf("a stream the client closed is marked as cut off: %s=%v", k, v)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no activity record of the stream within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
