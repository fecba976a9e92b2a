package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Errors for HandlerOptions.Authorize to return.
var (
	ErrUnauthenticated = errors.New("query: no valid credentials")              // 401
	ErrForbidden       = errors.New("query: not allowed to read the audit log") // 403
	// ErrInvalidCredentials is ErrUnauthenticated (it wraps it: also
	// answered 401) for a request that presented credentials which are not
	// valid (a wrong or expired token, an unknown scheme), as opposed to
	// none: its audit event has reason invalid_credentials rather than
	// unauthenticated, so that token guessing is told from anonymous access.
	ErrInvalidCredentials = fmt.Errorf("%w: the credentials presented are not valid", ErrUnauthenticated)
)

// The audit event that every query through the handler writes.
const (
	AuditAccess          = "audit_access" // event
	ActionQuery          = "query"        // action
	ResourceTypeAuditLog = "audit_log"    // resource_type; resource is the directory's base name
	QueryKey             = "query"        // group of the request's parameters
	ResultsKey           = "results"      // number of events returned
	// MethodKey is the HTTP method of a request refused with 405 (reason
	// method_not_allowed), named as the middleware names it.
	MethodKey = "http.request.method"
)

// HandlerOptions configure NewHandler. Reader, Authorize and AuditLog are
// required.
type HandlerOptions struct {
	Reader *Reader
	// Authorize decides whether the request may read the audit log and
	// names its principal. It returns an error wrapping ErrUnauthenticated
	// (answered 401, with WWW-Authenticate: Bearer) when the request carries
	// no valid credentials — ErrInvalidCredentials when it presented some
	// that are not valid —, one wrapping ErrForbidden (403) when the
	// principal may not read the audit log; any other error is answered 500.
	Authorize func(r *http.Request) (principal string, err error)
	// AuditLog receives an audit event for every request (PCI DSS 10.2.1.3:
	// all access to audit logs is logged): pass an audit logger,
	// handler.Logger(l). The event is event=audit_access action=query
	// resource_type=audit_log resource=<the directory's base name>, status
	// success (with results, the number of events returned), denied (401,
	// 403, with reason unauthenticated, invalid_credentials or forbidden)
	// or failed (bad
	// parameters, errors), the principal as user.id, and the request's
	// parameters in the group "query". It is logged with the request's
	// context, so that a context-aware handler adds the trace and the
	// client. Results are sent only once the event is written: when the
	// audit logger's handler returns an error, the request fails with 500.
	AuditLog *slog.Logger
	// OmitPrincipal leaves user.id out of the audit event, for when the
	// request's context already adds it (e.g. package middleware with
	// handler.Options.ContextAttrs).
	OmitPrincipal bool
}

type httpHandler struct {
	auditor
}

// auditor authorizes and audits access to the audit log, for GET
// /audit/events and the UI's page and stream.
type auditor struct {
	opts     HandlerOptions
	resource string
}

func newAuditor(opts HandlerOptions) (auditor, error) {
	switch {
	case opts.Reader == nil:
		return auditor{}, errors.New("query: HandlerOptions.Reader is required")
	case opts.Authorize == nil:
		return auditor{}, errors.New("query: HandlerOptions.Authorize is required: the audit log must not be readable by everyone")
	case opts.AuditLog == nil:
		return auditor{}, errors.New("query: HandlerOptions.AuditLog is required: every access to the audit log must be audited")
	}
	return auditor{opts: opts, resource: filepath.Base(opts.Reader.Dir())}, nil
}

