package main

import (
	"strings"
	"testing"
)

// commands returns the commands that usage lists, so that a command added
// to it is checked too.
func commands(t *testing.T) []string {
	t.Helper()
	var cmds []string
	for _, line := range strings.Split(usage, "\n") {
		if rest, ok := strings.CutPrefix(line, "  auditctl "); ok {
			cmd, _, _ := strings.Cut(rest, " ")
			cmds = append(cmds, cmd)
		}
	}
	if len(cmds) < 5 {
		t.Fatalf("usage lists %q", cmds)
	}
	return cmds
}

// A request for help that is answered is a success: exit 0, the usage on
// stdout, nothing on stderr, as the flag package's ExitOnError does. Each
// form the flag package takes (-h, -help, --h, --help) asks for it, also
// after other arguments.
func TestHelpExitsZero(t *testing.T) {
	helps := []string{"-h", "-help", "--h", "--help"}
	for _, h := range append(helps, "help") {
		code, out, errs := runCmd(h)
		if code != exitOK || errs != "" || out != usage {
			t.Errorf("auditctl %s: exit %d, stderr %.80q, stdout %.80q", h, code, errs, out)
		}
	}
	for _, cmd := range commands(t) {
		for _, args := range [][]string{{cmd, "-h"}, {cmd, "-help"}, {cmd, "--h"}, {cmd, "--help"}, {cmd, "DIR", "--help"}} {
			code, out, errs := runCmd(args...)
			if code != exitOK || errs != "" || !strings.HasPrefix(out, "usage:\n  auditctl "+cmd+" ") || !strings.Contains(out, "\nflags:\n  -") {
				t.Errorf("auditctl %s: exit %d, stderr %.80q, stdout %.80q", strings.Join(args, " "), code, errs, out)
			}
		}
	}
}

// A real usage error still exits 2 and says so on stderr, nothing on
// stdout: an unknown flag (with the usage), a flag without its value, a
// missing argument.
func TestUsageErrorsExitTwo(t *testing.T) {
	for _, cmd := range commands(t) {
		code, out, errs := runCmd(cmd, "--bogus")
		if code != exitUsage || out != "" || !strings.Contains(errs, "usage:\n  auditctl "+cmd+" ") {
			t.Errorf("auditctl %s --bogus: exit %d, stdout %.80q, stderr %.80q", cmd, code, out, errs)
		}
	}
	for _, args := range [][]string{
		{"keygen"}, {"keygen", "-o"}, {"fingerprint"}, {"fingerprint", "--key-file"}, {"verify"}, {"verify", "DIR", "--key-file"},
		{"query"}, {"query", "--limit"}, {"tail"}, {"tail", "-n"},
		{"-x"}, {"frobnicate"}, {},
	} {
		code, out, errs := runCmd(args...)
		if code != exitUsage || out != "" || errs == "" {
			t.Errorf("auditctl %s: exit %d, stdout %.80q, stderr %.80q", strings.Join(args, " "), code, out, errs)
		}
	}
}
