package middleware

import (
	"net/url"
	"strings"
	"testing"

	"github.com/slogaudit/slogaudit/redact"
)

// Every byte at which the redactor's text rules end a value is one that
// url.query encodes, so that a parameter's value is redacted whole; and
// what it logs decodes to the query the server read.
func TestQueryForLogCoversValueEnds(t *testing.T) {
	red := redact.Default()
	for c := range 256 {
		if c == '&' {
			continue // ends the value for the server too
		}
		raw := "password=abc" + string(byte(c)) + "SECRETxyz"
		if out, _ := red.String(raw); strings.Contains(out, "SECRETxyz") && !endsValue(byte(c)) {
			t.Errorf("byte %#x ends a value for the redactor and is logged as it is", c)
		}
		logged := queryForLog(raw)
		if out, _ := red.String(logged); strings.Contains(out, "SECRETxyz") {
			t.Errorf("byte %#x: %q logged as %q", c, raw, out)
		}
		if c == '%' || c == '+' {
			continue // meaningful to a query decoder either way
		}
		want, _ := url.QueryUnescape(strings.TrimPrefix(raw, "password="))
		if got, err := url.QueryUnescape(strings.TrimPrefix(logged, "password=")); err != nil || got != want {
			t.Errorf("byte %#x: %q decodes to %q, the server read %q", c, logged, got, want)
		}
	}
}
