package redact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Secret shapes planted by FuzzRedactPlantedSecret.
const (
	shapeJWT = iota
	shapeBearer
	shapeAWS
	shapeGitHub
	shapeURLPassword
	shapeQueryToken
	shapeKeyed // a value under a secret key
	shapeSecretType
	shapeSlack
	shapePEM
	shapeEncodedKey   // key=value text whose secret key is percent-encoded in part
	shapeEncodedQuery // key%3Dvalue: a query string encoded inside a parameter
	shapeSpacedJSONKey
	shapeXMLElement
	shapeXMLNested  // an element holding one of the same name
	shapeHTMLInput  // the value of a password field or of an input named as a secret
	shapeHeaderLine // Key: value with spaces in the value, maybe in a quoted curl -H
	shapeMySQLDSN   // user:password@tcp(...) without //
	shapeFlag       // --password x, -password x, curl -u user:password
	shapeRocket     // "password" => "x", and backtick-quoted values
	shapeSQL        // IDENTIFIED BY 'x', PASSWORD 'x'
	shapeYAML       // a block scalar, a value on the next line, 'it''s'
	numShapes
)

// Places in a record where the secret is planted.
const (
	placeMsg = iota
	placeAttr
	placeGroup
	placeNestedGroups
	placeNestedMap
	placeSliceOfMaps
	placeError
	placeStruct
	placeWithAttrs
	placeWithGroup
	placeStringer
	placeLogValuer
	numPlaces
)

var fuzzSecretKeys = []string{"password", "api_key", "clientSecret", "X-Auth-Token", "Authorization", "session_id", "private_key", "db_passwd", "pass", "pw", "userPw", "access_token"}

// encodeKey percent-encodes the bytes of k picked by the bits of mask (the
// i-th byte by bit i%8), in upper- or lower-case hex, and writes a space as
// + unless it is picked.
func encodeKey(k string, mask uint8, upper bool) string {
	const hexUpper, hexLower = "0123456789ABCDEF", "0123456789abcdef"
	hex := hexLower
	if upper {
		hex = hexUpper
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case mask>>(i%8)&1 != 0:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		case c == ' ':
			b.WriteByte('+')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

type fuzzStringer string

func (s fuzzStringer) String() string { return string(s) }

type fuzzValuer struct{ a slog.Attr }

func (v fuzzValuer) LogValue() slog.Value { return slog.GroupValue(slog.String("n", "1"), v.a) }

// fuzzCore turns arbitrary bytes into the alphanumeric body of a secret, at
// least 24 characters, so that it cannot arise from the filler (see
// fuzzFiller) and survives JSON escaping unchanged.
func fuzzCore(body string, alphabet string) string {
	const pad = "Q7xK2mZ9pL4vR8tW1nB6cH3j"
	b := []byte(body)
	if len(b) > 48 {
		b = b[:48]
	}
	for len(b) < 24 {
		b = append(b, pad[len(b)])
	}
	for i, c := range b {
		b[i] = alphabet[int(c)%len(alphabet)]
	}
	return string(b)
}

const (
	alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	upnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
)

// fuzzFiller breaks runs of letters and digits longer than 7, so no filler
// can contain or complete a planted secret's body.
func fuzzFiller(s string) string {
	var b strings.Builder
	run := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) {
			run++
			if run > 7 {
				b.WriteByte(' ')
				run = 1
			}
		} else {
			run = 0
		}
		b.WriteByte(c)
	}
	return b.String()
}

// planted is a secret ready to be put in a record: as text (for shapes
// found by value patterns, or key=value text for keyed shapes) and as an
// attribute.
type planted struct {
	text   string    // text form
	attr   slog.Attr // attribute form
	key    string    // for keyed shapes: the key that must stay visible
	secret []string  // must not appear in the output
}

