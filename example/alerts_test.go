package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
)

type sseEvent struct {
	id, event string
	data      map[string]any
}

// openStream opens GET /audit/stream?params with the admin token and
// returns its events (comments dropped) on a channel.
// getStream opens GET /audit/stream?params as the admin (-admin-token
// tok-admin) for as long as ctx lasts.
func getStream(ctx context.Context, t *testing.T, p *proc, params string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.base+"/audit/stream?"+params, nil)
	req.Header.Set("Authorization", "Bearer tok-admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	return resp
}

func openStream(t *testing.T, p *proc, params string) <-chan sseEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp := getStream(ctx, t, p, params)
	ch := make(chan sseEvent, 100)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "" && cur.event != "":
				ch <- cur
				cur = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				cur.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.event = line[7:]
			case strings.HasPrefix(line, "data: "):
				json.Unmarshal([]byte(line[6:]), &cur.data)
			}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return e
	case <-time.After(15 * time.Second):
		t.Fatal("no stream event within 15s")
	}
	return sseEvent{}
}

func alertRule(e map[string]any) string {
	if a, ok := e["alert"].(map[string]any); ok {
		s, _ := a["rule"].(string)
		return s
	}
	return ""
}

// Twenty reads of missing credentials from one client within a minute give
// exactly one credential_probing alert: in the audit file, on the live
// stream, and through the example's OnAlert callback (which prints a
// "SECURITY ALERT (callback)" line on stderr; counting those lines is how
// this test sees the callback, across the process boundary).
func TestExampleProbingGivesOneAlert(t *testing.T) {
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "audit.key")
	p := start(t, "-audit-dir", dir, "-key-file", keyFile, "-admin-token", "tok-admin", "-sync", "none")

	// The live view and its stream are the admin's only.
	for _, path := range []string{"/audit/ui", "/audit/stream", "/audit/stream?event=security_alert"} {
		if code, _ := p.doAs(t, "", "GET", path, ""); code != 401 {
			t.Errorf("unauthenticated %s: %d, want 401", path, code)
		}
	}

	// The stream of alerts, from now on. Opening it is an audit-log read by
	// a principal new to it, which is itself an alert (audit_reader_new).
	alerts := openStream(t, p, "event=security_alert")
	if e := nextEvent(t, alerts); e.event != "live" {
		t.Fatalf("want live, got %+v", e)
	}
	if e := nextEvent(t, alerts); alertRule(e.data) != "audit_reader_new" || e.data["verified"] != true {
		t.Fatalf("want the audit_reader_new alert, got %+v", e)
	}

	start := time.Now()
	for i := range 20 {
		if code, _ := p.do(t, "GET", fmt.Sprintf("/credentials/missing_%d", i), ""); code != 404 {
			t.Fatalf("GET missing credential: %d", code)
		}
	}
	if d := time.Since(start); d > 50*time.Second {
		t.Fatalf("20 requests took %v: not within the rule's minute", d)
	}
	// A marker behind them in the chain: five failed admin actions fire
	// admin_failures. The stream is in seq order, so once the marker is
	// here every alert before it has been sent.
	for range 5 {
		if code, _ := p.do(t, "POST", "/servers/broken/start", ""); code != 500 {
			t.Fatalf("start broken: %d", code)
		}
	}
	var rules []string
	for {
		e := nextEvent(t, alerts)
		if e.event != "audit" {
			continue
		}
		rules = append(rules, alertRule(e.data))
		if alertRule(e.data) == "credential_probing" {
			a := e.data["alert"].(map[string]any)
			if a["subject"] != "127.0.0.1" || a["count"] != 10.0 || len(a["trace_ids"].([]any)) != 10 || e.data["level"] != "WARN" || e.data["verified"] != true {
				t.Errorf("probing alert on the stream: %v", e.data)
			}
		}
		if alertRule(e.data) == "admin_failures" {
			break
		}
	}
	if strings.Join(rules, " ") != "credential_probing admin_failures" {
		t.Errorf("alerts on the stream: %v, want one credential_probing then the marker", rules)
	}
	p.stop(t)

	var inFile []string
	for _, e := range events(t, dir) {
		if e["event"] == "security_alert" {
			inFile = append(inFile, alertRule(e))
		}
	}
	if strings.Join(inFile, " ") != "audit_reader_new credential_probing admin_failures" {
		t.Errorf("security_alert records in the audit file: %v", inFile)
	}
	if n := strings.Count(p.stderr.String(), `SECURITY ALERT (callback) WARN credential_probing: client "127.0.0.1", 10 in 1m0s`); n != 1 {
		t.Errorf("%d probing callbacks on stderr, want 1:\n%s", n, p.stderr)
	}
	if n := strings.Count(p.stderr.String(), "SECURITY ALERT (callback)"); n != 3 {
		t.Errorf("%d callbacks, want 3", n)
	}
	key, _ := chain.ReadKeyFile(keyFile + ".initial")
	if rep := verifyDir(t, dir, key); !rep.Intact || len(rep.Problems()) != 0 {
		t.Fatalf("chain after alerts: %+v", rep.Problems())
	}
}

