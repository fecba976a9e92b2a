// Package handler is the slog.Handler of slogaudit: it tees records tagged as
// audit records into a tamper-evident chained file (and, with the app
// handler, to the application log), sends every other record to the
// application's own handler, and enriches both with the trace and span IDs
// of the record's context.
//
// Install it once and keep logging as usual:
//
//	h, err := handler.New(handler.Options{Dir: "audit-logs", Key: key})
//	...
//	defer h.Close()
//	slog.SetDefault(slog.New(h))
//	slog.InfoContext(ctx, "server started", handler.Audit, "server", name)
package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/internal/jsonenc"
	"github.com/slogaudit/slogaudit/redact"
	"github.com/slogaudit/slogaudit/rotate"
)

// AuditKey is the key of the Audit tag.
const AuditKey = "audit"

// Audit tags a record as an audit record when passed among its attributes,
// or every record of a logger when passed to With:
//
//	slog.InfoContext(ctx, "credential read", handler.Audit, "key", name)
//	auditLog := slog.Default().With(handler.Audit)
//
// Other handlers render it as audit=true.
var Audit = slog.Any(AuditKey, tag{})

type tag struct{}

func (tag) LogValue() slog.Value { return slog.BoolValue(true) }

// isTag takes a pointer and inlines, with the rest of the check apart in
// isTagValue, so that the loops over a record's attributes do not copy each
// attribute once more: the compiler copies a 40-byte Attr with overlapping
// 16-byte moves, and reading such a copy stalls on store forwarding (perf
// showed a third of Handle's own time there).
func isTag(a *slog.Attr) bool { return a.Key == AuditKey && isTagValue(a.Value) }

func isTagValue(v slog.Value) bool {
	if v.Kind() != slog.KindLogValuer {
		return false
	}
	_, ok := v.Any().(tag)
	return ok
}

// Logger returns a logger derived from l whose records are all audit records.
func Logger(l *slog.Logger) *slog.Logger { return l.With(Audit) }

// Keys of the members that the handler adds.
const (
	TraceIDKey = "trace_id"
	SpanIDKey  = "span_id"
)

