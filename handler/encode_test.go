package handler

import "testing"

// BenchmarkAppendJSONMarshal: a value the encoder writes with
// encoding/json (a struct, as slog's JSON handler writes it).
func BenchmarkAppendJSONMarshal(b *testing.B) {
	type request struct {
		Method, Path, UserAgent string
		Status                  int
	}
	v := request{"GET", "/credentials/obsidian_api_key", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", 200}
	b.ReportAllocs()
	buf := make([]byte, 0, 512)
	for b.Loop() {
		buf = appendJSONMarshal(buf[:0], v)
	}
}
