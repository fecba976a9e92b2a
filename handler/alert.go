package handler

import (
	"cmp"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/trace"
)

// The audit event that a firing alert rule writes, and the one that
// ReportVerifyFailure writes.
const (
	SecurityAlert     = "security_alert"     // event of alert records
	ActionAlert       = "alert"              // their action
	ResourceTypeRule  = "alert_rule"         // their resource_type; resource is the rule's ID
	AlertKey          = "alert"              // their group of details (see Alert)
	ChainVerification = "chain_verification" // event of ReportVerifyFailure's record
	ActionVerify      = "verify"             // its action
	DetailKey         = "detail"             // its detail
	AuditOutage       = "audit_outage"       // event of the record of audit records not written
	ActionWrite       = "write"              // its action
	AuditCapacity     = "audit_capacity"     // event of the record of low free space for the audit files
	ActionCheck       = "check"              // its action (and clock_step's)
	ClockStep         = "clock_step"         // event of the record of a step of the wall clock (see ClockCheck)
	// AuditExport is the event of a record that the off-host copy of the
	// trail stalled (status failed) or recovered (status success): the
	// rule audit_export_stalled counts the first. otelbridge.WithOnStall
	// reports both; the example writes them (example/otlp.go).
	AuditExport = "audit_export"
)

// What an alert rule counts per: the member of the event whose value is the
// rule's key. Events without that member are not counted by the rule.
const (
	ByPrincipal = "principal" // user.id
	ByClient    = "client"    // client.address
	ByResource  = "resource"  // resource_type/resource (just resource when it has no type)
	ByAll       = "all"       // one key for every event the rule matches
)

// AlertEvent is what an alert rule sees of an audit record: its top-level
// standard members as written to the file (after redaction), the who and
// where from Options.ContextAttrs or the record, and its trace id. A
// failed audit write is seen as an event too, one that is never written:
// event audit_outage, reason write_failing (see DefaultAlertRules'
// audit_write_failing).
type AlertEvent struct {
	Event, Action, ResourceType, Resource, Status, Reason string
	Principal                                             string        // user.id
	Client                                                string        // client.address
	TraceID                                               trace.TraceID // zero when the record had none
}

// field returns the member a rule's By or Distinct names.
func (e *AlertEvent) field(name string) string {
	switch name {
	case ByPrincipal:
		return e.Principal
	case ByClient:
		return e.Client
	case ByResource:
		if e.ResourceType != "" && e.Resource != "" {
			return e.ResourceType + "/" + e.Resource
		}
		return e.Resource
	case "action":
		return e.Action
	case "event":
		return e.Event
	}
	return ""
}

// alertCapture collects, while a record is encoded, the values of the
// members alert rules read, as the line holds them: the first top-level
// member of each name (see encoder.claim), after LogValuers are resolved,
// elided attributes left out and inline groups flattened.
type alertCapture struct {
	ev   AlertEvent
	seen uint8 // the names taken so far, by alertField's bit
}

// alertField returns the field of e that the member key feeds, and its bit.
func alertField(e *AlertEvent, key string) (*string, uint8) {
	switch key {
	case EventKey:
		return &e.Event, 1 << 0
	case ActionKey:
		return &e.Action, 1 << 1
	case ResourceTypeKey:
		return &e.ResourceType, 1 << 2
	case ResourceKey:
		return &e.Resource, 1 << 3
	case StatusKey:
		return &e.Status, 1 << 4
	case ReasonKey:
		return &e.Reason, 1 << 5
	case "user.id":
		return &e.Principal, 1 << 6
	case "client.address":
		return &e.Client, 1 << 7
	}
	return nil, 0
}

// take records a, written at the top level under its own key (the first
// of its name), if the rules read that member.
func (c *alertCapture) take(a slog.Attr) {
	f, bit := alertField(&c.ev, a.Key)
	if f == nil || c.seen&bit != 0 {
		return
	}
	c.seen |= bit
	if v, ok := stringValue(a.Value); ok {
		*f = v
	}
}

// takeFrom records the member key, written at the top level under its own
// name from pre-encoded attributes, with the value from's capture holds.
func (c *alertCapture) takeFrom(from *alertCapture, key string) {
	f, bit := alertField(&c.ev, key)
	if f == nil || c.seen&bit != 0 || from.seen&bit == 0 {
		return
	}
	c.seen |= bit
	g, _ := alertField(&from.ev, key)
	*f = *g
}