// Options configure a Handler.
type Options struct {
	// Dir is the directory of the audit files (created 0700). It overrides
	// Rotate.Dir; one of the two is required.
	Dir string
	// Key is the 32-byte initial MAC key K(0) (see chain.ReadKeyFile). Nil
	// (and no KeyFile) seals with plain SHA-256, which detects accidents
	// but not a forger.
	Key []byte
	// KeyFile makes the MAC key forward-secure (chain.Options.KeyFile): the
	// file is evolved in place at every epoch's end, so a key stolen from
	// the host cannot forge earlier records. Keep K(0) offline to verify.
	KeyFile string
	// AllowSharedKeyDir accepts a KeyFile in a directory others may write
	// (chain.Options.AllowSharedKeyDir); New refuses one otherwise. The
	// audit directory's counterpart is Rotate.AllowSharedDir.
	AllowSharedKeyDir bool
	// Checkpoints configures epochs and signed checkpoints (chain.
	// CheckpointOptions). Each checkpoint is also passed to every Sink
	// that implements CheckpointSink, e.g. otelbridge, to anchor the
	// chain off the host.
	Checkpoints chain.CheckpointOptions
	// Archive receives each file retention is about to remove
	// (chain.Options.Archive).
	Archive func(path string) error
	// SelfVerify turns on periodic verification of the newest files, with
	// an ERROR chain_verification audit event (a security_alert too when
	// Alerts has the default rules) and OnError on failure.
	SelfVerify SelfVerify
	// Clock configures the check of the wall clock against the monotonic
	// clock, which puts a step of the wall clock (by more than 1 s, by
	// default) on record as a WARN clock_step audit record (see
	// ClockCheck). On by default; Clock.Threshold negative turns it off.
	Clock ClockCheck
	// Rotate sets file size and time limits, retention, compression and the
	// durability policy (default rotate.SyncNone: each record is handed to the
	// OS before Handle returns), and the free-space warning: when the audit
	// directory's file system has less than Rotate.LowSpace bytes free
	// (0: rotate.DefaultLowSpace, 5 % of it and at least 1 GiB; negative:
	// no checks), a WARN audit_capacity audit record says so (see
	// rotate.Options.OnLowSpace for when; Rotate.OnLowSpace, if set, is
	// called as well).
	Rotate rotate.Options
	// App receives every non-audit record and, unless AuditOnlyToFile is set,
	// a copy of every audit record. Default: slog.NewJSONHandler(os.Stderr, nil).
	App slog.Handler
	// AuditOnlyToFile keeps audit records out of the App handler.
	AuditOnlyToFile bool
	// OnError is called with every error that Handle returns, since
	// slog.Logger discards them. It must not log through this handler.
	OnError func(error)
	// ContextAttrs, if set, returns attributes to add to every record
	// logged with ctx, audit and app alike: who and where, e.g.
	// middleware.Attrs, which returns the request's principal, client
	// address and user agent. In the audit file they are top-level members
	// after the trace IDs; the app handler gets them, after the trace IDs,
	// as if added with the logger's With. It is called for every record;
	// return a slice built once per request, not a new one. The app leg
	// pre-encodes them once per span while they are the same; values of
	// kind Any or LogValuer are added to each record instead. They are
	// redacted like the record's attributes (a secret among them counts in
	// the record's redacted=N).
	ContextAttrs func(ctx context.Context) []slog.Attr
	// Sinks receive every audit record after it is in the file, e.g. the
	// OTLP exporter of package otelbridge.
	Sinks []Sink
	// Redactor removes secret values (never their keys) from every record
	// before any leg sees it: the message, attributes, WithAttrs attributes.
	// Default: redact.Default(). A record that had values removed carries
	// redacted=N.
	Redactor *redact.Redactor
	// NoRedaction turns redaction off. Only for records known to hold no
	// secrets: a leaked credential in an audit trail cannot be taken back.
	NoRedaction bool
	// Alerts, if set, runs alert rules over the audit records written, and
	// over the audit writes that fail, as they fail (see AlertOptions,
	// DefaultAlertRules and its audit_write_failing). Nil: no rules, no
	// cost.
	Alerts *AlertOptions
}

// A Sink is a further destination of audit records, fed after the file:
// the file is the source of truth, so a sink that falls behind or loses
// records can re-read them from it by seq.
type Sink interface {
	// Audit receives a record's members as sealed into the file (the JSON
	// object without braces and without the chain members) and its
	// position. It is called on the logging goroutine, concurrently, not
	// necessarily in seq order; it must not block or retain body.
	Audit(body []byte, pos chain.Position)
}

// A CheckpointSink is a Sink that also receives the chain's checkpoints,
// once each is durable: exporting them off the host is what makes
// truncation and rollback of the local files detectable.
type CheckpointSink interface {
	Sink
	Checkpoint(c chain.Checkpoint)
}

// ErrClosed is returned for audit records handled after Close.
var ErrClosed = errors.New("handler: closed; audit record not written")

// ErrNotAuditHandler is returned by Log and Operation when the logger's
// handler is not a *Handler, so nothing vouches that the record was audited.
var ErrNotAuditHandler = errors.New("handler: logger is not backed by an audit *handler.Handler")

// Handler is the slogaudit slog.Handler. Handlers derived with WithAttrs
// and WithGroup share the audit file; Close any one of them to close it.
type Handler struct {
	c   *core
	app slog.Handler
	// spans caches app.WithAttrs(trace IDs, ContextAttrs) per span, so
	// that the records of one request carry them pre-encoded.
	spans *spanHandlers

	audit bool // every record of this handler is an audit record
	// secretGroup: a group opened by WithGroup is named a secret key
	// ("credentials"), so every value logged inside it is redacted.
	secretGroup bool

	// Audit-leg state, as in log/slog's commonHandler: attrs from WithAttrs
	// pre-encoded, the groups from WithGroup, and how many of those groups
	// are already opened inside pre.
	pre     []byte   // members, ending with a member; may leave groups open
	preKeys []preKey // the top-level keys in pre
	groups  []string
	nOpen   int

	preAlert alertCapture // what pre gives the alert rules
}

