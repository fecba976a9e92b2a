// Command example is an AgentHub-like service that shows slogaudit at work:
// it supervises (simulated) MCP servers and stores credentials, and every
// administrative action and credential access is an audit event in a
// tamper-evident, hash-chained file.
//
//	go run ./example
//	go run ./cmd/auditctl verify --key-file audit.key.initial --checkpoint-key audit.key.pub audit-logs
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/internal/jsonenc"
	"github.com/slogaudit/slogaudit/middleware"
	"github.com/slogaudit/slogaudit/otelbridge"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// version is reported as service.version in OTLP exports.
const version = "0.1.0"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

type config struct {
	addr        string
	auditDir    string
	keyFile     string
	rotateBytes int64
	sync        string
	maxAge      time.Duration
	maxBackups  int
	tokensFile  string
	adminToken  string
	adminFlag   bool   // adminToken came from -admin-token (not $AUDIT_ADMIN_TOKEN)
	adminShown  string // what the banner shows for it: the token only if generated here
	alertsFile  string
	jaegerURL   string
	bodyTimeout time.Duration
	// shutdownTimeout is how long a stop waits for the requests in
	// flight; 0: bodyTimeout plus 10 s.
	shutdownTimeout time.Duration
	// otlpStallAfter is how long the OTLP collector may acknowledge
	// nothing before that is an audit_export failed event.
	otlpStallAfter time.Duration
}

func run(args []string, stdout, stderr io.Writer) int {
	var cfg config
	fs := flag.NewFlagSet("example", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.StringVar(&cfg.auditDir, "audit-dir", "audit-logs", "directory of the audit files")
	fs.StringVar(&cfg.keyFile, "key-file", "audit.key", "forward-secure MAC key file, evolved at every epoch; created (0600) with its initial key copied to FILE.initial (move that off the host), the checkpoint signer FILE.signer and FILE.pub")
	fs.Int64Var(&cfg.rotateBytes, "rotate-bytes", 10<<20, "rotate audit files at this size (0: no size limit)")
	fs.StringVar(&cfg.sync, "sync", "always", "durability policy: none, interval or always")
	fs.DurationVar(&cfg.maxAge, "max-age", 0, "remove audit files whose records are all older than this, each leaving a pruned record (0: keep all; PCI DSS 10.5.1 asks for 12 months, e.g. 8784h)")
	fs.IntVar(&cfg.maxBackups, "max-backups", 0, "keep at most this many audit files besides the current one (0: all)")
	fs.StringVar(&cfg.tokensFile, "tokens", "", `bearer tokens: a file of lines "token principal [role]", role viewer, operator or admin, default operator (default: one printed demo token, role operator)`)
	fs.StringVar(&cfg.adminToken, "admin-token", os.Getenv("AUDIT_ADMIN_TOKEN"), "bearer token of principal admin, role admin: may do everything, also store and delete credentials and read the audit log (GET /audit/events, the live view /audit/ui and /audit/stream) (default $AUDIT_ADMIN_TOKEN, else a random one, printed)")
	fs.StringVar(&cfg.alertsFile, "alerts", "", "alert rules config (JSON, see handler.ParseAlertConfig; default: handler.DefaultAlertRules)")
	fs.DurationVar(&cfg.bodyTimeout, "body-timeout", 10*time.Second, "how long a client may take to send a request body (also one the service does not read)")
	fs.DurationVar(&cfg.shutdownTimeout, "shutdown-timeout", 0, "how long a stop waits for the requests in flight before it cuts their connections (default: -body-timeout plus 10s)")
	fs.DurationVar(&cfg.otlpStallAfter, "otlp-stall-after", otelbridge.DefaultStallThreshold, "with OTLP export on: how long the collector may acknowledge nothing before an audit_export failed event (and, when it is back, a recovered one) is written")
	fs.StringVar(&cfg.jaegerURL, "jaeger-url", "http://localhost:16686/trace/{trace_id}", `trace links in the live view ("" for none)`)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	fs.Visit(func(f *flag.Flag) { cfg.adminFlag = cfg.adminFlag || f.Name == "admin-token" })
	if cfg.shutdownTimeout <= 0 {
		cfg.shutdownTimeout = cfg.bodyTimeout + 10*time.Second
	}
	if err := serve(cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "example: %v\n", err)
		return 1
	}
	return 0
}