// stringValue returns v's text if the audit file holds it as a JSON
// string: a string, or a value of a string type that encoding/json writes
// as its content (slog.Any("status", handler.StatusDenied) is kind Any).
func stringValue(v slog.Value) (string, bool) {
	switch v.Kind() {
	case slog.KindString:
		return v.String(), true
	case slog.KindAny:
		x := v.Any()
		switch x.(type) {
		case json.Marshaler, encoding.TextMarshaler, error:
			return "", false // written as something else than its content
		}
		if rv := reflect.ValueOf(x); rv.Kind() == reflect.String {
			return rv.String(), true
		}
	}
	return "", false
}

// AlertMatch selects events by their standard members: each non-empty
// field must list the event's value. A rule's Match lists alternatives.
type AlertMatch struct {
	Event        []string `json:"event,omitempty"`
	Action       []string `json:"action,omitempty"`
	ResourceType []string `json:"resource_type,omitempty"`
	Resource     []string `json:"resource,omitempty"`
	Status       []string `json:"status,omitempty"`
	Reason       []string `json:"reason,omitempty"`
}

func (m *AlertMatch) matches(e *AlertEvent) bool {
	in := func(vs []string, v string) bool { return len(vs) == 0 || slices.Contains(vs, v) }
	return in(m.Event, e.Event) && in(m.Action, e.Action) && in(m.ResourceType, e.ResourceType) &&
		in(m.Resource, e.Resource) && in(m.Status, e.Status) && in(m.Reason, e.Reason)
}

// AlertRule is a sliding-window counter over the audit stream, one per key
// (principal, client, resource or all). It fires when Threshold matching
// events (or, with Distinct, events with Threshold distinct values of
// Distinct) fall within Window of each other, counting back from the
// newest: an event counts while it is less than Window old. After firing,
// the same key stays quiet for Cooldown, so a burst gives one alert, not
// one per event.
//
// A FirstSeen rule fires instead when a key matches that was not seen
// (matched) in the last Window (Window 0: since the handler was created).
type AlertRule struct {
	ID          string
	Description string
	// Match lists alternatives: the rule counts an event that any of them
	// selects. Empty: every event. Alert records are never counted.
	Match []AlertMatch
	// Func, if set, must also return true for the event to count (Go only).
	Func func(AlertEvent) bool
	By   string // ByPrincipal, ByClient, ByResource or ByAll
	// Distinct, if set, counts distinct values of this member (principal,
	// client, resource, action or event) per key instead of events.
	Distinct  string
	Window    time.Duration
	Threshold int
	FirstSeen bool
	// Known are keys a FirstSeen rule regards as seen from the start.
	Known    []string
	Severity slog.Level
	// Cooldown is how long a key does not fire again after firing; 0 means
	// Window.
	Cooldown time.Duration
}