type core struct {
	w        *chain.Writer
	onError  func(error)
	appCopy  bool
	ctxAttrs func(context.Context) []slog.Attr
	sinks    []Sink
	red      *redact.Redactor // nil: no redaction
	alerts   *alertEngine     // nil: no alert rules
	root     *Handler         // the handler New returned

	outage   outage
	inflight sync.RWMutex // audit writes hold it for reading; Close for writing

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	lastIDs    atomic.Pointer[spanIDs]
	dir        string
	dirName    string        // the audit directory's name, the resource of audit_outage events
	stopVerify chan struct{} // nil without SelfVerify
	verifyDone chan struct{}
	stopClock  chan struct{} // nil without clock checks
	clockDone  chan struct{}
}

// spanIDs caches the hex strings of the last span context seen: the
// records of one request share it, and the app leg needs them as strings.
type spanIDs struct {
	trace    trace.TraceID
	span     trace.SpanID
	tid, sid string
}

func (c *core) idStrings(sc trace.SpanContext) (tid, sid string) {
	if p := c.lastIDs.Load(); p != nil && p.trace == sc.TraceID() && p.span == sc.SpanID() {
		return p.tid, p.sid
	}
	p := &spanIDs{trace: sc.TraceID(), span: sc.SpanID(), tid: sc.TraceID().String(), sid: sc.SpanID().String()}
	c.lastIDs.Store(p)
	return p.tid, p.sid
}

func (c *core) report(err error) {
	if c.onError != nil {
		c.onError(err)
	}
}

// New opens (or resumes) the chain in the audit directory and returns the
// handler. Close it before the program exits so that the current file is
// sealed with a close record.
func New(opts Options) (*Handler, error) {
	ro := opts.Rotate
	if opts.Dir != "" {
		ro.Dir = opts.Dir
	}
	co := opts.Checkpoints
	var ckptSinks []CheckpointSink
	for _, s := range opts.Sinks {
		if cs, ok := s.(CheckpointSink); ok {
			ckptSinks = append(ckptSinks, cs)
		}
	}
	if user := co.OnCheckpoint; len(ckptSinks) > 0 {
		co.OnCheckpoint = func(c chain.Checkpoint) {
			if user != nil {
				user(c)
			}
			for _, cs := range ckptSinks {
				cs.Checkpoint(c)
			}
		}
	}
	if co.OnError == nil {
		co.OnError = opts.OnError
	}
	var space *capacity
	if ro.LowSpace >= 0 {
		dir, err := filepath.Abs(ro.Dir)
		if err != nil {
			dir = ro.Dir
		}
		space = &capacity{dir: dir}
		user := ro.OnLowSpace
		ro.OnLowSpace = func(s rotate.Space) {
			if user != nil {
				user(s)
			}
			space.lowSpace(s)
		}
	}
	w, err := chain.Open(chain.Options{Key: opts.Key, KeyFile: opts.KeyFile, AllowSharedKeyDir: opts.AllowSharedKeyDir, Checkpoints: co, Archive: opts.Archive, Rotate: ro})
	if err != nil {
		return nil, err
	}
	app := opts.App
	if app == nil {
		app = slog.NewJSONHandler(os.Stderr, nil)
	}
	red := opts.Redactor
	if red == nil && !opts.NoRedaction {
		red = redact.Default()
	}
	if opts.NoRedaction {
		red = nil
	}
	h := &Handler{
		c:     &core{w: w, onError: opts.OnError, appCopy: !opts.AuditOnlyToFile, ctxAttrs: opts.ContextAttrs, sinks: opts.Sinks, red: red, dir: ro.Dir},
		app:   app,
		spans: new(spanHandlers),
	}
	h.c.root = h
	h.c.dirName = filepath.Base(filepath.Dir(w.Path()))
	if opts.Alerts != nil {
		if h.c.alerts, err = newAlertEngine(opts.Alerts, h); err != nil {
			w.Close()
			return nil, err
		}
	}
	if sv := opts.SelfVerify; sv.Interval > 0 {
		if sv.Files <= 0 {
			sv.Files = 2
		}
		h.c.stopVerify, h.c.verifyDone = make(chan struct{}), make(chan struct{})
		go h.selfVerify(sv, ro.Dir, ro.Prefix, ro.Ext, h.c.stopVerify, h.c.verifyDone)
	}
	if cc := opts.Clock; cc.Threshold >= 0 {
		if cc.Threshold == 0 {
			cc.Threshold = DefaultClockStepThreshold
		}
		if cc.Interval <= 0 {
			cc.Interval = DefaultClockCheckInterval
		}
		h.c.stopClock, h.c.clockDone = make(chan struct{}), make(chan struct{})
		go h.watchClock(cc, h.c.stopClock, h.c.clockDone)
	}
	if space != nil {
		space.start(h)
	}
	if hole := w.Hole(); hole != nil {
		h.reportHole(hole)
	}
	return h, nil
}

