// Package middleware is the net/http side of slogaudit: it wraps a handler
// with otelhttp (server spans, W3C traceparent in and out), puts the
// request's audit context — who (principal), from where (client address,
// user agent), in which request — into the context for every record logged
// with it, and writes one activity record per request to the audit trail.
//
// The audit context reaches records through handler.Options.ContextAttrs:
//
//	h, err := handler.New(handler.Options{..., ContextAttrs: middleware.Attrs})
//	if err != nil { ... }
//	srv := middleware.Wrap(mux, middleware.Options{ActivityLog: handler.Logger(slog.Default()), Authenticate: ...})
//
// # Where a request came from
//
// client.address is the peer's address (the other end of the connection),
// unless the peer is one of Options.TrustedProxies and the request has the
// header Options.ForwardedHeader names: X-Forwarded-For (the default) or
// Forwarded (RFC 7239, its for= parameters). Configure the one your proxies
// set or append to; a proxy passes the other through as the client sent
// it, so it is never read for the address. The configured header's hops
// are read from the right (the last header line's last hop first; empty
// list elements are skipped), past those in TrustedProxies: the first
// hop that is not a trusted proxy is the client (the left-most hop when all
// are). What is left of it may be the client's own making, and is not read. A
// forwarded IPv6 zone is dropped; an IPv4-mapped address is its IPv4 one.
//
// When the configured header from a trusted proxy does not name a client —
// it is empty, or the walk meets a hop that is not an IP address (garbage,
// Forwarded's "unknown" or an obfuscated "_identifier", an element without
// for=) before an untrusted one — client.address is the last trusted
// address the walk reached (the proxy itself, if not even the right-most hop
// is an address), and the header is recorded, as received, as its claim:
// the claim next to it says that the address is a proxy's, not the
// client's. client.address is not left out, so that the per-client alert
// rules still count the request.
//
// A forwarding header the address is not read from — either one from an
// untrusted peer, the one not configured from a trusted proxy, the
// configured one that named no client — is recorded as received (its lines
// joined with ",", cut at 256 bytes at a separator), even when empty, as
// the claim http.request.header.x-forwarded-for or
// http.request.header.forwarded.
//
// # The activity record
//
// Each request gets one record, event http_request, with status success,
// failed (5xx, other 4xx, a panic) or denied (401, 403). A panic is
// recorded as failed (error=panic, the value as panic) and re-raised.
// panic(http.ErrAbortHandler), a handler's way to abort its response (and
// httputil.ReverseProxy's when the upstream fails mid-copy), is recorded as
// failed with an error that says so, the status code the handler wrote as
// http.response.status_code (none if it wrote none: the client got no
// response), and re-raised, so that net/http still cuts the connection.
//
// A response that did not reach the client keeps the handler's outcome
// (status, http.response.status_code: the action may have been done) and
// says so: http.response.write_error is the first write or flush that
// failed (not http.ErrBodyNotAllowed, ErrContentLength or ErrHijacked, the
// handler's own misuse), http.request.cancel_cause the cause of the request
// context's cancellation (the client went away) when it came before the
// response was all sent: with a write failed, output not yet flushed, or
// nothing written. http.response.body.size is what was written before. A
// stream flushed after its last write that ends when the client leaves is
// not marked. A response lost after the handler returned (in net/http's
// or the kernel's buffers) is not seen; a client that half-closes its
// connection after the request is taken for gone.
//
// Requests that net/http answers itself before any handler runs leave no
// record: Wrap never sees them. They are headers over
// http.Server.MaxHeaderBytes (431), a malformed request line, header or
// Host, a bad Content-Length (400), an unsupported Transfer-Encoding (501)
// or HTTP version (505), an Expect other than 100-continue (417); headers
// not sent within ReadHeaderTimeout (or ReadTimeout) and a failed TLS
// handshake close the connection with no answer; an HTTP/2 protocol error
// ends the stream or the connection. net/http logs none of them but the failed TLS handshake, to
// http.Server.ErrorLog (point it at the app log). To count them, use the
// access log of the reverse proxy or load balancer in front.
package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/redact"
)

