package otelbridge

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/slogaudit/slogaudit/chain"
)

// An Option configures Setup and New.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	dir, prefix, ext string
	service, version string
	tracing          bool
	meterProvider    metric.MeterProvider
	queueBytes       int
	batch            int
	batchBytes       int
	delay            time.Duration
	minBackoff       time.Duration
	maxBackoff       time.Duration
	shutdownTimeout  time.Duration // Shutdown's deadline when its ctx has none; < 0: none
	onStall          func(Stall)
	stallThreshold   time.Duration
	onMismatch       func(ChainMismatch)
	onHold           func(seq uint64) // tests: build stopped at seq, not known committed
}

func newConfig(opts []Option) config {
	c := config{
		prefix:     chain.DefaultPrefix,
		ext:        chain.DefaultExt,
		queueBytes: 4 << 20,
		batch:      512,
		batchBytes: 4 << 20,
		delay:      time.Second,
		minBackoff: 100 * time.Millisecond,
		maxBackoff: 10 * time.Second,

		shutdownTimeout: DefaultShutdownTimeout,
		stallThreshold:  DefaultStallThreshold,
	}
	for _, o := range opts {
		o.apply(&c)
	}
	return c
}

// WithDir sets the audit directory, the one given to handler.Options.Dir.
// Required: the bridge reads records back from it and keeps its cursor
// there.
func WithDir(dir string) Option { return optionFunc(func(c *config) { c.dir = dir }) }

// WithFileNames sets the audit files' name prefix and extension, as in the
// handler's rotate.Options (default "audit" and ".jsonl").
func WithFileNames(prefix, ext string) Option {
	return optionFunc(func(c *config) {
		if prefix != "" {
			c.prefix = prefix
		}
		if ext != "" {
			c.ext = ext
		}
	})
}

// WithService sets service.name and service.version of the resource.
// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override them.
func WithService(name, version string) Option {
	return optionFunc(func(c *config) { c.service, c.version = name, version })
}

// WithTracing makes Setup also build a TracerProvider that exports spans
// with otlptracehttp (configured by OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and the other OTEL_EXPORTER_OTLP_*
// variables); Bridge.TracerProvider returns it. Without either endpoint
// variable there is none.
func WithTracing() Option { return optionFunc(func(c *config) { c.tracing = true }) }

// WithMeterProvider sets where the bridge's counters go (default: the global
// MeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// WithQueueSize bounds the memory of records queued by Audit and not yet
// exported (default 4 MiB). Records that do not fit are exported later from
// the file.
func WithQueueSize(bytes int) Option {
	return optionFunc(func(c *config) {
		if bytes > 0 {
			c.queueBytes = bytes
		}
	})
}

// WithBatch sets the largest batch and how long a record may wait for its
// batch to fill (defaults 512 and 1 s).
func WithBatch(records int, delay time.Duration) Option {
	return optionFunc(func(c *config) {
		if records > 0 {
			c.batch = records
		}
		if delay > 0 {
			c.delay = delay
		}
	})
}

// WithBatchBytes bounds a batch by the size of its records too (default
// 4 MiB, well below the 20 MiB an OpenTelemetry Collector takes in a
// request by default, its max_request_body_size): a batch ends with the
// record that makes it reach the bound. A request the receiver refuses as
// too large (400 or 413) is split until it passes; a record refused alone
// is counted as rejected (see Stats).
func WithBatchBytes(bytes int) Option {
	return optionFunc(func(c *config) {
		if bytes > 0 {
			c.batchBytes = bytes
		}
	})
}

// DefaultShutdownTimeout is how long Bridge.Shutdown (and so the shutdown
// function of Setup) keeps exporting when the ctx it is given has no
// deadline: 10 s, what the example service gives it too.
const DefaultShutdownTimeout = 10 * time.Second

// WithShutdownTimeout sets how long Shutdown keeps exporting when the ctx
// it is given has no deadline (default DefaultShutdownTimeout). A ctx with
// a deadline is used as it is. d == 0 keeps the default; with d < 0
// there is none: Shutdown
// then waits until ctx is done, which with context.Background() is until
// the collector has acknowledged everything, however long it stays down.
// What is not acknowledged when Shutdown gives up stays in the audit files
// after the cursor, and the next start exports it.
func WithShutdownTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d != 0 {
			c.shutdownTimeout = d
		}
	})
}

