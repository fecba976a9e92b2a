package otelbridge_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/otelbridge"
)

// Setup reads the OTLP configuration from the environment. Without
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) it
// returns a nil Bridge, which is a valid Sink that does nothing: audit
// records go to the file only. That is the output below: the package's
// tests run with the OTEL_* variables cleared (see TestMain). With an
// endpoint set, the same code exports, and shutdown waits at most 10 s for
// the collector: what it has not acknowledged by then stays in the audit
// files for the next start.
func ExampleSetup() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)

	bridge, shutdown, err := otelbridge.Setup(ctx,
		otelbridge.WithDir(dir),
		otelbridge.WithService("agenthub", "1.0.0"),
		otelbridge.WithTracing(), // bridge.TracerProvider() for middleware.Options.TracerProvider
	)
	if err != nil {
		panic(err)
	}
	h, err := handler.New(handler.Options{
		Dir:   dir,
		App:   slog.NewJSONHandler(io.Discard, nil),
		Sinks: []handler.Sink{bridge},
	})
	if err != nil {
		panic(err)
	}
	slog.New(h).InfoContext(ctx, "server started", handler.Audit)

	h.Close() // seals the file with a close record
	// Then export everything up to it, for at most 10 s (a ctx without a
	// deadline gets otelbridge.DefaultShutdownTimeout, also 10 s).
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := shutdown(sctx); err != nil {
		fmt.Println("OTLP export shutdown:", err) // the rest is exported at the next start
	}
	fmt.Println("exporting over OTLP:", bridge != nil)
	// Output: exporting over OTLP: false
}

// printExporter is an sdk/log Exporter that prints what it is given.
type printExporter struct{}

func (printExporter) Export(_ context.Context, recs []sdklog.Record) error {
	for _, r := range recs {
		var seq int64
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			if kv.Key == otelbridge.SeqKey {
				seq = kv.Value.AsInt64()
			}
			return true
		})
		fmt.Printf("seq %d %s %q\n", seq, r.EventName(), r.Body().AsString())
	}
	return nil
}
func (printExporter) Shutdown(context.Context) error   { return nil }
func (printExporter) ForceFlush(context.Context) error { return nil }

// New exports with any sdk/log Exporter. Every line of the file is exported,
// including the open and close records, each with its audit.seq.
func ExampleNew() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "audit")
	defer os.RemoveAll(dir)

	bridge, err := otelbridge.New(printExporter{}, otelbridge.WithDir(dir))
	if err != nil {
		panic(err)
	}
	h, err := handler.New(handler.Options{
		Dir:   dir,
		App:   slog.NewJSONHandler(io.Discard, nil),
		Sinks: []handler.Sink{bridge},
	})
	if err != nil {
		panic(err)
	}
	audit := handler.Logger(slog.New(h))
	audit.InfoContext(ctx, "start mcp_server obsidian (success)", "event", "admin_action", "action", "start")
	h.Close()
	if err := bridge.Shutdown(ctx); err != nil {
		panic(err)
	}
	st := bridge.Stats()
	fmt.Println("exported", st.Exported, "cursor", st.Cursor)
	// Output:
	// seq 1 audit.file_open "audit file open"
	// seq 2 audit.admin_action "start mcp_server obsidian (success)"
	// seq 3 audit.file_close "audit file close"
	// exported 3 cursor 3
}
