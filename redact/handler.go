package redact

import (
	"context"
	"log/slog"
)

// Handler returns a handler that redacts the message, the attributes of each
// record and the attributes added by WithAttrs before passing them to next.
// A record that lost secrets gets the attribute RedactedKey=N, where N counts
// the redactions in its message and attributes plus those in the WithAttrs
// attributes it is logged with; like other record attributes it goes inside
// the groups opened by WithGroup. A WithGroup whose name is a secret key
// redacts everything logged inside it.
//
// Records without anything to redact are passed on as they are, without
// allocating.
func (r *Redactor) Handler(next slog.Handler) slog.Handler {
	return &handler{r: r, next: next}
}

type handler struct {
	r      *Redactor
	next   slog.Handler
	n      int  // redactions in the WithAttrs attributes, reported with each record
	depth  int  // groups opened by WithGroup
	forced bool // inside a group whose name is a secret key
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	// First pass only looks, so that the common clean record costs no
	// copy; a record with secrets is walked again below.
	clean := h.n == 0 && !h.r.hasSecret(rec.Message)
	if clean {
		rec.Attrs(func(a slog.Attr) bool {
			if h.forced {
				clean = !h.r.needs(a, h.depth, true)
			} else {
				clean = h.r.cleanAttr(a, h.depth)
			}
			return clean
		})
	}
	if clean {
		return h.next.Handle(ctx, rec)
	}
	msg, n := h.r.text(rec.Message)
	return h.handleRedacted(ctx, rec, msg, n)
}

// handleRedacted is Handle for a record that changes. It is apart so that
// the clean path stays small.
func (h *handler) handleRedacted(ctx context.Context, rec slog.Record, msg string, n int) error {
	out := slog.NewRecord(rec.Time, rec.Level, msg, rec.PC)
	total := n + h.n
	rec.Attrs(func(a slog.Attr) bool {
		w := walker{r: h.r}
		a, _ = w.attr(a, h.depth, h.forced)
		w.release()
		total += w.n
		out.AddAttrs(a)
		return true
	})
	if total > 0 {
		out.AddAttrs(slog.Int(RedactedKey, total))
	}
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	w := walker{r: h.r}
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i], _ = w.attr(a, h.depth, h.forced)
	}
	w.release()
	h2 := *h
	h2.next = h.next.WithAttrs(out)
	h2.n += w.n
	return &h2
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	key, n := h.r.text(name)
	h2.n += n
	h2.forced = h.forced || h.r.keys.secret(name)
	h2.depth++
	h2.next = h.next.WithGroup(key)
	return &h2
}
