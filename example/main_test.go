package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// The test binary doubles as the example: with this variable set it runs
// main's run with the arguments it holds (separated by a newline).
const argsEnv = "SLOGAUDIT_EXAMPLE_ARGS"

func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv(argsEnv); ok {
		os.Exit(run(strings.Split(args, "\n"), os.Stdout, os.Stderr))
	}
	// The example processes the tests start inherit this environment: a
	// developer's OTEL_* must not switch export on for them (tests that
	// want it pass it to startEnv).
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			os.Unsetenv(k)
		}
	}
	os.Exit(m.Run())
}

type proc struct {
	cmd            *exec.Cmd
	base           string
	token          string // the demo token it printed (role operator), sent by do; "" with -tokens
	admin          string // the admin token: the one it printed, or -admin-token's
	stdout, stderr *syncBuffer
	done           chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	listening  = regexp.MustCompile(`listening on (http://\S+)`)
	demoToken  = regexp.MustCompile(`demo token \(principal demo-user, role operator\): (\S+)`)
	adminToken = regexp.MustCompile(`admin token \(principal admin, role admin[^)]*\): (admin-\S+)`)
)

// start runs the example as a child process and waits until it listens.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with variables added to the child's environment.
func startEnv(t *testing.T, env map[string]string, args ...string) *proc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: exec.Command(exe), stdout: new(syncBuffer), stderr: new(syncBuffer), done: make(chan error, 1)}
	for i, arg := range args {
		if arg == "-admin-token" && i+1 < len(args) {
			p.admin = args[i+1]
		}
	}
	p.cmd.Env = append(os.Environ(), argsEnv+"="+strings.Join(append([]string{"-addr", "127.0.0.1:0"}, args...), "\n"))
	for k, v := range env {
		p.cmd.Env = append(p.cmd.Env, k+"="+v)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() { p.cmd.Process.Kill() })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := listening.FindStringSubmatch(p.stdout.String()); m != nil {
			p.base = m[1]
			// The banner is one write: the demo token is in it, if any,
			// and the admin token if generated.
			if m := demoToken.FindStringSubmatch(p.stdout.String()); m != nil {
				p.token = m[1]
			}
			if m := adminToken.FindStringSubmatch(p.stdout.String()); m != nil {
				p.admin = m[1]
			}
			return p
		}
		select {
		case err := <-p.done:
			t.Fatalf("example exited: %v\n%s\n%s", err, p.stdout, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("example did not start listening:\n%s\n%s", p.stdout, p.stderr)
	return nil
}

func (p *proc) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	return p.doAs(t, p.token, method, path, body)
}

// doAs is do with the bearer token token, none if "".
func (p *proc) doAs(t *testing.T, token, method, path, body string) (int, string) {
	t.Helper()
	code, text, _ := call(t, p, method, path, token, body)
	return code, text
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("example exited with %v\n%s", err, p.stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("example did not stop on SIGTERM")
	}
}

const secret = "s3cr3t-VALUE-that-must-never-be-logged"

// session sends the requests a user would try and checks the answers:
// the demo token (an operator) runs servers and reads credentials, the
// admin token stores and deletes them, and the operator's DELETE is
// refused.
func session(t *testing.T, p *proc) {
	t.Helper()
	const anonymous, operator, admin = "", "operator", "admin"
	for _, c := range []struct {
		method, path, body string
		code               int
		as                 string
	}{
		{"GET", "/credentials/obsidian_api_key", "", 401, anonymous},
		{"POST", "/servers/obsidian/start", "", 200, operator},
		{"POST", "/servers/broken/start", "", 500, operator},
		{"POST", "/servers/obsidian/restart", "", 404, operator},
		{"POST", "/servers/obsidian/stop", "", 200, operator},
		{"POST", "/servers/obsidian/stop", "", 500, operator},
		{"PUT", "/credentials/obsidian_api_key", secret, 200, admin},
		{"GET", "/credentials/obsidian_api_key", "", 200, operator},
		{"GET", "/credentials/no_such_key", "", 404, operator},
		{"DELETE", "/credentials/obsidian_api_key", "", 403, operator},
		{"DELETE", "/credentials/obsidian_api_key", "", 200, admin},
		{"DELETE", "/credentials/obsidian_api_key", "", 404, admin},
	} {
		token := map[string]string{anonymous: "", operator: p.token, admin: p.admin}[c.as]
		code, body := p.doAs(t, token, c.method, c.path, c.body)
		if code != c.code {
			t.Errorf("%s %s as %s: %d %s, want %d", c.method, c.path, c.as, code, body, c.code)
		}
		if c.method == "GET" && code == 200 && body != secret {
			t.Errorf("GET credential returned %q", body)
		}
	}
}

