package chain

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/rotate"
)

// Class names a kind of finding.
type Class string

// Findings. Warnings (TORN_TAIL, UNANCHORED, GAP) do not make a report fail.
const (
	Modified      Class = "MODIFIED"       // a line's bytes differ from what was sealed, or it is not a sealed line
	Inserted      Class = "INSERTED"       // a line that was never part of the chain (forged, duplicated, or after a close record)
	Deleted       Class = "DELETED"        // sealed lines are missing inside a file
	Reordered     Class = "REORDERED"      // authentic lines out of order
	Missing       Class = "MISSING"        // a whole file is gone, and no pruned record accounts for it
	Renamed       Class = "RENAMED"        // a file's name differs from the name sealed in it or in its successor
	BadKey        Class = "BAD_KEY"        // sealed with another key, or without one although a key was given
	Truncated     Class = "TRUNCATED"      // the files end before a signed checkpoint, or with a file closed for rotation: records removed from the end
	Rollback      Class = "ROLLBACK"       // the directory is consistent but behind the trusted checkpoint
	BadCheckpoint Class = "BAD_CHECKPOINT" // a note that does not verify, does not match the chain, or is missing
	TornTail      Class = "TORN_TAIL"      // warning: an incomplete last line or a file without close record, left by a crash
	Unanchored    Class = "UNANCHORED"     // warning: records after the last signed checkpoint (the exposure window)
	Gap           Class = "GAP"            // warning: the oldest files were removed by retention, as a pruned record attests
	// WrongKey: a key given is not the trail's, so nothing could be
	// checked with it: K(0) (every file is sealed with one other key_id,
	// Report.TrailKeyID, and no line with the key given), or the
	// CheckpointKey (no note verifies with it, and they name another
	// signer, Report.CheckpointSigners). Not a finding about the files
	// unless the key given is the right one: verify again with the right
	// key (Report.WrongKeyOnly).
	WrongKey Class = "WRONG_KEY"
)

// Warning reports whether c does not by itself make a report fail.
func (c Class) Warning() bool { return c == TornTail || c == Unanchored || c == Gap }

// A Problem is one finding.
type Problem struct {
	Class  Class  `json:"class"`
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"` // 1-based line in File, 0 for the file as a whole
	Seq    uint64 `json:"seq,omitempty"`
	Detail string `json:"detail"`
}

// FileReport summarises one file.
type FileReport struct {
	Name     string    `json:"name"`
	Lines    int       `json:"lines"` // complete lines
	FirstSeq uint64    `json:"first_seq,omitempty"`
	LastSeq  uint64    `json:"last_seq,omitempty"`
	Closed   bool      `json:"closed"`
	Problems []Problem `json:"problems,omitempty"`
}

// OK reports whether the file has no failing problem.
func (f *FileReport) OK() bool {
	for _, p := range f.Problems {
		if !p.Class.Warning() {
			return false
		}
	}
	return true
}

// Report is the result of Verify.
type Report struct {
	Dir      string       `json:"dir"`
	Alg      string       `json:"alg"`
	KeyID    string       `json:"key_id,omitempty"`
	Files    []FileReport `json:"files"`
	Lines    int          `json:"lines"`
	FirstSeq uint64       `json:"first_seq,omitempty"`
	LastSeq  uint64       `json:"last_seq,omitempty"`
	Epochs   uint64       `json:"epochs"` // epochs ended in the files walked
	// Notes is the number of signed checkpoints that matched the chain;
	// NotesSigned whether their signatures were checked (a CheckpointKey).
	Notes       int    `json:"notes"`
	NotesSigned bool   `json:"notes_signed"`
	AnchoredSeq uint64 `json:"anchored_seq,omitempty"` // the last seq a checkpoint commits to
	Unchecked   int    `json:"unchecked,omitempty"`    // lines checked neither by MAC nor by a signed digest (VerifyOptions.KeyAt)
	// DigestChecked counts lines whose MAC could not be checked (KeyAt)
	// but whose epoch's digest matched its signed checkpoint.
	DigestChecked int `json:"digest_checked,omitempty"`
	// TrailKeyID, with a WRONG_KEY finding about K(0), is the key_id the
	// files are sealed with (KeyID is the key given).
	TrailKeyID string `json:"trail_key_id,omitempty"`
	// CheckpointSigners, with a WRONG_KEY finding about the checkpoint key,
	// names the keys that signed the notes (name+hash, as a verifier key
	// begins), none of them the CheckpointKey: their signatures were not
	// checked, and the notes were judged as without a key (NotesSigned is
	// false).
	CheckpointSigners []string `json:"checkpoint_signers,omitempty"`
	// Chain holds the findings about the chain as a whole: retention gaps,
	// checkpoints, truncation and rollback.
	Chain  []Problem `json:"chain,omitempty"`
	Intact bool      `json:"intact"` // no failing problem
}

// Problems returns every finding: per file in file order, then the chain's.
func (r *Report) Problems() []Problem {
	var ps []Problem
	for _, f := range r.Files {
		ps = append(ps, f.Problems...)
	}
	return append(ps, r.Chain...)
}

// WrongKeyOnly reports whether the report fails only because a key given
// is not the trail's: it holds a WRONG_KEY finding, and no failing finding
// but that and the BAD_KEY of files sealed with the trail's own key
// (TrailKeyID). Nothing was found about the files themselves; they were
// not verified either: verify again with the right key.
func (r *Report) WrongKeyOnly() bool {
	wrong := false
	for _, p := range r.Problems() {
		switch {
		case p.Class == WrongKey:
			wrong = true
		case p.Class.Warning(), p.Class == BadKey && r.TrailKeyID != "":
		default:
			return false
		}
	}
	return wrong
}

// WriteText writes one line per file (and its findings), an INFO line
// when the newest file has no close record, the chain's findings and a
// summary line.
func (r *Report) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, f := range r.Files {
		status := "OK  "
		if !f.OK() {
			status = "FAIL"
		} else if len(f.Problems) > 0 {
			status = "WARN"
		}
		fmt.Fprintf(bw, "%s %s  seq %d-%d  %d lines\n", status, f.Name, f.FirstSeq, f.LastSeq, f.Lines)
		for _, p := range f.Problems {
			fmt.Fprintf(bw, "     %s", p.Class)
			if p.Line > 0 {
				fmt.Fprintf(bw, " line %d", p.Line)
			}
			if p.Seq > 0 {
				fmt.Fprintf(bw, " seq %d", p.Seq)
			}
			fmt.Fprintf(bw, ": %s\n", p.Detail)
		}
	}
	if n := len(r.Files); n > 0 && !r.Files[n-1].Closed {
		// Not a finding: what --json says as "closed": false.
		fmt.Fprintf(bw, "INFO newest file %s is open (no close record): the writer is running, or stopped without Close\n", r.Files[n-1].Name)
	}
	for _, p := range r.Chain {
		fmt.Fprintf(bw, "%-4s %s", map[bool]string{true: "WARN", false: "FAIL"}[p.Class.Warning()], p.Class)
		if p.File != "" {
			fmt.Fprintf(bw, " %s", p.File)
		}
		if p.Seq > 0 {
			fmt.Fprintf(bw, " seq %d", p.Seq)
		}
		fmt.Fprintf(bw, ": %s\n", p.Detail)
	}
	verdict := "INTACT"
	switch {
	case r.WrongKeyOnly():
		verdict = "NOT VERIFIED: WRONG KEY"
	case !r.Intact:
		verdict = "TAMPERED OR DAMAGED"
	}
	key := "unkeyed (sha256)"
	switch {
	case r.TrailKeyID != "":
		key = fmt.Sprintf("key_id %s (the trail's; the key given is key_id %s)", r.TrailKeyID, r.KeyID)
	case r.KeyID != "":
		key = "key_id " + r.KeyID
	}
	signed := "signatures not checked (no checkpoint key)"
	switch {
	case len(r.CheckpointSigners) > 0:
		signed = "not checked: signed by another key than the one given"
	case r.NotesSigned:
		signed = "signatures verified"
	}
	fmt.Fprintf(bw, "%d files, %d lines, seq %d-%d, %d epochs, %d checkpoints (%s), anchored through seq %d, %s: %s\n",
		len(r.Files), r.Lines, r.FirstSeq, r.LastSeq, r.Epochs, r.Notes, signed, r.AnchoredSeq, key, verdict)
	return bw.Flush()
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	Key    []byte // the initial key K(0); required when the files are keyed
	Prefix string // default DefaultPrefix
	Ext    string // default DefaultExt
	// CheckpointKey verifies the signed checkpoints in the directory's
	// checkpoints file. Without it they are still checked against the
	// chain, but not their signatures.
	CheckpointKey note.Verifier
	// Trusted is a signed checkpoint kept off the host (e.g. the newest one
	// the SIEM received): files behind it are reported as ROLLBACK or
	// TRUNCATED. It requires CheckpointKey. It is the note, a line of the
	// checkpoints file or a copy of the whole file, whose newest note is
	// taken (see TrustedNote).
	Trusted []byte
	// KeyAt, instead of Key, is a later epoch's key, e.g. a writer's
	// current key (Writer.CurrentKey) for self-verification: lines of
	// earlier epochs are checked for everything but their MACs, which only
	// K(0) can check. With CheckpointKey, an earlier epoch whose lines hash
	// to the digest its signed checkpoint carries has them checked by it
	// (Report.DigestChecked counts them); Report.Unchecked counts the lines
	// checked neither by MAC nor by a signed digest.
	KeyAt KeyState
	// Last, if positive, verifies only the newest Last files; the start of
	// the chain is then not judged.
	Last int
	// Progress, if set, is called after each file with the bytes read so
	// far and the total size of the files (compressed sizes for .gz).
	Progress func(done, total int64)
	// Writing is for a verification by the writing process itself
	// (handler's self-verification): it returns the path of the file its
	// writer created last (rotate.Writer.Path), and Verify calls it after
	// reading the files. A newest file closed for rotation whose successor
	// is not there is TRUNCATED, unless it is the writer's last file: then
	// the writer has not created the successor yet (it does so right after
	// the close record or, if creating it failed, at its next record), and
	// nothing newer was there to remove.
	Writing func() string
}