// A restart does not make the admin a new audit-log reader again: the
// audit_reader_new rule learns the trail's readers at start.
func TestExampleKnownReadersSurviveRestart(t *testing.T) {
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "audit.key")
	args := []string{"-audit-dir", dir, "-key-file", keyFile, "-admin-token", "tok-admin", "-sync", "none"}
	for range 2 {
		p := start(t, args...)
		var page map[string]any
		if code := getJSON(t, p, "/audit/events?limit=1", "tok-admin", &page); code != 200 {
			t.Fatalf("GET /audit/events: %d", code)
		}
		p.stop(t)
	}
	n := 0
	for _, e := range events(t, dir) {
		if e["event"] == "security_alert" && alertRule(e) == "audit_reader_new" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d audit_reader_new alerts over two starts, want 1", n)
	}
}

// An alert's subject can be client text (a rule keyed by resource: the
// credential name from the URL). The example's callback line on stderr
// quotes it: a newline cannot forge a log line, ESC and BEL do not reach
// the operator's terminal.
func TestAlertSubjectQuotedOnStderr(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alerts.json")
	if err := os.WriteFile(cfg, []byte(`{"rules":[{"id":"credential_denied_burst","match":[{"event":["credential_access"],"status":["denied"]}],"by":"resource","threshold":2,"window":"1m"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, "-audit-dir", filepath.Join(dir, "audit"), "-key-file", filepath.Join(dir, "audit.key"), "-alerts", cfg)
	path := "/credentials/x%0AAUDIT%20FAILURE:%20disk%20full%1B%5B2J%1B%5D0;pwned%07"
	for range 2 {
		resp, err := http.Get(p.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var line string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		out := p.stderr.String()
		if i := strings.Index(out, "SECURITY ALERT (callback)"); i >= 0 {
			if j := strings.Index(out[i:], "written: "); j >= 0 {
				line = out[i : i+j]
				break
			}
		}
	}
	if line == "" {
		t.Fatalf("no alert on stderr:\n%s", p.stderr)
	}
	if strings.ContainsAny(line, "\n\x1b\x07") || !strings.Contains(line, `resource "credential/x\nAUDIT FAILURE: disk full\x1b[2J\x1b]0;pwned\a"`) {
		t.Errorf("alert line: %q", line)
	}
}

// Text from a request (here a path with a right-to-left override, a zero
// width space and a C1 control) reaches the app log on stderr escaped, as
// in the audit file: raw, it would reorder or hide what the operator's
// terminal shows, or act on it.
func TestAppLogEscapesTerminalControls(t *testing.T) {
	dir := t.TempDir()
	p := start(t, "-audit-dir", filepath.Join(dir, "audit"), "-key-file", filepath.Join(dir, "audit.key"))
	resp, err := http.Get(p.base + "/credentials/txt.%E2%80%AEexe%E2%80%8B%C2%9B")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var out string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if out = p.stderr.String(); strings.Contains(out, `txt.\u202eexe\u200b\u009b`) {
			break
		}
	}
	if !strings.Contains(out, `txt.\u202eexe\u200b\u009b`) {
		t.Errorf("the path is not in the app log, escaped:\n%s", out)
	}
	if strings.ContainsAny(out, "\u202e\u200b\u009b") {
		t.Errorf("raw controls in the app log:\n%q", out)
	}
}