// DefaultAlertRules returns the default rule set; see the README's "Alerts
// and live view" for the table.
func DefaultAlertRules() []AlertRule {
	return []AlertRule{
		{
			ID:          "credential_probing",
			Description: "repeated credential reads of missing keys, or denied ones, from one client",
			Match: []AlertMatch{
				{Event: []string{CredentialAccess}, Reason: []string{"not_found"}},
				{Event: []string{CredentialAccess}, Status: []string{string(StatusDenied)}},
			},
			By: ByClient, Window: time.Minute, Threshold: 10, Severity: slog.LevelWarn,
		},
		{
			ID:          "credential_harvest",
			Description: "one principal read many distinct credentials in a short window",
			Match:       []AlertMatch{{Event: []string{CredentialAccess}, Action: []string{"get"}, Status: []string{string(StatusSuccess)}}},
			By:          ByPrincipal, Distinct: ByResource, Window: 5 * time.Minute, Threshold: 10, Severity: slog.LevelWarn,
		},
		{
			ID:          "admin_failures",
			Description: "a burst of failed or denied admin actions from one client",
			Match:       []AlertMatch{{Event: []string{AdminAction}, Status: []string{string(StatusFailed), string(StatusDenied)}}},
			By:          ByClient, Window: 5 * time.Minute, Threshold: 5, Severity: slog.LevelWarn,
		},
		{
			ID:          "audit_reader_new",
			Description: "the audit log was read by a principal not seen reading it in the last 30 days (in this process)",
			Match:       []AlertMatch{{Event: []string{AuditAccess}, Status: []string{string(StatusSuccess)}}},
			By:          ByPrincipal, FirstSeen: true, Window: 30 * 24 * time.Hour, Severity: slog.LevelWarn,
		},
		{
			ID:          "chain_verification_failed",
			Description: "verifying the audit files failed (see Handler.ReportVerifyFailure)",
			Match:       []AlertMatch{{Event: []string{ChainVerification}, Status: []string{string(StatusFailed)}}},
			By:          ByResource, Window: time.Hour, Threshold: 1, Severity: slog.LevelError,
		},
		{
			ID:          "audit_write_failing",
			Description: "audit records cannot be written now (a full disk, an I/O error): the trail has a gap while this lasts, and this alert's own record may be lost too",
			Match:       []AlertMatch{{Event: []string{AuditOutage}, Reason: []string{"write_failing"}}},
			By:          ByAll, Window: time.Hour, Threshold: 1, Severity: slog.LevelError,
		},
		{
			ID:          "audit_outage",
			Description: "audit records could not be written (the audit_outage record says how many, when, and why)",
			Match:       []AlertMatch{{Event: []string{AuditOutage}, Reason: []string{"write_failed", "power_loss"}}},
			By:          ByAll, Window: time.Hour, Threshold: 1, Severity: slog.LevelError,
		},
		{
			ID:          "audit_low_space",
			Description: "the audit files' file system is low on free space (the audit_capacity record says how much is left): once it is full, audit records cannot be written",
			Match:       []AlertMatch{{Event: []string{AuditCapacity}, Reason: []string{"low_space"}}},
			By:          ByAll, Window: time.Hour, Threshold: 1, Severity: slog.LevelWarn,
		},
		{
			ID:          "audit_export_stalled",
			Description: "the export of the audit trail to its off-host copy (the OTLP collector, the SIEM) acknowledged nothing for a while (the audit_export record says since when and which seqs wait; the local files keep them)",
			Match:       []AlertMatch{{Event: []string{AuditExport}, Status: []string{string(StatusFailed)}}},
			By:          ByResource, Window: time.Hour, Threshold: 1, Severity: slog.LevelWarn,
		},
		{
			ID:          "clock_step",
			Description: "the wall clock was stepped (the clock_step record says by how much and which way): the times of the records around it are out of order",
			Match:       []AlertMatch{{Event: []string{ClockStep}, Reason: []string{"backward", "forward"}}},
			By:          ByAll, Window: time.Hour, Threshold: 1, Severity: slog.LevelWarn,
		},
	}
}

// Alert is a firing of a rule, as logged (event security_alert, in the
// group "alert") and passed to AlertOptions.OnAlert.
type Alert struct {
	Rule        string
	Description string
	Severity    slog.Level
	By          string // what the rule counts per
	Subject     string // the key: the principal, client address (an IPv6 one's /64) or resource; may be text a client chose (a resource name from a URL): quote it (%q) where it meets a terminal or a line-based log
	Distinct    string // the member whose distinct values were counted, if any
	Window      time.Duration
	Threshold   int
	// Count is the number of events (or distinct values) within Window when
	// the rule fired; the rule keeps at most Threshold of them, so it is
	// Threshold for a counting rule.
	Count int
	// Suppressed is how many further matching events for this key fell
	// into the cooldown after the previous alert.
	Suppressed  int
	First, Last time.Time // of the counted events
	// TraceIDs are the distinct trace ids of the counted events, oldest
	// first (at most 20).
	TraceIDs []string
	Time     time.Time
	// Err is the error of writing the alert record: nil when it is in the
	// audit file.
	Err error
}

