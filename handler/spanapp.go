package handler

import (
	"log/slog"
	"sync/atomic"
	"unsafe"

	"go.opentelemetry.io/otel/trace"
)

// An appOp is one WithAttrs (attrs) or WithGroup (group) call, as applied
// to the app handler.
type appOp struct {
	group string
	attrs []slog.Attr
}

// spanHandlers caches app handlers with a span's correlation attributes
// pre-encoded, a few spans at a time (concurrent requests mostly land in
// different slots). A miss costs what adding the attributes to the record
// cost; a hit costs nothing, where adding them to each record costs an
// allocation and their encoding, which doubled the app leg's cost.
type spanHandlers [8]atomic.Pointer[spanHandler]

type spanHandler struct {
	trace trace.TraceID
	span  trace.SpanID
	extra []slog.Attr // ContextAttrs' result it was built with
	h     slog.Handler
}

// matches reports whether s was built for this span and extra: ContextAttrs
// is meant to return one slice per request, so the same slice is the usual
// case, but equal attributes in a new slice are the same too.
func (s *spanHandler) matches(sc trace.SpanContext, extra []slog.Attr) bool {
	if s.trace != sc.TraceID() || s.span != sc.SpanID() || len(s.extra) != len(extra) {
		return false
	}
	if len(extra) == 0 || unsafe.SliceData(s.extra) == unsafe.SliceData(extra) {
		return true
	}
	return sameAttrs(extra, s.extra)
}

// sameAttrs is slices.EqualFunc with slog.Attr.Equal, except that values
// of kind Any or LogValuer count as different: Equal compares them with ==,
// which panics on an uncomparable type such as a slice.
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
			return false
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

// spanApp returns h's app handler with the trace IDs of sc (if valid) and
// extra as its first attributes, top-level, before h's own WithAttrs and
// WithGroup.
func (h *Handler) spanApp(sc trace.SpanContext, extra []slog.Attr) slog.Handler {
	span := sc.SpanID()
	slot := &h.spans[span[7]&(uint8(len(h.spans))-1)]
	if s := slot.Load(); s != nil && s.matches(sc, extra) {
		return s.h
	}
	attrs := make([]slog.Attr, 0, 2+len(extra))
	if sc.IsValid() {
		tid, sid := h.c.idStrings(sc)
		attrs = append(attrs, slog.String(TraceIDKey, tid), slog.String(SpanIDKey, sid))
	}
	attrs = append(attrs, extra...)
	app := h.appRoot.WithAttrs(attrs)
	for _, op := range h.appOps {
		if op.group != "" {
			app = app.WithGroup(op.group)
		} else {
			app = app.WithAttrs(op.attrs)
		}
	}
	slot.Store(&spanHandler{trace: sc.TraceID(), span: span, extra: extra, h: app})
	return app
}
