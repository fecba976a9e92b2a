package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/query"
)

// queryUsage is the synopsis of auditctl query, for the command's usage.
const queryUsage = `  auditctl query DIR [--key-file K0] [--checkpoint-key FILE.pub] [--since T] [--until T]
        [--event E] [--action A] [--resource R] [--resource-type T] [--principal P]
        [--client C] [--status S] [--trace-id ID] [--order newest|oldest] [--limit N] [--json]
                                                   list the audit events in DIR, newest first; exit 0
                                                   when printed (verified or not), 2 usage or I/O error
`

// queryPageSize is how many events queryCmd asks for at a time.
var queryPageSize = query.MaxLimit

// queryCmd implements auditctl query: it prints the matching audit events
// of DIR, one per line (time, seq, verified mark, level, event, action,
// resource, status, message), or as JSON lines with --json (the record as
// written plus file, line and verified); when events do not verify, stderr
// says how many, and which key given is not the trail's, in verify's words
// (wrongKeys). It exits 0 when the events were
// printed (verified or not) and 2 for usage and I/O errors, also when a
// file could not be read to its end (its events are missing) or holds a
// line longer than query.MaxLineBytes (that line is missing).
func queryCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("query", stderr)
	setUsage(fs, queryUsage)
	keyFile, ckptKey := keyFlags(fs)
	filters, since, until := filterFlags(fs)
	order := fs.String("order", "newest", "`ORDER`: newest or oldest first")
	limit := fs.Int("limit", 0, "print at most `N` events (0: all)")
	asJSON := fs.Bool("json", false, "print one JSON object per event and line")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return parseExit(err)
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "auditctl query: "+format+"\n", args...)
		return exitUsage
	}
	if len(pos) != 1 {
		return fail("exactly one DIR is required")
	}
	if *limit < 0 {
		return fail("--limit must not be negative")
	}
	req, err := filterRequest(url.Values{"order": {*order}}, filters, *since, *until)
	if err != nil {
		return fail("%v", err)
	}
	r, checkKeys, err := openReader(pos[0], *keyFile, *ckptKey)
	if err != nil {
		return fail("%v", err)
	}

	bw := bufio.NewWriter(stdout)
	printed, unverified := 0, 0
	unreadable := map[string]bool{}
	for {
		req.Limit = queryPageSize
		if *limit > 0 {
			req.Limit = min(req.Limit, *limit-printed)
		}
		page, err := r.Query(context.Background(), req)
		if err != nil {
			bw.Flush()
			return fail("%v", err)
		}
		for _, e := range page.Events {
			if *asJSON {
				b, err := json.Marshal(e)
				if err != nil {
					bw.Flush()
					return fail("seq %d: %v", e.Seq, err)
				}
				bw.Write(append(b, '\n'))
			} else {
				writeEventText(bw, e)
			}
			if !e.Verified {
				unverified++
			}
		}
		for _, f := range page.Unreadable {
			unreadable[f] = true
		}
		printed += len(page.Events)
		if page.NextCursor == "" || *limit > 0 && printed >= *limit {
			break
		}
		req.Cursor = page.NextCursor
	}
	if err := bw.Flush(); err != nil {
		return fail("%v", err)
	}
	if unverified > 0 {
		hint := "run auditctl verify for details"
		if *keyFile == "" {
			hint = "keyed files verify with --key-file K(0), or by signed checkpoints with --checkpoint-key"
		}
		if said := checkKeys(); len(said) > 0 {
			for _, s := range said {
				fmt.Fprintf(stderr, "auditctl query: %s\n", s)
			}
			hint = "a key given is not the trail's"
		}
		fmt.Fprintf(stderr, "auditctl query: %d of %d events not verified (%s)\n", unverified, printed, hint)
	}
	if len(unreadable) > 0 {
		// What they hold past the damage (or a line too long to read)
		// is missing above: not a complete answer.
		fmt.Fprintf(stderr, "auditctl query: %d file(s) could not be read to their end, or hold a line longer than %d MiB (passed over): %s (run auditctl verify)\n",
			len(unreadable), query.MaxLineBytes>>20, strings.Join(slices.Sorted(maps.Keys(unreadable)), ", "))
		return exitUsage // 2: usage and I/O errors
	}
	return exitOK
}

// filterFlags defines the filter flags of query and tail: parameter name of
// query.ParseRequest → value, and --since and --until.
func filterFlags(fs *flag.FlagSet) (filters map[string]*string, since, until *string) {
	since = fs.String("since", "", "only events at or after `TIME`: RFC 3339, or a duration ago such as 24h")
	until = fs.String("until", "", "only events before `TIME`: RFC 3339, or a duration ago")
	filters = map[string]*string{}
	for _, f := range []struct{ flag, param, help string }{
		{"event", "event", "only events of this `TYPE`, e.g. credential_access"},
		{"action", "action", "only this `ACTION`"},
		{"resource", "resource", "only this `RESOURCE`"},
		{"resource-type", "resource_type", "only this resource `TYPE`"},
		{"principal", "principal", "only events of this `PRINCIPAL` (user.id)"},
		{"client", "client", "only events from this `CLIENT`: an IP address matches client.address only, anything else the claimed client.id or client.claimed_id"},
		{"status", "status", "only this `STATUS`: initiated, success, failed or denied"},
		{"trace-id", "trace_id", "only events of this trace `ID`"},
	} {
		filters[f.param] = fs.String(f.flag, "", f.help)
	}
	return filters, since, until
}

