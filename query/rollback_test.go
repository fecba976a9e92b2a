package query_test

import (
	"context"
	"fmt"
	"github.com/slogaudit/slogaudit/internal/faultfile"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// rollbackLog opens a SyncAlways handler on dir whose files are fs's.
func rollbackLog(t *testing.T, dir string, fs *faultfile.FS, sinks ...handler.Sink) *handler.Handler {
	t.Helper()
	h, err := handler.New(handler.Options{Dir: dir, Key: testKey, App: slog.DiscardHandler, Sinks: sinks,
		OnError: func(error) {}, Rotate: rotate.Options{Sync: rotate.SyncAlways, OpenFile: fs.Open}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// writePhantom writes the audit record msg (event "x") whose fsync fails:
// while its line is in the file, not committed, during runs; then the
// write fails and is rolled back. It returns the seq the line had.
func writePhantom(t *testing.T, h *handler.Handler, fs *faultfile.FS, msg string, during func(seq uint64)) uint64 {
	t.Helper()
	fs.Arm()
	done := make(chan error, 1)
	go func() {
		r := slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0)
		r.AddAttrs(handler.Audit, slog.String("event", "x"))
		done <- h.Handle(context.Background(), r)
	}()
	<-fs.Entered
	seq := lastLineSeq(t, h.Path())
	if during != nil {
		during(seq)
	}
	close(fs.Release)
	if err := <-done; err == nil {
		t.Fatal("the phantom's write did not fail")
	}
	return seq
}

// lastLineSeq returns the seq of the last line of the file at path.
func lastLineSeq(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	l, err := chain.ParseLine([]byte(lines[len(lines)-1]))
	if err != nil {
		t.Fatal(err)
	}
	return l.Seq
}

// followLog runs Follow and records, in the order they come, the events
// ("msg@seq") and the retractions ("retracted file [seqs]").
type followLog struct {
	mu  sync.Mutex
	log []string
	ch  chan string
}

func startFollowLog(t *testing.T, r *query.Reader, opts query.FollowOptions) *followLog {
	t.Helper()
	fl := &followLog{ch: make(chan string, 1000)}
	add := func(s string) {
		fl.mu.Lock()
		fl.log = append(fl.log, s)
		fl.mu.Unlock()
		fl.ch <- s
	}
	opts.OnRetracted = func(file string, seqs []uint64) { add(fmt.Sprint("retracted ", file, " ", seqs)) }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Follow(ctx, opts, func(e query.Event) error {
			add(fmt.Sprintf("%s@%d", e.Msg, e.Seq))
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return fl
}

// waitFor waits until an entry containing s comes.
func (fl *followLog) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case got := <-fl.ch:
			if strings.Contains(got, s) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q after 10s: %v", s, fl.entries())
		}
	}
}

func (fl *followLog) entries() []string {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return append([]string(nil), fl.log...)
}

// With the handler's Notifier, Follow delivers only committed lines: a
// line whose fsync is pending is held back, and once the write is rolled
// back (its seq going to the next records) it is never delivered. Before,
// Follow delivered the phantom, then another record with the same seq.
func TestFollowNotifierOnlyCommitted(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(fmt.Sprint("abandon=", abandon), func(t *testing.T) {
			dir := t.TempDir()
			fs := faultfile.New()
			fs.Abandon.Store(abandon)
			n := query.NewNotifier()
			h := rollbackLog(t, dir, fs, n)
			l := slog.New(h)
			for i := range 2 {
				logEvent(t, l, handler.Event{Type: "x", Action: "a", Status: handler.StatusSuccess, Reason: fmt.Sprint("r", i)})
			}
			r := newReader(t, dir, testKey)
			fl := startFollowLog(t, r, query.FollowOptions{Filter: query.Filter{Event: "x"}, Notifier: n, Poll: 5 * time.Millisecond})
			fl.waitFor(t, "@3") // both records before it
			writePhantom(t, h, fs, "phantom", func(uint64) {
				time.Sleep(100 * time.Millisecond) // twenty polls: Follow sees the line
			})
			logAt(t, context.Background(), h, time.Now(), "real", slog.String("event", "x"))
			fl.waitFor(t, "real@")
			time.Sleep(50 * time.Millisecond)
			got := strings.Join(fl.entries(), " ")
			if strings.Contains(got, "phantom") || strings.Contains(got, "retracted") {
				t.Errorf("Follow with a Notifier delivered a line that was never committed: %s", got)
			}
			checkDeliveredAreTheFile(t, dir, fl.entries(), "x")
		})
	}
}

// Without a Notifier (auditctl tail in another process) Follow cannot
// know; it delivers the line, but once the writer rolls it back it
// reports the retraction (OnRetracted, the file and the seq) and delivers
// the real records with those seqs: every record of the file, each seq
// once after the retraction. Before, it went on silently (from the
// rolled-back offset, in the middle of the next lines) or, for a file the
// writer abandoned, delivered the new file's records with the same seqs.
func TestFollowReportsRollback(t *testing.T) {
	for _, abandon := range []bool{false, true} {
		t.Run(fmt.Sprint("abandon=", abandon), func(t *testing.T) {
			dir := t.TempDir()
			fs := faultfile.New()
			fs.Abandon.Store(abandon)
			h := rollbackLog(t, dir, fs)
			l := slog.New(h)
			for i := range 2 {
				logEvent(t, l, handler.Event{Type: "x", Action: "a", Status: handler.StatusSuccess, Reason: fmt.Sprint("r", i)})
			}
			phantomFile := chain.BaseName(h.Path())
			r := newReader(t, dir, testKey)
			fl := startFollowLog(t, r, query.FollowOptions{Poll: 5 * time.Millisecond})
			fl.waitFor(t, "@3")
			seq := writePhantom(t, h, fs, "phantom", func(uint64) { fl.waitFor(t, "phantom@") })
			logAt(t, context.Background(), h, time.Now(), "real", slog.String("event", "x"))
			logAt(t, context.Background(), h, time.Now(), "real2", slog.String("event", "x"))
			fl.waitFor(t, "real2@")
			got := fl.entries()
			retracted := fmt.Sprintf("retracted %s [%d]", phantomFile, seq)
			i := indexOf(got, retracted)
			if i < 0 || i != indexOf(got, fmt.Sprintf("phantom@%d", seq))+1 {
				t.Fatalf("the rolled-back line was not retracted right after it was delivered (want %q): %v", retracted, got)
			}
			checkDeliveredAreTheFile(t, dir, got[i+1:], "")
		})
	}
}

// The seq Head returns can be a line not committed yet (auditctl tail and
// the stream print up to Head, then Follow after it): when it is rolled
// back Follow reports it and delivers the real record with that seq,
// which a Follow after it would otherwise never deliver.
func TestFollowAfterRolledBackHead(t *testing.T) {
	for _, notify := range []bool{false, true} {
		t.Run(fmt.Sprint("notifier=", notify), func(t *testing.T) {
			dir := t.TempDir()
			fs := faultfile.New()
			h, n := rollbackLogNotified(t, dir, fs, notify)
			logEvent(t, slog.New(h), handler.Event{Type: "x", Action: "a", Status: handler.StatusSuccess})
			r := newReader(t, dir, testKey)
			var fl *followLog
			seq := writePhantom(t, h, fs, "phantom", func(seq uint64) {
				head, err := r.Head()
				if err != nil || head != seq {
					t.Fatalf("Head %d %v, want the pending line's %d", head, err, seq)
				}
				fl = startFollowLog(t, r, query.FollowOptions{After: head, Notifier: n, Poll: 5 * time.Millisecond})
				time.Sleep(50 * time.Millisecond) // Follow reads the file
			})
			logAt(t, context.Background(), h, time.Now(), "real", slog.String("event", "x"))
			fl.waitFor(t, "real@")
			got := fl.entries()
			// The record that took seq (the handler's audit_outage record
			// of the write that failed) comes after the retraction.
			want := fmt.Sprintf("retracted %s [%d]", chain.BaseName(h.Path()), seq)
			if len(got) < 2 || got[0] != want || !strings.HasSuffix(got[1], fmt.Sprintf("@%d", seq)) {
				t.Errorf("got %v, want %q, then the record with seq %d", got, want, seq)
			}
		})
	}
}

func indexOf(s []string, x string) int {
	for i, y := range s {
		if y == x {
			return i
		}
	}
	return -1
}

// checkDeliveredAreTheFile checks that the events in got ("msg@seq",
// retractions left out) are, in order, the audit records of the trail in
// dir (of event ev, if not "") from the first of them on, each once. The
// trail is read here, not by package query: every complete line of each
// file, but of a file that a newer one follows only the lines before the
// newer one's first seq (a file the writer abandoned holds lines it never
// committed, whose seqs the newer file has).
func checkDeliveredAreTheFile(t *testing.T, dir string, got []string, ev string) {
	t.Helper()
	var delivered []string
	for _, s := range got {
		if !strings.HasPrefix(s, "retracted ") {
			delivered = append(delivered, s)
		}
	}
	var inFile []string
	files, err := rotate.List(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]chain.Line
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var ls []chain.Line
		for _, raw := range strings.SplitAfter(string(b), "\n") {
			if !strings.HasSuffix(raw, "\n") {
				break
			}
			l, err := chain.ParseLine([]byte(strings.TrimSuffix(raw, "\n")))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			ls = append(ls, l)
		}
		lines = append(lines, ls)
	}
	for i, ls := range lines {
		for _, l := range ls {
			if i+1 < len(lines) && len(lines[i+1]) > 0 && l.Seq >= lines[i+1][0].Seq {
				break
			}
			var m struct{ Msg, Event string }
			if l.Kind != "" || l.Decode(&m) != nil || ev != "" && m.Event != ev {
				continue
			}
			inFile = append(inFile, fmt.Sprintf("%s@%d", m.Msg, l.Seq))
		}
	}
	if len(delivered) == 0 {
		t.Fatal("nothing delivered")
	}
	i := indexOf(inFile, delivered[0])
	if i < 0 || strings.Join(inFile[i:], " ") != strings.Join(delivered, " ") {
		t.Errorf("delivered %v\nthe trail holds %v", delivered, inFile)
	}
}

