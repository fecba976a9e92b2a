package otelbridge

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/log"
	"go.opentelemetry.io/otel/metric"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/chain"
)

const scopeName = "github.com/slogaudit/slogaudit/otelbridge"

// pendingChunk is the size of the chunks take copies bodies into.
const pendingChunk = 64 << 10

// entOverhead is what a queued record costs besides its body, for the
// queue's byte bound.
const entOverhead = 64

// Bridge exports the records of one audit directory over OTLP. It is a
// handler.Sink: pass it in handler.Options.Sinks. A nil *Bridge (what Setup
// returns when OTLP is not configured) is a valid Sink that does nothing.
// Use one Bridge per audit directory, with the handler that writes it.
type Bridge struct {
	cfg      config
	provider *sdklog.LoggerProvider
	logger   log.Logger
	proc     *ackProcessor
	tp       *sdktrace.TracerProvider
	inst     instruments

	mu     sync.Mutex
	q      queue // records handed to Audit, not yet taken by the goroutine
	qBytes int   // bytes of the records in q and in the goroutine's pending set
	closed bool
	// hi is the highest seq handed to Audit (queued or dropped): the
	// handler calls Audit only after the writer's Append succeeded, so
	// every record up to hi is committed (see exporter.build).
	hi uint64

	notes    []chain.Checkpoint // queued by Checkpoint
	noteScan bool               // Checkpoint dropped a note: re-read the checkpoints file

	wake      chan struct{}
	stop      chan struct{} // closed by Shutdown
	done      chan struct{} // closed when the goroutine has returned
	runCtx    context.Context
	cancelRun context.CancelCauseFunc
	flushErr  error // set by the goroutine before done

	exported, replayed, dropped, failures, skipped, rejected, cursor atomic.Uint64
	overflow                                                         atomic.Bool // Audit dropped a record since the goroutine last looked
	// idle is set by the goroutine before it waits with nothing to do and
	// no timer: only then does a record need to wake it (see Audit).
	idle atomic.Bool

	shutdownStarted atomic.Bool   // by the first Shutdown (not a sync.Once: Do blocks the others)
	shutdownDone    chan struct{} // closed when the first Shutdown has its result
	shutdownErr     error
}

// Stats are the bridge's counters since it was created, and its cursor.
type Stats struct {
	Exported       uint64 // records acknowledged by the exporter
	Replayed       uint64 // records read back from the audit files
	Dropped        uint64 // records Audit could not queue (replayed later)
	ExportFailures uint64 // failed Export calls
	Skipped        uint64 // records the files no longer held when their turn came
	Rejected       uint64 // records the receiver refused for good, alone in a request (they stay in the files)
	Cursor         uint64 // every record up to this seq is acknowledged, or rejected
}

// queue is an append-only arena of record copies.
type queue struct {
	ents []qent
	data []byte
}

type qent struct {
	seq   uint64
	chain [32]byte
	off   int
	n     int
}