func serve(cfg config, stdout, stderr io.Writer) error {
	policy, err := rotate.ParsePolicy(cfg.sync)
	if err != nil {
		return err
	}
	// The tokens first: a tokens file the service cannot take all of
	// stops it before it creates anything.
	ts, demoToken, err := setupTokens(&cfg)
	if err != nil {
		return err
	}
	keyID, created, err := loadOrCreateKey(cfg.keyFile)
	if err != nil {
		return err
	}
	// The OTLP leg: on when OTEL_EXPORTER_OTLP_ENDPOINT (or _LOGS_ENDPOINT)
	// is set, otherwise nil and file-only. It replays from the audit files
	// whatever the collector has not acknowledged, so it is set up first and
	// shut down after the handler's Close (which writes the close record).
	// A collector outage longer than -otlp-stall-after, and a hint that
	// the files changed after the bridge read them, are audit events
	// (exportHealth), written through the handler once there is one.
	health := &exportHealth{collector: otlpCollector(), stderr: stderr}
	bridge, shutdownOTel, err := otelbridge.Setup(context.Background(), append(health.options(),
		otelbridge.WithDir(cfg.auditDir), otelbridge.WithService("slogaudit-example", version), otelbridge.WithTracing(),
		otelbridge.WithStallThreshold(cfg.otlpStallAfter))...)
	if err != nil {
		return err
	}
	defer func() {
		// A collector that is down gets 10 s (otelbridge's default too);
		// what it has not acknowledged is exported at the next start.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := shutdownOTel(ctx); err != nil {
			fmt.Fprintf(stderr, "OTLP export shutdown: %v (the rest is exported at the next start)\n", err)
		}
	}()
	// The notifier wakes the live view's streams when a record is written.
	notify := query.NewNotifier()
	sinks := []handler.Sink{notify}
	if bridge != nil {
		sinks = append(sinks, bridge)
	}
	// Alert rules: each firing is a security_alert audit event (in the file,
	// the app log, the stream and OTLP) and a call of OnAlert.
	alerts := &handler.AlertOptions{OnAlert: func(a handler.Alert) {
		// The subject may be client text (a resource from a URL): quoted,
		// it can neither forge a line nor reach the terminal as a control.
		fmt.Fprintf(stderr, "SECURITY ALERT (callback) %s %s: %s %q, %d in %s, traces %v, written: %v\n",
			a.Severity, a.Rule, a.By, a.Subject, a.Count, a.Window, a.TraceIDs, a.Err == nil)
	}}
	if cfg.alertsFile != "" {
		if err := handler.ReadAlertConfig(cfg.alertsFile, alerts); err != nil {
			return err
		}
	}
	if err := seedKnownReaders(alerts, cfg.auditDir); err != nil {
		return err
	}
	signer, verifier, err := loadOrCreateSigner(cfg.keyFile)
	if err != nil {
		return err
	}
	ro := rotate.Options{
		MaxBytes:   cfg.rotateBytes,
		Interval:   24 * time.Hour,
		Compress:   true,
		Sync:       policy,
		MaxAge:     cfg.maxAge,
		MaxBackups: cfg.maxBackups,
	}
	selfVerify := handler.SelfVerify{Interval: time.Minute, CheckpointKey: verifier}
	h, err := handler.New(handler.Options{
		Sinks: sinks,
		Dir:   cfg.auditDir,
		// Forward-secure: the key file moves on at every epoch's end, so a
		// key stolen from this host cannot forge earlier records. K(0), in
		// KEYFILE.initial, verifies everything: it belongs off the host.
		KeyFile: cfg.keyFile,
		// Signed checkpoints (every 1,000 records or 10 s, at rotation and
		// shutdown) in the checkpoints file and, with OTLP on, to the
		// collector: the anchor that shows truncation and rollback.
		Checkpoints: chain.CheckpointOptions{Signer: signer},
		SelfVerify:  selfVerify,
		Rotate:      ro,
		// The app log goes to a terminal: escaped as the audit file is
		// (slog leaves bidi and C1 controls raw).
		App: slog.NewJSONHandler(&terminalSafe{w: stderr}, nil),
		OnError: func(err error) {
			// The handler's own logger must not be used here: it is what failed.
			fmt.Fprintf(stderr, "AUDIT FAILURE: %v\n", err)
		},
		// who, from where and how authenticated, on every record logged
		// with a request's ctx
		ContextAttrs: contextAttrs,
		Alerts:       alerts,
	})
	if err != nil {
		return err
	}
	defer h.Close()
	health.h.Store(h)
	log := slog.New(h)
	slog.SetDefault(log)

	// A start that fails once the trail is open is on record too (what an
	// auditor sees otherwise is a file opened and closed, and no why).
	startFailed := func(reason string, err error) error {
		ev := serviceEvent(actionServiceStart)
		ev.Status, ev.Reason, ev.Err = handler.StatusFailed, reason, err
		ev.Attrs = []slog.Attr{slog.String("service.version", version)}
		if lerr := handler.Log(context.Background(), log, ev); lerr != nil {
			return errors.Join(err, fmt.Errorf("recording the failed start: %w", lerr))
		}
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("%w (pick another address with -addr 127.0.0.1:PORT)", err)
		}
		return startFailed("listen", err)
	}
	defer ln.Close() // Serve closes it; not if the service never serves
	// The service holds only its current epoch's key: earlier events are
	// verified by the digests of the signed checkpoints.
	reader, err := query.NewReader(cfg.auditDir, query.Options{EpochKey: h.EpochKey, CheckpointKey: verifier})
	if err != nil {
		return startFailed("setup", err)
	}
	events, err := query.NewHandler(query.HandlerOptions{
		Reader:        reader,
		Authorize:     ts.authorizeAudit,
		AuditLog:      handler.Logger(log),
		OmitPrincipal: true, // middleware.Attrs adds user.id
	})
	if err != nil {
		return startFailed("setup", err)
	}
	ui, err := query.NewUI(query.UIOptions{
		HandlerOptions: query.HandlerOptions{
			Reader:        reader,
			Authorize:     ts.authorizeAudit,
			AuditLog:      handler.Logger(log),
			OmitPrincipal: true,
		},
		Notifier: notify,
		TraceURL: cfg.jaegerURL,
	})
	if err != nil {
		return startFailed("setup", err)
	}
	mux := newApp(log).routes()
	// No method in these patterns, so that a POST or DELETE reaches query,
	// which refuses it on the record; the mux would refuse it unaudited.
	// endpointRoles still says who may do what (methodless).
	mux.Handle("/audit/events", events)
	mux.Handle("/audit/ui", ui.Page())
	mux.Handle("/audit/stream", ui.Stream())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	var flight inFlight // the trail is not closed under a request
	srv := &http.Server{
		// ts.wrap authenticates (the principal for the middleware, how it
		// authenticated for the records) and wraps mux in the middleware.
		Handler: flight.wrap(bodyDeadline(cfg.bodyTimeout, ts.wrap(mux, middleware.Options{
			ActivityLog: handler.Logger(log),
			Skip:        func(r *http.Request) bool { return r.URL.Path == "/healthz" },
			// nil without OTLP: spans get trace ids but are not exported
			TracerProvider: bridge.TracerProvider(),
		}))),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute, // an idle keep-alive connection is closed
		MaxHeaderBytes:    64 << 10,
		// No ReadTimeout or WriteTimeout: the live stream is long-lived.
		// A request body has bodyDeadline's.
	}
	srv.RegisterOnShutdown(ui.Close) // the streams end; Shutdown waits for them

	// The start is on record, with the audit configuration in effect, once
	// everything is set up and before any request is served; the service
	// does not run unaudited.
	start := serviceEvent(actionServiceStart)
	start.Status = handler.StatusSuccess
	start.Attrs = []slog.Attr{
		slog.String("service.version", version),
		slog.String("server.address", ln.Addr().String()),
		auditConfig(cfg, ro, selfVerify, alerts, keyID, bridge != nil, ts),
	}
	if err := handler.Log(context.Background(), log, start); err != nil {
		return fmt.Errorf("recording the service start: %w", err)
	}

	// Before the banner: a signal sent once it is printed must find the
	// handler installed (the tests stop the service right after it).
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigc)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	absDir, _ := filepath.Abs(cfg.auditDir)
	absKey, _ := filepath.Abs(cfg.keyFile)
	base := "http://" + ln.Addr().String()
	keyNote := ""
	if created {
		keyNote = " (created)"
	}
	fmt.Fprintf(stdout, `slogaudit example: AgentHub-like service listening on %s
audit files: %s
key file:    %s%s, key_id %s
OTLP export: %[9]s

%[6]s
try (an operator's token starts and stops servers and reads credentials; storing and
deleting a credential takes the admin token):
  curl -X POST %[1]s/servers/obsidian/start%[7]s
  curl -X POST %[1]s/servers/broken/start%[7]s
  curl -X POST %[1]s/servers/obsidian/stop%[7]s
  curl -X PUT --data 'value-of-the-secret' %[1]s/credentials/obsidian_api_key -H "Authorization: Bearer %[8]s"
  curl %[1]s/credentials%[7]s    # names only: what a viewer may see too
  curl %[1]s/credentials/obsidian_api_key%[7]s
  curl -H 'X-Client-ID: test-user' %[1]s/credentials/obsidian_api_key    # no token: 401, audited as denied
  curl -X DELETE %[1]s/credentials/obsidian_api_key%[7]s    # an operator: 403, audited as denied (DELETE needs admin)
  curl -X DELETE %[1]s/credentials/obsidian_api_key -H "Authorization: Bearer %[8]s"
  curl -H "Authorization: Bearer %[8]s" '%[1]s/audit/events?event=credential_access&status=denied&limit=10'    # the two denials
  curl -H "Authorization: Bearer %[8]s" '%[1]s/audit/events?action=start&resource=obsidian&limit=10'

live view: %[1]s/audit/ui (sign in with the admin token)
  curl -N -H "Authorization: Bearer %[8]s" '%[1]s/audit/stream?backlog=10'
  go run ./cmd/auditctl tail --key-file %[3]s.initial %[2]s

then stop with Ctrl-C and verify the audit trail and its signed checkpoints with K(0):
  go run ./cmd/auditctl verify --key-file %[3]s.initial --checkpoint-key %[3]s.pub %[2]s
`, base, absDir, absKey, keyNote, keyID, tokenNote(cfg, demoToken), tokenFlag(cfg, demoToken), cfg.adminShown, otlpNote(bridge != nil))

	go func() {
		for range hup {
			if err := h.Rotate(); err != nil {
				fmt.Fprintf(stderr, "rotate on SIGHUP: %v\n", err)
			}
		}
	}()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	// The stop is on record before the handler closes: initiated with what
	// stopped the service (a signal, or the server failing), then its
	// outcome once the requests in flight are done (or cut off: see
	// shutdown). Either way they end before the trail closes.
	stopEv := serviceEvent(actionServiceStop)
	var serveErr error
	select {
	case serveErr = <-errc:
		stopEv.Reason = "server_error"
	case sig := <-sigc:
		stopEv.Reason = "signal"
		stopEv.Attrs = []slog.Attr{slog.String("signal", signalName(sig))}
	}
	op := handler.Begin(context.Background(), log, stopEv)
	err = errors.Join(serveErr, shutdown(srv, &flight, cfg.shutdownTimeout, closeGrace))
	op.End(&err)
	if err != nil {
		return err
	}
	if err := h.Close(); err != nil {
		return fmt.Errorf("sealing the audit file: %w", err)
	}
	fmt.Fprintln(stdout, "shut down; audit file sealed")
	return nil
}

