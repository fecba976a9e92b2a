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
// member for the reader's verdict.
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
	if !bytes.HasPrefix(rec, []byte(`{"seq":`)) {
		b = append(b, `"seq":`...)
		b = strconv.AppendUint(b, e.Seq, 10)
		b = append(b, ',')
	}
	var err error
	if b, err = appendMembers(b, rec); err != nil {
		return nil, err
	}
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

// appendMembers appends the members of obj (a JSON object) to b, without
// the braces, renaming the top-level members file, line and verified (to
// a name no other member has).
func appendMembers(b, obj []byte) ([]byte, error) {
	inner := bytes.TrimSpace(obj[1 : len(obj)-1])
	// A quick look first: a key is written as "file" unless escaped.
	if !bytes.Contains(inner, []byte(`"`+FileKey+`"`)) && !bytes.Contains(inner, []byte(`"`+LineKey+`"`)) &&
		!bytes.Contains(inner, []byte(`"`+VerifiedKey+`"`)) && !bytes.Contains(inner, []byte(`\u`)) {
		return append(b, inner...), nil
	}
	keys, err := topKeys(obj)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil { // {
		return nil, err
	}
	last := 1
	for dec.More() {
		start := int(dec.InputOffset())
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		end := int(dec.InputOffset())
		switch key, _ := tok.(string); key {
		case FileKey, LineKey, VerifiedKey:
			// The key's bytes are obj[start:end] after a comma and white space.
			ks := start + bytes.IndexByte(obj[start:end], '"')
			b = append(b, obj[last:ks]...)
			// Behind as many underscores as make it a new name: the
			// record may have a "_file" of its own.
			u := "_" + key
			for keys[u] {
				u = "_" + u
			}
			keys[u] = true
			b = strconv.AppendQuote(b, u)
			last = end
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	return append(b, bytes.TrimSpace(obj[last:len(obj)-1])...), nil
}

// topKeys returns the names of obj's top-level members.
func topKeys(obj []byte) (map[string]bool, error) {
	keys := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys[tok.(string)] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}
