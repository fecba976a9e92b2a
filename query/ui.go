package query

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Actions of the audit events that the UI's page and stream write.
const (
	ActionView      = "view"       // GET /audit/ui
	ActionStream    = "stream"     // GET /audit/stream, when it opens (or is refused, or revoked)
	ActionStreamEnd = "stream_end" // GET /audit/stream, when it ends
)

// Members of the stream_end audit event.
const (
	StreamDurationKey = "stream.duration" // seconds the stream was open
	StreamEventsKey   = "stream.events"   // audit records it sent
)

// Reasons of the stream_end audit event.
const (
	StreamEndClientGone = "client_gone" // the client closed the connection, or stopped reading
	StreamEndShutdown   = "shutdown"    // UI.Close (the server shutting down)
	StreamEndError      = "error"       // reading the files failed (status failed, with the error)
)

// The parameters of GET /audit/stream: the filters of GET /audit/events,
// and where to start.
var streamParams = []string{
	"since", "until", "event", "action", "resource_type", "resource",
	"status", "trace_id", "principal", "client", "backlog", "after",
}

//go:embed ui/index.html ui/app.js ui/style.css
var uiFiles embed.FS

// UIOptions configure NewUI.
type UIOptions struct {
	// Reader, Authorize, AuditLog and OmitPrincipal as for NewHandler: the
	// page and the stream are behind the same authorization, and every
	// access is an audit event (event=audit_access, action view or stream).
	HandlerOptions
	// Notifier wakes the streams as soon as a record is written, and
	// makes them send only records that are committed (see Reader.Follow);
	// pass the same Notifier to the handler that writes the directory as a
	// Sink. Without it streams poll, and may send a record that is then
	// rolled back (event "retracted", see Stream).
	Notifier *Notifier
	// TraceURL links each trace id, e.g.
	// "http://localhost:16686/trace/{trace_id}" for Jaeger; "" for no links.
	TraceURL string
	// Poll overrides how often streams look for new records (see
	// FollowOptions.Poll).
	Poll time.Duration
	// MaxStreams bounds the open streams (default 16); more are answered 503.
	MaxStreams int
	// Heartbeat is how often an idle stream sends a comment, to find dead
	// connections (default 15s).
	Heartbeat time.Duration
}

// UI serves the live view of the audit trail: a page (GET /audit/ui) and
// the Server-Sent Events stream it reads (GET /audit/stream).
type UI struct {
	a    auditor
	opts UIOptions

	page []byte // the page, with its script and style inline
	csp  string

	streams atomic.Int32
	base    context.Context // done at Close
	close   context.CancelFunc
}

// NewUI returns the live view. Mount its handlers next to /audit/events:
//
//	mux.Handle("/audit/ui", ui.Page()) // no method: a POST is refused on the record
//	mux.Handle("/audit/stream", ui.Stream())
//	srv.RegisterOnShutdown(ui.Close) // streams never end by themselves
//
// The page finds the stream at "stream", relative to its own URL.
func NewUI(opts UIOptions) (*UI, error) {
	a, err := newAuditor(opts.HandlerOptions)
	if err != nil {
		return nil, err
	}
	if opts.TraceURL != "" {
		u, err := url.Parse(strings.ReplaceAll(opts.TraceURL, "{trace_id}", "0"))
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || !strings.Contains(opts.TraceURL, "{trace_id}") {
			return nil, fmt.Errorf("query: UIOptions.TraceURL must be an http(s) URL containing {trace_id}, not %q", opts.TraceURL)
		}
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 16
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	u := &UI{a: a, opts: opts}
	u.base, u.close = context.WithCancel(context.Background())
	u.buildPage()
	return u, nil
}

// buildPage puts the script and style into the page, and allows exactly
// them in the Content-Security-Policy: no other script runs on the page,
// whatever an audit record holds.
func (u *UI) buildPage() {
	read := func(name string) []byte {
		b, err := uiFiles.ReadFile("ui/" + name)
		if err != nil {
			panic(err) // embedded
		}
		return b
	}
	js, css := read("app.js"), read("style.css")
	hash := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	page := read("index.html")
	page = bytes.Replace(page, []byte("<!--STYLE-->"), append(append([]byte("<style>"), css...), "</style>"...), 1)
	page = bytes.Replace(page, []byte("<!--SCRIPT-->"), append(append([]byte("<script>"), js...), "</script>"...), 1)
	page = bytes.Replace(page, []byte("{{TRACE_URL}}"), []byte(html.EscapeString(u.opts.TraceURL)), 1)
	u.page = page
	u.csp = "default-src 'none'; script-src " + hash(js) + "; style-src " + hash(css) +
		"; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// Close ends the open streams and refuses new ones; the page stays.
func (u *UI) Close() { u.close() }

// Page returns the handler of GET /audit/ui: a static page (no data) whose
// script asks for the token and reads the stream with it. A request
// without valid credentials gets the page with status 401 (the browser
// shows it; the sign-in form is all it can use), with 403 for a principal
// that may not read the audit log; both are audited as denied, as is any
// access, like queries.
func (u *UI) Page() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			u.a.methodNotAllowed(w, r, ActionView, "GET, HEAD")
			return
		}
		code := http.StatusOK
		principal, err := u.a.opts.Authorize(r)
		ac := access{status: StatusSuccess, principal: principal}
		switch {
		case errors.Is(err, ErrUnauthenticated):
			code, ac = http.StatusUnauthorized, access{status: StatusDenied, reason: unauthenticatedReason(err)}
			w.Header().Set("WWW-Authenticate", "Bearer")
		case errors.Is(err, ErrForbidden):
			code, ac.status, ac.reason = http.StatusForbidden, StatusDenied, "forbidden"
		case err != nil:
			u.a.audit(r.Context(), r, ActionView, nil, access{status: StatusFailed, reason: "authorization_error", err: err, principal: principal})
			writeError(w, http.StatusInternalServerError, "", "internal error")
			return
		}
		if err := u.a.audit(r.Context(), r, ActionView, nil, ac); err != nil {
			writeError(w, http.StatusInternalServerError, "", "the access could not be audited")
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", u.csp)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY") // frame-ancestors for older browsers
		w.WriteHeader(code)
		if r.Method == http.MethodGet {
			w.Write(u.page)
		}
	})
}