// New returns a running Bridge that exports with exp, which it shuts down
// in Shutdown. exp should not retry by itself (the bridge retries, from the
// file); every Export that returns nil counts as an acknowledgement.
// WithDir is required; WithTracing is for Setup and ignored here.
func New(exp sdklog.Exporter, opts ...Option) (*Bridge, error) {
	if exp == nil {
		return nil, errors.New("otelbridge: nil exporter")
	}
	cfg := newConfig(opts)
	if cfg.dir == "" {
		return nil, errors.New("otelbridge: WithDir is required")
	}
	res, err := newResource(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	return start(exp, res, cfg)
}

// Audit queues a copy of an audit record for export. It implements
// handler.Sink: it never blocks; when the queue is full it drops the copy
// (the record is read back from the file later) and counts it.
func (b *Bridge) Audit(body []byte, pos chain.Position) {
	if b == nil {
		return
	}
	n := len(body) + entOverhead
	b.mu.Lock()
	if pos.Seq > b.hi {
		b.hi = pos.Seq
	}
	if b.closed {
		b.mu.Unlock()
		return // a later process exports it from the file
	}
	if b.qBytes+n > b.cfg.queueBytes {
		b.mu.Unlock()
		b.dropped.Add(1)
		b.inst.dropped.Add(context.Background(), 1)
		// The goroutine must learn that the file holds records the queue
		// does not, even if no record is queued after this one.
		if !b.overflow.Swap(true) {
			select {
			case b.wake <- struct{}{}:
			default:
			}
		}
		return
	}
	b.qBytes += n
	off := len(b.q.data)
	b.q.data = append(b.q.data, body...)
	b.q.ents = append(b.q.ents, qent{seq: pos.Seq, chain: pos.Chain, off: off, n: len(body)})
	k := len(b.q.ents)
	b.mu.Unlock()
	// Wake the goroutine when it waits with nothing to do (it starts the
	// batch timer) and when a batch is full; otherwise let it sleep: a
	// wakeup costs the logging goroutine a futex call when the goroutine
	// waits, which is several times what the copy above costs. (Waking
	// it at every first record after a take did that for nearly every
	// record while the goroutine kept up.)
	if k%b.cfg.batch == 0 || b.idle.Load() && b.idle.CompareAndSwap(true, false) {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Stats returns the counters and the cursor.
func (b *Bridge) Stats() Stats {
	if b == nil {
		return Stats{}
	}
	return Stats{
		Exported:       b.exported.Load(),
		Replayed:       b.replayed.Load(),
		Dropped:        b.dropped.Load(),
		ExportFailures: b.failures.Load(),
		Skipped:        b.skipped.Load(),
		Rejected:       b.rejected.Load(),
		Cursor:         b.cursor.Load(),
	}
}

// TracerProvider returns the TracerProvider that Setup built for
// WithTracing, nil if none (pass it to middleware.Options.TracerProvider or
// otel.SetTracerProvider).
func (b *Bridge) TracerProvider() trace.TracerProvider {
	if b == nil || b.tp == nil {
		return nil
	}
	return b.tp
}

// Shutdown exports every record up to the newest one in the audit files
// (so call it after the handler's Close, to include the close record),
// persists the cursor and stops the bridge, giving up when ctx is done, or,
// if ctx has no deadline, after DefaultShutdownTimeout (10 s;
// WithShutdownTimeout): a collector that is down would otherwise keep it
// retrying for ever. What is left is not lost: the cursor stays at the last
// record acknowledged and the next start exports the rest from the files;
// the error says so. Records of a file
// still being written (its writer holds its lock: a handler not closed
// yet, in this process or another) that Audit has not seen are not known
// to be committed: Shutdown leaves them to the next start, and its error
// names the first one and why it waited. It also shuts down
// the exporter and the TracerProvider. Other calls, concurrent or later,
// wait for the first call's result, or return when their own ctx is done;
// Audit does nothing after Shutdown.
func (b *Bridge) Shutdown(ctx context.Context) error {
	if b == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok && b.cfg.shutdownTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, b.cfg.shutdownTimeout,
			fmt.Errorf("otelbridge: Shutdown's default timeout (%v) passed; the ctx had no deadline", b.cfg.shutdownTimeout))
		defer cancel()
	}
	if b.shutdownStarted.CompareAndSwap(false, true) {
		defer close(b.shutdownDone)
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		stopCancel := context.AfterFunc(ctx, func() { b.cancelRun(context.Cause(ctx)) })
		close(b.stop)
		<-b.done
		stopCancel()
		b.cancelRun(nil)
		err := b.flushErr
		sctx := context.WithoutCancel(ctx)
		err = errors.Join(err, b.provider.Shutdown(sctx))
		if b.tp != nil {
			err = errors.Join(err, b.tp.Shutdown(ctx))
		}
		b.shutdownErr = err
		return err
	}
	select {
	case <-b.shutdownDone:
		return b.shutdownErr
	case <-ctx.Done():
		return fmt.Errorf("otelbridge: Shutdown: another call is still flushing: %w", context.Cause(ctx))
	}
}

// ackProcessor is the only Processor of the bridge's private
// LoggerProvider (see the package documentation for why). The exporter
// goroutine emits one batch of records through the provider's Logger, which
// calls OnEmit synchronously on that goroutine; then it calls export, which
// hands the batch to the Exporter and returns its answer: nil is the
// acknowledgement that moves the cursor. Nothing else emits through this
// provider, so the batch needs no lock.
//
// Converted audit records do not go through Emit one by one: the Logger
// made one record, the template (no fields set; the provider's resource,
// scope and attribute limits), and add appends a Clone of it to the batch,
// on which the exporter sets every field with the Record's own setters, as
// a Processor may (SetAttributes applies the provider's limits as Emit
// does). Emit per record cost more than converting the record: building a
// log.Record, the SDK's copy of it (an allocation of ~600 bytes), its
// attributes added one at a time to a slice it grows for each, and Clone's
// copy of that slice. TestEmitEqualsPlainPath checks that the records are
// the ones Emit makes.
type ackProcessor struct {
	exp      sdklog.Exporter
	batch    []sdklog.Record
	template sdklog.Record
	capture  bool // the next OnEmit is the template's
}

func (p *ackProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

func (p *ackProcessor) OnEmit(_ context.Context, r *sdklog.Record) error {
	if p.capture {
		p.template, p.capture = r.Clone(), false
		return nil
	}
	p.batch = append(p.batch, r.Clone())
	return nil
}

// add appends a copy of the template to the batch and returns it.
func (p *ackProcessor) add() *sdklog.Record {
	p.batch = append(p.batch, p.template.Clone())
	return &p.batch[len(p.batch)-1]
}

// export exports the first n records of the batch.
func (p *ackProcessor) export(ctx context.Context, n int) error {
	return p.exp.Export(ctx, p.batch[:n])
}

// exportAt exports record i of the batch alone.
func (p *ackProcessor) exportAt(ctx context.Context, i int) error {
	return p.exp.Export(ctx, p.batch[i:i+1])
}

func (p *ackProcessor) reset() {
	clear(p.batch)
	p.batch = p.batch[:0]
}

// drop removes the first n records of the batch.
func (p *ackProcessor) drop(n int) {
	k := copy(p.batch, p.batch[n:])
	clear(p.batch[k:])
	p.batch = p.batch[:k]
}

func (p *ackProcessor) ForceFlush(context.Context) error { return nil }

func (p *ackProcessor) Shutdown(ctx context.Context) error { return p.exp.Shutdown(ctx) }

type instruments struct {
	exported, replayed, dropped, failures, skipped, rejected metric.Int64Counter
}

func newInstruments(mp metric.MeterProvider) (instruments, error) {
	m := mp.Meter(scopeName)
	var in instruments
	var errs []error
	counter := func(name, desc string) metric.Int64Counter {
		c, err := m.Int64Counter(name, metric.WithDescription(desc), metric.WithUnit("{record}"))
		errs = append(errs, err)
		return c
	}
	in.exported = counter("slogaudit.otlp.exported", "Audit records acknowledged by the OTLP receiver.")
	in.replayed = counter("slogaudit.otlp.replayed", "Audit records read back from the audit files for export.")
	in.dropped = counter("slogaudit.otlp.dropped", "Audit records not queued for export because the queue was full (exported later from the file).")
	in.failures = counter("slogaudit.otlp.export_failures", "Failed OTLP export attempts.")
	in.skipped = counter("slogaudit.otlp.skipped", "Audit records that could not be exported because the audit files no longer hold them.")
	in.rejected = counter("slogaudit.otlp.rejected", "Audit records the OTLP receiver refused for good when sent alone (they stay in the audit files).")
	return in, errors.Join(errs...)
}

func start(exp sdklog.Exporter, res *resource.Resource, cfg config) (*Bridge, error) {
	b, err := newBridge(exp, res, cfg)
	if err != nil {
		return nil, err
	}
	go b.run()
	return b, nil
}

// checkLimits refuses attribute limits that would cut what identifies a
// record: audit.chain is 64 characters long, and audit.seq and
// audit.chain are a record's first two attributes.
func checkLimits() error {
	for _, l := range []struct {
		name string
		min  int
		what string
	}{
		{"OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", 64, "the length of audit.chain"},
		{"OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", 2, "audit.seq and audit.chain"},
	} {
		v := strings.TrimSpace(os.Getenv(l.name))
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			continue // the SDK ignores it too
		}
		if n >= 0 && n < l.min {
			return fmt.Errorf("otelbridge: %s must be at least %d (%s) or negative (no limit)", l.name, l.min, l.what)
		}
	}
	return nil
}

// newBridge is start without the goroutine.
func newBridge(exp sdklog.Exporter, res *resource.Resource, cfg config) (*Bridge, error) {
	mp := cfg.meterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	inst, err := newInstruments(mp)
	if err != nil {
		return nil, fmt.Errorf("otelbridge: metrics: %w", err)
	}
	if err := checkLimits(); err != nil {
		return nil, err
	}
	proc := &ackProcessor{exp: exp}
	// The converter emits each key once (converter.unique), so the SDK's
	// deduplication, a map per added attribute, is only cost.
	popts := []sdklog.LoggerProviderOption{sdklog.WithResource(res), sdklog.WithProcessor(proc), sdklog.WithAllowKeyDuplication()}
	if !envSet("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT") {
		// An audit record keeps all its attributes unless the operator says
		// otherwise (the SDK's default keeps 128).
		popts = append(popts, sdklog.WithAttributeCountLimit(-1))
	}
	provider := sdklog.NewLoggerProvider(popts...)
	proc.capture = true
	provider.Logger(scopeName).Emit(context.Background(), log.Record{})
	if proc.capture {
		return nil, errors.New("otelbridge: the LoggerProvider did not emit the template record")
	}
	b := &Bridge{
		cfg:          cfg,
		provider:     provider,
		logger:       provider.Logger(scopeName),
		proc:         proc,
		inst:         inst,
		wake:         make(chan struct{}, 1),
		shutdownDone: make(chan struct{}),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	b.runCtx, b.cancelRun = context.WithCancelCause(context.Background())
	return b, nil
}

// pent is a record taken from the queue.
type pent struct {
	seq   uint64
	chain [32]byte
	// text is the body (n bytes) followed by the chain value in hex, the
	// text convert makes the record's strings from; see take.
	text []byte
	n    int
}

// exporter is the state of the exporter goroutine.
type exporter struct {
	b       *Bridge
	rd      *fileReader
	conv    converter
	spare   queue
	pending []pent // sorted by seq once sorted is true
	// chunk is where take copies the bodies of pending: one allocation
	// per pendingChunk bytes instead of one per record. Bytes of a chunk
	// are never written again once appended (a full chunk is replaced, not
	// reused), so the strings of the records emitted from pending alias
	// them instead of copying them; the garbage collector frees a chunk
	// when no pending body and no record of the batch refers to it.
	chunk  []byte
	sorted bool
	next   uint64 // the seq to export next: cursor+1
	// scanFile says the files may hold records after next that the queue
	// does not: at start, after Shutdown began, after a read error.
	scanFile bool
	hi       uint64 // Bridge.hi as of the last take
	// held says build stopped at a line of the files that is not known to
	// be committed (see build); it looks again when Audit raises hi (the
	// writer's next record, also one that makes the file finished by
	// rotating), when Shutdown begins, and every batch delay (a file whose
	// writer crashed is finished once a restarted handler opens its new
	// file, or found unlocked; a quiet service may log nothing more for a
	// long time). Meanwhile it may go idle.
	held     bool
	heldHi   uint64    // hi when it stopped
	heldAt   time.Time // when it stopped
	heldSeq  uint64    // the line it stopped at
	heldPath string    // its file
	heldWhy  string    // why that file may still grow (fileReader.live)
	since    time.Time // when the oldest unexported queued record arrived

	// The batch being exported, and retried until acknowledged.
	bn          int
	bBytes      int    // about what the batch's records take in a request
	bEnts       []bent // the batch's records and notes, in order
	part        int    // export only the first part records (0: all); see export
	splitPassed bool   // a part was accepted since the split's first refusal
	bLast       uint64
	bLastMAC    [32]byte
	ackMAC      [32]byte // chain value of the cursor's record
	retryAt     time.Time
	backoff     time.Duration
	failing     bool
	curPath     string
	persisted   uint64
	persistedAt time.Time

	notes noteState
	stall stallState
}

func (b *Bridge) run() {
	defer close(b.done)
	e := &exporter{b: b, rd: newFileReader(b.cfg.dir, b.cfg.prefix, b.cfg.ext), scanFile: true, backoff: b.cfg.minBackoff}
	defer e.rd.close()
	e.curPath = cursorPath(b.cfg.dir, b.cfg.prefix)
	e.loadCursor()
	e.loadNotes()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	stop := b.stop
	stopping := false
	for {
		if !stopping {
			select {
			case <-stop:
				stopping, stop, e.scanFile = true, nil, true
				e.held = false // look again: the handler is closed now
			default:
			}
		}
		if stopping && b.runCtx.Err() != nil {
			break
		}
		e.take()
		e.takeNotes()
		now := time.Now()
		e.checkStall(now)
		if e.bn == 0 && e.ready(now, stopping) {
			e.build(now)
		}
		if e.bn > 0 && !now.Before(e.retryAt) {
			e.export()
			continue
		}
		if stopping && e.bn == 0 && (!e.scanFile || e.held) && len(e.pending) == 0 && len(e.notes.pending) == 0 {
			break // flushed, or up to what the handler committed
		}
		var deadline time.Time
		idle := false
		switch {
		case now.Before(e.retryAt):
			deadline = e.retryAt
		case e.bn == 0 && len(e.pending) > 0 && !stopping:
			deadline = e.since.Add(b.cfg.delay)
		case stopping:
		case e.held && e.scanFile:
			// Look at the held line again later; a record wakes it
			// sooner, as when idle.
			deadline, idle = e.heldAt.Add(b.cfg.delay), true
		default:
			idle = true
		}
		if due := e.stallDue(); !due.IsZero() && (deadline.IsZero() || due.Before(deadline)) {
			deadline = due // report the stall on time, also during a long Retry-After
		}
		if idle {
			if e.persisted != b.cursor.Load() {
				e.persist() // out of work: the cursor catches up
			}
			if !b.goIdle() {
				continue // a record came in meanwhile
			}
		}
		var tc <-chan time.Time
		if !deadline.IsZero() {
			timer.Reset(max(deadline.Sub(now), 0))
			tc = timer.C
		}
		select {
		case <-b.wake:
		case <-tc:
		case <-stop:
		case <-b.runCtx.Done():
		}
		b.idle.Store(false)
	}
	if e.persisted != b.cursor.Load() {
		e.persist()
	}
	e.releaseAll()
	if e.bn == 0 && e.held && len(e.notes.pending) == 0 {
		b.flushErr = fmt.Errorf("otelbridge: stopped at cursor %d: record %d in %s is not known to be committed (the file has no close record and no newer file, %s, and Audit has not seen the record); the next start exports it from the file", b.cursor.Load(), e.heldSeq, e.heldPath, e.heldWhy)
	} else if e.bn > 0 || e.scanFile || len(e.pending) > 0 || len(e.notes.pending) > 0 {
		b.flushErr = fmt.Errorf("otelbridge: stopped before every record was exported (cursor %d; the next start exports the rest from the file): %w",
			b.cursor.Load(), context.Cause(b.runCtx))
	}
}

// goIdle marks the goroutine idle before it waits without a timer, unless
// the queue holds records already: Audit, which appends under mu and then
// reads idle, either sees idle set or appended before this look.
func (b *Bridge) goIdle() bool {
	b.idle.Store(true)
	b.mu.Lock()
	empty := len(b.q.ents) == 0
	b.mu.Unlock()
	if !empty {
		b.idle.Store(false)
	}
	return empty
}

// loadCursor reads the persisted cursor and checks that it belongs to the
// chain in the directory: its seq must be in the files, with the same chain
// value, or before the oldest file's first line (retention removed it: it
// is kept, and the records after it that are gone count as skipped).
// Otherwise (a new chain in the same directory) it starts at seq 1.
func (e *exporter) loadCursor() {
	b := e.b
	seq, mac, err := readCursor(e.curPath)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			otel.Handle(fmt.Errorf("otelbridge: %w; exporting from the first record in the files", err))
		}
		seq = 0
	}
	if seq > 0 {
		l, ok, err := e.rd.read(seq)
		switch {
		case err != nil:
			otel.Handle(err) // keep the cursor
		case !ok:
			otel.Handle(fmt.Errorf("otelbridge: cursor %d is past the end of the audit files in %s (a new chain?); exporting from the first record", seq, b.cfg.dir))
			seq = 0
		case l.Seq > seq && e.rd.oldestAfter(seq):
			// Retention removed the cursor's record (and everything
			// before the oldest file): the cursor cannot be checked, but
			// nothing up to it is left to export either. Keep it, so
			// that only the records after it that are gone count as
			// skipped (build).
		case l.Seq != seq || l.MAC != mac:
			// Not the record it names (another chain, or the line at seq
			// does not parse and read found the next one): the cursor
			// cannot be checked, so it is not trusted.
			otel.Handle(fmt.Errorf("otelbridge: cursor %d does not match record %d of the audit files in %s (a new chain?); exporting from the first record", seq, seq, b.cfg.dir))
			seq = 0
		}
	}
	if seq == 0 {
		mac = [32]byte{}
	}
	b.cursor.Store(seq)
	e.persisted, e.ackMAC = seq, mac
	e.bLast, e.bLastMAC = seq, mac // a batch of notes only leaves the cursor here
	e.next = seq + 1
}

