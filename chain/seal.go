package chain

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/slogaudit/slogaudit/internal/jsonenc"
)

// Algorithm names as written in open records.
const (
	AlgHMACSHA256 = "hmac-sha256" // keyed: only key holders can extend or rewrite the chain
	AlgSHA256     = "sha256"      // unkeyed: detects accidents and naive edits only
)

// Version is the format version written in open records.
const Version = 2

// Record kinds (the "rec" member). Ordinary audit records have none.
const (
	RecOpen       = "open"
	RecClose      = "close"      // ends its file and its epoch
	RecCheckpoint = "checkpoint" // ends its epoch
	RecPruned     = "pruned"     // retention removed the oldest file
)

// Fixed pieces of every line; see FORMAT.md.
const (
	seqPrefix  = `{"seq":`
	prevPrefix = `,"prev":"`
	macPrefix  = `,"mac":"`
	lineSuffix = "\"}\n"
	hashHex    = 2 * sha256.Size
)

// Position is where a record landed in the chain.
type Position struct {
	Seq   uint64            // sequence number, 1 for the first record ever
	Chain [sha256.Size]byte // the record's MAC, which the next record names as prev
}

// Hex returns the chain value as written in the file.
func (p Position) Hex() string { return hex.EncodeToString(p.Chain[:]) }

// state is what a Rollback returns to.
type state struct {
	seq      uint64
	prev     [sha256.Size]byte
	prevHex  [hashHex]byte // prev as written, kept to save encoding it again
	file     string        // base name of the newest file opened
	prevTorn int64         // bytes of torn tail in file's predecessor, written once in the next open record

	epoch uint64    // the epoch of the next line
	lines int       // lines of this epoch so far
	key   []byte    // K(epoch); nil when unkeyed
	mac   hash.Hash // keyed with key

	ends    []Checkpoint // epochs ended since the last Commit
	derived [][]byte     // keys derived since the last Commit

	// text holds the lines of the epoch so far, for its digest (hashed
	// off the writing path, when the epoch ends). unknown: the epoch began
	// before what this writer could read back (a resumed chain whose
	// epoch start is not in the files).
	text    []byte
	unknown bool
}

// sealer frames records into chained lines. It implements rotate.Framer and
// is only ever called by one goroutine at a time (the group-commit leader).
type sealer struct {
	alg, keyID string
	every      int // lines per epoch; 0 = no limit
	sum        [sha256.Size]byte
	now        func() time.Time
	host       string
	pid        int
	scratch    []byte
	// sync is the durability policy the open records name (rotate.Policy's
	// String); "" names none.
	sync string

	// lastNote, if set, holds the seq of the last note synced to the
	// checkpoints file: the open record names it.
	lastNote *atomic.Uint64

	// onCommit receives the epochs whose end lines were just written.
	onCommit func(ends []Checkpoint, ks KeyState, lines int)

	cur, committed state
}

// newSealer continues the chain at head with ks, the key of head.epoch
// (ks.Key nil: unkeyed).
func newSealer(ks KeyState, every int, now func() time.Time, head state) *sealer {
	hex.Encode(head.prevHex[:], head.prev[:])
	s := &sealer{now: now, every: every, pid: os.Getpid()}
	s.host, _ = os.Hostname()
	head.key = ks.Key
	if ks.Key != nil {
		s.alg, s.keyID = AlgHMACSHA256, ks.ID
		head.mac = hmac.New(sha256.New, ks.Key)
	} else {
		s.alg = AlgSHA256
		head.mac = sha256.New()
	}
	s.cur, s.committed = head, head
	return s
}

// seal appends a complete line for body (the members after prev, without
// braces; may be empty) and advances the chain.
func (s *sealer) seal(b, body []byte) []byte {
	s.cur.seq++
	start := len(b)
	b = append(b, seqPrefix...)
	b = strconv.AppendUint(b, s.cur.seq, 10)
	b = append(b, prevPrefix...)
	b = append(b, s.cur.prevHex[:]...)
	b = append(b, '"')
	if len(body) > 0 {
		b = append(b, ',')
		b = append(b, body...)
	}
	s.cur.mac.Reset()
	s.cur.mac.Write(b[start:])
	s.cur.mac.Sum(s.sum[:0])
	s.cur.lines++
	s.cur.prev = s.sum
	hex.Encode(s.cur.prevHex[:], s.sum[:])
	b = append(b, macPrefix...)
	b = append(b, s.cur.prevHex[:]...)
	b = append(b, lineSuffix...)
	s.cur.text = append(s.cur.text, b[start:]...)
	return b
}

