package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// clock is an injected clock for the alert windows.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// at sets the clock to the start plus d.
func (c *clock) at(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC).Add(d)
}

// alertFixture is a handler with alert rules, the clock of their windows
// and the alerts its callback got.
type alertFixture struct {
	*fixture
	clock  *clock
	mu     sync.Mutex
	alerts []Alert
}

func newAlertFixture(t *testing.T, rules []AlertRule, maxKeys int) *alertFixture {
	t.Helper()
	af := &alertFixture{clock: newClock()}
	af.fixture = newFixture(t, Options{App: slog.DiscardHandler, Alerts: &AlertOptions{
		Rules: rules, Now: af.clock.Now, MaxKeys: maxKeys,
		OnAlert: func(a Alert) {
			af.mu.Lock()
			defer af.mu.Unlock()
			af.alerts = append(af.alerts, a)
		},
	}})
	return af
}

func (af *alertFixture) got() []Alert {
	af.mu.Lock()
	defer af.mu.Unlock()
	return append([]Alert(nil), af.alerts...)
}

// log writes a credential read of key by principal from client, at offset d
// on the clock.
func (af *alertFixture) log(t *testing.T, d time.Duration, ev Event, principal, client string) {
	t.Helper()
	af.clock.at(d)
	if principal != "" {
		ev.Attrs = append(ev.Attrs, slog.String("user.id", principal))
	}
	if client != "" {
		ev.Attrs = append(ev.Attrs, slog.String("client.address", client))
	}
	if err := Log(context.Background(), slog.New(af.h), ev); err != nil {
		t.Fatal(err)
	}
}

// alertRecords returns the security_alert records in the audit file.
func (af *alertFixture) alertRecords(t *testing.T) []map[string]any {
	var out []map[string]any
	for _, r := range af.records(t) {
		if r["event"] == SecurityAlert {
			out = append(out, r)
		}
	}
	return out
}

var missing = Event{Type: CredentialAccess, Action: "get", ResourceType: "credential", Resource: "nope", Status: StatusFailed, Reason: "not_found"}

func probingRule(threshold int, window time.Duration) AlertRule {
	r := DefaultAlertRules()[0]
	r.Threshold, r.Window = threshold, window
	return r
}

// A counting rule fires when Threshold events are less than Window apart,
// counting back from the newest; then the key is quiet for Cooldown.
func TestAlertCountWindowArithmetic(t *testing.T) {
	af := newAlertFixture(t, []AlertRule{probingRule(3, time.Minute)}, 0)
	s := time.Second
	steps := []struct {
		at    time.Duration
		fires bool
	}{
		{0, false},
		{30 * s, false},
		{60 * s, false},    // the first is exactly Window old: out
		{89 * s, true},     // 30, 60, 89
		{100 * s, false},   // cooldown until 149
		{149*s - 1, false}, // still quiet (suppressed: 2)
		{149 * s, true},    // 100, 149-1ns, 149: in the window, cooldown over
		{300 * s, false},   // a lone event long after
		{359*s + 1, false}, // 300 and 359: two
		{360*s - 1, true},  // three within 60s
		{500 * s, false},
		{560 * s, false},     // 360 is 200s old
		{619*s + 999, false}, // 500, 560, 619.000000999: 500 is out
		{620*s - 1000, true}, // 560, 619.000000999, 619.999999: 59.999999s apart
	}
	want := 0
	for i, st := range steps {
		af.log(t, st.at, missing, "", "10.0.0.1")
		if st.fires {
			want++
		}
		if n := len(af.got()); n != want {
			t.Fatalf("step %d (at %v): %d alerts, want %d", i, st.at, n, want)
		}
	}
	as := af.got()
	if a := as[1]; a.Suppressed != 2 || a.Count != 3 || a.First.Sub(newClock().t) != 100*s || a.Last.Sub(newClock().t) != 149*s {
		t.Errorf("second alert: %+v", a)
	}
	if a := as[0]; a.Rule != "credential_probing" || a.By != ByClient || a.Subject != "10.0.0.1" || a.Count != 3 ||
		a.Threshold != 3 || a.Window != time.Minute || a.First.Sub(newClock().t) != 30*s || a.Last.Sub(newClock().t) != 89*s {
		t.Errorf("first alert: %+v", a)
	}
	if recs := af.alertRecords(t); len(recs) != len(as) {
		t.Errorf("%d alert records, %d callbacks", len(recs), len(as))
	}
}