// readPlain returns a file's content, decompressed if it is gzip'd.
func readPlain(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

// auditText returns the decompressed content of every audit file.
func auditText(t *testing.T, dir string) string {
	t.Helper()
	paths, err := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for _, path := range paths {
		all.Write(readPlain(t, path))
	}
	return all.String()
}

// dirText returns the content of every file in dir, audit files or not:
// what a search for a leak must cover.
func dirText(t *testing.T, dir string) string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var all strings.Builder
	for _, e := range entries {
		all.Write(readPlain(t, filepath.Join(dir, e.Name())))
	}
	return all.String()
}

func events(t *testing.T, dir string) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(auditText(t, dir)))
	for sc.Scan() {
		m := map[string]any{}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("audit line is not JSON: %s", sc.Bytes())
		}
		if m["rec"] == nil {
			out = append(out, m)
		}
	}
	return out
}

func verifyDir(t *testing.T, dir string, key []byte) *chain.Report {
	t.Helper()
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestExampleEndToEnd(t *testing.T) {
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "audit.key")
	p := start(t, "-audit-dir", dir, "-key-file", keyFile)
	if !strings.Contains(p.stdout.String(), "curl -X POST "+p.base+"/servers/obsidian/start") {
		t.Errorf("no curl lines printed:\n%s", p.stdout)
	}
	session(t, p)
	p.stop(t)

	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	key, err := chain.ReadKeyFile(keyFile + ".initial")
	if err != nil {
		t.Fatal(err)
	}
	rep := verifyDir(t, dir, key)
	if !rep.Intact || len(rep.Problems()) != 0 || !rep.Files[len(rep.Files)-1].Closed {
		t.Fatalf("after SIGTERM: %+v", rep)
	}
	// The checkpoints are signed by the key next to the key file and anchor
	// the chain to its last line, the close record.
	verifier, err := chain.ReadVerifierFile(keyFile + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(keyFile + ".signer"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signer file: %v %v", fi, err)
	}
	rep, err = chain.Verify(dir, chain.VerifyOptions{Key: key, CheckpointKey: verifier})
	if err != nil || !rep.Intact || !rep.NotesSigned || rep.Notes == 0 || rep.AnchoredSeq != rep.LastSeq {
		t.Fatalf("checkpoints after SIGTERM: %v %+v", err, rep)
	}

	evs := events(t, dir)
	var got []string
	activity := 0
	for _, e := range evs {
		switch e["event"] {
		case nil:
		case "http_request":
			activity++
		default:
			got = append(got, e["action"].(string)+" "+e["resource"].(string)+" "+e["status"].(string))
		}
	}
	if activity != 12 {
		t.Errorf("%d activity records for 12 requests", activity)
	}
	want := []string{
		"start slogaudit-example success",
		"get obsidian_api_key denied",
		"start obsidian initiated", "start obsidian success",
		"start broken initiated", "start broken failed",
		"restart obsidian failed",
		"stop obsidian initiated", "stop obsidian success",
		"stop obsidian initiated", "stop obsidian failed",
		"create obsidian_api_key success",
		"get obsidian_api_key success",
		"get no_such_key failed",
		"delete obsidian_api_key denied",
		"delete obsidian_api_key success",
		"delete obsidian_api_key failed",
		"stop slogaudit-example initiated", "stop slogaudit-example success",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, e := range evs {
		if e["resource"] == "no_such_key" && (e["reason"] != "not_found" || e["msg"] != "credential not found") {
			t.Errorf("not_found event: %v", e)
		}
		if e["resource"] == "broken" && e["status"] == "failed" && !strings.Contains(e["error"].(string), "exited") {
			t.Errorf("failed start event: %v", e)
		}
	}

	// The credential value is nowhere; its key name is.
	text := auditText(t, dir)
	for name, s := range map[string]string{"audit dir": dirText(t, dir), "stdout": p.stdout.String(), "stderr": p.stderr.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("credential value found in %s", name)
		}
	}
	if !strings.Contains(text, "obsidian_api_key") || !strings.Contains(p.stderr.String(), "obsidian_api_key") {
		t.Error("credential key name missing from the audit file or the app log")
	}

	// A restart on the same dir and key continues the chain.
	first := rep.LastSeq
	p = start(t, "-audit-dir", dir, "-key-file", keyFile)
	if code, _ := p.do(t, "POST", "/servers/obsidian/start", ""); code != 200 {
		t.Fatal(code)
	}
	p.stop(t)
	rep = verifyDir(t, dir, key)
	if !rep.Intact || len(rep.Files) < 2 || rep.LastSeq <= first || len(rep.Problems()) != 0 {
		t.Fatalf("after restart: %+v", rep)
	}
}

func TestExampleRotationAndDeletedFile(t *testing.T) {
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "audit.key")
	p := start(t, "-audit-dir", dir, "-key-file", keyFile, "-rotate-bytes", "1500")
	for range 3 {
		session(t, p)
	}
	p.stop(t)
	key, _ := chain.ReadKeyFile(keyFile + ".initial")
	rep := verifyDir(t, dir, key)
	files, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	if !rep.Intact || len(files) < 4 {
		t.Fatalf("%d files, intact %v: %+v", len(files), rep.Intact, rep.Problems())
	}
	if err := os.Remove(files[len(files)/2]); err != nil {
		t.Fatal(err)
	}
	rep = verifyDir(t, dir, key)
	if rep.Intact {
		t.Fatal("deleting a middle file went unnoticed")
	}
	found := false
	for _, pr := range rep.Problems() {
		found = found || pr.Class == chain.Missing
	}
	if !found {
		t.Errorf("no MISSING finding: %+v", rep.Problems())
	}
}

