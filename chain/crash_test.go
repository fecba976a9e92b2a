//go:build unix

package chain

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/rotate"
)

// The crash loop (issue 6): a child process appends audit records as fast
// as it can, from several goroutines, with every durability feature on
// (SyncAlways or mapped files, size rotation, a forward-secure key file, signed checkpoints
// every 50 lines). It reports each record whose Append returned nil to the
// parent at once; the parent SIGKILLs it at a random moment and starts it
// again on the same directory, over and over. After every kill the parent
// checks that
//
//   - every acknowledged record is in the files, at the seq Append
//     reported, and no record appears twice;
//   - the key file only moves forward, and always holds K(0) evolved to its
//     epoch (so K(0) still verifies everything);
//   - every note in the checkpoints file verifies with the checkpoint key,
//     matches its listing and chains to the note before it;
//
// and, every crashVerifyEvery kills and at the end, that chain.Verify with
// K(0) and the checkpoint key reports the chain Intact, with warnings only:
//
//   - TORN_TAIL "file ends without a close record and a newer file
//     follows": every file a kill interrupted (the next start begins a new
//     file). An "incomplete last line" TORN_TAIL is possible too but rare:
//     SIGKILL does not tear a small write(2) to a regular file, only power
//     loss would.
//   - UNANCHORED: after the last kill, the lines after the last signed
//     note (the child died before it signed the epoch it was in, or in the
//     middle of an epoch). After a clean Close (the last step) there is none.
//   - GAP does not occur: the writer has no retention (MaxBackups, MaxAge),
//     so no file is ever pruned.
//
// One failing finding is expected after a kill, not after Close: TRUNCATED
// "the newest file was closed for rotation ... but no newer file follows",
// when the kill fell between a size rotation's close record and the next
// file's creation (rotate writes the one, then creates the other), or
// "the newest file holds no record", when it fell between creating that
// file and writing its open record. The
// files cannot tell that from the newest file removed with its notes; the
// next start continues the chain from that close record, and the final
// Verify after it must be intact.
//
// Knobs (environment): SLOGAUDIT_CRASH_RESTARTS (default 200; 20 under
// -short and -race), SLOGAUDIT_CRASH_SEED (the random seed of the kill
// delays, logged).

const (
	crashEnvRoot     = "SLOGAUDIT_CRASH_CHILD" // child mode: the test's root directory
	crashEnvRun      = "SLOGAUDIT_CRASH_RUN"   // child: its run number, for unique record ids
	crashEnvRestarts = "SLOGAUDIT_CRASH_RESTARTS"
	crashEnvSeed     = "SLOGAUDIT_CRASH_SEED"

	crashGoroutines  = 4
	crashEvery       = 50       // lines per epoch
	crashMaxBytes    = 16 << 10 // rotate by size every ~80 records
	crashVerifyEvery = 25       // full Verify every this many kills
	crashMinDelay    = 5 * time.Millisecond
	crashMaxDelay    = 60 * time.Millisecond
	crashReadyWait   = 60 * time.Second // generous: a child under -race on a busy machine
)

// crashOptions rotates by run between SyncAlways (the default: zeroed,
// preallocated files, pwrite(2) and fdatasync per batch), SyncNone (records
// copied into memory-mapped, preallocated files) and SyncAlways without
// preallocation (write(2) and fsync per batch): all must survive a SIGKILL
// with every acknowledged record.
func crashOptions(p crashPaths, signer note.Signer, onError func(error), run int) Options {
	policy, prealloc := rotate.SyncAlways, int64(0)
	switch run % 3 {
	case 2:
		policy = rotate.SyncNone
	case 0:
		prealloc = -1
	}
	return Options{
		KeyFile: p.key,
		Rotate: rotate.Options{
			Dir:         p.dir,
			Sync:        policy,
			MaxBytes:    crashMaxBytes,
			Preallocate: prealloc,
		},
		Checkpoints: CheckpointOptions{
			Signer:  signer,
			Every:   crashEvery,
			OnError: onError,
		},
	}
}

