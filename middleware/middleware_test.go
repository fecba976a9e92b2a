package middleware_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/middleware"
	"github.com/slogaudit/slogaudit/redact"
	"github.com/slogaudit/slogaudit/rotate"
)

type env struct {
	dir  string
	h    *handler.Handler
	log  *slog.Logger
	srv  *httptest.Server
	mux  *http.ServeMux
	opts middleware.Options
}

// newEnv serves mux behind the middleware on a real loopback listener,
// with an audit handler that adds the audit context to every record.
func newEnv(t *testing.T, opts middleware.Options) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), mux: http.NewServeMux()}
	h, err := handler.New(handler.Options{Dir: e.dir, App: slog.DiscardHandler, ContextAttrs: middleware.Attrs})
	if err != nil {
		t.Fatal(err)
	}
	e.h, e.log = h, slog.New(h)
	if opts.ActivityLog == nil {
		opts.ActivityLog = handler.Logger(e.log)
	}
	if opts.Authenticate == nil {
		opts.Authenticate = func(r *http.Request) string {
			if r.Header.Get("Authorization") == "Bearer good-token" {
				return "alice"
			}
			return ""
		}
	}
	e.opts = opts
	e.srv = httptest.NewUnstartedServer(middleware.Wrap(e.mux, opts))
	e.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the panic test's stack trace
	e.srv.Start()
	t.Cleanup(func() { e.srv.Close(); h.Close() })
	return e
}

func (e *env) records(t *testing.T) []map[string]any {
	t.Helper()
	paths, _ := rotate.List(e.dir, chain.DefaultPrefix, chain.DefaultExt)
	var out []map[string]any
	for _, p := range paths {
		data, _ := os.ReadFile(p)
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			m := map[string]any{}
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			if m["rec"] == nil {
				out = append(out, m)
			}
		}
	}
	return out
}