// A SIGKILL leaves the file unsealed; the next start continues the chain and
// verify reports only the crash (warnings), with every acknowledged event.
func TestExampleSurvivesSIGKILL(t *testing.T) {
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "audit.key")
	p := start(t, "-audit-dir", dir, "-key-file", keyFile, "-sync", "always")
	for range 5 {
		if code, _ := p.do(t, "POST", "/servers/obsidian/start", ""); code != 200 {
			t.Fatal(code)
		}
	}
	p.cmd.Process.Kill()
	<-p.done
	p = start(t, "-audit-dir", dir, "-key-file", keyFile, "-sync", "always")
	if code, _ := p.do(t, "GET", "/credentials/after_crash", ""); code != 404 {
		t.Fatal(code)
	}
	p.stop(t)

	key, _ := chain.ReadKeyFile(keyFile + ".initial")
	rep := verifyDir(t, dir, key)
	if !rep.Intact {
		t.Fatalf("after SIGKILL: %+v", rep.Problems())
	}
	unclosed := 0
	for _, pr := range rep.Problems() {
		if pr.Class == chain.TornTail && pr.Line == 0 {
			unclosed++
		}
	}
	if unclosed != 1 {
		t.Errorf("want one TORN_TAIL warning for the file without close record, got %+v", rep.Problems())
	}
	n := 0
	for _, e := range events(t, dir) {
		if e["event"] == "admin_action" && e["action"] == "start" && e["status"] == "success" {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d acknowledged starts on record, want 5", n)
	}
}

func getJSON(t *testing.T, p *proc, path, token string, v any) int {
	t.Helper()
	code, text, _ := call(t, p, "GET", path, token, "")
	if v != nil && code == 200 {
		if err := json.Unmarshal([]byte(text), v); err != nil {
			t.Fatal(err)
		}
	}
	return code
}

