package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeTokens writes a tokens file and returns its path.
func writeTokens(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Lines "token principal" keep working, with the default role; a third
// field names the role. Comments and blank lines count for line numbers.
func TestTokensFileRoles(t *testing.T) {
	path := writeTokens(t, "# token principal [role]\n\ntok-alice alice\ntok-bob bob viewer\n  tok-carol carol admin  \ntok-alice2 alice operator\n")
	ts, err := loadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]struct {
		principal string
		role      role
	}{
		"tok-alice":  {"alice", defaultRole},
		"tok-alice2": {"alice", roleOperator},
		"tok-bob":    {"bob", roleViewer},
		"tok-carol":  {"carol", roleAdmin},
		"tok-nobody": {"", roleNone},
		"tok-bob x":  {"", roleNone},
	} {
		if p, r := ts.lookup(tok); p != want.principal || r != want.role {
			t.Errorf("%q: %q %v, want %q %v", tok, p, r, want.principal, want.role)
		}
	}
	if defaultRole != roleOperator {
		t.Errorf("default role %v: the README says operator", defaultRole)
	}
	var got []string
	for _, p := range ts.principals() {
		got = append(got, p.Principal+" "+p.Role)
	}
	if want := "alice operator,bob viewer,carol admin"; strings.Join(got, ",") != want {
		t.Errorf("principals %q, want %q", got, want)
	}
}

// badTokensFiles are tokens files the service must refuse, with the
// message that says where and why. No message may quote a token.
var badTokensFiles = []struct {
	name, content, want string
}{
	{"unknown role", "tok-a alice viewer\n# next\ntok-b bob superuser\n", ":3: unknown role \"superuser\" (want viewer, operator or admin)"},
	{"role in capitals", "tok-a alice Admin\n", ":1: unknown role \"Admin\""},
	{"too many fields", "tok-a alice admin # the boss\n", ":1: want \"token principal [role]\" (2 or 3 fields), found 6"},
	{"token alone", "\ntok-a\n", ":2: want \"token principal [role]\" (2 or 3 fields), found 1"},
	{"duplicate token", "tok-a alice\ntok-b bob\ntok-a carol viewer\n", ":3: the same token as FILE:1"},
	{"principal with two roles", "tok-a alice viewer\ntok-b alice admin\n", ":2: principal alice is viewer in FILE:1 and admin here"},
	{"default role differs", "tok-a alice admin\ntok-b alice\n", ":2: principal alice is admin in FILE:1 and operator here"},
}

func TestTokensFileErrors(t *testing.T) {
	for _, c := range badTokensFiles {
		t.Run(c.name, func(t *testing.T) {
			path := writeTokens(t, c.content)
			ts, err := loadTokens(path)
			if ts != nil || err == nil {
				t.Fatalf("loaded %v, err %v", ts, err)
			}
			want := path + strings.ReplaceAll(c.want, "FILE", path)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q, want it to contain %q", err, want)
			}
			if strings.Contains(err.Error(), "tok-") {
				t.Errorf("error quotes a token: %q", err)
			}
		})
	}
}

// A tokens file the service cannot take stops it at start, before it
// creates anything (audit directory, key files): exit status 1 and the
// file:line message on stderr, nothing on stdout.
func TestBadTokensFileFailsStartup(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range badTokensFiles {
		if c.name == "role in capitals" || c.name == "token alone" || c.name == "default role differs" {
			continue // the same paths as the others
		}
		t.Run(c.name, func(t *testing.T) {
			tmp := t.TempDir()
			path := filepath.Join(tmp, "tokens")
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			// A service that starts anyway is killed after a while: the
			// test fails rather than waits for it.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe)
			cmd.Env = append(os.Environ(), argsEnv+"="+strings.Join([]string{"-addr", "127.0.0.1:0", "-audit-dir", filepath.Join(tmp, "audit-logs"), "-key-file", filepath.Join(tmp, "audit.key"), "-tokens", path}, "\n"))
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v\n%s", err, stderr.String())
			}
			if want := "example: " + path + strings.ReplaceAll(c.want, "FILE", path); !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
			entries, _ := os.ReadDir(tmp)
			if len(entries) != 1 {
				t.Errorf("a refused start left files behind: %v", entries)
			}
		})
	}
}

