package query_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// A compressed file that no longer decompresses (one flipped byte of its
// trailer) does not make the rest of the trail unreadable: queries in
// either order return the events of the other files and name the damaged
// one in Unreadable.
func TestDamagedFileDoesNotBlockQueries(t *testing.T) {
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{})
	ctx := context.Background()
	for f := range 3 {
		for i := range 2 {
			logAt(t, ctx, h, time.Now(), fmt.Sprintf("f%dr%d", f, i))
		}
		if err := h.Rotate(); err != nil {
			t.Fatal(err)
		}
	}
	files, err := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	if err != nil || len(files) < 4 {
		t.Fatalf("%d files, %v", len(files), err)
	}
	mid := files[1]
	plain, err := os.ReadFile(mid)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(plain)
	zw.Close()
	gz := z.Bytes()
	gz[len(gz)-6] ^= 1
	if err := os.WriteFile(mid+".gz", gz, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(mid)
	r := newReader(t, dir, testKey)
	for _, order := range []query.Order{query.NewestFirst, query.OldestFirst} {
		var msgs []string
		var unreadable []string
		req := query.Request{Limit: 2, Order: order}
		for {
			p, err := r.Query(ctx, req)
			if err != nil {
				t.Fatalf("%v: %v", order, err)
			}
			for _, e := range p.Events {
				msgs = append(msgs, e.Msg)
			}
			unreadable = append(unreadable, p.Unreadable...)
			if p.NextCursor == "" {
				break
			}
			req.Cursor = p.NextCursor
		}
		slices.Sort(msgs)
		for _, want := range []string{"f0r0", "f0r1", "f2r0", "f2r1"} {
			if !slices.Contains(msgs, want) {
				t.Errorf("%v: %s missing from %v", order, want, msgs)
			}
		}
		if !slices.Contains(unreadable, filepath.Base(mid)) {
			t.Errorf("%v: unreadable %v, want %s", order, unreadable, filepath.Base(mid))
		}
	}
	// Follow goes on past it too.
	var told []string
	followed := followUntil(t, r, query.FollowOptions{OnUnreadable: func(file string, _ error) { told = append(told, file) }}, "f2r1")
	if !slices.Contains(followed, "f0r0") || !slices.Contains(followed, "f2r1") {
		t.Errorf("Follow delivered %v", followed)
	}
	if len(told) != 1 || told[0] != filepath.Base(mid) {
		t.Errorf("OnUnreadable heard of %v, want %s", told, filepath.Base(mid))
	}
}

// A NUL byte inside a line of a file no longer written (damage, not the
// unwritten preallocated tail) hides nothing after it: the damaged line, no longer JSON, is left out
// (auditctl verify reports it), and every line after it is returned, by
// Query and Follow. (r4 verifies: its MAC and its link to r3's recorded
// MAC hold; it is r3 that was changed.)
func TestNULInsideALineHidesNothing(t *testing.T) {
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{Preallocate: -1})
	ctx := context.Background()
	for i := range 10 {
		logAt(t, ctx, h, time.Now(), fmt.Sprintf("r%d", i))
	}
	path := h.Path()
	// A newer file: the damaged one is no longer written. (In the file
	// being written a NUL is where a write in progress has not arrived
	// yet, and reading stops there for now.)
	if err := h.Rotate(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte(`"msg":"r3"`))
	if i < 0 {
		t.Fatal("no r3")
	}
	b[i+7] = 0 // the r of r3
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newReader(t, dir, testKey)
	p, err := r.Query(ctx, query.Request{Limit: 100, Order: query.OldestFirst})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range p.Events {
		got = append(got, fmt.Sprintf("%s:%v", e.Msg, e.Verified))
	}
	want := "r0:true r1:true r2:true r4:true r5:true r6:true r7:true r8:true r9:true"
	if fmt.Sprint(strings.Join(got, " ")) != want {
		t.Errorf("events %v\nwant %s", got, want)
	}
	followed := followUntil(t, r, query.FollowOptions{}, "r9")
	if len(followed) != 9 || followed[len(followed)-1] != "r9" {
		t.Errorf("Follow delivered %v", followed)
	}
}

// A read that overlaps a write can see the head of a line still NUL and
// its tail already written: in the file being written that is not damage,
// Follow reads the line again once it is there.
func TestFollowTornReadOfTheNewestFile(t *testing.T) {
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{Preallocate: -1})
	ctx := context.Background()
	for i := range 3 {
		logAt(t, ctx, h, time.Now(), fmt.Sprintf("r%d", i))
	}
	path := h.Path()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(full, []byte(`"msg":"r1"`))
	start := bytes.LastIndexByte(full[:i], '\n') + 1
	torn := bytes.Clone(full)
	clear(torn[start : start+40]) // r1's first 40 bytes not there yet
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newReader(t, dir, testKey)
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	got := make(chan query.Event, 10)
	go r.Follow(fctx, query.FollowOptions{Poll: 5 * time.Millisecond}, func(e query.Event) error {
		got <- e
		return nil
	})
	next := func() query.Event {
		select {
		case e := <-got:
			return e
		case <-fctx.Done():
			t.Fatal("no event")
			return query.Event{}
		}
	}
	if e := next(); e.Msg != "r0" {
		t.Fatalf("first event %s", e.Msg)
	}
	// The rest of the write arrives, in place (a writer never makes a
	// file shorter than what it committed: rewriting the whole file would
	// show it empty for a moment, which Follow takes for a rollback).
	wf, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wf.WriteAt(full[start:start+40], int64(start)); err != nil {
		t.Fatal(err)
	}
	wf.Close()
	for _, want := range []string{"r1", "r2"} {
		if e := next(); e.Msg != want || !e.Verified {
			t.Errorf("got %s (verified %v), want %s verified", e.Msg, e.Verified, want)
		}
	}
}

// followUntil follows r from the start, polling every 5ms, until the event
// whose message is last (10 s at most), and returns the messages delivered.
func followUntil(t *testing.T, r *query.Reader, opts query.FollowOptions, last string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts.Poll = 5 * time.Millisecond
	var msgs []string
	r.Follow(ctx, opts, func(e query.Event) error {
		msgs = append(msgs, e.Msg)
		if e.Msg == last {
			cancel()
		}
		return nil
	})
	return msgs
}