// reportHole puts on record, as an audit_outage record (which the default
// alert rules alert on), what the chain found when it resumed: a power
// loss left acknowledged records as zeros in the newest file, and those
// after them out of the chain (see chain.Hole).
func (h *Handler) reportHole(hole *chain.Hole) {
	attrs := []slog.Attr{
		Audit,
		slog.String(EventKey, AuditOutage),
		slog.String(ActionKey, ActionWrite),
		slog.String(ResourceTypeKey, "audit_log"),
		slog.String(ResourceKey, filepath.Base(h.c.dir)),
		slog.String(StatusKey, string(StatusFailed)),
		slog.String(ReasonKey, "power_loss"),
		slog.String("file", hole.File),
		slog.Int64("offset", hole.Offset),
		slog.Uint64("chain_seq", hole.ChainSeq),
		slog.Int64("stranded_bytes", hole.End-hole.Data),
	}
	if hole.FirstSeq > hole.ChainSeq {
		attrs = append(attrs,
			slog.Uint64("lost", hole.FirstSeq-hole.ChainSeq-1),
			slog.Uint64("stranded_from", hole.FirstSeq),
			slog.Uint64("stranded_to", hole.LastSeq))
	}
	r := slog.NewRecord(time.Now(), slog.LevelError, "audit log: power loss: "+hole.String(), 0)
	r.AddAttrs(attrs...)
	h.c.root.Handle(context.Background(), r) // a failure goes to OnError
}

// Enabled reports whether a record at level might be handled: always for an
// audit logger, for Info and above (which may carry the Audit tag), and
// otherwise as the app handler says. Tag Debug records through an audit
// logger (With(Audit)), since a root logger's Debug may be filtered before
// its attributes are seen.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.audit || level >= slog.LevelInfo || h.app.Enabled(ctx, level)
}

// Handle writes an audit record to the chained file (and a copy to the app
// handler) or a plain record to the app handler. It returns the error of
// the audit write, so that a fail-closed caller can stop; slog.Logger
// discards it, which is what Options.OnError and Log are for.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	auditErr, appErr := h.handle(ctx, r)
	return errors.Join(auditErr, appErr)
}

