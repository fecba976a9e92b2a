package query_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// fuzzTrail is an audit directory of a few files (one compressed) for the
// fuzz targets: 40 events of varied members.
type fuzzTrail struct {
	dir   string
	files map[string][]byte // name → content, as written (before compression)
}

func newFuzzTrail(f *testing.F) *fuzzTrail {
	trail, err := makeFuzzTrail(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	return trail
}

func makeFuzzTrail(dir string) (*fuzzTrail, error) {
	h, err := handler.New(handler.Options{Dir: dir, Key: testKey, App: slog.DiscardHandler, Rotate: rotate.Options{MaxBytes: 3000}})
	if err != nil {
		return nil, err
	}
	log := slog.New(h)
	base := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	statuses := []handler.Status{handler.StatusSuccess, handler.StatusFailed, handler.StatusDenied, handler.StatusInitiated}
	for i := range 40 {
		r := slog.NewRecord(base.Add(time.Duration(i)*time.Minute), slog.LevelInfo, fmt.Sprint("event ", i), 0)
		r.AddAttrs(handler.Audit,
			slog.String("event", []string{"credential_access", "admin_action", "audit_access"}[i%3]),
			slog.String("action", []string{"get", "start", "query", "delete"}[i%4]),
			slog.String("resource_type", "thing"),
			slog.String("resource", fmt.Sprint("r", i%5)),
			slog.String("status", string(statuses[i%4])),
			slog.String("user.id", []string{"alice", "bob", "<&>"}[i%3]),
			slog.String("client.address", fmt.Sprint("10.0.0.", i%7)),
			slog.String("trace_id", fmt.Sprintf("%032x", i%6)),
		)
		if i%9 == 0 {
			r.AddAttrs(slog.String("file", "x"), slog.Int("line", 3), slog.Bool("verified", true))
		}
		if err := log.Handler().Handle(context.Background(), r); err != nil {
			return nil, err
		}
	}
	if err := h.Close(); err != nil {
		return nil, err
	}
	files, err := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	if err != nil || len(files) < 3 {
		return nil, fmt.Errorf("%d files, %v", len(files), err)
	}
	trail := &fuzzTrail{dir: dir, files: map[string][]byte{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		trail.files[filepath.Base(f)] = b
	}
	// The second file compressed, as rotation leaves it.
	second := files[1]
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(trail.files[filepath.Base(second)])
	zw.Close()
	if err := os.WriteFile(second+".gz", z.Bytes(), 0o600); err != nil {
		return nil, err
	}
	os.Remove(second)
	return trail, nil
}

// fuzzCursor makes a cursor the way the API does, for a seq and order the
// fuzzer picks, so that valid cursors are common.
func fuzzCursor(order byte, seq uint64) string {
	p := "n:"
	if order&1 == 1 {
		p = "o:"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(p + strconv.FormatUint(seq, 10)))
}

// FuzzHTTPQuery sends GET /audit/events with arbitrary query strings,
// cursors and credentials: never a panic, never a 500 (bad input is a 400
// naming the parameter), JSON bodies, and an authorized request that
// succeeds pages consistently when its next_cursor is followed.
func FuzzHTTPQuery(f *testing.F) {
	for _, s := range []struct {
		raw    string
		auth   byte
		cursor string
		order  byte
		seq    uint64
	}{
		{"", 0, "", 0, 0},
		{"limit=3", 0, "", 0, 0},
		{"limit=2&order=oldest", 0, "", 1, 5},
		{"order=oldest&limit=5", 0, "x", 1, 30},
		{"status=denied&limit=4", 0, "", 0, 0},
		{"since=2026-03-01T12:10:00Z&until=2026-03-01T12:30:00Z&limit=3", 0, "", 0, 0},
		{"principal=%3C%26%3E&limit=2", 0, "", 0, 0},
		{"client=10.0.0.3", 1, "", 0, 0},
		{"limit=0", 0, "", 0, 0},
		{"limit=1001", 0, "", 0, 0},
		{"limit=-1&limit=2", 0, "", 0, 0},
		{"bogus=1", 0, "", 0, 0},
		{"%zz", 0, "", 0, 0},
		{"a;b", 0, "", 0, 0},
		{"until=2026-03-01T12:00:00Z&since=2026-03-01T12:00:00Z", 0, "", 0, 0},
		{"since=0000-01-01T00:00:00Z", 0, "", 0, 0},
		{"since=2026-03-01T12:10:00+99:00", 0, "", 0, 0},
		{"trace_id=00000000000000000000000000000003&order=newest", 0, "", 0, 18446744073709551615},
		{"cursor=bjow", 0, "", 0, 0},
		{"cursor=bjox", 0, "", 0, 0},
		{"cursor=bzoxODQ0Njc0NDA3MzcwOTU1MTYxNQ", 0, "", 0, 0},
		{"order=oldest", 0, "", 1, 18446744073709551615},
		{"status=", 2, "", 0, 0},
		{"event=credential_access&action=get&resource=r0&resource_type=thing", 3, "", 0, 0},
	} {
		f.Add(s.raw, s.auth, s.cursor, s.order, s.seq)
	}
	reader := newReader(f, newFuzzTrail(f).dir, testKey)
	logDir := f.TempDir()
	alog, err := handler.New(handler.Options{Dir: logDir, Key: testKey, App: slog.DiscardHandler, Rotate: rotate.Options{MaxBytes: 1 << 20, MaxBackups: 2}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { alog.Close() })
	h, err := query.NewHandler(query.HandlerOptions{
		Reader:   reader,
		AuditLog: handler.Logger(slog.New(alog)),
		Authorize: func(r *http.Request) (string, error) {
			switch r.Header.Get("Authorization") {
			case "":
				return "", query.ErrUnauthenticated
			case "Bearer admin":
				return "admin", nil
			case "Bearer user":
				return "user", query.ErrForbidden
			}
			return "", query.ErrInvalidCredentials
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, raw string, auth byte, cur string, order byte, seq uint64) {
		q := raw
		switch {
		case auth&0x10 != 0:
			q += "&cursor=" + fuzzCursor(order, seq)
		case auth&0x20 != 0:
			q += "&cursor=" + cur
		}
		code, body := get(t, h, q, auth)
		switch auth & 3 {
		case 1:
			if code != http.StatusUnauthorized {
				t.Fatalf("no credentials: %d", code)
			}
			return
		case 2:
			if code != http.StatusForbidden {
				t.Fatalf("forbidden principal: %d", code)
			}
			return
		case 3:
			if code != http.StatusUnauthorized {
				t.Fatalf("wrong credentials: %d", code)
			}
			return
		}
		switch code {
		case http.StatusBadRequest:
			var e struct {
				Error     string
				Parameter *string
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" || e.Parameter == nil || !strings.Contains(e.Error, *e.Parameter) {
				t.Fatalf("400 without an error naming the parameter: %s", body)
			}
			return
		case http.StatusOK:
		default:
			t.Fatalf("GET ?%s: %d %s", q, code, body)
		}
		page := decodePage(t, body)
		if len(page.Unreadable) > 0 {
			t.Fatalf("unreadable files in a sound trail: %v", page.Unreadable)
		}
		// Follow the cursors: every page in order, no event twice, the
		// same filter as the first page.
		req, err := query.ParseRequest(fuzzParseQuery(t, q))
		if err != nil {
			t.Fatalf("200 for a request ParseRequest refuses: %v", err)
		}
		limit := req.Limit
		if limit == 0 {
			limit = query.DefaultLimit
		}
		seen := map[uint64]bool{}
		var last uint64
		for n := 0; ; n++ {
			if len(page.Events) > limit {
				t.Fatalf("%d events, limit %d", len(page.Events), limit)
			}
			if page.NextCursor != "" && len(page.Events) != limit {
				t.Fatalf("a short page (%d of %d) with a next cursor", len(page.Events), limit)
			}
			for _, ev := range page.Events {
				if seen[ev.Seq] {
					t.Fatalf("seq %d twice", ev.Seq)
				}
				if len(seen) > 0 && (req.Order == query.NewestFirst) != (ev.Seq < last) {
					t.Fatalf("seq %d after %d in order %s", ev.Seq, last, req.Order)
				}
				seen[ev.Seq], last = true, ev.Seq
				if !ev.Verified {
					t.Fatalf("seq %d not verified in a sound trail", ev.Seq)
				}
				if req.Status != "" && ev.Status != req.Status || req.Principal != "" && ev.Principal != req.Principal {
					t.Fatalf("seq %d does not match the filter: %+v", ev.Seq, ev)
				}
			}
			if page.NextCursor == "" || n > 45 {
				break
			}
			v := fuzzParseQuery(t, q)
			v.Set("cursor", page.NextCursor)
			code, body := get(t, h, v.Encode(), auth)
			if code != http.StatusOK {
				t.Fatalf("next page: %d %s", code, body)
			}
			page = decodePage(t, body)
		}
		// The pages hold every matching event past the cursor.
		all := req
		all.Cursor, all.Limit = "", query.MaxLimit
		want, err := reader.Query(context.Background(), all)
		if err != nil {
			t.Fatal(err)
		}
		bound, hasBound := uint64(0), false
		if req.Cursor != "" {
			b, _ := base64.RawURLEncoding.DecodeString(req.Cursor)
			bound, _ = strconv.ParseUint(string(b[2:]), 10, 64)
			hasBound = true
		}
		for _, ev := range want.Events {
			past := !hasBound || req.Order == query.NewestFirst && ev.Seq < bound || req.Order == query.OldestFirst && ev.Seq > bound
			if past && !seen[ev.Seq] && len(seen) < 46*limit {
				t.Fatalf("seq %d matches and is past the cursor but no page had it", ev.Seq)
			}
			if !past && seen[ev.Seq] {
				t.Fatalf("seq %d is not past the cursor but a page had it", ev.Seq)
			}
		}
		if len(seen) > len(want.Events) {
			t.Fatalf("%d events paged, %d match", len(seen), len(want.Events))
		}
	})
}

type httpPage struct {
	Events []struct {
		Seq       uint64 `json:"seq"`
		Verified  bool   `json:"verified"`
		Status    string `json:"status"`
		Principal string `json:"user.id"`
	} `json:"events"`
	NextCursor string   `json:"next_cursor"`
	Unreadable []string `json:"unreadable"`
}

func decodePage(t *testing.T, body []byte) httpPage {
	var p httpPage
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("200 with a body that is not a page: %v\n%s", err, body)
	}
	return p
}

func fuzzParseQuery(t *testing.T, q string) url.Values {
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatalf("200 for a malformed query string %q", q)
	}
	return v
}

func get(t *testing.T, h http.Handler, rawQuery string, auth byte) (int, []byte) {
	r := httptest.NewRequest(http.MethodGet, "/audit/events", nil)
	r.URL.RawQuery = rawQuery
	switch auth & 3 {
	case 0:
		r.Header.Set("Authorization", "Bearer admin")
	case 2:
		r.Header.Set("Authorization", "Bearer user")
	case 3:
		r.Header.Set("Authorization", "Basic eDp5")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%d with Content-Type %q", w.Code, ct)
	}
	if !json.Valid(w.Body.Bytes()) {
		t.Fatalf("%d with a body that is not JSON: %q", w.Code, w.Body.Bytes())
	}
	return w.Code, w.Body.Bytes()
}

// FuzzReader queries a directory whose files hold arbitrary content — the
// fuzz input as a whole file, spliced into a real file, as a truncated
// file with a tail, as a .gz that may not decompress, with NULs and huge
// lines: no panic, no hang, every event a JSON object the HTTP handler can
// send, pages in order, and a .gz that cannot be read to its end named in
// Unreadable.
func FuzzReader(f *testing.F) {
	f.Add(byte(0), uint16(0), []byte(`{"seq":1,"prev":"","rec":"open"}`+"\n"))
	f.Add(byte(1), uint16(100), []byte("\x00\x00\x00{\"a\":1}\n"))
	f.Add(byte(2), uint16(300), []byte("garbage\n\x00\x00"))
	f.Add(byte(3), uint16(0), []byte("not gzip"))
	f.Add(byte(4), uint16(50), []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff})
	f.Add(byte(5), uint16(7), []byte("\n\n\n"))
	f.Add(byte(0x81), uint16(2), []byte(`{"seq":99,`))
	f.Add(byte(0x42), uint16(1000), []byte("\xff\xfe"))
	f.Add(byte(6), uint16(0), []byte(`"line":1,"file":"f","verified":true,"x":"\u0066ile"`))
	f.Add(byte(7), uint16(20), []byte(`"file"`))
	trail := newFuzzTrail(f)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range trail.files {
			if !yield(n) {
				return
			}
		}
	})
	f.Fuzz(func(t *testing.T, mode byte, at uint16, data []byte) {
		dir := t.TempDir()
		// Every file of the trail as it is, then one of them replaced.
		victim := int(mode>>4) % len(names)
		gzVictim := false
		for i, n := range names {
			b := trail.files[n]
			if i == victim {
				var gz bool
				b, gz = fuzzContent(mode&0xf, int(at), b, data)
				gzVictim = gz
				if gz {
					n += ".gz"
				}
			}
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		r := newReader(t, dir, testKey)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, order := range []query.Order{query.NewestFirst, query.OldestFirst} {
			req := query.Request{Order: order, Limit: 1 + int(at%7)}
			seen := map[uint64]bool{}
			var last uint64
			unreadable := false
			for n := 0; n < 100; n++ {
				page, err := r.Query(ctx, req)
				if errors.Is(err, context.DeadlineExceeded) {
					t.Fatal("query did not finish in 10 s")
				}
				if err != nil {
					t.Fatalf("query: %v", err)
				}
				if _, err := json.Marshal(page); err != nil {
					t.Fatalf("page cannot be sent: %v", err)
				}
				unreadable = unreadable || len(page.Unreadable) > 0
				for _, ev := range page.Events {
					if !json.Valid(ev.Record) || ev.Record[0] != '{' {
						t.Fatalf("event record is not a JSON object: %q", ev.Record)
					}
					if ev.File != names[victim] && !ev.Verified {
						t.Fatalf("seq %d of the intact file %s not verified", ev.Seq, ev.File)
					}
					if seen[ev.Seq] && ev.Verified {
						t.Fatalf("verified seq %d twice", ev.Seq)
					}
					if len(seen) > 0 && ((order == query.NewestFirst) != (ev.Seq < last)) && ev.Seq != last {
						t.Fatalf("seq %d after %d in order %s", ev.Seq, last, order)
					}
					seen[ev.Seq], last = true, ev.Seq
				}
				if page.NextCursor == "" {
					break
				}
				req.Cursor = page.NextCursor
			}
			if gzVictim && !gunzips(fuzzVictimBytes(dir, names[victim])) && !unreadable {
				t.Fatalf("order %s: a .gz that does not decompress is not reported unreadable", order)
			}
		}
	})
}

