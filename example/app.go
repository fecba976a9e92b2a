package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/middleware"
)

// app is the AgentHub-like service: a supervisor of (simulated) MCP servers
// and a credential store. Its state lives in memory; its audit trail does not.
type app struct {
	log *slog.Logger

	mu      sync.Mutex
	running map[string]bool
	creds   map[string][]byte
}

func newApp(log *slog.Logger) *app {
	return &app{log: log, running: map[string]bool{}, creds: map[string][]byte{}}
}

func (a *app) routes() *http.ServeMux {
	mux := http.NewServeMux()
	server := func(r *http.Request) handler.Event {
		return handler.Event{Type: handler.AdminAction, Action: r.PathValue("action"), ResourceType: "mcp_server", Resource: r.PathValue("name")}
	}
	credential := func(action string) func(*http.Request) handler.Event {
		return func(r *http.Request) handler.Event { return credentialEvent(r.PathValue("key"), action) }
	}
	// A refused PUT is on record as what it would have been.
	put := func(r *http.Request) handler.Event {
		key := r.PathValue("key")
		return credentialEvent(key, a.putAction(key))
	}
	// Who may use each is endpointRoles'.
	mux.HandleFunc("GET /servers", a.authorized(serverListEvent, a.listServers))
	mux.HandleFunc("GET /credentials", a.authorized(credentialListEvent, a.listCredentials))
	mux.HandleFunc("POST /servers/{name}/{action}", a.authorized(server, a.serverAction))
	mux.HandleFunc("PUT /credentials/{key}", a.authorized(put, a.putCredential))
	mux.HandleFunc("GET /credentials/{key}", a.authorized(credential("get"), a.getCredential))
	mux.HandleFunc("DELETE /credentials/{key}", a.authorized(credential("delete"), a.deleteCredential))
	return mux
}

// maxPath bounds the path of a request (so each name in it); maxName is
// how much of a name a refused attempt's audit event keeps.
const (
	maxPath = 512
	maxName = 256
)

// authorized runs next for a request whose principal (a valid bearer
// token, see middleware.Options.Authenticate) has the role its endpoint
// needs (endpointRoles). Any other is refused, and the attempt is an
// audit event of what it tried, status denied: a failed access is on
// record, never silent (PCI DSS 10.2.1.4). Without a principal the answer
// is 401, reason invalid_credentials when the request presented
// credentials (a wrong token) or unauthenticated when it presented none;
// a principal whose role falls short gets 403, reason forbidden, and the
// record's user.roles and auth.required_role (from the request's context,
// see withAuth) say what it had and what it needed.
func (a *app) authorized(attempt func(*http.Request) handler.Event, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		info, ok := middleware.FromContext(r.Context())
		ev := attempt(r)
		var code int
		switch {
		case !ok || info.Principal == "":
			ev.Status, ev.Reason, code = handler.StatusDenied, deniedReason(r), http.StatusUnauthorized
		case !permitted(r):
			ev.Status, ev.Reason, code = handler.StatusDenied, reasonForbidden, http.StatusForbidden
		case len(r.URL.Path) > maxPath:
			ev.Status, ev.Reason, code = handler.StatusFailed, "name_too_long", http.StatusBadRequest
		default:
			next(w, r)
			return
		}
		// Refused; the attempt is on record, with its names cut so that a
		// huge one is not written to the trail at length.
		ev.Action, ev.Resource = cut(ev.Action), cut(ev.Resource)
		if err := handler.Log(r.Context(), a.log, ev); err != nil {
			fail(w, http.StatusServiceUnavailable, auditUnavailable)
			return
		}
		switch code {
		case http.StatusUnauthorized:
			w.Header().Set("WWW-Authenticate", "Bearer")
			fail(w, code, "authentication required")
		case http.StatusForbidden:
			fail(w, code, "forbidden: this needs role "+neededRole(r.Method, r.Pattern).String())
		default:
			fail(w, code, "name too long")
		}
	}
}

