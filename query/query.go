// Package query reads, filters and paginates slogaudit audit files, and
// serves them over HTTP as GET /audit/events (see NewHandler).
//
// A Reader walks the chained files of one audit directory (plain and .gz,
// in chain order), skips the chain's own records (the lines with a "rec"
// member: open, close, checkpoint and pruned), and returns the audit records
// that match a Filter, newest or oldest first, a page at a time:
//
//	r, err := query.NewReader("audit-logs", query.Options{Key: key})
//	if err != nil { ... }
//	req := query.Request{Filter: query.Filter{Event: "credential_access", Status: "denied"}}
//	page, err := r.Query(ctx, req)
//	... page.Events ...
//	req.Cursor = page.NextCursor // "" when there is no next page
//	page, err = r.Query(ctx, req)
//
// A record that holds a top-level member name more than once (files
// written before the handler gave a colliding key leading underscores,
// FORMAT.md §4) is read by the FIRST member of the name, as FORMAT.md
// says and otelbridge does: the filters and Event's fields use it, and
// Event.MarshalJSON (GET /audit/events, the stream, auditctl --json)
// renames the later ones "_"+name, so that a JSON parser that keeps the
// last of duplicate names reads what the filter saw.
//
// # Verification
//
// Every returned Event says whether it verified: the reader checks each
// line as it reads it, like chain.Verify does, but one file at a time:
//
//   - the MAC of the sealed part, with HMAC-SHA-256 and Options.Key when
//     the file's open record says hmac-sha256 (and names the key's key_id),
//     with SHA-256 when it says sha256 and no key was given;
//   - the link to the line before it in the same file: seq = previous seq +
//     1 and prev = the previous line's mac. A line that was never sealed
//     (bad MAC) between two authentic lines does not break the link of the
//     line after it; a line whose successor was sealed over different
//     content is itself reported unverified;
//   - the first line of each file has no predecessor in this check (MAC
//     only) and must be the file's open record; lines after a close record
//     never verify.
//
// Without K(0), events of keyed (hmac-sha256) files are Verified only when
// EpochKey still holds their epoch's key or, with CheckpointKey, their
// epoch's lines hash to the digest its signed checkpoint carries; otherwise
// they are returned with Verified false, but querying still works. A reader
// given any key (Key, EpochKey or CheckpointKey) does not check the MACs of
// files sealed without one (sha256) or with another key (a downgrade or the
// wrong key): their events are Verified only by a matching signed digest
// (CheckpointKey), otherwise false. Unkeyed (sha256) files verify against
// accidents and naive edits only: anyone can recompute SHA-256 (see
// FORMAT.md §8).
//
// A file's epoch is the one its open record claims. With EpochKey a key
// verifies only the lines from the first seq the writer knows it sealed,
// so someone holding the current key cannot pass off a re-sealed older
// file claiming the current epoch. With K(0) the reader cannot tell: the
// current key is K(0) evolved, and the epochs' order is only checked
// across the whole trail.
//
// The reader does not check the links between files, the order of epochs,
// whole missing files or the open records' file names: auditctl verify
// (chain.Verify) does the complete check. Events are paged by the seq their
// lines claim: a line whose seq was changed is returned unverified with
// that seq, and a walk with cursors can stop at it (a forged high seq
// oldest first, a low one newest first); verify reports it. Lines that are not sealed JSON lines at all are not
// returned; where such a line replaced a sealed one, the line after it is
// returned unverified. So are lines longer than MaxLineBytes, which the
// reader passes over without holding them in memory (and reports:
// Page.Unreadable, FollowOptions.OnUnreadable), whatever they hold. Of a
// file that a newer one follows, the lines from the newer file's first
// seq on are not returned: they are what a writer that could not undo a
// failed write left in the file it gave up, never committed, their seqs
// taken by the newer file's lines (FORMAT.md §5; verify reports them as
// REORDERED).
//
// # Following
//
// Reader.Follow (auditctl tail, the UI's stream) delivers records as they
// are written. A line of the file being written may be one the writer
// then rolls back (a write or, under rotate.SyncAlways, its fsync fails;
// its seq goes to the next record). With a Notifier among the handler's
// sinks, Follow delivers only committed lines; without one (another
// process) it delivers what it reads, and reports a rollback it then sees
// (FollowOptions.OnRetracted) before delivering the records that took the
// seqs. Query reads what the files hold when it runs, committed or not.
//
// # Pagination
//
// A cursor names the last seq returned and the order; the next page
// continues strictly before (newest first) or after (oldest first) it. Pages
// are therefore stable while records are appended: a newest-first walk never
// repeats or skips older records (records appended after its first page are
// not in later pages); an oldest-first walk picks appended records up.
package query

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// Page sizes.
const (
	DefaultLimit = 100  // Request.Limit 0
	MaxLimit     = 1000 // the largest Request.Limit
)