// The stream without a Notifier sends a record that is then rolled back:
// an event "retracted" names it, and the record that took its seq
// follows. With the Notifier it is never sent.
func TestStreamRetracted(t *testing.T) {
	for _, notify := range []bool{false, true} {
		t.Run(fmt.Sprint("notifier=", notify), func(t *testing.T) {
			h, fs, srv := rollbackStream(t, notify)
			req, _ := http.NewRequest("GET", srv.URL+"?event=x&backlog=5", nil)
			req.Header.Set("Authorization", "Bearer alice-token")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			ch := readSSE(resp.Body)
			if m := next(t, ch); m.event != "audit" || decode(t, m)["msg"] != "before" {
				t.Fatalf("%+v", m)
			}
			if m := next(t, ch); m.event != "live" {
				t.Fatalf("%+v", m)
			}
			file := chain.BaseName(h.Path())
			seq := writePhantom(t, h, fs, "phantom", func(uint64) {
				if notify {
					time.Sleep(50 * time.Millisecond)
					return
				}
				if m := next(t, ch); m.event != "audit" || decode(t, m)["msg"] != "phantom" {
					t.Fatalf("%+v", m)
				}
			})
			logAt(t, context.Background(), h, time.Now(), "real", slog.String("event", "x"))
			m := next(t, ch)
			if !notify {
				if m.event != "retracted" || m.data != fmt.Sprintf(`{"file":%q,"seqs":[%d]}`, file, seq) {
					t.Fatalf("after the rollback: %+v, want the retraction of seq %d", m, seq)
				}
				m = next(t, ch)
			}
			if m.event != "audit" || decode(t, m)["msg"] != "real" {
				t.Errorf("%+v, want the real record", m)
			}
		})
	}
}

