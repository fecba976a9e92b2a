package chain

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Line is one parsed sealed line. Parsing checks only the fixed frame; it
// does not check the MAC or the link (see Verify).
type Line struct {
	Seq    uint64
	Prev   [sha256.Size]byte
	MAC    [sha256.Size]byte
	Kind   string // "" for an audit record, or RecOpen, RecClose, RecCheckpoint, RecPruned
	Sealed []byte // the bytes the MAC covers: from '{' up to, not including, ,"mac":"
	Raw    []byte // the whole line without its newline

	// long is set for a line too long to hold (Verify's streaming path):
	// Sealed and Raw are then nil, and the sealed part is read again from
	// the file when a MAC needs it.
	long *longRef
}

var (
	recOpenMember       = []byte(`,"rec":"open"`)
	recCloseMember      = []byte(`,"rec":"close"`)
	recCheckpointMember = []byte(`,"rec":"checkpoint"`)
	recPrunedMember     = []byte(`,"rec":"pruned"`)
)

// ParseLine parses raw (one line without its trailing newline). The returned
// Line aliases raw.
func ParseLine(raw []byte) (Line, error) {
	l := Line{Raw: raw}
	rest, ok := bytes.CutPrefix(raw, []byte(seqPrefix))
	if !ok {
		return l, errors.New(`line does not start with the member "seq"`)
	}
	i := 0
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	if i == 0 || i > 20 || (i > 1 && rest[0] == '0') {
		return l, errors.New("bad seq")
	}
	var seq uint64
	for _, c := range rest[:i] {
		d := uint64(c - '0')
		if seq > (1<<64-1-d)/10 {
			return l, errors.New("seq overflows")
		}
		seq = seq*10 + d
	}
	if seq == 0 {
		return l, errors.New("bad seq: 0")
	}
	l.Seq = seq
	rest, ok = bytes.CutPrefix(rest[i:], []byte(prevPrefix))
	if !ok || len(rest) < hashHex+1 || rest[hashHex] != '"' {
		return l, errors.New("bad prev")
	}
	if err := decodeHash(&l.Prev, rest[:hashHex]); err != nil {
		return l, fmt.Errorf("bad prev: %w", err)
	}
	afterPrev := len(raw) - len(rest) + hashHex + 1

	// The tail is fixed: ,"mac":"<64 hex>"}
	tail := len(macPrefix) + hashHex + 2
	if len(raw)-tail < afterPrev || !bytes.HasSuffix(raw, []byte(`"}`)) ||
		!bytes.Equal(raw[len(raw)-tail:len(raw)-tail+len(macPrefix)], []byte(macPrefix)) {
		return l, errors.New("bad mac member")
	}
	if err := decodeHash(&l.MAC, raw[len(raw)-hashHex-2:len(raw)-2]); err != nil {
		return l, fmt.Errorf("bad mac: %w", err)
	}
	l.Sealed = raw[:len(raw)-tail]
	body := l.Sealed[afterPrev:]
	if len(body) > 0 && body[0] != ',' {
		return l, errors.New("bad member after prev")
	}
	switch {
	case bytes.HasPrefix(body, recOpenMember):
		l.Kind = RecOpen
	case bytes.HasPrefix(body, recCloseMember):
		l.Kind = RecClose
	case bytes.HasPrefix(body, recCheckpointMember):
		l.Kind = RecCheckpoint
	case bytes.HasPrefix(body, recPrunedMember):
		l.Kind = RecPruned
	}
	return l, nil
}

// parseHead parses a line's first bytes, {"seq":<N>,"prev":"<64 chars>",
// as ParseLine does, checking the seq and the frame (not the prev's hex
// digits). afterPrev is the offset after the prev's closing quote. (Not
// called by ParseLine: a call there costs the verifier's hot path.)
func parseHead(raw []byte) (seq uint64, afterPrev int, err error) {
	rest, ok := bytes.CutPrefix(raw, []byte(seqPrefix))
	if !ok {
		return 0, 0, errors.New(`line does not start with the member "seq"`)
	}
	i := 0
	for i < len(rest) && '0' <= rest[i] && rest[i] <= '9' {
		i++
	}
	if i == 0 || i > 20 || (i > 1 && rest[0] == '0') {
		return 0, 0, errors.New("bad seq")
	}
	for _, c := range rest[:i] {
		d := uint64(c - '0')
		if seq > (1<<64-1-d)/10 {
			return 0, 0, errors.New("seq overflows")
		}
		seq = seq*10 + d
	}
	if seq == 0 {
		return 0, 0, errors.New("bad seq: 0")
	}
	rest, ok = bytes.CutPrefix(rest[i:], []byte(prevPrefix))
	if !ok || len(rest) < hashHex+1 || rest[hashHex] != '"' {
		return seq, 0, errors.New("bad prev")
	}
	return seq, len(raw) - len(rest) + hashHex + 1, nil
}

