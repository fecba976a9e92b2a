// Command prebuild builds the test peers into the testpeers cache, so that
// tests find them ready. build.sh runs it; CI runs build.sh before the tests
// to pay the cold build (minutes) once, outside any test timeout.
//
//	go run ./internal/testpeers/prebuild [-j N] [peer ...]
package main

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/slogaudit/slogaudit/internal/testpeers"
)

func main() {
	jobs := flag.Int("j", 2, "peers built at the same time (each go build already uses every core)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: prebuild [-j N] [peer ...]\npeers: %v (default: all)\n", testpeers.Names())
		flag.PrintDefaults()
	}
	flag.Parse()
	names := flag.Args()
	if len(names) == 0 {
		// Longest first, so the slowest build starts at once.
		names = []string{"jaeger", "collector", "victorialogs"}
	}
	fmt.Printf("testpeers cache: %s\n", testpeers.CacheDir())

	start := time.Now()
	sem := make(chan struct{}, max(*jobs, 1))
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed bool
	)
	for _, name := range names {
		sem <- struct{}{} // in order: the first names start first
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t0 := time.Now()
			bin, out, err := testpeers.BuildBinary(name)
			d := time.Since(t0).Round(100 * time.Millisecond)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = true
				fmt.Printf("FAIL %-12s %8s  %v\n%s\n", name, d, err, out)
				return
			}
			fmt.Printf("ok   %-12s %8s  %s\n", name, d, bin)
		}()
	}
	wg.Wait()
	fmt.Printf("total %s\n", time.Since(start).Round(100*time.Millisecond))
	if failed {
		os.Exit(1)
	}
}
