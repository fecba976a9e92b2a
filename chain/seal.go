package chain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"os"
	"strconv"
	"time"

	"github.com/slogaudit/slogaudit/internal/jsonenc"
)

// Algorithm names as written in open records.
const (
	AlgHMACSHA256 = "hmac-sha256" // keyed: only key holders can extend or rewrite the chain
	AlgSHA256     = "sha256"      // unkeyed: detects accidents and naive edits only
)

// Version is the format version written in open records.
const Version = 1

// Record kinds (the "rec" member). Ordinary audit records have none.
const (
	RecOpen  = "open"
	RecClose = "close"
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
}

// sealer frames records into chained lines. It implements rotate.Framer and
// is only ever called by one goroutine at a time (the group-commit leader).
type sealer struct {
	alg, keyID string
	mac        hash.Hash
	sum        [sha256.Size]byte
	now        func() time.Time
	host       string
	pid        int

	cur, committed state
}

func newSealer(key []byte, now func() time.Time, head state) *sealer {
	hex.Encode(head.prevHex[:], head.prev[:])
	s := &sealer{now: now, cur: head, committed: head, pid: os.Getpid()}
	s.host, _ = os.Hostname()
	if key != nil {
		s.alg, s.keyID = AlgHMACSHA256, KeyID(key)
		s.mac = hmac.New(sha256.New, key)
	} else {
		s.alg = AlgSHA256
		s.mac = sha256.New()
	}
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
	s.mac.Reset()
	s.mac.Write(b[start:])
	s.mac.Sum(s.sum[:0])
	s.cur.prev = s.sum
	hex.Encode(s.cur.prevHex[:], s.sum[:])
	b = append(b, macPrefix...)
	b = append(b, s.cur.prevHex[:]...)
	return append(b, lineSuffix...)
}

func (s *sealer) Frame(b, rec []byte, arg any) []byte {
	b = s.seal(b, rec)
	if p, ok := arg.(*Position); ok {
		p.Seq, p.Chain = s.cur.seq, s.cur.prev
	}
	return b
}

func (s *sealer) Len(rec []byte) int {
	n := len(seqPrefix) + decimalLen(s.cur.seq+1) + len(prevPrefix) + hashHex + 1 +
		len(macPrefix) + hashHex + len(lineSuffix)
	if len(rec) > 0 {
		n += 1 + len(rec)
	}
	return n
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
	body = append(body, `,"host":`...)
	body = jsonenc.String(body, s.host)
	body = append(body, `,"pid":`...)
	body = strconv.AppendInt(body, int64(s.pid), 10)
	s.cur.file = name
	s.cur.prevTorn = 0
	return s.seal(b, body)
}

func (s *sealer) Close(b []byte, name, reason string) []byte {
	var body []byte
	body = append(body, `"rec":"close","time":`...)
	body = jsonenc.Time(body, s.now())
	body = append(body, `,"file":`...)
	body = jsonenc.String(body, name)
	body = append(body, `,"reason":`...)
	body = jsonenc.String(body, reason)
	return s.seal(b, body)
}

func (s *sealer) Commit()   { s.committed = s.cur }
func (s *sealer) Rollback() { s.cur = s.committed }

// head returns the committed position.
func (s *sealer) head() Position { return Position{Seq: s.committed.seq, Chain: s.committed.prev} }

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
