package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// Members that MarshalJSON adds to the record.
const (
	FileKey     = "file"
	LineKey     = "line"
	VerifiedKey = "verified"
)

// MarshalJSON returns the record's JSON object as written (which begins
// with its "seq") with the members "file", "line" and "verified" added at
// the end. A top-level member of the record with one of these three names
// is renamed with a leading underscore ("_file", as the handler does for
// the chain's own members), so that no reader can take the record's
// member for the reader's verdict. So is a top-level member whose name an
// earlier member has (files written before the handler renamed colliding
// keys, FORMAT.md §4): the first one is the one that counts, for the
// filters and Event's fields as for the handler, and a JSON parser that
// keeps the last of duplicate names (JavaScript's, Go's) would read the
// later one instead. Each takes as many underscores as make its name one
// no other member has, as the handler does.
func (e Event) MarshalJSON() ([]byte, error) {
	rec := bytes.TrimSpace(e.Record)
	if len(rec) == 0 {
		rec = []byte("{}")
	}
	if rec[0] != '{' || rec[len(rec)-1] != '}' || !json.Valid(rec) {
		return nil, errors.New("query: Event.Record is not a JSON object")
	}
	b := make([]byte, 0, len(rec)+len(e.File)+48)
	b = append(b, '{')
	hasSeq := bytes.HasPrefix(rec, []byte(`{"seq":`))
	if !hasSeq {
		b = append(b, `"seq":`...)
		b = strconv.AppendUint(b, e.Seq, 10)
		b = append(b, ',')
	}
	b = appendMembers(b, rec, !hasSeq)
	if b[len(b)-1] != '{' && b[len(b)-1] != ',' {
		b = append(b, ',')
	}
	b = append(b, `"`+FileKey+`":`...)
	b = appendString(b, e.File)
	b = append(b, `,"`+LineKey+`":`...)
	b = strconv.AppendInt(b, int64(e.Line), 10)
	b = append(b, `,"`+VerifiedKey+`":`...)
	b = strconv.AppendBool(b, e.Verified)
	return append(b, '}'), nil
}

// appendMembers appends the members of obj (a valid JSON object) to b,
// without the braces, renaming the top-level members file, line and
// verified, and any whose name an earlier member has (to a name no other
// member has); seqTaken: b already holds a member "seq".
func appendMembers(b, obj []byte, seqTaken bool) []byte {
	inner := bytes.TrimSpace(obj[1 : len(obj)-1])
	// The names, and whether any must be renamed.
	var names []string
	rename := false
	eachMember(obj, func(name []byte, _, _, _, _ int) bool {
		n := string(name)
		switch n {
		case FileKey, LineKey, VerifiedKey:
			rename = true
		}
		names = append(names, n)
		return true
	})
	taken := make(map[string]bool, len(names)+1)
	taken["seq"] = seqTaken
	for _, n := range names {
		rename = rename || taken[n]
		taken[n] = true
	}
	if !rename {
		return append(b, inner...)
	}
	seen := make(map[string]bool, len(names)+1)
	seen["seq"] = seqTaken
	last, i := 1, 0 // obj[last:] is not appended yet
	eachMember(obj, func(_ []byte, ks, ke, _, _ int) bool {
		n := names[i]
		i++
		if n != FileKey && n != LineKey && n != VerifiedKey && !seen[n] {
			seen[n] = true
			return true
		}
		// Behind as many underscores as make it a new name: the record
		// may have a "_file" of its own.
		u := "_" + n
		for taken[u] {
			u = "_" + u
		}
		taken[u] = true
		if last == 1 {
			b = append(b, bytes.TrimLeft(obj[last:ks], " \t\r\n")...)
		} else {
			b = append(b, obj[last:ks]...)
		}
		b = appendString(b, u)
		last = ke
		return true
	})
	return append(b, bytes.TrimRight(obj[last:len(obj)-1], " \t\r\n")...)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}
