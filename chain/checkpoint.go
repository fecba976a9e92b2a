package chain

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// A Checkpoint is the end of an epoch: the line that ended it (a checkpoint
// or a close record) and, once signed, the note that commits to it.
type Checkpoint struct {
	Origin string            // who wrote the chain (the note's first line)
	Seq    uint64            // seq of the line that ended the epoch
	Chain  [sha256.Size]byte // that line's chain value (its MAC)
	Epoch  uint64            // the epoch it ended
	File   string            // the file holding that line
	Time   time.Time         // the line's time
	// Digest is the SHA-256 of the epoch's lines, each with its newline,
	// from the first line after the previous epoch's end through this
	// one: with it a note vouches for the content of its epoch to anyone
	// with the verifier key, no MAC key needed. Zero when the writer could
	// not know them all (it resumed a chain whose epoch began in a file no
	// longer present).
	Digest [sha256.Size]byte
	Prev   [sha256.Size]byte // SHA-256 of the previous note; zero for the first
	Note   []byte            // the signed note; nil without a signer

	text []byte // the epoch's lines, until hashed
	key  []byte // the epoch's key, until settled
	line []byte // the end line as read back at resume
}

// Body returns the note text that is signed: a C2SP tlog-checkpoint style
// body (origin, size, hash) with extension lines.
//
//	<origin>
//	<seq>
//	<base64 chain value>
//	epoch <epoch>
//	file <file>
//	time <RFC 3339, 9 fraction digits>
//	digest <base64 SHA-256 of the epoch's lines>
//	prev <base64 SHA-256 of the previous signed note>
func (c *Checkpoint) Body() []byte {
	var b []byte
	b = append(b, c.Origin...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, '\n')
	b = base64.StdEncoding.AppendEncode(b, c.Chain[:])
	b = append(b, "\nepoch "...)
	b = strconv.AppendUint(b, c.Epoch, 10)
	b = append(b, "\nfile "...)
	b = append(b, c.File...)
	b = append(b, "\ntime "...)
	b = c.Time.UTC().AppendFormat(b, "2006-01-02T15:04:05.000000000Z")
	b = append(b, "\ndigest "...)
	b = base64.StdEncoding.AppendEncode(b, c.Digest[:])
	b = append(b, "\nprev "...)
	b = base64.StdEncoding.AppendEncode(b, c.Prev[:])
	return append(b, '\n')
}

// hashText sets Digest from the epoch's lines, if the writer knew them all.
func (c *Checkpoint) hashText() {
	if c.text != nil {
		c.Digest = sha256.Sum256(c.text)
		recycleText(c.text)
		c.text = nil
	}
}

// Sign signs the body with s and stores the note in c.Note.
func (c *Checkpoint) Sign(s note.Signer) error {
	n, err := note.Sign(&note.Note{Text: string(c.Body())}, s)
	if err != nil {
		return fmt.Errorf("chain: sign checkpoint: %w", err)
	}
	c.Note = n
	return nil
}

// NoteHash returns the SHA-256 of the signed note: the next checkpoint's Prev.
func (c *Checkpoint) NoteHash() [sha256.Size]byte { return sha256.Sum256(c.Note) }

// ErrBadCheckpoint wraps every reason a note is not a valid checkpoint.
var ErrBadCheckpoint = errors.New("chain: bad checkpoint")

// OpenCheckpoint verifies a signed note with v and parses its body.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrBadCheckpoint, err)
	}
	// note.Open decodes base64 leniently: a signature whose last digit
	// differs in its unused low bits opens as the same signature. One
	// spelling only, so that no byte of a note can change unnoticed.
	for _, sigs := range [][]note.Signature{n.Sigs, n.UnverifiedSigs} {
		for _, sig := range sigs {
			if b, err := base64.StdEncoding.DecodeString(sig.Base64); err != nil || base64.StdEncoding.EncodeToString(b) != sig.Base64 {
				return Checkpoint{}, fmt.Errorf("%w: signature of %s is not in canonical base64", ErrBadCheckpoint, sig.Name)
			}
		}
	}
	c, err := parseCheckpointBody(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	c.Note = bytes.Clone(msg)
	return c, nil
}

