package handler

import (
	"log/slog"
	"slices"
	"sync/atomic"

	"go.opentelemetry.io/otel/trace"
)

// spanHandlers caches app handlers with a span's correlation attributes
// pre-encoded (WithAttrs), a few spans at a time (concurrent requests
// mostly land in different slots). A miss costs about what adding the
// attributes to the record costs; a hit costs nothing, where adding them to
// each record cost an allocation and their encoding.
type spanHandlers [8]atomic.Pointer[spanHandler]

type spanHandler struct {
	trace trace.TraceID
	span  trace.SpanID
	extra []slog.Attr // a copy of the ContextAttrs it was built with
	h     slog.Handler
}

// appHandler returns the app handler for a record logged with sc (valid
// or not) and extra (ContextAttrs): h.app with the trace IDs and extra
// added after the logger's own attributes, as adding them to the record
// did, and pre-encoded once per span when extra's values are plain.
func (h *Handler) appHandler(sc trace.SpanContext, extra []slog.Attr) (slog.Handler, []slog.Attr) {
	if !plainAttrs(extra) {
		// A LogValuer or an arbitrary value may render differently for
		// every record: add it to each, as slog does.
		return h.app, h.idAttrs(sc, extra)
	}
	span := sc.SpanID()
	slot := &h.spans[span[7]&(uint8(len(h.spans))-1)]
	if s := slot.Load(); s != nil && s.trace == sc.TraceID() && s.span == span && sameAttrs(s.extra, extra) {
		return s.h, nil
	}
	app := h.app.WithAttrs(h.idAttrs(sc, extra))
	slot.Store(&spanHandler{trace: sc.TraceID(), span: span, extra: slices.Clone(extra), h: app})
	return app, nil
}

// idAttrs returns the trace IDs of sc (if valid) followed by extra.
func (h *Handler) idAttrs(sc trace.SpanContext, extra []slog.Attr) []slog.Attr {
	if !sc.IsValid() {
		return extra
	}
	tid, sid := h.c.idStrings(sc)
	return append([]slog.Attr{slog.String(TraceIDKey, tid), slog.String(SpanIDKey, sid)}, extra...)
}

// plainAttrs reports whether as holds only values that render the same
// every time: no LogValuer and no Any, inside groups neither.
func plainAttrs(as []slog.Attr) bool {
	for _, a := range as {
		switch a.Value.Kind() {
		case slog.KindAny, slog.KindLogValuer:
			return false
		case slog.KindGroup:
			if !plainAttrs(a.Value.Group()) {
				return false
			}
		}
	}
	return true
}

// sameAttrs reports whether two lists of plain attributes (plainAttrs) are
// equal. The contents are compared even for the same slice: a caller may
// reuse one for the next request.
func sameAttrs(as, bs []slog.Attr) bool {
	if len(as) != len(bs) {
		return false
	}
	for i, a := range as {
		b := bs[i]
		if a.Key != b.Key || a.Value.Kind() != b.Value.Kind() {
			return false
		}
		switch a.Value.Kind() {
		case slog.KindAny, slog.KindLogValuer:
			return false // Equal would compare with ==, which panics on a slice
		case slog.KindGroup:
			if !sameAttrs(a.Value.Group(), b.Value.Group()) {
				return false
			}
		default:
			if !a.Value.Equal(b.Value) {
				return false
			}
		}
	}
	return true
}
