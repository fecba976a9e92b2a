package query_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// bigLog writes n audit events to a keyed dir of many small files, most of
// them compressed, and returns the still open handler.
func bigLog(t *testing.T, n, minGz int) (string, *handler.Handler) {
	dir := t.TempDir()
	h := openLog(t, dir, testKey, rotate.Options{MaxBytes: 4096, Compress: true})
	log := slog.New(h)
	for i := range n {
		if err := handler.Log(context.Background(), log, handler.Event{Type: "test", Action: "write",
			ResourceType: "item", Resource: fmt.Sprint("item-", i), Status: handler.StatusSuccess}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for gzCount(t, dir) < minGz && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if gzCount(t, dir) < minGz {
		t.Fatal("files were not compressed")
	}
	return dir, h
}

// TestPaginationWhileAppending pages through 1,000 events in both orders
// while another goroutine appends more, rotates and compresses.
func TestPaginationWhileAppending(t *testing.T) {
	dir, h := bigLog(t, 1000, 10)
	orig := auditSeqs(t, dir)
	if len(orig) != 1000 {
		t.Fatalf("%d records", len(orig))
	}
	maxOrig := orig[len(orig)-1]
	r := newReader(t, dir, testKey)

	for _, order := range []query.Order{query.NewestFirst, query.OldestFirst} {
		t.Run(order.String(), func(t *testing.T) {
			stop, started := make(chan struct{}), make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				defer func() {
					select {
					case <-started:
					default:
						close(started)
					}
				}()
				log := slog.New(h)
				for i := range 300 { // bounded, so that the oldest-first walk catches up
					select {
					case <-stop:
						return
					default:
					}
					if err := handler.Log(context.Background(), log, handler.Event{Type: "test", Action: "append",
						Resource: fmt.Sprint("new-", i), Status: handler.StatusSuccess}); err != nil {
						t.Error(err)
						return
					}
					if i == 20 {
						close(started) // the first page includes appended events
					}
					if i%8 == 0 {
						time.Sleep(100 * time.Microsecond)
					}
				}
			})
			defer wg.Wait()
			defer close(stop)
			<-started

			var got []uint64
			req := query.Request{Order: order, Limit: 37}
			pages := 0
			for {
				p := mustQuery(t, r, req)
				pages++
				if len(p.Events) > 37 {
					t.Fatalf("page of %d", len(p.Events))
				}
				for _, e := range p.Events {
					if !e.Verified {
						t.Errorf("seq %d not verified", e.Seq)
					}
					if n := len(got); n > 0 && (order == query.NewestFirst) != (e.Seq < got[n-1]) {
						t.Fatalf("seq %d after %d", e.Seq, got[n-1])
					}
					got = append(got, e.Seq)
				}
				if p.NextCursor == "" {
					break
				}
				req.Cursor = p.NextCursor
			}
			var old []uint64
			for _, s := range got {
				if s <= maxOrig {
					old = append(old, s)
				}
			}
			if order == query.NewestFirst {
				slices.Reverse(old)
			}
			if !slices.Equal(old, orig) {
				t.Fatalf("got %d of the %d original events (%d pages)", len(old), len(orig), pages)
			}
			t.Logf("%d pages, %d events, %d appended ones", pages, len(got), len(got)-len(old))
		})
	}
}

// TestReadsOnlyWhatItNeeds checks that pages read only the files they need.
func TestReadsOnlyWhatItNeeds(t *testing.T) {
	dir, h := bigLog(t, 400, 10)
	h.Close()
	files, _ := rotate.List(dir, "", "")
	if len(files) < 20 {
		t.Fatalf("only %d files", len(files))
	}
	r := newReader(t, dir, testKey)
	reads := func(req query.Request) (query.Page, int64) {
		before := r.FilesRead()
		p := mustQuery(t, r, req)
		return p, r.FilesRead() - before
	}
	p, n := reads(query.Request{Limit: 5})
	if len(p.Events) != 5 || n > 2 {
		t.Errorf("newest first, first page: %d files read", n)
	}
	// A page in the middle.
	req := query.Request{Limit: 10}
	for range 20 {
		p = mustQuery(t, r, req)
		req.Cursor = p.NextCursor
	}
	if _, n = reads(req); n > 3 {
		t.Errorf("newest first, page 21: %d files read", n)
	}
	req = query.Request{Order: query.OldestFirst, Limit: 10}
	for range 20 {
		p = mustQuery(t, r, req)
		req.Cursor = p.NextCursor
	}
	if _, n = reads(req); n > 3 {
		t.Errorf("oldest first, page 21: %d files read", n)
	}
	// A selective filter reads everything, once.
	if p, n = reads(query.Request{Filter: query.Filter{Resource: "item-0"}}); len(p.Events) != 1 || n != int64(len(files)) {
		t.Errorf("full scan: %d events, %d of %d files read", len(p.Events), n, len(files))
	}
}

func TestCanceled(t *testing.T) {
	dir, _ := bigLog(t, 100, 0)
	r := newReader(t, dir, testKey)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.Query(ctx, query.Request{Filter: query.Filter{Event: "none"}}); err == nil {
		t.Error("canceled query: no error")
	}
}
