package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Status is the outcome of an audited operation.
type Status string

// Statuses of audit events.
const (
	StatusInitiated Status = "initiated"
	StatusSuccess   Status = "success"
	StatusFailed    Status = "failed"
	StatusDenied    Status = "denied"
)

// Event types of the standard schema. Any string will do; these are the
// ones the example and the alert rules know.
const (
	AdminAction      = "admin_action"
	CredentialAccess = "credential_access"
	AuditAccess      = "audit_access"
)

// Keys of the standard event members.
const (
	EventKey        = "event"
	ActionKey       = "action"
	ResourceTypeKey = "resource_type"
	ResourceKey     = "resource"
	StatusKey       = "status"
	ReasonKey       = "reason"
	ErrorKey        = "error"
)

// ErrDenied marks an error as a refusal: an Operation that ends with an
// error wrapping it is logged with StatusDenied instead of StatusFailed.
var ErrDenied = errors.New("denied")

// Event is one audit event of the standard schema: who did what to which
// resource with what outcome. The who and where come from the context (see
// package middleware); the when from the clock.
type Event struct {
	Type         string // e.g. AdminAction, CredentialAccess
	Action       string // e.g. "start", "stop", "get", "create", "update", "delete"
	ResourceType string // e.g. "mcp_server", "credential"
	Resource     string // the resource's name, e.g. "obsidian", "obsidian_api_key"
	Status       Status
	Reason       string // a short machine-readable cause, e.g. "not_found"
	Err          error
	Message      string      // default: "<action> <resource type> <resource> (<status>)"
	Attrs        []slog.Attr // anything else
}

func (ev *Event) level() slog.Level {
	switch ev.Status {
	case StatusFailed, StatusDenied:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

func (ev *Event) message() string {
	if ev.Message != "" {
		return ev.Message
	}
	m := ev.Action
	for _, s := range []string{ev.ResourceType, ev.Resource} {
		if s != "" {
			m += " " + s
		}
	}
	// Not "name: status": the redactor reads "obsidian_api_key: denied"
	// as a secret's key and value.
	return m + " (" + string(ev.Status) + ")"
}

// ErrInvalidEvent is returned by Log for an event without Type or Action,
// or with a Status that is not one of the four.
var ErrInvalidEvent = errors.New("handler: invalid audit event")

func (ev *Event) check() error {
	var missing []string
	if ev.Type == "" {
		missing = append(missing, "Type")
	}
	if ev.Action == "" {
		missing = append(missing, "Action")
	}
	switch ev.Status {
	case StatusInitiated, StatusSuccess, StatusFailed, StatusDenied:
	case "":
		missing = append(missing, "Status")
	default:
		return fmt.Errorf("%w: Status %q is none of initiated, success, failed, denied", ErrInvalidEvent, ev.Status)
	}
	if missing != nil {
		return fmt.Errorf("%w: no %s", ErrInvalidEvent, strings.Join(missing, ", "))
	}
	return nil
}

func (ev *Event) record(now time.Time) slog.Record {
	r := slog.NewRecord(now, ev.level(), ev.message(), 0)
	r.AddAttrs(Audit, slog.String(EventKey, ev.Type), slog.String(ActionKey, ev.Action))
	if ev.ResourceType != "" {
		r.AddAttrs(slog.String(ResourceTypeKey, ev.ResourceType))
	}
	if ev.Resource != "" {
		r.AddAttrs(slog.String(ResourceKey, ev.Resource))
	}
	r.AddAttrs(slog.String(StatusKey, string(ev.Status)))
	if ev.Reason != "" {
		r.AddAttrs(slog.String(ReasonKey, ev.Reason))
	}
	if ev.Err != nil {
		r.AddAttrs(slog.Any(ErrorKey, ev.Err)) // not its text: the redactor reads the error's fields
	}
	r.AddAttrs(ev.Attrs...)
	return r
}

// Log writes ev as an audit record through l and returns what the audit
// write returned: nil only when the record is in the audit file (as durable
// as the policy makes it), also when the copy for the app handler failed
// (that error goes to Options.OnError). Use it where an operation must not
// go ahead unaudited. If l is not backed by a *Handler the record is still
// handed to l's handler and the error wraps ErrNotAuditHandler. An event
// without Type or Action, or with an unknown Status, is not written: the
// error wraps ErrInvalidEvent (and goes to Options.OnError too).
func Log(ctx context.Context, l *slog.Logger, ev Event) error {
	if err := ev.check(); err != nil {
		if h, ok := l.Handler().(*Handler); ok && h.c.onError != nil {
			h.c.onError(err)
		}
		return err
	}
	r := ev.record(time.Now())
	if h, ok := l.Handler().(*Handler); ok {
		err, _ := h.handle(ctx, r)
		return err
	}
	return errors.Join(ErrNotAuditHandler, l.Handler().Handle(ctx, r))
}

// Operation is an audited operation between Begin and End.
type Operation struct {
	ctx context.Context
	l   *slog.Logger
	ev  Event
	err error
}

// Begin logs ev with StatusInitiated and returns the operation, whose End
// logs the outcome. With a named error result the whole pattern is one line:
//
//	func start(ctx context.Context, name string) (err error) {
//		defer handler.Begin(ctx, log, handler.Event{Type: handler.AdminAction, Action: "start", ResourceType: "mcp_server", Resource: name}).End(&err)
//		...
//	}
//
// A fail-closed caller checks Err before doing anything.
func Begin(ctx context.Context, l *slog.Logger, ev Event) *Operation {
	op := &Operation{ctx: ctx, l: l, ev: ev}
	ev.Status = StatusInitiated
	op.err = Log(ctx, l, ev)
	return op
}

// Err returns the error of writing the initiated record.
func (op *Operation) Err() error { return op.err }

// End logs the outcome: StatusSuccess when *errp is nil, StatusDenied when it
// wraps ErrDenied, StatusFailed otherwise, with the error. When the audit
// write fails and the operation succeeded, End stores the audit error in
// *errp, so that an unaudited success is not reported as one. errp may be
// nil (success).
//
// Deferred directly (defer op.End(&err)), End also sees a panic: it logs
// StatusFailed with reason "panic" and the panic value, then panics again
// with the same value.
func (op *Operation) End(errp *error) {
	if p := recover(); p != nil {
		ev := op.ev
		ev.Status, ev.Reason = StatusFailed, "panic"
		ev.Attrs = append(slices.Clip(ev.Attrs), slog.Any("panic", p)) // a value: the redactor reads it
		Log(op.ctx, op.l, ev)
		panic(p)
	}
	ev := op.ev
	var opErr error
	if errp != nil {
		opErr = *errp
	}
	switch {
	case opErr == nil:
		ev.Status = StatusSuccess
	case errors.Is(opErr, ErrDenied):
		ev.Status, ev.Err = StatusDenied, opErr
	default:
		ev.Status, ev.Err = StatusFailed, opErr
	}
	if err := Log(op.ctx, op.l, ev); err != nil && errp != nil && *errp == nil {
		*errp = err
	}
}