// take moves the queued records into pending, dropping those already
// exported.
func (e *exporter) take() {
	b := e.b
	if b.overflow.Swap(false) {
		e.scanFile = true
	}
	b.mu.Lock()
	e.hi = b.hi
	if len(b.q.ents) == 0 {
		b.mu.Unlock()
		return
	}
	taken := b.q
	b.q = e.spare
	b.mu.Unlock()
	freed := 0
	if len(e.pending) == 0 {
		e.since = time.Now()
	}
	for _, q := range taken.ents {
		if q.seq < e.next {
			freed += q.n + entOverhead
			continue
		}
		if e.sorted && len(e.pending) > 0 && q.seq < e.pending[len(e.pending)-1].seq {
			e.sorted = false
		}
		if m := q.n + hex.EncodedLen(len(q.chain)); len(e.chunk)+m > cap(e.chunk) {
			e.chunk = make([]byte, 0, max(pendingChunk, m))
		}
		off := len(e.chunk)
		e.chunk = append(e.chunk, taken.data[q.off:q.off+q.n]...)
		e.chunk = appendHex32(e.chunk, &q.chain)
		e.pending = append(e.pending, pent{seq: q.seq, chain: q.chain, text: e.chunk[off:len(e.chunk):len(e.chunk)], n: q.n})
	}
	clear(taken.ents)
	taken.ents, taken.data = taken.ents[:0], taken.data[:0]
	if cap(taken.data) > b.cfg.queueBytes {
		taken.data = nil
	}
	e.spare = taken
	e.release(freed)
}

