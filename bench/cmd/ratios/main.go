// Command ratios reads `go test -bench` output and prints the target ratios
// of slogaudit against its peers, each computed from the medians of the
// runs, with PASS, FAIL or n/a.
//
//	go run ./cmd/ratios [-strict] raw.txt...
//
// With no file it reads standard input. -strict exits 1 if a ratio fails.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// samples[name][unit] holds every run's value; name has no -GOMAXPROCS suffix.
type samples map[string]map[string][]float64

// order is the benchmarks' first-seen order.
var order []string

var (
	benchLine = regexp.MustCompile(`^(Benchmark[^\s]+?)(?:-\d+)?\s+\d+\s+(.+)$`)
	skipLine  = regexp.MustCompile(`^\s*--- SKIP: (Benchmark[^\s]+?)(?:-\d+)?(?:\s|$)`)
)

func parse(r io.Reader, s samples, skipped map[string]bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := skipLine.FindStringSubmatch(line); m != nil {
			skipped[m[1]] = true
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			if s[m[1]] == nil {
				s[m[1]] = map[string][]float64{}
				order = append(order, m[1])
			}
			s[m[1]][f[i+1]] = append(s[m[1]][f[i+1]], v)
		}
	}
	return sc.Err()
}

// median is the middle value, or the mean of the two middle values.
func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

type ratio struct {
	label  string
	num    [2]string // benchmark (without "Benchmark"), unit
	den    [2]string // empty name: the value is num alone
	invert bool      // value = den/num (throughput from ns/op)
	diff   bool      // value = num-den
	sub    [2]string // if set, value = (num-sub)/den
	cmp    string    // "<=", ">=" or "=="; "" for information only
	target float64
	note   string
}

