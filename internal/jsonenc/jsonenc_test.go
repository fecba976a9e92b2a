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