func (e *exporter) release(n int) {
	if n == 0 {
		return
	}
	e.b.mu.Lock()
	e.b.qBytes -= n
	e.b.mu.Unlock()
}

func (e *exporter) releaseAll() {
	n := 0
	for _, p := range e.pending {
		n += p.n + entOverhead
	}
	e.pending, e.chunk = nil, nil
	e.release(n)
}

// ready reports whether to build a batch now.
func (e *exporter) ready(now time.Time, stopping bool) bool {
	if now.Before(e.retryAt) {
		return false
	}
	if stopping || len(e.notes.pending) > 0 {
		return true
	}
	if e.scanFile && (!e.held || e.hi != e.heldHi || now.Sub(e.heldAt) >= e.b.cfg.delay) {
		return true
	}
	if len(e.pending) == 0 {
		return false
	}
	// A gap before the first queued record is not urgent: it is usually a
	// record whose Audit call is a moment late. Whatever is still missing
	// when the batch is due is read from the file.
	return len(e.pending) >= e.b.cfg.batch || now.Sub(e.since) >= e.b.cfg.delay
}

func (e *exporter) sort() {
	if !e.sorted {
		slices.SortFunc(e.pending, func(a, b pent) int {
			switch {
			case a.seq < b.seq:
				return -1
			case a.seq > b.seq:
				return 1
			}
			return 0
		})
		e.sorted = true
	}
}