// NewHandler returns the http.Handler of GET /audit/events (mount it where
// you like): it parses the parameters (see ParseRequest), queries the
// Reader and answers
//
//	{"events":[{...the record as written..., "file":"...", "line":N, "verified":true}, ...], "next_cursor":"..."}
//
// where each record begins with its "seq" (see Event.MarshalJSON), and
// "unreadable" lists the files that could not be read whole (see
// Page.Unreadable). Errors
// are {"error":"..."} with status 400 (and "parameter": the bad parameter's
// name, "" for one without a name), 401, 403, 405 or 500. A refusal is an
// audit event too (status denied), also a method other than GET or HEAD
// (405). HEAD is a query like GET, without the body.
func NewHandler(opts HandlerOptions) (http.Handler, error) {
	a, err := newAuditor(opts)
	if err != nil {
		return nil, err
	}
	return &httpHandler{a}, nil
}

// access is the outcome of one request, for the audit event.
type access struct {
	status, reason string
	err            error
	principal      string
	results        int
	extra          []slog.Attr // added last
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// HEAD as GET (net/http drops the body): a "GET /audit/events"
	// pattern routes HEAD here too.
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.methodNotAllowed(w, r, ActionQuery, "GET, HEAD")
		return
	}
	ctx := r.Context()
	principal, ok := h.authorize(w, r, ActionQuery, params)
	if !ok {
		return
	}
	// Not r.URL.Query(), which drops malformed parameters: a filter must not
	// be lost silently.
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		err = &ParamError{Param: "query", Msg: "malformed query string: " + err.Error()}
	}
	var req Request
	if err == nil {
		req, err = ParseRequest(values)
	}
	var page Page
	if err == nil {
		page, err = h.opts.Reader.Query(ctx, req)
	}
	if pe := (*ParamError)(nil); errors.As(err, &pe) {
		h.audit(ctx, r, ActionQuery, params, access{status: StatusFailed, reason: "bad_request", err: err, principal: principal})
		writeError(w, http.StatusBadRequest, pe.Param, pe.Error())
		return
	}
	if err != nil {
		h.audit(ctx, r, ActionQuery, params, access{status: StatusFailed, reason: "error", err: err, principal: principal})
		writeError(w, http.StatusInternalServerError, "", "internal error")
		return
	}
	body, err := json.Marshal(page)
	if err != nil {
		h.audit(ctx, r, ActionQuery, params, access{status: StatusFailed, reason: "error", err: err, principal: principal})
		writeError(w, http.StatusInternalServerError, "", "internal error")
		return
	}
	if err := h.audit(ctx, r, ActionQuery, params, access{status: StatusSuccess, principal: principal, results: len(page.Events)}); err != nil {
		writeError(w, http.StatusInternalServerError, "", "the access could not be audited")
		return
	}
	setHeaders(w)
	w.WriteHeader(http.StatusOK)
	w.Write(append(body, '\n'))
}

// maxLoggedValue bounds each parameter value in the audit event.
const maxLoggedValue = 256

// authorize calls Authorize and, when the request may not read the audit
// log, audits the refusal and answers it (401, 403 or 500).
func (h *auditor) authorize(w http.ResponseWriter, r *http.Request, action string, names []string) (principal string, ok bool) {
	ctx := r.Context()
	principal, err := h.opts.Authorize(r)
	switch {
	case errors.Is(err, ErrUnauthenticated):
		h.audit(ctx, r, action, names, access{status: StatusDenied, reason: unauthenticatedReason(err)})
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, http.StatusUnauthorized, "", "authentication required")
		return "", false
	case errors.Is(err, ErrForbidden):
		h.audit(ctx, r, action, names, access{status: StatusDenied, reason: "forbidden", principal: principal})
		writeError(w, http.StatusForbidden, "", "not allowed to read the audit log")
		return "", false
	case err != nil:
		h.audit(ctx, r, action, names, access{status: StatusFailed, reason: "authorization_error", err: err, principal: principal})
		writeError(w, http.StatusInternalServerError, "", "internal error")
		return "", false
	}
	return principal, true
}

