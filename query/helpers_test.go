package query_test

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

var testKey = bytes.Repeat([]byte{0x5a}, chain.KeySize)

// openLog opens an audit handler on dir, closed at the end of the test.
func openLog(t testing.TB, dir string, key []byte, ro rotate.Options) *handler.Handler {
	t.Helper()
	h, err := handler.New(handler.Options{Dir: dir, Key: key, Rotate: ro, App: slog.DiscardHandler})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// logAt writes one audit record with time tm and the given attributes.
func logAt(t testing.TB, ctx context.Context, h slog.Handler, tm time.Time, msg string, attrs ...slog.Attr) {
	t.Helper()
	r := slog.NewRecord(tm, slog.LevelInfo, msg, 0)
	r.AddAttrs(handler.Audit)
	r.AddAttrs(attrs...)
	if err := h.Handle(ctx, r); err != nil {
		t.Fatal(err)
	}
}

func newReader(t testing.TB, dir string, key []byte) *query.Reader {
	t.Helper()
	r, err := query.NewReader(dir, query.Options{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustQuery(t testing.TB, r *query.Reader, req query.Request) query.Page {
	t.Helper()
	p, err := r.Query(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// auditSeqs reads dir independently of package query and returns the seqs
// of its audit records (not open or close records), oldest first.
func auditSeqs(t testing.TB, dir string) []uint64 {
	t.Helper()
	files, err := rotate.List(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, path := range files {
		rd, err := rotate.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(rd)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			l, err := chain.ParseLine(sc.Bytes())
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if l.Kind == "" {
				seqs = append(seqs, l.Seq)
			}
		}
		rd.Close()
	}
	return seqs
}

// plainFile returns the path of the only audit file in dir.
func plainFile(t testing.TB, dir string) string {
	t.Helper()
	files, err := rotate.List(dir, "", "")
	if err != nil || len(files) != 1 {
		t.Fatalf("files %v %v", files, err)
	}
	return files[0]
}

func gzCount(t testing.TB, dir string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, "*.gz"))
	return len(m)
}