var ratios = []ratio{
	{label: "AuditFileNone / PeerSlogJSONLumberjack (ns/op)", num: [2]string{"AuditFileNone", "ns/op"}, den: [2]string{"PeerSlogJSONLumberjack", "ns/op"}, cmp: "<=", target: 1.0},
	{label: "  same, CPU time", num: [2]string{"AuditFileNone", "cpu-ns/op"}, den: [2]string{"PeerSlogJSONLumberjack", "cpu-ns/op"}, target: 1.0, note: "less sensitive to other tenants"},
	{label: "AuditFileNone allocs/op", num: [2]string{"AuditFileNone", "allocs/op"}, cmp: "==", target: 0},
	{label: "AuditFileNone - DiagRecordOnly allocs/op (handler's own)", num: [2]string{"AuditFileNone", "allocs/op"}, den: [2]string{"DiagRecordOnly", "allocs/op"}, diff: true, target: 0, note: "the record's own allocations taken out"},
	{label: "AppPassthrough / PeerAppBare (ns/op)", num: [2]string{"AppPassthrough", "ns/op"}, den: [2]string{"PeerAppBare", "ns/op"}, cmp: "<=", target: 1.05},
	{label: "  same, CPU time", num: [2]string{"AppPassthrough", "cpu-ns/op"}, den: [2]string{"PeerAppBare", "cpu-ns/op"}, target: 1.05, note: "less sensitive to other tenants"},
	{label: "AppPassthrough / DiagPeerAppBareTrace (CPU time)", num: [2]string{"AppPassthrough", "cpu-ns/op"}, den: [2]string{"DiagPeerAppBareTrace", "cpu-ns/op"}, target: 1.05, note: "like-for-like peer: same trace_id/span_id added"},
	{label: "AuditFileOTLP / PeerOtelslogBatch (ns/op)", num: [2]string{"AuditFileOTLP", "ns/op"}, den: [2]string{"PeerOtelslogBatch", "ns/op"}, cmp: "<=", target: 0.5},
	{label: "  same, the caller thread's own CPU time", num: [2]string{"AuditFileOTLP", "caller-cpu-ns/op"}, den: [2]string{"PeerOtelslogBatch", "caller-cpu-ns/op"}, target: 0.5, note: "without background goroutines' work"},
	{label: "  the OTLP leg alone, caller's CPU: (AuditFileOTLP - AuditFileNone) / PeerOtelslogBatch", num: [2]string{"AuditFileOTLP", "caller-cpu-ns/op"}, den: [2]string{"PeerOtelslogBatch", "caller-cpu-ns/op"}, sub: [2]string{"AuditFileNone", "caller-cpu-ns/op"}, target: 0.5, note: "what the OTLP leg adds on the logging goroutine"},
	{label: "AuditParallelAlways / NaiveParallelFsync (throughput)", num: [2]string{"AuditParallelAlways", "ns/op"}, den: [2]string{"NaiveParallelFsync", "ns/op"}, invert: true, cmp: ">=", target: 30},
	{label: "RedactDiscard / PeerMasq (ns/op)", num: [2]string{"RedactDiscard", "ns/op"}, den: [2]string{"PeerMasq", "ns/op"}, cmp: "<=", target: 0.33},
	{label: "  same, CPU time", num: [2]string{"RedactDiscard", "cpu-ns/op"}, den: [2]string{"PeerMasq", "cpu-ns/op"}, target: 0.33, note: "less sensitive to other tenants"},
	{label: "  same, masq with minimal rules: RedactDiscard / DiagPeerMasqFew (ns/op)", num: [2]string{"RedactDiscard", "ns/op"}, den: [2]string{"DiagPeerMasqFew", "ns/op"}, target: 0.33, note: "six names and three patterns, not redact.Default()'s rules"},
	// Issue 3: redaction on a clean record costs at most 10 %, in each of
	// the three forms. The interleaved pairs (RedactPair*) measure the same
	// thing with both sides under the same load.
	{label: "redaction on/off, audit path: AuditFileNone / DiagAuditFileNoneNoRedaction (ns/op)", num: [2]string{"AuditFileNone", "ns/op"}, den: [2]string{"DiagAuditFileNoneNoRedaction", "ns/op"}, cmp: "<=", target: 1.10},
	{label: "  same, CPU time", num: [2]string{"AuditFileNone", "cpu-ns/op"}, den: [2]string{"DiagAuditFileNoneNoRedaction", "cpu-ns/op"}, target: 1.10, note: "less sensitive to other tenants"},
	{label: "  same, interleaved: RedactPairAudit", num: [2]string{"RedactPairAudit", "on/off"}, cmp: "<=", target: 1.10},
	{label: "redaction on/off, app path: AppPassthrough / DiagAppPassthroughNoRedaction (ns/op)", num: [2]string{"AppPassthrough", "ns/op"}, den: [2]string{"DiagAppPassthroughNoRedaction", "ns/op"}, cmp: "<=", target: 1.10},
	{label: "  same, CPU time", num: [2]string{"AppPassthrough", "cpu-ns/op"}, den: [2]string{"DiagAppPassthroughNoRedaction", "cpu-ns/op"}, target: 1.10, note: "less sensitive to other tenants"},
	{label: "  same, interleaved: RedactPairApp", num: [2]string{"RedactPairApp", "on/off"}, cmp: "<=", target: 1.10},
	{label: "redaction on/off, redact.Handler over JSON: RedactDiscard / PeerAppBare (ns/op)", num: [2]string{"RedactDiscard", "ns/op"}, den: [2]string{"PeerAppBare", "ns/op"}, cmp: "<=", target: 1.10},
	{label: "  same, CPU time", num: [2]string{"RedactDiscard", "cpu-ns/op"}, den: [2]string{"PeerAppBare", "cpu-ns/op"}, target: 1.10, note: "less sensitive to other tenants"},
	{label: "  same, interleaved: RedactPairWrapper", num: [2]string{"RedactPairWrapper", "on/off"}, cmp: "<=", target: 1.10},
	{label: "  the floor under it: a pass-through wrapper, interleaved: DiagPairWrapperPass", num: [2]string{"DiagPairWrapperPass", "on/off"}, target: 1.10, note: "passes each record on, checks nothing"},
	{label: "  the floor under it: visiting each attribute, interleaved: DiagPairWrapperVisit", num: [2]string{"DiagPairWrapperVisit", "on/off"}, target: 1.10, note: "Record.Attrs with a callback that sums key lengths, then passes on"},
	{label: "Verify / SHA256Raw (MB/s)", num: [2]string{"Verify", "MB/s"}, den: [2]string{"SHA256Raw", "MB/s"}, cmp: ">=", target: 0.3},
	{label: "  same, CPU time", num: [2]string{"Verify", "cpu-ns/op"}, den: [2]string{"SHA256Raw", "cpu-ns/op"}, invert: true, target: 0.3, note: "less sensitive to other tenants"},
}

