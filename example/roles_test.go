package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
			cmd := exec.Command(exe)
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