func plant(shape int, core string, keyIdx uint8) planted {
	textAttr := func(s string) planted {
		return planted{text: s, attr: slog.String("note", s), secret: []string{core}}
	}
	switch shape {
	case shapeJWT:
		jwt := "eyJhbGciOiJIUzI1NiJ9.eyJ" + core + "." + reverse(core)
		p := textAttr("token " + jwt)
		p.secret = append(p.secret, reverse(core))
		return p
	case shapeBearer:
		return textAttr("Authorization: Bearer " + core)
	case shapeAWS:
		id := "AKIA" + fuzzCore(core, upnum)[:16]
		p := textAttr("aws " + id)
		p.secret = []string{id}
		return p
	case shapeGitHub:
		return textAttr("ghp_" + core)
	case shapeURLPassword:
		// Passwords hold punctuation too.
		pw := core[:len(core)/2] + string("!$%*~;#"[int(core[0])%7]) + core[len(core)/2:]
		p := textAttr("https://user:" + pw + "@host.example/p")
		p.secret = []string{core[:len(core)/2], core[len(core)/2:]}
		return p
	case shapeQueryToken:
		return textAttr("https://host.example/cb?x=1&access_token=" + core + "&y=2")
	case shapeKeyed:
		k := fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)]
		return planted{text: k + "=" + core, attr: slog.String(k, core), key: k, secret: []string{core}}
	case shapeSecretType:
		return planted{text: fmt.Sprint("token ", Secret(core)), attr: slog.Any("s", Secret(core)), secret: []string{core}}
	case shapeSlack:
		return textAttr("xoxb-1234567890-" + core)
	case shapePEM:
		return textAttr("-----BEGIN EC PRIVATE KEY-----\n" + core + "\n" + reverse(core) + "\n-----END EC PRIVATE KEY-----")
	case shapeEncodedKey:
		k := fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)]
		if core[0]&1 != 0 {
			k = strings.ReplaceAll(k, "_", " ") // a form's api+key
		}
		return textAttr("https://host.example/cb?x=1&" + encodeKey(k, core[1], core[2]&1 != 0) + "=" + core + "&y=2")
	case shapeEncodedQuery:
		k := fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)]
		return textAttr("/login?next=https%3A%2F%2Fapp.example%2Fcb%3Fx%3D1%26" + k + "%3D" + core + "%26y%3D2")
	case shapeSpacedJSONKey:
		k := strings.ReplaceAll(fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)], "_", " ")
		return textAttr(`{"n": 1, "` + k + `": "` + core + `"}`)
	case shapeXMLElement:
		k := fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)]
		if k == "X-Auth-Token" {
			k = "ns:authToken"
		}
		return textAttr([]string{"<req><" + k + ">" + core + "</" + k + "></req>",
			"<req><" + k + "><![CDATA[x</" + k + ">" + core + "]]></" + k + "></req>", // an end tag in CDATA ends nothing
			"<" + k + ` a="/>" b='>'>` + core + "</" + k + ">",
			`<beans><property name="` + k + `" value="` + core + `"/></beans>`,
			`<props><entry key="db.` + k + `">` + core + `</entry></props>`,
			`<param name="` + k + `" value="` + core + `">`}[core[0]%6])
	case shapeXMLNested:
		k := fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)]
		if k == "X-Auth-Token" {
			k = "ns:authToken"
		}
		inner := k // the inner one in another case, or under a prefix
		switch core[0] % 3 {
		case 1:
			inner = strings.ToUpper(k)
		case 2:
			inner = "x:" + localName(k)
		}
		p := textAttr("<req><" + k + "><" + inner + ">" + reverse(core) + "</" + inner + ">" + core + "</" + k + "></req>")
		p.secret = append(p.secret, reverse(core))
		return p
	case shapeHTMLInput:
		// The attribute that makes it secret, the quotes, the case and
		// the order picked by the bytes of core.
		q := []string{`"`, `'`, ``}[core[0]%3]
		mark := []string{"type=" + q + "password" + q, "name=" + q + fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)] + q,
			"ID=" + q + "api_key" + q}[core[1]%3]
		value := "value=" + q + core + q
		if core[2]&1 != 0 {
			value = "VALUE =" + q + core + q
		}
		if core[3]&1 != 0 {
			return textAttr(`<input class="f" ` + mark + " " + value + ">")
		}
		return textAttr("<input " + value + ` class="f" ` + mark + "/>")
	case shapeHeaderLine:
		// Two words of secret: the second one must go too.
		k := fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)]
		v := []string{core + " " + reverse(core), "Negotiate " + core + " " + reverse(core), "SSWS\t" + core + " " + reverse(core),
			`Digest username="u", realm="r", response="` + core + `", opaque="` + reverse(core) + `"`,
			"theme=dark; sid=" + core + "; b=" + reverse(core)}[core[0]%5]
		// A line's own: only a key that begins a line (or follows a
		// quote) takes the rest of it; mid-line prose is one word.
		line := k + ": " + v
		switch core[1] % 3 {
		case 0:
			line = "\n" + line
		case 1:
			line = "curl -H '" + line + "' https://host.example/"
		case 2:
			line = "GET / HTTP/1.1\r\n" + line + "\r\nHost: host.example"
		}
		p := textAttr(line)
		p.secret = append(p.secret, reverse(core))
		return p
	case shapeMySQLDSN:
		proto := []string{"tcp(db:3306)", "unix(/tmp/mysql.sock)", "tcp6([::1]:3306)", ""}[core[0]%4]
		return textAttr("dsn app:" + core + "@" + proto + "/app?parseTime=true")
	case shapeFlag:
		k := strings.ReplaceAll(fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)], "_", "-")
		return textAttr([]string{"app --" + k + " " + core + " --verbose", "app -" + k + " " + core, `["app", "--` + k + `", "` + core + `"]`,
			"curl -u admin:" + core + " https://host.example/", "curl --user 'admin:" + core + "' https://host.example/",
			"[--" + k + " " + core + " -v]", "(-" + k + " " + core + ")", "[\n  \"app\",\n  \"--" + k + "\",\n  \"" + core + "\"\n]",
			"app --" + k + " \\\n  " + core, "\nargs:\n  - --" + k + "\n  - " + core + "\n  - -v"}[core[0]%10])
	case shapeRocket:
		k := fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)]
		return textAttr([]string{`{"` + k + `"=>"` + core + `", "n"=>1}`, `['` + k + `' => '` + core + `']`, `{:` + k + ` => "` + core + `"}`,
			k + "=`" + core + "` next", "{:" + k + " =>\n  \"" + core + "\"}", "`" + k + "` = '" + core + "'", "`" + k + "`: " + core}[core[0]%7])
	case shapeSQL:
		return textAttr([]string{"CREATE USER 'app'@'%' IDENTIFIED BY '" + core + "';", "create user app identified with caching_sha2_password by '" + core + "'",
			"ALTER ROLE app WITH LOGIN PASSWORD '" + core + "' VALID UNTIL 'infinity'", "SET PASSWORD FOR 'app'@'%' = PASSWORD('" + core + "');",
			"ALTER USER app IDENTIFIED BY " + core + ";", "ALTER ROLE app PASSWORD $pw$" + core + "$pw$", "ALTER ROLE app PASSWORD\n  E'" + core + "'",
			"CREATE USER app IDENTIFIED BY  \"" + core + "\""}[core[0]%8])
	case shapeYAML:
		// Lines of their own: only a key that begins a line takes the
		// lines below it.
		k := fuzzSecretKeys[int(keyIdx)%len(fuzzSecretKeys)]
		p := textAttr([]string{"\n" + k + ": |\n  " + core + "\n\n  " + reverse(core) + "\nuser: bob",
			"\n  - " + k + ": >-\n      " + core + "\n      " + reverse(core) + "\n  - user: bob",
			"\n" + k + ":\n  " + core + "\n  " + reverse(core) + "\nuser: bob",
			k + ": 'it''s " + core + " " + reverse(core) + "' next"}[core[0]%4])
		p.secret = append(p.secret, reverse(core))
		return p
	}
	panic("bad shape")
}

