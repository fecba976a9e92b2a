package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/slogaudit/slogaudit/query"
)

// tokens maps bearer tokens to principals. Lookups compare in constant time
// so that response timing does not reveal how much of a token was right.
type tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	digest    [sha256.Size]byte // of the token: the token itself is not kept
	principal string
}

// loadTokens reads lines "token principal" (blank lines and # comments
// ignored).
func loadTokens(path string) (*tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ts := &tokens{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"token principal\"", path, n)
		}
		ts.add(fields[0], fields[1])
	}
	return ts, sc.Err()
}

func (ts *tokens) add(token, principal string) {
	ts.entries = append(ts.entries, tokenEntry{sha256.Sum256([]byte(token)), principal})
}

// lookup compares digests, in constant time and over every entry: the
// time taken says neither which token matched nor how long the tokens are
// (ConstantTimeCompare returns at once for a length mismatch).
func (ts *tokens) lookup(token string) string {
	d := sha256.Sum256([]byte(token))
	found := ""
	for _, e := range ts.entries {
		if subtle.ConstantTimeCompare(e.digest[:], d[:]) == 1 {
			found = e.principal
		}
	}
	return found
}

func bearer(r *http.Request) string {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// principal is the middleware's authenticator: the principal of the
// request's bearer token, or "".
func (ts *tokens) principal(r *http.Request) string {
	if tok := bearer(r); tok != "" {
		return ts.lookup(tok)
	}
	return ""
}

// adminPrincipal is the principal of the admin token.
const adminPrincipal = "admin"

// authorizeAudit lets only the admin read the audit log.
func (ts *tokens) authorizeAudit(r *http.Request) (string, error) {
	tok := bearer(r)
	if tok == "" {
		return "", query.ErrUnauthenticated
	}
	p := ts.lookup(tok)
	switch p {
	case "":
		return "", query.ErrUnauthenticated
	case adminPrincipal:
		return p, nil
	}
	return p, query.ErrForbidden
}

func randomToken(prefix string) string {
	b := make([]byte, 16)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