// TestCrashChild is the child process of TestCrashLoop; run on its own it
// skips. It writes "ready" once the Writer is open, then "ok <id> <seq>"
// for every record whose Append returned nil, each with one write(2) to
// the pipe (atomic: shorter than PIPE_BUF), until it is killed.
func TestCrashChild(t *testing.T) {
	root := os.Getenv(crashEnvRoot)
	if root == "" {
		t.Skip("the child process of TestCrashLoop")
	}
	run := os.Getenv(crashEnvRun)
	say := func(s string) {
		if _, err := os.Stdout.WriteString(s); err != nil {
			os.Exit(3)
		}
	}
	p := newCrashPaths(root)
	signer, err := ReadSignerFile(p.signer)
	if err != nil {
		say("fail " + oneLine(err.Error()) + "\n")
		os.Exit(2)
	}
	runNo, _ := strconv.Atoi(run)
	w, err := Open(crashOptions(p, signer, func(err error) { say("bgerr " + oneLine(err.Error()) + "\n") }, runNo))
	if err != nil {
		say("fail open: " + oneLine(err.Error()) + "\n")
		os.Exit(2)
	}
	say("ready\n")
	for g := range crashGoroutines {
		go func() {
			var pos Position
			for i := 0; ; i++ {
				id := fmt.Sprintf("r%s-g%d-%d", run, g, i)
				body := fmt.Appendf(nil, `"level":"INFO","msg":"crash loop","id":%q,"pad":"%s"`, id, strings.Repeat("x", i%17))
				if err := w.Append(body, &pos); err != nil {
					say("fail append: " + oneLine(err.Error()) + "\n")
					os.Exit(2)
				}
				say("ok " + id + " " + strconv.FormatUint(pos.Seq, 10) + "\n")
			}
		}()
	}
	// The parent kills us long before this; exit if it is gone.
	time.Sleep(2 * time.Minute)
	say("fail: not killed\n")
	os.Exit(4)
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " | ") }

// crashAck is a record the child acknowledged.
type crashAck struct {
	id  string
	seq uint64
}

// crashRun is what the parent learned from one child.
type crashRun struct {
	acks   []crashAck
	other  []string // unexpected stdout lines
	stderr string
}

// runCrashChild starts the child for run, kills it delay after it reports
// ready, and returns what it reported.
func runCrashChild(t *testing.T, p crashPaths, run int, delay time.Duration) crashRun {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), crashEnvRoot+"="+p.root, crashEnvRun+"="+strconv.Itoa(run))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var res crashRun
	ready := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		br := bufio.NewReader(stdout)
		readyClosed := false
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				// EOF: the child is gone. A line without its newline
				// cannot be an ack: each is written whole.
				if line != "" {
					res.other = append(res.other, line)
				}
				if !readyClosed {
					close(ready)
				}
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "ok "):
				f := strings.Fields(line)
				seq, perr := strconv.ParseUint(f[len(f)-1], 10, 64)
				if len(f) != 3 || perr != nil {
					res.other = append(res.other, line)
					continue
				}
				res.acks = append(res.acks, crashAck{id: f[1], seq: seq})
			case line == "ready" && !readyClosed:
				readyClosed = true
				close(ready)
			default:
				res.other = append(res.other, line)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(crashReadyWait):
		cmd.Process.Kill()
		cmd.Wait()
		<-done
		t.Fatalf("run %d: the child did not open the writer within %v; stdout %q, stderr %s", run, crashReadyWait, res.other, stderr.String())
	}
	// The random moment: a sleep is fine here, the kill may land anywhere.
	time.Sleep(delay)
	killErr := cmd.Process.Kill()
	<-done // the reader sees EOF once the child is dead and its pipe closed
	werr := cmd.Wait()
	res.stderr = stderr.String()
	if killErr != nil || !isKilled(werr) {
		t.Fatalf("run %d: the child ended by itself before the kill (%v, kill: %v); stdout %q, stderr %s", run, werr, killErr, res.other, res.stderr)
	}
	return res
}

