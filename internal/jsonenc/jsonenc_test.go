package jsonenc

import (
	"encoding/json"
	"testing"
	"time"
)

func TestTimeMatchesLayout(t *testing.T) {
	base := time.Date(2026, 11, 27, 23, 59, 58, 0, time.FixedZone("X", 3600))
	for _, tt := range []time.Time{
		base,
		base.Add(999_999_999),
		base.Add(time.Second + 1),
		base.Add(2 * time.Second), // next day in UTC
		base.Add(2 * time.Second), // cached second
		time.Date(1, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(12345, 1, 1, 0, 0, 0, 5, time.UTC),
		time.Date(-5, 1, 1, 0, 0, 0, 5, time.UTC),
	} {
		want := `"` + tt.UTC().Format(TimeLayout) + `"`
		if got := string(Time(nil, tt)); got != want {
			t.Errorf("Time(%v) = %s, want %s", tt, got, want)
		}
	}
}

func TestStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\\`, "tab\tnl\n\x00\x1f", "utf8 é ☃", "bad \xff utf8", "\u2028\u2029", "<html>&"} {
		var back string
		if err := json.Unmarshal(String(nil, s), &back); err != nil {
			t.Fatalf("String(%q) is not JSON: %v", s, err)
		}
		want := s
		if s == "bad \xff utf8" {
			want = "bad \ufffd utf8"
		}
		if back != want {
			t.Errorf("String(%q) round-trips to %q", s, back)
		}
	}
}

func BenchmarkTime(b *testing.B) {
	t := time.Now()
	var buf []byte
	for b.Loop() {
		buf = Time(buf[:0], t)
	}
}

// The strings of a typical audit record: ASCII (keys, event names, a URL
// path, a user agent), and text with non-ASCII letters.
var benchStrings = map[string][]string{
	"ASCII": {"credential accessed", "resource", "obsidian_api_key", "client.address", "127.0.0.1",
		"/credentials/obsidian_api_key/rotate?reason=scheduled", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"},
	"NonASCII": {"Zugriff auf Schlüssel verweigert", "Grüße aus Köln", "доступ запрещён", "資格情報にアクセスしました", "naïve café ☃ — “quoted”"},
}

func BenchmarkString(b *testing.B) {
	for _, name := range []string{"ASCII", "NonASCII"} {
		ss := benchStrings[name]
		n := 0
		for _, s := range ss {
			n += len(s)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			buf := make([]byte, 0, 4096)
			for b.Loop() {
				buf = buf[:0]
				for _, s := range ss {
					buf = String(buf, s)
				}
			}
		})
	}
}
