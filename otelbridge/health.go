package otelbridge

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultStallThreshold is how long exports must have failed before
// WithOnStall's function hears of it (see WithStallThreshold).
const DefaultStallThreshold = time.Minute

// A Stall reports that the collector has not acknowledged anything for
// longer than the stall threshold while the bridge had records (or
// checkpoint notes) to export, and, in a second report, that it
// acknowledged again. See WithOnStall.
//
// Nothing is lost meanwhile: the records stay in the audit files and are
// exported once the collector is back (or by the next start). But a
// collector outage is also an outage of the audit trail's copy that the
// host cannot alter, which an operator should hear of, and an auditor
// see: PCI DSS 10.7 asks that failures of critical security controls,
// audit logging mechanisms among them, be detected, alerted and recorded.
type Stall struct {
	// Recovered is false in the report of a stall, true in the report
	// that it ended: the collector acknowledged a request again (or
	// answered that it refuses a record for good, which it does only when
	// it takes others). A recovery is reported only after a stall was.
	Recovered bool
	// Since is when the exports began to fail: the first failed request
	// after the last acknowledgement.
	Since time.Time
	// At is when the report was made: Since plus at least the threshold
	// in a stall report, the acknowledgement in a recovery report.
	At time.Time
	// PendingFrom and PendingTo are the seqs of the records that were
	// waiting: from the first one not acknowledged when the exports began
	// to fail to the newest one the bridge knew of at the report (the
	// newest the handler passed on, or in the batch being sent). PendingTo
	// < PendingFrom when only checkpoint notes were waiting. On recovery
	// the collector has acknowledged a first batch from PendingFrom on;
	// the rest follows as usual.
	PendingFrom, PendingTo uint64
	// Failures is how many export requests failed since Since.
	Failures uint64
	// LastError is the text of the last failed request's error, with
	// every URL in it cut to scheme, host, port and path: a userinfo
	// (user:password@) or query may hold credentials.
	LastError string
}

// Pending is the number of records from PendingFrom to PendingTo.
func (s Stall) Pending() uint64 {
	if s.PendingTo < s.PendingFrom {
		return 0
	}
	return s.PendingTo - s.PendingFrom + 1
}

// A ChainMismatch reports that a record the bridge read back from the
// audit files does not follow the record it exported before it: its prev
// member is not the chain value of the record exported with the seq
// before. That cannot happen unless the files changed after the bridge
// read them (a hint of tampering, or of a file replaced or restored);
// verify the trail (auditctl verify) to learn more. The bridge goes on
// exporting. See WithOnChainMismatch.
type ChainMismatch struct {
	Seq  uint64    // the record read back
	Prev uint64    // the seq exported before it (Seq-1)
	File string    // the file Seq was read from
	At   time.Time // when the bridge noticed
}

// Error describes the mismatch as the bridge reports it to the
// OpenTelemetry error handler.
func (m ChainMismatch) Error() string {
	return fmt.Sprintf("otelbridge: record %d in %s does not follow the record exported as %d: the audit files changed after it was read (run auditctl verify)", m.Seq, m.File, m.Prev)
}

// WithOnStall sets a function the bridge calls when the collector has
// acknowledged nothing for longer than the stall threshold
// (WithStallThreshold, default one minute) while records or notes wait to
// be exported, once per stall, and again, with Recovered set, when it
// acknowledges again after such a report. Without it a stall is only the
// OpenTelemetry error handler's "export failed" message and the
// export_failures counter.
//
// f runs on the bridge's goroutine, one call at a time, never
// concurrently with WithOnChainMismatch's: exporting waits for it, so it
// should not block for long, and it must not call Shutdown (which waits for
// that goroutine). It may write an audit record through the handler the
// bridge is a Sink of (Audit never blocks); that is what it is for: a
// record of the stall in the audit trail, which the handler's alert rules
// see. The example service writes event audit_export, status failed,
// reason stalled, and status success, reason recovered.
//
// A stall is checked between export attempts, so it is reported up to an
// export timeout (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s by default) after the
// threshold; a stall that ends with Shutdown has no recovery report (the
// next start exports the rest and reports its own stall if the collector
// is still down).
func WithOnStall(f func(Stall)) Option {
	return optionFunc(func(c *config) { c.onStall = f })
}