type eventsPage struct {
	Events []map[string]any `json:"events"`
	Next   string           `json:"next_cursor"`
}

// Who, from where, in which request; and the audit query API across a
// restart, restricted to the admin, and itself audited.
func TestExampleWhoWhereAndQuery(t *testing.T) {
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "audit.key")
	tokFile := filepath.Join(tmp, "tokens")
	os.WriteFile(tokFile, []byte("# token principal\ntok-alice alice\n"), 0o600)
	args := []string{"-audit-dir", dir, "-key-file", keyFile, "-tokens", tokFile, "-admin-token", "tok-admin", "-sync", "none"}
	p := start(t, args...)

	req, _ := http.NewRequest("POST", p.base+"/servers/obsidian/start", nil)
	req.Header.Set("X-Client-ID", "test-user")
	req.Header.Set("Authorization", "Bearer tok-alice")
	req.Header.Set("X-Forwarded-For", "198.51.100.66")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	traceID := resp.Header.Get("X-Request-ID")
	if len(traceID) != 32 || !strings.Contains(resp.Header.Get("Traceparent"), traceID) {
		t.Fatalf("response headers %v", resp.Header)
	}
	if code := getJSON(t, p, "/audit/events", "", nil); code != 401 {
		t.Errorf("unauthenticated query: %d", code)
	}
	if code := getJSON(t, p, "/audit/events", "tok-alice", nil); code != 403 {
		t.Errorf("query by a non-admin: %d", code)
	}
	for range 30 {
		p.do(t, "POST", "/servers/obsidian/stop", "")
	}
	p.stop(t)

	n := 0
	for _, e := range events(t, dir) {
		if e["trace_id"] != traceID {
			if e["client.address"] == "198.51.100.66" {
				t.Errorf("spoofed X-Forwarded-For became client.address: %v", e)
			}
			continue
		}
		n++
		if e["client.claimed_id"] != "test-user" || e["client.address"] != "127.0.0.1" || e["user.id"] != "alice" ||
			e["http.request.header.x-forwarded-for"] != "198.51.100.66" {
			t.Errorf("record of the request lacks who/where: %v", e)
		}
	}
	if n != 3 { // initiated, success, activity
		t.Errorf("%d records with the request's trace id", n)
	}
	denied := 0
	for _, e := range events(t, dir) {
		if e["event"] == "audit_access" && e["status"] == "denied" {
			denied++
		}
	}
	if denied != 2 {
		t.Errorf("%d denied audit_access events, want 2", denied)
	}

	// After a restart the query API serves what was written before it.
	p = start(t, args...)
	var page eventsPage
	if code := getJSON(t, p, "/audit/events?action=start&resource=obsidian&limit=10", "tok-admin", &page); code != 200 {
		t.Fatalf("query: %d", code)
	}
	if len(page.Events) != 2 || page.Events[0]["trace_id"] != traceID || page.Events[0]["verified"] != true {
		t.Fatalf("events %v", page.Events)
	}
	// Paginate over everything, oldest first: each seq once, in order.
	var seqs []float64
	cursor := ""
	for range 100 {
		page = eventsPage{}
		if code := getJSON(t, p, "/audit/events?order=oldest&limit=7&cursor="+cursor, "tok-admin", &page); code != 200 {
			t.Fatalf("page: %d", code)
		}
		for _, e := range page.Events {
			seqs = append(seqs, e["seq"].(float64))
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("seqs out of order or repeated: %v", seqs)
		}
	}
	if len(seqs) < 60 {
		t.Errorf("paginated %d events", len(seqs))
	}
	p.stop(t)
	key, _ := chain.ReadKeyFile(keyFile + ".initial")
	if rep := verifyDir(t, dir, key); !rep.Intact {
		t.Fatalf("%+v", rep.Problems())
	}
}