// A Notifier that is not the writer's hears of no record: Follow holds
// the new lines of the file being written back until the file is
// finished, here by Close (no writer holds it any more; Follow does not
// read ahead for the close record).
func TestFollowNotifierNotTheWritersHoldsUntilFinished(t *testing.T) {
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{})
	r := newReader(t, dir, testKey)
	ch, _ := follow(t, r, query.FollowOptions{Notifier: query.NewNotifier(), Poll: 5 * time.Millisecond})
	logAt(t, context.Background(), h, time.Now(), "r0")
	select {
	case e := <-ch:
		t.Fatalf("delivered %s before anything said it is committed", e.Msg)
	case <-time.After(50 * time.Millisecond):
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if e := collect(t, ch, 1)[0]; e.Msg != "r0" || !e.Verified {
		t.Errorf("%+v", e)
	}
}

// A file the writer gave up (its fsync failed, then the truncation) keeps
// lines it never committed; the newer file goes on from the seq before
// them (FORMAT.md §5). Query returns the newer file's records with those
// seqs, not the given-up lines: before, it returned both, two records
// with one seq, one of them never in the trail.
func TestQueryGivenUpTail(t *testing.T) {
	dir := t.TempDir()
	fs := faultfile.New()
	fs.Abandon.Store(true)
	h := rollbackLog(t, dir, fs)
	logAt(t, context.Background(), h, time.Now(), "before", slog.String("event", "x"))
	seq := writePhantom(t, h, fs, "phantom", nil)
	logAt(t, context.Background(), h, time.Now(), "real", slog.String("event", "x"))
	if files, _ := rotate.List(dir, "", ""); len(files) != 2 {
		t.Fatalf("files %v: the writer did not give the first up", files)
	}
	r := newReader(t, dir, testKey)
	for _, order := range []query.Order{query.OldestFirst, query.NewestFirst} {
		p := mustQuery(t, r, query.Request{Order: order})
		seen := map[uint64]bool{}
		var got []string
		for _, e := range p.Events {
			got = append(got, fmt.Sprintf("%s@%d", e.Msg, e.Seq))
			if e.Msg == "phantom" || seen[e.Seq] {
				t.Errorf("%v: %v: the given-up line (seq %d) returned", order, got, seq)
			}
			seen[e.Seq] = true
		}
	}
}