// cliTime returns s as an RFC 3339 time: s itself, or now minus s if s is
// a duration.
func cliTime(s string, now time.Time) (string, bool) {
	if _, err := time.Parse(time.RFC3339, s); err == nil {
		return s, true
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d).UTC().Format(time.RFC3339Nano), true
	}
	return "", false
}

// writeEventText writes e as one line:
//
//	2026-03-01T12:00:00.000Z  seq 42  ✓ INFO  credential_access get credential/obsidian_api_key success  by alice from 10.0.0.7  get credential obsidian_api_key (success)
//
// who (user.id) and from where (client.address), "-" when absent; what a
// client only claimed to be (client.id, client.claimed_id) follows as
// "claims ID", never in place of the address.
func writeEventText(w io.Writer, e query.Event) {
	ts := "-"
	if !e.Time.IsZero() {
		ts = e.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	mark := "✓"
	if !e.Verified {
		mark = "✗"
	}
	res := e.Resource
	if e.ResourceType != "" {
		res = e.ResourceType + "/" + e.Resource
	}
	claims := ""
	if e.ClaimedClient != "" {
		claims = " claims " + field(e.ClaimedClient)
	}
	fmt.Fprintf(w, "%s  seq %d  %s %-5s  %s %s %s %s  by %s from %s%s  %s\n", ts, e.Seq, mark, field(e.Level),
		field(e.Event), field(e.Action), field(res), field(e.Status), field(e.Principal), field(e.Client), claims, field(e.Msg))
}

// field returns s for a text column: "-" when empty, quoted when it holds
// anything unprintable (a newline, a tab, an escape sequence), so that a
// logged value cannot pass for another line or mess up the terminal.
func field(s string) string {
	if s == "" {
		return "-"
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// filterRequest builds the query request of the filter flags (their values
// by query parameter name) and --since/--until, on top of v.
func filterRequest(v url.Values, filters map[string]*string, since, until string) (query.Request, error) {
	for param, val := range filters {
		if *val != "" {
			v.Set(param, *val)
		}
	}
	now := time.Now()
	for _, t := range []struct{ flag, val string }{{"since", since}, {"until", until}} {
		if t.val == "" {
			continue
		}
		s, ok := cliTime(t.val, now)
		if !ok {
			return query.Request{}, fmt.Errorf("--%s: not an RFC 3339 time (like 2006-01-02T15:04:05Z) or a duration ago (like 24h): %q", t.flag, t.val)
		}
		v.Set(t.flag, s)
	}
	req, err := query.ParseRequest(v)
	if pe := (*query.ParamError)(nil); errors.As(err, &pe) {
		return req, fmt.Errorf("--%s: %s", strings.ReplaceAll(pe.Param, "_", "-"), pe.Msg)
	}
	return req, err
}

// keyFlags defines the flags of the keys a Reader verifies with (openReader).
func keyFlags(fs *flag.FlagSet) (keyFile, ckptKey *string) {
	keyFile = fs.String("key-file", "", "initial MAC key K(0) `FILE`; without it events of keyed files are verified only by signed checkpoints (--checkpoint-key)")
	ckptKey = fs.String("checkpoint-key", "", "checkpoint verifier key `FILE` (keygen's FILE.pub): events whose epoch a signed checkpoint's digest vouches for are verified")
	return keyFile, ckptKey
}

// openReader returns a Reader of the audit directory dir, verifying with
// the initial key in keyFile and the checkpoint verifier key in ckptKeyFile
// if given, and checkKeys, which says in verify's words (wrongKeys) which
// of those keys is not the trail's: for when events do not verify.
func openReader(dir, keyFile, ckptKeyFile string) (r *query.Reader, checkKeys func() []string, err error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, nil, err
	} else if !fi.IsDir() {
		return nil, nil, fmt.Errorf("%s is not a directory", dir)
	}
	var key []byte
	if keyFile != "" {
		if key, err = chain.ReadKeyFile(keyFile); err != nil {
			return nil, nil, keyFileError(err)
		}
	}
	opts := query.Options{Key: key}
	if ckptKeyFile != "" {
		if opts.CheckpointKey, err = chain.ReadVerifierFile(ckptKeyFile); err != nil {
			return nil, nil, err
		}
	}
	if r, err = query.NewReader(dir, opts); err != nil {
		return nil, nil, err
	}
	checkKeys = func() []string {
		if key == nil && opts.CheckpointKey == nil {
			return nil
		}
		// The newest file is enough: every file's open record names the
		// key_id that sealed it, and the notes are all read anyway; the
		// whole trail may be long, and query may have read one page of it.
		rep, err := chain.Verify(dir, chain.VerifyOptions{Key: key, CheckpointKey: opts.CheckpointKey, Last: 1})
		if err != nil {
			// Keyed files and no --key-file: Verify needs K(0), the
			// notes can still be asked whether the checkpoint key is
			// theirs.
			if key == nil && opts.CheckpointKey != nil {
				if others, _ := chain.CheckpointSigners(dir, chain.DefaultPrefix, opts.CheckpointKey); len(others) > 0 {
					return []string{wrongCheckpointKey(others, ckptKeyFile, opts.CheckpointKey, false)}
				}
			}
			return nil // the hint says what is needed
		}
		return wrongKeys(rep, keyFile, ckptKeyFile, opts.CheckpointKey)
	}
	return r, checkKeys, nil
}