func parseCheckpointBody(text string) (Checkpoint, error) {
	var c Checkpoint
	bad := func(what string) (Checkpoint, error) {
		return Checkpoint{}, fmt.Errorf("%w: %s", ErrBadCheckpoint, what)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 8 {
		return bad("want 8 lines")
	}
	c.Origin = lines[0]
	seq, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(seq, 10) != lines[1] {
		return bad("seq")
	}
	c.Seq = seq
	if h, err := base64.StdEncoding.DecodeString(lines[2]); err != nil || len(h) != sha256.Size {
		return bad("chain value")
	} else {
		copy(c.Chain[:], h)
	}
	ext := func(i int, key string) (string, bool) { return strings.CutPrefix(lines[i], key+" ") }
	e, ok := ext(3, "epoch")
	if c.Epoch, err = strconv.ParseUint(e, 10, 64); !ok || err != nil {
		return bad("epoch")
	}
	if c.File, ok = ext(4, "file"); !ok {
		return bad("file")
	}
	ts, ok := ext(5, "time")
	if c.Time, err = time.Parse(time.RFC3339Nano, ts); !ok || err != nil {
		return bad("time")
	}
	d, ok := ext(6, "digest")
	if h, err := base64.StdEncoding.DecodeString(d); !ok || err != nil || len(h) != sha256.Size {
		return bad("digest")
	} else {
		copy(c.Digest[:], h)
	}
	p, ok := ext(7, "prev")
	if h, err := base64.StdEncoding.DecodeString(p); !ok || err != nil || len(h) != sha256.Size {
		return bad("prev")
	} else {
		copy(c.Prev[:], h)
	}
	return c, nil
}

// GenerateSigner returns a new ed25519 note signer key and its verifier key
// (golang.org/x/mod/sumdb/note text forms) for the given name.
func GenerateSigner(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}

// ReadSignerFile reads a note signer key (PRIVATE+KEY+…) from a file that
// group and others cannot access.
func ReadSignerFile(path string) (note.Signer, error) {
	data, err := readPrivate(path, kindSigner)
	if err != nil {
		return nil, err
	}
	s, err := note.NewSigner(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("chain: signer key %s: %w", path, err)
	}
	return s, nil
}

// ReadVerifierFile reads a note verifier key (the public half).
func ReadVerifierFile(path string) (note.Verifier, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chain: verifier key: %w", err)
	}
	if got := kindOf(data); got != kindUnknown && got != kindVerifier {
		return nil, wrongKindError(path, data, got, kindVerifier)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("chain: verifier key %s: %w (auditctl keygen -o FILE writes it as FILE.pub)", path, err)
	}
	return v, nil
}

// CheckpointsFileName returns the name of the checkpoints file of a chain
// whose files have the given prefix.
func CheckpointsFileName(prefix string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return prefix + ".checkpoints"
}

// checkpointEntry is one line of the checkpoints file.
type checkpointEntry struct {
	Seq   uint64 `json:"seq"`
	Epoch uint64 `json:"epoch"`
	Note  string `json:"note"`
}

