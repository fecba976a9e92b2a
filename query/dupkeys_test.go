package query_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// dupFirst and dupLater are the first and the later value of each member
// that a record of an older handler version holds twice (FORMAT.md §4:
// the first member counts; the handler now writes a colliding key as
// "_"+key).
var (
	dupFirst = map[string]string{
		"time": "2026-03-01T12:00:00.000000000Z", "level": "WARN", "msg": "first msg",
		"event": "credential_access", "action": "get", "resource_type": "credential", "resource": "db_password",
		"status": "denied", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "user.id": "alice",
		"client.address": "10.0.0.1", "client.id": "cli-tool", "client.claimed_id": "webapp",
	}
	dupLater = map[string]string{
		"time": "2030-06-01T00:00:00.000000000Z", "level": "INFO", "msg": "later msg",
		"event": "admin_action", "action": "delete", "resource_type": "mcp_server", "resource": "obsidian",
		"status": "success", "trace_id": "00000000000000000000000000000001", "user.id": "mallory",
		"client.address": "10.6.6.6", "client.id": "evil-tool", "client.claimed_id": "evilapp",
	}
	dupOrder = []string{"time", "level", "msg", "event", "action", "resource_type", "resource", "status",
		"trace_id", "user.id", "client.address", "client.id", "client.claimed_id"}
)

