package handler

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/slogaudit/slogaudit/rotate"
)

// capacity turns the rotate Writer's low-space calls (rotate.Options.
// OnLowSpace) into audit_capacity records. rotate calls it from its
// background goroutine, which holds none of rotate's locks nor the
// handler's: the record is written there through Handle, like any audit
// record (inflight, the outage count, the app copy, the sinks, the alert
// rules). A call that comes before New has the handler (the first check
// runs as the Writer starts) is kept for New to write.
type capacity struct {
	dir   string // the audit directory, absolute
	mu    sync.Mutex
	h     *Handler      // the root handler, once New has it
	early *rotate.Space // a call that came before
}

func (c *capacity) lowSpace(s rotate.Space) {
	c.mu.Lock()
	h := c.h
	if h == nil {
		c.early = &s
	}
	c.mu.Unlock()
	if h != nil {
		h.writeCapacity(s, c.dir)
	}
}

// start hands c the root handler, and writes the record of a call that
// came before.
func (c *capacity) start(h *Handler) {
	c.mu.Lock()
	c.h = h
	early := c.early
	c.early = nil
	c.mu.Unlock()
	if early != nil {
		h.writeCapacity(*early, c.dir)
	}
}

// writeCapacity writes the audit_capacity record of s through h, the root
// handler; the error of the write goes to OnError (a full disk: the
// audit_outage record follows when writes succeed again).
func (h *Handler) writeCapacity(s rotate.Space, dir string) {
	if h.c.closed.Load() {
		return // the trail is sealed; a write would only report ErrClosed
	}
	r := slog.NewRecord(time.Now(), slog.LevelWarn,
		fmt.Sprintf("audit log: low disk space, %s free of %s (warning below %s)", fmtBytes(s.Free), fmtBytes(s.Total), fmtBytes(s.Threshold)), 0)
	r.AddAttrs(Audit,
		slog.String(EventKey, AuditCapacity),
		slog.String(ActionKey, ActionCheck),
		slog.String(ResourceTypeKey, "audit_log"),
		slog.String(ResourceKey, filepath.Base(dir)),
		slog.String(StatusKey, string(StatusFailed)),
		slog.String(ReasonKey, "low_space"),
		slog.Uint64("free_bytes", s.Free),
		slog.Uint64("total_bytes", s.Total),
		slog.Uint64("threshold_bytes", s.Threshold),
		slog.String("dir", dir),
	)
	h.Handle(context.Background(), r)
}

// fmtBytes formats n bytes for a message: "812 MiB", "3.5 GiB".
func fmtBytes(n uint64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%d MiB", n>>20)
}