// A stream opened while a write's fsync is pending (it reads its backlog,
// then its audit_access record waits for that write): with the Notifier
// the backlog ends at the last committed record (Head alone names the
// pending line, which Query returns), so it never sends the line that is
// then rolled back; without one it sends it in the backlog and takes it
// back.
func TestStreamOpenedDuringPendingWrite(t *testing.T) {
	for _, notify := range []bool{false, true} {
		t.Run(fmt.Sprint("notifier=", notify), func(t *testing.T) {
			h, fs, srv := rollbackStream(t, notify)
			type result struct {
				resp *http.Response
				err  error
			}
			opened := make(chan result, 1)
			seq := writePhantom(t, h, fs, "phantom", func(uint64) {
				go func() {
					req, _ := http.NewRequest("GET", srv.URL+"?event=x&backlog=5", nil)
					req.Header.Set("Authorization", "Bearer alice-token")
					resp, err := http.DefaultClient.Do(req)
					opened <- result{resp, err}
				}()
				time.Sleep(100 * time.Millisecond) // it reads the head and the backlog
			})
			res := <-opened
			if res.err != nil {
				t.Fatal(res.err)
			}
			defer res.resp.Body.Close()
			ch := readSSE(res.resp.Body)
			logAt(t, context.Background(), h, time.Now(), "real", slog.String("event", "x"))
			var got []string
			for {
				m := next(t, ch)
				if m.event == "retracted" {
					got = append(got, fmt.Sprint("retracted:", decode(t, m)["seqs"]))
					continue
				}
				got = append(got, m.event+":"+fmt.Sprint(decode(t, m)["msg"]))
				if m.event == "audit" && decode(t, m)["msg"] == "real" {
					break
				}
			}
			want := "audit:before live:<nil> audit:real"
			if !notify {
				want = fmt.Sprintf("audit:before audit:phantom live:<nil> retracted:[%d] audit:real", seq)
			}
			if strings.Join(got, " ") != want {
				t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
			}
		})
	}
}

// rollbackStream serves the live stream (UI.Stream, polling every 5 ms,
// with a Notifier if notify) of a trail whose writes fs can make fail,
// after one record of event x.
func rollbackStream(t *testing.T, notify bool) (*handler.Handler, *faultfile.FS, *httptest.Server) {
	t.Helper()
	dir := t.TempDir()
	fs := faultfile.New()
	h, n := rollbackLogNotified(t, dir, fs, notify)
	logAt(t, context.Background(), h, time.Now(), "before", slog.String("event", "x"))
	ui, err := query.NewUI(query.UIOptions{
		HandlerOptions: query.HandlerOptions{Reader: newReader(t, dir, testKey), AuditLog: handler.Logger(slog.New(h)), Authorize: authorize},
		Notifier:       n, Poll: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui.Stream())
	t.Cleanup(srv.Close)
	t.Cleanup(ui.Close)
	return h, fs, srv
}

// rollbackLogNotified is rollbackLog with a Notifier as its sink if notify
// (nil otherwise).
func rollbackLogNotified(t *testing.T, dir string, fs *faultfile.FS, notify bool) (*handler.Handler, *query.Notifier) {
	t.Helper()
	if !notify {
		return rollbackLog(t, dir, fs), nil
	}
	n := query.NewNotifier()
	return rollbackLog(t, dir, fs, n), n
}