func get(t *testing.T, url string, hdr map[string]string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestWhoWhereAndCorrelation(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	e.mux.HandleFunc("GET /servers/{name}", func(w http.ResponseWriter, r *http.Request) {
		e.log.InfoContext(r.Context(), "looked at server", handler.Audit, "server", r.PathValue("name"))
		w.Write([]byte("ok"))
	})
	resp := get(t, e.srv.URL+"/servers/obsidian", map[string]string{
		"X-Client-ID":     "test-user",
		"Authorization":   "Bearer good-token",
		"X-Forwarded-For": "203.0.113.9",
		"X-Request-ID":    "req-42",
		"User-Agent":      "curl/8",
	})
	tp := resp.Header.Get("Traceparent")
	reqID := resp.Header.Get("X-Request-ID")
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != reqID || len(reqID) != 32 {
		t.Fatalf("traceparent %q, X-Request-ID %q", tp, reqID)
	}
	rs := e.records(t)
	if len(rs) != 2 {
		t.Fatalf("records: %v", rs)
	}
	for _, r := range rs {
		for k, want := range map[string]any{
			"client.address":                      "127.0.0.1",
			"client.claimed_id":                   "test-user",
			"user.id":                             "alice",
			"trace_id":                            reqID,
			"user_agent.original":                 "curl/8",
			"http.request.header.x-forwarded-for": "203.0.113.9",
			"http.request.header.x-request-id":    "req-42",
		} {
			if r[k] != want {
				t.Errorf("%s = %v, want %v in %v", k, r[k], want, r)
			}
		}
	}
	act := rs[1]
	if act["event"] != "http_request" || act["http.route"] != "GET /servers/{name}" || act["http.response.status_code"] != 200.0 ||
		act["status"] != "success" || act["http.response.body.size"] != 2.0 {
		t.Errorf("activity record %v", act)
	}
}

func TestNoPrincipalWithoutValidToken(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	get(t, e.srv.URL+"/x", map[string]string{"Authorization": "Bearer bad", "X-Client-ID": "admin"})
	r := e.records(t)[0]
	if _, ok := r["user.id"]; ok || r["client.claimed_id"] != "admin" || r["status"] != "denied" {
		t.Errorf("record %v", r)
	}
}

func TestTrustedProxies(t *testing.T) {
	for _, tt := range []struct {
		name, xff, fwd, want string
		proxies              []string
		header               string // Options.ForwardedHeader
	}{
		{"untrusted peer", "203.0.113.9", "", "127.0.0.1", nil, ""},
		{"trusted peer", "203.0.113.9", "", "203.0.113.9", []string{"127.0.0.0/8"}, ""},
		{"spoofed left of a trusted chain", "6.6.6.6, 203.0.113.9, 10.1.2.3", "", "203.0.113.9", []string{"127.0.0.0/8", "10.0.0.0/8"}, ""},
		{"Forwarded header", "", `for=192.0.2.60;proto=http, for="[2001:db8::1]:4711"`, "2001:db8::1", []string{"127.0.0.0/8"}, "Forwarded"},
		{"Forwarded header, X-Forwarded-For configured", "", `for=192.0.2.60`, "127.0.0.1", []string{"127.0.0.0/8"}, ""},
		{"garbage from a trusted peer", "not-an-ip", "", "127.0.0.1", []string{"127.0.0.0/8"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var ps []netip.Prefix
			for _, p := range tt.proxies {
				ps = append(ps, netip.MustParsePrefix(p))
			}
			e := newEnv(t, middleware.Options{TrustedProxies: ps, ForwardedHeader: tt.header})
			e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
			hdr := map[string]string{}
			if tt.xff != "" {
				hdr["X-Forwarded-For"] = tt.xff
			}
			if tt.fwd != "" {
				hdr["Forwarded"] = tt.fwd
			}
			get(t, e.srv.URL+"/x", hdr)
			if got := e.records(t)[0]["client.address"]; got != tt.want {
				t.Errorf("client.address = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestIncomingTraceparent(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	resp := get(t, e.srv.URL+"/x", map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"})
	if resp.Header.Get("X-Request-ID") != traceID || !strings.HasPrefix(resp.Header.Get("Traceparent"), "00-"+traceID+"-") {
		t.Errorf("response headers %v", resp.Header)
	}
	if r := e.records(t)[0]; r["trace_id"] != traceID || r["span_id"] == "00f067aa0ba902b7" {
		t.Errorf("record %v (the server span is a child of the incoming one)", r)
	}
}

// A traceparent from a peer that is not trusted (not loopback, not a
// trusted proxy) is not continued: the request gets its own trace, and the
// claim is recorded as one.
func TestUntrustedTraceparent(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	const claim = "00-" + traceID + "-00f067aa0ba902b7-01"
	for _, tt := range []struct {
		name   string
		opts   middleware.Options
		remote string
		trust  bool
	}{
		{"default, remote peer", middleware.Options{}, "192.0.2.7:4000", false},
		{"default, loopback peer", middleware.Options{}, "127.0.0.1:4000", true},
		{"default, trusted proxy", middleware.Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, "192.0.2.7:4000", true},
		{"TrustTraceparent false", middleware.Options{TrustTraceparent: func(*http.Request) bool { return false }}, "127.0.0.1:4000", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts)
			e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
			req := httptest.NewRequest("GET", "/x", nil)
			req.RemoteAddr = tt.remote
			req.Header.Set("traceparent", claim)
			rec := httptest.NewRecorder()
			e.srv.Config.Handler.ServeHTTP(rec, req)
			r := e.records(t)[0]
			if got := r["trace_id"] == traceID; got != tt.trust {
				t.Errorf("trace_id %v: continued %v, want %v", r["trace_id"], got, tt.trust)
			}
			if got := rec.Header().Get("X-Request-ID"); got != r["trace_id"] {
				t.Errorf("X-Request-ID %q, record's trace_id %v", got, r["trace_id"])
			}
			if tt.trust && r[middleware.ClaimedTraceKey] != nil || !tt.trust && r[middleware.ClaimedTraceKey] != claim {
				t.Errorf("claimed traceparent %v", r[middleware.ClaimedTraceKey])
			}
		})
	}
}

// Records of concurrent requests separate cleanly by trace id.
func TestConcurrentRequestsSeparate(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	e.mux.HandleFunc("GET /work/{n}", func(w http.ResponseWriter, r *http.Request) {
		n := r.PathValue("n")
		e.log.InfoContext(r.Context(), "step 1", handler.Audit, "n", n)
		e.log.InfoContext(r.Context(), "step 2", handler.Audit, "n", n)
	})
	const n = 50
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = get(t, fmt.Sprintf("%s/work/%d", e.srv.URL, i), map[string]string{"X-Client-ID": fmt.Sprint(i)}).Header.Get("X-Request-ID")
		}()
	}
	wg.Wait()
	byTrace := map[string][]map[string]any{}
	for _, r := range e.records(t) {
		byTrace[r["trace_id"].(string)] = append(byTrace[r["trace_id"].(string)], r)
	}
	for i, id := range ids {
		rs := byTrace[id]
		if len(rs) != 3 {
			t.Fatalf("request %d: %d records", i, len(rs))
		}
		for _, r := range rs {
			if r["client.claimed_id"] != fmt.Sprint(i) || (r["n"] != nil && r["n"] != fmt.Sprint(i)) {
				t.Errorf("request %d got record %v", i, r)
			}
		}
	}
}