// cut shortens a name to maxName bytes and a marker.
func cut(s string) string {
	if len(s) <= maxName {
		return s
	}
	return s[:maxName] + "…"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// errAuditUnavailable is answered with 503: nothing happens unaudited.
const auditUnavailable = "audit log unavailable; request refused"

func (a *app) serverAction(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	ev := handler.Event{Type: handler.AdminAction, Action: action, ResourceType: "mcp_server", Resource: name}
	if action != "start" && action != "stop" {
		ev.Status, ev.Reason = handler.StatusFailed, "unknown_action"
		if err := handler.Log(r.Context(), a.log, ev); err != nil {
			fail(w, http.StatusServiceUnavailable, auditUnavailable)
			return
		}
		fail(w, http.StatusNotFound, "unknown action "+action)
		return
	}
	op := handler.Begin(r.Context(), a.log, ev)
	if op.Err() != nil {
		fail(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	serr := a.supervise(r.Context(), name, action)
	err := serr
	op.End(&err) // err: serr, or the audit write's error if serr is nil
	switch {
	case serr != nil:
		fail(w, http.StatusInternalServerError, serr.Error())
		return
	case err != nil:
		// Done, but not on record: say so, without the audit error's
		// text (paths, disk state), which is for the operator's log.
		fail(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"server": name, "action": action, "status": "ok"})
}

// supervise simulates starting and stopping an MCP server process.
func (a *app) supervise(ctx context.Context, name, action string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case action == "start" && name == "broken":
		a.log.ErrorContext(ctx, "mcp server exited during startup", "server", name, "exit_code", 1)
		return errors.New("server process exited with status 1 during startup")
	case action == "start":
		a.running[name] = true
	case !a.running[name]:
		return errors.New("server is not running")
	default:
		delete(a.running, name)
	}
	return nil
}

// actionList is the action of the list endpoints' events.
const actionList = "list"

// The events of a request to list the servers or the credentials' names.
func serverListEvent(*http.Request) handler.Event {
	return handler.Event{Type: handler.AdminAction, Action: actionList, ResourceType: "mcp_server"}
}

func credentialListEvent(*http.Request) handler.Event { return credentialEvent("", actionList) }

// listServers answers the names of the running servers, sorted.
func (a *app) listServers(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	names := sortedKeys(a.running)
	a.mu.Unlock()
	ev := serverListEvent(r)
	ev.Status, ev.Message = handler.StatusSuccess, "servers listed"
	if err := handler.Log(r.Context(), a.log, ev); err != nil {
		fail(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"running": names})
}

// listCredentials answers the credentials' names, sorted: never a value,
// so that a viewer may see what is stored.
func (a *app) listCredentials(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	names := sortedKeys(a.creds)
	a.mu.Unlock()
	ev := credentialListEvent(r)
	ev.Status, ev.Message = handler.StatusSuccess, "credential names listed"
	if err := handler.Log(r.Context(), a.log, ev); err != nil {
		fail(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"credentials": names})
}

// sortedKeys is m's keys, sorted; [] rather than null in JSON when none.
func sortedKeys[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func credentialEvent(key, action string) handler.Event {
	return handler.Event{Type: handler.CredentialAccess, Action: action, ResourceType: "credential", Resource: key}
}

// Actions of a credential PUT: creating a credential and overwriting one
// (whose old value is gone) are told apart, for queries and alert rules.
const (
	actionCreate = "create"
	actionUpdate = "update"
)

func putAction(existed bool) string {
	if existed {
		return actionUpdate
	}
	return actionCreate
}

// putAction is the action a PUT of key is now: update if it exists,
// create if not.
func (a *app) putAction(key string) string {
	a.mu.Lock()
	_, ok := a.creds[key]
	a.mu.Unlock()
	return putAction(ok)
}

func (a *app) putCredential(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	// A body sent a byte at a time does not hold the handler for long:
	// the server's bodyDeadline (-body-timeout) ends the read.
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		// Too large, stalled past the deadline, cut off: a failed attempt
		// to write a credential, on record like any other (fail closed).
		ev := credentialEvent(key, a.putAction(key))
		ev.Status, ev.Reason, ev.Err = handler.StatusFailed, "bad_body", err
		ev.Message = "credential value could not be read"
		if err := handler.Log(r.Context(), a.log, ev); err != nil {
			fail(w, http.StatusServiceUnavailable, auditUnavailable)
			return
		}
		fail(w, http.StatusBadRequest, "cannot read the credential value")
		return
	}
	a.mu.Lock()
	old, existed := a.creds[key]
	a.creds[key] = value
	a.mu.Unlock()
	ev := credentialEvent(key, putAction(existed))
	ev.Status, ev.Message = handler.StatusSuccess, "credential updated"
	if !existed {
		ev.Message = "credential created"
	}
	if err := handler.Log(r.Context(), a.log, ev); err != nil {
		// The change is made but its record is not: undo it rather than keep
		// an unaudited modification (an overwritten value comes back).
		a.mu.Lock()
		if existed {
			a.creds[key] = old
		} else {
			delete(a.creds, key)
		}
		a.mu.Unlock()
		fail(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": key, "status": "stored"})
}

func (a *app) getCredential(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	a.mu.Lock()
	value, ok := a.creds[key]
	a.mu.Unlock()
	ev := credentialEvent(key, "get")
	if !ok {
		ev.Status, ev.Reason, ev.Message = handler.StatusFailed, "not_found", "credential not found"
		if err := handler.Log(r.Context(), a.log, ev); err != nil {
			fail(w, http.StatusServiceUnavailable, auditUnavailable)
			return
		}
		fail(w, http.StatusNotFound, "no such credential")
		return
	}
	ev.Status, ev.Message = handler.StatusSuccess, "credential accessed"
	// Fail closed: the secret leaves only after its access is on record.
	if err := handler.Log(r.Context(), a.log, ev); err != nil {
		fail(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "no-store") // a secret: no cache keeps a copy
	h.Set("X-Content-Type-Options", "nosniff")
	w.Write(value)
}

func (a *app) deleteCredential(w http.ResponseWriter, r *http.Request) {
	key := r.PathValue("key")
	a.mu.Lock()
	value, ok := a.creds[key]
	delete(a.creds, key)
	a.mu.Unlock()
	ev := credentialEvent(key, "delete")
	if !ok {
		ev.Status, ev.Reason, ev.Message = handler.StatusFailed, "not_found", "credential not found"
	} else {
		ev.Status, ev.Message = handler.StatusSuccess, "credential deleted"
	}
	if err := handler.Log(r.Context(), a.log, ev); err != nil {
		if ok {
			a.mu.Lock()
			a.creds[key] = value
			a.mu.Unlock()
		}
		fail(w, http.StatusServiceUnavailable, auditUnavailable)
		return
	}
	if !ok {
		fail(w, http.StatusNotFound, "no such credential")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": key, "status": "deleted"})
}
