package bench

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// masqModel is NOT masq: it is a stand-in, written for this benchmark, that
// does per attribute the steps masq's ReplaceAttr does (box the value, make
// it addressable with reflect.New, a context.WithValue for the depth, the
// allowed- and ignored-type map lookups, one Interface() and one censor
// check per filter, a reflect copy of the value, slog.Any of the copy). It
// gives BenchmarkRedactDiscard an indicative peer while the real masq
// cannot be fetched; the ratio script reports it as INFO, never PASS/FAIL.
type masqModel struct {
	filters []func(key string, v any) bool
	allowed map[reflect.Type]struct{}
	ignored map[string]struct{}
}

type depthKey struct{}

func newMasqModel() *masqModel {
	m := &masqModel{
		allowed: map[reflect.Type]struct{}{},
		ignored: map[string]struct{}{"*reflect.rtype": {}},
	}
	for _, name := range []string{"password", "secret", "token", "api_key", "authorization", "cookie"} {
		m.filters = append(m.filters, func(key string, _ any) bool { return key == name })
	}
	m.filters = append(m.filters, func(_ string, v any) bool {
		s, ok := v.(string)
		return ok && strings.Contains(s, "Bearer ")
	})
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`),
		regexp.MustCompile(`AKIA[0-9A-Z]{16}`),
	} {
		m.filters = append(m.filters, func(_ string, v any) bool {
			s, ok := v.(string)
			return ok && re.MatchString(s)
		})
	}
	return m
}

func (m *masqModel) replaceAttr(_ []string, a slog.Attr) slog.Attr {
	v := a.Value.Any()
	if v == nil {
		return a
	}
	src := reflect.ValueOf(v)
	addr := reflect.New(src.Type()).Elem()
	addr.Set(src)
	_ = context.WithValue(context.Background(), depthKey{}, 0)
	if _, ok := m.allowed[addr.Type()]; ok {
		return slog.Any(a.Key, v)
	}
	if _, ok := m.ignored[addr.Type().String()]; ok {
		return slog.Any(a.Key, v)
	}
	for _, f := range m.filters {
		if f(a.Key, addr.Interface()) {
			return slog.String(a.Key, "[REDACTED]")
		}
	}
	dst := reflect.New(addr.Type())
	dst.Elem().Set(addr)
	return slog.Any(a.Key, dst.Elem().Interface())
}

// BenchmarkPeerMasqModel: see masqModel. Informational only.
func BenchmarkPeerMasqModel(b *testing.B) {
	benchLog(b, slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{ReplaceAttr: newMasqModel().replaceAttr})))
}
