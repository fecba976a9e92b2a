//go:build race

package rotate

const raceEnabled = true