func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// FuzzRedactPlantedSecret plants a secret of one of several shapes at a
// place in a record among filler attributes, logs it through Handler over
// slog's JSON handler, and checks that the secret is not in the output, the
// key of a keyed secret is, the output is valid JSON and nothing panics.
func FuzzRedactPlantedSecret(f *testing.F) {
	fillers := []string{
		"", "hello world", "user=bob id=42", `{"a":"b"}`, "https://example.com/x?y=z",
		"Bearer", "password", "-----", `"quoted \"stuff\""`, "tab\tnew\nline", "ünïcödé ✓",
		"<html>&amp;</html>", "eyJ", "AKIA", "ghp_", "@@::==", `\"`, "password=", "token: ",
		"-----BEGIN RSA PRIVATE KEY-----", "[REDACTED]", "hmac-sha256:",
	}
	i := 0
	for shape := range numShapes {
		for place := range numPlaces {
			filler := fillers[i%len(fillers)]
			f.Add(uint8(shape), uint8(place), uint8(i), "seed-"+filler, filler, uint8(i%4))
			i++
		}
	}
	f.Add(uint8(shapeJWT), uint8(placeMsg), uint8(0), "", "", uint8(0))
	f.Add(uint8(shapeKeyed), uint8(placeStruct), uint8(200), "x", "password=\"", uint8(1))
	f.Add(uint8(shapeURLPassword), uint8(placeError), uint8(7), "p@ss", "https://a:b@c", uint8(2))
	f.Add(uint8(shapeHTMLInput), uint8(placeSliceOfMaps), uint8('='), "0", "0", uint8(2))         // type=password/>
	f.Add(uint8(shapeHTMLInput), uint8(placeWithGroup), uint8('/'), "1", "token:\"", uint8(0xb0)) // a quoted value that ends inside the tag
	f.Add(uint8('R'), uint8('.'), uint8('V'), "0", "BeArer", uint8(2))                            // BeArer pw=`x`: not a bearer token pw=`
	f.Add(uint8(shapeHeaderLine), uint8(placeWithAttrs), uint8('/'), "9", "token:\"", uint8('S')) // token:" pw: Digest username="u", ...: a quoted value ends in the credentials
	f.Add(uint8('X'), uint8(' '), uint8(3), "2000000000\x8b07A", "0", uint8(2))                   // a URL password holding pw%3D

	key := []byte("fuzz-fingerprint-key-0123456789")
	fp, err := New(Options{Mode: Fingerprint, FingerprintKey: key})
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, shape, place, pos uint8, body, filler string, mode uint8) {
		// The scan must stay about linear whatever the input: fail (and so
		// save the input) when slow, and crash the worker rather than hang
		// the fuzzer silently when stuck.
		start := time.Now()
		watchdog := time.AfterFunc(30*time.Second, func() {
			panic(fmt.Sprintf("stuck: shape=%d place=%d pos=%d body=%q filler=%q mode=%d", shape, place, pos, body, filler, mode))
		})
		defer watchdog.Stop()
		defer func() {
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("one record took %v (%d bytes of filler)", d, len(filler))
			}
		}()
		core := fuzzCore(body, alnum)
		filler = fuzzFiller(filler)
		p := plant(int(shape)%numShapes, core, pos)
		text := filler + " " + p.text + " " + filler

		r := Default()
		if mode%4 == 1 {
			r = fp
		}
		// Filler attributes around the secret.
		noise := []any{"a", filler, "n", 1, slog.Group("g0", "f", filler)}
		// Between whole attributes only: inside a key-value pair the
		// secret would become "n"'s value, text whose PEM rule may rightly
		// take the key along.
		at := []int{0, 2, 4, 5}[int(pos)%4]
		around := func(a any) []any {
			args := append([]any{}, noise[:at]...)
			args = append(args, a)
			return append(args, noise[at:]...)
		}
		// The keyed and Secret shapes are attributes; the others are text
		// wherever the place holds text.
		attr := p.attr
		if p.key == "" && p.attr.Key == "note" {
			attr = slog.String("note", text)
		}

		var buf bytes.Buffer
		var l *slog.Logger
		switch mode % 4 {
		case 2:
			l = slog.New(r.Handler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{AddSource: true})))
		case 3: // as ReplaceAttr inside the JSON handler: no count
			l = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: r.ReplaceAttr}))
		default:
			l = slog.New(r.Handler(slog.NewJSONHandler(&buf, nil)))
		}
		switch int(place) % numPlaces {
		case placeMsg:
			l.Info(text, noise...)
		case placeAttr:
			l.Info(filler, around(attr)...)
		case placeGroup:
			l.Info(filler, around(slog.Group("g", attr))...)
		case placeNestedGroups:
			l.Info(filler, around(slog.Group("g", slog.Group("h", attr, "f", filler)))...)
		case placeNestedMap:
			l.Info(filler, around(slog.Any("m", map[string]any{"a": map[string]any{attr.Key: attr.Value.Any(), "f": filler}}))...)
		case placeSliceOfMaps:
			l.Info(filler, around(slog.Any("s", []any{filler, map[string]any{attr.Key: attr.Value.Any()}}))...)
		case placeError:
			l.Info(filler, around(slog.Any("err", fmt.Errorf("op: %w", errors.New(text))))...)
		case placeStruct:
			v := struct {
				Note     any    `json:"note"`
				Password string `json:"password,omitempty"`
				F        string
			}{F: filler}
			if p.key != "" {
				v.Password = core
			} else {
				v.Note = attr.Value.Any()
			}
			l.Info(filler, around(slog.Any("v", &v))...)
		case placeWithAttrs:
			l.With(around(attr)...).Info(filler)
		case placeWithGroup:
			l.WithGroup("wg").With("f", filler).WithGroup("wg2").Info(filler, around(attr)...)
		case placeStringer:
			l.Info(filler, around(slog.Any("st", fuzzStringer(text)))...)
		case placeLogValuer:
			l.Info(filler, around(slog.Any("lv", fuzzValuer{attr}))...)
		}

		out := buf.String()
		if !json.Valid(bytes.TrimSpace(buf.Bytes())) {
			t.Fatalf("invalid JSON: %s", out)
		}
		for _, s := range p.secret {
			if strings.Contains(out, s) {
				t.Fatalf("secret %q (shape %d, place %d) in output:\n%s", s, shape%numShapes, place%numPlaces, out)
			}
		}
		// Placed in text, a key may rightly go with the secret (inside an
		// unterminated PEM block, say); as an attribute or map key it stays.
		textPlace := place%numPlaces == placeMsg || place%numPlaces == placeError || place%numPlaces == placeStringer
		if p.key != "" && !textPlace && int(place)%numPlaces != placeStruct {
			if enc, _ := json.Marshal(p.key); !strings.Contains(out, string(enc[1:len(enc)-1])) {
				t.Fatalf("key %q missing from output:\n%s", p.key, out)
			}
		}
		// A Secret formatted into text is already a placeholder: nothing to count.
		if mode%4 != 3 && !(shape%numShapes == shapeSecretType && textPlace) && !strings.Contains(out, `"`+RedactedKey+`":`) {
			t.Fatalf("no %s count:\n%s", RedactedKey, out)
		}
	})
}