// openTrusted opens VerifyOptions.Trusted, in any form TrustedNote takes.
// Its errors say which forms those are, and name the key that signed a
// note that the checkpoint key does not verify.
func openTrusted(data []byte, key note.Verifier, prefix string) (Checkpoint, error) {
	forms := fmt.Sprintf("give the signed note (the \"note\" member of a line of %[1]s: jq -r .note), a line of %[1]s (tail -n 1), or a copy of the whole file (its newest note is taken)", CheckpointsFileName(prefix))
	msg, err := TrustedNote(data)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w; %s", ErrTrustedCheckpoint, nestedError{err}, forms)
	}
	c, err := OpenCheckpoint(msg, key)
	var bad *note.InvalidSignatureError
	switch names := signers(err); {
	case err == nil:
		return c, nil
	case names != nil:
		return Checkpoint{}, fmt.Errorf("%w: it is signed by %s, not by the checkpoint key given (%s): give the verifier key of the signer that signed it", ErrTrustedCheckpoint, strings.Join(names, ", "), keyName(key))
	case errors.As(err, &bad):
		return Checkpoint{}, fmt.Errorf("%w: %w: its text was changed after it was signed, or its signature", ErrTrustedCheckpoint, nestedError{err})
	case !bytes.Contains(msg, []byte("\n\n")) || strings.Contains(err.Error(), "malformed note"):
		return Checkpoint{}, fmt.Errorf("%w: %w: not a signed note; %s", ErrTrustedCheckpoint, nestedError{err}, forms)
	}
	return Checkpoint{}, fmt.Errorf("%w: %w", ErrTrustedCheckpoint, nestedError{err})
}

// Errors that stop a verification before it can judge the files.
var (
	ErrNoFiles     = errors.New("chain: no audit files found")
	ErrKeyRequired = errors.New("chain: the files are keyed (hmac-sha256); a key is required to verify them")
	// ErrTrustedCheckpoint is wrapped by the error for a
	// VerifyOptions.Trusted that is not a checkpoint the CheckpointKey
	// verifies.
	ErrTrustedCheckpoint = errors.New("chain: trusted checkpoint")
)