// withBackoff sets the retry backoff bounds (for tests).
func withBackoff(lo, hi time.Duration) Option {
	return optionFunc(func(c *config) { c.minBackoff, c.maxBackoff = lo, hi })
}

// withHoldHook sets a function the exporter goroutine calls when it stops
// reading the files at a line not known to be committed (for tests).
func withHoldHook(f func(seq uint64)) Option {
	return optionFunc(func(c *config) { c.onHold = f })
}

// Setup builds the OTLP leg from the environment. When neither
// OTEL_EXPORTER_OTLP_ENDPOINT nor OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is set,
// or OTEL_SDK_DISABLED is true, it returns a nil *Bridge (a Sink that does
// nothing), a shutdown function that does nothing, and no error, and starts
// nothing. Otherwise it starts a Bridge exporting with otlploghttp, which
// reads the other OTEL_EXPORTER_OTLP_* variables itself (headers, timeout,
// compression, TLS and mTLS files) after Setup has checked them: a
// malformed one is Setup's error, naming the variable but no value (a
// value may hold credentials). An endpoint must be an http:// or https://
// URL with a host and, if it names a port, one from 1 to 65535, such as
// http://localhost:4318: the exporter would take localhost:99999 and fail
// every request. WithDir is then required. Only OTEL_SDK_DISABLED=true
// disables. Call shutdown after closing the handler; it is Bridge.Shutdown,
// which gives up after DefaultShutdownTimeout (10 s; WithShutdownTimeout)
// when its ctx has no deadline, leaving what the collector has not
// acknowledged to the next start.
func Setup(ctx context.Context, opts ...Option) (*Bridge, func(context.Context) error, error) {
	nop := func(context.Context) error { return nil }
	if !enabled() {
		return nil, nop, nil
	}
	cfg := newConfig(opts)
	if cfg.dir == "" {
		return nil, nop, errors.New("otelbridge: WithDir is required")
	}
	signals := []string{"LOGS"}
	if cfg.tracing {
		signals = append(signals, "TRACES")
	}
	if err := checkEnv(signals...); err != nil {
		return nil, nop, err
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, nop, err
	}
	// The bridge retries from the file, with its own backoff; the
	// exporter's retry (up to a minute per batch, in memory) is off.
	exp, err := otlploghttp.New(ctx, otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}))
	if err != nil {
		return nil, nop, fmt.Errorf("otelbridge: %w", err)
	}
	var tp *sdktrace.TracerProvider
	if cfg.tracing && (envSet("OTEL_EXPORTER_OTLP_ENDPOINT") || envSet("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
		texp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, nop, fmt.Errorf("otelbridge: %w", err)
		}
		tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(texp), sdktrace.WithResource(res))
	}
	b, err := start(exp, res, cfg)
	if err != nil {
		exp.Shutdown(ctx)
		if tp != nil {
			tp.Shutdown(ctx)
		}
		return nil, nop, err
	}
	b.tp = tp
	return b, b.Shutdown, nil
}

// enabled reports whether the environment configures OTLP log export, that
// is whether Setup would start a Bridge.
func enabled() bool {
	if strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return false // the spec's only value that disables; "1" does not
	}
	return envSet("OTEL_EXPORTER_OTLP_ENDPOINT") || envSet("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
}

func envSet(name string) bool { return os.Getenv(name) != "" }