// maxEpochText ends an epoch early when its lines take this many bytes, to
// bound the memory kept for its digest.
const maxEpochText = 8 << 20

// epochTexts recycles the buffers of the epochs' lines. Not a sync.Pool:
// that is emptied at every garbage collection, and a new buffer growing to
// an epoch's size (~400 KiB for 1,000 records) by doubling cost the
// logging goroutine more than copying the lines into it.
var epochTexts = make(chan []byte, 2)

// maxKeptText bounds the capacity of a recycled buffer, and so the memory
// epochTexts keeps.
const maxKeptText = 2 << 20

// newText returns an empty buffer for an epoch's lines, of at least
// capacity hint if it is new.
func newText(hint int) []byte {
	select {
	case b := <-epochTexts:
		return b[:0]
	default:
		return make([]byte, 0, min(hint, maxKeptText))
	}
}

// recycleText gives an epoch's buffer back once its digest is taken.
func recycleText(b []byte) {
	if cap(b) > maxKeptText {
		return
	}
	select {
	case epochTexts <- b[:0]:
	default:
	}
}

// checkpointReq asks the sealer to end the epoch if it holds any line.
type checkpointReq struct{}

func (s *sealer) Frame(b, rec []byte, arg any) []byte {
	if _, ok := arg.(checkpointReq); ok {
		if s.cur.lines == 0 {
			return b
		}
		return s.checkpoint(b)
	}
	b = s.seal(b, rec)
	if p, ok := arg.(*Position); ok {
		p.Seq, p.Chain = s.cur.seq, s.cur.prev
	}
	if s.every > 0 && s.cur.lines >= s.every || len(s.cur.text) >= maxEpochText {
		b = s.checkpoint(b)
	}
	return b
}

func (s *sealer) Len(rec []byte, arg any) int {
	n := 0
	if _, ok := arg.(checkpointReq); !ok {
		n = s.lineLen(s.cur.seq+1, len(rec))
		if s.every == 0 || s.cur.lines+1 < s.every {
			return n
		}
	} else if s.cur.lines == 0 {
		return 0
	}
	s.scratch = s.checkpointBody(s.scratch[:0], time.Time{})
	return n + s.lineLen(s.cur.seq+1+uint64(min(n, 1)), len(s.scratch))
}

func (s *sealer) lineLen(seq uint64, body int) int {
	n := len(seqPrefix) + decimalLen(seq) + len(prevPrefix) + hashHex + 1 +
		len(macPrefix) + hashHex + len(lineSuffix)
	if body > 0 {
		n += 1 + body
	}
	return n
}

func (s *sealer) checkpointBody(body []byte, t time.Time) []byte {
	body = append(body, `"rec":"checkpoint","time":`...)
	body = jsonenc.Time(body, t)
	body = append(body, `,"epoch":`...)
	body = strconv.AppendUint(body, s.cur.epoch, 10)
	body = append(body, `,"file":`...)
	return jsonenc.String(body, s.cur.file)
}

// checkpoint appends a checkpoint line, which ends the epoch.
func (s *sealer) checkpoint(b []byte) []byte {
	t := s.now()
	s.scratch = s.checkpointBody(s.scratch[:0], t)
	b = s.seal(b, s.scratch)
	s.endEpoch(t)
	return b
}

// endEpoch records the end of the epoch at the line just sealed and moves to
// the next epoch's key.
func (s *sealer) endEpoch(t time.Time) {
	c := Checkpoint{Seq: s.cur.seq, Chain: s.cur.prev, Epoch: s.cur.epoch, File: s.cur.file, Time: t.UTC()}
	if !s.cur.unknown {
		c.text = s.cur.text
	}
	if s.cur.key != nil {
		c.key = bytes.Clone(s.cur.key) // until the checkpoint is settled (Writer.EpochKey)
	}
	s.cur.ends = append(s.cur.ends, c)
	n := len(s.cur.text)
	s.cur.text, s.cur.unknown = newText(n+n/4), false
	s.cur.epoch++
	s.cur.lines = 0
	if s.cur.key != nil {
		s.cur.key = EvolveKey(s.cur.key, s.cur.epoch)
		s.cur.derived = append(s.cur.derived, s.cur.key)
		s.cur.mac = hmac.New(sha256.New, s.cur.key)
	}
}