// Work started from the request keeps its correlation: goroutines given the
// ctx, background work detached with context.WithoutCancel, and code that
// logs without a ctx through middleware.Logger.
func TestContextPropagation(t *testing.T) {
	e := newEnv(t, middleware.Options{})
	slog.SetDefault(e.log)
	defer slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	done := make(chan struct{})
	e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.log.InfoContext(ctx, "in goroutine", handler.Audit)
		}()
		wg.Wait()
		bg := context.WithoutCancel(ctx)
		go func() {
			defer close(done)
			e.log.InfoContext(bg, "after the response", handler.Audit)
		}()
		middleware.Logger(ctx).Info("no ctx, bound logger", handler.Audit)
		handler.Logger(middleware.Logger(ctx)).Info("bound audit logger")
		slog.Info("no ctx, no binding", handler.Audit)
	})
	id := get(t, e.srv.URL+"/x", map[string]string{"Authorization": "Bearer good-token"}).Header.Get("X-Request-ID")
	<-done
	for _, r := range e.records(t) {
		correlated := r["trace_id"] == id && r["user.id"] == "alice"
		if want := r["msg"] != "no ctx, no binding"; correlated != want {
			t.Errorf("correlated=%v for %v", correlated, r)
		}
	}
}

func TestActivityLogSkipAndPanic(t *testing.T) {
	e := newEnv(t, middleware.Options{Skip: func(r *http.Request) bool { return r.URL.Path == "/healthz" }})
	e.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	e.mux.HandleFunc("POST /boom", func(w http.ResponseWriter, r *http.Request) { panic("kaboom") })
	get(t, e.srv.URL+"/healthz", nil)
	req, _ := http.NewRequest("POST", e.srv.URL+"/boom", nil) // POST: the client does not retry it
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Log("server answered despite the panic") // net/http may reset the connection
	}
	rs := e.records(t)
	if len(rs) != 1 {
		t.Fatalf("records %v", rs)
	}
	if r := rs[0]; r["status"] != "failed" || r["http.response.status_code"] != 500.0 || r["error"] != "panic" || r["panic"] != "kaboom" {
		t.Errorf("panic record %v", r)
	}

	// Re-raised: the panic propagates to the caller of ServeHTTP.
	h := middleware.Wrap(e.mux, e.opts)
	func() {
		defer func() {
			if recover() == nil {
				t.Error("panic was swallowed")
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/boom", nil))
	}()
}

func TestSessionCookieDigest(t *testing.T) {
	e := newEnv(t, middleware.Options{SessionCookie: "sid"})
	e.mux.HandleFunc("GET /x", func(w http.ResponseWriter, r *http.Request) {})
	const cookie = "c00kie-value-that-is-a-credential"
	get(t, e.srv.URL+"/x", map[string]string{"Cookie": "sid=" + cookie})
	r := e.records(t)[0]
	h, _ := r["session.hash"].(string)
	if !strings.HasPrefix(h, "sha256:") || len(h) != len("sha256:")+16 {
		t.Errorf("session.hash = %q", h)
	}
	data, _ := json.Marshal(e.records(t))
	if strings.Contains(string(data), cookie) {
		t.Error("session cookie value in the audit trail")
	}
}

// A handler behind Wrap reaches the server's own ResponseWriter through
// http.ResponseController, past otelhttp's: write deadlines and flushes work,
// with and without the activity log.
func TestResponseControllerReachesTheServer(t *testing.T) {
	for _, activity := range []bool{true, false} {
		var opts middleware.Options
		if activity {
			opts.ActivityLog = slog.New(slog.DiscardHandler)
		}
		errs := make(chan error, 2)
		h := middleware.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			errs <- rc.SetWriteDeadline(time.Now().Add(time.Second))
			w.Write([]byte("x"))
			errs <- rc.Flush()
		}), opts)
		srv := httptest.NewServer(h)
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		srv.Close()
		for range 2 {
			if err := <-errs; err != nil {
				t.Errorf("activity log %v: %v", activity, err)
			}
		}
	}
}

