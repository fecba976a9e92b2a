package rotate_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/slogaudit/slogaudit/rotate"
)

func Example() {
	dir, err := os.MkdirTemp("", "rotate-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// A fixed clock makes the file names predictable.
	now := time.Date(2024, 1, 1, 23, 59, 0, 0, time.UTC)
	w, err := rotate.New(rotate.Options{
		Dir:      dir,
		MaxBytes: 16,
		Interval: 24 * time.Hour, // daily, at 00:00 UTC
		Sync:     rotate.SyncAlways,
		Now:      func() time.Time { return now },
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, rec := range []string{"one\n", "two\n", "three\n", "four\n"} {
		if _, err := w.Write([]byte(rec)); err != nil {
			log.Fatal(err)
		}
	}
	now = now.Add(time.Minute) // midnight
	if _, err := w.Write([]byte("five\n")); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}

	paths, err := rotate.List(dir, "audit", ".jsonl")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %q\n", filepath.Base(p), b)
	}
	// Output:
	// audit-20240101T235900.000000000Z.jsonl "one\ntwo\nthree\n"
	// audit-20240101T235900.000000001Z.jsonl "four\n"
	// audit-20240102T000000.000000000Z.jsonl "five\n"
}