// dupKeysDir writes, with the real chain writer, a keyed trail whose only
// audit record holds every member a filter or an Event field reads twice:
// first the dupFirst values, then (after an attribute) the dupLater ones,
// as a handler before the underscore rule could write it (e.g. "user.id"
// from the context and again from the record).
func dupKeysDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	w, err := chain.Open(chain.Options{Key: testKey, Rotate: rotate.Options{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	add := func(vals map[string]string) {
		for _, k := range dupOrder {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			kj, _ := json.Marshal(k)
			vj, _ := json.Marshal(vals[k])
			b.Write(kj)
			b.WriteByte(':')
			b.Write(vj)
		}
	}
	add(dupFirst)
	b.WriteString(`,"note":"between"`)
	add(dupLater)
	if err := w.Append([]byte(b.String()), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]byte(`"time":"2026-03-01T12:01:00.000000000Z","level":"INFO","msg":"plain","event":"other"`), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A record that holds a top-level member twice (files of older versions)
// is read by its FIRST member everywhere: every filter, every Event field,
// the JSON that GET /audit/events and the stream send (which a JSON
// parser that keeps the last of duplicate keys, as JavaScript's and Go's
// do, must read as the filter did: the later member is renamed "_"+key),
// and Follow.
func TestDuplicateKeysFirstMemberCounts(t *testing.T) {
	dir := dupKeysDir(t)
	r := newReader(t, dir, testKey)
	ft := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	filters := func(v map[string]string) map[string]query.Filter {
		return map[string]query.Filter{
			"event": {Event: v["event"]}, "action": {Action: v["action"]}, "resource_type": {ResourceType: v["resource_type"]},
			"resource": {Resource: v["resource"]}, "status": {Status: v["status"]}, "trace_id": {TraceID: v["trace_id"]},
			"principal": {Principal: v["user.id"]}, "client.address": {Client: v["client.address"]},
			"client.id": {Client: v["client.id"]}, "client.claimed_id": {Client: v["client.claimed_id"]},
			"since": {Since: ft(v["time"])}, "until": {Until: ft(v["time"]).Add(time.Second)},
		}
	}
	for name, f := range filters(dupFirst) {
		p := mustQuery(t, r, query.Request{Filter: f})
		if !slices.Contains(msgs(p), dupFirst["msg"]) {
			t.Errorf("filter %s on the first member's value: got %v, want the record (msg %q)", name, msgs(p), dupFirst["msg"])
		}
	}
	for name, f := range filters(dupLater) {
		if name == "until" {
			continue // until after the later time also holds for the first
		}
		p := mustQuery(t, r, query.Request{Filter: f})
		for _, e := range p.Events {
			if e.Msg == dupFirst["msg"] || e.Msg == dupLater["msg"] {
				t.Errorf("filter %s matched the record by its later (ignored) member", name)
			}
		}
	}
	p := mustQuery(t, r, query.Request{Filter: query.Filter{Until: ft(dupFirst["time"])}})
	if len(p.Events) != 0 {
		t.Errorf("until the first member's time: %v (the later time decided)", msgs(p))
	}

	p = mustQuery(t, r, query.Request{Filter: query.Filter{Resource: dupFirst["resource"]}})
	if len(p.Events) != 1 {
		t.Fatalf("%+v", p)
	}
	e := p.Events[0]
	if !e.Verified {
		t.Error("the hand-sealed record does not verify")
	}
	got := map[string]string{
		"level": e.Level, "msg": e.Msg, "event": e.Event, "action": e.Action, "resource_type": e.ResourceType,
		"resource": e.Resource, "status": e.Status, "trace_id": e.TraceID, "user.id": e.Principal,
		"client.address": e.Client,
	}
	for k, v := range got {
		if v != dupFirst[k] {
			t.Errorf("Event field for %s = %q, want the first member's %q", k, v, dupFirst[k])
		}
	}
	if !e.Time.Equal(ft(dupFirst["time"])) {
		t.Errorf("Event.Time %v, want the first member's %s", e.Time, dupFirst["time"])
	}

	// The JSON of the event, read the way most parsers read it (the last
	// of duplicate keys wins), says what the filter saw.
	checkJSON := func(where string, b []byte) {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %s: %v", where, b, err)
		}
		for _, k := range dupOrder {
			if m[k] != dupFirst[k] {
				t.Errorf("%s: %q = %v, want the first member's %q", where, k, m[k], dupFirst[k])
			}
			if m["_"+k] != dupLater[k] {
				t.Errorf("%s: %q = %v, want the later member's %q", where, "_"+k, m["_"+k], dupLater[k])
			}
		}
		if m["verified"] != true {
			t.Errorf("%s: verified %v", where, m["verified"])
		}
		keys, err := topLevelKeys(b)
		if err != nil {
			t.Fatal(err)
		}
		for k, n := range keys {
			if n != 1 {
				t.Errorf("%s: key %q %d times", where, k, n)
			}
		}
	}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	checkJSON("json.Marshal(Event)", b)

	h := openLog(t, t.TempDir(), testKey, rotate.Options{})
	srv, err := query.NewHandler(query.HandlerOptions{Reader: r, AuditLog: handler.Logger(slog.New(h)),
		Authorize: func(*http.Request) (string, error) { return "auditor", nil }})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/audit/events?status=denied&principal=alice", nil))
	var body struct{ Events []json.RawMessage }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Events) != 1 {
		t.Fatalf("GET /audit/events?status=denied&principal=alice: %d %s", w.Code, w.Body)
	}
	checkJSON("GET /audit/events", body.Events[0])

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var followed []query.Event
	r.Follow(ctx, query.FollowOptions{Filter: query.Filter{Principal: "alice"}, Poll: 5 * time.Millisecond}, func(e query.Event) error {
		followed = append(followed, e)
		cancel()
		return nil
	})
	if len(followed) != 1 || followed[0].Principal != "alice" || followed[0].Status != "denied" {
		t.Errorf("Follow principal=alice: %+v", followed)
	}
}

// topLevelKeys counts the top-level member names of the JSON object b.
func topLevelKeys(b []byte) (map[string]int, error) {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	seen := map[string]int{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		seen[k.(string)]++
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	return seen, nil
}

// MarshalJSON on records holding names twice, in any spelling: the output
// is valid JSON, holds each name once, and the name itself holds the
// first member's value.
func TestMarshalJSONDuplicateNames(t *testing.T) {
	for _, tc := range []struct {
		rec  string
		want map[string]any // top-level members of the output (besides file, line, verified)
	}{
		{`{"seq":3,"a":1,"a":2}`, map[string]any{"seq": 3.0, "a": 1.0, "_a": 2.0}},
		{`{"seq":3,"a":1,"_a":"own","a":2,"a":3}`, map[string]any{"seq": 3.0, "a": 1.0, "_a": "own", "__a": 2.0, "___a": 3.0}},
		{`{"seq":3, "st\u0061tus" : "denied" , "status":"success" }`, map[string]any{"seq": 3.0, "status": "denied", "_status": "success"}},
		{`{"seq":3,"k\u0000":{"x":[1,"}"]},"k\u0000":"later"}`, map[string]any{"seq": 3.0, "k\x00": map[string]any{"x": []any{1.0, "}"}}, "_k\x00": "later"}},
		{`{"msg":"no seq first","seq":99}`, map[string]any{"seq": 7.0, "msg": "no seq first", "_seq": 99.0}},
		{`{"seq":3,"file":"f1","file":"f2","_file":"own"}`, map[string]any{"seq": 3.0, "__file": "f1", "___file": "f2", "_file": "own"}},
	} {
		b, err := json.Marshal(query.Event{Seq: 7, File: "F", Line: 2, Record: []byte(tc.rec)})
		if err != nil {
			t.Errorf("%s: %v", tc.rec, err)
			continue
		}
		keys, err := topLevelKeys(b)
		if err != nil {
			t.Errorf("%s: output %s: %v", tc.rec, b, err)
			continue
		}
		for k, n := range keys {
			if n != 1 {
				t.Errorf("%s: output %s holds %q %d times", tc.rec, b, k, n)
			}
		}
		var m map[string]any
		json.Unmarshal(b, &m)
		if m["file"] != "F" || m["line"] != 2.0 || m["verified"] != false {
			t.Errorf("%s: output %s: file, line, verified wrong", tc.rec, b)
		}
		delete(m, "file")
		delete(m, "line")
		delete(m, "verified")
		if !reflect.DeepEqual(m, tc.want) {
			t.Errorf("%s: output %s\nmembers %v\nwant    %v", tc.rec, b, m, tc.want)
		}
	}
}

// FuzzMarshalJSONFirstMember: for any JSON object, the JSON MarshalJSON
// makes of it is valid, holds each name once, and, read by a parser that
// keeps the last of duplicate names, gives each name of the record the
// value of its first member (but file, line and verified, which are the
// reader's).
func FuzzMarshalJSONFirstMember(f *testing.F) {
	for _, s := range []string{
		`{"seq":1,"a":1,"a":2}`, `{"a":{"a":1},"a":[1,{"a":2}]}`, `{ "st\u0061tus" :"x" , "status": "y"}`,
		`{"seq":3,"file":"f","file":2,"_file":3}`, `{}`, `{"x":"\"}\\","x":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte("{\"\xff\":1,\"\xfe\":2}")) // two spellings of one name (U+FFFD)
	f.Fuzz(func(t *testing.T, rec []byte) {
		if !json.Valid(rec) {
			return
		}
		dec := json.NewDecoder(strings.NewReader(string(rec)))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			return
		}
		first := map[string]any{}
		var order []string
		for dec.More() {
			k, _ := dec.Token()
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			if _, ok := first[k.(string)]; !ok {
				first[k.(string)] = v
				order = append(order, k.(string))
			}
		}
		b, err := json.Marshal(query.Event{Seq: 1, Record: rec})
		if err != nil {
			t.Fatalf("%s: %v", rec, err)
		}
		keys, err := topLevelKeys(b)
		if err != nil {
			t.Fatalf("%s: output %s: %v", rec, b, err)
		}
		for k, n := range keys {
			if n != 1 {
				t.Fatalf("%s: output %s holds %q %d times", rec, b, k, n)
			}
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		hasSeq := strings.HasPrefix(strings.TrimSpace(string(rec)), `{"seq":`)
		for _, k := range order {
			if k == "file" || k == "line" || k == "verified" || k == "seq" && !hasSeq {
				continue
			}
			if !reflect.DeepEqual(m[k], first[k]) {
				t.Fatalf("%s: output %s: %q = %v, want the first member's %v", rec, b, k, m[k], first[k])
			}
		}
	})
}