type dbConfig struct {
	User     string
	Password string
}

// A panic value is logged as the value, not as its %v text, so the redactor
// reads its fields and a secret one goes.
func TestPanicValueRedacted(t *testing.T) {
	const pw = "Tr0ub4dor&3-horse"
	out := serveAndCollect(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(&dbConfig{User: "app", Password: pw})
	}), httptest.NewRequest("GET", "/x", nil))
	if strings.Contains(out, pw) || !strings.Contains(out, `"panic":{"User":"app","Password":"[REDACTED]"}`) {
		t.Errorf("logged:\n%s", out)
	}
}

// serveAndCollect serves req through Wrap with a real handler (audit file
// and app log) and returns everything they wrote. A panic is recovered.
func serveAndCollect(t *testing.T, next http.Handler, req *http.Request) string {
	t.Helper()
	dir := t.TempDir()
	app := new(bytes.Buffer)
	h, err := handler.New(handler.Options{Dir: dir, App: slog.NewJSONHandler(app, nil), ContextAttrs: middleware.Attrs})
	if err != nil {
		t.Fatal(err)
	}
	srv := middleware.Wrap(next, middleware.Options{ActivityLog: handler.Logger(slog.New(h))})
	func() {
		defer func() { recover() }()
		srv.ServeHTTP(httptest.NewRecorder(), req)
	}()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	return auditAndApp(dir, app)
}

// auditAndApp is everything written: the audit files in dir and the app log.
func auditAndApp(dir string, app *bytes.Buffer) string {
	var all strings.Builder
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		all.Write(b)
	}
	all.WriteString(app.String())
	return all.String()
}

// Long claims are cut at a separator, never inside a value: a URL password
// whose '@' falls past the limit, or a token cut short, would no longer be
// recognised by the redactor.
func TestLongValuesCutAtSeparators(t *testing.T) {
	const pw = "s3cr3t-P4ssw0rd"
	const tok = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	pad := strings.Repeat("a", 1024-len("p=&next=https://alice:")-len(pw))
	req := httptest.NewRequest("GET", "/x?p="+pad+"&next=https://alice:"+pw+"@example.com/home", nil)
	ua := "probe/1 " + strings.Repeat("x", 230) + " " + tok // the limit (256) falls inside tok
	req.Header.Set("User-Agent", ua)
	out := serveAndCollect(t, http.NotFoundHandler(), req)
	if strings.Contains(out, pw) || strings.Contains(out, tok[:12]) {
		t.Errorf("a value cut short was logged:\n%s", out)
	}
	if !strings.Contains(out, `"url.query":"p=`+pad+`…"`) || !strings.Contains(out, `"user_agent.original":"probe/1 `+strings.Repeat("x", 230)+`…"`) {
		t.Errorf("the whole items before the cut should stay:\n%s", out)
	}
}