// Verify checks every file in dir, oldest first: the frame of every line,
// every MAC, every link (seq and prev), the open and close records, and the
// links between files. Problems with the files are reported in the Report;
// the error is for what prevents judging them (I/O, no files, missing key).
func Verify(dir string, opts VerifyOptions) (*Report, error) {
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Ext == "" {
		opts.Ext = DefaultExt
	}
	if opts.Key != nil && len(opts.Key) != KeySize {
		return nil, fmt.Errorf("chain: key must be %d bytes, got %d", KeySize, len(opts.Key))
	}
	var trusted *Checkpoint
	if opts.Trusted != nil {
		if opts.CheckpointKey == nil {
			return nil, fmt.Errorf("%w: it needs the checkpoint key (the verifier key of its signer) to verify it", ErrTrustedCheckpoint)
		}
		c, err := openTrusted(opts.Trusted, opts.CheckpointKey, opts.Prefix)
		if err != nil {
			return nil, err
		}
		trusted = &c
	}
	// The notes first, then the files: a writer appends a note only after
	// the line it names is in a file, so notes read first name lines the
	// files then hold. Read the other way round, a note signed meanwhile
	// names lines past the end of what was read, and a live directory
	// (self-verification) looks cut (TRUNCATED).
	notes, err := ReadCheckpointsFile(filepath.Join(dir, CheckpointsFileName(opts.Prefix)))
	if err != nil {
		return nil, fmt.Errorf("chain: verify: %w", err)
	}
	files, err := rotate.List(dir, opts.Prefix, opts.Ext)
	if err != nil {
		return nil, fmt.Errorf("chain: verify: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoFiles, dir)
	}
	var total, done int64
	if opts.Progress != nil {
		for _, path := range files {
			if fi, err := os.Stat(path); err == nil {
				total += fi.Size()
			}
		}
	}
	partial := opts.Last > 0 && len(files) > opts.Last
	if partial {
		files = files[len(files)-opts.Last:]
	}
	v := newVerifier(opts.Key, opts.KeyAt)
	v.rep.Dir = dir
	v.notesAgain = func() map[uint64]bool {
		entries, err := ReadCheckpointsFile(filepath.Join(dir, CheckpointsFileName(opts.Prefix)))
		if err != nil {
			return nil
		}
		seqs := make(map[uint64]bool, len(entries))
		for _, e := range entries {
			if e.Err != nil || e.Torn {
				continue
			}
			if c, err := openNote(e.Note, opts.CheckpointKey); err == nil {
				seqs[c.Seq] = true
			}
		}
		return seqs
	}
	if opts.CheckpointKey != nil && v.dig == nil {
		// Also with K(0): a signed note whose digest contradicts its
		// epoch's lines is a finding, as for a verifier that has only
		// the digests (FORMAT.md §6).
		v.dig, v.blindIn = sha256.New(), make(map[uint64]int)
	}
	if partial && opts.CheckpointKey != nil {
		// Where the window starts right after a signed epoch end, the
		// epoch's digest can be computed from the window.
		v.signedEnds = make(map[uint64][sha256.Size]byte)
		for _, e := range notes {
			if c, err := OpenCheckpoint(e.Note, opts.CheckpointKey); e.Err == nil && err == nil {
				v.signedEnds[c.Seq] = c.Chain
			}
		}
	}
	if opts.Writing == nil && len(files) > 1 {
		// A writer rotating as this listed the files has created the
		// newest but not yet written its open record: wait for it, as
		// below for a file created after the listing.
		poll(rotationSettle, func() bool { return holdsLine(files[len(files)-1]) })
	}
	for i, path := range files {
		if err := v.file(path, i == len(files)-1); err != nil {
			return nil, err
		}
		if opts.Progress != nil {
			if fi, err := os.Stat(path); err == nil {
				done += fi.Size()
			}
			opts.Progress(done, total)
		}
	}
	if opts.Writing == nil {
		// A writer rotating while this ran has closed the newest file
		// listed and created the next: verify on into it, as the chain
		// does. For maxFollow a round waits up to rotationSettle for the
		// next file; after that only files already there are taken, so
		// that files put back one by one cannot keep this going, and a
		// writer still rotating after followCap is a finding, not an end
		// left unjudged.
		start := time.Now()
		for v.rotatedAtEnd() {
			if time.Since(start) > followCap {
				v.followCut = true
				break
			}
			// The notes again, before the files, as above: the new
			// files' open records name notes synced before them.
			if again, err := ReadCheckpointsFile(filepath.Join(dir, CheckpointsFileName(opts.Prefix))); err == nil {
				notes = again
			}
			wait := rotationSettle
			if time.Since(start) > maxFollow {
				wait = 0
			}
			more := newerFiles(dir, opts, files[len(files)-1], wait)
			if len(more) == 0 {
				break
			}
			for i, path := range more {
				if err := v.file(path, i == len(more)-1); err != nil {
					return nil, err
				}
				if opts.Progress != nil {
					if fi, err := os.Stat(path); err == nil {
						done += fi.Size()
						total += fi.Size()
					}
					opts.Progress(done, total)
				}
			}
			files = append(files, more...)
		}
	}
	if partial {
		v.firstLine = nil // the start of the chain was not read
	}
	v.gap()
	v.firstPredecessor()
	mark := len(v.rep.Chain)
	if others := v.notes(notes, opts.CheckpointKey); others != nil {
		// The checkpoint key verifies no note, and they name another
		// signer: judge them as without a key, and say so once.
		v.rep.Chain = v.rep.Chain[:mark]
		v.rep.Notes, v.rep.AnchoredSeq = 0, 0
		v.notes(notes, nil)
		v.wrongCheckpointKey(opts.CheckpointKey, others)
	}
	v.trusted(trusted)
	v.successor(dir, opts)
	v.wrongKey()
	v.unanchored()
	v.rep.Intact = true
	for _, f := range v.rep.Files {
		v.rep.Lines += f.Lines
		if !f.OK() {
			v.rep.Intact = false
		}
	}
	for _, p := range v.rep.Chain {
		if !p.Class.Warning() {
			v.rep.Intact = false
		}
	}
	return v.rep, nil
}

type verifier struct {
	ioErr  error     // a long line could not be read again
	base   KeyState  // K(0), or a later epoch's key
	keyed  bool      // base holds a key
	blind  bool      // the current epoch precedes base: MACs cannot be checked
	epoch  uint64    // the epoch of the next line
	ekey   KeyState  // the key of epoch, derived from base
	hmac   hash.Hash // keyed with ekey
	sha    hash.Hash
	sum    [sha256.Size]byte
	rep    *Report
	fr     *FileReport
	badKey bool // the current file is sealed with another key: its MACs say nothing

	ends map[uint64]Checkpoint // authentic epoch-ending lines by seq
	// signedEnds: chain values of the epoch ends signed checkpoints name,
	// by seq, when only the newest files are verified.
	signedEnds map[uint64][sha256.Size]byte
	endSeqs    []uint64     // their seqs, in chain order
	pruned     []PrunedInfo // authentic pruned records
	firstLine  *gapStart    // the chain's first line, when it is not seq 1
	lastEnded  bool         // the newest file ends with its close record

	// With only a later epoch's key (KeyAt), the lines of earlier epochs are
	// checked against the digests of their signed checkpoints instead.
	dig      hash.Hash      // SHA-256 of the current epoch's lines so far
	digKnown bool           // dig has seen the epoch from its first line
	digBlind int            // lines of the epoch whose MAC was not checked
	blindIn  map[uint64]int // by end seq: such lines in that epoch
	// noMAC: by end seq, epochs that end in a file sealed with another
	// key, whose MACs were not checked.
	noMAC map[uint64]bool

	started  bool
	expSeq   uint64 // seq the next line must have
	expPrev  [sha256.Size]byte
	lastBad  bool   // the previous line was reported; don't report its broken link again
	prevFile string // base name of the previous file walked
	// torn: the bytes after the current file's last newline, as read
	// (tornKnown: the file was read to its end); prevTorn, prevTornKnown:
	// the previous file's, for the open record's prev_torn.
	torn, prevTorn           int64
	tornKnown, prevTornKnown bool
	sealedPrev               string // prev_file of the current file's open record
	// openNote: the last_note of the current file's open record;
	// lastNotes: those of authentic open records, by file.
	openNote  uint64
	lastNotes []noteClaim
	closed    bool // the current file's close record was seen
	// closeSealed: the current file's close record is authentic, with
	// closeSeq and closeReason; for the newest file, successor judges them.
	closeSealed bool
	closeSeq    uint64
	closeReason string
	// rotatedFrom: the file before the current one ended with an
	// authentic close record for rotation (its name, seq and reason).
	rotatedFrom rotationEnd
	// notesAgain returns the seqs of the notes in the checkpoints file
	// now (signed by the checkpoint key given, if any); nil: not asked.
	notesAgain func() map[uint64]bool
	// followCut: the verification stopped following a writer that kept
	// rotating (followCap); the end of the trail was not judged.
	followCut bool
	// pendingTorn: torn bytes of files walked before the chain's first
	// line, checked against it.
	pendingTorn []pendingTorn
	// prevEmpty: the previous file walked held no complete line (a crash
	// while its open record was written, FORMAT.md §5).
	prevEmpty bool
	// firstPrevFile: the prev_file of seq 1's open record, in firstFile,
	// when it is not a file walked just before that holds no complete
	// line: a pruned record must account for it.
	firstPrevFile, firstFile string

	// To tell a wrong K(0) from a damaged trail (wrongKey): k0 is set when
	// Verify was given K(0); otherKeyIDs are the key_ids of the files
	// sealed with another key, ownKeyFiles counts the files sealed with
	// the key given, unkeyedFiles those sealed without a key, and
	// macMatched the lines whose MAC the key given checked.
	k0           bool
	otherKeyIDs  map[string]bool
	ownKeyFiles  int
	unkeyedFiles int
	macMatched   int
}

// noteClaim is an open record's last_note: the checkpoints file held a
// note for that seq when the file was opened.
type noteClaim struct {
	file      string
	seq, note uint64
}

// pendingTorn is a torn line read before the chain's first line.
type pendingTorn struct {
	file, no int    // index in Report.Files, line number
	n        int64  // its size
	head     []byte // its first maxFixed bytes
}

// maxFixed is the longest fixed part a line begins with:
// {"seq":<20 digits>,"prev":"<64 hex>",
const maxFixed = len(seqPrefix) + 20 + len(prevPrefix) + hashHex + 2

// fixedPart returns the bytes every line with this seq and prev begins
// with, the comma before the first member after prev included (an empty
// body is followed by ,"mac").
func fixedPart(seq uint64, prev [sha256.Size]byte) []byte {
	b := make([]byte, 0, maxFixed)
	b = append(b, seqPrefix...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, prevPrefix...)
	b = hex.AppendEncode(b, prev[:])
	return append(b, '"', ',')
}

// tornPrefixOK reports whether torn bytes (a line's first bytes, without
// a newline) agree with the fixed part of the line at seq with prev as far
// as either reaches: what a crash while that line was written leaves.
func tornPrefixOK(torn []byte, seq uint64, prev [sha256.Size]byte) bool {
	f := fixedPart(seq, prev)
	n := min(len(torn), len(f))
	return bytes.Equal(torn[:n], f[:n])
}

// gapStart is where a chain that does not begin at seq 1 begins.
type gapStart struct {
	file     string
	seq      uint64
	prev     [sha256.Size]byte
	prevFile string
	// tornOnly: prevFile is there, walked just before file, and holds no
	// complete line (nor does any file walked before it); first is the
	// first file walked.
	tornOnly bool
	first    string
}

// newVerifier verifies with the initial key k0, or else with at, a later
// epoch's key, or else unkeyed.
func newVerifier(k0 []byte, at KeyState) *verifier {
	v := &verifier{sha: sha256.New(), rep: &Report{}, ends: make(map[uint64]Checkpoint), otherKeyIDs: make(map[string]bool), noMAC: make(map[uint64]bool)}
	switch {
	case k0 != nil:
		v.base = NewKeyState(k0)
		v.k0 = true
	case at.Key != nil:
		v.base = at
		v.blind = at.Epoch > 0
		v.dig, v.blindIn = sha256.New(), make(map[uint64]int)
	}
	v.keyed = v.base.Key != nil
	if v.keyed {
		v.ekey = v.base
		v.hmac = hmac.New(sha256.New, v.base.Key)
		v.rep.Alg, v.rep.KeyID = AlgHMACSHA256, v.base.ID
	} else {
		v.rep.Alg = AlgSHA256
	}
	return v
}

// maxEpochStep bounds the key derivation one unauthenticated epoch number
// can cause (about a second or two of HMACs).
const maxEpochStep = 1 << 21

// plausibleEpoch reports whether epoch e can be that of a line at seq:
// every epoch ends with a line, so e < seq; and a chain moves on by at most
// one epoch per line.
func (v *verifier) plausibleEpoch(e, seq uint64) bool {
	if e >= seq {
		return false
	}
	if v.started && seq >= v.expSeq && (e > v.epoch+(seq-v.expSeq)+1 || e > v.epoch+maxEpochStep) {
		return false
	}
	return !v.keyed || e < v.base.Epoch || e-v.base.Epoch <= MaxEpochSteps
}

// setEpoch moves to epoch e's key: forward from the current key, or from
// the base key for an earlier epoch (only a damaged chain goes back).
// Without a key for e (before the base key's epoch) MACs go unchecked.
func (v *verifier) setEpoch(e uint64) {
	v.epoch = e
	if !v.keyed {
		return
	}
	v.blind = e < v.base.Epoch
	if v.blind || e == v.ekey.Epoch {
		return
	}
	from := v.ekey
	if e < from.Epoch {
		from = v.base
	}
	ek, err := from.At(e)
	if err != nil {
		// Out of reach (plausibleEpoch lets no such epoch through when it
		// comes from a file; this is a last guard): MACs fail from here.
		ek = KeyState{ID: from.ID, Epoch: e, Key: make([]byte, KeySize)}
	}
	v.ekey = ek
	v.hmac = hmac.New(sha256.New, v.ekey.Key)
}

func (v *verifier) problem(c Class, line int, seq uint64, format string, args ...any) {
	v.fr.Problems = append(v.fr.Problems, Problem{Class: c, File: v.fr.Name, Line: line, Seq: seq, Detail: fmt.Sprintf(format, args...)})
}

// firstPredecessor checks that a file seq 1's open record names, not
// there, was pruned: a file that held no complete line.
func (v *verifier) firstPredecessor() {
	if v.firstPrevFile == "" {
		return
	}
	for _, p := range v.pruned {
		if p.File == v.firstPrevFile && p.ThroughSeq == 0 {
			return
		}
	}
	v.chainProblem(Modified, v.firstFile, 1, "seq 1's open record names %q as the file before it, which is neither a file holding no complete line nor accounted for by a pruned record: the first line of a chain has no predecessor", v.firstPrevFile)
}

func (v *verifier) chainProblem(c Class, file string, seq uint64, format string, args ...any) {
	v.rep.Chain = append(v.rep.Chain, Problem{Class: c, File: file, Seq: seq, Detail: fmt.Sprintf(format, args...)})
}

func (v *verifier) macOK(l *Line) bool {
	if v.badKey {
		return true // already reported once for the whole file
	}
	if v.blind && v.base.From != 0 && l.Seq >= v.base.From {
		// Sealed with the base key whatever epoch the files claim: the
		// numbering must not decide which MACs are checked.
		ok := v.macOf(v.base.Key, l) == l.MAC
		if ok {
			v.macMatched++
		}
		return ok
	}
	if v.blind {
		v.rep.Unchecked++
		v.digBlind++
		return true
	}
	h := v.sha
	if v.keyed {
		h = v.hmac
	}
	h.Reset()
	v.writeSealed(h, l)
	h.Sum(v.sum[:0])
	if v.sum != l.MAC {
		return false
	}
	if v.keyed {
		v.macMatched++
	}
	return true
}

// file walks one file. last reports whether it is the newest.
func (v *verifier) file(path string, last bool) error {
	// rotate.Open: a file compressed since it was listed (the writer of a
	// live directory) is read as its .gz.
	r, err := rotate.Open(path)
	if osError(err) {
		// Gone, no permission, no file descriptor left: nothing to say
		// about the file's content.
		return fmt.Errorf("chain: verify: %w", err)
	}
	v.rotatedFrom = rotationEnd{}
	if v.rotatedAtEnd() {
		v.rotatedFrom = rotationEnd{file: v.fr.Name, seq: v.closeSeq, reason: v.closeReason}
	}
	v.rep.Files = append(v.rep.Files, FileReport{Name: BaseName(path)})
	v.fr = &v.rep.Files[len(v.rep.Files)-1]
	v.badKey, v.closed = false, false
	v.closeSealed, v.closeSeq, v.closeReason = false, 0, ""
	v.torn, v.tornKnown = 0, false
	if err != nil {
		// There but not a readable gzip stream (a corrupt header):
		// damaged or tampered with, and what it holds cannot be checked.
		v.problem(Modified, 0, 0, "the file cannot be read: %v", err)
		return nil
	}
	defer r.Close()

	lr := newLineReader(r)
	lr.path = path
	cur, err := lr.next()
	for err == nil && cur != nil {
		// A read error after cur (a corrupt .gz) must not keep cur from
		// being checked: it is judged without a look-ahead line.
		peek, perr := lr.next()
		if perr != nil {
			peek = nil
		}
		consumedPeek, ferr := v.line(cur, peek)
		if ferr != nil {
			return ferr
		}
		if v.ioErr != nil {
			return fmt.Errorf("chain: verify %s: %w", path, v.ioErr)
		}
		if perr != nil {
			err = perr
			break
		}
		if consumedPeek && peek != nil {
			cur, err = lr.next()
		} else {
			cur = peek
		}
	}
	if osError(err) {
		return fmt.Errorf("chain: verify %s: %w", path, err)
	}
	if err != nil {
		// A corrupt .gz (a checksum, a truncated stream): the rest of the
		// file cannot be checked, which is a finding, not a reason to
		// report nothing.
		v.problem(Modified, 0, 0, "the file cannot be read to its end: %v", err)
	} else {
		v.tornKnown = true
	}
	if lr.nulThenData >= 0 {
		v.problem(Modified, 0, 0, "NUL bytes at offset %d are followed by other bytes: part of the file was overwritten with zeros, or a power loss under sync none or interval kept later pages and not earlier ones (FORMAT.md §5; the restarted writer's audit_outage record, reason power_loss, says so)", lr.nulThenData)
	}
	v.fr.Closed = v.closed
	if v.fr.Lines == 0 && len(v.fr.Problems) == 0 {
		v.problem(TornTail, 0, 0, "file holds no complete line")
	}
	if !v.closed && !last && v.fr.Lines > 0 {
		v.problem(TornTail, 0, 0, "file ends without a close record and a newer file follows (the writer stopped without Close, e.g. a crash)")
	}
	v.lastEnded = v.closed
	v.prevEmpty = v.fr.Lines == 0 && v.fr.OK()
	v.prevFile = v.fr.Name
	v.prevTorn, v.prevTornKnown = v.torn, v.tornKnown
	return nil
}

// osError reports whether err came from the operating system (a path
// error: gone, permission, out of descriptors, EIO), as opposed to content
// that does not decompress. The first is an error of Verify; the second is
// a finding about the file.
func osError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe)
}

