package chain

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/rotate"
)

// FuzzVerify mutates a small valid chain and checks Verify's verdict.
//
// The chain is testdata/fuzzverify: written by Open/Append/Close with
// testKey as K(0), signed checkpoints every 4 lines (workedSigner), size
// rotation, a restart, and its oldest file gzipped (TestFuzzVerifySeedDir
// regenerates it with SLOGAUDIT_UPDATE_FUZZ_SEED=1 and checks it).
//
// The fuzz input is the directory itself:
//
//	flags  name₁ 0x00 content₁ 0x00 name₂ 0x00 content₂ …
//
// flags bit 0 passes the chain's last note as VerifyOptions.Trusted. A file
// whose name ends in .gz is gzipped as it is written, so the fuzzer mutates
// its content, not its compressed bytes (gzip's own header fields are not
// sealed). The fuzzer can thus flip, insert and delete bytes, copy lines
// within and across files, rename, add and drop files, and edit the
// checkpoints file.
//
// Verify must never panic, and never report Intact when the mutation
// changed what is sealed. What may legitimately stay Intact (allowedIntact):
//
//   - torn tails (bytes after the last newline of a file) and files with no
//     complete line: crash states (but see TestVerifyTornTailAfterCloseFails:
//     after a close record a torn tail cannot be a crash; the assertion
//     leaves them out until that is fixed);
//   - the checkpoints file holding a contiguous run of the original notes
//     (JSON spelling and the unsigned seq/epoch listing do not matter): a
//     suffix dropped is the documented end-of-chain limit (FORMAT.md §8); a
//     prefix dropped is not detected either (the first note's prev is not
//     checked against zero);
//   - without Trusted, the chain cut at its end (whole newest files, or the
//     newest file's last lines), when no remaining note covers the cut
//     (FORMAT.md §8).
//
// Everything else (any complete line changed, added, moved or dropped
// inside the chain, a file renamed, a note forged) must fail. And the
// unchanged directory must be Intact with no problem at all.
func FuzzVerify(f *testing.F) {
	orig, err := readFuzzDir(filepath.Join("testdata", "fuzzverify"))
	if err != nil {
		f.Fatal(err)
	}
	origView := chainViewOf(f, filepath.Join("testdata", "fuzzverify"))
	if len(origView.notes) == 0 {
		f.Fatal("seed chain has no notes")
	}
	seed := encodeFuzzDir(orig)
	f.Add(append([]byte{0}, seed...))
	f.Add(append([]byte{1}, seed...))
	_, verifier, _ := workedSigner(f)
	trustedNote := []byte(origView.notes[len(origView.notes)-1].text)

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		trusted := data[0]&1 != 0
		entries, ok := decodeFuzzDir(data[1:])
		if !ok {
			return
		}
		dir := t.TempDir()
		for _, e := range entries {
			content := e.content
			if strings.HasSuffix(e.name, ".gz") {
				var buf bytes.Buffer
				zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
				zw.Write(content)
				zw.Close()
				content = buf.Bytes()
			}
			if err := os.WriteFile(filepath.Join(dir, e.name), content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		mut := chainViewOf(t, dir)
		if mut.maxEpoch > fuzzMaxEpoch {
			// TestVerifyForgedOpenEpochIsCheap: an unauthenticated epoch
			// drives the key derivation, one HMAC per epoch. Skip until
			// that is fixed, or the fuzzer only finds that hang.
			return
		}
		opts := VerifyOptions{Key: testKey, CheckpointKey: verifier}
		if trusted {
			opts.Trusted = trustedNote
		}
		rep, err := Verify(dir, opts)
		if err != nil {
			return // not judged (e.g. no files): not Intact either
		}
		if mut.identical(origView) {
			if !rep.Intact || len(rep.Problems()) > 0 {
				t.Fatalf("the unchanged chain does not verify cleanly:\n%s", reportText(rep))
			}
			return
		}
		if rep.Intact {
			if why := allowedIntact(origView, mut, trusted); why != "" {
				t.Fatalf("Verify reports INTACT, but %s:\n%s", why, reportText(rep))
			}
		}
	})
}

// fuzzMaxEpoch bounds the epochs the fuzz target lets through.
const fuzzMaxEpoch = 256

type fuzzEntry struct {
	name    string
	content []byte // uncompressed
}

// readFuzzDir reads a directory as fuzz entries, decompressing .gz files.
func readFuzzDir(dir string) ([]fuzzEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []fuzzEntry
	for _, de := range ents {
		data, err := readMaybeGzip(filepath.Join(dir, de.Name()))
		if err != nil {
			return nil, err
		}
		out = append(out, fuzzEntry{name: de.Name(), content: data})
	}
	return out, nil
}