// Secret query parameters named in form style or percent-encoded are
// redacted in url.query like plain ones: the program reads them decoded.
// Parameters that name a secret keep their values.
func TestQueryKeyFormsRedacted(t *testing.T) {
	for _, q := range []string{
		"user[password]=Pw-SECRET-1a2b3c", "user%5Bpassword%5D=Pw-SECRET-4d5e6f", "page=2&api%5Fkey=Key-SECRET-7a8b9c",
		"pass=QPASS16-SECRET-x&pass_count=KEPT1", "pw=QPW17-SECRET-x&pw_policy=KEPT2", "pass%77ord=Pw-SECRET-8c9d0e&bypass=KEPT3",
		"access%5Ftoken=Tok-SECRET-1f2a3b&access%5Ftoken%5Ftype=KEPT4", "API%2DKEY=Key-SECRET-4c5d6e&api%2dkey%2did=KEPT5",
		"api+key=Key-SECRET-7f8a9b&api+key+id=KEPT6",
		// the server reads one value up to the next &: a comma, quote,
		// semicolon or bracket in it does not end it (review)
		"password=abc,Pw-SECRET-9a8b7c", "token=abc'Tok-SECRET-6d5e4f", "api_key=abc;Key-SECRET-3a2b1c&x=KEPT7",
		"token=a\"Tok-SECRET-0f9e8d", "token=a<Tok-SECRET-7c6b5a>", "token=a`Tok-SECRET-4f3e2d",
	} {
		out := serveAndCollect(t, http.NotFoundHandler(), httptest.NewRequest("GET", "/x?"+q, nil))
		if i := strings.Index(out, "-SECRET-"); i >= 0 {
			t.Errorf("%s: leaked: ...%s", q, out[max(0, i-40):i+20])
		}
		if k := strings.Index(q, "KEPT"); k >= 0 && strings.Count(out, q[k:]) < 2 {
			t.Errorf("%s: %s not in both the audit file and the app log:\n%s", q, q[k:], out)
		}
	}
}

// The server span carries no secret from the request: a token in the path
// or in the user agent is redacted in its attributes, and the span is named
// after the route, not the path. Its client.address is the record's (here
// the peer: an untrusted peer's X-Forwarded-For is a claim).
func TestSpanRedacted(t *testing.T) {
	const tok = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hooks/{id}", func(w http.ResponseWriter, r *http.Request) {})
	srv := middleware.Wrap(mux, middleware.Options{TracerProvider: tp})
	req := httptest.NewRequest("GET", "/hooks/"+tok, nil)
	req.Header.Set("User-Agent", "deploy-bot/2 Bearer "+tok)
	req.Header.Set("X-Forwarded-For", "token="+tok+", 10.0.0.1")
	srv.ServeHTTP(httptest.NewRecorder(), req)
	req = httptest.NewRequest("GET", "/nowhere", nil)
	srv.ServeHTTP(httptest.NewRecorder(), req)
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	attrs := map[string]string{}
	for _, a := range spans[0].Attributes {
		attrs[string(a.Key)] = a.Value.String()
	}
	if spans[0].Name != "GET /hooks/{id}" || attrs["url.path"] != "/hooks/"+redact.Redacted ||
		attrs["user_agent.original"] != "deploy-bot/2 Bearer "+redact.Redacted || attrs["client.address"] != "192.0.2.1" {
		t.Errorf("span %q %v", spans[0].Name, attrs)
	}
	if spans[1].Name != "GET" {
		t.Errorf("unmatched request's span is named %q", spans[1].Name)
	}
	for _, s := range spans {
		for _, a := range s.Attributes {
			if strings.Contains(a.Value.String(), tok) {
				t.Errorf("span %q: %s=%s", s.Name, a.Key, a.Value.String())
			}
		}
	}
}

