package chain

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/rotate"
)

// tornOnlyDir writes a chain whose first session crashed (no close record)
// and whose second crashed while writing its new file's open record,
// leaving a file that holds only torn bytes (FORMAT.md §5); a third session
// continues the chain after it. It returns the directory, the clock and
// the torn-only file's path.
func tornOnlyDir(t *testing.T, onErr func(error)) (dir string, clock func() time.Time, torn string) {
	t.Helper()
	dir, clock = t.TempDir(), fakeClock()
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, OnError: onErr})
	crashAfter(t, files(t, dir)[0], "")
	head := lastLine(t, files(t, dir)[0])
	torn = filepath.Join(dir, "audit-20261127T020000.000000000Z.jsonl")
	openPrefix := fmt.Sprintf(`{"seq":%d,"prev":"%s","rec":"open"`, head.Seq+1, hex.EncodeToString(head.MAC[:]))
	if err := os.WriteFile(torn, []byte(openPrefix[:40]), 0o600); err != nil {
		t.Fatal(err)
	}
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, OnError: onErr})
	assertIntact(t, verify(t, dir, testKey))
	return dir, clock, torn
}

// lastLine returns the last complete line of path.
func lastLine(t *testing.T, path string) Line {
	t.Helper()
	lines := readLines(t, path)
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasSuffix(lines[i], "\n") {
			l, err := ParseLine([]byte(strings.TrimSuffix(lines[i], "\n")))
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
	}
	t.Fatalf("%s holds no complete line", path)
	return Line{}
}

func baseNames(paths []string) []string {
	var names []string
	for _, p := range paths {
		names = append(names, filepath.Base(p))
	}
	return names
}

// Retention removes the file before a torn-only file and then the
// torn-only file itself in the same round: the directory verifies (GAP),
// and retention keeps working in later sessions. Before the fix retention
// refused the torn-only file ("holds no complete line; not pruning it")
// for good, and Verify reported MISSING.
func TestRetentionPrunesTornOnlyFile(t *testing.T) {
	var rerrs []string
	onErr := func(err error) { rerrs = append(rerrs, err.Error()) }
	dir, clock, torn := tornOnlyDir(t, onErr)
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, MaxBackups: 1, OnError: onErr})
	if _, err := os.Stat(torn); !os.IsNotExist(err) {
		t.Errorf("torn-only file still there after retention (MaxBackups 1): %v; files %q", err, baseNames(files(t, dir)))
	}
	rep := verify(t, dir, testKey)
	assertIntact(t, rep)
	assertWarns(t, rep, Gap)
	for range 3 {
		writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, MaxBackups: 1, OnError: onErr})
	}
	if fs := files(t, dir); len(fs) != 2 {
		t.Errorf("MaxBackups 1: files %q after 3 more sessions", baseNames(fs))
	}
	assertIntact(t, verify(t, dir, testKey))
	if len(rerrs) > 0 {
		t.Errorf("retention errors: %q", rerrs)
	}
}

// Retention removes the file before a torn-only file in one session and
// the torn-only file in a later one (a new Writer, which finds the pruned
// record of the file before it in the chain). In between, the chain starts
// after the torn-only file, whose successor names it as prev_file, while
// the pruned record names the file before it: GAP, not MISSING.
func TestRetentionPrunesTornOnlyFileInALaterSession(t *testing.T) {
	var rerrs []string
	onErr := func(err error) { rerrs = append(rerrs, err.Error()) }
	dir, clock, torn := tornOnlyDir(t, onErr)
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, MaxBackups: 2, OnError: onErr})
	if fs := files(t, dir); len(fs) != 3 || fs[0] != torn {
		t.Fatalf("MaxBackups 2: files %q, want the torn-only file first of 3", baseNames(fs))
	}
	rep := verify(t, dir, testKey)
	assertIntact(t, rep)
	assertWarns(t, rep, Gap)

	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, MaxBackups: 2, OnError: onErr})
	if _, err := os.Stat(torn); !os.IsNotExist(err) {
		t.Errorf("torn-only file kept by a later session's retention: files %q, errors %q", baseNames(files(t, dir)), rerrs)
	}
	rep = verify(t, dir, testKey)
	assertIntact(t, rep)
	assertWarns(t, rep, Gap)
	if len(rerrs) > 0 {
		t.Errorf("retention errors: %q", rerrs)
	}
}