// handle is Handle with the audit write's error apart from the app
// handler's (Log returns only the first: the record is on record even when
// the app log failed). Both go to OnError.
func (h *Handler) handle(ctx context.Context, r slog.Record) (auditErr, appErr error) {
	isAudit, unchecked := h.audit, false
	var extra []slog.Attr
	if h.c.ctxAttrs != nil {
		extra = h.c.ctxAttrs(ctx)
	}
	if red := h.c.red; red != nil {
		// ContextAttrs carry what a request brought (a user agent, a
		// claimed id): as untrusted as the record's own attributes.
		var extraN int
		if len(extra) > 0 {
			extra, extraN = redactAttrs(red, extra)
		}
		rebuild := extraN > 0 || h.secretGroup
		// The common record, an app record with nothing to redact, is
		// checked in one call. A tag is never clean: a record that has
		// one takes the way below, as does one that needs redacting.
		if rebuild || isAudit || !red.CleanRecord(r) {
			msg, n := red.String(r.Message)
			rebuild = rebuild || n > 0
			// A record whose attributes are all plain and clean goes
			// on as it is; any other is rebuilt from what the redactor
			// returns, so that no leg renders a value (a LogValuer, a
			// struct) the redactor did not inspect.
			if !rebuild && isAudit {
				// writeAudit checks the attributes as it encodes
				// them (one pass over them, not two) and says when it
				// found one to redact.
				unchecked = true
			} else {
				// One pass finds the tag and what needs redacting.
				r.Attrs(func(a slog.Attr) bool {
					if isTag(&a) {
						isAudit = true
					} else if !rebuild && !red.Clean(a) {
						rebuild = true
					}
					return true
				})
			}
			if rebuild {
				r = h.redactRecord(r, msg, n+extraN)
			}
		}
	} else if !isAudit {
		r.Attrs(func(a slog.Attr) bool {
			isAudit = isTag(&a)
			return !isAudit
		})
	}
	sc := trace.SpanContextFromContext(ctx)
	if isAudit {
		if r.Time.IsZero() {
			// slog's handlers leave out a zero time; an audit record
			// needs its when.
			r.Time = time.Now()
		}
		var ac *alertCapture
		if h.c.alerts != nil {
			ac = new(alertCapture)
		}
		var gap outageReport
		// Close waits for the writes in flight (and their failures to be
		// counted) before it puts lost records on record and seals.
		h.c.inflight.RLock()
		if h.c.closed.Load() {
			auditErr = ErrClosed
			if unchecked {
				r = h.redactRecord(r, r.Message, 0) // for the app copy
			}
		} else {
			if h.c.outage.n.Load() != 0 {
				gap = h.c.root.writeOutage()
			}
			var dirty bool
			dirty, auditErr = h.writeAudit(r, sc, extra, unchecked, ac)
			if dirty {
				r = h.redactRecord(r, r.Message, 0)
				_, auditErr = h.writeAudit(r, sc, extra, false, ac)
			}
			if auditErr != nil && !errors.Is(auditErr, ErrClosed) {
				h.c.outage.note(auditErr)
			}
		}
		h.c.inflight.RUnlock()
		// Alerts are written through handle: outside the lock.
		if gap.ok {
			h.c.root.afterOutage(gap)
		}
		if h.c.alerts != nil {
			if auditErr == nil {
				h.c.alerts.observeRecord(ctx, ac.ev, sc)
			} else if !errors.Is(auditErr, ErrClosed) {
				// The rules hear of the failure now, not once a
				// record can be written again: a trail that stays
				// unwritable must alert too.
				h.c.alerts.observeFailed(ctx, ac.ev, sc, h.c.dirName)
			}
		}
	}
	if (!isAudit || h.c.appCopy) && h.app.Enabled(ctx, r.Level) {
		app := h.app
		if sc.IsValid() || len(extra) > 0 {
			var perRecord []slog.Attr
			app, perRecord = h.appHandler(sc, extra)
			if len(perRecord) > 0 {
				r.AddAttrs(perRecord...)
			}
		}
		if aerr := app.Handle(ctx, r); aerr != nil {
			appErr = fmt.Errorf("handler: app handler: %w", aerr)
		}
	}
	if err := errors.Join(auditErr, appErr); err != nil && h.c.onError != nil {
		h.c.onError(err)
	}
	return auditErr, appErr
}

// outage counts the audit records that could not be written, so that the
// first audit record that can be written again is preceded by a record of
// the gap: a failed write leaves no line and no break in the chain.
type outage struct {
	n           atomic.Int64 // records not written and not yet on record
	mu          sync.Mutex
	first, last time.Time
	err         error // the last write error
}

func (o *outage) note(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	if o.n.Load() == 0 {
		o.first = now
	}
	o.last, o.err = now, err
	o.n.Add(1)
}

// outageReport is an audit_outage record that was written.
type outageReport struct {
	r  slog.Record
	ev AlertEvent
	ok bool
}