// Stream returns the handler of GET /audit/stream, Server-Sent Events of
// the audit records that match the filters of GET /audit/events (since,
// until, event, action, resource_type, resource, status, trace_id,
// principal, client), oldest first:
//
//	id: 42
//	event: audit
//	data: {"seq":42,...the record as written..., "file":"...", "line":N, "verified":true}
//
// What comes first: with the seq of the Last-Event-ID header or the after
// parameter (a reconnecting client), the matching records after it that
// were written before the stream opened (at most 10,000, the newest);
// otherwise the newest backlog (0 to 1000, default 0) matching records.
// Then an event "live" (data {"after":seq}) says that what follows is
// written from now on, and a comment line comes every Heartbeat while
// nothing does. At every heartbeat Authorize is asked again: credentials
// revoked meanwhile end the stream with an event "end" (data
// {"reason":"revoked"}) and a denied audit event. A file that can no
// longer be read to its end is skipped with an event "unreadable" (data
// {"file":name}): its events past the damage are not sent. A line longer
// than MaxLineBytes is passed over with an event "unreadable" whose data
// also says which line and why ({"file":name,"error":"line 7 (…): …"}):
// the stream goes on with the next line.
//
// With UIOptions.Notifier the stream sends only records that are
// committed (see Reader.Follow). Without it, a record sent can be one
// whose write the writer then rolls back (an fsync that failed): an
// event "retracted" (data {"file":name,"seqs":[seq,...]}) then says that
// the records sent with these seqs (or, for seqs up to the one "live"
// named, maybe sent before it) are not in the trail, and the records that
// took their seqs follow, with the same ids. A client that resumes must
// resume before the first of them.
//
// Credentials go in the Authorization header, as for GET /audit/events.
// The page reads the stream with fetch() rather than EventSource, which
// cannot send headers: so no token ever travels in a URL (where access
// logs, proxies and browser history keep it), and there is no second kind
// of credential (a stream ticket) to issue, expire and revoke.
//
// The stream's audit event (action stream) is written when it opens,
// before anything is sent; records are sent as they are read from the
// files, so a slow client never holds up the writer. Its end is an audit
// event too, action stream_end, status success with reason client_gone or
// shutdown (failed with reason error when reading the files failed), with
// how long it was open (stream.duration, seconds) and how many records it
// sent (stream.events); a stream ended by revoked credentials has the
// denied stream event instead.
func (u *UI) Stream() http.Handler {
	return http.HandlerFunc(u.serveStream)
}