func isKilled(err error) bool {
	ee, ok := err.(*exec.ExitError)
	return ok && !ee.Exited() && strings.Contains(ee.Error(), "killed")
}

// crashLine is an audit record found in the files.
type crashLine struct {
	seq  uint64
	file string
}

// crashState is what the parent knows about the directory, built up
// incrementally: files are never appended to after the run that wrote them
// is killed, so each is read once.
type crashState struct {
	t        *testing.T
	p        crashPaths
	k0       []byte
	verifier note.Verifier

	read        map[string]bool      // files already read
	ids         map[string]crashLine // record id -> where it is
	sizeRotates int                  // close records with reason "size"
	closes      int                  // close records
	key         KeyState             // the key file as last seen
	notes       int                  // notes verified so far (the checkpoints file's complete prefix)
	prevNote    [sha256.Size]byte
	lastNote    []byte
	lastNoteSeq uint64
}

// readNewFiles reads the files that appeared since the last call.
func (s *crashState) readNewFiles() {
	t := s.t
	t.Helper()
	paths, err := rotate.List(s.p.dir, DefaultPrefix, DefaultExt)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		name := filepath.Base(path)
		if s.read[name] {
			continue
		}
		s.read[name] = true
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for len(data) > 0 {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break // a torn tail: never part of the chain
			}
			raw := data[:i]
			data = data[i+1:]
			l, err := ParseLine(raw)
			if err != nil {
				t.Fatalf("%s: not a sealed line: %v: %q", name, err, raw)
			}
			switch l.Kind {
			case RecClose:
				var ci CloseInfo
				if err := l.Decode(&ci); err != nil {
					t.Fatalf("%s: close record: %v", name, err)
				}
				s.closes++
				if ci.Reason == "size" {
					s.sizeRotates++
				}
			case "":
				var rec struct {
					ID string `json:"id"`
				}
				if err := l.Decode(&rec); err != nil || rec.ID == "" {
					t.Fatalf("%s: audit record without id (%v): %q", name, err, raw)
				}
				if prev, dup := s.ids[rec.ID]; dup {
					t.Fatalf("record %s appears twice: seq %d in %s and seq %d in %s", rec.ID, prev.seq, prev.file, l.Seq, name)
				}
				s.ids[rec.ID] = crashLine{seq: l.Seq, file: name}
			}
		}
	}
}

// checkAcks checks that every acknowledged record is in the files.
func (s *crashState) checkAcks(run int, acks []crashAck) {
	t := s.t
	t.Helper()
	for _, a := range acks {
		got, ok := s.ids[a.id]
		if !ok {
			t.Fatalf("run %d: record %s (seq %d) was acknowledged (Append returned nil) but is not in the files", run, a.id, a.seq)
		}
		if got.seq != a.seq {
			t.Fatalf("run %d: record %s: Append reported seq %d, the file %s has it at seq %d", run, a.id, a.seq, got.file, got.seq)
		}
	}
}

// checkKeyFile checks that the key file moved forward only, and holds
// K(0) evolved to its epoch.
func (s *crashState) checkKeyFile(run int) {
	t := s.t
	t.Helper()
	ks, err := ReadKeyState(s.p.key)
	if err != nil {
		t.Fatalf("run %d: key file: %v", run, err)
	}
	if ks.ID != KeyID(s.k0) {
		t.Fatalf("run %d: key file names key_id %s, want %s", run, ks.ID, KeyID(s.k0))
	}
	if ks.Epoch < s.key.Epoch {
		t.Fatalf("run %d: key file went back from epoch %d to %d", run, s.key.Epoch, ks.Epoch)
	}
	want, err := s.key.At(ks.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want.Key, ks.Key) {
		t.Fatalf("run %d: the key file at epoch %d is not K(0) evolved to it", run, ks.Epoch)
	}
	s.key = want
}