// methodNotAllowed answers a request with a method other than allow (405)
// and audits it as denied, reason method_not_allowed, with the method: a
// POST or DELETE to the audit log is an attempt on it. The principal is
// named when the credentials are valid, also when it may not read the log;
// they are not required, as for any denied access. (A ServeMux pattern
// with a method, "GET /audit/events", answers 405 before the handler sees
// the request; mount the handler without one to have this.)
func (h *auditor) methodNotAllowed(w http.ResponseWriter, r *http.Request, action, allow string) {
	principal, err := h.opts.Authorize(r)
	if err != nil && !errors.Is(err, ErrForbidden) {
		principal = ""
	}
	h.audit(r.Context(), r, action, nil, access{
		status: StatusDenied, reason: "method_not_allowed", principal: principal,
		extra: []slog.Attr{slog.String(MethodKey, r.Method)},
	})
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "", "only "+strings.ReplaceAll(allow, ", ", " or ")+" is allowed")
}

// unauthenticatedReason is the reason of the denied audit event for an
// Authorize error that wraps ErrUnauthenticated: invalid_credentials when
// credentials were presented (ErrInvalidCredentials), unauthenticated when
// none were.
func unauthenticatedReason(err error) string {
	if errors.Is(err, ErrInvalidCredentials) {
		return "invalid_credentials"
	}
	return "unauthenticated"
}

// audit writes the audit event of a request (action query, stream or
// view, with the request's parameters among names) and returns the error
// of the audit handler.
func (h *auditor) audit(ctx context.Context, r *http.Request, action string, names []string, a access) error {
	level := slog.LevelInfo
	if a.status != StatusSuccess {
		level = slog.LevelWarn
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String(EventKey, AuditAccess),
		slog.String(ActionKey, action),
		slog.String(ResourceTypeKey, ResourceTypeAuditLog),
		slog.String(ResourceKey, h.resource),
		slog.String(StatusKey, a.status),
	)
	if a.reason != "" {
		attrs = append(attrs, slog.String(ReasonKey, a.reason))
	}
	if a.err != nil {
		attrs = append(attrs, slog.Any(ErrorKey, a.err)) // not its text: the redactor reads the error's fields
	}
	if a.principal != "" && !h.opts.OmitPrincipal {
		attrs = append(attrs, slog.String(PrincipalKey, a.principal))
	}
	var ps []slog.Attr
	q := r.URL.Query()
	for _, k := range names {
		if s := q.Get(k); s != "" {
			if len(s) > maxLoggedValue {
				// Cut at a space, not inside a word: a token cut short
				// is no longer recognised by the redactor.
				s = s[:max(0, strings.LastIndexByte(s[:maxLoggedValue], ' '))] + "…"
			}
			ps = append(ps, slog.String(k, s))
		}
	}
	if len(ps) > 0 {
		attrs = append(attrs, slog.Attr{Key: QueryKey, Value: slog.GroupValue(ps...)})
	}
	if a.status == StatusSuccess && action == ActionQuery {
		attrs = append(attrs, slog.Int(ResultsKey, a.results))
	}
	attrs = append(attrs, a.extra...)
	msg := action + " " + ResourceTypeAuditLog + " " + h.resource + ": " + a.status
	// As Logger.LogAttrs does, but returning the handler's error, so that
	// results are not sent unaudited; and regardless of Enabled, since an
	// audit event must not be filtered out by level.
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:])
	rec := slog.NewRecord(time.Now(), level, msg, pcs[0])
	rec.AddAttrs(attrs...)
	if err := h.opts.AuditLog.Handler().Handle(ctx, rec); err != nil {
		return fmt.Errorf("query: audit event not written: %w", err)
	}
	return nil
}

func setHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

func writeError(w http.ResponseWriter, code int, param, msg string) {
	setHeaders(w)
	w.WriteHeader(code)
	body := struct {
		Error     string  `json:"error"`
		Parameter *string `json:"parameter,omitempty"`
	}{Error: msg}
	if code == http.StatusBadRequest || param != "" {
		body.Parameter = &param // also "" (a parameter without a name)
	}
	json.NewEncoder(w).Encode(body)
}