// bodyDeadline gives a request that carries a body d to send it: to the
// handler that reads it and to net/http, which reads what a handler left
// unread (up to 256 KiB) before it answers, so that the connection can be
// reused. Without a deadline a client that declares a body and sends none
// holds its connection open for good, answered or not (401s included).
// Requests without a body (the live stream's) keep no read deadline.
func bodyDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(d))
		}
		next.ServeHTTP(w, r)
	})
}

// The example's service lifecycle events: event service_lifecycle, action
// start or stop, resource_type service, resource the service's name.
const (
	eventServiceLifecycle = "service_lifecycle"
	actionServiceStart    = "start"
	actionServiceStop     = "stop"
	serviceName           = "slogaudit-example"
)

func serviceEvent(action string) handler.Event {
	return handler.Event{Type: eventServiceLifecycle, Action: action, ResourceType: "service", Resource: serviceName}
}

// auditConfig is the audit configuration in effect, for the start event:
// what an auditor needs to judge the trail (durability, rotation,
// retention, keys by id, who may authenticate, alerting, export), never a
// secret: no token, no key, not the OTLP endpoint (its URL may hold
// credentials), only whether export is on. A change of any of it between
// two starts (a principal added to the tokens file, retention shortened)
// is on record in the two start events.
func auditConfig(cfg config, ro rotate.Options, sv handler.SelfVerify, alerts *handler.AlertOptions, keyID string, otlp bool, ts *tokens) slog.Attr {
	rules := alerts.Rules
	if rules == nil {
		rules = handler.DefaultAlertRules()
	}
	alertSource := "default"
	if cfg.alertsFile != "" {
		alertSource = "file"
	}
	return slog.Group("audit.config",
		slog.String("sync", ro.Sync.String()),
		slog.Group("rotate",
			slog.Int64("max_bytes", ro.MaxBytes),
			slog.String("interval", ro.Interval.String()),
			slog.Bool("compress", ro.Compress),
			slog.String("low_space_warning", lowSpace(ro.LowSpace)),
		),
		slog.Group("retention",
			slog.String("max_age", keepAll(ro.MaxAge != 0, ro.MaxAge.String())),
			slog.String("max_backups", keepAll(ro.MaxBackups != 0, strconv.Itoa(ro.MaxBackups))),
		),
		slog.Group("authentication",
			slog.String("bearer_source", tokenSource(cfg)),
			slog.String("admin_source", adminSource(cfg)),
			slog.Any("principals", ts.principals()),
		),
		slog.Group("integrity",
			slog.Bool("forward_secure", true),
			slog.String("key_id", keyID),
			slog.Bool("signed_checkpoints", true),
			slog.String("self_verify_interval", sv.Interval.String()),
		),
		slog.Group("alerts",
			slog.Bool("enabled", alerts != nil),
			slog.Int("rules", len(rules)),
			slog.String("source", alertSource),
		),
		slog.Group("otlp", slog.Bool("export", otlp)),
	)
}