// Attribute keys. OpenTelemetry semantic-convention names where they exist.
const (
	ClientAddressKey    = "client.address"                      // the peer's IP, or the forwarded one when the peer is a trusted proxy
	ClaimedForwardedKey = "http.request.header.x-forwarded-for" // X-Forwarded-For as received, when client.address is not read from it: a claim
	ClaimedRFC7239Key   = "http.request.header.forwarded"       // Forwarded (RFC 7239) as received, likewise
	UserAgentKey        = "user_agent.original"
	PrincipalKey        = "user.id"                          // the authenticated principal
	ClaimedClientKey    = "client.claimed_id"                // X-Client-ID: what the client says it is, not authenticated
	SessionKey          = "session.hash"                     // a digest of the session cookie: the cookie itself is a credential
	ClaimedRequestIDKey = "http.request.header.x-request-id" // a valid incoming X-Request-ID; the trace id is the request id
	ClaimedTraceKey     = "http.request.header.traceparent"  // a valid traceparent from a peer whose trace context is not continued
	// Activity record only: the response did not reach the client (see
	// the package doc). No OpenTelemetry convention names these.
	ResponseWriteErrorKey = "http.response.write_error" // the first write or flush of the response that failed
	CancelCauseKey        = "http.request.cancel_cause" // the request's context was cancelled (the client went away) before the response was all sent: the cause
)

// Options configure Wrap.
type Options struct {
	// Authenticate returns the principal of the request, or "" when the
	// request carries no valid credentials. It must not log the credentials.
	Authenticate func(r *http.Request) string
	// TrustedProxies are the peers whose ForwardedHeader is believed:
	// client.address is then its right-most hop that is not one of
	// TrustedProxies (see the package doc). From any other peer forwarding
	// headers are recorded as claims only.
	TrustedProxies []netip.Prefix
	// ForwardedHeader names the header that TrustedProxies write to say
	// whom they forward for: "X-Forwarded-For" (the default) or "Forwarded"
	// (RFC 7239, its for= parameters). It must be the one they set or
	// append to — a proxy passes the other through as the client sent it —
	// so only this one is read; the other is recorded as a claim
	// (http.request.header.x-forwarded-for or http.request.header.forwarded),
	// never as the address. Wrap panics on any other name.
	ForwardedHeader string
	// TrustTraceparent reports whether the request's W3C traceparent is
	// continued: the request's records and span then carry the caller's
	// trace id. Otherwise the request starts a new trace whose span links
	// to the caller's, and a valid traceparent is recorded as a claim
	// (http.request.header.traceparent): a client cannot make its requests
	// share another request's correlation id. Default: one of
	// TrustedProxies, or a loopback peer whose request carries no
	// forwarding header: none of X-Forwarded-For, Forwarded and X-Real-IP,
	// not even an empty one (a loopback peer that sends one is a proxy on this host
	// relaying a client's request).
	TrustTraceparent func(r *http.Request) bool
	// ActivityLog receives one audit record per request; pass an audit
	// logger (handler.Logger(l)). Nil: no activity log.
	ActivityLog *slog.Logger
	// Skip reports requests that get no activity record, e.g. health checks.
	// They still get a span and an audit context.
	Skip func(r *http.Request) bool
	// SessionCookie names the cookie whose presence is recorded as
	// session.hash, a digest (the value itself is a credential). Default: none.
	SessionCookie string
	// TracerProvider makes the server spans. Default: a private SDK provider
	// that exports nothing but gives every request a trace id; pass yours
	// (e.g. from otelbridge) to export the spans.
	TracerProvider trace.TracerProvider
	// Operation is otelhttp's operation name, which otelhttp uses only to
	// name spans, and Wrap names them itself: "METHOD route" once the mux
	// has matched a pattern, the method alone otherwise.
	//
	// Deprecated: Operation has no effect.
	Operation string
	// Redactor redacts what otelhttp puts on the server span from the
	// request (URL path, user agent, forwarded client address), which
	// does not go through the handler's redactor. Default: redact.Default().
	Redactor *redact.Redactor
}

type ctxKey struct{}

// Info is the audit context of a request.
type Info struct {
	Principal       string
	ClientAddress   string
	ClaimedClientID string
	UserAgent       string
	attrs           []slog.Attr
}

