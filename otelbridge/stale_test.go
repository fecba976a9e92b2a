package otelbridge

import (
	"github.com/slogaudit/slogaudit/internal/faultfile"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
)

// gateSink queues the Audit calls it gets until open is called, which
// passes them on to b in order; afterwards it passes them on at once. It
// stands for a logging goroutine that was descheduled after a write
// returned: the bridge sees the same state as when its goroutine runs
// between the handler's Audit of one record and the fsync of the next.
type gateSink struct {
	b      *Bridge
	mu     sync.Mutex
	isOpen bool
	calls  []gatedCall
}

type gatedCall struct {
	body []byte
	pos  chain.Position
}

func (s *gateSink) Audit(body []byte, pos chain.Position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.isOpen {
		s.calls = append(s.calls, gatedCall{append([]byte(nil), body...), pos})
		return
	}
	s.b.Audit(body, pos)
}

func (s *gateSink) open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.calls {
		s.b.Audit(c.body, c.pos)
	}
	s.calls, s.isOpen = nil, true
}

// A build that stops with a full batch leaves the file reader's buffer
// holding whatever the file held when the buffer was filled, possibly a
// line whose fsync is still pending. If that write is rolled back (its
// fsync fails, the truncation back succeeds) and the next record takes its
// seq in the same file, the next build must not take the stale line from
// the buffer once Audit has seen that seq: it is not in the trail, and
// exporting it moves the cursor past its seq so that the real record with
// that seq is never exported. Every line of the file must reach the
// collector with its own chain value, and nothing else.
//
// Here: records 2..5 are replayed from the file (the queue holds nothing:
// every Audit overflows it), one per batch, during an outage. The buffer
// is filled for seq 1 while the write of seq 6 waits for its fsync; Audit
// has seen 5, so 1 is exported and the batch is full, with 2..6 buffered.
// Then 6 is rolled back, the real 6 and 7 are written and seen by Audit,
// and the outage ends.
func TestStaleBufferedLineNotExported(t *testing.T) {
	r := newReceiver(t)
	r.setStatus(http.StatusServiceUnavailable) // an outage
	dir := t.TempDir()
	hook := faultfile.New()
	hold, _ := holdSignal()
	b := newTestBridge(t, dir, r.endpoint(), WithBatch(1, time.Hour), WithQueueSize(1), withHoldHook(hold))
	sink := &gateSink{b: b}
	h := newSyncHookHandler(t, dir, hook, sink)
	l := handler.Logger(slog.New(h))
	for i := range 4 {
		l.Info("before", "i", i) // seqs 2..5, their Audit calls gated
	}
	hook.Arm()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Info("phantom: this write's fsync fails, the handler rolls it back")
	}()
	<-hook.Entered // seq 6 is in the file, not committed

	sink.open() // Audit has seen 2..5 (all overflow the queue)
	eventually(t, 10*time.Second, "a batch was built and its export failed", func() bool { return b.Stats().ExportFailures > 0 })

	close(hook.Release) // fsync fails: truncated back, seq 6 is free again
	<-done
	l.Info("real record 6")
	l.Info("real record 7")
	r.setStatus(0) // the outage ends
	eventually(t, 10*time.Second, "records 1-7 exported", func() bool { return b.Stats().Cursor >= 7 })
	closeAndRestart(t, h, b, dir, r.endpoint())
	checkExactlyTheFiles(t, r, dir)
}