// The path is cut like the other claims: a request can not make its
// activity record arbitrarily long.
func TestLongPathCut(t *testing.T) {
	seg := strings.Repeat("p", 100)
	path := strings.Repeat("/"+seg, 50) // 5,050 bytes
	out := serveAndCollect(t, http.NotFoundHandler(), httptest.NewRequest("GET", path, nil))
	want := `"url.path":"` + strings.Repeat("/"+seg, 10) + `…"`
	if !strings.Contains(out, want) || strings.Contains(out, strings.Repeat("/"+seg, 11)) {
		t.Errorf("url.path not cut at 1024 at a '/':\n%.2000s", out)
	}
}

// The span's client.address is the one the records carry, not otelhttp's
// (the first X-Forwarded-For entry, whoever sent it): for an untrusted
// peer the peer, through a trusted proxy the hop it forwards for, also
// from a Forwarded header.
func TestSpanClientAddressIsTheRecords(t *testing.T) {
	proxy := netip.MustParsePrefix("10.0.0.0/8")
	for _, tc := range []struct {
		name, peer, header, value, want string
		opts                            middleware.Options
	}{
		{"untrusted XFF", "192.0.2.1:1234", "X-Forwarded-For", "198.51.100.7", "192.0.2.1", middleware.Options{}},
		{"trusted XFF, spoofed left hop", "10.0.0.1:1234", "X-Forwarded-For", "198.51.100.7, 203.0.113.9", "203.0.113.9", middleware.Options{TrustedProxies: []netip.Prefix{proxy}}},
		{"trusted Forwarded", "10.0.0.1:1234", "Forwarded", "for=203.0.113.9", "203.0.113.9", middleware.Options{TrustedProxies: []netip.Prefix{proxy}, ForwardedHeader: "Forwarded"}},
		{"no header", "192.0.2.1:1234", "", "", "192.0.2.1", middleware.Options{}},
		// A Unix socket's peer has no address: none, not the client's own.
		{"unix socket, XFF", "@", "X-Forwarded-For", "6.6.6.6", "", middleware.Options{}},
		{"no peer address, XFF", "", "X-Forwarded-For", "6.6.6.6", "", middleware.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			exp := tracetest.NewInMemoryExporter()
			tc.opts.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			var recorded string
			srv := middleware.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i, _ := middleware.FromContext(r.Context())
				recorded = i.ClientAddress
			}), tc.opts)
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = tc.peer
			if tc.header != "" {
				req.Header.Set(tc.header, tc.value)
			}
			srv.ServeHTTP(httptest.NewRecorder(), req)
			spans := exp.GetSpans()
			if len(spans) != 1 {
				t.Fatalf("%d spans", len(spans))
			}
			got := ""
			for _, a := range spans[0].Attributes {
				if a.Key == "client.address" {
					got = a.Value.String()
				}
			}
			if got != tc.want || recorded != tc.want {
				t.Errorf("span client.address %q, record %q, want %q", got, recorded, tc.want)
			}
		})
	}
}

// A space in the query, which Go's HTTP/2 server passes into RawQuery as
// it is, does not end a secret parameter's value in url.query (review: the
// rest of the password was logged).
func TestQuerySpaceOverHTTP2(t *testing.T) {
	dir := t.TempDir()
	app := new(bytes.Buffer)
	h, err := handler.New(handler.Options{Dir: dir, App: slog.NewJSONHandler(app, nil), ContextAttrs: middleware.Attrs})
	if err != nil {
		t.Fatal(err)
	}
	var raw string
	srv := httptest.NewUnstartedServer(middleware.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw = r.URL.RawQuery
	}), middleware.Options{ActivityLog: handler.Logger(slog.New(h))}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	req, _ := http.NewRequest("GET", srv.URL+"/login", nil)
	req.URL.RawQuery = "password=abc Pw-SECRET-1a2b"
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	srv.Close()
	h.Close()
	if resp.ProtoMajor != 2 || raw != "password=abc Pw-SECRET-1a2b" {
		t.Fatalf("%s, the server read %q: not the case under test", resp.Proto, raw)
	}
	all := auditAndApp(dir, app)
	if i := strings.Index(all, "Pw-SECRET"); i >= 0 {
		t.Errorf("leaked: ...%s", all[max(0, i-40):i+20])
	}
}