// hexValue maps a lower-case hex digit to its value and every other byte to
// 0xff. A table, not comparisons: random hex defeats branch prediction, and
// the verifier decodes two hashes per line.
var hexValue = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	return t
}()

// decodeHash decodes 64 lower-case hex digits; upper case is rejected so that
// each chain value has exactly one spelling.
func decodeHash(dst *[sha256.Size]byte, src []byte) error {
	if len(src) != 2*sha256.Size {
		return errors.New("not 64 hex digits")
	}
	var bad byte
	for i := range dst {
		hi, lo := hexValue[src[2*i]], hexValue[src[2*i+1]]
		bad |= hi | lo
		dst[i] = hi<<4 | lo&0x0f
	}
	if bad&0xf0 != 0 {
		return errors.New("not lower-case hex")
	}
	return nil
}

// OpenInfo is the body of an open record.
type OpenInfo struct {
	Time     string `json:"time"`
	V        int    `json:"v"`
	Epoch    uint64 `json:"epoch"`
	Alg      string `json:"alg"`
	KeyID    string `json:"key_id"`
	File     string `json:"file"`
	PrevFile string `json:"prev_file"`
	PrevTorn int64  `json:"prev_torn"`
	LastNote uint64 `json:"last_note"` // the seq of the last note in the checkpoints file when the file was opened
	Sync     string `json:"sync"`      // the writer's durability policy (rotate.Policy), if named
	Host     string `json:"host"`
	PID      int    `json:"pid"`
}

// EndInfo is the body of a record that ends an epoch: a checkpoint record
// or a close record (which has a Reason).
type EndInfo struct {
	Time   string `json:"time"`
	Epoch  uint64 `json:"epoch"`
	File   string `json:"file"`
	Reason string `json:"reason,omitempty"`
}

// CloseInfo is the body of a close record.
type CloseInfo = EndInfo

// PrunedInfo is the body of a pruned record: retention removed File, whose
// last line was ThroughSeq with chain value ThroughChain.
type PrunedInfo struct {
	Time         string `json:"time"`
	File         string `json:"file"`
	ThroughSeq   uint64 `json:"through_seq"`
	ThroughChain string `json:"through_chain"`
}

// Decode unmarshals the line's members (the sealed part, closed with '}')
// into v.
func (l Line) Decode(v any) error {
	if l.long != nil {
		return l.long.decode(v)
	}
	buf := make([]byte, 0, len(l.Sealed)+1)
	buf = append(append(buf, l.Sealed...), '}')
	return decodeStrict(buf, v)
}

// decodeStrict unmarshals a record's members into v (an *OpenInfo,
// *EndInfo or *PrunedInfo) as the writer writes them: encoding/json alone
// would take "File" for "file" and the last of two "file" members. A
// member name that occurs twice, or that differs only in case from a
// member the record kind has, makes the record not decode; other members
// are ignored (a later version may add some, as last_note was).
func decodeStrict(buf []byte, v any) error {
	var known []string
	switch v.(type) {
	case *OpenInfo:
		known = openMembers
	case *EndInfo:
		known = endMembers
	case *PrunedInfo:
		known = prunedMembers
	}
	if known != nil {
		if err := strictMembers(buf, known); err != nil {
			return err
		}
	}
	return json.Unmarshal(buf, v)
}

var (
	lineMembers   = []string{"seq", "prev", "rec", "mac"}
	openMembers   = slices.Concat(lineMembers, []string{"time", "v", "epoch", "alg", "key_id", "file", "prev_file", "prev_torn", "last_note", "sync", "host", "pid"})
	endMembers    = slices.Concat(lineMembers, []string{"time", "epoch", "file", "reason"})
	prunedMembers = slices.Concat(lineMembers, []string{"time", "file", "through_seq", "through_chain"})
)

// strictMembers checks the top-level member names of the JSON object b.
func strictMembers(b []byte, known []string) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	seen := make(map[string]bool, len(known))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := t.(string)
		if seen[name] {
			return fmt.Errorf("member %q occurs twice", name)
		}
		seen[name] = true
		for _, k := range known {
			if name != k && strings.EqualFold(name, k) {
				return fmt.Errorf("member %q is not spelled %q", name, k)
			}
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}