// writeOutage writes the audit_outage record of the records not written
// since the last one; h is the root handler. If that write fails too, the
// count stays for the next record to try.
func (h *Handler) writeOutage() outageReport {
	o := &h.c.outage
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.n.Load()
	if n == 0 {
		return outageReport{}
	}
	dir := filepath.Base(filepath.Dir(h.c.w.Path()))
	r := slog.NewRecord(time.Now(), slog.LevelError, fmt.Sprintf("audit log: %d audit records not written", n), 0)
	r.AddAttrs(Audit,
		slog.String(EventKey, AuditOutage),
		slog.String(ActionKey, ActionWrite),
		slog.String(ResourceTypeKey, "audit_log"),
		slog.String(ResourceKey, dir),
		slog.String(StatusKey, string(StatusFailed)),
		slog.String(ReasonKey, "write_failed"),
		slog.Int64("lost", n),
		slog.Time("first", o.first),
		slog.Time("last", o.last),
		slog.Any(ErrorKey, o.err),
	)
	if h.c.red != nil {
		msg, k := h.c.red.String(r.Message)
		r = h.redactRecord(r, msg, k)
	}
	var ac alertCapture
	if _, err := h.writeAudit(r, trace.SpanContext{}, nil, false, &ac); err != nil {
		return outageReport{}
	}
	o.n.Add(-n)
	return outageReport{r, ac.ev, true}
}

// afterOutage gives a written audit_outage record to the alert rules and
// the app handler, as handle does with any audit record.
func (h *Handler) afterOutage(gap outageReport) {
	ctx := context.Background()
	if h.c.alerts != nil {
		h.c.alerts.observeRecord(ctx, gap.ev, trace.SpanContext{})
	}
	if h.c.appCopy && h.app.Enabled(ctx, gap.r.Level) {
		if err := h.app.Handle(ctx, gap.r); err != nil && h.c.onError != nil {
			h.c.onError(fmt.Errorf("handler: app handler: %w", err))
		}
	}
}

var bufPool = sync.Pool{New: func() any { return &auditBuf{b: make([]byte, 0, 1024)} }}

// auditBuf is pooled: it carries the encoded body and receives the record's
// position, so a write costs no allocation.
type auditBuf struct {
	b     []byte
	top   []string // the encoder's top-level keys
	set   map[string]struct{}
	next  map[string]int
	alert alertCapture // copied out to writeAudit's ac: ac itself would escape with the encoder
	pos   chain.Position
}

// writeAudit encodes r and appends it to the chain. With unchecked, the
// attributes of r have not been through the redactor yet: each is checked
// as it is encoded, and at the first that is not clean nothing is written
// and dirty is returned, for the caller to redact r and write it again.
// ac, if not nil, receives the members the alert rules read, as written.
func (h *Handler) writeAudit(r slog.Record, sc trace.SpanContext, extra []slog.Attr, unchecked bool, ac *alertCapture) (dirty bool, err error) {
	ab := bufPool.Get().(*auditBuf)
	defer func() {
		if cap(ab.b) <= 64<<10 {
			bufPool.Put(ab)
		}
	}()
	e := encoder{b: ab.b[:0], top: ab.top[:0], set: ab.set, next: ab.next}
	if ac != nil {
		ab.alert = alertCapture{}
		e.alert = &ab.alert
	}
	defer func() {
		clear(e.top) // keep no caller's key alive in the pool
		e.reset()
		ab.top, ab.set, ab.next = e.top[:0], e.set, e.next
	}()
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	e.b = append(e.b, `"time":`...)
	e.b = jsonenc.Time(e.b, t)
	e.b = append(e.b, `,"level":`...)
	e.b = jsonenc.String(e.b, r.Level.String())
	e.b = append(e.b, `,"msg":`...)
	e.b = jsonenc.String(e.b, r.Message)
	if sc.IsValid() {
		e.b = append(e.b, `,"trace_id":"`...)
		tid := sc.TraceID()
		e.b = appendHex(e.b, tid[:])
		e.b = append(e.b, `","span_id":"`...)
		sid := sc.SpanID()
		e.b = appendHex(e.b, sid[:])
		e.b = append(e.b, '"')
	}
	e.sep = true
	for _, a := range extra {
		e.attr(a)
	}
	if len(h.pre) > 0 {
		e.b = append(e.b, ',')
		e.appendPre(h.pre, h.preKeys, &h.preAlert)
		e.depth = h.nOpen
	}
	if r.NumAttrs() > 0 {
		m := e.mark()
		depth := e.depth
		for _, g := range h.groups[h.nOpen:] {
			e.openGroup(g)
		}
		empty := true
		r.Attrs(func(a slog.Attr) bool {
			if isTag(&a) {
				return true
			}
			if unchecked && !h.c.red.Clean(a) {
				dirty = true
				return false
			}
			if e.attr(a) {
				empty = false
			}
			return true
		})
		if dirty {
			return true, nil
		}
		if empty {
			e.undo(m)
			e.depth = depth
		}
	}
	for ; e.depth > 0; e.depth-- {
		e.b = append(e.b, '}')
	}
	ab.b = e.b
	if ac != nil {
		*ac = ab.alert // also when the write fails: see alertEngine.observeFailed
	}
	err = h.c.w.Append(ab.b, &ab.pos)
	if errors.Is(err, rotate.ErrClosed) {
		return false, ErrClosed
	}
	if err != nil {
		return false, fmt.Errorf("handler: audit record not written: %w", err)
	}
	for _, s := range h.c.sinks {
		s.Audit(ab.b, ab.pos)
	}
	return false, nil
}

