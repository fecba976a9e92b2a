package main

import (
	"cmp"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/chain"
)

// verifyArgs returns the arguments of the `auditctl verify` command in
// text (the package doc, the banner), which must appear exactly once.
func verifyArgs(t *testing.T, what, text string) []string {
	t.Helper()
	m := regexp.MustCompile(`go run ./cmd/auditctl verify (.*)`).FindAllStringSubmatch(text, -1)
	if len(m) != 1 {
		t.Fatalf("%s: %d auditctl verify commands", what, len(m))
	}
	return strings.Fields(m[0][1])
}

// verifyAs does what `auditctl verify --key-file K --checkpoint-key P DIR`
// does with args, file names taken relative to dir, and reports whether
// the trail verified intact with signed checkpoints.
func verifyAs(t *testing.T, dir string, args []string) error {
	t.Helper()
	var keyFile, pubFile, auditDir string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--key-file":
			i++
			keyFile = args[i]
		case "--checkpoint-key":
			i++
			pubFile = args[i]
		default:
			auditDir = args[i]
		}
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	key, err := chain.ReadKeyFile(abs(keyFile))
	if err != nil {
		return err
	}
	opts := chain.VerifyOptions{Key: key}
	if pubFile != "" {
		if opts.CheckpointKey, err = chain.ReadVerifierFile(abs(pubFile)); err != nil {
			return err
		}
	}
	rep, err := chain.Verify(abs(auditDir), opts)
	switch {
	case err != nil:
		return err
	case !rep.Intact || len(rep.Problems()) != 0 || (pubFile != "" && !rep.NotesSigned):
		return &verifyError{rep}
	}
	return nil
}

type verifyError struct{ rep *chain.Report }

func (e *verifyError) Error() string {
	b, _ := json.Marshal(e.rep.Problems())
	return "not intact: " + string(b)
}

// The verify command of the package doc and of the banner (the same form)
// verify a trail whose key has moved on, and every file `go run ./example`
// creates by default is ignored by git.
func TestDocVerifyCommandAndGitignore(t *testing.T) {
	tmp := t.TempDir()
	p := start(t, "-audit-dir", filepath.Join(tmp, "audit-logs"), "-key-file", filepath.Join(tmp, "audit.key"))
	for range 3 {
		if code, _ := p.do(t, "POST", "/servers/obsidian/start", ""); code != 200 {
			t.Fatal(code)
		}
	}
	p.stop(t) // the key has moved on (an epoch ends at shutdown)

	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src[:strings.Index(string(src), "package main")])
	docArgs := verifyArgs(t, "package doc", doc)
	if err := verifyAs(t, tmp, docArgs); err != nil {
		t.Errorf("the package doc's verify command (%v) fails: %v", docArgs, err)
	}
	bannerArgs := verifyArgs(t, "banner", strings.NewReplacer(tmp+string(filepath.Separator), "").Replace(p.stdout.String()))
	if strings.Join(bannerArgs, " ") != strings.Join(docArgs, " ") {
		t.Errorf("package doc %v and banner %v verify differently", docArgs, bannerArgs)
	}

	// What the example created, checked against the repository's .gitignore.
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			name += "/"
		}
		names = append(names, name)
	}
	if len(names) < 5 { // audit-logs/, audit.key, .initial, .pub, .signer
		t.Fatalf("created: %v", names)
	}
	for _, name := range names {
		cmd := exec.Command("git", "check-ignore", "--no-index", "-q", name)
		cmd.Dir = ".." // the repository's root
		if err := cmd.Run(); err != nil {
			t.Errorf("%s, created by go run ./example, is not in .gitignore (git check-ignore: %v)", name, err)
		}
	}
}