// Keys of the record members that filters and Event fields use. The
// standard event members are the ones package handler writes; user.id and
// client.* are written by package middleware (as top-level keys with dots).
const (
	TimeKey          = "time"
	LevelKey         = "level"
	MsgKey           = "msg"
	EventKey         = "event"
	ActionKey        = "action"
	ResourceTypeKey  = "resource_type"
	ResourceKey      = "resource"
	StatusKey        = "status"
	ReasonKey        = "reason"
	ErrorKey         = "error"
	TraceIDKey       = "trace_id"
	PrincipalKey     = "user.id"           // the authenticated principal
	ClientAddressKey = "client.address"    // the client's address
	ClientIDKey      = "client.id"         // the client's claimed identity
	ClaimedClientKey = "client.claimed_id" // also the client's claimed identity
)

// Statuses of the standard event schema: the valid Filter.Status values.
const (
	StatusInitiated = "initiated"
	StatusSuccess   = "success"
	StatusFailed    = "failed"
	StatusDenied    = "denied"
)

// Order is the order of a query's results.
type Order int

// Orders.
const (
	NewestFirst Order = iota // the default
	OldestFirst
)

// String returns "newest" or "oldest", the values of the order parameter.
func (o Order) String() string {
	switch o {
	case NewestFirst:
		return "newest"
	case OldestFirst:
		return "oldest"
	}
	return "Order(" + strconv.Itoa(int(o)) + ")"
}

// ParseOrder returns the Order whose String is s.
func ParseOrder(s string) (Order, error) {
	switch s {
	case "newest":
		return NewestFirst, nil
	case "oldest":
		return OldestFirst, nil
	}
	return 0, fmt.Errorf("order must be newest or oldest, not %q", s)
}

// Filter selects audit records. Empty fields select everything; a record
// that lacks a member a non-empty field names does not match. String
// fields match exactly.
type Filter struct {
	Since time.Time // the record's time is not before Since (zero: no bound)
	Until time.Time // the record's time is before Until (zero: no bound)

	Event        string // member "event"
	Action       string // member "action"
	ResourceType string // member "resource_type"
	Resource     string // member "resource"
	Status       string // member "status": initiated, success, failed or denied
	TraceID      string // member "trace_id"
	Principal    string // member "user.id"
	// Client is member "client.address" when it is an IP address, and
	// then matches nothing else: a client may claim any id, also another
	// client's address, and must not show up in a search for that
	// address. Any other value matches the claimed "client.id" or
	// "client.claimed_id".
	Client string
}

// Request is one page's query.
type Request struct {
	Filter
	Order  Order
	Limit  int    // events per page: 0 means DefaultLimit; at most MaxLimit
	Cursor string // the previous page's NextCursor; "" for the first page
}

// Event is one audit record as read.
type Event struct {
	Seq      uint64          // the record's seq
	File     string          // the file's sealed name (without .gz)
	Line     int             // 1-based line number in File
	Verified bool            // the MAC (or its epoch's signed digest) and the link to the line before it check out (see the package doc)
	Record   json.RawMessage // the whole line as written (without its newline)

	// Members of Record, decoded for convenience ("" when absent or not a
	// string; numbers are given as written).
	Time          time.Time // zero when absent
	Level         string
	Msg           string
	Event         string
	Action        string
	ResourceType  string
	Resource      string
	Status        string
	TraceID       string
	Principal     string // user.id
	Client        string // client.address: where the request came from
	ClaimedClient string // client.id, else client.claimed_id: who the client said it was (unverified)
}

// Page is the result of a query.
type Page struct {
	Events []Event `json:"events"`
	// NextCursor continues after the last event of Events; "" when no
	// further matching event existed at the time of the query.
	NextCursor string `json:"next_cursor"`
	// Unreadable names the files that could not be read whole: those
	// that could not be read to their end (a corrupt .gz, an I/O error),
	// whose events past the damage are not in Events (auditctl verify
	// reports such a file as MODIFIED), and those holding a line longer
	// than MaxLineBytes, which alone is left out (the rest of the file is
	// read; see MaxLineBytes). A file is named on every page that read it.
	Unreadable []string `json:"unreadable,omitempty"`
}

// ParamError is a bad query parameter. Param is the name of the HTTP
// parameter (since, until, event, action, resource, resource_type, client,
// principal, status, trace_id, order, limit, cursor), or another name for an
// unknown parameter.
type ParamError struct {
	Param string
	Msg   string
}

// Error returns "parameter PARAM: MSG" ("parameter without a name: MSG"
// for a query string such as "=x").
func (e *ParamError) Error() string {
	if e.Param == "" {
		return "parameter without a name: " + e.Msg
	}
	return "parameter " + e.Param + ": " + e.Msg
}