func (u *UI) serveStream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		u.a.methodNotAllowed(w, r, ActionStream, http.MethodGet)
		return
	}
	ctx := r.Context()
	principal, ok := u.a.authorize(w, r, ActionStream, streamParams)
	if !ok {
		return
	}
	fail := func(code int, reason string, err error, param, msg string) {
		u.a.audit(ctx, r, ActionStream, streamParams, access{status: StatusFailed, reason: reason, err: err, principal: principal})
		writeError(w, code, param, msg)
	}
	sr, err := parseStreamRequest(r)
	if pe := (*ParamError)(nil); errors.As(err, &pe) {
		fail(http.StatusBadRequest, "bad_request", err, pe.Param, pe.Error())
		return
	}
	if u.base.Err() != nil {
		fail(http.StatusServiceUnavailable, "shutting_down", nil, "", "shutting down")
		return
	}
	if n := u.streams.Add(1); n > int32(u.opts.MaxStreams) {
		u.streams.Add(-1)
		fail(http.StatusServiceUnavailable, "too_many_streams", nil, "", "too many open streams")
		return
	}
	defer u.streams.Add(-1)
	rc := http.NewResponseController(w)
	reader := u.a.opts.Reader

	// What is sent before "live" (the backlog, or what a resuming client
	// missed) is read up to the head; the stream follows from there, so
	// nothing is sent twice or missed between the two.
	// With the Notifier, the head is the newest committed line (Head can
	// be a line whose write is pending, and the backlog would hold it).
	head, err := reader.Head()
	if err == nil && u.opts.Notifier != nil {
		head = reader.committedHead(head, u.opts.Notifier)
	}
	var backlog []Event // oldest first
	if err == nil {
		backlog, err = u.catchUp(ctx, sr, head)
	}
	if err != nil {
		fail(http.StatusInternalServerError, "error", err, "", "internal error")
		return
	}
	after := max(head, sr.after)
	if err := u.a.audit(ctx, r, ActionStream, streamParams, access{status: StatusSuccess, principal: principal}); err != nil {
		writeError(w, http.StatusInternalServerError, "", "the access could not be audited")
		return
	}
	// From here the stream's end is audited, once it is over (this runs
	// after the heartbeat is done): how long, how much, and why.
	opened := time.Now()
	var (
		sent        int         // audit records sent
		revoked     atomic.Bool // the heartbeat audited the end (denied)
		writeFailed atomic.Bool // the client stopped taking data
		followErr   error
	)
	defer func() {
		if revoked.Load() {
			return
		}
		a := access{status: StatusSuccess, reason: StreamEndClientGone, principal: principal, extra: []slog.Attr{
			slog.Float64(StreamDurationKey, time.Since(opened).Seconds()),
			slog.Int(StreamEventsKey, sent),
		}}
		switch {
		case u.base.Err() != nil:
			a.reason = StreamEndShutdown
		case r.Context().Err() != nil || writeFailed.Load():
		case followErr != nil:
			a.status, a.reason, a.err = StatusFailed, StreamEndError, followErr
		}
		// The request's context is done when the client went away; its
		// values (trace, audit context) are still the request's.
		u.a.audit(context.WithoutCancel(r.Context()), r, ActionStreamEnd, streamParams, a)
	}()
	write := func(b []byte) error {
		err := u.write(rc, w, b)
		if err != nil {
			writeFailed.Store(true)
		}
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(u.base, cancel)
	defer stop()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)

	var mu sync.Mutex // the heartbeat and the events write to w
	var buf []byte
	send := func(id uint64, event string, data []byte) error {
		mu.Lock()
		defer mu.Unlock()
		buf = buf[:0]
		if id > 0 {
			buf = append(buf, "id: "...)
			buf = strconv.AppendUint(buf, id, 10)
			buf = append(buf, '\n')
		}
		buf = append(buf, "event: "...)
		buf = append(buf, event...)
		buf = append(buf, "\ndata: "...)
		buf = append(buf, data...) // JSON: no newlines
		buf = append(buf, "\n\n"...)
		return write(buf)
	}
	sendEvent := func(e Event) error {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := send(e.Seq, "audit", b); err != nil {
			return err
		}
		sent++ // only here, on this goroutine
		return nil
	}
	if err := write([]byte("retry: 2000\n\n")); err != nil {
		return
	}
	for _, e := range backlog {
		if err := sendEvent(e); err != nil {
			return
		}
	}
	if err := send(0, "live", fmt.Appendf(nil, `{"after":%d}`, after)); err != nil {
		return
	}
	// The heartbeat must be done with w before the handler returns.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() {
		t := time.NewTicker(u.opts.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				// Credentials revoked (or a principal no longer allowed)
				// while the stream is open end it, audited.
				if p, err := u.a.opts.Authorize(r); err != nil {
					a := access{status: StatusDenied, reason: "revoked", principal: cmp.Or(p, principal)}
					if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err, ErrForbidden) {
						a.status, a.reason, a.err = StatusFailed, "authorization_error", err
					}
					u.a.audit(r.Context(), r, ActionStream, streamParams, a)
					revoked.Store(true)
					send(0, "end", []byte(`{"reason":"`+a.reason+`"}`))
					cancel()
					return
				}
				mu.Lock()
				err := write([]byte(": ping\n\n"))
				mu.Unlock()
				if err != nil {
					cancel()
					return
				}
			}
		}
	})
	// A damaged file is skipped, and the page told (event "unreadable");
	// so is a line too long to read.
	unreadable := func(file string, err error) {
		m := map[string]string{"file": file}
		if errors.Is(err, ErrLineTooLong) {
			m["error"] = err.Error()
		}
		b, _ := json.Marshal(m)
		send(0, "unreadable", b)
	}
	// Records sent that the writer rolled back (without a Notifier,
	// see Follow) are taken back (event "retracted").
	retracted := func(file string, seqs []uint64) {
		b, _ := json.Marshal(struct {
			File string   `json:"file"`
			Seqs []uint64 `json:"seqs"`
		}{file, seqs})
		send(0, "retracted", b)
	}
	followErr = reader.Follow(ctx, FollowOptions{Filter: sr.filter, After: after, Notifier: u.opts.Notifier, Poll: u.opts.Poll,
		OnUnreadable: unreadable, OnRetracted: retracted, Shown: backlog}, sendEvent)
}