// FromContext returns the audit context that Wrap put into ctx.
func FromContext(ctx context.Context) (*Info, bool) {
	i, ok := ctx.Value(ctxKey{}).(*Info)
	return i, ok
}

// Attrs returns the audit context of ctx as attributes, or nil. The slice is
// built once per request; callers must not modify it. It has the signature
// of handler.Options.ContextAttrs.
func Attrs(ctx context.Context) []slog.Attr {
	if i, ok := FromContext(ctx); ok {
		return i.attrs
	}
	return nil
}

var defaultTracerProvider = sdktrace.NewTracerProvider()

// Wrap returns next wrapped in otelhttp and the audit context.
func Wrap(next http.Handler, opts Options) http.Handler {
	tp := opts.TracerProvider
	if tp == nil {
		tp = defaultTracerProvider
	}
	op := opts.Operation
	if op == "" {
		op = "http.server"
	}
	red := opts.Redactor
	if red == nil {
		red = redact.Default()
	}
	rfc7239 := forwardedHeader(opts.ForwardedHeader)
	trust := opts.TrustTraceparent
	if trust == nil {
		trust = func(r *http.Request) bool {
			peer := peerAddr(r.RemoteAddr)
			return trusted(opts.TrustedProxies, peer) || peer.IsLoopback() && !forwarding(r.Header)
		}
	}
	inner := &auditHandler{next: next, opts: opts, red: red, trust: trust, rfc7239: rfc7239}
	return otelhttp.NewHandler(inner, op,
		otelhttp.WithTracerProvider(tp),
		otelhttp.WithPropagators(propagation.TraceContext{}),
		otelhttp.WithPublicEndpointFn(func(r *http.Request) bool { return !trust(r) }),
		// The route is not known before the mux has run; ServeHTTP
		// renames the span then. (Not the path: it is unbounded and
		// may carry a token.)
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method }),
	)
}

type auditHandler struct {
	next  http.Handler
	opts  Options
	red   *redact.Redactor
	trust func(*http.Request) bool
	// rfc7239: the trusted proxies write Forwarded, not X-Forwarded-For.
	rfc7239 bool
}

// redactSpan replaces the request values that otelhttp put on span if they
// hold a secret: spans are exported (to Jaeger, over OTLP) without passing
// the handler's redactor. The span's client.address becomes the request's
// (Info.ClientAddress): otelhttp takes the first X-Forwarded-For entry from
// any peer, which the client writes.
func (h *auditHandler) redactSpan(span trace.Span, r *http.Request, client string) {
	var kvs []attribute.KeyValue
	for _, kv := range [...]struct{ key, value string }{
		{"url.path", r.URL.Path},
		{UserAgentKey, r.UserAgent()},
	} {
		if kv.value == "" {
			continue
		}
		if s, n := h.red.String(kv.value); n > 0 {
			kvs = append(kvs, attribute.String(kv.key, s))
		}
	}
	if client != "" || len(r.Header.Values(xForwardedFor)) > 0 {
		// No address (a Unix socket's peer): otelhttp's is the client's
		// own X-Forwarded-For; it is emptied, not kept.
		kvs = append(kvs, attribute.String(ClientAddressKey, client))
	}
	if len(kvs) > 0 {
		span.SetAttributes(kvs...)
	}
}

// spanName is the span's name once the route is known: "METHOD route",
// or the method alone for a request no pattern matched.
func spanName(method, pattern string) string {
	switch {
	case pattern == "":
		return method
	case strings.HasPrefix(pattern, method+" "):
		return pattern
	}
	return method + " " + pattern
}

func (h *auditHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	info := h.info(r)
	ctx = context.WithValue(ctx, ctxKey{}, info)
	r = r.WithContext(ctx)

	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		w.Header().Set("Traceparent", fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags()))
		w.Header().Set("X-Request-ID", sc.TraceID().String())
	}
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		h.redactSpan(span, r, info.ClientAddress)
		// Deferred: also after a panic, which otelhttp records on the span.
		defer func() { span.SetName(spanName(r.Method, r.Pattern)) }()
	}
	rec := &recorder{ResponseWriter: w}
	if h.opts.ActivityLog == nil || (h.opts.Skip != nil && h.opts.Skip(r)) {
		h.next.ServeHTTP(w, r)
		return
	}
	defer func() {
		if p := recover(); p != nil {
			// http.ErrAbortHandler included: the response is cut off,
			// the request failed. Re-raised, so that net/http aborts the
			// connection (and logs any other panic).
			h.activity(ctx, r, rec, start, p)
			panic(p)
		}
	}()
	h.next.ServeHTTP(rec, r)
	h.activity(ctx, r, rec, start, nil)
}