// Keys count separately; events without the key's member are not counted.
func TestAlertKeysAreSeparate(t *testing.T) {
	af := newAlertFixture(t, []AlertRule{probingRule(3, time.Minute)}, 0)
	for i := range 2 {
		af.log(t, time.Duration(i)*time.Second, missing, "", "10.0.0.1")
		af.log(t, time.Duration(i)*time.Second, missing, "", "10.0.0.2")
		af.log(t, time.Duration(i)*time.Second, missing, "", "") // no client
	}
	if n := len(af.got()); n != 0 {
		t.Fatalf("%d alerts for two events per client", n)
	}
	af.log(t, 3*time.Second, missing, "", "10.0.0.2")
	if as := af.got(); len(as) != 1 || as[0].Subject != "10.0.0.2" {
		t.Fatalf("alerts %+v", as)
	}
	// Successful reads and other events do not count.
	ok := missing
	ok.Status, ok.Reason = StatusSuccess, ""
	for range 5 {
		af.log(t, 4*time.Second, ok, "", "10.0.0.1")
	}
	if n := len(af.got()); n != 1 {
		t.Fatalf("%d alerts", n)
	}
	// A denied read matches the rule's second alternative.
	denied := missing
	denied.Status, denied.Reason = StatusDenied, ""
	af.log(t, 5*time.Second, denied, "", "10.0.0.1")
	if as := af.got(); len(as) != 2 || as[1].Subject != "10.0.0.1" {
		t.Fatalf("alerts %+v", as)
	}
}

// The acceptance case in-process: twenty missing-credential reads from one
// client within a minute give one alert record and one callback, not twenty;
// the record carries the triggering trace ids.
func TestAlertOnceForABurst(t *testing.T) {
	af := newAlertFixture(t, nil, 0) // the default rules
	var traces []string
	for i := range 20 {
		tid := trace.TraceID{byte(i + 1)}
		traces = append(traces, tid.String())
		ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: trace.SpanID{1}, TraceFlags: trace.FlagsSampled}))
		af.clock.at(time.Duration(i) * 2 * time.Second)
		ev := missing
		ev.Resource = fmt.Sprint("key", i)
		ev.Attrs = []slog.Attr{slog.String("client.address", "192.0.2.7")}
		if err := Log(ctx, slog.New(af.h), ev); err != nil {
			t.Fatal(err)
		}
	}
	as := af.got()
	recs := af.alertRecords(t)
	if len(as) != 1 || len(recs) != 1 {
		t.Fatalf("%d callbacks, %d alert records: %+v", len(as), len(recs), as)
	}
	rec := recs[0]
	al := rec[AlertKey].(map[string]any)
	if rec["level"] != "WARN" || rec["resource"] != "credential_probing" || rec["resource_type"] != ResourceTypeRule ||
		rec["action"] != ActionAlert || rec[StatusKey] != string(StatusSuccess) || rec["trace_id"] != traces[9] ||
		al["rule"] != "credential_probing" || al["by"] != "client" || al["subject"] != "192.0.2.7" ||
		al["window"] != "1m0s" || al["count"] != 10.0 || al["threshold"] != 10.0 {
		t.Errorf("alert record %v", rec)
	}
	ids, _ := al["trace_ids"].([]any)
	if len(ids) != 10 || ids[0] != traces[0] || ids[9] != traces[9] {
		t.Errorf("trace_ids %v, want the first ten", ids)
	}
	if as[0].Err != nil || strings.Join(as[0].TraceIDs, ",") != strings.Join(traces[:10], ",") {
		t.Errorf("callback %+v", as[0])
	}
}

// Concurrent loggers: still one alert per key and window.
func TestAlertConcurrent(t *testing.T) {
	af := newAlertFixture(t, []AlertRule{probingRule(10, time.Minute)}, 0)
	l := slog.New(af.h)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 25 {
				ev := missing
				ev.Attrs = []slog.Attr{slog.String("client.address", fmt.Sprint("10.0.0.", i%2))}
				if err := Log(context.Background(), l, ev); err != nil {
					t.Error(g, err)
				}
			}
		})
	}
	wg.Wait()
	if as := af.got(); len(as) != 2 || as[0].Subject == as[1].Subject {
		t.Fatalf("alerts %+v", as)
	}
}

