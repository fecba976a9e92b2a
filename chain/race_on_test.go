//go:build race

package chain

// raceEnabled: the race detector slows the crash loop (process start-up
// and every write) several times, so it runs its short count.
const raceEnabled = true