func fuzzVictimBytes(dir, name string) []byte {
	b, _ := os.ReadFile(filepath.Join(dir, name+".gz"))
	return b
}

// gunzips reports whether b decompresses to its end.
func gunzips(b []byte) bool {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, zr)
	return err == nil
}

// fuzzContent returns the victim file's new content and whether it is to
// be named .gz.
func fuzzContent(mode byte, at int, orig, data []byte) ([]byte, bool) {
	at %= len(orig) + 1
	switch mode {
	case 0: // the input as the whole file
		return data, false
	case 1: // spliced over the original at at
		b := bytes.Clone(orig)
		copy(b[at:], data)
		if at+len(data) > len(b) {
			b = append(b[:at], data...)
		}
		return b, false
	case 2: // truncated at at, the input after it
		return append(orig[:at:at], data...), false
	case 3: // the input as a .gz file
		return data, true
	case 4: // the original compressed, the input spliced into the compressed bytes
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(orig)
		zw.Close()
		b := z.Bytes()
		at %= len(b) + 1
		copy(b[at:], data)
		return b, true
	case 5: // the input inserted at at
		return slices.Concat(orig[:at], data, orig[at:]), false
	case 6: // a huge line: the input repeated, inserted at at
		return slices.Concat(orig[:at], bytes.Repeat(append(data, 'x'), 1+(200<<10)/(len(data)+1)), orig[at:]), false
	case 7: // the input compressed as a whole
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		zw.Write(slices.Concat(orig[:at], data, orig[at:]))
		zw.Close()
		return z.Bytes(), true
	default: // NULs at at
		b := bytes.Clone(orig)
		for i := at; i < len(b) && i < at+len(data)+1; i++ {
			b[i] = 0
		}
		return b, false
	}
}