// Secrets sent in the usual places leave no trace in the audit dir, stdout
// or stderr, while the credential's key name is on record.
func TestExampleLeavesNoSecrets(t *testing.T) {
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "audit.key")
	p := start(t, "-audit-dir", dir, "-key-file", keyFile)
	const (
		bearerTok = "bearer-SECRET-4f1c2e9a7b"
		apiKey    = "apikey-SECRET-77d1e0c3aa"
		queryTok  = "query-SECRET-0b9a8c7d6e"
		value     = "value-SECRET-5e4d3c2b1a"
	)
	// An unknown bearer token is refused (and must not be logged either);
	// the admin token stores the value.
	for _, tok := range []string{bearerTok, p.admin} {
		req, _ := http.NewRequest("PUT", p.base+"/credentials/obsidian_api_key?token="+queryTok+"&note=x", strings.NewReader(value))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Api-Key", apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := map[bool]int{true: 401, false: 200}[tok == bearerTok]; resp.StatusCode != want {
			t.Fatalf("PUT with token %q: %d, want %d", tok, resp.StatusCode, want)
		}
	}
	if code, body := p.do(t, "GET", "/credentials/obsidian_api_key?api_key="+apiKey, ""); code != 200 || body != value {
		t.Fatalf("GET: %d %q", code, body)
	}
	p.stop(t)
	text := auditText(t, dir)
	for name, s := range map[string]string{"audit dir": dirText(t, dir), "stdout": p.stdout.String(), "stderr": p.stderr.String()} {
		for _, secret := range []string{bearerTok, apiKey, queryTok, value} {
			if strings.Contains(s, secret) {
				t.Errorf("%s found in %s", secret, name)
			}
		}
	}
	if !strings.Contains(text, "obsidian_api_key") || !strings.Contains(text, `"url.query":"token=[REDACTED]&note=x"`) {
		t.Errorf("audit trail lacks the key name or the redacted query:\n%s", text)
	}
}

// SIGHUP starts a new audit file (for log shippers that follow files); the
// chain goes on across it.
func TestExampleSIGHUPRotates(t *testing.T) {
	tmp := t.TempDir()
	dir, keyFile := filepath.Join(tmp, "audit-logs"), filepath.Join(tmp, "audit.key")
	p := start(t, "-audit-dir", dir, "-key-file", keyFile)
	p.do(t, "POST", "/servers/obsidian/start", "")
	before, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		after, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
		if len(after) == len(before)+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new file after SIGHUP: %v", after)
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.do(t, "POST", "/servers/obsidian/stop", "")
	p.stop(t)
	key, _ := chain.ReadKeyFile(keyFile + ".initial")
	rep := verifyDir(t, dir, key)
	if !rep.Intact || len(rep.Files) != 2 || len(rep.Problems()) != 0 || !rep.Files[0].Closed {
		t.Fatalf("after SIGHUP: %+v", rep)
	}
}

// A token given to the example (-admin-token, $AUDIT_ADMIN_TOKEN) is not
// printed: only one it generated is. The OTLP endpoint is printed without
// the password of its userinfo.
func TestGivenSecretsNotPrinted(t *testing.T) {
	const tok = "adm-SECRET-from-env-9c8b7a"
	const pw = "otlpPW-SECRET-31337"
	tmp := t.TempDir()
	p := startEnv(t, map[string]string{
		"AUDIT_ADMIN_TOKEN":           tok,
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://ingest:" + pw + "@127.0.0.1:9",
	}, "-audit-dir", filepath.Join(tmp, "a"), "-key-file", filepath.Join(tmp, "k"))
	// The banner is one write, done once it listens. Killed: a clean stop
	// would spend its export deadline on the unreachable endpoint.
	p.cmd.Process.Kill()
	<-p.done
	out := p.stdout.String() + p.stderr.String()
	if strings.Contains(out, tok) || strings.Contains(out, pw) {
		t.Errorf("a given secret was printed:\n%s", out)
	}
	if !strings.Contains(out, "given in $AUDIT_ADMIN_TOKEN (not printed)") || !strings.Contains(out, "OTLP export: on (http://ingest:xxxxx@127.0.0.1:9)") {
		t.Errorf("banner:\n%s", out)
	}
}