// build emits the next records, from seq next on, into the processor's
// batch: from pending when it holds next, otherwise from the files.
func (e *exporter) build(now time.Time) {
	b := e.b
	e.sort()
	ctx := context.Background()
	freed, used := 0, 0
	next := e.next
	defer func() {
		// The rest moves to the front: the backing array is kept for the
		// next take (growing one anew for every batch showed in profiles),
		// unless a burst made it large.
		n := copy(e.pending, e.pending[used:])
		clear(e.pending[n:])
		e.pending = e.pending[:n]
		if n == 0 && cap(e.pending) > 4*b.cfg.batch {
			e.pending = nil
		}
		e.release(freed)
	}()
	e.held = false
	e.rd.expire() // lines the reader buffered before e.hi was read are not known committed
	for e.bn < b.cfg.batch && e.bBytes < b.cfg.batchBytes {
		for used < len(e.pending) && e.pending[used].seq < next {
			freed += e.pending[used].n + entOverhead
			used++
		}
		if used < len(e.pending) && e.pending[used].seq == next {
			p := e.pending[used]
			e.emitPending(p, now)
			freed += p.n + entOverhead
			used++
			next++
			continue
		}
		if !e.scanFile && used == len(e.pending) {
			break // nothing known after next
		}
		l, ok, err := e.rd.read(next)
		if ue := (*unreadableError)(nil); errors.As(err, &ue) {
			// As query.Follow's OnUnreadable: the rest of that file is
			// lost to the bridge (retrying reads the same damage); report
			// it, count it as skipped and go on with the next file.
			first, serr := e.rd.resumeAfter(ue.path)
			if serr == nil && first > next {
				otel.Handle(fmt.Errorf("%w; records %d to %d are not exported (run auditctl verify)", err, next, first-1))
				e.skip(next, first, "")
				next = first
				continue
			}
			err = errors.Join(err, serr)
		}
		if err != nil {
			otel.Handle(err)
			e.scanFile = true
			e.retryAt = now.Add(e.b.cfg.minBackoff)
			break
		}
		if !ok {
			e.scanFile = false
			if used < len(e.pending) {
				// The queue holds later records but the files do not hold
				// next: removed (retention) or deleted.
				e.skip(next, e.pending[used].seq, retentionSkip)
				next = e.pending[used].seq
				continue
			}
			break
		}
		bound, finished := e.rd.knownFinished()
		committed := finished && l.Seq < bound
		if !finished && l.Seq <= e.hi {
			if err := e.rd.checkLive(e.hi); err != nil {
				otel.Handle(err)
				e.scanFile = true
				e.retryAt = now.Add(e.b.cfg.minBackoff)
				break
			}
			committed = l.Seq <= e.rd.liveTo
		}
		if !committed {
			// Only committed records are exported. A line the writer has
			// written is not necessarily committed: under SyncAlways a
			// write whose fsync fails is truncated away, and its seq
			// goes to the next record. Exporting it would put a record
			// that is not in the audit trail at the collector and move the
			// cursor past its seq, so that the real record with that seq
			// (coming through Audit or the file) would be dropped as
			// already exported, for good. A line is known committed when
			// its file is finished and it is before the file's bound
			// (fileReader.finished: also when no writer holds its lock
			// any more), or when its seq is at most hi (Audit is called
			// after Append succeeded, and Append commits in seq order)
			// and its file had no newer file once Audit had seen hi
			// (fileReader.checkLive). Not merely at most hi: a file the
			// writer gave up (its fsync failed, then the truncation back)
			// keeps lines that were never committed, whose seqs the newer
			// file commits again, so hi passes them; reading the older
			// file on, they are found with a seq at most hi. The bound
			// (the newer file's first seq) tells them. Anything else
			// waits until Audit raises hi, the batch delay passes or
			// Shutdown begins (see held).
			seq := l.Seq
			err := e.rd.unread(seq)
			var bound uint64
			if err == nil {
				bound, err = e.rd.finished() // overwrites l
			}
			if err != nil {
				otel.Handle(err)
				e.scanFile = true
				e.retryAt = now.Add(e.b.cfg.minBackoff)
				break
			}
			if bound == 0 {
				e.held, e.heldHi, e.heldAt = true, e.hi, now
				e.heldSeq, e.heldPath, e.heldWhy = seq, e.rd.path, e.rd.live
				if e.b.cfg.onHold != nil {
					e.b.cfg.onHold(seq)
				}
				break
			}
			if seq >= bound {
				otel.Handle(fmt.Errorf("otelbridge: %s ends with records from seq %d on that a newer file replaces (a write the handler could not undo); not exported", e.rd.path, bound))
				e.rd.close() // the next read locates the newer file
			}
			continue // read it again (the bound is cached now)
		}
		if l.Seq == e.bLast+1 && e.bLast != 0 && l.Prev != e.bLastMAC {
			// Cannot happen unless the files changed under the bridge:
			// the record exported as seq bLast is not the one this line
			// follows. Report it; verify says more.
			m := ChainMismatch{Seq: l.Seq, Prev: e.bLast, File: e.rd.path, At: now}
			otel.Handle(m)
			if b.cfg.onMismatch != nil {
				b.cfg.onMismatch(m)
			}
		}
		if l.Seq > next {
			e.skip(next, l.Seq, retentionSkip)
			next = l.Seq
		}
		e.emit(l.Raw, chain.Position{Seq: l.Seq, Chain: l.MAC}, now)
		b.replayed.Add(1)
		b.inst.replayed.Add(ctx, 1)
		next++
	}
	e.next = next
	e.buildNotes()
}