// line judges one line; peek is the next line of the same file or nil.
// It reports whether it consumed peek too.
func (v *verifier) line(cur, peek *rawLine) (consumedPeek bool, err error) {
	if !cur.complete {
		n := cur.size()
		v.torn = n
		if v.closed {
			v.problem(Inserted, cur.no, 0, "%d bytes after the file's close record", n)
			return false, nil
		}
		// A crash tears a line: what is left is a prefix of a sealed line.
		// A whole sealed line followed by other bytes is an edit.
		if seq, end := v.sealedIn(cur); end >= 0 && end < n {
			v.problem(Modified, cur.no, seq, "sealed line followed by %d foreign bytes instead of a newline", n-end)
			return false, nil
		}
		// What a crash leaves is also a prefix of the line the writer
		// was writing next: {"seq":<next seq>,"prev":"<chain value>",
		// then the record. Other bytes are not a crash's (FORMAT.md §5).
		switch {
		case v.started && !v.lastBad:
			if !tornPrefixOK(cur.b, v.expSeq, v.expPrev) {
				v.problem(Modified, cur.no, 0, "%d bytes after the last newline do not begin as seq %d's line would (%s): not what a crash leaves", n, v.expSeq, fixedPart(v.expSeq, v.expPrev))
				return false, nil
			}
		case !v.started:
			// A file holding only torn bytes before the chain's first
			// line (the files before it were pruned): judged when the
			// line it should begin is known.
			v.pendingTorn = append(v.pendingTorn, pendingTorn{file: len(v.rep.Files) - 1, no: cur.no, n: n, head: bytes.Clone(cur.b[:min(len(cur.b), maxFixed)])})
		}
		v.problem(TornTail, cur.no, 0, "incomplete last line (%d bytes), as a crash during a write leaves it", n)
		return false, nil
	}
	v.fr.Lines++
	if v.dig != nil {
		if cur.long {
			v.reread(v.dig, &cur.ref, cur.st.size)
		} else {
			v.dig.Write(cur.b)
		}
		v.dig.Write([]byte{'\n'})
	}
	l, perr := cur.parse()
	if perr != nil {
		v.problem(Modified, cur.no, 0, "not a sealed line: %v", perr)
		v.lastBad = true
		v.expSeq++
		return false, nil
	}
	if v.fr.FirstSeq == 0 {
		v.fr.FirstSeq = l.Seq
	}
	v.fr.LastSeq = l.Seq
	if cur.no == 1 {
		if err := v.openRecord(&l, cur.no); err != nil {
			return false, err
		}
	} else if l.Kind == RecOpen {
		v.problem(Inserted, cur.no, l.Seq, "open record in the middle of a file")
	}
	if v.closed {
		v.problem(Inserted, cur.no, l.Seq, "line after the file's close record")
	}
	if l.Kind == RecClose {
		v.closed = true
	}
	if !v.started {
		v.started = true
		v.expSeq, v.expPrev = l.Seq, l.Prev
		v.rep.FirstSeq = l.Seq
		if l.Seq == 1 && l.Prev != [sha256.Size]byte{} {
			// FORMAT.md §2: the chain's first line has no predecessor.
			v.problem(Modified, cur.no, l.Seq, "seq 1 names a predecessor (prev): the first line of a chain has none")
		}
		if l.Seq == 1 && v.sealedPrev != "" && !(v.prevEmpty && v.sealedPrev == v.prevFile) {
			// Only a file that holds no complete line (a crash while the
			// chain's first open record was written, FORMAT.md §5) may
			// come before seq 1: the one here, or one a pruned record
			// names (checked at the end).
			v.firstPrevFile, v.firstFile = v.sealedPrev, v.fr.Name
		}
		for _, p := range v.pendingTorn {
			if !tornPrefixOK(p.head, l.Seq, l.Prev) {
				fr := &v.rep.Files[p.file]
				fr.Problems = append(fr.Problems, Problem{Class: Modified, File: fr.Name, Line: p.no, Detail: fmt.Sprintf("%d bytes after the last newline do not begin as seq %d's line would (%s): not what a crash leaves", p.n, l.Seq, fixedPart(l.Seq, l.Prev))})
			}
		}
		v.pendingTorn = nil
		// The first epoch's digest needs all its lines: from seq 1, or
		// from the line after a signed epoch end it links to.
		end, ok := v.signedEnds[l.Seq-1]
		v.digKnown = l.Seq == 1 || ok && end == l.Prev
		if l.Seq != 1 {
			v.firstLine = &gapStart{file: v.fr.Name, seq: l.Seq, prev: l.Prev, prevFile: v.sealedPrev,
				tornOnly: v.prevEmpty && v.sealedPrev == v.prevFile, first: v.rep.Files[0].Name}
		}
	}
	ok := v.macOK(&l)
	if ok && cur.no == 1 && l.Kind == RecOpen && v.openNote > 0 {
		v.lastNotes = append(v.lastNotes, noteClaim{file: v.fr.Name, seq: l.Seq, note: v.openNote})
	}
	if !ok && v.keyed && !v.badKey && v.nextEpochMAC(&l) {
		v.problem(BadCheckpoint, cur.no, l.Seq, "line is sealed with the key of epoch %d: the line that ended epoch %d is missing", v.epoch+1, v.epoch)
		v.setEpoch(v.epoch + 1)
		ok = true
	}
	linked := l.Seq == v.expSeq && l.Prev == v.expPrev
	if ok && l.Kind != "" && l.Seq >= v.expSeq {
		v.special(&l, cur.no)
	}
	switch {
	case ok && linked:
		v.advance(&l, false)
	case !ok:
		if pl := peekLine(peek); pl != nil && pl.Seq == v.expSeq && pl.Prev == v.expPrev && v.macOKLine(pl) {
			v.problem(Inserted, cur.no, l.Seq, "line was never sealed into the chain (MAC mismatch; the next line continues from seq %d)", v.expSeq-1)
			v.lastBad = true
			return false, nil
		}
		if linked {
			v.problem(Modified, cur.no, l.Seq, "MAC mismatch: the line was changed after it was sealed")
			v.advance(&l, true)
			break
		}
		v.problem(Modified, cur.no, l.Seq, "MAC mismatch and broken link (expected seq %d)", v.expSeq)
		v.expSeq++
		v.expPrev = l.MAC
		v.lastBad = true
	case l.Seq == v.expSeq: // authentic line whose predecessor is not the one sealed before it
		if !v.lastBad {
			v.problem(Modified, cur.no-1, l.Seq-1, "line seq %d does not match what seq %d was sealed over (its content and MAC were rewritten)", l.Seq-1, l.Seq)
		}
		v.advance(&l, false)
	case l.Seq > v.expSeq:
		if pl := peekLine(peek); pl != nil && l.Seq == v.expSeq+1 && pl.Seq == v.expSeq {
			v.problem(Reordered, cur.no, l.Seq, "seq %d and seq %d are swapped", l.Seq, pl.Seq)
			if !v.macOKLine(pl) {
				v.problem(Modified, cur.no+1, pl.Seq, "MAC mismatch")
			}
			v.fr.Lines++
			v.advance(&l, false)
			return true, nil
		}
		if cur.no == 1 && l.Kind == RecOpen {
			v.problem(Missing, cur.no, l.Seq, "seq %d-%d are missing: file(s) before this one (sealed predecessor %q) are gone", v.expSeq, l.Seq-1, v.sealedPrev)
		} else {
			v.problem(Deleted, cur.no, l.Seq, "seq %d-%d are missing before this line", v.expSeq, l.Seq-1)
		}
		v.advance(&l, false)
	default: // l.Seq < v.expSeq
		if l.MAC == v.expPrev {
			v.problem(Inserted, cur.no, l.Seq, "duplicate of seq %d", l.Seq)
		} else {
			v.problem(Reordered, cur.no, l.Seq, "seq %d appears after seq %d", l.Seq, v.expSeq-1)
		}
		v.lastBad = true
	}
	return false, nil
}

