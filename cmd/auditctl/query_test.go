package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/rotate"
)

func runQuery(args ...string) (code int, stdout, stderr string) {
	return runCmd(append([]string{"query"}, args...)...)
}

// queryDir writes 12 keyed audit events over several compressed files:
// resources r0..r11, odd ones denied, r5 by alice from 10.0.0.5.
func queryDir(t *testing.T) (dir, keyFile string) {
	dir = filepath.Join(t.TempDir(), "audit")
	keyFile = filepath.Join(t.TempDir(), "k")
	key := chain.GenerateKey()
	if err := chain.WriteKeyFile(keyFile, key); err != nil {
		t.Fatal(err)
	}
	h, err := handler.New(handler.Options{Dir: dir, Key: key, App: slog.DiscardHandler,
		Rotate: rotate.Options{MaxBytes: 1500, Compress: true}})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(h)
	for i := range 12 {
		ev := handler.Event{Type: handler.CredentialAccess, Action: "get", ResourceType: "credential",
			Resource: fmt.Sprint("r", i), Status: handler.StatusSuccess}
		if i%2 == 1 {
			ev.Status = handler.StatusDenied
		}
		if i == 5 {
			ev.Attrs = []slog.Attr{slog.String("user.id", "alice"), slog.String("client.address", "10.0.0.5"), slog.String("client.claimed_id", "10.0.0.9\x1b[2J")}
			ev.Message = "line one\nline two"
		}
		if err := handler.Log(context.Background(), log, ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, keyFile
}

func resources(t *testing.T, out string) []string {
	t.Helper()
	var rs []string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 8 {
			t.Fatalf("line %q", line)
		}
		rs = append(rs, strings.TrimPrefix(f[7], "credential/"))
	}
	return rs
}

func TestQueryText(t *testing.T) {
	dir, keyFile := queryDir(t)
	code, out, errs := runQuery(dir, "--key-file", keyFile)
	if code != exitOK || errs != "" {
		t.Fatalf("%d %q", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 12 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	// Newest first: r11 is seq 2+11 plus one open and one close record per earlier file.
	if !strings.Contains(lines[0], "  ✓ WARN   credential_access get credential/r11 denied  by - from -  get credential r11 (denied)") ||
		!strings.Contains(lines[11], "  ✓ INFO   credential_access get credential/r0 success") ||
		!strings.HasPrefix(lines[11], "20") || !strings.Contains(lines[11], "  seq 2  ") {
		t.Errorf("output:\n%s", out)
	}
	// Who and from where; what the client claimed is not the address,
	// and is quoted when it holds a control character.
	if !strings.Contains(out, ` denied  by alice from 10.0.0.5 claims "10.0.0.9\x1b[2J"  "line one`) {
		t.Errorf("who/where:\n%s", out)
	}
	// The multi-line message stays on one line, quoted.
	if !strings.Contains(out, `"line one\nline two"`) {
		t.Errorf("message not quoted:\n%s", out)
	}

	// Without the key: shown, unverified, with a note.
	code, out, errs = runQuery(dir)
	if code != exitOK || strings.Count(out, "✗") != 12 || strings.Contains(out, "✓") || !strings.Contains(errs, "12 of 12 events not verified") ||
		!strings.Contains(errs, "--key-file") {
		t.Errorf("without key: %d %q\n%s", code, errs, out)
	}
}

func TestQueryFilters(t *testing.T) {
	dir, keyFile := queryDir(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--status", "denied", "--limit", "3"}, "r11 r9 r7"},
		{[]string{"--order", "oldest", "--limit", "2"}, "r0 r1"},
		{[]string{"--principal", "alice"}, "r5"},
		{[]string{"--client", "10.0.0.5", "--order", "oldest"}, "r5"},
		{[]string{"--resource", "r3", "--resource-type", "credential", "--action", "get", "--event", "credential_access"}, "r3"},
		{[]string{"--resource-type", "mcp_server"}, ""},
		{[]string{"--trace-id", "4bf92f3577b34da6a3ce929d0e0e4736"}, ""},
		{[]string{"--since", "1h", "--status", "success", "--order", "oldest"}, "r0 r2 r4 r6 r8 r10"},
		{[]string{"--until", "2000-01-01T00:00:00Z"}, ""},
		{[]string{"--since", "2000-01-01T00:00:00Z", "--until", "1h", "--limit", "1"}, ""}, // until an hour ago: nothing yet
	} {
		args := append([]string{"--key-file", keyFile, dir}, tc.args...) // flags before and after DIR
		code, out, errs := runQuery(args...)
		if code != exitOK || errs != "" {
			t.Errorf("%v: %d %q", tc.args, code, errs)
			continue
		}
		if got := strings.Join(resources(t, out), " "); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.args, got, tc.want)
		}
	}
}

func TestQueryPages(t *testing.T) {
	old := queryPageSize
	queryPageSize = 5
	defer func() { queryPageSize = old }()
	dir, keyFile := queryDir(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--order", "oldest"}, "r0 r1 r2 r3 r4 r5 r6 r7 r8 r9 r10 r11"},
		{nil, "r11 r10 r9 r8 r7 r6 r5 r4 r3 r2 r1 r0"},
		{[]string{"--limit", "7"}, "r11 r10 r9 r8 r7 r6 r5"},
		{[]string{"--limit", "10", "--order", "oldest", "--status", "success"}, "r0 r2 r4 r6 r8 r10"},
	} {
		code, out, errs := runQuery(append([]string{dir, "--key-file", keyFile}, tc.args...)...)
		if got := strings.Join(resources(t, out), " "); code != exitOK || got != tc.want {
			t.Errorf("%v: %d %q: got %q, want %q", tc.args, code, errs, got, tc.want)
		}
	}
}

func TestQueryJSON(t *testing.T) {
	dir, keyFile := queryDir(t)
	code, out, errs := runQuery(dir, "--key-file", keyFile, "--json", "--status", "denied", "--order", "oldest")
	if code != exitOK {
		t.Fatalf("%d %q", code, errs)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if m["resource"] != fmt.Sprint("r", 2*i+1) || m["verified"] != true || m["seq"] == nil || m["mac"] == nil ||
			!strings.HasPrefix(m["file"].(string), "audit-") || m["line"] == nil || m["status"] != "denied" {
			t.Errorf("line %d: %v", i, m)
		}
	}
}

func TestQueryUsage(t *testing.T) {
	dir, keyFile := queryDir(t)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "exactly one DIR"},
		{[]string{dir, dir}, "exactly one DIR"},
		{[]string{dir, "--since", "yesterday"}, "--since: not an RFC 3339 time"},
		{[]string{dir, "--until", "-1h"}, "--until: not an RFC 3339 time"},
		{[]string{dir, "--status", "ok"}, "--status: must be initiated, success, failed or denied"},
		{[]string{dir, "--order", "up"}, "--order: must be newest or oldest"},
		{[]string{dir, "--limit", "-1"}, "--limit must not be negative"},
		{[]string{dir, "--limit", "x"}, "invalid value"},
		{[]string{dir, "--bogus"}, "flag provided but not defined"},
		{[]string{dir, "--since", "2026-03-02T00:00:00Z", "--until", "2026-03-01T00:00:00Z"}, "--until: must be after since"},
		{[]string{filepath.Join(dir, "missing")}, "no such file"},
		{[]string{filepath.Join(dir, "..", "k")}, "no such file"},
		{[]string{keyFile}, "not a directory"},
		{[]string{dir, "--key-file", filepath.Join(dir, "nokey")}, "read key"},
	} {
		code, out, errs := runQuery(tc.args...)
		if code != exitUsage || out != "" || !strings.Contains(errs, tc.msg) {
			t.Errorf("%v: %d %q %q, want %q", tc.args, code, out, errs, tc.msg)
		}
	}
}