func decimalLen(n uint64) int {
	l := 1
	for n >= 10 {
		n /= 10
		l++
	}
	return l
}

func (s *sealer) Open(b []byte, name, _ string) []byte {
	// The predecessor is the chain's own idea of the newest file: on the first
	// file after a restart it comes from resuming the directory.
	var body []byte
	body = append(body, `"rec":"open","time":`...)
	body = jsonenc.Time(body, s.now())
	body = append(body, `,"v":`...)
	body = strconv.AppendInt(body, Version, 10)
	body = append(body, `,"epoch":`...)
	body = strconv.AppendUint(body, s.cur.epoch, 10)
	body = append(body, `,"alg":`...)
	body = jsonenc.String(body, s.alg)
	if s.keyID != "" {
		body = append(body, `,"key_id":`...)
		body = jsonenc.String(body, s.keyID)
	}
	body = append(body, `,"file":`...)
	body = jsonenc.String(body, name)
	body = append(body, `,"prev_file":`...)
	body = jsonenc.String(body, s.cur.file)
	if s.cur.prevTorn > 0 {
		body = append(body, `,"prev_torn":`...)
		body = strconv.AppendInt(body, s.cur.prevTorn, 10)
	}
	if s.lastNote != nil {
		if n := s.lastNote.Load(); n > 0 {
			body = append(body, `,"last_note":`...)
			body = strconv.AppendUint(body, n, 10)
		}
	}
	if s.sync != "" {
		body = append(body, `,"sync":`...)
		body = jsonenc.String(body, s.sync)
	}
	body = append(body, `,"host":`...)
	body = jsonenc.String(body, s.host)
	body = append(body, `,"pid":`...)
	body = strconv.AppendInt(body, int64(s.pid), 10)
	s.cur.file = name
	s.cur.prevTorn = 0
	return s.seal(b, body)
}

// Close ends the file and its epoch.
func (s *sealer) Close(b []byte, name, reason string) []byte {
	t := s.now()
	body := s.scratch[:0]
	body = append(body, `"rec":"close","time":`...)
	body = jsonenc.Time(body, t)
	body = append(body, `,"epoch":`...)
	body = strconv.AppendUint(body, s.cur.epoch, 10)
	body = append(body, `,"file":`...)
	body = jsonenc.String(body, name)
	body = append(body, `,"reason":`...)
	body = jsonenc.String(body, reason)
	s.scratch = body
	b = s.seal(b, body)
	s.endEpoch(t)
	return b
}

func (s *sealer) Commit() {
	if s.cur.key != nil && len(s.cur.derived) > 0 {
		// Forget every key but the one in use: the point of evolving it.
		clear(s.committed.key)
		for _, k := range s.cur.derived[:len(s.cur.derived)-1] {
			clear(k)
		}
	}
	ends := s.cur.ends
	s.cur.ends, s.cur.derived = nil, nil
	s.committed = s.cur
	if s.onCommit != nil {
		var ks KeyState
		if len(ends) > 0 && s.cur.key != nil {
			ks = KeyState{ID: s.keyID, Epoch: s.cur.epoch, Key: bytes.Clone(s.cur.key)}
		}
		s.onCommit(ends, ks, s.cur.lines)
	}
}

func (s *sealer) Rollback() {
	for _, k := range s.cur.derived {
		clear(k)
	}
	s.cur = s.committed
}

// macOf computes the MAC of a line's sealed prefix with a fresh hash.
func macOf(key, prefix []byte) [sha256.Size]byte {
	var out [sha256.Size]byte
	if key == nil {
		return sha256.Sum256(prefix)
	}
	m := hmac.New(sha256.New, key)
	m.Write(prefix)
	m.Sum(out[:0])
	return out
}