func (v *verifier) macOKLine(l *Line) bool { return v.macOK(l) }

// nextEpochMAC reports whether l verifies with the next epoch's key.
func (v *verifier) nextEpochMAC(l *Line) bool {
	next, _ := v.ekey.At(v.epoch + 1)
	return v.macOf(next.Key, l) == l.MAC
}

// macOf is macOf over l's sealed part, which it reads again for a long line.
func (v *verifier) macOf(key []byte, l *Line) [sha256.Size]byte {
	if l.long == nil {
		return macOf(key, l.Sealed)
	}
	var h hash.Hash
	if key == nil {
		h = sha256.New()
	} else {
		h = hmac.New(sha256.New, key)
	}
	v.writeSealed(h, l)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// writeSealed writes l's sealed part to h.
func (v *verifier) writeSealed(h hash.Hash, l *Line) {
	if l.long == nil {
		h.Write(l.Sealed)
		return
	}
	v.reread(h, l.long, l.long.n)
}

// reread writes the first n bytes of the long line at ref to w. A failure
// to read the file again fails Verify (after the line: its MAC, computed
// over fewer bytes, does not match).
func (v *verifier) reread(w io.Writer, ref *longRef, n int64) {
	if err := ref.copyTo(w, 0, n); err != nil && v.ioErr == nil {
		v.ioErr = err
	}
}

// special takes note of an authentic line that ends an epoch or records
// pruning.
func (v *verifier) special(l *Line, no int) {
	switch l.Kind {
	case RecCheckpoint, RecClose:
		var ei EndInfo
		if err := l.Decode(&ei); err != nil {
			v.problem(Modified, no, l.Seq, "%s record does not decode: %v", l.Kind, err)
			return
		}
		if ei.Epoch != v.epoch {
			v.problem(BadCheckpoint, no, l.Seq, "%s record ends epoch %d, but the chain is in epoch %d", l.Kind, ei.Epoch, v.epoch)
			if !v.plausibleEpoch(ei.Epoch, l.Seq) {
				ei.Epoch = v.epoch // a file with another key: its MACs say nothing
			}
		}
		t, _ := time.Parse(time.RFC3339Nano, ei.Time)
		end := Checkpoint{Seq: l.Seq, Chain: l.MAC, Epoch: ei.Epoch, File: ei.File, Time: t}
		if v.dig != nil {
			if v.digKnown {
				v.dig.Sum(end.Digest[:0])
				v.blindIn[l.Seq] = v.digBlind
				if v.badKey {
					v.noMAC[l.Seq] = true
				}
			}
			v.dig.Reset()
			v.digKnown, v.digBlind = true, 0
		}
		if l.Kind == RecClose {
			v.closeSealed, v.closeSeq, v.closeReason = true, l.Seq, ei.Reason
		}
		v.ends[l.Seq] = end
		v.endSeqs = append(v.endSeqs, l.Seq)
		v.rep.Epochs++
		v.setEpoch(ei.Epoch + 1)
	case RecPruned:
		var pi PrunedInfo
		if err := l.Decode(&pi); err != nil {
			v.problem(Modified, no, l.Seq, "pruned record does not decode: %v", err)
			return
		}
		v.pruned = append(v.pruned, pi)
	}
}

// gap judges a chain that does not start at seq 1: retention's pruned
// record must account for the files before it.
func (v *verifier) gap() {
	g := v.firstLine
	if g == nil {
		return
	}
	for _, p := range v.pruned {
		if p.ThroughSeq != g.seq-1 || p.ThroughChain != hex.EncodeToString(g.prev[:]) {
			continue
		}
		if p.File == g.prevFile {
			v.chainProblem(Gap, g.file, g.seq, "pruned: seq 1-%d were removed by retention, through %s, as a pruned record attests", p.ThroughSeq, p.File)
			return
		}
		if g.tornOnly && p.File < g.first {
			// The files left before the chain's first line hold no
			// complete line (a crash while an open record was written):
			// the pruned record of the file before them accounts for
			// every line up to the first one left.
			v.chainProblem(Gap, g.file, g.seq, "pruned: seq 1-%d were removed by retention, through %s; the file(s) after it, from %s, hold no complete line", p.ThroughSeq, p.File, g.first)
			return
		}
	}
	v.chainProblem(Missing, g.file, g.seq, "the chain starts at seq %d after %q, and no pruned record accounts for seq 1-%d: the oldest file(s) were removed", g.seq, g.prevFile, g.seq-1)
}

// notes checks the signed checkpoints against each other and the chain.
// When key verifies no note and they name other signers, it returns those
// (name+hash), and its findings are to be dropped.
func (v *verifier) notes(entries []NoteEntry, key note.Verifier) (others []string) {
	v.rep.NotesSigned = key != nil
	have := make(map[uint64]bool, len(entries)) // seqs of the notes that open
	defer v.claimedNotes(have)
	if len(entries) == 0 {
		return nil
	}
	var prevHash *[sha256.Size]byte
	noted := make(map[uint64]bool)
	// failedIn reports whether the files have a failing finding at a seq
	// in (from, to]: an epoch whose lines were found changed, deleted or
	// moved, whose digest then differs from its note's for that reason.
	var failed []uint64
	for _, f := range v.rep.Files {
		for _, p := range f.Problems {
			if !p.Class.Warning() && p.Seq > 0 {
				failed = append(failed, p.Seq)
			}
		}
	}
	slices.Sort(failed)
	failedIn := func(from, to uint64) bool {
		i, _ := slices.BinarySearch(failed, from+1)
		return i < len(failed) && failed[i] <= to
	}
	// The signers of notes that the key does not verify.
	unknown := make(map[string]bool)
	var firstNoted uint64
	first := true
	for _, e := range entries {
		if e.Torn {
			// The next writer signs that checkpoint again and cuts this.
			v.chainProblem(TornTail, "", 0, "checkpoints file: %v", e.Err)
			continue
		}
		if e.Err != nil {
			v.chainProblem(BadCheckpoint, "", 0, "checkpoints file: %v", e.Err)
			prevHash = nil
			continue
		}
		c, err := openNote(e.Note, key)
		h := sha256.Sum256(e.Note)
		for _, n := range signers(err) {
			unknown[n] = true
		}
		if err != nil {
			v.chainProblem(BadCheckpoint, "", e.Seq, "checkpoints file line %d: %v", e.Line, err)
			prevHash = &h
			continue
		}
		have[c.Seq] = true
		if e.Seq != c.Seq || e.Epoch != c.Epoch {
			v.chainProblem(BadCheckpoint, c.File, c.Seq, "checkpoints file line %d lists seq %d epoch %d, but its note says seq %d epoch %d", e.Line, e.Seq, e.Epoch, c.Seq, c.Epoch)
		}
		if first && c.Prev != ([sha256.Size]byte{}) {
			v.chainProblem(BadCheckpoint, c.File, c.Seq, "the first note of the checkpoints file follows another note: earlier notes were removed")
		}
		first = false
		if prevHash != nil && c.Prev != *prevHash {
			v.chainProblem(BadCheckpoint, c.File, c.Seq, "the note does not follow the note before it in the checkpoints file (a note was removed, inserted or changed)")
		}
		prevHash = &h
		switch end, ok := v.ends[c.Seq]; {
		case c.Seq > v.rep.LastSeq:
			v.chainProblem(Truncated, c.File, c.Seq, "a signed checkpoint covers seq %d (epoch %d, file %s), but the files end at seq %d: records were removed from the end of the chain", c.Seq, c.Epoch, c.File, v.rep.LastSeq)
		case c.Seq < v.rep.FirstSeq:
			// Its records were pruned; nothing left to compare.
		case !ok:
			v.chainProblem(BadCheckpoint, c.File, c.Seq, "a note covers seq %d, but the chain has no authentic checkpoint or close record there", c.Seq)
		case end.Chain != c.Chain || end.Epoch != c.Epoch || end.File != c.File:
			v.chainProblem(BadCheckpoint, c.File, c.Seq, "the note for seq %d does not match the chain (chain value, epoch or file differ)", c.Seq)
		case v.dig != nil && end.Digest != ([sha256.Size]byte{}) && c.Digest != ([sha256.Size]byte{}) && end.Digest != c.Digest:
			if v.keyed && v.blindIn[c.Seq] == 0 && !v.noMAC[c.Seq] && !failedIn(v.prevEnd(c.Seq), c.Seq) {
				// Every line of the epoch passed its MAC: the note is wrong.
				v.chainProblem(BadCheckpoint, c.File, c.Seq, "the digest of the signed checkpoint at seq %d does not match the lines of epoch %d, whose MACs check out", c.Seq, c.Epoch)
			} else {
				v.chainProblem(Modified, c.File, c.Seq, "the lines of epoch %d differ from what its signed checkpoint (seq %d) vouches for", c.Epoch, c.Seq)
			}
		default:
			if v.dig != nil && end.Digest != ([sha256.Size]byte{}) && end.Digest == c.Digest && key != nil {
				v.rep.Unchecked -= v.blindIn[c.Seq] // checked by the signed digest instead
				v.rep.DigestChecked += v.blindIn[c.Seq]
			}
			v.rep.Notes++
			noted[c.Seq] = true
			if firstNoted == 0 {
				firstNoted = c.Seq
			}
			v.rep.AnchoredSeq = max(v.rep.AnchoredSeq, c.Seq)
		}
	}
	if key != nil && len(have) == 0 && len(unknown) > 0 {
		return slices.Sorted(maps.Keys(unknown))
	}
	for _, seq := range v.endSeqs {
		// have: a note for seq is there, though it does not match (that
		// is reported above): not dropped.
		if firstNoted != 0 && seq > firstNoted && seq < v.rep.AnchoredSeq && !noted[seq] && !have[seq] {
			v.chainProblem(BadCheckpoint, v.ends[seq].File, seq, "the epoch ending at seq %d has no note in the checkpoints file (dropped)", seq)
		}
	}
	return nil
}

// wrongCheckpointKey reports a checkpoint key that verifies no note of the
// checkpoints file, whose notes name other signers: once, instead of a
// BAD_CHECKPOINT per note. The notes were judged as without a key.
func (v *verifier) wrongCheckpointKey(key note.Verifier, others []string) {
	v.rep.CheckpointSigners = others
	v.chainProblem(WrongKey, "", 0, "the checkpoints are signed by %s, the checkpoint key given is %s: no note verifies with it, so their signatures were not checked (the notes were judged as without a checkpoint key); give the verifier key of their signer. If the key given is the right one, every note was replaced by a note of another signer",
		strings.Join(others, ", "), keyName(key))
}

// prevEnd returns the seq of the epoch end before the one at seq, or 0.
func (v *verifier) prevEnd(seq uint64) uint64 {
	var p uint64
	for _, s := range v.endSeqs {
		if s < seq && s > p {
			p = s
		}
	}
	return p
}

// openNote opens a note of the checkpoints file with the checkpoint key,
// or reads it without checking its signature when there is none.
func openNote(n []byte, key note.Verifier) (Checkpoint, error) {
	if key != nil {
		return OpenCheckpoint(n, key)
	}
	return parseUnverifiedNote(n)
}

// claimedNotes checks that the notes authentic open records name
// (last_note) are in the checkpoints file: a writer names only a note it
// has synced there, so one missing was removed (the whole file, say).
func (v *verifier) claimedNotes(have map[uint64]bool) {
	var again map[uint64]bool
	for _, c := range v.lastNotes {
		if !have[c.note] && v.notesAgain != nil {
			// A file opened after the notes were read names a note
			// appended since: read them again (a note removed is not
			// there either time).
			if again == nil {
				again = v.notesAgain()
			}
			if again[c.note] {
				continue
			}
		}
		if !have[c.note] {
			v.chainProblem(BadCheckpoint, c.file, c.seq, "the open record of %s says the checkpoints file held a note for seq %d when the file was opened; it holds no such note: notes were removed", c.file, c.note)
		}
	}
}

// ParseNote reads a signed checkpoint note without checking its signature:
// for carrying notes (e.g. exporting them), never for trusting them; use
// OpenCheckpoint for that.
func ParseNote(msg []byte) (Checkpoint, error) { return parseUnverifiedNote(msg) }

// parseUnverifiedNote reads a signed note's body without checking any
// signature: only for when no checkpoint key was given.
func parseUnverifiedNote(msg []byte) (Checkpoint, error) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return Checkpoint{}, fmt.Errorf("%w: not a signed note", ErrBadCheckpoint)
	}
	c, err := parseCheckpointBody(string(msg[:i+1]))
	c.Note = msg
	return c, err
}