// checkNotes verifies the notes appended since the last call. Only the
// last line may be torn (a crash while appending; the next Open trims it).
func (s *crashState) checkNotes(run int) {
	t := s.t
	t.Helper()
	path := filepath.Join(s.p.dir, CheckpointsFileName(""))
	entries, err := ReadCheckpointsFile(path)
	if err != nil {
		t.Fatalf("run %d: %v", run, err)
	}
	if len(entries) < s.notes {
		t.Fatalf("run %d: the checkpoints file shrank from %d to %d notes", run, s.notes, len(entries))
	}
	start := s.notes // s.notes counts up in the loop
	for i, e := range entries[start:] {
		if e.Err != nil {
			data, _ := os.ReadFile(path)
			if start+i == len(entries)-1 && !bytes.HasSuffix(data, []byte("\n")) {
				t.Logf("run %d: torn last line in the checkpoints file (the next Open trims it)", run)
				break
			}
			// Say what both reads saw: a torn last line that reads as
			// complete the second time means something still wrote.
			t.Fatalf("run %d: checkpoints file line %d of %d: %v; torn %v; the file read again: %d bytes, ending %q",
				run, e.Line, len(entries), e.Err, e.Torn, len(data), data[max(0, len(data)-48):])
		}
		c, err := OpenCheckpoint(e.Note, s.verifier)
		if err != nil {
			t.Fatalf("run %d: checkpoints file line %d does not verify: %v", run, e.Line, err)
		}
		if c.Seq != e.Seq || c.Epoch != e.Epoch {
			t.Fatalf("run %d: checkpoints file line %d lists seq %d epoch %d, the note says seq %d epoch %d", run, e.Line, e.Seq, e.Epoch, c.Seq, c.Epoch)
		}
		if c.Prev != s.prevNote {
			t.Fatalf("run %d: checkpoints file line %d (seq %d) does not chain to the note before it", run, e.Line, c.Seq)
		}
		if s.lastNote != nil && c.Seq <= s.lastNoteSeq {
			t.Fatalf("run %d: checkpoints file line %d: seq %d after seq %d", run, e.Line, c.Seq, s.lastNoteSeq)
		}
		s.prevNote, s.lastNote, s.lastNoteSeq = sha256.Sum256(e.Note), e.Note, c.Seq
		s.notes++
	}
}

// verifyAll runs Verify on the whole directory. closed: the last writer
// was closed cleanly, so nothing is unanchored.
func (s *crashState) verifyAll(run int, closed bool) *Report {
	t := s.t
	t.Helper()
	opts := VerifyOptions{Key: s.k0, CheckpointKey: s.verifier, Trusted: s.lastNote}
	rep, err := Verify(s.p.dir, opts)
	if err != nil {
		t.Fatalf("run %d: Verify: %v", run, err)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("run %d: %s; report:\n%s", run, fmt.Sprintf(format, args...), lastLines(text.String(), 40))
	}
	newest := rep.Files[len(rep.Files)-1]
	betweenFiles := false // killed between a rotation's close record and the next file
	for _, p := range rep.Problems() {
		switch {
		case p.Class == TornTail:
		case p.Class == Unanchored && !closed:
		case p.Class == Truncated && !closed && newest.Closed && p.File == newest.Name && p.Seq == newest.LastSeq &&
			strings.Contains(p.Detail, "closed for rotation"):
			betweenFiles = true
		case p.Class == Truncated && !closed && newest.Lines == 0 && p.File == newest.Name &&
			strings.Contains(p.Detail, "holds no record"):
			betweenFiles = true // killed between creating the next file and its open record
		default:
			fail("unexpected %s: %+v", p.Class, p)
		}
	}
	if !rep.Intact && !betweenFiles {
		fail("not intact")
	}
	if betweenFiles {
		t.Logf("run %d: killed between a rotation's close record and the next file", run)
	}
	if !rep.NotesSigned || rep.Notes != s.notes {
		fail("%d notes matched the chain (signed: %v), the checkpoints file holds %d", rep.Notes, rep.NotesSigned, s.notes)
	}
	// The key file never runs ahead of the epoch ends in the files: a key
	// at epoch E means the lines ending epochs 0..E-1 are durable.
	if s.key.Epoch > rep.Epochs {
		fail("the key file is at epoch %d but the files end only %d epochs", s.key.Epoch, rep.Epochs)
	}
	if rep.FirstSeq != 1 {
		fail("the chain starts at seq %d", rep.FirstSeq)
	}
	return rep
}