// checkEnv checks the OTEL_EXPORTER_OTLP_* variables that otlploghttp and
// otlptracehttp read for the signals (LOGS, TRACES), generic and
// signal-specific: the exporters drop a malformed value with only a
// message to the global error handler (a bad header entry drops every
// header, and the message quotes them, API keys included). Errors name the
// variable, and a header by its key, never a value.
func checkEnv(signals ...string) error {
	for _, signal := range signals {
		// The variable each exporter uses: the signal's own if set, else
		// the generic one (a generic one it overrides is not checked).
		get := func(name string) (string, string) {
			for _, v := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_" + name, "OTEL_EXPORTER_OTLP_" + name} {
				if s := os.Getenv(v); s != "" {
					return v, s
				}
			}
			return "", ""
		}
		if name, v := get("ENDPOINT"); v != "" {
			if err := checkEndpoint(v); err != nil {
				return fmt.Errorf("otelbridge: %s %w", name, err)
			}
		}
		if name, v := get("HEADERS"); v != "" {
			for i, entry := range strings.Split(v, ",") {
				key, value, ok := strings.Cut(entry, "=")
				key = strings.TrimSpace(key)
				if !ok || !headerToken(key) {
					// Not even the key is named: it may be a value.
					return fmt.Errorf("otelbridge: %s: entry %d is not key=value with a valid header name", name, i+1)
				}
				if _, err := url.PathUnescape(value); err != nil {
					return fmt.Errorf("otelbridge: %s: the value of %q is not percent-encoded correctly", name, key)
				}
			}
		}
		for _, file := range []string{"CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"} {
			if name, path := get(file); path != "" {
				if _, err := os.ReadFile(path); err != nil {
					return fmt.Errorf("otelbridge: %s: %w", name, err)
				}
			}
		}
		certName, cert := get("CLIENT_CERTIFICATE")
		keyName, key := get("CLIENT_KEY")
		if (cert == "") != (key == "") {
			return fmt.Errorf("otelbridge: %s and %s go together (mTLS)", cmp.Or(certName, "OTEL_EXPORTER_OTLP_"+signal+"_CLIENT_CERTIFICATE"), cmp.Or(keyName, "OTEL_EXPORTER_OTLP_"+signal+"_CLIENT_KEY"))
		}
		if name, v := get("COMPRESSION"); v != "" && v != "gzip" && v != "none" {
			return fmt.Errorf("otelbridge: %s must be gzip or none", name)
		}
		if name, v := get("TIMEOUT"); v != "" {
			if ms, err := strconv.ParseUint(v, 10, 63); err != nil || ms == 0 {
				return fmt.Errorf("otelbridge: %s must be a positive number of milliseconds", name)
			}
		}
	}
	return nil
}

// endpointExample is a valid OTEL_EXPORTER_OTLP_ENDPOINT, for Setup's
// errors.
const endpointExample = "http://localhost:4318"

// checkEndpoint checks an endpoint URL as otlploghttp needs it: http or
// https, a host, and a port (if any) from 1 to 65535. otlploghttp takes a
// port such as 99999 or 0 and then fails every request, so the bridge
// would retry for ever. The error, which follows the variable's name,
// quotes nothing of the value: a URL may hold credentials (user:password@,
// a token in the query).
func checkEndpoint(v string) error {
	const want = "it must be an http:// or https:// URL, e.g. " + endpointExample
	if !strings.Contains(v, "://") {
		// localhost:4318, collector:4317 (which url.Parse reads as the
		// scheme "localhost" or "collector").
		return errors.New("has no scheme; " + want)
	}
	u, err := url.Parse(v)
	if err != nil {
		// Not err's text: *url.Error quotes the whole value.
		var ue *url.Error
		if errors.As(err, &ue) && strings.HasPrefix(ue.Err.Error(), "invalid port") {
			return errors.New("has an invalid port; it must be a number from 1 to 65535, e.g. " + endpointExample)
		}
		return errors.New("is a malformed URL; " + want)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("has a scheme other than http and https (OTLP/HTTP); " + want)
	}
	if u.Hostname() == "" {
		return errors.New("has no host; " + want)
	}
	if p := u.Port(); p != "" { // "" also for host: (the scheme's default port)
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return errors.New("has an invalid port; it must be a number from 1 to 65535, e.g. " + endpointExample)
		}
	}
	return nil
}

// headerToken reports whether k is an HTTP header name (RFC 9110 token).
func headerToken(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// newResource describes the service: telemetry SDK, host, a default
// service.name, WithService's, then OTEL_RESOURCE_ATTRIBUTES and
// OTEL_SERVICE_NAME, later ones winning.
func newResource(ctx context.Context, cfg config) (*resource.Resource, error) {
	opts := []resource.Option{resource.WithTelemetrySDK(), resource.WithHost(), resource.WithService()}
	if cfg.service != "" {
		opts = append(opts, resource.WithAttributes(semconv.ServiceName(cfg.service)))
	}
	if cfg.version != "" {
		opts = append(opts, resource.WithAttributes(semconv.ServiceVersion(cfg.version)))
	}
	opts = append(opts, resource.WithFromEnv(), resource.WithSchemaURL(semconv.SchemaURL))
	res, err := resource.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otelbridge: resource: %w", err)
	}
	return res, nil
}