func readMaybeGzip(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(path, ".gz") {
		return data, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

func encodeFuzzDir(es []fuzzEntry) []byte {
	var b []byte
	for i, e := range es {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, e.name...)
		b = append(b, 0)
		b = append(b, e.content...)
	}
	return b
}

// decodeFuzzDir splits name/content pairs; it rejects names that are not
// plain, distinct file names.
func decodeFuzzDir(b []byte) ([]fuzzEntry, bool) {
	parts := bytes.Split(b, []byte{0})
	if len(parts)%2 != 0 {
		return nil, false
	}
	seen := make(map[string]bool)
	var es []fuzzEntry
	for i := 0; i < len(parts); i += 2 {
		name := string(parts[i])
		if name == "" || name == "." || name == ".." || len(name) > 200 || strings.ContainsRune(name, '/') || seen[name] {
			return nil, false
		}
		seen[name] = true
		es = append(es, fuzzEntry{name: name, content: parts[i+1]})
	}
	return es, true
}

// chainView is what a directory holds as far as the chain is concerned.
type chainView struct {
	files    []viewFile // files rotate.List lists that hold a complete line, in order
	torn     bool       // some listed file has a torn tail or no complete line
	notes    []viewNote // checkpoints file entries that decode, in order
	badNotes bool       // some entry does not decode
	maxEpoch uint64     // largest epoch member of any open, checkpoint or close line
}

type viewFile struct {
	name  string   // base name (without .gz)
	lines []string // complete lines, without newlines
}

type viewNote struct {
	text string
	seq  uint64 // from the note body (unverified)
}

func chainViewOf(t testing.TB, dir string) chainView {
	t.Helper()
	var v chainView
	paths, err := rotate.List(dir, DefaultPrefix, DefaultExt)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range paths {
		data, err := readMaybeGzip(path)
		if err != nil {
			t.Fatal(err)
		}
		vf := viewFile{name: BaseName(path)}
		for {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			line := data[:i]
			data = data[i+1:]
			vf.lines = append(vf.lines, string(line))
			if l, err := ParseLine(line); err == nil && l.Kind != "" && l.Kind != RecPruned {
				var e struct {
					Epoch uint64 `json:"epoch"`
				}
				if l.Decode(&e) == nil {
					v.maxEpoch = max(v.maxEpoch, e.Epoch)
				}
			}
		}
		if len(data) > 0 || len(vf.lines) == 0 {
			v.torn = true
		}
		if len(vf.lines) > 0 {
			v.files = append(v.files, vf)
		}
	}
	entries, err := ReadCheckpointsFile(filepath.Join(dir, CheckpointsFileName("")))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Err != nil {
			v.badNotes = true
			continue
		}
		c, _ := parseUnverifiedNote(e.Note)
		v.notes = append(v.notes, viewNote{text: string(e.Note), seq: c.Seq})
	}
	return v
}

func (v chainView) lastSeq() uint64 {
	if len(v.files) == 0 {
		return 0
	}
	lines := v.files[len(v.files)-1].lines
	l, err := ParseLine([]byte(lines[len(lines)-1]))
	if err != nil {
		return 0
	}
	return l.Seq
}

func filesEqual(a, b []viewFile) bool {
	return slices.EqualFunc(a, b, func(x, y viewFile) bool { return x.name == y.name && slices.Equal(x.lines, y.lines) })
}

// identical: the same chain, no crash traces, every original note.
func (v chainView) identical(orig chainView) bool {
	return !v.torn && !v.badNotes && filesEqual(v.files, orig.files) && slices.Equal(v.notes, orig.notes)
}

// allowedIntact returns "" if the mutated view mut may verify Intact (see
// FuzzVerify), or why it must not.
func allowedIntact(orig, mut chainView, trusted bool) string {
	// Notes: a contiguous run of the originals.
	run := false
	for a := 0; a <= len(orig.notes) && !run; a++ {
		if len(mut.notes) <= len(orig.notes)-a && slices.Equal(mut.notes, orig.notes[a:a+len(mut.notes)]) {
			run = true
		}
	}
	if !run {
		return "the checkpoints file is not a contiguous run of the signed notes (a note was changed, forged, reordered, duplicated or dropped in the middle)"
	}
	if filesEqual(mut.files, orig.files) {
		return ""
	}
	if trusted {
		return "complete lines or files differ from what was sealed, and a trusted checkpoint covers the whole chain"
	}
	// The chain cut at its end: every file but the last equal, the last a
	// prefix of the original file of the same name.
	n := len(mut.files)
	if n > len(orig.files) || !filesEqual(mut.files[:max(n-1, 0)], orig.files[:max(n-1, 0)]) ||
		(n > 0 && (mut.files[n-1].name != orig.files[n-1].name || !isPrefix(mut.files[n-1].lines, orig.files[n-1].lines))) {
		return "complete lines or files differ from what was sealed (changed, inserted, moved, renamed or dropped inside the chain)"
	}
	// A newest file closed for rotation says its writer started a newer
	// one (mut.torn: a file with no complete line may follow it).
	if n > 0 && !mut.torn {
		lines := mut.files[n-1].lines
		var ci CloseInfo
		if l, err := ParseLine([]byte(lines[len(lines)-1])); err == nil && l.Kind == RecClose && l.Decode(&ci) == nil && ci.Reason != "close" {
			return fmt.Sprintf("the newest file ends with a close record for rotation (reason %q) and no newer file follows", ci.Reason)
		}
	}
	last := mut.lastSeq()
	for _, nt := range mut.notes {
		if nt.seq > last {
			return fmt.Sprintf("the chain was cut at seq %d but a signed note covers seq %d", last, nt.seq)
		}
	}
	return ""
}