// maxCatchUp bounds what a resuming stream sends before "live"; a client
// further behind starts again with a backlog.
const maxCatchUp = 10 * MaxLimit

// catchUp returns the events up to head that the stream sends first,
// oldest first: the newest sr.backlog ones, or, for a client that resumes,
// those after sr.after (at most maxCatchUp, the newest).
func (u *UI) catchUp(ctx context.Context, sr streamRequest, head uint64) ([]Event, error) {
	reader := u.a.opts.Reader
	if head == 0 || head == math.MaxUint64 || sr.resume && sr.after >= head {
		return nil, nil
	}
	limit := sr.backlog
	if sr.resume {
		limit = maxCatchUp
	}
	var out []Event
	cursor := encodeCursor(NewestFirst, head+1)
	for len(out) < limit {
		page, err := reader.Query(ctx, Request{Filter: sr.filter, Limit: min(MaxLimit, limit-len(out)), Cursor: cursor})
		if err != nil {
			return nil, err
		}
		for _, e := range page.Events {
			if sr.resume && e.Seq <= sr.after {
				page.NextCursor = ""
				break
			}
			out = append(out, e)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	slices.Reverse(out)
	return out, nil
}

// write writes b and flushes it, giving a client that does not read 30s.
func (u *UI) write(rc *http.ResponseController, w http.ResponseWriter, b []byte) error {
	rc.SetWriteDeadline(time.Now().Add(30 * time.Second)) // not every ResponseWriter supports it
	if _, err := w.Write(b); err != nil {
		return err
	}
	return rc.Flush()
}

type streamRequest struct {
	filter  Filter
	backlog int
	after   uint64
	resume  bool // after (or Last-Event-ID) was given
}

func parseStreamRequest(r *http.Request) (streamRequest, error) {
	var sr streamRequest
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return sr, &ParamError{Param: "query", Msg: "malformed query string: " + err.Error()}
	}
	for _, k := range []string{"order", "limit", "cursor"} {
		if v.Has(k) {
			return sr, paramErr(k, "not a parameter of the stream (use after or backlog)")
		}
	}
	if s := v.Get("backlog"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > MaxLimit || len(v["backlog"]) > 1 {
			return sr, paramErr("backlog", "must be an integer from 0 to %d, given once", MaxLimit)
		}
		sr.backlog = n
	}
	last := r.Header.Get("Last-Event-ID")
	if s := v.Get("after"); s != "" {
		last = s
	}
	if last != "" {
		n, err := strconv.ParseUint(last, 10, 64)
		if err != nil || len(v["after"]) > 1 {
			return sr, paramErr("after", "must be a seq (Last-Event-ID), given once, not %q", last)
		}
		sr.after, sr.resume = n, true
	}
	v.Del("backlog")
	v.Del("after")
	req, err := ParseRequest(v)
	if err != nil {
		return sr, err
	}
	sr.filter = req.Filter
	return sr, nil
}
