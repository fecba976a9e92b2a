package query_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// longLineTrail writes r0..r5 with the real handler into one file (closed),
// then puts a line of size bytes of garbage without a newline inside it
// between r2 and r3 (a forged or damaged line), followed by its newline
// and the rest of the file. It returns dir and the file.
func longLineTrail(t *testing.T, size int) (dir, path string) {
	t.Helper()
	dir = t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{Preallocate: -1})
	ctx := context.Background()
	for i := range 6 {
		logAt(t, ctx, h, time.Now(), fmt.Sprintf("r%d", i), slog.String("event", "x"))
	}
	path = h.Path()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	at := -1
	for i, l := range lines {
		if strings.Contains(l, `"msg":"r3"`) {
			at = i
		}
	}
	if at < 0 {
		t.Fatal("no r3")
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	for _, l := range lines[:at] {
		bw.WriteString(l)
	}
	garbage := []byte(`{"seq":5,"prev":"` + strings.Repeat("ab", 32) + `","msg":"`)
	chunk := []byte(strings.Repeat("x", 1<<16))
	bw.Write(garbage)
	for n := len(garbage); n < size; n += len(chunk) {
		bw.Write(chunk[:min(len(chunk), size-n)])
	}
	bw.WriteString("\n")
	for _, l := range lines[at:] {
		bw.WriteString(l)
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return dir, path
}

// totalAlloc returns the bytes allocated so far by the process.
func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// A line longer than MaxLineBytes (here lowered to 1 MiB; the line is 48
// MiB) is passed over without being held in memory: Query in both orders
// and Follow return every record after it (r3 verified: the line was
// never sealed into the chain, r3 links to r2), the file is named in
// Page.Unreadable and OnUnreadable hears ErrLineTooLong, and what they
// allocate stays far below the line's size.
func TestLineTooLongSkippedBounded(t *testing.T) {
	t.Cleanup(query.SetMaxLine(1 << 20)) // after Follow stopped (cleanups run last first)
	const size = 48 << 20
	dir, path := longLineTrail(t, size)
	if fi, err := os.Stat(path); err != nil || fi.Size() < size {
		t.Fatalf("%v %v", fi, err)
	}
	r := newReader(t, dir, testKey)
	ctx := context.Background()
	want := "r0:true r1:true r2:true r3:true r4:true r5:true"
	for _, order := range []query.Order{query.OldestFirst, query.NewestFirst} {
		runtime.GC()
		before := totalAlloc()
		p, err := r.Query(ctx, query.Request{Order: order})
		alloc := totalAlloc() - before
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range p.Events {
			got = append(got, fmt.Sprintf("%s:%v", e.Msg, e.Verified))
		}
		if order == query.NewestFirst {
			for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
				got[i], got[j] = got[j], got[i]
			}
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%v: events %v, want %s", order, got, want)
		}
		if len(p.Unreadable) != 1 || p.Unreadable[0] != h0(path) {
			t.Errorf("%v: Unreadable %v, want the file", order, p.Unreadable)
		}
		if alloc > 8<<20 {
			t.Errorf("%v: Query allocated %d MiB for a trail with a %d MiB line", order, alloc>>20, size>>20)
		}
		t.Logf("%v: allocated %d KiB", order, alloc>>10)
	}

	var mu sync.Mutex
	var reported []error
	runtime.GC()
	before := totalAlloc()
	followed := followUntil(t, r, query.FollowOptions{OnUnreadable: func(file string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if file != h0(path) {
			t.Errorf("OnUnreadable(%s)", file)
		}
		reported = append(reported, err)
	}}, "r5")
	alloc := totalAlloc() - before
	if strings.Join(followed, " ") != "r0 r1 r2 r3 r4 r5" {
		t.Errorf("Follow delivered %v", followed)
	}
	mu.Lock()
	if len(reported) != 1 || !errors.Is(reported[0], query.ErrLineTooLong) {
		t.Errorf("OnUnreadable heard %v, want one ErrLineTooLong", reported)
	}
	mu.Unlock()
	if alloc > 8<<20 {
		t.Errorf("Follow allocated %d MiB for a trail with a %d MiB line", alloc>>20, size>>20)
	}
	t.Logf("Follow: allocated %d KiB", alloc>>10)
}

// h0 is the base name of path.
func h0(path string) string { return path[strings.LastIndexByte(path, '/')+1:] }

// A sealed record longer than MaxLineBytes (the handler has no limit) is
// passed over too: the records after it are returned (the next one
// unverified: its link to the record before it cannot be checked), and
// a line just under the limit is still read.
func TestSealedRecordTooLong(t *testing.T) {
	t.Cleanup(query.SetMaxLine(1 << 20)) // after Follow stopped (cleanups run last first)
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{})
	ctx := context.Background()
	logAt(t, ctx, h, time.Now(), "before")
	logAt(t, ctx, h, time.Now(), "big", slog.String("blob", strings.Repeat("b", 900<<10)))
	logAt(t, ctx, h, time.Now(), "huge", slog.String("blob", strings.Repeat("h", 3<<20)))
	logAt(t, ctx, h, time.Now(), "after")
	logAt(t, ctx, h, time.Now(), "last")
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	p := mustQuery(t, newReader(t, dir, testKey), query.Request{Order: query.OldestFirst})
	var got []string
	for _, e := range p.Events {
		got = append(got, fmt.Sprintf("%s:%v", e.Msg, e.Verified))
	}
	if strings.Join(got, " ") != "before:true big:true after:false last:true" || len(p.Unreadable) != 1 {
		t.Errorf("events %v, unreadable %v", got, p.Unreadable)
	}
}

// In the file being written, a line that grows past MaxLineBytes before
// its newline arrives is read on from where its reading stopped, and
// passed over once complete: the record written after it is delivered.
func TestFollowLineTooLongInTheLiveFile(t *testing.T) {
	t.Cleanup(query.SetMaxLine(1 << 20)) // after Follow stopped (cleanups run last first)
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{Preallocate: -1})
	ctx := context.Background()
	logAt(t, ctx, h, time.Now(), "r0", slog.String("event", "x"))
	r := newReader(t, dir, testKey)
	var mu sync.Mutex
	var reported []error
	ch, _ := follow(t, r, query.FollowOptions{Poll: 2 * time.Millisecond, OnUnreadable: func(_ string, err error) {
		mu.Lock()
		reported = append(reported, err)
		mu.Unlock()
	}})
	if e := collect(t, ch, 1)[0]; e.Msg != "r0" {
		t.Fatalf("first event %s", e.Msg)
	}
	f, err := os.OpenFile(h.Path(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := []byte(strings.Repeat("z", 1<<20))
	for range 3 {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // Follow looks at the unfinished line
	}
	f.Write([]byte("\n"))
	logAt(t, ctx, h, time.Now(), "r1", slog.String("event", "x"))
	if e := collect(t, ch, 1)[0]; e.Msg != "r1" {
		t.Errorf("after the long line: %s", e.Msg)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reported) != 1 || !errors.Is(reported[0], query.ErrLineTooLong) || !strings.Contains(reported[0].Error(), fmt.Sprint(3<<20, " bytes")) {
		t.Errorf("OnUnreadable heard %v, want one ErrLineTooLong of %d bytes", reported, 3<<20)
	}
}
