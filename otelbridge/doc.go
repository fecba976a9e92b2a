// Package otelbridge is the OTLP leg of the audit tee: it exports every
// record of the chained audit file as an OpenTelemetry log record over
// OTLP/HTTP, without ever losing one to an outage, a full queue or a
// restart — the file is the source of truth and the bridge replays from it.
//
// # Use
//
//	b, shutdown, err := otelbridge.Setup(ctx, otelbridge.WithDir(dir), otelbridge.WithService("agenthub", version))
//	if err != nil { ... }
//	defer func() { // after h.Close(), so that the close record is exported too
//		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
//		defer cancel()
//		if err := shutdown(sctx); err != nil { ... } // the rest goes out at the next start
//	}()
//	h, err := handler.New(handler.Options{Dir: dir, Key: key, Sinks: []handler.Sink{b}})
//
// Setup is configured the OpenTelemetry way, from the environment:
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT switches
// it on (without either, or with OTEL_SDK_DISABLED=true, it returns a nil
// *Bridge, which is a valid no-op Sink, and starts nothing: the file-only
// default). shutdown gives up when its ctx is done, or after
// DefaultShutdownTimeout (10 s) if the ctx has no deadline: a collector
// that is down cannot hang the exit, and what it has not acknowledged
// stays in the files for the next start. The exporter itself (otlploghttp)
// reads OTEL_EXPORTER_OTLP_* HEADERS, TIMEOUT, COMPRESSION, INSECURE,
// CERTIFICATE, CLIENT_CERTIFICATE and CLIENT_KEY (and their _LOGS_ forms),
// after Setup has checked them; the resource takes OTEL_SERVICE_NAME
// and OTEL_RESOURCE_ATTRIBUTES, which override WithService. WithTracing adds
// a TracerProvider exporting spans (e.g. the otelhttp server spans of package
// middleware) with otlptracehttp. New takes any sdk/log Exporter instead.
//
// # Delivery: at least once, in seq order
//
// Audit, the handler.Sink method, runs on the logging goroutine after the
// record is in the file. It copies the record into a bounded in-memory queue
// (WithQueueSize, 4 MiB by default) and returns; it never blocks, and when
// the queue is full it drops the copy and counts it. One background goroutine
// does everything else: it converts records, exports them in seq order in
// batches (WithBatch: 512 records or 1 s; WithBatchBytes: 4 MiB), and keeps
// a cursor, the highest seq up to which every record was acknowledged (the
// exporter's Export returned nil) or rejected. A request the receiver
// refuses as it is (400 or 413: too large, or a record it cannot take) is
// split until it passes. A record refused alone is reported, counted as
// rejected and passed over (it stays in the file) only when the refusal
// is about size (413, or above otlploghttp's limit) or the receiver has
// shown that it takes other requests (a part of the same split, or the
// next record sent alone, was accepted): a receiver that answers 400 to
// every request (a misconfiguration) is retried with backoff like one that
// is down, records kept. Whatever the queue does not hold in order — records dropped
// on overflow, the open and close records the handler never passes on,
// everything written while a previous process was down or not yet
// acknowledged when it stopped — it reads back from the chained files
// (compressed ones too), starting at the file whose open record's seq
// precedes the cursor. Only committed records are read back: a line of the
// newest file counts once Audit has seen its seq or a later one (the
// handler calls Audit after the write succeeded; under rotate.SyncAlways a
// write whose fsync fails is truncated away and its seq reused), or once
// the file is finished: compressed, ended by a close record, followed by a
// newer file, or left by a writer that is gone (rotate's Writer holds a
// lock on the file it writes, see rotate.FileLocked, so a crashed writer's
// last file is exported also by a bridge with no handler attached; where
// file locks are not supported, only a newer file finishes it). Until then
// it looks again at the next record, every batch delay and at Shutdown. A
// file followed by a newer file counts only up to the seq before the newer
// file's first line: under rotate.SyncAlways a writer whose fsync failed
// and whose truncation back failed too gives the file up with lines it
// never committed and goes on in a new file from their seqs (FORMAT.md
// §5), so Audit soon sees those seqs; the given-up lines are not exported
// (reported to the OpenTelemetry error handler), the newer file's are.
// Hence a line of the newest file counts by Audit's seq only if the file
// still had no newer file once Audit had seen that seq. A
// failed export is retried with exponential backoff
// (100 ms to 10 s), or after the receiver's Retry-After if that is longer
// (up to 10 minutes); otlploghttp's own retry is switched off so that this
// loop alone decides. The cursor is kept in the audit directory in
// ".otlp-cursor-<prefix>" (written with a temporary file, fsync and rename
// at most every 250 ms while records flow, and whenever the goroutine runs
// out of work or stops; rotate.List and the verifier ignore it), so a
// restarted process resumes where the last one was acknowledged, give or
// take the last 250 ms of acknowledgements, which it sends again. Without a
// cursor file (the first start with OTLP on) the bridge exports every record
// the files hold; a cursor that does not match the chain in the directory
// (another chain started there) is reported and ignored the same way. A
// cursor before the oldest file (retention removed its record during an
// outage) is kept: only the records after it that are gone count as
// skipped.
//
// A receiver may therefore see a record twice (an export that succeeded but
// whose answer was lost, a crash before the cursor was written); duplicates
// are identical (the observed timestamp too: it is the record's time) and
// carry the same audit.seq and audit.chain, so deduplicate by them. A record
// is never skipped unless the files no longer hold it (removed by retention
// before it could be exported, or deleted by tampering) or reads them no
// more (a compressed file that no longer decompresses to its end: the rest
// of it; the export goes on with the next file); that is reported to the
// OpenTelemetry error handler and counted as skipped.
//
// The cursor file is not authenticated: whoever may write the audit
// directory (the service's user, root; see rotate.CheckDir) can write a
// cursor past records that were never acknowledged, and the bridge then
// does not send them, silently (they stay in the files, which verify). The
// receiver can see it: the audit.seq of the records of one chain are
// consecutive (open, close, checkpoint and pruned records included), so a
// rule on a gap in audit.seq catches records that never arrived, whatever
// the reason; auditctl query lists the records of the files with their
// seqs.
//
// Memory is bounded by the queue size plus one batch. Counters, through the
// OpenTelemetry metrics API (the global MeterProvider unless
// WithMeterProvider): slogaudit.otlp.exported, slogaudit.otlp.replayed
// (records read back from the file), slogaudit.otlp.dropped (queue
// overflows, later replayed), slogaudit.otlp.export_failures and
// slogaudit.otlp.skipped and slogaudit.otlp.rejected. Bridge.Stats returns
// the same numbers.
//
// # Outages and tampering hints: WithOnStall, WithOnChainMismatch
//
// An outage loses nothing, but it is an outage of the copy of the trail
// that the host cannot alter, and it should be alerted on and be in the
// trail itself (PCI DSS 10.7: failures of audit logging mechanisms are
// detected, alerted and recorded). Without hooks the bridge says so only to
// the OpenTelemetry error handler ("export failed; retrying from seq N")
// and in the export_failures counter. WithOnStall's function hears when the
// collector has acknowledged nothing for longer than WithStallThreshold
// (default one minute) while something waited to be exported, once per
// stall, and once more when it acknowledges again: a Stall, with the seqs
// waiting, since when, how many requests failed and the last error (URLs
// cut to scheme, host, port and path). WithOnChainMismatch's hears when a
// record read back from the files does not follow the one exported before
// it: the files changed after the bridge read them, a hint of tampering. Both
// run on the bridge's goroutine and may write an audit record through the
// handler; the example service records a stall as event audit_export
// (status failed, reason stalled; then success, reason recovered) and a
// mismatch with Handler.ReportVerifyFailure.
//
// # The log record
//
// Every line of the file (audit records; open, close, checkpoint and pruned
// records) becomes one log record. Each signed checkpoint (handler.
// CheckpointSink) becomes one more, event name audit.checkpoint, body the
// signed note exactly as in the checkpoints file (save it to a file for
// auditctl verify --trusted-checkpoint), attributes audit.checkpoint.seq,
// audit.checkpoint.epoch, audit.checkpoint.file and audit.chain; notes have
// their own persisted cursor (.otlp-notes-<prefix>, the seq and chain value
// of the last note acknowledged, checked against the chain in the directory
// as the record cursor is) and are re-read from the checkpoints file after
// an outage or a restart. A line becomes:
//
//   - body: msg ("audit file open" / "audit file close" for open and close records)
//   - severity: from level, slog's level plus 9 (DEBUG 5, INFO 9, WARN 13,
//     ERROR 17, INFO+2 11, clamped to 1..24); severity text: level as written
//   - timestamp: time; observed timestamp: time as well (the record is
//     observed when it enters the trail; the bridge only replays it, so a
//     record sent twice is the same record), the time of the conversion only
//     for a line without a time
//   - trace and span id: trace_id and span_id
//   - event name: "audit." + the event member (audit.admin_action,
//     audit.credential_access, ...), audit.file_open and audit.file_close
//   - attributes: every other member, in file order (event too, for backends
//     that do not show event names). Each key once, by the handler's rule:
//     the first member of a name keeps it (for msg, level, time, trace_id
//     and span_id the first one is the record's own), a later one gets
//     underscores in front until it is unique (_msg, _user.id; the handler
//     writes attributes that way since it applies the rule, older files
//     may repeat a key). Nested objects (slog groups) are
//     flattened to dotted keys, "g":{"a":1} to g.a: Loki, VictoriaLogs and
//     most SIEMs index flat keys and query them directly, while map values
//     are stored as opaque JSON. Numbers are int64 when written as integers
//     (integers beyond int64 stay decimal strings rather than losing
//     precision as float64), float64 otherwise; arrays are slices
//     (homogeneous when their elements are), objects inside arrays maps.
//   - audit.seq (int64) and audit.chain (the line's MAC, 64 hex digits),
//     the first two attributes: a SIEM can match a record against the local
//     file, prove with auditctl verify that the file it matches is intact,
//     and deduplicate by seq. The SDK's limits keep the first attributes
//     (OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT) and cut long values
//     (OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT); New and Setup refuse a
//     count limit below 2 and a length limit below 64, which would cut
//     these.
//
// The same line gives the same record whether it came through Audit or was
// read back from the file.
//
// # Why not contrib/bridges/otelslog
//
// otelslog turns a slog.Record into an OTel record on the caller's goroutine
// (about 4.5 µs per record here) and hands it to the SDK's BatchProcessor.
// That is the wrong shape for an audit trail:
//
//   - it sees the slog.Record, not the sealed line: no seq and no chain
//     value, so nothing downstream can be matched against the file, and it
//     exports records whether or not they reached the file;
//   - BatchProcessor's queue holds 2048 records and drops the rest when the
//     exporter falls behind, with only a warning; otlploghttp retries for
//     about a minute and then drops the batch; nothing is on disk, so an
//     outage or a restart loses records for good;
//   - nobody learns which records were acknowledged, so nothing could
//     replay just the missing ones; and Handle always returns nil (slog.Logger
//     drops handler errors anyway).
//
// Here the export is driven by the file: acknowledgements move a persisted
// cursor and anything not acknowledged is read again.
//
// # Why a LoggerProvider with our own Processor
//
// The sdk/log Exporter is what reports acknowledgement, but sdk/log Record
// values can only be made by a Logger: their resource, scope and attribute
// limits are unexported (outside tests, via logtest). So the bridge has a
// private LoggerProvider whose only Processor collects the batch; its Logger
// emits one empty record, and each converted record is a Clone of that one
// with every field set by the Record's setters (SetAttributes applies the
// provider's attribute limits, as Emit does), which costs a fraction of an
// Emit per record. The background goroutine then calls the Exporter's
// Export itself to learn whether the batch was acknowledged. The SDK's
// BatchProcessor and SimpleProcessor are not used: the first drops and
// hides the outcome, the second exports one record at a time and reports
// errors only to the global handler.
package otelbridge