// activity writes the request's activity record.
// panicVal is what the handler panicked with, nil if it did not.
// http.ErrAbortHandler, the handler's way to abort the response (a reverse
// proxy whose upstream failed mid-copy), is recorded as a failed request
// with the status code the handler wrote, none if it wrote none: net/http
// sends nothing more and closes the connection.
func (h *auditHandler) activity(ctx context.Context, r *http.Request, rec *recorder, start time.Time, panicVal any) {
	aborted := panicVal == http.ErrAbortHandler
	code := rec.code
	switch {
	case aborted:
	case panicVal != nil:
		code = http.StatusInternalServerError
	case code == 0:
		code = http.StatusOK
	}
	status := "success"
	switch {
	case panicVal != nil || code >= 500:
		status = "failed"
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		status = "denied"
	case code >= 400:
		status = "failed"
	}
	route := r.Pattern
	if route == "" {
		route = "unmatched"
	}
	level := slog.LevelInfo
	if status != "success" {
		level = slog.LevelWarn
	}
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs,
		slog.String("event", "http_request"),
		slog.String("action", r.Method),
		slog.String("resource_type", "http_route"),
		slog.String("resource", route),
		slog.String("status", status),
		slog.String("http.request.method", r.Method),
		slog.String("http.route", route),
		slog.String("url.path", truncate(r.URL.Path, 1024, "/")),
	)
	if code != 0 { // none: aborted before a status code
		attrs = append(attrs, slog.Int("http.response.status_code", code))
	}
	attrs = append(attrs,
		slog.Float64("http.server.request.duration", time.Since(start).Seconds()),
		slog.Int64("http.response.body.size", rec.bytes),
	)
	if r.URL.RawQuery != "" {
		// Secret parameters (?token=, ?api_key=, …) are removed by the
		// handler's redactor before any leg sees the record.
		attrs = append(attrs, slog.String("url.query", truncate(queryForLog(r.URL.RawQuery), 1024, "&")))
	}
	if rec.err != nil {
		attrs = append(attrs, slog.String(ResponseWriteErrorKey, rec.err.Error()))
	}
	if ctx.Err() != nil && (rec.err != nil || !rec.flushed) {
		// The client is gone (or the server's context was cancelled)
		// with the response not all sent.
		attrs = append(attrs, slog.String(CancelCauseKey, context.Cause(ctx).Error()))
	}
	switch {
	case aborted && code == 0:
		attrs = append(attrs, slog.String("error", "the handler aborted the response (http.ErrAbortHandler) before writing a status code: the client got no response"))
	case aborted:
		attrs = append(attrs, slog.String("error", "the handler aborted the response (http.ErrAbortHandler) after writing status code "+strconv.Itoa(code)+" and "+strconv.FormatInt(rec.bytes, 10)+" body bytes: the client got at most part of it"))
	case panicVal != nil:
		// The value itself, not its text (%v): the redactor reads a
		// struct's fields and an error's, and cuts a secret one.
		attrs = append(attrs, slog.String("error", "panic"), slog.Any("panic", panicVal))
	}
	msg := route
	if !strings.HasPrefix(route, r.Method+" ") {
		msg = r.Method + " " + route
	}
	var text string
	switch {
	case aborted && code == 0:
		text = msg + " aborted"
	case aborted:
		text = msg + " " + strconv.Itoa(code) + " aborted"
	default:
		text = msg + " " + strconv.Itoa(code)
	}
	h.opts.ActivityLog.LogAttrs(ctx, level, text, attrs...)
}