// trusted compares the chain with a checkpoint kept off the host.
func (v *verifier) trusted(c *Checkpoint) {
	if c == nil {
		return
	}
	switch end, ok := v.ends[c.Seq]; {
	case c.Seq > v.rep.LastSeq:
		for _, p := range v.rep.Chain {
			if p.Class == Truncated {
				return // already explained by the directory's own notes
			}
		}
		v.chainProblem(Rollback, c.File, c.Seq, "the trusted checkpoint covers seq %d (epoch %d, file %s, %s) but the directory ends at seq %d: it was rolled back to an older state, or its newest records were removed together with their notes",
			c.Seq, c.Epoch, c.File, c.Time.Format(time.RFC3339), v.rep.LastSeq)
	case c.Seq < v.rep.FirstSeq:
		// Pruned since; the retention gap is judged on its own.
	case !ok || end.Chain != c.Chain:
		v.chainProblem(Modified, c.File, c.Seq, "the chain at seq %d differs from the trusted checkpoint: the files were rewritten after it", c.Seq)
	default:
		v.rep.AnchoredSeq = max(v.rep.AnchoredSeq, c.Seq)
	}
}

// rotationSettle is how long a verifier that finds the newest file closed
// for rotation waits for the next one (and for its first line) before it
// reports TRUNCATED: a rotating writer creates it and writes its open
// record microseconds after the close record, a cut trail never.
const rotationSettle = 500 * time.Millisecond

// maxFollow is how long one verification waits for a writer's next files
// as it follows it.
const maxFollow = 2 * time.Second

// followCap is how long it follows at all: a writer still rotating then is
// reported (the end was not judged). A variable for tests.
var followCap = 30 * time.Second

type rotationEnd struct {
	file   string
	seq    uint64
	reason string
}

// rotatedAtEnd reports whether the current file ends with an authentic
// close record for rotation (reason size, time or rotate): its writer went
// on to a newer file.
func (v *verifier) rotatedAtEnd() bool {
	return v.closeSealed && v.closeReason != "close" && v.fr != nil
}

// newerFiles returns the files of dir newer than last, once the newest of
// them holds a complete line, or what there is after wait.
func newerFiles(dir string, opts VerifyOptions, last string, wait time.Duration) []string {
	var more []string
	poll(wait, func() bool {
		more = more[:0]
		if files, err := rotate.List(dir, opts.Prefix, opts.Ext); err == nil {
			for _, p := range files {
				if BaseName(p) > BaseName(last) {
					more = append(more, p)
				}
			}
		}
		return len(more) > 0 && holdsLine(more[len(more)-1])
	})
	return more
}

// poll asks done, a twentieth of rotationSettle apart, until it says yes
// or wait has passed (it asks at least once), and reports whether it did.
func poll(wait time.Duration, done func() bool) bool {
	deadline := time.Now().Add(wait)
	for !done() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(rotationSettle / 20)
	}
	return true
}

// exists reports whether the file at path is there, or its compressed form.
func exists(path string) bool {
	_, err := os.Lstat(path)
	_, gzErr := os.Lstat(path + ".gz")
	return err == nil || gzErr == nil
}