// The admin token (-admin-token, $AUDIT_ADMIN_TOKEN) is one more token of
// principal admin with role admin: the same token in the tokens file, or
// principal admin there with another role, is refused at start.
func TestAdminTokenConflicts(t *testing.T) {
	for _, c := range []struct{ content, want string }{
		{"tok-a alice\ntok-admin bob viewer\n", "the admin token: the same token as FILE:2"},
		{"tok-a admin\n", "the admin token: principal admin is operator in FILE:1 and admin here"},
	} {
		path := writeTokens(t, c.content)
		cfg := config{tokensFile: path, adminToken: "tok-admin", adminFlag: true}
		_, _, err := setupTokens(&cfg)
		if want := strings.ReplaceAll(c.want, "FILE", path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", c.content, err, want)
		}
	}
	// principal admin with role admin in the file is the admin, twice
	path := writeTokens(t, "tok-a admin admin\n")
	cfg := config{tokensFile: path, adminToken: "tok-admin", adminFlag: true}
	if _, _, err := setupTokens(&cfg); err != nil {
		t.Error(err)
	}
}

// leastRoles is the endpoint table as the README states it, written out
// here so that a change to endpointRoles has to be a change to this too.
var leastRoles = map[string]role{
	"GET /servers":                  roleViewer,
	"GET /credentials":              roleViewer,
	"POST /servers/{name}/{action}": roleOperator,
	"GET /credentials/{key}":        roleOperator,
	"PUT /credentials/{key}":        roleAdmin,
	"DELETE /credentials/{key}":     roleAdmin,
	"GET /audit/events":             roleAdmin,
	"GET /audit/ui":                 roleAdmin,
	"GET /audit/stream":             roleAdmin,
}