func appendHex(b, src []byte) []byte {
	const digits = "0123456789abcdef"
	for _, c := range src {
		b = append(b, digits[c>>4], digits[c&0xf])
	}
	return b
}

// redactAttrs returns as with secrets removed and how many were: as itself
// when every attribute is clean, else a copy holding what the redactor
// returned (also when it counts zero: a LogValuer is resolved there once).
func redactAttrs(red *redact.Redactor, as []slog.Attr) ([]slog.Attr, int) {
	for i := range as {
		if !red.Clean(as[i]) {
			out := make([]slog.Attr, len(as))
			copy(out, as[:i])
			total := 0
			for j := i; j < len(as); j++ {
				var n int
				out[j], n = red.Attr(as[j])
				total += n
			}
			return out, total
		}
	}
	return as, 0
}

// redactRecord returns a copy of r with the redacted message msg and every
// attribute redacted, plus redacted=N; n counts the redactions made before
// (the message's, the ContextAttrs').
func (h *Handler) redactRecord(r slog.Record, msg string, n int) slog.Record {
	total := n
	r2 := slog.NewRecord(r.Time, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if !isTag(&a) {
			var n int
			a, n = h.redactAttr(a)
			total += n
		}
		r2.AddAttrs(a)
		return true
	})
	if total > 0 {
		r2.AddAttrs(slog.Int(redact.RedactedKey, total))
	}
	return r2
}

// WithAttrs returns a handler whose records carry attrs. The Audit tag among
// them makes every record of the new handler an audit record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	// Resolve and redact once, here, and give every leg the result:
	// a LogValuer asked again would log what the redactor did not inspect.
	as := make([]slog.Attr, 0, len(attrs)+1)
	total := 0
	for _, a := range attrs {
		switch {
		case isTag(&a):
		case h.c.red != nil:
			var n int
			a, n = h.redactAttr(a)
			total += n
		default:
			a = resolved(a)
		}
		as = append(as, a)
	}
	if total > 0 {
		as = append(as, slog.Int(redact.RedactedKey, total))
	}
	attrs = as
	h2 := h.clone()
	h2.app = h.app.WithAttrs(attrs)
	// Pre-encode, opening the groups that are not open in pre yet; if no
	// attribute lands, the groups stay closed and pre stays as it was.
	e := encoder{b: h2.pre, sep: len(h2.pre) > 0, depth: h.nOpen, trackOffs: true}
	if h.c.alerts != nil {
		e.alert = &h2.preAlert // a copy of h's: h2 is a clone
	}
	for _, pk := range h.preKeys {
		e.top = append(e.top, pk.key)
		e.offs = append(e.offs, pk.off)
		e.bloom |= bloomBit(pk.key)
	}
	for _, g := range h.groups[h.nOpen:] {
		e.openGroup(g)
	}
	wrote := false
	for _, a := range attrs {
		if isTag(&a) {
			h2.audit = true
		} else if e.attr(a) {
			wrote = true
		}
	}
	if wrote {
		h2.pre, h2.nOpen = e.b, len(h.groups)
		h2.preKeys = slices.Clip(h.preKeys)
		for i := len(h.preKeys); i < len(e.top); i++ {
			h2.preKeys = append(h2.preKeys, preKey{e.top[i], e.offs[i]})
		}
	}
	return h2
}