// AlertOptions switch alert rules on (Options.Alerts).
type AlertOptions struct {
	// Rules are the rules; nil means DefaultAlertRules(). See
	// ReadAlertConfig for loading them from a file.
	Rules []AlertRule
	// OnAlert is called after each alert record is written (Alert.Err says
	// whether it was), on the goroutine that logged the triggering event:
	// for an audit_capacity record, the audit file writer's background
	// goroutine, and for a chain_verification record of SelfVerify or a
	// clock_step record of the clock check, theirs, all of which Close
	// waits for. It is called also when the alert record cannot be written
	// (Alert.Err not nil), e.g. by audit_write_failing while the disk is
	// full: then OnAlert and the app handler are all the alert reaches. It
	// must not block or call Close; it may log.
	OnAlert func(Alert)
	// Now is the clock of the windows; default time.Now.
	Now func() time.Time
	// MaxKeys bounds the keys each rule tracks (default 10000): when a rule
	// is full, the key least recently seen is forgotten (and its counts
	// with it). Idle keys are dropped once their window and cooldown have
	// passed.
	MaxKeys int
}

// DefaultMaxKeys is AlertOptions.MaxKeys when 0.
const DefaultMaxKeys = 10000

const (
	maxKeyLen   = 256 // longer keys are cut (and reported cut)
	maxTraceIDs = 20
)

type alertEngine struct {
	h       *Handler // the root handler, to write alert records through
	rules   []*ruleState
	onAlert func(Alert)
	now     func() time.Time
	seed    maphash.Seed
}

func newAlertEngine(o *AlertOptions, h *Handler) (*alertEngine, error) {
	e := &alertEngine{h: h, onAlert: o.OnAlert, now: o.Now, seed: maphash.MakeSeed()}
	if e.now == nil {
		e.now = time.Now
	}
	rules := o.Rules
	if rules == nil {
		rules = DefaultAlertRules()
	}
	maxKeys := o.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	ids := map[string]bool{}
	for _, r := range rules {
		if err := validRule(&r); err != nil {
			return nil, err
		}
		if ids[r.ID] {
			return nil, fmt.Errorf("handler: alert rule %q defined twice", r.ID)
		}
		ids[r.ID] = true
		rs := &ruleState{AlertRule: r, maxKeys: maxKeys, keys: map[string]*keyState{}}
		rs.Match = slices.Clone(r.Match)
		if rs.Cooldown == 0 {
			rs.Cooldown = rs.Window
		}
		rs.horizon = max(rs.Window, rs.Cooldown)
		if len(r.Known) > 0 {
			rs.known = map[string]bool{}
			for _, k := range r.Known {
				if r.By == ByClient {
					k = clientKey(k) // as the events' keys are
				}
				rs.known[k] = true
			}
		}
		e.rules = append(e.rules, rs)
	}
	return e, nil
}

func validRule(r *AlertRule) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("handler: alert rule %q: "+format, append([]any{r.ID}, args...)...)
	}
	switch {
	case r.ID == "":
		return errors.New("handler: alert rule without an ID")
	case r.By != ByPrincipal && r.By != ByClient && r.By != ByResource && r.By != ByAll:
		return bad("by must be principal, client, resource or all, not %q", r.By)
	case r.Window < 0 || r.Cooldown < 0:
		return bad("window and cooldown must not be negative")
	case r.FirstSeen && r.Distinct != "":
		return bad("first_seen and distinct do not go together")
	case !r.FirstSeen && r.Window == 0:
		return bad("window is required")
	case !r.FirstSeen && r.Threshold < 1:
		return bad("threshold must be at least 1")
	}
	switch r.Distinct {
	case "", ByPrincipal, ByClient, ByResource, "action", "event":
	default:
		return bad("distinct must be principal, client, resource, action or event, not %q", r.Distinct)
	}
	for i, m := range r.Match {
		if m.empty() {
			return bad("match %d is empty: it would match every event (leave match out to mean that)", i+1)
		}
	}
	if len(r.Known) > 0 && !r.FirstSeen {
		return bad("known applies to first_seen rules only")
	}
	return nil
}

// clientKey is the key of a client address: an IPv6 address stands for
// its /64, which one host is commonly given whole (counting by address, a
// prober rotating through its /64 would never reach a threshold).
func clientKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is6() || a.Is4In6() {
		return addr
	}
	p, err := a.Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

func (m *AlertMatch) empty() bool {
	return len(m.Event)+len(m.Action)+len(m.ResourceType)+len(m.Resource)+len(m.Status)+len(m.Reason) == 0
}