// holdsLine reports whether the file at path begins with a complete line
// (a newline before any NUL of preallocated space) within its first 64 KiB.
func holdsLine(path string) bool {
	r, err := rotate.Open(path)
	if err != nil {
		return false
	}
	defer r.Close()
	buf := make([]byte, 64<<10)
	n, _ := io.ReadFull(r, buf)
	for _, c := range buf[:n] {
		switch c {
		case '\n':
			return true
		case 0:
			return false
		}
	}
	return false
}

// successor judges the end of the trail. A close record whose reason is
// not "close" (size, time, rotate) says that the writer went on to a newer
// file: rotate writes the close record, closes the file and only then
// creates the next one, whose open record names this file (prev_file).
// When no newer file follows, or the newest holds no record, files were
// removed from the end (and maybe an empty one put in their place), or the
// writer stopped (or could not create or write the file) in between; a
// restarted writer then continues the chain from this close record with a
// file that names it. Either way the trail as it stands ends where its
// writer says it did not. A verifier other than the writer has waited for
// the next file already (newerFiles); the writer's own self-verification
// (Writing) is not asked about its own newest file.
func (v *verifier) successor(dir string, opts VerifyOptions) {
	if len(v.rep.Files) == 0 {
		return
	}
	newest := v.rep.Files[len(v.rep.Files)-1]
	if v.followCut {
		v.chainProblem(Truncated, newest.Name, v.closeSeq, "the writer kept closing files for rotation (the last one read, reason %q) for the %s this verification followed it: the end of the trail was not judged; verify again", v.closeReason, followCap)
		return
	}
	if opts.Writing != nil {
		// The writer's own newest file, or one it went on to after this
		// listed the files (if it is there; and the newest read, if it
		// held no line then, holds one now: the writer filled it), is no
		// cut. A file newer than the writer's is one it is creating (it
		// names a file as its own once created): wait for it to say so.
		newestPath := filepath.Join(dir, newest.Name)
		movedOn := false
		poll(rotationSettle, func() bool {
			w := BaseName(opts.Writing())
			movedOn = w == newest.Name || w > newest.Name && exists(filepath.Join(dir, w)) && (newest.Lines > 0 || holdsLine(newestPath) || holdsLine(newestPath+".gz"))
			return movedOn || w > newest.Name
		})
		if movedOn {
			return
		}
	}
	switch {
	case v.rotatedAtEnd():
		if opts.Writing != nil {
			// The writer itself has created the next file by the time
			// Writing was asked: listed again, it is there.
			if files, err := rotate.List(dir, opts.Prefix, opts.Ext); err == nil {
				for _, p := range files {
					if BaseName(p) > newest.Name {
						return
					}
				}
			}
		}
		v.chainProblem(Truncated, newest.Name, v.closeSeq, "the newest file was closed for rotation (reason %q) but no newer file follows: files were removed from the end of the trail, or the writer stopped between writing this close record and creating the next file (a crash in that moment, or creating the file failed); its next start continues the chain with a file that names this one", v.closeReason)
	case newest.Lines == 0 && v.rotatedFrom.file != "":
		rf := v.rotatedFrom
		v.chainProblem(Truncated, newest.Name, rf.seq, "the newest file holds no record, and the file before it (%s) was closed for rotation (reason %q) at seq %d: files were removed from the end of the trail and this one put in their place, or the writer stopped between creating this file and writing its open record (a crash in that moment); its next start removes or continues it", rf.file, rf.reason, rf.seq)
	}
}

// wrongKey reports a K(0) that is not the trail's: every keyed file is
// sealed with one other key_id, none with the key given, none without a
// key, and no line's MAC checked with the key given. The files' BAD_KEY
// findings say so file by file; this says it once, and names the key the
// trail needs.
func (v *verifier) wrongKey() {
	if !v.k0 || len(v.otherKeyIDs) != 1 || v.ownKeyFiles > 0 || v.unkeyedFiles > 0 || v.macMatched > 0 {
		return
	}
	for id := range v.otherKeyIDs {
		v.rep.TrailKeyID = id
	}
	v.chainProblem(WrongKey, "", 0, "the trail is sealed with key_id %s, the key given is key_id %s: no line could be checked with it; verify with the trail's initial key K(0), key_id %[1]s (auditctl keygen prints the key_id of the key it writes). If the key given is the trail's K(0), every file was sealed again with another key", v.rep.TrailKeyID, v.rep.KeyID)
}

// unanchored reports the records after the last checkpoint: the exposure
// window that only the current epoch's MAC protects.
func (v *verifier) unanchored() {
	if v.rep.Notes == 0 && !v.rep.NotesSigned && len(v.endSeqs) > 0 {
		// Without checkpoints to check, an ended epoch is anchored by its
		// key being gone (forward security). Given a CheckpointKey, only
		// signed checkpoints anchor: unsigned epoch ends are what a holder
		// of the current key can write.
		v.rep.AnchoredSeq = max(v.rep.AnchoredSeq, v.endSeqs[len(v.endSeqs)-1])
	}
	if v.rep.LastSeq > v.rep.AnchoredSeq {
		from := max(v.rep.AnchoredSeq+1, v.rep.FirstSeq) // not the lines retention removed
		v.chainProblem(Unanchored, "", from, "%d records after the last checkpoint (seq %d) are protected only by the current epoch's MAC", v.rep.LastSeq-from+1, v.rep.AnchoredSeq)
	}
	if v.rep.Unchecked > 0 {
		v.chainProblem(Unanchored, "", 0, "%d lines could be checked neither by MAC (no key for their epoch) nor by a signed digest: verify with K(0)", v.rep.Unchecked)
	}
}

func (v *verifier) advance(l *Line, bad bool) {
	v.expSeq, v.expPrev, v.lastBad = l.Seq+1, l.MAC, bad
	v.rep.LastSeq = l.Seq
}

func peekLine(r *rawLine) *Line {
	if r == nil || !r.complete {
		return nil
	}
	l, err := r.parse()
	if err != nil {
		return nil
	}
	return &l
}

// openRecord checks the first line of a file.
func (v *verifier) openRecord(l *Line, no int) error {
	v.sealedPrev = ""
	if l.Kind != RecOpen {
		v.problem(Modified, no, l.Seq, "the first line is not an open record")
		return nil
	}
	var oi OpenInfo
	if err := l.Decode(&oi); err != nil {
		v.problem(Modified, no, l.Seq, "open record does not decode: %v", err)
		return nil
	}
	v.sealedPrev = oi.PrevFile
	v.openNote = oi.LastNote
	// The epoch is read before the MAC can be checked (it picks the key):
	// only a plausible one may drive the key derivation, which costs one
	// HMAC per epoch.
	switch {
	case !v.plausibleEpoch(oi.Epoch, l.Seq):
		v.problem(Modified, no, l.Seq, "open record claims epoch %d, impossible at seq %d", oi.Epoch, l.Seq)
	case !v.started && l.Seq == 1 && oi.Epoch != 0:
		v.problem(Modified, no, l.Seq, "the chain's first file starts in epoch %d, not 0", oi.Epoch)
	case !v.started || l.Seq != v.expSeq:
		v.setEpoch(oi.Epoch) // the chain starts here, or a MISSING file is reported
	case oi.Epoch != v.epoch:
		v.problem(BadCheckpoint, no, l.Seq, "open record is in epoch %d but the chain is in epoch %d: an epoch ended without a checkpoint, or one was skipped", oi.Epoch, v.epoch)
	}
	switch {
	case oi.Alg == AlgHMACSHA256 && !v.keyed:
		return fmt.Errorf("%w (%s, key_id %s)", ErrKeyRequired, v.fr.Name, oi.KeyID)
	case oi.Alg != AlgHMACSHA256 && oi.Alg != AlgSHA256:
		v.problem(Modified, no, l.Seq, "unknown algorithm %q", oi.Alg)
		v.badKey = true
	case v.keyed && oi.Alg != AlgHMACSHA256:
		v.problem(BadKey, no, l.Seq, "file is sealed without a key (%s): anyone can rewrite it", oi.Alg)
		v.badKey = true
	case v.keyed && oi.KeyID != v.rep.KeyID:
		v.problem(BadKey, no, l.Seq, "file is sealed with key_id %s, not the given key (key_id %s)", oi.KeyID, v.rep.KeyID)
		v.badKey = true
	}
	switch {
	case !v.keyed:
	case oi.Alg == AlgSHA256:
		v.unkeyedFiles++
	case oi.Alg != AlgHMACSHA256:
	case oi.KeyID == v.rep.KeyID:
		v.ownKeyFiles++
	default:
		v.otherKeyIDs[oi.KeyID] = true
	}
	if oi.V != Version {
		v.problem(Modified, no, l.Seq, "unknown format version %d", oi.V)
	}
	if oi.File != v.fr.Name {
		v.problem(Renamed, no, l.Seq, "file is named %q but was sealed as %q", v.fr.Name, oi.File)
	}
	if !v.started && v.prevEmpty && oi.PrevFile == v.prevFile && v.prevTornKnown && oi.PrevTorn != v.prevTorn {
		// The chain starts after files that hold no complete line (the
		// files before them were pruned): the one this file names must
		// hold the torn bytes its open record counted.
		v.problem(Modified, no, l.Seq, "the previous file %q holds %d bytes and no complete line, but this file's open record says %d", v.prevFile, v.prevTorn, oi.PrevTorn)
	}
	if v.started && l.Seq == v.expSeq && oi.PrevFile != v.prevFile {
		v.problem(Renamed, no, l.Seq, "sealed predecessor is %q but the previous file is %q", oi.PrevFile, v.prevFile)
	} else if v.started && l.Seq == v.expSeq && v.prevTornKnown && oi.PrevTorn != v.prevTorn {
		// The writer that started this file recorded how many torn bytes
		// its predecessor ended in: bytes added there (or removed) since
		// are an edit, not a crash's.
		v.problem(Modified, no, l.Seq, "the previous file %q ends in %d bytes after its last newline, but this file's open record says %d", v.prevFile, v.prevTorn, oi.PrevTorn)
	}
	return nil
}