// appendCheckpoints appends signed checkpoints to the checkpoints file, one
// JSON line each, and fsyncs it.
func appendCheckpoints(path string, cs []Checkpoint) error {
	var buf []byte
	for i := range cs {
		line, err := json.Marshal(checkpointEntry{Seq: cs[i].Seq, Epoch: cs[i].Epoch, Note: string(cs[i].Note)})
		if err != nil {
			return err
		}
		buf = append(append(buf, line...), '\n')
	}
	// Not through a symbolic link, and only to a regular file of ours.
	f, err := openFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// A torn line a failed append left (a short write before ENOSPC)
	// goes first, so that the retried notes start a clean line.
	err = trimTorn(f)
	var fi os.FileInfo
	if err == nil {
		fi, err = f.Stat()
	}
	if err == nil {
		_, err = f.Write(buf)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			// The caller retries these notes: leave no part of them
			// behind, neither torn nor whole (a failed fsync would
			// otherwise have them twice).
			if terr := f.Truncate(fi.Size()); terr != nil {
				err = errors.Join(err, terr)
			}
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// A NoteEntry is one line of a checkpoints file as read.
type NoteEntry struct {
	Line  int    // 1-based line in the file
	Seq   uint64 // as listed; the note itself is authoritative
	Epoch uint64
	Note  []byte
	Err   error // the line does not decode
	Torn  bool  // the last line, without a newline: a crash while appending
}

// ReadCheckpointsFile reads a checkpoints file. A missing file is no
// entries and no error. A torn last line (a crash while appending) is
// returned with Err set, like any line that does not decode.
func ReadCheckpointsFile(path string) ([]NoteEntry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []NoteEntry
	br := bufio.NewReader(f)
	for no := 1; ; no++ {
		line, err := br.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			return out, nil
		}
		if err != nil && err != io.EOF {
			return out, err
		}
		var ce checkpointEntry
		e := NoteEntry{Line: no}
		if !bytes.HasSuffix(line, []byte("\n")) {
			// A crash leaves a prefix of a line; a whole line followed by
			// other bytes instead of its newline is an edit. A whole
			// line is the first JSON value the bytes begin with (not the
			// bytes up to their last '}': foreign bytes may end in one).
			if end := firstValueEnd(line); end > 0 && end < len(line) && canonicalEntry(line[:end]) {
				e.Err = fmt.Errorf("line %d is a whole note followed by %d foreign bytes instead of a newline", no, len(line)-end)
			} else {
				e.Torn = true
				e.Err = fmt.Errorf("line %d is incomplete (%d bytes): a crash while appending", no, len(line))
			}
		} else if derr := json.Unmarshal(line, &ce); derr != nil {
			e.Err = fmt.Errorf("line %d does not decode", no)
		} else if !canonicalEntry(line[:len(line)-1]) {
			// One spelling only, as the writer writes it (encoding/json
			// would accept "Seq", duplicate members, other escapes).
			e.Err = fmt.Errorf("line %d is not written as the writer writes it", no)
		} else {
			e.Seq, e.Epoch, e.Note = ce.Seq, ce.Epoch, []byte(ce.Note)
		}
		out = append(out, e)
	}
}

// firstValueEnd returns the end of the JSON value b begins with, or -1.
func firstValueEnd(b []byte) int {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v json.RawMessage
	if dec.Decode(&v) != nil {
		return -1
	}
	return int(dec.InputOffset())
}

// canonicalEntry reports whether b is a checkpoints file line as the
// writer writes it (without its newline).
func canonicalEntry(b []byte) bool {
	var ce checkpointEntry
	if json.Unmarshal(b, &ce) != nil {
		return false
	}
	canon, _ := json.Marshal(ce)
	return bytes.Equal(canon, b)
}

// trimTornNote removes an incomplete last line from the checkpoints file (a
// crash while appending), so that the next append starts a clean line. The
// checkpoint it held is still unsigned in the chain and is signed again.
// The file is opened for writing only when it has such a line.
func trimTornNote(path string) error {
	f, err := openFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	end, size, err := cleanEnd(f)
	f.Close()
	if err != nil || end == size {
		return err
	}
	if f, err = openFile(path, os.O_RDWR, 0); err != nil {
		return err
	}
	err = trimTorn(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// trimTorn cuts f after its last newline.
func trimTorn(f *os.File) error {
	end, size, err := cleanEnd(f)
	if err != nil || end == size {
		return err
	}
	return f.Truncate(end)
}

// cleanEnd returns the offset just after f's last newline (0 if it has
// none) and f's size. It reads only from the end back to that newline.
func cleanEnd(f *os.File) (end, size int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size = fi.Size()
	buf := make([]byte, 4096)
	for end = size; end > 0; {
		n := min(end, int64(len(buf)))
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return 0, 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return end - n + int64(i) + 1, size, nil
		}
		end -= n
	}
	return 0, size, nil
}

// TrustedNote returns the signed note in data, a checkpoint kept off the
// host (VerifyOptions.Trusted), in any of the forms one comes in:
//
//   - the note itself, as the "note" member of a checkpoints file line
//     holds it and otelbridge exports it (white space after its last
//     signature line and CRLF line ends are taken as they are meant: what
//     jq -r .note and editors add);
//   - that member as a JSON string;
//   - a line of the checkpoints file (tail -n 1 DIR/audit.checkpoints);
//   - a copy of the whole checkpoints file: the note with the highest seq
//     is taken, and an incomplete last line (a copy taken while the writer
//     appended) is left out.
//
// It checks no signature: OpenCheckpoint does that.
func TrustedNote(data []byte) ([]byte, error) {
	text := bytes.TrimSpace(data)
	switch {
	case len(text) == 0:
		return nil, fmt.Errorf("%w: the trusted checkpoint is empty", ErrBadCheckpoint)
	case text[0] == '"':
		var s string
		if err := json.Unmarshal(text, &s); err != nil {
			return nil, fmt.Errorf("%w: a JSON string that does not decode: %v", ErrBadCheckpoint, err)
		}
		return noteText([]byte(s)), nil
	case text[0] == '{':
		return newestNote(data)
	}
	return noteText(data), nil
}

// noteText returns a note as note.Open reads it: LF line ends, and one
// newline after the last signature line.
func noteText(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return append(bytes.TrimRight(b, " \t\r\n"), '\n')
}

// newestNote returns the note with the highest seq of the checkpoints file
// lines in data.
func newestNote(data []byte) ([]byte, error) {
	var best []byte
	var bestSeq uint64
	lines := bytes.Split(data, []byte("\n"))
	for i, line := range lines {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var ce checkpointEntry
		if err := json.Unmarshal(line, &ce); err != nil || ce.Note == "" {
			if i == len(lines)-1 && best != nil {
				continue // torn: copied while the writer appended
			}
			return nil, fmt.Errorf("%w: line %d is not a checkpoints file line ({\"seq\":…,\"epoch\":…,\"note\":\"…\"})", ErrBadCheckpoint, i+1)
		}
		n := noteText([]byte(ce.Note))
		c, err := parseUnverifiedNote(n)
		if err != nil {
			return nil, fmt.Errorf("chain: line %d: %w", i+1, nestedError{err})
		}
		if best == nil || c.Seq > bestSeq {
			best, bestSeq = n, c.Seq
		}
	}
	return best, nil
}

// signers names the keys that signed the note of err, an error of
// OpenCheckpoint for a note that none of the keys given verifies
// (name+hash, as in a verifier key), or returns nil.
func signers(err error) []string {
	var u *note.UnverifiedNoteError
	if !errors.As(err, &u) || u.Note == nil {
		return nil
	}
	var names []string
	for _, s := range u.Note.UnverifiedSigs {
		names = append(names, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	return names
}

// CheckpointSigners returns the signers of the notes in the checkpoints
// file of dir (CheckpointsFileName(prefix)) when none of them verifies with
// key, as Report.CheckpointSigners names them: what to tell of a checkpoint
// key that is not the trail's without verifying the files. It returns nil
// when a note verifies, or there is none.
func CheckpointSigners(dir, prefix string, key note.Verifier) ([]string, error) {
	entries, err := ReadCheckpointsFile(filepath.Join(dir, CheckpointsFileName(prefix)))
	if err != nil {
		return nil, err
	}
	var others []string
	for _, e := range entries {
		if e.Err != nil || e.Torn {
			continue
		}
		_, err := OpenCheckpoint(e.Note, key)
		if err == nil {
			return nil, nil
		}
		for _, n := range signers(err) {
			if !slices.Contains(others, n) {
				others = append(others, n)
			}
		}
	}
	return others, nil
}

// keyName names a verifier key as signers names the keys of a note.
func keyName(v note.Verifier) string { return fmt.Sprintf("%s+%08x", v.Name(), v.KeyHash()) }
