package query_test

import (
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
)

// waitAccesses polls until there are n audit_access events of action, or
// fails at a deadline.
func (f *uiFixture) waitAccesses(action string, n int) []map[string]any {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := f.accesses(action)
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d %s events after 10s, want %d: %v", len(evs), action, n, evs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The end of a stream is an audit event (action stream_end), whether the
// client went away or the server shut down, with how long the stream was
// open and how many records it sent.
func TestStreamEndAudited(t *testing.T) {
	f := newUIFixture(t, nil)
	resp := f.get("/audit/stream?backlog=3&action=start", "alice-token")
	ch := readSSE(resp.Body)
	for range 3 {
		if m := next(t, ch); m.event != "audit" {
			t.Fatalf("backlog: %+v", m)
		}
	}
	if m := next(t, ch); m.event != "live" {
		t.Fatalf("want live, got %+v", m)
	}
	f.log("start", "srv9", handler.StatusSuccess)
	if m := next(t, ch); m.event != "audit" {
		t.Fatalf("live: %+v", m)
	}
	opened := time.Now()
	if evs := f.accesses(query.ActionStreamEnd); len(evs) != 0 {
		t.Fatalf("end event while the stream is open: %v", evs)
	}
	resp.Body.Close() // the client goes away

	end := f.waitAccesses(query.ActionStreamEnd, 1)[0]
	if end["status"] != "success" || end["reason"] != query.StreamEndClientGone || end["user.id"] != "alice" ||
		end["resource_type"] != "audit_log" || end[query.StreamEventsKey] != 4.0 || end["query"].(map[string]any)["backlog"] != "3" {
		t.Errorf("end event %v", end)
	}
	if d, ok := end[query.StreamDurationKey].(float64); !ok || d <= 0 || d > time.Since(opened).Seconds()+10 {
		t.Errorf("stream.duration %v", end[query.StreamDurationKey])
	}

	// The server shuts down (UI.Close) under an open stream.
	resp = f.get("/audit/stream?action=nothing_matches", "alice-token")
	defer resp.Body.Close()
	ch = readSSE(resp.Body)
	if m := next(t, ch); m.event != "live" {
		t.Fatalf("want live, got %+v", m)
	}
	f.ui.Close()
	ends := f.waitAccesses(query.ActionStreamEnd, 2)
	if len(ends) != 2 || ends[1]["reason"] != query.StreamEndShutdown || ends[1]["status"] != "success" || ends[1][query.StreamEventsKey] != 0.0 {
		t.Errorf("end events %v", ends)
	}
	if opens := f.accesses(query.ActionStream); len(opens) != 2 {
		t.Errorf("stream events %v", opens)
	}
}