// A distinct rule counts distinct values per key within the window.
func TestAlertDistinctWindow(t *testing.T) {
	r := DefaultAlertRules()[1] // credential_harvest
	r.Threshold, r.Window = 3, time.Minute
	af := newAlertFixture(t, []AlertRule{r}, 0)
	read := func(d time.Duration, key, principal string) {
		ev := Event{Type: CredentialAccess, Action: "get", ResourceType: "credential", Resource: key, Status: StatusSuccess}
		af.log(t, d, ev, principal, "10.0.0.1")
	}
	s := time.Second
	read(0, "a", "bob")
	read(1*s, "a", "bob")
	read(2*s, "b", "bob")
	read(3*s, "b", "bob")
	read(4*s, "c", "alice") // another principal
	read(5*s, "b", "")      // no principal: not counted
	if n := len(af.got()); n != 0 {
		t.Fatalf("%d alerts for two distinct keys", n)
	}
	read(60*s, "c", "bob") // a (at 1s) is 59s old: a, b, c
	as := af.got()
	if len(as) != 1 || as[0].Subject != "bob" || as[0].Count != 3 || as[0].Distinct != ByResource ||
		as[0].First.Sub(newClock().t) != 1*s {
		t.Fatalf("alerts %+v", as)
	}
	// After the cooldown, a, b, c must all be read again within the window.
	read(125*s, "a", "bob")
	read(150*s, "b", "bob")
	read(186*s, "c", "bob") // a is 61s old
	if n := len(af.got()); n != 1 {
		t.Fatalf("%d alerts; a value older than the window counted", n)
	}
	read(187*s, "a", "bob")
	if n := len(af.got()); n != 2 {
		t.Fatalf("%d alerts, want 2", n)
	}
}

// A first-seen rule fires for a key not seen within its window.
func TestAlertFirstSeen(t *testing.T) {
	r := DefaultAlertRules()[3] // audit_reader_new
	r.Window = time.Hour
	r.Known = []string{"ops"}
	af := newAlertFixture(t, []AlertRule{r}, 0)
	access := Event{Type: AuditAccess, Action: "query", ResourceType: "audit_log", Resource: "audit", Status: StatusSuccess}
	af.log(t, 0, access, "admin", "")
	af.log(t, time.Minute, access, "admin", "")
	af.log(t, 2*time.Minute, access, "ops", "") // known
	denied := access
	denied.Status = StatusDenied
	af.log(t, 3*time.Minute, denied, "eve", "")     // not a read
	af.log(t, 60*time.Minute, access, "admin", "")  // 59 minutes since the last
	af.log(t, 121*time.Minute, access, "admin", "") // 61 minutes since the last
	as := af.got()
	if len(as) != 2 || as[0].Subject != "admin" || as[1].Last.Sub(newClock().t) != 121*time.Minute || as[0].Threshold != 1 {
		t.Fatalf("alerts %+v", as)
	}
	if recs := af.alertRecords(t); len(recs) != 2 || !strings.Contains(recs[0]["msg"].(string), "principal admin") {
		t.Fatalf("records %v", recs)
	}
}