// info builds the audit context of r.
func (h *auditHandler) info(r *http.Request) *Info {
	i := &Info{UserAgent: r.UserAgent(), ClaimedClientID: strings.TrimSpace(r.Header.Get("X-Client-ID"))}
	peer := peerAddr(r.RemoteAddr)
	i.ClientAddress = peer.String()
	// A forwarding header that is present (even empty) and that the
	// address is not read from is recorded as a claim.
	xff, fwd := r.Header.Values(xForwardedFor), r.Header.Values(forwardedRFC)
	claimXFF, claimFwd := len(xff) > 0, len(fwd) > 0
	if (claimXFF || claimFwd) && peer.IsValid() && trusted(h.opts.TrustedProxies, peer) {
		// The configured header names the client. When it does not (ok
		// false), the address is the last trusted one and the header
		// stays a claim, which says that the address is a proxy's.
		switch proxies := h.opts.TrustedProxies; {
		case h.rfc7239 && claimFwd:
			a, ok := clientFromHops(hops{lines: fwd, rfc7239: true}, proxies, peer)
			i.ClientAddress, claimFwd = a.String(), !ok
		case !h.rfc7239 && claimXFF:
			a, ok := clientFromHops(hops{lines: xff}, proxies, peer)
			i.ClientAddress, claimXFF = a.String(), !ok
		}
	}
	if h.opts.Authenticate != nil {
		i.Principal = h.opts.Authenticate(r)
	}
	as := make([]slog.Attr, 0, 7)
	if i.ClientAddress != "" && i.ClientAddress != "invalid IP" {
		as = append(as, slog.String(ClientAddressKey, i.ClientAddress))
	} else {
		i.ClientAddress = ""
	}
	if claimXFF {
		as = append(as, slog.String(ClaimedForwardedKey, truncate(strings.Join(xff, ","), 256, ", ")))
	}
	if claimFwd {
		as = append(as, slog.String(ClaimedRFC7239Key, truncate(strings.Join(fwd, ","), 256, ",; ")))
	}
	if tp := r.Header.Get("traceparent"); tp != "" && !h.trust(r) {
		ctx := (propagation.TraceContext{}).Extract(context.Background(), propagation.HeaderCarrier(r.Header))
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			// As parsed, not as sent: a later version's header may be longer.
			as = append(as, slog.String(ClaimedTraceKey, "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-"+sc.TraceFlags().String()))
		}
	}
	if i.Principal != "" {
		as = append(as, slog.String(PrincipalKey, i.Principal))
	}
	if i.ClaimedClientID != "" {
		i.ClaimedClientID = truncate(i.ClaimedClientID, 128, " ")
		as = append(as, slog.String(ClaimedClientKey, i.ClaimedClientID))
	}
	if i.UserAgent != "" {
		as = append(as, slog.String(UserAgentKey, truncate(i.UserAgent, 256, " ")))
	}
	if id := r.Header.Get("X-Request-ID"); validRequestID(id) {
		as = append(as, slog.String(ClaimedRequestIDKey, id))
	}
	if h.opts.SessionCookie != "" {
		if c, err := r.Cookie(h.opts.SessionCookie); err == nil && c.Value != "" {
			// The cookie value is a bearer credential; record a stable,
			// non-reversible id of it instead.
			as = append(as, slog.String(SessionKey, sessionID(c.Value)))
		}
	}
	i.attrs = as
	return i
}