func isPrefix(a, b []string) bool { return len(a) <= len(b) && slices.Equal(a, b[:len(a)]) }

// TestFuzzVerifySeedDir checks FuzzVerify's seed chain (and regenerates it
// with SLOGAUDIT_UPDATE_FUZZ_SEED=1): Intact with no problem at all, and
// holding what the fuzzer should play with.
func TestFuzzVerifySeedDir(t *testing.T) {
	seedDir := filepath.Join("testdata", "fuzzverify")
	signer, verifier, _ := workedSigner(t)
	if os.Getenv("SLOGAUDIT_UPDATE_FUZZ_SEED") != "" {
		dir := t.TempDir()
		clock := fakeClock()
		for _, n := range []int{7, 4} { // a size rotation, then a restart
			w, err := Open(Options{
				Key:         testKey,
				Rotate:      rotate.Options{Dir: dir, MaxBytes: 1200, Now: clock},
				Checkpoints: CheckpointOptions{Signer: signer, Every: 4, Interval: -1, Origin: "slogaudit/fuzz"},
			})
			if err != nil {
				t.Fatal(err)
			}
			for i := range n {
				if err := w.Append(fmt.Appendf(nil, `"level":"INFO","msg":"m%d","user":{"id":%d}`, i, i), nil); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		fs := files(t, dir)
		data, err := os.ReadFile(fs[0]) // the oldest file, compressed
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
		if err := os.WriteFile(fs[0]+".gz", buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Remove(fs[0])
		os.RemoveAll(seedDir)
		if err := os.MkdirAll(seedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(seedDir, e.Name()), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	rep, err := Verify(seedDir, VerifyOptions{Key: testKey, CheckpointKey: verifier})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Intact || len(rep.Problems()) > 0 || rep.AnchoredSeq != rep.LastSeq {
		t.Fatalf("seed chain:\n%s", reportText(rep))
	}
	v := chainViewOf(t, seedDir)
	gz := 0
	for _, p := range files(t, seedDir) {
		if strings.HasSuffix(p, ".gz") {
			gz++
		}
	}
	if len(v.files) < 3 || len(v.notes) < 3 || gz != 1 || rep.Epochs < 4 {
		t.Fatalf("seed chain: %d files (%d gzipped), %d notes, %d epochs", len(v.files), gz, len(v.notes), rep.Epochs)
	}
}

// FuzzOpenCheckpoint: OpenCheckpoint and parseCheckpointBody never panic,
// and a mutated signed note never verifies unless its signed text is still
// one of the originals (note.Open ignores signature lines of unknown keys,
// so adding one is a no-op; the body is what is signed).
func FuzzOpenCheckpoint(f *testing.F) {
	entries, err := ReadCheckpointsFile(filepath.Join("testdata", "fuzzverify", CheckpointsFileName("")))
	if err != nil || len(entries) == 0 {
		f.Fatalf("seed notes: %v", err)
	}
	_, verifier, _ := workedSigner(f)
	bodies := make(map[string]bool)
	for _, e := range entries {
		c, err := OpenCheckpoint(e.Note, verifier)
		if err != nil {
			f.Fatal(err)
		}
		bodies[string(c.Body())] = true
		f.Add(e.Note)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if c, err := parseCheckpointBody(string(msg)); err == nil {
			// What parses re-serialises to something that parses the same.
			c2, err := parseCheckpointBody(string(c.Body()))
			if err != nil || c2.Seq != c.Seq || c2.Chain != c.Chain || c2.Epoch != c.Epoch || c2.File != c.File || !c2.Time.Equal(c.Time) || c2.Prev != c.Prev {
				t.Fatalf("body %q parses, its Body %q does not parse the same (%v)", msg, c.Body(), err)
			}
		}
		c, err := OpenCheckpoint(msg, verifier)
		if err != nil {
			return
		}
		if !bodies[string(c.Body())] {
			t.Fatalf("a note with a signed text that was never signed verifies: %q", msg)
		}
	})
}