// ReportVerifyFailure writes the failure event, which raises one ERROR
// alert an hour.
func TestReportVerifyFailure(t *testing.T) {
	af := newAlertFixture(t, nil, 0)
	for i, d := range []time.Duration{0, 10 * time.Minute, 61 * time.Minute} {
		af.clock.at(d)
		if err := af.h.ReportVerifyFailure(errors.New("MODIFIED line 4 seq 11"), fmt.Sprint("audit-x.jsonl line ", i)); err != nil {
			t.Fatal(err)
		}
	}
	as := af.got()
	if len(as) != 2 || as[0].Rule != "chain_verification_failed" || as[0].Severity != slog.LevelError {
		t.Fatalf("alerts %+v", as)
	}
	var failures, alerts int
	for _, r := range af.records(t) {
		switch r["event"] {
		case ChainVerification:
			failures++
			if r["status"] != "failed" || r["error"] != "MODIFIED line 4 seq 11" || r["level"] != "ERROR" || r["resource_type"] != "audit_log" {
				t.Errorf("failure record %v", r)
			}
		case SecurityAlert:
			alerts++
			if r["level"] != "ERROR" {
				t.Errorf("alert record %v", r)
			}
		}
	}
	if failures != 3 || alerts != 2 {
		t.Errorf("%d failure records, %d alert records", failures, alerts)
	}
	// Without alert rules the failure is still on record.
	f := newFixture(t, Options{App: slog.DiscardHandler})
	if err := f.h.ReportVerifyFailure(errors.New("x"), ""); err != nil {
		t.Fatal(err)
	}
	if rs := f.records(t); len(rs) != 1 || rs[0]["event"] != ChainVerification {
		t.Fatalf("records %v", rs)
	}
}

// A rule that matches everything, alert records included, with threshold
// 1: each event gives one alert, and the alerts themselves are not counted.
func TestAlertDoesNotTriggerItself(t *testing.T) {
	af := newAlertFixture(t, []AlertRule{{ID: "all", By: ByAll, Window: time.Nanosecond, Threshold: 1, Severity: slog.LevelWarn}}, 0)
	for i := range 3 {
		af.log(t, time.Duration(i)*time.Second, missing, "", "")
	}
	if as, recs := af.got(), af.alertRecords(t); len(as) != 3 || len(recs) != 3 {
		t.Fatalf("%d alerts, %d records", len(as), len(recs))
	}
}

// Rules read the who from the context, WithAttrs and the record; not from
// inside groups.
func TestAlertFieldSources(t *testing.T) {
	var seen []AlertEvent
	var mu sync.Mutex
	rule := AlertRule{ID: "spy", By: ByAll, Window: time.Hour, Threshold: 1000, Func: func(e AlertEvent) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, e)
		return false
	}}
	f := newFixture(t, Options{App: slog.DiscardHandler, Alerts: &AlertOptions{Rules: []AlertRule{rule}},
		ContextAttrs: func(ctx context.Context) []slog.Attr {
			return []slog.Attr{slog.String("client.address", "10.1.1.1"), slog.String("user.id", "ctx-user")}
		}})
	l := Logger(slog.New(f.h))
	l.With("user.id", "with-user").Info("a", "event", "e1", "resource", "r1")
	l.Info("b", "event", "e2", "user.id", "rec-user")
	l.WithGroup("g").Info("c", "event", "e3")
	slog.New(f.h).Info("not audited", "event", "e4")
	if len(seen) != 3 {
		t.Fatalf("seen %+v", seen)
	}
	// The first member of a name counts, as in the file: the context's
	// principal, not one logged after it.
	want := []AlertEvent{
		{Event: "e1", Resource: "r1", Principal: "ctx-user", Client: "10.1.1.1"},
		{Event: "e2", Principal: "ctx-user", Client: "10.1.1.1"},
		{Principal: "ctx-user", Client: "10.1.1.1"},
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, seen[i], want[i])
		}
	}
	recs := f.records(t)
	for i, later := range []string{"with-user", "rec-user"} {
		if recs[i]["user.id"] != "ctx-user" || recs[i]["_user.id"] != later {
			t.Errorf("record %d in the file: %v", i, recs[i])
		}
	}
}