// queryForLog is a raw query as url.query logs it: with the bytes that
// end a key=value value in free text (a comma or semicolon after it, a
// quote or bracket around it, a space: see endsValue) percent-encoded,
// which a URL decoder reads back the same. The redactor reads url.query as
// text, so ?password=abc,def would otherwise lose abc and keep def, the
// rest of the one value the server read (an HTTP/2 request can carry a
// space in its query, too).
func queryForLog(q string) string {
	n := 0
	for i := 0; i < len(q); i++ {
		if endsValue(q[i]) {
			n++
		}
	}
	if n == 0 {
		return q
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(q)+2*n)
	for i := 0; i < len(q); i++ {
		if c := q[i]; endsValue(c) {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// endsValue reports whether c may end a value for the redactor's text
// rules, which a server takes into a query parameter's value as it is:
// , ; ' " < > `, a space and the ASCII control bytes.
// TestQueryForLogCoversValueEnds checks it against the redactor.
func endsValue(c byte) bool {
	return c <= ' ' || c == 0x7f || strings.IndexByte(",;'\"<>`", c) >= 0
}

// truncate shortens s to at most n bytes and a marker, cutting at the last
// of seps before the limit: a value cut in the middle (a token, a URL
// password before its '@') would no longer be recognised by the handler's
// redactor, so the part after the last whole item is dropped, all of s if
// it has no separator.
func truncate(s string, n int, seps string) string {
	if len(s) <= n {
		return s
	}
	i := strings.LastIndexAny(s[:n], seps)
	if i < 0 {
		return "…"
	}
	return s[:i] + "…"
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func peerAddr(remote string) netip.Addr {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func trusted(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// recorder captures the status code and body size, and what tells that the
// response did not reach the client: a failed write or flush, output not
// flushed when the request's context is cancelled.
type recorder struct {
	http.ResponseWriter
	code  int
	bytes int64
	// err is the first write or flush that failed for a reason other than
	// the handler's misuse of the ResponseWriter (see lost).
	err error
	// flushed: all that the handler wrote was flushed to the connection.
	// A response that was is not cut off by a client that leaves after:
	// a stream, which ends when the client goes.
	flushed bool
}

func (r *recorder) WriteHeader(code int) {
	// An informational 1xx (103 Early Hints) comes before the response's
	// own status; 101 Switching Protocols is final.
	if r.code == 0 && (code < 100 || code > 199 || code == http.StatusSwitchingProtocols) {
		r.code = code
	}
	r.flushed = false
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	r.flushed = false
	if err != nil && r.err == nil && lost(err) {
		r.err = err
	}
	return n, err
}

// Flush implements http.Flusher, so that a handler's w.(http.Flusher)
// streams behind Wrap too.
func (r *recorder) Flush() { r.FlushError() }

// FlushError is what http.ResponseController.Flush calls: the flush the
// server's ResponseWriter reports.
func (r *recorder) FlushError() error {
	if r.code == 0 {
		r.code = http.StatusOK // a flush sends the header
	}
	err := http.NewResponseController(r.ResponseWriter).Flush()
	switch {
	case err == nil:
		r.flushed = true
	case r.err == nil && lost(err) && !errors.Is(err, http.ErrNotSupported):
		r.err = err
	}
	return err
}

// lost reports whether a failed write means that the response did not
// reach the client: not when the handler wrote a body the response may not
// have (a 304, a 204), more than its Content-Length, or after hijacking
// the connection; the response is delivered as net/http sends it then.
func lost(err error) bool {
	return !errors.Is(err, http.ErrBodyNotAllowed) && !errors.Is(err, http.ErrContentLength) && !errors.Is(err, http.ErrHijacked)
}

// Unwrap lets http.ResponseController reach Flush, Hijack and deadlines.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Logger returns slog.Default() bound to ctx: records logged through it
// without a context (Info rather than InfoContext) still carry ctx's trace
// ids and audit context. Use it to hand a request's correlation to code that
// logs without a context; records logged with their own context keep that.
func Logger(ctx context.Context) *slog.Logger {
	return slog.New(bound{h: slog.Default().Handler(), ctx: ctx})
}

type bound struct {
	h   slog.Handler
	ctx context.Context
}

func (b bound) pick(ctx context.Context) context.Context {
	if ctx == nil || ctx == context.Background() || ctx == context.TODO() {
		return b.ctx
	}
	return ctx
}

func (b bound) Enabled(ctx context.Context, l slog.Level) bool { return b.h.Enabled(b.pick(ctx), l) }
func (b bound) Handle(ctx context.Context, r slog.Record) error {
	return b.h.Handle(b.pick(ctx), r)
}
func (b bound) WithAttrs(as []slog.Attr) slog.Handler { return bound{h: b.h.WithAttrs(as), ctx: b.ctx} }
func (b bound) WithGroup(name string) slog.Handler    { return bound{h: b.h.WithGroup(name), ctx: b.ctx} }

// sessionID names a session without revealing its cookie: the first 16 hex
// digits of SHA-256 of the value. Session cookies are long random tokens, so
// the digest cannot be turned back into one.
func sessionID(cookie string) string {
	sum := sha256.Sum256([]byte(cookie))
	return "sha256:" + hex.EncodeToString(sum[:8])
}