// keepAll is v, or "keep all" when the limit is not set.
func keepAll(set bool, v string) string {
	if !set {
		return "keep all"
	}
	return v
}

// tokenSource says where the bearer tokens came from.
func tokenSource(cfg config) string {
	if cfg.tokensFile != "" {
		return "file " + cfg.tokensFile
	}
	return "demo (generated)"
}

// adminSource says where the admin token came from, as the banner does.
func adminSource(cfg config) string {
	switch {
	case cfg.adminShown == cfg.adminToken:
		return "generated"
	case cfg.adminFlag:
		return "flag -admin-token"
	}
	return "environment AUDIT_ADMIN_TOKEN"
}

// lowSpace says below how much free space an audit_capacity record warns
// (rotate.Options.LowSpace).
func lowSpace(n int64) string {
	switch {
	case n == 0:
		return "default (rotate.DefaultLowSpace)"
	case n < 0:
		return "off"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// signalName is the conventional name of a stop signal.
func signalName(sig os.Signal) string {
	switch sig {
	case os.Interrupt:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return sig.String()
}

// seedKnownReaders tells the audit_reader_new rule who read the audit log
// in its window according to the audit trail itself, so that a restart
// does not make every reader new again.
func seedKnownReaders(alerts *handler.AlertOptions, dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil // a first start: no trail yet
	}
	if alerts.Rules == nil {
		alerts.Rules = handler.DefaultAlertRules()
	}
	for i := range alerts.Rules {
		rule := &alerts.Rules[i]
		if rule.ID != "audit_reader_new" || !rule.FirstSeen {
			continue
		}
		r, err := query.NewReader(dir, query.Options{})
		if err != nil {
			return err
		}
		req := query.Request{Filter: query.Filter{Event: handler.AuditAccess, Status: string(handler.StatusSuccess), Since: time.Now().Add(-rule.Window)}, Limit: query.MaxLimit}
		seen := map[string]bool{}
		for range 20 { // pages; enough for the example
			page, err := r.Query(context.Background(), req)
			if err != nil {
				return err
			}
			for _, e := range page.Events {
				if e.Principal != "" && !seen[e.Principal] {
					seen[e.Principal] = true
					rule.Known = append(rule.Known, e.Principal)
				}
			}
			if page.NextCursor == "" {
				break
			}
			req.Cursor = page.NextCursor
		}
	}
	return nil
}

// loadOrCreateSigner reads the checkpoint signer KEYFILE.signer, creating
// it (0600) and its verifier key KEYFILE.pub if they do not exist.
func loadOrCreateSigner(keyFile string) (note.Signer, note.Verifier, error) {
	spath, vpath := keyFile+".signer", keyFile+".pub"
	if _, err := os.Stat(spath); errors.Is(err, os.ErrNotExist) {
		host, _ := os.Hostname()
		skey, vkey, err := chain.GenerateSigner("slogaudit-example-" + host)
		if err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(vpath, []byte(vkey+"\n"), 0o644); err != nil {
			return nil, nil, err
		}
		f, err := os.OpenFile(spath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, nil, err
		}
		_, err = f.WriteString(skey + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, nil, err
		}
	}
	signer, err := chain.ReadSignerFile(spath)
	if err != nil {
		return nil, nil, err
	}
	verifier, err := chain.ReadVerifierFile(vpath)
	if err != nil {
		return nil, nil, err
	}
	return signer, verifier, nil
}

// loadOrCreateKey reads the key file (the key of the current epoch) or
// creates it (0600, and its directory 0700 if missing) with a new initial
// key K(0), which it also writes to path.initial: in production K(0) goes
// offline at once (auditctl keygen says so); the example keeps it next to
// the key so that its verify command works. It returns the key_id.
func loadOrCreateKey(path string) (keyID string, created bool, err error) {
	ks, err := chain.ReadKeyState(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return ks.ID, false, err
	}
	// Its directory too, private (e.g. /data/keys on a new, empty volume).
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	key := chain.GenerateKey()
	if err := chain.WriteKeyFile(path+".initial", key); err != nil {
		return "", false, err
	}
	if err := chain.WriteKeyFile(path, key); err != nil {
		return "", false, err
	}
	return chain.KeyID(key), true, nil
}

// setupTokens loads the bearer tokens (or makes a demo one) and the admin
// token; it returns the demo token, "" when -tokens was given.
func setupTokens(cfg *config) (ts *tokens, demo string, err error) {
	if cfg.tokensFile != "" {
		if ts, err = loadTokens(cfg.tokensFile); err != nil {
			return nil, "", err
		}
	} else {
		ts = &tokens{}
		demo = randomToken("demo-")
		ts.add(demo, demoPrincipal, roleOperator, "the demo token")
	}
	// A given token is not printed: the banner's curl lines name it.
	switch {
	case cfg.adminToken == "":
		cfg.adminToken = randomToken("admin-")
		cfg.adminShown = cfg.adminToken
	case cfg.adminFlag:
		cfg.adminShown = "<admin token>"
	default:
		cfg.adminShown = "$AUDIT_ADMIN_TOKEN" // in the environment, as the shell's may be
	}
	if err := ts.add(cfg.adminToken, adminPrincipal, roleAdmin, "the admin token"); err != nil {
		return nil, "", err
	}
	return ts, demo, nil
}

// tokenNote names the tokens and their roles for the banner: the ones
// generated here, and where the others come from.
func tokenNote(cfg config, demo string) string {
	note := "admin token (principal " + adminPrincipal + ", role admin: everything, also the audit log): "
	switch {
	case cfg.adminShown == cfg.adminToken:
		note += cfg.adminToken // generated here
	case cfg.adminFlag:
		note += "given with -admin-token (not printed)"
	default:
		note += "given in $AUDIT_ADMIN_TOKEN (not printed)"
	}
	if demo != "" {
		note += "\ndemo token (principal " + demoPrincipal + ", role operator): " + demo
	} else {
		note += "\nbearer tokens: " + cfg.tokensFile + " (role " + defaultRole.String() + " where a line names none)"
	}
	return note
}

// tokenFlag is the curl option that sends a bearer token: the demo token,
// or a placeholder for one from -tokens (which is not printed).
func tokenFlag(cfg config, demo string) string {
	if demo == "" {
		return " -H 'Authorization: Bearer <a token from " + cfg.tokensFile + ">'"
	}
	return " -H 'Authorization: Bearer " + demo + "'"
}

func otlpNote(on bool) string {
	if on {
		return "on (" + printableEndpoint(firstNonEmpty(os.Getenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"), os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"))) + ")"
	}
	return "off (file only; set OTEL_EXPORTER_OTLP_ENDPOINT to export)"
}

// printableEndpoint is an endpoint URL without what may be a credential:
// the password of its userinfo and its query.
func printableEndpoint(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "set (not printed: it does not parse as a URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = "…"
	}
	return u.Redacted()
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// terminalSafe writes JSON text, one or more values per Write (slog's JSON
// handler writes a line a record), with the characters that would act on a
// terminal, reorder a line or hide text (C1 and bidirectional controls,
// zero-width and other invisible format characters) as \u escapes, as the
// audit file has them (FORMAT.md §2): a request's path or user agent must
// not do that to the operator who reads the app log.
type terminalSafe struct {
	w   io.Writer
	mu  sync.Mutex
	buf []byte
}

func (t *terminalSafe) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = jsonenc.JSON(t.buf[:0], p)
	if _, err := t.w.Write(t.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