// FuzzTextKeyEncoded: a key in key=value text, percent-encoded in any part
// and either hex case, with + for spaces, is judged as the key it decodes
// to: its value is replaced exactly when the key rules call the plain key
// secret.
func FuzzTextKeyEncoded(f *testing.F) {
	for _, k := range append([]string{"pass", "pw", "user pw", "pass count", "bypass", "access_token", "api-key",
		"api key id", "password", "passport", "db.pass.new", "X-Auth-Token"}, fuzzSecretKeys...) {
		f.Add(k, uint8(0x5a), true)
		f.Add(k, uint8(0xff), false)
	}
	r := Default()
	f.Fuzz(func(t *testing.T, k string, mask uint8, upper bool) {
		// Key bytes that text keys are made of (+ stands for the space).
		b := []byte(k)
		if len(b) > 40 {
			b = b[:40]
		}
		for i, c := range b {
			if !isAlnum(c) && strings.IndexByte("_-. ", c) < 0 {
				b[i] = '_'
			}
		}
		k = string(b)
		const value = "S3CR3TVALUE"
		in := "a=1&" + encodeKey(k, mask, upper) + "=" + value + "&b=2"
		out, _ := r.String(in)
		secret := r.keys.secret(k)
		if gone := !strings.Contains(out, value); gone != secret {
			t.Errorf("key %q is secret %v, but String(%q) = %q", k, secret, in, out)
		}
		if secret && !strings.HasSuffix(out, "="+Redacted+"&b=2") {
			t.Errorf("String(%q) = %q: more than the value replaced", in, out)
		}
	})
}