// appendHex32 is hex.AppendEncode for a chain value, with one table load
// per byte instead of two (it was half of take's time).
func appendHex32(b []byte, v *[32]byte) []byte {
	b = slices.Grow(b, 64)
	n := len(b)
	b = b[:n+64]
	for i, c := range v {
		h := hexPairs[c]
		b[n+2*i], b[n+2*i+1] = byte(h>>8), byte(h)
	}
	return b
}

// hexPairs holds each byte's two lower-case hex digits.
var hexPairs = func() (t [256]uint16) {
	const digits = "0123456789abcdef"
	for i := range t {
		t[i] = uint16(digits[i>>4])<<8 | uint16(digits[i&15])
	}
	return t
}()

// emit converts one record and emits it into the processor's batch.
// members may be a buffer that is reused afterwards: the record's strings
// are made from a copy.
func (e *exporter) emit(members []byte, pos chain.Position, now time.Time) {
	e.conv.reset()
	e.conv.buf = append(e.conv.buf, members...)
	if pos.Seq != 0 {
		e.conv.buf = appendHex32(e.conv.buf, &pos.Chain)
	}
	e.emitText(members, string(e.conv.buf), pos, now)
}

// emitPending is emit for a record taken from the queue, whose text is
// never written again (see exporter.chunk): the record's strings alias it.
func (e *exporter) emitPending(p pent, now time.Time) {
	e.conv.reset()
	e.emitText(p.text[:p.n], unsafe.String(unsafe.SliceData(p.text), len(p.text)), chain.Position{Seq: p.seq, Chain: p.chain}, now)
}