// WithGroup returns a handler that puts later attributes in group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := h.clone()
	if red := h.c.red; red != nil {
		h2.secretGroup = h.secretGroup || red.SecretKey(name)
		// A group name is a key chosen by the program, but one built
		// from data ("Bearer ...") is scanned like text, as
		// redact.Handler does. (Its redaction is not counted: records
		// carry the count of their attributes.)
		name, _ = red.String(name)
	}
	h2.app = h.app.WithGroup(name)
	h2.groups = append(h2.groups, name)
	return h2
}

// redactAttr redacts a logged by h: as a whole inside a secret group.
func (h *Handler) redactAttr(a slog.Attr) (slog.Attr, int) {
	if h.secretGroup {
		return h.c.red.SecretAttr(a)
	}
	return h.c.red.Attr(a)
}

// resolved returns a with its LogValuers resolved, inside groups too.
func resolved(a slog.Attr) slog.Attr {
	a.Value = a.Value.Resolve()
	if a.Value.Kind() == slog.KindGroup {
		g := a.Value.Group()
		out := make([]slog.Attr, len(g))
		for i, m := range g {
			out[i] = resolved(m)
		}
		a.Value = slog.GroupValue(out...)
	}
	return a
}

func (h *Handler) clone() *Handler {
	h2 := *h
	h2.pre = slices.Clip(h.pre)
	h2.groups = slices.Clip(h.groups)
	h2.spans = new(spanHandlers)
	return &h2
}

// Close writes a close record, syncs and closes the audit file. It is safe
// to call more than once; audit records handled afterwards get ErrClosed
// and go to OnError, but the trail cannot hold them, and slog.Logger drops
// the error of a plain slog call. So close it last: after the HTTP server
// has drained (http.Server.Shutdown returned; the example also cuts the
// connections of requests that outlast its shutdown timeout and waits for
// their handlers) and every other goroutine that logs audit records has
// stopped.
func (h *Handler) Close() error {
	c := h.c
	c.closeOnce.Do(func() {
		if c.stopVerify != nil {
			close(c.stopVerify)
			<-c.verifyDone
		}
		if c.stopClock != nil {
			close(c.stopClock)
			<-c.clockDone
		}
		c.inflight.Lock() // no audit write in flight, none to come
		c.closed.Store(true)
		c.inflight.Unlock()
		if c.outage.n.Load() != 0 {
			// Records were lost since the last one written: say so
			// before the file is sealed, if the disk lets us.
			c.root.writeOutage()
		}
		c.closeErr = c.w.Close()
	})
	return c.closeErr
}

// Rotate starts a new audit file now, e.g. on SIGHUP.
func (h *Handler) Rotate() error { return h.c.w.Rotate() }

// Checkpoint ends the current epoch now (see chain.Writer.Checkpoint).
func (h *Handler) Checkpoint() error { return h.c.w.Checkpoint() }

// CurrentKey returns a copy of the current epoch's MAC key, for verifying
// this epoch's records in process (see SelfVerify).
func (h *Handler) CurrentKey() (chain.KeyState, bool) { return h.c.w.CurrentKey() }

// EpochKey returns a copy of an epoch's MAC key while the writer holds it
// (chain.Writer.EpochKey), for query.Options.EpochKey.
func (h *Handler) EpochKey(epoch uint64) (key []byte, from uint64, ok bool) {
	return h.c.w.EpochKey(epoch)
}

// Path returns the path of the audit file being written.
func (h *Handler) Path() string { return h.c.w.Path() }