// FuzzStringAgrees: text the check (hasSecret) passes as clean comes out of
// String unchanged, with and without a user pattern; the check of a clean
// record (and the verdicts kept for literals) relies on it.
func FuzzStringAgrees(f *testing.F) {
	for _, s := range []string{
		"cb%3Ftoken%3Dabc", "cb%253Ftoken%253Dabc", "password%3D%22a b%22", `{"api key": "x"}`, `{ "my token" : 1}`,
		"<password>x</password>", `<wsse:Password Type="t">x</wsse:Password>`, "<a:token>v</b>", "a%3Db%3D", "x%3d%3D%26",
		"<wsse:Password Type=\"PasswordText\"\t>hunter2</wsse:Password>", "<wsse:Password\n>hunter2</wsse:Password>", "<wsse:Password 0!>hunter2</wsse:Password>",
		"Authorization: Bearer abc123", "ID-42",
		"<password><password>a</password>b</password>", "<pw><PW>a</x:pw>b</pw>", "<token><token>x</token>", "Enter <token> then <token>x</token>",
		"<password><password/>a</password>",
		`<input type="password" value="x">`, "<INPUT name=pw value=x>", `<input value='x' id='api-key'/>`, `<input type="password" value="`,
		`<input name="username" value="bob">`, `<input type=password value="x" value=y>`,
		"Authorization: Negotiate abc def", "curl -H 'Authorization: Negotiate a b' x", `{"msg":"bad password: a b","n":1}`, `a "b password: c d`,
		`he said "hi Authorization: Digest username="u", response="x" ok`, "password: a b\r\nuser: c", `"Authorization: Negotiate a\r\nHost: x"`,
		"Authorization=Digest a=\"b\", c=d e=f", "auth=AWS4-HMAC-SHA256 Credential=a/b, Signature=c", "Set-Cookie: a=b; Path=/",
		"app:pw@tcp(db:3306)/x", "root:pw@unix(/tmp/s)/db", "a:b@/c", "x:p@ss@tcp6(h)/d",
		"curl -u admin:pw x", "--user=a:b", "-uadmin:pw", "--proxy-user :pw",
		"--password pw --x", "-pw x", `["a", "--token", "x"]`, `"--password" "x"`, "--password --x",
		"secret=`x y`", `{"password"=>"x"}`, `'pw' => 'x'`, `{:otp=>1}`,
		"IDENTIFIED BY 'x'", "identified with p by 'x'", "WITH PASSWORD 'it''s'", "by 'x'", "password ''",
		"BY  'x'", "PASSWORD\n'x'", "SET PASSWORD FOR 'u'@'%' = 'x'", "set password = PASSWORD('x')", "user u identified by x", `IDENTIFIED BY "x"`,
		"PASSWORD E'x'", "PASSWORD $$x$$", "PASSWORD $t$x$t$", "BY 'a' REPLACE 'b'", "to u IDENTIFIED BY a REPLACE b",
		":pw =>\n  \"x\"", "{\"pw\":\n \"x\"}", "`pw` = 'x'", "`pw`: x",
		"<pw><![CDATA[a</pw>b]]></pw>", "<pw><!--</pw>-->b</pw>", `<pw a="/>">b</pw>`, `<param name="pw" value="x">`, `<p key='pw' value=x/>`,
		`<entry key="pw">x</entry>`, `<meta name="csrf-token" content="x">`, `<x id=pw value="a>b"/>`,
		"a:\n  - --pw\n  - x", "- \"--pw\"\n- \"x\"", "pw := \"x\"", `pw = """x"""`, "pw: '''x'''", `<pw value="x"/>`,
		"[--password x]", "(-pw x)", "[\n \"--token\",\n \"x\"\n]", `[\n \"--token\",\n \"x\"]`, "--pw \\\n x", "[-pw] x",
		"password: |\n  x\n y\nz: 1", "- pw: >-\n    x", "pw:\n  x", `"pw: |\n  x\ny: 1"`, "pw: 'a''b'", "a:\n pw: |\n  x",
	} {
		f.Add(s)
	}
	plain := Default()
	withPattern, err := New(Options{Patterns: []Pattern{{Literal: "ID", Regexp: regexp.MustCompile(`ID-[0-9]+`)}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range []*Redactor{plain, withPattern} {
			out, n := r.String(s)
			if !r.hasSecret(s) && (n != 0 || out != s) {
				t.Fatalf("hasSecret(%q) = false, but String = %q, %d", s, out, n)
			}
		}
	})
}