// WithStallThreshold sets how long the collector may acknowledge nothing,
// while the bridge has something to export, before WithOnStall's function
// is called (default DefaultStallThreshold, one minute; d <= 0 keeps it).
// The bridge's backoff grows to 10 s between attempts, so thresholds much
// below that report brief hiccups.
func WithStallThreshold(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d > 0 {
			c.stallThreshold = d
		}
	})
}

// WithOnChainMismatch sets a function the bridge calls when a record it
// read back from the audit files does not follow the record it exported
// before (see ChainMismatch), besides reporting it to the OpenTelemetry
// error handler as it always does. It runs on the bridge's goroutine, as
// WithOnStall's does, with the same rules; it may write an audit record
// through the handler (the example service has Handler.ReportVerifyFailure
// write a chain_verification failure, which the default alert rule
// chain_verification_failed raises as a security alert).
func WithOnChainMismatch(f func(ChainMismatch)) Option {
	return optionFunc(func(c *config) { c.onMismatch = f })
}

// urlPattern finds URLs in an error's text.
var urlPattern = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.\-]*://[^\s"'<>]+`)

// redactURLs returns s with every URL in it cut to its scheme, host, port
// and path: no userinfo, query or fragment (credentials go there:
// https://user:token@host, ?api_key=). A URL that does not parse is
// replaced as a whole.
func redactURLs(s string) string {
	return urlPattern.ReplaceAllStringFunc(s, func(m string) string {
		// "failed to send logs to URL: 401 ...": the colon is the text's.
		trimmed := strings.TrimRight(m, ".,;:!?)")
		rest := m[len(trimmed):]
		u, err := url.Parse(trimmed)
		if err != nil {
			return "[URL not shown]" + rest
		}
		v := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
		if u.RawQuery != "" || u.ForceQuery {
			v.RawQuery = "REDACTED"
		}
		return v.String() + rest
	})
}

// stallState is the exporter's view of a stall (see WithOnStall).
type stallState struct {
	since    time.Time // the first failed request after the last acknowledgement; zero: not failing
	from     uint64    // the first seq not acknowledged then
	base     uint64    // Bridge.failures before that request
	lastErr  error
	reported bool // the stall was reported; its end will be
}

// failed records a failed export request whose retry is scheduled;
// failuresBefore is Bridge.failures before the export call.
func (e *exporter) failed(err error, now time.Time, failuresBefore uint64) {
	s := &e.stall
	if s.since.IsZero() {
		s.since, s.from, s.base, s.reported = now, e.b.cursor.Load()+1, failuresBefore, false
	}
	s.lastErr = err
}

// stallDue returns when a stall is to be reported, zero if none is.
func (e *exporter) stallDue() time.Time {
	s := &e.stall
	if e.b.cfg.onStall == nil || s.since.IsZero() || s.reported {
		return time.Time{}
	}
	return s.since.Add(e.b.cfg.stallThreshold)
}

// checkStall reports a stall once it has lasted the threshold.
func (e *exporter) checkStall(now time.Time) {
	if due := e.stallDue(); !due.IsZero() && !now.Before(due) {
		e.stall.reported = true
		e.b.cfg.onStall(e.stallReport(false, now))
	}
}

// answered records that the collector acknowledged a request (or refused
// a record for good): a stall, if one was reported, has ended.
func (e *exporter) answered(now time.Time) {
	s := &e.stall
	if s.since.IsZero() {
		return
	}
	if s.reported && e.b.cfg.onStall != nil {
		e.b.cfg.onStall(e.stallReport(true, now))
	}
	*s = stallState{}
}

func (e *exporter) stallReport(recovered bool, now time.Time) Stall {
	s := &e.stall
	to := e.hi
	for i := len(e.bEnts) - 1; i >= 0; i-- {
		if !e.bEnts[i].note {
			to = max(to, e.bEnts[i].seq)
			break
		}
	}
	r := Stall{
		Recovered:   recovered,
		Since:       s.since,
		At:          now,
		PendingFrom: s.from,
		PendingTo:   to,
		Failures:    e.b.failures.Load() - s.base,
	}
	if s.lastErr != nil {
		r.LastError = redactURLs(s.lastErr.Error())
	}
	return r
}