func paramErr(param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...)}
}

// ValidStatus reports whether s is one of the statuses of the standard
// event schema.
func ValidStatus(s string) bool {
	switch s {
	case StatusInitiated, StatusSuccess, StatusFailed, StatusDenied:
		return true
	}
	return false
}

// cursor is the decoded form of a Request.Cursor.
type cursor struct {
	order Order
	seq   uint64
}

// encodeCursor returns the opaque cursor for continuing after seq.
func encodeCursor(o Order, seq uint64) string {
	p := "n:"
	if o == OldestFirst {
		p = "o:"
	}
	return base64.RawURLEncoding.EncodeToString(strconv.AppendUint([]byte(p), seq, 10))
}

var errBadCursor = errors.New("not a cursor returned by this API")

func decodeCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 3 || b[1] != ':' {
		return cursor{}, errBadCursor
	}
	var c cursor
	switch b[0] {
	case 'n':
		c.order = NewestFirst
	case 'o':
		c.order = OldestFirst
	default:
		return cursor{}, errBadCursor
	}
	c.seq, err = strconv.ParseUint(string(b[2:]), 10, 64)
	if err != nil || c.seq == 0 || b[2] == '0' {
		return cursor{}, errBadCursor
	}
	return c, nil
}

// plan is a validated Request.
type plan struct {
	Filter
	order   Order
	limit   int
	lo, hi  uint64   // seq range, inclusive
	needles [][]byte // byte strings a matching line must contain
	empty   bool     // nothing can match (cursor at the end of the seq range)
	// clientIP: Filter.Client is an IP address (in canonical form), which
	// only client.address matches.
	clientIP bool
}

func compile(req Request) (*plan, error) {
	p := &plan{Filter: req.Filter, order: req.Order, limit: req.Limit, hi: math.MaxUint64}
	if p.order != NewestFirst && p.order != OldestFirst {
		return nil, paramErr("order", "must be newest or oldest")
	}
	switch {
	case p.limit == 0:
		p.limit = DefaultLimit
	case p.limit < 0 || p.limit > MaxLimit:
		return nil, paramErr("limit", "must be a positive integer not above %d", MaxLimit)
	}
	if p.Status != "" && !ValidStatus(p.Status) {
		return nil, paramErr("status", "must be initiated, success, failed or denied, not %q", p.Status)
	}
	if !p.Since.IsZero() && !p.Until.IsZero() && !p.Until.After(p.Since) {
		return nil, paramErr("until", "must be after since")
	}
	if a, err := netip.ParseAddr(p.Client); err == nil {
		p.Client, p.clientIP = a.String(), true
	}
	if req.Cursor != "" {
		c, err := decodeCursor(req.Cursor)
		if err != nil {
			return nil, paramErr("cursor", "%v", err)
		}
		if c.order != p.order {
			return nil, paramErr("cursor", "the cursor continues a query in order %s, not %s", c.order, p.order)
		}
		if c.order == NewestFirst {
			p.hi = c.seq - 1 // c.seq ≥ 1
		} else if c.seq == math.MaxUint64 {
			p.empty = true
		} else {
			p.lo = c.seq + 1
		}
	}
	for _, v := range []string{p.Event, p.Action, p.ResourceType, p.Resource, p.Status, p.TraceID, p.Principal, p.Client} {
		if v != "" && literal(v) {
			p.needles = append(p.needles, []byte(v))
		}
	}
	return p, nil
}