// rawLine is one line as read: without its newline, complete unless the
// file ended before a newline.
type rawLine struct {
	b        []byte
	no       int
	complete bool
	// For a long line (a reader with path set, longer than longLine): b
	// holds only its first longHead bytes, and st what else is known.
	long bool
	st   streamState
	ref  longRef // where it starts
}

// size is the line's length without its newline.
func (r *rawLine) size() int64 {
	if r.long {
		return r.st.size
	}
	return int64(len(r.b))
}

// parse parses the line as ParseLine does.
func (r *rawLine) parse() (Line, error) {
	if !r.long {
		return ParseLine(r.b)
	}
	return parseStreamed(r.b, r.st.tail.bytes(), r.st.size, r.ref)
}

// sealedIn looks in torn bytes (a line without its newline) for a sealed
// line followed by other bytes: the first candidate end, a
// `,"mac":"<64 hex>"}`, before which the bytes are a sealed line whose MAC
// checks with the key of the current epoch. It returns that line's seq and
// end, or end -1. Every candidate is tried, in order, with one running
// HMAC cloned at each: linear in the line's length, also for a long line,
// which is read again from the file.
func (v *verifier) sealedIn(r *rawLine) (seq uint64, end int64) {
	seq, afterPrev, err := parseHead(r.b)
	if err != nil {
		return 0, -1
	}
	sc := sealedScan{end: -1, afterPrev: int64(afterPrev), comma: len(r.b) > afterPrev && r.b[afterPrev] == ','}
	switch {
	case v.badKey:
		// Sealed with another key: its MACs say nothing; a line framed
		// as sealed counts.
	case v.blind && v.base.From != 0 && seq >= v.base.From:
		sc.h = hmac.New(sha256.New, v.base.Key)
	case v.blind:
		// No key for the epoch: a line framed as sealed counts.
	case v.keyed:
		sc.h = hmac.New(sha256.New, v.ekey.Key)
	default:
		sc.h = sha256.New()
	}
	if !r.long {
		sc.Write(r.b)
	} else {
		v.reread(&sc, &r.ref, r.st.size)
	}
	return seq, sc.end
}

// sealedScan is sealedIn's scan, written the line's bytes in order.
type sealedScan struct {
	h         hash.Hash // over the bytes before pend; nil: no MAC to check
	off       int64     // bytes written to h
	pend      []byte    // bytes not yet written to h: a candidate may start there
	afterPrev int64     // where the member after prev starts
	comma     bool      // and it starts with ','
	end       int64     // the first sealed line's end, or -1
	sum       [sha256.Size]byte
}

func (s *sealedScan) Write(p []byte) (int, error) {
	if s.end >= 0 {
		return len(p), nil
	}
	s.pend = append(s.pend, p...)
	buf, hashed := s.pend, 0
	for i := 0; ; {
		j := bytes.Index(buf[i:], []byte(macPrefix))
		if j < 0 || len(buf)-(i+j) < lineTail {
			break
		}
		q := i + j
		i = q + 1
		c := buf[q : q+lineTail]
		sealed := s.off + int64(q-hashed)
		var mac [sha256.Size]byte
		if c[lineTail-2] != '"' || c[lineTail-1] != '}' || decodeHash(&mac, c[len(macPrefix):len(macPrefix)+hashHex]) != nil ||
			sealed < s.afterPrev || (sealed > s.afterPrev && !s.comma) {
			continue
		}
		if s.h == nil {
			s.end = sealed + int64(lineTail)
			return len(p), nil
		}
		s.h.Write(buf[hashed:q])
		s.off, hashed = sealed, q
		h, err := s.h.(hash.Cloner).Clone()
		if err != nil {
			panic(err) // every hash in the standard library clones
		}
		if h.Sum(s.sum[:0]); s.sum == mac {
			s.end = sealed + int64(lineTail)
			return len(p), nil
		}
	}
	// Keep what a candidate not yet complete may start with.
	keep := max(hashed, len(buf)-(lineTail-1))
	if s.h != nil {
		s.h.Write(buf[hashed:keep])
	}
	s.off += int64(keep - hashed)
	s.pend = s.pend[:copy(s.pend, buf[keep:])]
	return len(p), nil
}

// lineReader reads lines into a ring of three buffers, so that the current
// line, a look-ahead line and the one after stay valid together.
type lineReader struct {
	br *bufio.Reader
	rs io.ReadSeeker // the plain file, for re-reading; nil for gzip
	// path, if set, is the file's, and lines longer than longLine are
	// streamed (Verify); the Writer's scan holds every line.
	path string
	off  int64 // bytes of the lines returned so far
	no   int
	ring [3]rawLine
	i    int
	// nulThenData is set when the content ended at NUL bytes (preallocated,
	// unwritten space) that are followed by other bytes: not something a
	// writer leaves.
	nulThenData int64 // offset of the NUL, or -1
	ended       bool  // a NUL ended the content
}

func newLineReader(r io.Reader) *lineReader {
	lr := &lineReader{br: bufio.NewReaderSize(r, 256<<10), nulThenData: -1}
	if rs, ok := r.(io.ReadSeeker); ok {
		lr.rs = rs
	}
	return lr
}

// next returns the next line, or nil at the end. The content of a file
// ends at its first NUL byte: a preallocated file (rotate.Options.
// Preallocate) holds NUL bytes where nothing was written yet. Since the
// reader's buffer may hold such bytes from before they were written, a NUL
// is read again from the file before it counts.
func (lr *lineReader) next() (*rawLine, error) {
	if lr.ended {
		return nil, nil
	}
	rl := &lr.ring[lr.i]
	lr.i = (lr.i + 1) % len(lr.ring)
	rl.b = rl.b[:0]
	rl.long = false
	retried := false
	// add appends the line's next bytes, or streams them once the line
	// is long.
	add := func(b []byte) {
		if rl.long {
			rl.st.feed(b)
			return
		}
		rl.b = append(rl.b, b...)
		if lr.path != "" && len(rl.b) > longLine {
			rl.long = true
			rl.ref = longRef{path: lr.path, off: lr.off}
			rl.st.start(rl.b)
			rl.b = rl.b[:min(longHead, len(rl.b))]
		}
	}
	size := func() int64 {
		if rl.long {
			return rl.st.size
		}
		return int64(len(rl.b))
	}
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if i := bytes.IndexByte(chunk, 0); i >= 0 {
			add(chunk[:i])
			nulAt := lr.off + size()
			if lr.rs != nil && !retried {
				retried = true
				if _, err := lr.rs.Seek(nulAt, io.SeekStart); err != nil {
					return nil, err
				}
				lr.br.Reset(lr.rs)
				continue
			}
			if err := lr.afterNUL(nulAt, chunk[i:]); err != nil {
				return nil, err
			}
			// The content ends here: afterNUL moved the file and the
			// buffer past it.
			lr.ended = true
			if size() == 0 {
				return nil, nil
			}
			lr.no++
			rl.no, rl.complete = lr.no, false
			return rl, nil
		}
		if err == nil {
			add(chunk[:len(chunk)-1])
		} else {
			add(chunk)
		}
		switch err {
		case bufio.ErrBufferFull:
			continue
		case io.EOF:
			if size() == 0 {
				return nil, nil
			}
			lr.no++
			rl.no, rl.complete = lr.no, false
			return rl, nil
		case nil:
			lr.no++
			lr.off += size() + 1
			rl.no, rl.complete = lr.no, true
			return rl, nil
		default:
			return nil, err
		}
	}
}

// afterNUL reads the rest of the file after the NUL at offset nulAt (rest:
// what was read of it already) and records whether anything but NUL bytes
// follows. A writer that is still writing may fill the space while it is
// read: then the NUL itself is gone when read again, and the content simply
// ended there for this reading.
func (lr *lineReader) afterNUL(nulAt int64, rest []byte) error {
	found := !allNUL(rest)
	buf := make([]byte, 64<<10)
	for !found {
		n, err := lr.br.Read(buf)
		found = !allNUL(buf[:n])
		if found {
			break
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if lr.rs != nil {
		var b [1]byte
		if _, err := lr.rs.Seek(nulAt, io.SeekStart); err != nil {
			return err
		}
		if _, err := io.ReadFull(lr.rs, b[:]); err != nil || b[0] != 0 {
			return nil // written meanwhile
		}
	}
	lr.nulThenData = nulAt
	return nil
}

func allNUL(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