// emitText emits members, whose text s holds followed by the chain value in
// hex (see converter.convertText).
func (e *exporter) emitText(members []byte, s string, pos chain.Position, now time.Time) {
	sc, _ := e.conv.convertText(members, s, pos, now) // a malformed record is exported as its raw text
	rec := e.b.proc.add()
	f := e.conv.fields()
	f.setSDK(rec)
	rec.SetAttributes(e.conv.attrs...) // copies
	if sc.HasTraceID() || sc.HasSpanID() {
		rec.SetTraceID(sc.TraceID())
		rec.SetSpanID(sc.SpanID())
		rec.SetTraceFlags(sc.TraceFlags())
	}
	e.conv.release()
	e.bn++
	e.bBytes += len(s) + recordOverhead
	e.bEnts = append(e.bEnts, bent{seq: pos.Seq, mac: pos.Chain})
	e.bLast, e.bLastMAC = pos.Seq, pos.Chain
}

// bent is an entry of the batch: a record's seq and chain value, or a
// note.
type bent struct {
	seq  uint64
	mac  [32]byte
	note bool
}

// recordOverhead is about what a record adds to a request besides its
// text: its time stamps, severity, event name, attribute keys and framing.
const recordOverhead = 128

// skip counts the records from to to-1 as skipped and reports why, if
// why is not "" (a format with the range and the directory).
func (e *exporter) skip(from, to uint64, why string) {
	n := to - from
	e.b.skipped.Add(n)
	e.b.inst.skipped.Add(context.Background(), int64(n))
	if why != "" {
		otel.Handle(fmt.Errorf(why, from, to-1, e.b.cfg.dir))
	}
}

const retentionSkip = "otelbridge: records %d to %d are not in the audit files of %s (removed by retention before export, or deleted; run auditctl verify); not exported"

// export sends the batch, or its first e.part records; on success it
// moves the cursor past what was sent, on failure it schedules a retry.
//
// A receiver refuses a request as it is with 400 Bad Request or 413
// Payload Too Large (or otlploghttp refuses it before sending, above its
// size limit). 413 and the size limit are about this request: the request
// is split in halves, the front first. A 400 may be about this request too
// (a record the receiver cannot take), but it is also what a misconfigured
// receiver answers to every request (a pipeline that fails, a missing
// tenant header); resending the same request gets the same answer either
// way, so it is split as well. When a part refused is a single record, it
// is passed over only if the refusal is about size, or if the receiver has
// shown that it takes other requests: a part of this split was accepted
// since the first refusal, or the record after it, sent alone, is (probe;
// the refused record is then asked about once more, in case the receiver
// was fixed meanwhile). The record is then reported, counted as rejected and passed over: it
// stays in the file, and the cursor, which says that every record up to it
// was acknowledged or rejected, moves past it. Otherwise the refusal is
// the receiver's, not the record's: it counts as a failed export and is
// retried with backoff, records kept, the whole batch again. Other errors
// (the receiver down, overloaded, or refusing every request, such as 401
// for a wrong key) are retried the same way.
func (e *exporter) export() {
	b := e.b
	ctx := context.Background()
	n := e.bn
	if e.part > 0 {
		n = e.part
	}
	failuresBefore := b.failures.Load()
	err := b.proc.export(b.runCtx, n)
	if err != nil && !isPartialSuccess(err) {
		b.failures.Add(1)
		b.inst.failures.Add(ctx, 1)
		if r := refusal(err); r != notRefused {
			if e.part == 0 {
				e.splitPassed = false // the first refusal of this split
			}
			if n > 1 {
				e.part = (n + 1) / 2 // at once: a smaller request is another question
				return
			}
			probed := false
			if r != refusedSize && !e.splitPassed {
				if probed = e.probe(); probed {
					// The receiver took the next record. Ask about this
					// one once more: the receiver may have been fixed
					// since it refused it.
					err = b.proc.export(b.runCtx, 1)
					if err == nil || isPartialSuccess(err) {
						if err != nil {
							otel.Handle(err)
						}
						e.failing, e.retryAt, e.backoff = false, time.Time{}, b.cfg.minBackoff
						e.acked(2, true) // this record and the probe's
						e.part = 0
						return
					}
					b.failures.Add(1)
					b.inst.failures.Add(ctx, 1)
					probed = refusal(err) != notRefused // otherwise: down now, retry
				}
			}
			if r == refusedSize || e.splitPassed || probed {
				seq := e.bEnts[0].seq
				what := fmt.Sprintf("record %d", seq)
				if e.bEnts[0].note {
					what = fmt.Sprintf("the checkpoint note for seq %d", seq)
				}
				otel.Handle(fmt.Errorf("otelbridge: the receiver refused %s sent alone; not exported (it stays in the audit files), counted as rejected: %w", what, err))
				b.rejected.Add(1)
				b.inst.rejected.Add(ctx, 1)
				e.acked(1, false)
				if probed {
					e.acked(1, true) // the probe's record
				}
				// The rest of the batch: whole again, split anew if need be.
				e.part = 0
				return
			}
			// Nothing passed since the first refusal: the receiver
			// refuses every request. Retry the whole batch with backoff.
			e.part = 0
		}
		if !e.failing {
			otel.Handle(fmt.Errorf("otelbridge: export failed; retrying from seq %d, records stay in the audit files: %w", e.bEnts[0].seq, err))
		}
		e.failing = true
		now := time.Now()
		e.failed(err, now, failuresBefore)
		wait := e.backoff
		if ra := retryAfter(err); ra > wait {
			wait = min(ra, maxRetryAfter) // the receiver asked for it
		}
		e.retryAt = now.Add(wait)
		e.backoff = min(2*e.backoff, b.cfg.maxBackoff)
		return
	}
	if err != nil {
		// The receiver took the request and rejected some records (a
		// partial success): resending the same records gets the same
		// answer, so they count as delivered.
		otel.Handle(err)
	}
	if e.part > 0 {
		e.splitPassed = true
	}
	e.failing, e.retryAt, e.backoff = false, time.Time{}, b.cfg.minBackoff
	e.acked(n, true)
}