// literal reports whether every JSON encoder writes s as is inside a string,
// so that a line holding s as a value holds these very bytes.
func literal(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// Indexes of the members that match reads, in record.vals.
const (
	mTime = iota
	mLevel
	mMsg
	mEvent
	mAction
	mResourceType
	mResource
	mStatus
	mTraceID
	mPrincipal
	mClientAddress
	mClientID
	mClaimedClient
	nMembers
)

// memberIndex returns the index in record.vals of the member named name,
// -1 for a member match does not read.
func memberIndex(name []byte) int {
	switch string(name) { // no allocation
	case TimeKey:
		return mTime
	case LevelKey:
		return mLevel
	case MsgKey:
		return mMsg
	case EventKey:
		return mEvent
	case ActionKey:
		return mAction
	case ResourceTypeKey:
		return mResourceType
	case ResourceKey:
		return mResource
	case StatusKey:
		return mStatus
	case TraceIDKey:
		return mTraceID
	case PrincipalKey:
		return mPrincipal
	case ClientAddressKey:
		return mClientAddress
	case ClientIDKey:
		return mClientID
	case ClaimedClientKey:
		return mClaimedClient
	}
	return -1
}

// record holds the raw values of the members match reads: of each name the
// FIRST member, as FORMAT.md §4 says (files written before the handler
// renamed colliding keys can hold a name twice, e.g. "user.id" from the
// context and again from the record; the first is the handler's or the
// context's). encoding/json would keep the last one.
type record struct {
	vals [nMembers][]byte
	set  [nMembers]bool
}

// parse reads the top-level members of raw, which must be a JSON object;
// ok is false for anything else.
func (rec *record) parse(raw []byte) (ok bool) {
	if !json.Valid(raw) {
		return false
	}
	return eachMember(raw, func(name []byte, _, _, vs, ve int) bool {
		if i := memberIndex(name); i >= 0 && !rec.set[i] {
			rec.vals[i], rec.set[i] = raw[vs:ve], true
		}
		return true
	})
}

// str returns member i as a string: a JSON string decoded, a number as
// written; ok is false when it is absent or anything else.
func (rec *record) str(i int) (s string, ok bool) {
	v := rec.vals[i]
	if !rec.set[i] || len(v) == 0 {
		return "", false
	}
	switch c := v[0]; {
	case c == '"':
		if inner := v[1 : len(v)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
			return string(inner), true
		}
		if err := json.Unmarshal(v, &s); err != nil {
			return "", false
		}
		return s, true
	case c == '-' || '0' <= c && c <= '9':
		return string(v), true
	}
	return "", false
}

// eachMember calls fn with the name (unescaped; valid until fn returns)
// of each top-level member of obj, in order, with where the name as
// written (obj[ks:ke], with its quotes) and the value (obj[vs:ve]) are,
// until fn returns false; it returns false if obj is not an object or fn
// stopped. obj must be valid JSON (json.Valid).
func eachMember(obj []byte, fn func(name []byte, ks, ke, vs, ve int) bool) bool {
	i := skipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipSpace(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	var unescaped []byte
	for i < len(obj) {
		ks := i
		ke := skipString(obj, ks)
		rawName := obj[ks:ke]
		name := rawName[1 : len(rawName)-1]
		if bytes.IndexByte(name, '\\') >= 0 || !utf8.Valid(name) {
			// As a JSON parser reads it (invalid UTF-8 as U+FFFD).
			var s string
			if err := json.Unmarshal(rawName, &s); err != nil {
				return false
			}
			unescaped = append(unescaped[:0], s...)
			name = unescaped
		}
		i = skipSpace(obj, ke)
		i = skipSpace(obj, i+1) // the colon
		vs := i
		i = skipValue(obj, vs)
		if !fn(name, ks, ke, vs, i) {
			return false
		}
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return true
		}
		i = skipSpace(obj, i+1) // the comma
	}
	return true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the JSON string that starts at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the valid JSON value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// match decodes raw and reports whether it matches the filter, filling ev's
// decoded fields when it does.
func (p *plan) match(raw []byte, ev *Event) bool {
	for _, n := range p.needles {
		if !bytes.Contains(raw, n) {
			return false
		}
	}
	var rec record
	if !rec.parse(raw) {
		return false
	}
	if ts, ok := rec.str(mTime); ok {
		if t, err := time.Parse(time.RFC3339Nano, ts); err == nil {
			ev.Time = t
		}
	}
	if (!p.Since.IsZero() || !p.Until.IsZero()) && ev.Time.IsZero() {
		return false
	}
	if !p.Since.IsZero() && ev.Time.Before(p.Since) || !p.Until.IsZero() && !ev.Time.Before(p.Until) {
		return false
	}
	ev.Level, _ = rec.str(mLevel)
	ev.Msg, _ = rec.str(mMsg)
	ev.Event, _ = rec.str(mEvent)
	ev.Action, _ = rec.str(mAction)
	ev.ResourceType, _ = rec.str(mResourceType)
	ev.Resource, _ = rec.str(mResource)
	ev.Status, _ = rec.str(mStatus)
	ev.TraceID, _ = rec.str(mTraceID)
	ev.Principal, _ = rec.str(mPrincipal)
	ev.Client, _ = rec.str(mClientAddress)
	if c, ok := rec.str(mClientID); ok {
		ev.ClaimedClient = c
	} else {
		ev.ClaimedClient, _ = rec.str(mClaimedClient)
	}
	eq := func(want, have string) bool { return want == "" || want == have }
	if !eq(p.Event, ev.Event) || !eq(p.Action, ev.Action) || !eq(p.ResourceType, ev.ResourceType) ||
		!eq(p.Resource, ev.Resource) || !eq(p.Status, ev.Status) || !eq(p.TraceID, ev.TraceID) ||
		!eq(p.Principal, ev.Principal) {
		return false
	}
	if p.Client != "" {
		if p.clientIP {
			return ev.Client == p.Client
		}
		claimed := func(i int) bool { c, ok := rec.str(i); return ok && c == p.Client }
		if !claimed(mClientID) && !claimed(mClaimedClient) {
			return false
		}
	}
	return true
}
