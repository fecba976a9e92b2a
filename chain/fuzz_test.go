package chain

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"
)

// FuzzParseLine: the parser never panics, and whatever it accepts is exactly
// the frame of FORMAT.md §2 — the sealed part, the mac member and nothing
// else — so two different byte strings cannot parse to the same line.
func FuzzParseLine(f *testing.F) {
	s := newSealer(keyState(testKey), 0, func() time.Time { return time.Unix(0, 0) }, state{})
	for _, body := range []string{"", `"msg":"x"`, `"rec":"open","file":"a"`, `"a":{"b":[1,2]}`} {
		f.Add(bytes.TrimSuffix(s.seal(nil, []byte(body)), []byte("\n")))
	}
	f.Add([]byte(`{"seq":1,"prev":"`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		l, err := ParseLine(raw)
		if err != nil {
			return
		}
		rebuilt := append(bytes.Clone(l.Sealed), macPrefix...)
		rebuilt = hex.AppendEncode(rebuilt, l.MAC[:])
		rebuilt = append(rebuilt, '"', '}')
		if !bytes.Equal(rebuilt, raw) {
			t.Fatalf("accepted %q but its parts rebuild %q", raw, rebuilt)
		}
		if !bytes.HasPrefix(l.Sealed, []byte(seqPrefix)) {
			t.Fatalf("sealed part %q", l.Sealed)
		}
	})
}