// ruleState is a rule's counters: one keyState per key, in a list from the
// most to the least recently seen, at most maxKeys of them.
type ruleState struct {
	AlertRule
	maxKeys int
	horizon time.Duration // a key idle for this long has nothing left to count
	known   map[string]bool

	mu         sync.Mutex
	keys       map[string]*keyState
	head, tail *keyState
	evicted    uint64 // keys forgotten to stay within maxKeys
}

type hit struct {
	t     int64 // UnixNano
	trace trace.TraceID
	val   uint64 // hash of the Distinct value
}

type keyState struct {
	key        string
	prev, next *keyState
	seen       int64 // last hit, UnixNano
	// hits: a counting rule's last Threshold hits (a ring, oldest at ring
	// once full); a distinct rule's newest hit per distinct value, at most
	// Threshold of them.
	hits       []hit
	ring       int
	quiet      int64 // no alert before this time (cooldown)
	suppressed int
}

func (r *ruleState) matches(e *AlertEvent) bool {
	if len(r.Match) > 0 {
		ok := false
		for i := range r.Match {
			if r.Match[i].matches(e) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return r.Func == nil || r.Func(*e)
}

// get returns the state of key, creating it (and forgetting the least
// recently seen key if the rule is full) if needed, and marks it the most
// recently seen.
func (r *ruleState) get(key string, now int64) (ks *keyState, existed bool) {
	// Drop up to two idle keys from the cold end: what they counted is out
	// of every window.
	for i := 0; i < 2 && r.tail != nil && r.horizon > 0 && now-r.tail.seen >= int64(r.horizon) && r.tail.key != key; i++ {
		r.remove(r.tail)
	}
	if ks, ok := r.keys[key]; ok {
		if r.head != ks {
			r.unlink(ks)
			r.pushFront(ks)
		}
		return ks, true
	}
	if len(r.keys) >= r.maxKeys {
		r.remove(r.tail)
		r.evicted++
	}
	ks = &keyState{key: strings.Clone(key)}
	r.keys[ks.key] = ks
	r.pushFront(ks)
	return ks, false
}

func (r *ruleState) remove(ks *keyState) {
	r.unlink(ks)
	delete(r.keys, ks.key)
}

func (r *ruleState) unlink(ks *keyState) {
	if ks.prev != nil {
		ks.prev.next = ks.next
	} else {
		r.head = ks.next
	}
	if ks.next != nil {
		ks.next.prev = ks.prev
	} else {
		r.tail = ks.prev
	}
	ks.prev, ks.next = nil, nil
}

func (r *ruleState) pushFront(ks *keyState) {
	ks.next = r.head
	if r.head != nil {
		r.head.prev = ks
	}
	r.head = ks
	if r.tail == nil {
		r.tail = ks
	}
}

// hit counts an event for key at now and returns the alert if the rule
// fires.
func (r *ruleState) hit(e *alertEngine, ev *AlertEvent, key string, now time.Time) (Alert, bool) {
	t := now.UnixNano()
	h := hit{t: t, trace: ev.TraceID}
	if r.Distinct != "" {
		v := ev.field(r.Distinct)
		if v == "" {
			return Alert{}, false
		}
		h.val = maphash.String(e.seed, v)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ks, existed := r.get(key, t)
	lastSeen := ks.seen
	ks.seen = t
	if r.FirstSeen {
		if existed && (r.Window == 0 || t-lastSeen < int64(r.Window)) || !existed && r.known[key] {
			return Alert{}, false
		}
		return r.alert(ks, now, 1, []hit{h}), true
	}
	win := int64(r.Window)
	var in []hit // the hits within the window, oldest first
	if r.Distinct == "" {
		if len(ks.hits) < r.Threshold {
			ks.hits = append(ks.hits, h)
		} else {
			ks.hits[ks.ring] = h
			ks.ring = (ks.ring + 1) % r.Threshold
		}
		if len(ks.hits) < r.Threshold {
			return Alert{}, false
		}
		if oldest := ks.hits[ks.ring]; t-oldest.t >= win {
			return Alert{}, false
		}
		in = append(ks.hits[ks.ring:len(ks.hits):len(ks.hits)], ks.hits[:ks.ring]...)
	} else {
		i := slices.IndexFunc(ks.hits, func(x hit) bool { return x.val == h.val })
		if i >= 0 {
			ks.hits[i] = h
		} else {
			ks.hits = append(ks.hits, h)
		}
		if len(ks.hits) < r.Threshold {
			return Alert{}, false
		}
		ks.hits = slices.DeleteFunc(ks.hits, func(x hit) bool { return t-x.t >= win })
		for len(ks.hits) > r.Threshold { // keep the newest Threshold values
			oldest := 0
			for j := range ks.hits {
				if ks.hits[j].t < ks.hits[oldest].t {
					oldest = j
				}
			}
			ks.hits = slices.Delete(ks.hits, oldest, oldest+1)
		}
		if len(ks.hits) < r.Threshold {
			return Alert{}, false
		}
		in = slices.SortedFunc(slices.Values(ks.hits), func(a, b hit) int { return cmp.Compare(a.t, b.t) })
	}
	if t < ks.quiet {
		ks.suppressed++
		return Alert{}, false
	}
	return r.alert(ks, now, len(in), in), true
}

// alert builds the alert of ks firing at now and starts its cooldown.
func (r *ruleState) alert(ks *keyState, now time.Time, count int, in []hit) Alert {
	a := Alert{
		Rule: r.ID, Description: r.Description, Severity: r.Severity, By: r.By, Subject: ks.key,
		Distinct: r.Distinct, Window: r.Window, Threshold: r.Threshold, Count: count,
		Suppressed: ks.suppressed, Time: now,
		First: time.Unix(0, in[0].t).UTC(), Last: time.Unix(0, in[len(in)-1].t).UTC(),
	}
	if r.FirstSeen {
		a.Threshold = 1
	}
	for _, h := range in {
		if !h.trace.IsValid() || len(a.TraceIDs) == maxTraceIDs {
			continue
		}
		if s := h.trace.String(); !slices.Contains(a.TraceIDs, s) {
			a.TraceIDs = append(a.TraceIDs, s)
		}
	}
	ks.quiet = now.UnixNano() + int64(r.Cooldown)
	ks.suppressed = 0
	return a
}

// observeRecord feeds the rules with an audit record that is in the file:
// ev holds its members as the line does (see alertCapture).
func (e *alertEngine) observeRecord(ctx context.Context, ev AlertEvent, sc trace.SpanContext) {
	if sc.IsValid() {
		ev.TraceID = sc.TraceID()
	}
	e.observe(ctx, &ev)
}

// observeFailed feeds the rules with an audit record whose write failed
// (not because the handler is closed): ev holds its members as the line
// would have; resource is the audit directory's name. The rules see at
// once that the trail cannot be written, as an event event=audit_outage
// action=write resource_type=audit_log resource=<directory> status=failed
// reason=write_failing (the default rule audit_write_failing), rather than
// only when the audit_outage record can be written after it (which a trail
// that stays full never does). The handler's own records (audit_capacity,
// clock_step, chain_verification, audit_outage) are also seen as they are:
// what they report holds whether or not their line could be written. Other
// records are not counted by what they say, which is not on record (and an
// operation that fails closed was not done). The failed write of an alert
// record is not seen at all, so an alert cannot set off another (OnAlert
// has heard of it, with Alert.Err).
func (e *alertEngine) observeFailed(ctx context.Context, ev AlertEvent, sc trace.SpanContext, resource string) {
	if ev.Event == SecurityAlert {
		return
	}
	if sc.IsValid() {
		ev.TraceID = sc.TraceID()
	}
	switch ev.Event {
	case AuditCapacity, ClockStep, ChainVerification, AuditOutage:
		own := ev
		e.observe(ctx, &own)
	}
	out := AlertEvent{Event: AuditOutage, Action: ActionWrite, ResourceType: "audit_log", Resource: resource,
		Status: string(StatusFailed), Reason: "write_failing", TraceID: ev.TraceID}
	e.observe(ctx, &out)
}

// observe counts ev with every rule that matches it and writes the alerts
// that fire. Alert records themselves are never counted, so an alert cannot
// set off another.
func (e *alertEngine) observe(ctx context.Context, ev *AlertEvent) {
	if ev.Event == SecurityAlert {
		return
	}
	var fired []Alert
	var now time.Time
	for _, r := range e.rules {
		if !r.matches(ev) {
			continue
		}
		key := ev.field(r.By)
		switch {
		case r.By == ByAll:
			key = ByAll
		case key == "":
			continue
		case r.By == ByClient:
			key = clientKey(key)
		}
		if len(key) > maxKeyLen {
			cut := maxKeyLen
			for cut > 0 && !utf8.RuneStart(key[cut]) {
				cut-- // not inside a character
			}
			key = key[:cut] + "…"
		}
		if now.IsZero() {
			now = e.now()
		}
		if a, ok := r.hit(e, ev, key, now); ok {
			fired = append(fired, a)
		}
	}
	for _, a := range fired {
		e.emit(ctx, a)
	}
}

// emit writes the alert record through the root handler, with the context
// of the event that set it off (its trace, client and principal), and
// calls OnAlert.
func (e *alertEngine) emit(ctx context.Context, a Alert) {
	what := "events"
	if a.Distinct != "" {
		what = "distinct " + a.Distinct + "s"
	}
	msg := fmt.Sprintf("security alert %s: %d %s in %s, %s %s", a.Rule, a.Count, what, a.Window, a.By, a.Subject)
	if a.Threshold == 1 && a.Count == 1 {
		msg = fmt.Sprintf("security alert %s: %s %s", a.Rule, a.By, a.Subject)
	}
	details := []slog.Attr{
		slog.String("rule", a.Rule),
		slog.String("by", a.By),
		slog.String("subject", a.Subject),
		slog.String("window", a.Window.String()),
		slog.Int("threshold", a.Threshold),
		slog.Int("count", a.Count),
	}
	if a.Distinct != "" {
		details = append(details, slog.String("distinct", a.Distinct))
	}
	if a.Suppressed > 0 {
		details = append(details, slog.Int("suppressed", a.Suppressed))
	}
	details = append(details, slog.Time("first", a.First), slog.Time("last", a.Last))
	if len(a.TraceIDs) > 0 {
		details = append(details, slog.Any("trace_ids", a.TraceIDs))
	}
	if a.Description != "" {
		details = append(details, slog.String("description", a.Description))
	}
	rec := slog.NewRecord(a.Time, a.Severity, msg, 0)
	rec.AddAttrs(Audit,
		slog.String(EventKey, SecurityAlert),
		slog.String(ActionKey, ActionAlert),
		slog.String(ResourceTypeKey, ResourceTypeRule),
		slog.String(ResourceKey, a.Rule),
		// The outcome of the action alert: every audit event has one, and
		// a filter on status must not pass over alerts.
		slog.String(StatusKey, string(StatusSuccess)),
		slog.Attr{Key: AlertKey, Value: slog.GroupValue(details...)},
	)
	a.Err = e.h.Handle(ctx, rec)
	if e.onAlert != nil {
		e.onAlert(a)
	}
}

// ReportVerifyFailure records that verifying the audit files failed (err,
// and a detail such as the file and line): it writes an audit event
// event=chain_verification action=verify resource_type=audit_log
// resource=<the audit directory's name> status=failed, which the alert
// rules see like any other (the default rule chain_verification_failed
// raises an ERROR security alert, at most once an hour). A periodic
// self-verification calls it. It returns the error of the audit write.
func (h *Handler) ReportVerifyFailure(err error, detail string) error {
	attrs := []slog.Attr{
		Audit,
		slog.String(EventKey, ChainVerification),
		slog.String(ActionKey, ActionVerify),
		slog.String(ResourceTypeKey, "audit_log"),
		slog.String(ResourceKey, filepath.Base(filepath.Dir(h.c.w.Path()))),
		slog.String(StatusKey, string(StatusFailed)),
	}
	if err != nil {
		attrs = append(attrs, slog.String(ErrorKey, err.Error()))
	}
	if detail != "" {
		attrs = append(attrs, slog.String(DetailKey, detail))
	}
	rec := slog.NewRecord(time.Now(), slog.LevelError, "audit chain verification failed", 0)
	rec.AddAttrs(attrs...)
	return h.c.root.Handle(context.Background(), rec)
}