// The example's command in docker-compose.otel.yaml runs on its volume as
// a new, empty directory: the key file's directory is created, 0700.
func TestComposeCommandRunsOnEmptyVolume(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.otel.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	m := regexp.MustCompile(`(?m)^    command: (\[.*"-key-file".*\])$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("no example command with -key-file in docker-compose.otel.yaml")
	}
	var args []string
	if err := json.Unmarshal([]byte(m[1]), &args); err != nil {
		t.Fatal(err)
	}
	const volume = "/data"
	if !strings.Contains(text, "- audit-data:"+volume+"\n") {
		t.Fatalf("the example's volume is not mounted at %s", volume)
	}
	tmp := t.TempDir()
	root := filepath.Join(tmp, "data") // the volume: empty
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	var keyFile string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-addr":
			args[i+1] = "127.0.0.1:0" // not 0.0.0.0 in a test
		case "-audit-dir", "-key-file":
			if !strings.HasPrefix(args[i+1], volume+"/") {
				t.Errorf("%s %s is not on the volume %s", args[i], args[i+1], volume)
			}
			args[i+1] = filepath.Join(root, strings.TrimPrefix(args[i+1], volume+"/"))
			if args[i] == "-key-file" {
				keyFile = args[i+1]
			}
		}
	}
	p := start(t, args...)
	if code, _ := p.do(t, "POST", "/servers/obsidian/start", ""); code != 200 {
		t.Fatal(code)
	}
	p.stop(t)
	if fi, err := os.Stat(filepath.Dir(keyFile)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v %v", fi, err)
	}
	if _, err := chain.ReadKeyFile(keyFile + ".initial"); err != nil {
		t.Error(err)
	}
}

// With -admin-token and -tokens FILE the banner prints neither token, and
// every curl line it suggests sends a bearer token (a placeholder) rather
// than an empty $AUDIT_ADMIN_TOKEN or none at all: the admin token where
// the endpoint needs role admin, one from the file elsewhere, so that the
// line the banner says is refused (an operator's DELETE) is the only one.
func TestBannerWithGivenTokens(t *testing.T) {
	const admin = "adm-SECRET-flag-77aa"
	const user = "tok-SECRET-alice-88bb"
	tmp := t.TempDir()
	tokFile := filepath.Join(tmp, "tokens")
	os.WriteFile(tokFile, []byte(user+" alice\n"), 0o600)
	p := startEnv(t, map[string]string{"AUDIT_ADMIN_TOKEN": ""},
		"-audit-dir", filepath.Join(tmp, "a"), "-key-file", filepath.Join(tmp, "k"), "-tokens", tokFile, "-admin-token", admin)
	out := p.stdout.String()
	p.stop(t)
	if strings.Contains(out, admin) || strings.Contains(out, user) || strings.Contains(out, "$AUDIT_ADMIN_TOKEN") {
		t.Errorf("banner prints a token or an unset variable:\n%s", out)
	}
	if !strings.Contains(out, "admin token (principal admin, role admin: everything, also the audit log): given with -admin-token (not printed)") ||
		!strings.Contains(out, "bearer tokens: "+tokFile+" (role operator where a line names none)") {
		t.Errorf("banner does not say where the admin token is from:\n%s", out)
	}
	userFlag := "-H 'Authorization: Bearer <a token from " + tokFile + ">'"
	adminFlag := `-H "Authorization: Bearer <admin token>"`
	n, denied := 0, 0
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "curl") && strings.Contains(line, "# no token"):
		case strings.HasPrefix(line, "curl"):
			n++
			// The request the line sends, and the role it needs.
			m := regexp.MustCompile(`^curl (?:-X (\w+) )?.*?http://[^/\s']+(/[^?\s']*)`).FindStringSubmatch(line)
			if m == nil {
				t.Errorf("curl line without a URL: %s", line)
				continue
			}
			method := cmp.Or(m[1], "GET")
			req := httptest.NewRequest(method, m[2], nil)
			_, pattern := newApp(nil).routes().Handler(req)
			if methodless[m[2]] { // mounted by run, not routes
				pattern = m[2]
			}
			need := neededRole(method, pattern)
			switch {
			case need == roleNone:
				t.Errorf("curl line for no endpoint of endpointRoles (%q): %s", pattern, line)
			case need == roleAdmin && strings.Contains(line, userFlag):
				denied++
				if !strings.Contains(line, "# an operator: 403") {
					t.Errorf("a line refused to an operator that does not say so: %s", line)
				}
			case need == roleAdmin && !strings.Contains(line, adminFlag):
				t.Errorf("curl line for role admin without %s: %s", adminFlag, line)
			case need != roleAdmin && !strings.Contains(line, userFlag):
				t.Errorf("curl line without %s: %s", userFlag, line)
			}
		case strings.Contains(line, "auditctl") && !strings.HasPrefix(line, "go run ./cmd/auditctl "):
			t.Errorf("auditctl line not runnable from the repository: %s", line)
		}
	}
	if n != 11 || denied != 1 {
		t.Errorf("%d curl lines checked, %d of them refused, want 11 and 1:\n%s", n, denied, out)
	}
	if !strings.Contains(out, "go run ./cmd/auditctl tail ") {
		t.Errorf("no tail line:\n%s", out)
	}
}