// endpointRoles is the table above, every route the service registers is
// in it (but GET /healthz, which needs no token; a method-less one, an
// audit endpoint, as its GET), the README's table says the same, and a
// route missing from it, or a method-less route's other methods, is
// refused to every role.
func TestEndpointRoles(t *testing.T) {
	if !maps.Equal(endpointRoles, leastRoles) {
		t.Errorf("endpointRoles %v, want %v", endpointRoles, leastRoles)
	}
	route := regexp.MustCompile(`mux\.Handle(?:Func)?\("([^"]+)"`)
	registered, withoutMethod := map[string]bool{}, map[string]bool{}
	for _, file := range []string{"app.go", "main.go"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range route.FindAllStringSubmatch(string(src), -1) {
			p := m[1]
			if strings.HasPrefix(p, "/") {
				withoutMethod[p] = true
				if methodless[p] {
					p = "GET " + p
				}
			}
			if registered[p] {
				t.Errorf("%s registered twice (as %q)", p, m[1])
			}
			registered[p] = true
		}
	}
	if !maps.Equal(withoutMethod, methodless) {
		t.Errorf("routes registered without a method %v, methodless has %v", slices.Sorted(maps.Keys(withoutMethod)), slices.Sorted(maps.Keys(methodless)))
	}
	delete(registered, "GET /healthz")
	inTable := map[string]bool{}
	for p := range endpointRoles {
		inTable[p] = true
	}
	if !maps.Equal(registered, inTable) {
		t.Errorf("routes registered %v, endpointRoles has %v", slices.Sorted(maps.Keys(registered)), slices.Sorted(maps.Keys(endpointRoles)))
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([A-Z]+ /[^`]*)` \\| (viewer|operator|admin) \\|")
	documented := map[string]role{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = parseRole(m[2])
	}
	if !maps.Equal(documented, endpointRoles) {
		t.Errorf("README's table %v, endpointRoles %v", documented, endpointRoles)
	}
	for r := roleNone; r <= roleAdmin; r++ {
		if permits(r, "GET", "GET /not-in-the-table") || permits(r, "GET", "/not-in-the-table") || permits(r, "GET", "") {
			t.Errorf("role %v may use an endpoint missing from the table", r)
		}
		for p := range methodless {
			need := leastRoles["GET "+p]
			if permits(r, "GET", p) != (r >= need) || permits(r, "HEAD", p) != (r >= need) {
				t.Errorf("role %v: GET %s %v, HEAD %v; it needs %v", r, p, permits(r, "GET", p), permits(r, "HEAD", p), need)
			}
			for _, method := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
				if permits(r, method, p) {
					t.Errorf("role %v may %s %s", r, method, p)
				}
			}
		}
	}
}

// withTokens writes a tokens file of content and returns the audit
// directory, the tokens file and the arguments that start the example with
// them and the admin token tok-admin.
func withTokens(t *testing.T, content string) (dir, tokFile string, args []string) {
	t.Helper()
	tmp := t.TempDir()
	dir = filepath.Join(tmp, "audit-logs")
	tokFile = filepath.Join(tmp, "tokens")
	if err := os.WriteFile(tokFile, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, tokFile, []string{"-audit-dir", dir, "-key-file", filepath.Join(tmp, "audit.key"), "-tokens", tokFile, "-admin-token", "tok-admin", "-sync", "none"}
}

// call sends a request as token ("" for none) and returns the status
// code, the body and the request id (the trace id of its records). A
// stream that is let in is not read: its body is closed at once.
func call(t *testing.T, p *proc, method, path, token, body string) (code int, text, requestID string) {
	t.Helper()
	code, text, h := callHeader(t, p, method, path, token, body)
	return code, text, h.Get("X-Request-ID")
}

// callHeader is call with the answer's header, the request id in it.
func callHeader(t *testing.T, p *proc, method, path, token, body string) (code int, text string, h http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, p.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(path, "/audit/stream") || resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		text = string(b)
	}
	return resp.StatusCode, text, resp.Header
}

// Every endpoint as every role: allowed from the role endpointRoles names
// up, 403 below it, 401 without a token. Each 403 leaves exactly one
// audit event with status denied (besides the request's activity record,
// status denied, http.response.status_code 403) that names the principal,
// its role, the action and resource asked for and the role needed; the
// credential value is nowhere in the trail, stdout or stderr, nor in a
// refused answer. The start event lists each principal's role, and a role
// changed in the tokens file shows in the next start event.
func TestEndpointsByRole(t *testing.T) {
	// lee's line has no role: the two-field form, an operator.
	dir, tokFile, args := withTokens(t, "tok-vera vera viewer\ntok-otto otto operator\ntok-lee lee\n")
	p := start(t, args...)
	const value = "value-SECRET-of-k-9f8e7d"
	for _, key := range []string{"k", "d"} {
		if code, _, _ := call(t, p, "PUT", "/credentials/"+key, "tok-admin", value); code != 200 {
			t.Fatalf("PUT %s: %d", key, code)
		}
	}
	type as struct {
		token, principal string
		role             role
	}
	roles := []as{{"tok-vera", "vera", roleViewer}, {"tok-otto", "otto", roleOperator}, {"tok-lee", "lee", roleOperator}, {"tok-admin", "admin", roleAdmin}}
	// A request for each endpoint, and the audit event a refusal is.
	requests := []struct {
		pattern, method, path, body string
		event, action, resource     string
	}{
		{"GET /servers", "GET", "/servers", "", "admin_action", "list", ""},
		{"GET /credentials", "GET", "/credentials", "", "credential_access", "list", ""},
		{"POST /servers/{name}/{action}", "POST", "/servers/obsidian/start", "", "admin_action", "start", "obsidian"},
		{"GET /credentials/{key}", "GET", "/credentials/k", "", "credential_access", "get", "k"},
		{"PUT /credentials/{key}", "PUT", "/credentials/k", value, "credential_access", "update", "k"},
		{"DELETE /credentials/{key}", "DELETE", "/credentials/d", "", "credential_access", "delete", "d"},
		{"GET /audit/events", "GET", "/audit/events?limit=1", "", "audit_access", "query", "audit-logs"},
		{"GET /audit/ui", "GET", "/audit/ui", "", "audit_access", "view", "audit-logs"},
		{"GET /audit/stream", "GET", "/audit/stream", "", "audit_access", "stream", "audit-logs"},
	}
	type denial struct {
		who                     as
		need                    role
		event, action, resource string
	}
	denials := map[string]denial{} // by request id
	seen := map[string]bool{}
	for _, rq := range requests {
		seen[rq.pattern] = true
		need := leastRoles[rq.pattern]
		if code, _, _ := call(t, p, rq.method, rq.path, "", rq.body); code != 401 {
			t.Errorf("%s without a token: %d, want 401", rq.pattern, code)
		}
		for _, who := range roles {
			code, body, id := call(t, p, rq.method, rq.path, who.token, rq.body)
			want := 200
			if who.role < need {
				want = 403
				denials[id] = denial{who, need, rq.event, rq.action, rq.resource}
			}
			if code != want {
				t.Errorf("%s as %s (%v): %d %s, want %d", rq.pattern, who.principal, who.role, code, body, want)
			}
			if code == 403 && strings.Contains(body, value) {
				t.Errorf("%s as %s: the refusal holds the credential value", rq.pattern, who.principal)
			}
			if code == 200 && rq.pattern == "GET /credentials/{key}" && body != value {
				t.Errorf("%s as %s: %q", rq.pattern, who.principal, body)
			}
		}
	}
	if len(seen) != len(endpointRoles) {
		t.Errorf("%d endpoints tried, endpointRoles has %d", len(seen), len(endpointRoles))
	}
	if len(denials) != 17 { // the viewer 7, each operator 5, the admin none
		t.Errorf("%d denials", len(denials))
	}
	p.stop(t)

	evs := events(t, dir)
	for id, d := range denials {
		var denied, activity []map[string]any
		for _, e := range evs {
			if e["trace_id"] != id {
				continue
			}
			switch {
			case e["event"] == "http_request":
				activity = append(activity, e)
			case e["status"] == "denied":
				denied = append(denied, e)
			}
		}
		if len(denied) != 1 {
			t.Errorf("%s %s as %s: %d denied events, want 1: %v", d.action, d.resource, d.who.principal, len(denied), denied)
			continue
		}
		e := denied[0]
		if e["event"] != d.event || e["action"] != d.action || stringOf(e["resource"]) != d.resource || e["reason"] != reasonForbidden ||
			e["user.id"] != d.who.principal || fmt.Sprint(e[userRolesKey]) != "["+d.who.role.String()+"]" || e[requiredRoleKey] != d.need.String() {
			t.Errorf("denied event of %s %s as %s (%v, needs %v): %v", d.action, d.resource, d.who.principal, d.who.role, d.need, e)
		}
		if len(activity) != 1 || activity[0]["status"] != "denied" || activity[0]["http.response.status_code"] != 403.0 {
			t.Errorf("activity record of %s %s as %s: %v", d.action, d.resource, d.who.principal, activity)
		}
	}
	// Every record of an authenticated request names the principal's role
	// and the role its endpoint needs, those of allowed requests too.
	roleOf := map[string]role{}
	for _, who := range roles {
		roleOf[who.principal] = who.role
	}
	for _, e := range evs {
		principal := stringOf(e["user.id"])
		if principal == "" {
			continue
		}
		if fmt.Sprint(e[userRolesKey]) != "["+roleOf[principal].String()+"]" || parseRole(stringOf(e[requiredRoleKey])) == roleNone {
			t.Errorf("record of %s's request: %v", principal, e)
		}
	}
	for name, s := range map[string]string{"audit dir": dirText(t, dir), "stdout": p.stdout.String(), "stderr": p.stderr.String()} {
		if strings.Contains(s, value) {
			t.Errorf("credential value found in %s", name)
		}
	}

	// A role changed between two starts is on record.
	if err := os.WriteFile(tokFile, []byte("tok-vera vera operator\ntok-otto otto operator\ntok-lee lee\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p = start(t, args...)
	p.stop(t)
	var got []string
	svc, _ := serviceEvents(events(t, dir))
	for _, e := range svc {
		if e["action"] == "start" {
			b, _ := json.Marshal(e["audit.config"].(map[string]any)["authentication"].(map[string]any)["principals"])
			got = append(got, string(b))
		}
	}
	want := []string{
		`[{"principal":"admin","role":"admin"},{"principal":"lee","role":"operator"},{"principal":"otto","role":"operator"},{"principal":"vera","role":"viewer"}]`,
		`[{"principal":"admin","role":"admin"},{"principal":"lee","role":"operator"},{"principal":"otto","role":"operator"},{"principal":"vera","role":"operator"}]`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("principals of the start events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A method the audit endpoints do not serve is an attempt on the audit
// log, whoever makes it (PCI DSS 10.2.1.3, 10.2.1.4): 405 with Allow, and
// exactly one audit_access event, status denied, reason
// method_not_allowed, with the method, and the principal when the token
// is valid, also one whose role may not read the log; its records name no
// required role, as no role may make the request. HEAD is a query like
// GET; to the stream, which serves GET only, it is refused the same way,
// though routed as a GET (required role admin).
func TestAuditEndpointsRefuseOtherMethods(t *testing.T) {
	dir, _, args := withTokens(t, "tok-vera vera viewer\n")
	p := start(t, args...)
	type as struct {
		name, token, principal string
		role                   role
	}
	whos := []as{{"admin", "tok-admin", "admin", roleAdmin}, {"a viewer", "tok-vera", "vera", roleViewer}, {"a wrong token", "tok-wrong", "", roleNone}, {"no token", "", "", roleNone}}
	type attempt struct {
		method, path, action string
		who                  as
	}
	attempts := map[string]attempt{} // by request id
	try := func(method, path, action, allow string) {
		for _, who := range whos {
			code, body, h := callHeader(t, p, method, path, who.token, "")
			if code != 405 || h.Get("Allow") != allow {
				t.Errorf("%s %s as %s: %d Allow %q %s, want 405 Allow %q", method, path, who.name, code, h.Get("Allow"), body, allow)
			}
			attempts[h.Get("X-Request-ID")] = attempt{method, path, action, who}
		}
	}
	for _, ep := range []struct{ path, action, allow string }{
		{"/audit/events", "query", "GET, HEAD"},
		{"/audit/ui", "view", "GET, HEAD"},
		{"/audit/stream", "stream", "GET"},
	} {
		for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
			try(method, ep.path, ep.action, ep.allow)
		}
	}
	try("HEAD", "/audit/stream", "stream", "GET")
	code, _, headID := call(t, p, "HEAD", "/audit/events?limit=1", "tok-admin", "")
	if code != 200 {
		t.Errorf("HEAD /audit/events as admin: %d, want 200", code)
	}
	p.stop(t)
	if len(attempts) != 13*len(whos) {
		t.Fatalf("%d distinct request ids, want %d", len(attempts), 13*len(whos))
	}

	evs := events(t, dir)
	accessOf := func(id string) []map[string]any {
		var out []map[string]any
		for _, e := range evs {
			if e["trace_id"] == id && e["event"] == "audit_access" {
				out = append(out, e)
			}
		}
		return out
	}
	for id, a := range attempts {
		access := accessOf(id)
		if len(access) != 1 {
			t.Errorf("%s %s as %s: %d audit_access events, want 1: %v", a.method, a.path, a.who.name, len(access), access)
			continue
		}
		e := access[0]
		if e["status"] != "denied" || e["reason"] != "method_not_allowed" || e["http.request.method"] != a.method ||
			e["action"] != a.action || e["resource"] != "audit-logs" || stringOf(e["user.id"]) != a.who.principal {
			t.Errorf("%s %s as %s: %v", a.method, a.path, a.who.name, e)
		}
		// HEAD is routed as GET: the stream's least role, though it
		// serves GET alone.
		var need any
		if a.method == "HEAD" {
			need = roleAdmin.String()
		}
		if a.who.principal != "" && (fmt.Sprint(e[userRolesKey]) != "["+a.who.role.String()+"]" || e[requiredRoleKey] != need) {
			t.Errorf("%s %s as %s: roles %v, required role %v, want %v", a.method, a.path, a.who.name, e[userRolesKey], e[requiredRoleKey], need)
		}
	}
	if access := accessOf(headID); len(access) != 1 || access[0]["status"] != "success" || access[0]["action"] != "query" || access[0]["user.id"] != "admin" {
		t.Errorf("HEAD /audit/events as admin: %v", access)
	}
}