// probe sends the record after the first one of the batch alone, to learn
// whether the receiver takes any request; it reports whether it was
// acknowledged. export calls it when the first record, sent alone, was
// refused with a 400 and nothing else was accepted since the first
// refusal: a receiver that takes the probe refused that record, not every
// request.
func (e *exporter) probe() bool {
	if e.bn < 2 {
		return false
	}
	err := e.b.proc.exportAt(e.b.runCtx, 1)
	if err != nil && !isPartialSuccess(err) {
		e.b.failures.Add(1)
		e.b.inst.failures.Add(context.Background(), 1)
		return false
	}
	if err != nil {
		otel.Handle(err)
	}
	return true
}

// acked moves the cursors past the first n entries of the batch, sent
// (exported) or rejected, and removes them from it.
func (e *exporter) acked(n int, exported bool) {
	b := e.b
	ctx := context.Background()
	if !e.stall.since.IsZero() {
		e.answered(time.Now()) // before the batch shrinks: its seqs go into the report
	}
	records, notes := 0, 0
	for _, be := range e.bEnts[:n] {
		if be.note {
			notes++
			continue
		}
		records++
		b.cursor.Store(be.seq)
		e.ackMAC = be.mac
	}
	if exported && records > 0 {
		b.exported.Add(uint64(records))
		b.inst.exported.Add(ctx, int64(records))
	}
	if n == e.bn {
		e.bn, e.bBytes, e.part = 0, 0, 0
		e.bEnts = e.bEnts[:0]
		b.proc.reset()
	} else {
		e.bn -= n
		e.bEnts = slices.Delete(e.bEnts, 0, n)
		b.proc.drop(n)
		if e.part > 0 {
			e.part = min(e.part, e.bn) // the next part: as large as the last one that passed
		}
	}
	if records > 0 && time.Since(e.persistedAt) >= cursorEvery {
		e.persist()
	}
	e.notesAcked(notes)
}

// maxRetryAfter bounds the wait a receiver's Retry-After asks for.
const maxRetryAfter = 10 * time.Minute

// retryAfter returns the wait the receiver asked for with Retry-After (on
// 429, 502, 503, 504), 0 if none. otlploghttp parses it into its error but
// does not export the type (retryableError, field throttle), so it is
// read by reflection; should that type change, this returns 0 and the
// bridge's own backoff alone applies.
func retryAfter(err error) time.Duration {
	for _, e := range unwrapAll(err) {
		v := reflect.ValueOf(e)
		if v.Kind() == reflect.Pointer && !v.IsNil() {
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct || v.Type().Name() != "retryableError" || !strings.HasSuffix(v.Type().PkgPath(), "/otlploghttp") {
			continue
		}
		if f := v.FieldByName("throttle"); f.IsValid() && f.Kind() == reflect.Int64 {
			return time.Duration(f.Int())
		}
	}
	return 0
}

// refusalKind is how a receiver refused a request as it is (see export).
type refusalKind int

const (
	notRefused  refusalKind = iota
	refusedBad              // 400: this request, or every request
	refusedSize             // 413, or above otlploghttp's own size limit: this request
)

// refusal classifies err: the receiver's (or otlploghttp's) answer that it
// will not take this request as it is (400, 413, a body above otlploghttp's
// own limit), or something else.
func refusal(err error) refusalKind {
	for _, e := range unwrapAll(err) {
		msg := e.Error()
		if strings.HasPrefix(msg, "request body too large") {
			return refusedSize
		}
		if rest, ok := strings.CutPrefix(msg, "failed to send logs to "); ok {
			// "failed to send logs to URL: 400 Bad Request (body: ...)"
			if i := strings.Index(rest, ": "); i >= 0 && len(rest) >= i+5 {
				switch rest[i+2 : i+5] {
				case "400":
					return refusedBad
				case "413":
					return refusedSize
				}
			}
		}
	}
	return notRefused
}

// cursorEvery is how often, at most, an acknowledgement is written to the
// cursor file while records flow; the cursor is also written when the
// goroutine runs out of work and when it stops. Writing it is an fsync,
// which after every batch kept the goroutine waiting about as long as it
// worked: it fell behind a busy logger and replayed most records from the
// files. What a crash loses is at most this much of acknowledgements:
// those records are sent again, with the same audit.seq.
const cursorEvery = 250 * time.Millisecond

func (e *exporter) persist() {
	e.persistedAt = time.Now()
	seq := e.b.cursor.Load()
	if err := writeCursor(e.curPath, seq, e.ackMAC); err != nil {
		otel.Handle(err)
		return
	}
	e.persisted = seq
}

// isPartialSuccess reports whether err is otlploghttp's report of an OTLP
// partial success (its type is internal).
func isPartialSuccess(err error) bool {
	for _, e := range unwrapAll(err) {
		if len(e.Error()) >= 20 && e.Error()[:20] == "OTLP partial success" {
			return true
		}
	}
	return false
}

func unwrapAll(err error) []error {
	out := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			out = append(out, unwrapAll(e)...)
		}
	case interface{ Unwrap() error }:
		if e := u.Unwrap(); e != nil {
			out = append(out, unwrapAll(e)...)
		}
	}
	return out
}
