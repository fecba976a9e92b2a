package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/otelbridge"
)

// Export health: a collector outage, and a hint that the audit files
// changed after the OTLP leg read them, are audit events. The bridge loses
// nothing in an outage (it replays from the files), but while it lasts the
// off-host copy of the trail is not being made: PCI DSS 10.7 asks that such
// a failure be detected, alerted on and recorded. The events go through the
// handler, so the alert rules see them (the default rule audit_export_stalled
// counts event audit_export status failed).
const (
	actionExport          = "export"
	resourceTypeCollector = "collector"
	reasonExportStalled   = "stalled"
	reasonExportRecovered = "recovered"
)

// exportHealth writes otelbridge's stall and mismatch reports to the audit
// trail (otelbridge.WithOnStall, WithOnChainMismatch). The bridge starts
// before the handler it is a sink of, so the handler is set once there is
// one; a report before that, or after the handler closed, goes to stderr
// only.
type exportHealth struct {
	collector string // the endpoint's host:port: no userinfo, path or query
	h         atomic.Pointer[handler.Handler]
	stderr    io.Writer
}

func (x *exportHealth) options() []otelbridge.Option {
	return []otelbridge.Option{otelbridge.WithOnStall(x.stall), otelbridge.WithOnChainMismatch(x.mismatch)}
}

// stall records event=audit_export action=export resource_type=collector
// resource=<host:port>: status failed, reason stalled when the collector
// has acknowledged nothing for the threshold; status success, reason
// recovered when it does again. pending_from and pending_to are the seqs
// that were waiting, since when the exports began to fail.
func (x *exportHealth) stall(s otelbridge.Stall) {
	ev := handler.Event{
		Type:         handler.AuditExport,
		Action:       actionExport,
		ResourceType: resourceTypeCollector,
		Resource:     x.collector,
		Status:       handler.StatusFailed,
		Reason:       reasonExportStalled,
		Message:      "audit export to the OTLP collector stalled",
		Attrs: []slog.Attr{
			slog.Uint64("pending_from", s.PendingFrom),
			slog.Uint64("pending_to", s.PendingTo),
			slog.Time("since", s.Since),
			slog.Uint64("failures", s.Failures),
		},
	}
	if s.Recovered {
		ev.Status, ev.Reason = handler.StatusSuccess, reasonExportRecovered
		ev.Message = "audit export to the OTLP collector recovered"
		if s.LastError != "" {
			ev.Attrs = append(ev.Attrs, slog.String("last_error", s.LastError))
		}
	} else if s.LastError != "" {
		ev.Err = errors.New(s.LastError) // the URLs in it cut by otelbridge
	}
	h := x.h.Load()
	var err error
	if h == nil {
		err = errors.New("the audit trail is not open")
	} else {
		err = handler.Log(context.Background(), slog.New(h), ev)
	}
	if err != nil {
		fmt.Fprintf(x.stderr, "AUDIT FAILURE: %s (%s, records %d to %d since %s) not recorded: %v\n",
			ev.Message, x.collector, s.PendingFrom, s.PendingTo, s.Since.Format("2006-01-02T15:04:05Z07:00"), err)
	}
}

// mismatch records the bridge's hint that the audit files changed after it
// read them as a failed chain verification (Handler.ReportVerifyFailure:
// event=chain_verification status=failed, raised by the default alert rule
// chain_verification_failed).
func (x *exportHealth) mismatch(m otelbridge.ChainMismatch) {
	detail := fmt.Sprintf("the OTLP export read record %d of %s back and it does not follow record %d as exported", m.Seq, filepath.Base(m.File), m.Prev)
	h := x.h.Load()
	var err error
	if h == nil {
		err = errors.New("the audit trail is not open")
	} else {
		err = h.ReportVerifyFailure(m, detail)
	}
	if err != nil {
		fmt.Fprintf(x.stderr, "AUDIT FAILURE: %v (%s) not recorded: %v\n", m, detail, err)
	}
}

// otlpCollector returns the host:port of the OTLP logs endpoint the
// environment configures (the scheme's default port if it names none):
// what the export records name as their resource, without the userinfo,
// path and query, which may hold credentials.
func otlpCollector() string {
	u, err := url.Parse(firstNonEmpty(os.Getenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"), os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")))
	if err != nil || u.Hostname() == "" {
		return "unknown" // Setup refuses such an endpoint
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}