// A file whose lines were cut away after the file before it was pruned
// holds no complete line either, but the chain does not continue after it
// from where the pruned record says it stood: Verify reports MISSING, and
// retention refuses to prune it (doing so would account for lines that
// retention never removed).
func TestRetentionRefusesFileCutToNothing(t *testing.T) {
	var rerrs []string
	onErr := func(err error) { rerrs = append(rerrs, err.Error()) }
	dir, clock := t.TempDir(), fakeClock()
	for range 4 {
		writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, OnError: onErr})
	}
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, MaxBackups: 3, OnError: onErr}) // prunes the first
	fs := files(t, dir)
	victim := fs[0]
	for _, cut := range []string{"", `{"seq":8,"prev":"`} {
		if err := os.WriteFile(victim, []byte(cut), 0o600); err != nil {
			t.Fatal(err)
		}
		rep := verify(t, dir, testKey)
		if rep.Intact || !hasClass(rep, Missing) {
			t.Errorf("second file cut to %q after the first was pruned: want MISSING:\n%s", cut, reportText(rep))
		}
	}
	rerrs = nil
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock, MaxBackups: 1, OnError: onErr})
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("retention pruned the cut file: %v", err)
	}
	if len(rerrs) == 0 || !strings.Contains(strings.Join(rerrs, "\n"), "lines are missing") {
		t.Errorf("retention errors %q, want one saying lines are missing", rerrs)
	}
	if rep := verify(t, dir, testKey); rep.Intact {
		t.Errorf("cut file: intact after retention:\n%s", reportText(rep))
	}
}

// The first session crashed while writing the chain's very first open
// record: the first file holds only torn bytes, and seq 1's open record
// names it as prev_file (FORMAT.md §5). That verifies, and retention prunes
// it like any other file (it stalled there for good, and Verify called
// the chain MODIFIED: "seq 1 names a predecessor"). Deleted without a
// pruned record, it is a finding.
func TestChainAfterTornFirstFile(t *testing.T) {
	first := fmt.Sprintf(`{"seq":1,"prev":"%s","rec":"open"`, strings.Repeat("0", 64))
	tornFirst := func(t *testing.T) (dir, torn string) {
		dir = t.TempDir()
		torn = filepath.Join(dir, "audit-20261127T000000.000000000Z.jsonl")
		if err := os.WriteFile(torn, []byte(first[:30]), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir, torn
	}
	clock := fakeClock()

	dir, torn := tornFirst(t)
	writeLog(t, dir, testKey, 5, rotate.Options{Now: clock})
	rep := verify(t, dir, testKey)
	assertIntact(t, rep)
	if rep.FirstSeq != 1 {
		t.Errorf("first seq %d", rep.FirstSeq)
	}
	if err := os.Remove(torn); err != nil {
		t.Fatal(err)
	}
	assertFinds(t, verify(t, dir, testKey), Modified, filepath.Base(files(t, dir)[0]), 0)

	dir, _ = tornFirst(t)
	var errs []error
	ro := rotate.Options{Now: clock, MaxBackups: 1, OnError: func(err error) { errs = append(errs, err) }}
	for range 4 {
		writeLog(t, dir, testKey, 5, ro)
	}
	if len(errs) != 0 {
		t.Errorf("retention: %v", errs)
	}
	if got := baseNames(files(t, dir)); len(got) != 2 {
		t.Errorf("files %v: want 2 (MaxBackups 1)", got)
	}
	rep = verify(t, dir, testKey)
	if !rep.Intact {
		t.Errorf("after retention: %+v", rep.Problems())
	}
}