func main() {
	strict := flag.Bool("strict", false, "exit 1 if any ratio fails")
	flag.Parse()
	s, skipped := samples{}, map[string]bool{}
	if flag.NArg() == 0 {
		if err := parse(os.Stdin, s, skipped); err != nil {
			fatal(err)
		}
	}
	for _, name := range flag.Args() {
		f, err := os.Open(name)
		if err != nil {
			fatal(err)
		}
		err = parse(f, s, skipped)
		f.Close()
		if err != nil {
			fatal(err)
		}
	}

	get := func(b [2]string) (float64, int, string) {
		v := s["Benchmark"+b[0]][b[1]]
		if len(v) == 0 {
			if skipped["Benchmark"+b[0]] {
				return 0, 0, b[0] + " skipped"
			}
			if s["Benchmark"+b[0]] != nil {
				return 0, 0, b[0] + ": no " + b[1]
			}
			return 0, 0, b[0] + " not run"
		}
		return median(v), len(v), ""
	}

	printMedians(s, order)

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ratio (medians)\tnumerator\tdenominator\tvalue\ttarget\tverdict")
	failed := false
	for _, r := range ratios {
		target := ""
		if r.cmp != "" {
			target = fmt.Sprintf("%s %s", r.cmp, fmtNum(r.target))
		} else {
			cmp := "<= "
			switch {
			case r.diff:
				cmp = ""
			case r.invert:
				cmp = ">= "
			}
			target = fmt.Sprintf("(%s%s)", cmp, fmtNum(r.target))
		}
		nv, nn, nerr := get(r.num)
		if r.sub[0] != "" && nerr == "" {
			sv, _, serr := get(r.sub)
			if serr != "" {
				nerr = serr
			}
			nv -= sv
		}
		var dv float64
		var dn int
		var derr string
		if r.den[0] != "" {
			dv, dn, derr = get(r.den)
		}
		numS := fmt.Sprintf("%s %s (n=%d)", fmtNum(nv), r.num[1], nn)
		denS := "-"
		if r.den[0] != "" {
			denS = fmt.Sprintf("%s %s (n=%d)", fmtNum(dv), r.den[1], dn)
		}
		if nerr != "" {
			numS = nerr
		}
		if derr != "" {
			denS = derr
		}
		if nerr != "" || derr != "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\tn/a\t%s\tn/a\n", r.label, numS, denS, target)
			continue
		}
		val := nv
		if r.den[0] != "" {
			if r.diff {
				val = nv - dv
			} else if r.invert {
				val = dv / nv
			} else {
				val = nv / dv
			}
		}
		verdict := "INFO"
		switch r.cmp {
		case "<=":
			verdict = passFail(val <= r.target)
		case ">=":
			verdict = passFail(val >= r.target)
		case "==":
			verdict = passFail(val == r.target)
		}
		if verdict == "FAIL" {
			failed = true
		}
		if r.note != "" {
			verdict += " (" + r.note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.label, numS, denS, fmtNum(val), target, verdict)
	}
	tw.Flush()
	if failed && *strict {
		os.Exit(1)
	}
}

// printMedians prints one line per benchmark with the median of each unit.
func printMedians(s samples, order []string) {
	units := []string{"ns/op", "cpu-ns/op", "caller-cpu-ns/op", "MB/s", "B/op", "allocs/op", "on/off"}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprint(tw, "benchmark (medians)\tn\t")
	for _, u := range units {
		fmt.Fprintf(tw, "%s\t", u)
	}
	fmt.Fprintln(tw)
	for _, name := range order {
		n := 0
		for _, v := range s[name] {
			n = max(n, len(v))
		}
		fmt.Fprintf(tw, "%s\t%d\t", strings.TrimPrefix(name, "Benchmark"), n)
		for _, u := range units {
			if v := s[name][u]; len(v) > 0 {
				fmt.Fprintf(tw, "%s\t", fmtNum(median(v)))
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	fmt.Println()
}

func passFail(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}

func fmtNum(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "ratios:", err)
	os.Exit(2)
}