func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines]\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

func TestCrashLoop(t *testing.T) {
	if os.Getenv(crashEnvRoot) != "" {
		t.Skip("in the child")
	}
	restarts := 200
	if testing.Short() || raceEnabled {
		restarts = 20
	}
	if v := os.Getenv(crashEnvRestarts); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q", crashEnvRestarts, v)
		}
		restarts = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(crashEnvSeed); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q", crashEnvSeed, v)
		}
	}
	t.Logf("%d restarts, %s=%d", restarts, crashEnvSeed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	p := newCrashPaths(t.TempDir())
	k0 := GenerateKey()
	if err := WriteKeyFile(p.key, k0); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := GenerateSigner("crash-loop")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.signer, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	s := &crashState{
		t: t, p: p, k0: bytes.Clone(k0), verifier: verifier,
		read: make(map[string]bool), ids: make(map[string]crashLine),
		key: NewKeyState(k0),
	}

	start := time.Now()
	acked, minAcks, maxAcks := 0, -1, 0
	for run := 1; run <= restarts; run++ {
		delay := crashMinDelay + time.Duration(rng.Int64N(int64(crashMaxDelay-crashMinDelay)))
		res := runCrashChild(t, p, run, delay)
		for _, o := range res.other {
			// fail, bgerr (a background error: fsync, key file, notes),
			// or the test framework's own output: none is expected.
			t.Fatalf("run %d: unexpected output from the child: %q; stderr %s", run, o, res.stderr)
		}
		s.readNewFiles()
		s.checkAcks(run, res.acks)
		s.checkKeyFile(run)
		s.checkNotes(run)
		if run%crashVerifyEvery == 0 || run == restarts {
			s.verifyAll(run, false)
		}
		acked += len(res.acks)
		if minAcks < 0 || len(res.acks) < minAcks {
			minAcks = len(res.acks)
		}
		maxAcks = max(maxAcks, len(res.acks))
	}
	t.Logf("%d kills in %v: %d records acknowledged (%d-%d per run), %d in the files; %d files, %d close records (%d size rotations); key at epoch %d; %d notes",
		restarts, time.Since(start).Round(time.Millisecond), acked, minAcks, maxAcks, len(s.ids), len(s.read), s.closes, s.sizeRotates, s.key.Epoch, s.notes)
	if acked == 0 {
		t.Fatal("no record was acknowledged: the loop tested nothing")
	}

	// Finally a clean start and Close in this process: it resumes after
	// the last crash, signs what the crash left unsigned, and leaves a
	// chain that is anchored to its end.
	signer, err := ReadSignerFile(p.signer)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var bgErrs []error
	w, err := Open(crashOptions(p, signer, func(err error) { mu.Lock(); bgErrs = append(bgErrs, err); mu.Unlock() }, 1))
	if err != nil {
		t.Fatalf("Open after the last crash: %v", err)
	}
	var pos Position
	if err := w.Append([]byte(`"level":"INFO","msg":"crash loop","id":"final"`), &pos); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(bgErrs) > 0 {
		t.Fatalf("background errors: %v", bgErrs)
	}
	s.readNewFiles()
	s.checkAcks(restarts+1, []crashAck{{id: "final", seq: pos.Seq}})
	s.checkKeyFile(restarts + 1)
	s.checkNotes(restarts + 1)
	rep := s.verifyAll(restarts+1, true)
	if rep.AnchoredSeq != rep.LastSeq {
		t.Errorf("after Close, anchored through seq %d of %d", rep.AnchoredSeq, rep.LastSeq)
	}
	torn := 0
	for _, p := range rep.Problems() {
		if p.Class == TornTail {
			torn++
		}
	}
	t.Logf("final report: %d files, %d lines, %d epochs, %d notes, %d TORN_TAIL warnings", len(rep.Files), rep.Lines, rep.Epochs, rep.Notes, torn)
}