// The memory bound: 100k distinct clients probing once each keep at most
// MaxKeys keys per rule, the least recently seen forgotten first.
func TestAlertMemoryBound(t *testing.T) {
	af := newAlertFixture(t, nil, 0) // defaults: MaxKeys 10000 per rule
	e := af.h.c.alerts
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 100_000
	for i := range n {
		ev := AlertEvent{Event: CredentialAccess, Action: "get", ResourceType: "credential", Resource: fmt.Sprint("k", i),
			Status: "failed", Reason: "not_found", Client: fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255),
			Principal: fmt.Sprint("user", i)}
		e.observe(context.Background(), &ev)
		ev.Status, ev.Reason = "success", ""
		e.observe(context.Background(), &ev) // credential_harvest, per principal
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	for _, r := range e.rules {
		r.mu.Lock()
		nk, ev := len(r.keys), r.evicted
		r.mu.Unlock()
		switch r.ID {
		case "credential_probing", "credential_harvest":
			if nk != DefaultMaxKeys || ev != n-DefaultMaxKeys {
				t.Errorf("%s: %d keys, %d evicted", r.ID, nk, ev)
			}
		default:
			if nk != 0 {
				t.Errorf("%s: %d keys", r.ID, nk)
			}
		}
	}
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap after 100k distinct keys in two rules: +%.1f MB (%d keys kept per rule)", float64(grown)/(1<<20), DefaultMaxKeys)
	if grown > 16<<20 {
		t.Errorf("heap grew by %d bytes", grown)
	}
	if len(af.got()) != 0 {
		t.Errorf("alerts for one event per key: %+v", af.got())
	}
	// The most recent keys are the ones kept.
	r := e.rules[0]
	if _, ok := r.keys[fmt.Sprintf("10.%d.%d.%d", (n-1)>>16, (n-1)>>8&255, (n-1)&255)]; !ok {
		t.Error("newest key was evicted")
	}
}

// Keys idle for longer than the window and cooldown are dropped.
func TestAlertIdleKeysExpire(t *testing.T) {
	af := newAlertFixture(t, []AlertRule{probingRule(3, time.Minute)}, 0)
	for i := range 100 {
		af.log(t, time.Duration(i)*time.Millisecond, missing, "", fmt.Sprint("10.0.0.", i))
	}
	r := af.h.c.alerts.rules[0]
	if len(r.keys) != 100 {
		t.Fatalf("%d keys", len(r.keys))
	}
	for i := range 60 {
		af.log(t, 2*time.Minute+time.Duration(i)*time.Millisecond, missing, "", "10.9.9.9")
	}
	if len(r.keys) != 1 {
		t.Fatalf("%d keys after every other key went idle", len(r.keys))
	}
}

func TestAlertConfig(t *testing.T) {
	var o AlertOptions
	err := ParseAlertConfig([]byte(`{
		"max_keys": 500,
		"rules": [
			{"id": "credential_probing", "threshold": 20, "match": [{"event": ["credential_access"], "status": ["denied"]}]},
			{"id": "admin_failures", "disabled": true},
			{"id": "bulk_delete", "match": [{"event": ["credential_access"], "action": ["delete"]}],
			 "by": "principal", "window": "10m", "threshold": 5, "severity": "ERROR", "cooldown": "30m"}
		]}`), &o)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, r := range o.Rules {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, " ") != "credential_probing credential_harvest audit_reader_new chain_verification_failed audit_write_failing audit_outage audit_low_space audit_export_stalled clock_step bulk_delete" || o.MaxKeys != 500 {
		t.Fatalf("rules %v, max_keys %d", ids, o.MaxKeys)
	}
	p := o.Rules[0]
	if p.Threshold != 20 || p.Window != time.Minute || p.By != ByClient || len(p.Match) != 1 ||
		p.Match[0].Reason != nil || p.Match[0].Status[0] != "denied" || p.Severity != slog.LevelWarn {
		t.Errorf("overridden rule %+v", p)
	}
	b := o.Rules[len(o.Rules)-1]
	if b.Window != 10*time.Minute || b.Cooldown != 30*time.Minute || b.Severity != slog.LevelError || b.By != ByPrincipal || b.Threshold != 5 {
		t.Errorf("new rule %+v", b)
	}
	// The result works as options.
	if _, err := newAlertEngine(&o, nil); err != nil {
		t.Fatal(err)
	}

	o = AlertOptions{}
	if err := ParseAlertConfig([]byte(`{"defaults": false}`), &o); err != nil || o.Rules == nil || len(o.Rules) != 0 {
		t.Errorf("no rules: %v %+v", err, o.Rules)
	}
	const m = `"match": [{"event": ["credential_access"]}]`
	for _, bad := range []string{
		`{"rules": [{"id": "x", ` + m + `, "treshold": 3}]}`,
		`{"rules": [{"threshold": 3}]}`,
		`{"rules": [{"id": "x", ` + m + `, "by": "client", "window": "soon", "threshold": 1}]}`,
		`{"rules": [{"id": "x", ` + m + `, "by": "nobody", "window": "1m", "threshold": 1}]}`,
		`{"rules": [{"id": "x", ` + m + `, "by": "client", "window": "1m"}]}`,
		`{"rules": [{"id": "x", ` + m + `, "by": "client", "threshold": 1}]}`,
		`{"rules": [{"id": "x", ` + m + `, "by": "client", "window": "1m", "threshold": 1, "severity": "LOUD"}]}`,
		`{"rules": [{"id": "x", ` + m + `, "by": "client", "window": "1m", "threshold": 1, "distinct": "color"}]}`,
		`{"max_keys": -1}`,
		`{"rules": []} {}`,
		// What would silently mean something else than it says:
		`{"rules": [{"id": "admin_failure", "disabled": true}]}`,                   // a misspelt default: admin_failures stays on
		`{"rules": [{"id": "x", "by": "client", "window": "1m", "threshold": 1}]}`, // a new rule without match counts everything
		`{"rules": [{"id": "credential_probing", "match": []}]}`,                   // empty list: every event
		`{"rules": [{"id": "credential_probing", "match": [{}]}]}`,                 // empty match: every event
		`{"rules": [{"id": "credential_probing", "known": ["alice"]}]}`,            // known on a counting rule: ignored
	} {
		if err := ParseAlertConfig([]byte(bad), &AlertOptions{}); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// Rules read the standard members however they were logged: a Status (a
// string type, kind Any to slog) counts as the string the file shows.
func TestAlertTypedStatus(t *testing.T) {
	af := newAlertFixture(t, []AlertRule{probingRule(3, time.Minute)}, 0)
	l := Logger(slog.New(af.h))
	for i := range 3 {
		af.clock.at(time.Duration(i) * time.Second)
		// Matched by its status alone (credential_probing's second
		// alternative): denied.
		l.Info("probe", EventKey, CredentialAccess, ActionKey, "get", ResourceTypeKey, "credential", ResourceKey, "key",
			StatusKey, StatusDenied, "client.address", "10.0.0.9")
	}
	if got := af.got(); len(got) != 1 {
		t.Errorf("%d alerts, want 1", len(got))
	}
	if r := af.records(t)[0]; r[StatusKey] != "denied" {
		t.Errorf("record %v", r)
	}
}

// A client rule keys an IPv6 address by its /64: a prober rotating through
// the addresses of its /64 is one client; IPv4 addresses stay apart.
func TestAlertIPv6ClientsByPrefix(t *testing.T) {
	af := newAlertFixture(t, []AlertRule{probingRule(5, time.Minute)}, 0)
	for i := range 5 {
		af.log(t, time.Duration(i)*time.Second, missing, "", fmt.Sprintf("2001:db8::%x", i+1))
	}
	got := af.got()
	if len(got) != 1 || got[0].Subject != "2001:db8::/64" {
		t.Errorf("alerts %+v, want one for 2001:db8::/64", got)
	}
	for i := range 5 {
		af.log(t, time.Minute+time.Duration(i)*time.Second, missing, "", fmt.Sprintf("192.0.2.%d", i+1))
	}
	if n := len(af.got()); n != 1 {
		t.Errorf("%d alerts after five IPv4 clients", n)
	}
	if clientKey("::ffff:192.0.2.1") != "::ffff:192.0.2.1" || clientKey("not an address") != "not an address" {
		t.Error("clientKey changed a mapped IPv4 address or a claim")
	}
}

// A first-seen client rule's known list is keyed as the events are: a known
// IPv6 host is known by its /64.
func TestAlertKnownIPv6Client(t *testing.T) {
	rule := AlertRule{ID: "new_client", By: ByClient, FirstSeen: true, Known: []string{"2001:db8::10"},
		Match: []AlertMatch{{Event: []string{CredentialAccess}}}}
	af := newAlertFixture(t, []AlertRule{rule}, 0)
	af.log(t, 0, missing, "", "2001:db8::10")
	af.log(t, time.Second, missing, "", "2001:db8:1::10")
	got := af.got()
	if len(got) != 1 || got[0].Subject != "2001:db8:1::/64" {
		t.Errorf("alerts %+v, want one for the unknown 2001:db8:1::/64 only", got)
	}
}
