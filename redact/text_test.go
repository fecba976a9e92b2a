package redact

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Secrets used in the tests. They are shaped like the real thing.
const (
	testJWT     = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
	testAWS     = "AKIAIOSFODNN7EXAMPLE"
	testAWSTemp = "ASIAY34FZKBOKMUTVV7A"
	testGHP     = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
	testGHPAT   = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"
	testSlack   = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
	testBasic   = "dXNlcjpodW50ZXIy" // user:hunter2
	testPEMBody = "MIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\naFDrBz9vFqU4yV9tu4VB5Dl3Zl2dLOOD4XFhEaKp3Ufh+Z1Y8A7iHRoI3zE2YoQd"
)

func TestStringPatterns(t *testing.T) {
	R := Redacted
	const S = "hunter2secretXYZ"
	for _, tc := range []struct {
		name, in, want string
		n              int
	}{
		// nothing to do
		{"plain", "request handled in 3ms", "request handled in 3ms", 0},
		{"empty", "", "", 0},
		{"time and url", "at 12:30:00 see https://example.com/a?b=c&d=e", "at 12:30:00 see https://example.com/a?b=c&d=e", 0},
		{"name of a key", "credential_key=obsidian_api_key", "credential_key=obsidian_api_key", 0},
		{"names in query", "?token_type=bearer&key_id=k1&password_policy=strict", "?token_type=bearer&key_id=k1&password_policy=strict", 0},
		{"form index key", "?list[0]=a&user[name]=bob", "?list[0]=a&user[name]=bob", 0},
		{"form key", "?a=1&user[password]=x1y2z3&b=2", "?a=1&user[password]=" + R + "&b=2", 1},
		{"percent-encoded form key", "user%5Bpassword%5D=x1y2z3", "user%5Bpassword%5D=" + R, 1},
		{"percent-encoded key", "a=1&api%5Fkey=x1y2z3", "a=1&api%5Fkey=" + R, 1},
		{"bad percent-encoding, no key the program sees", "api%5key=x1y2z3", "api%5key=x1y2z3", 0},
		{"one bad escape, the rest decoded", "a%zz_api%5Fkey=x1y2z3", "a%zz_api%5Fkey=" + R, 1},
		{"already redacted", "password=" + R + " token=" + R, "password=" + R + " token=" + R, 0},

		// pass and pw; names that merely contain them, or end in another word
		{"pass and pw", "?pass=QPASS16&pw=QPW17&bypass=1", "?pass=" + R + "&pw=" + R + "&bypass=1", 2},
		{"pass and pw last", "db_pass=x1 userPw=x2 MYSQL_PW=x3", "db_pass=" + R + " userPw=" + R + " MYSQL_PW=" + R, 3},
		{"names with pass", "?pass_count=3&pw_policy=strict&passport=X1&compass=n&dbpass=d", "?pass_count=3&pw_policy=strict&passport=X1&compass=n&dbpass=d", 0},
		{"pass in json", `{"pass":"p1","pass_rate":0.9,"pw":12}`, `{"pass":"` + R + `","pass_rate":0.9,"pw":` + R + `}`, 2},

		// percent-encoded names: decided as the program reading them sees
		// them, the value replaced in the text as it is
		{"encoded letter", "?pass%77ord=SECRET&x=1", "?pass%77ord=" + R + "&x=1", 1},
		{"encoded letter upper", "?PASS%57ORD=SECRET", "?PASS%57ORD=" + R, 1},
		{"encoded underscore", "?access%5Ftoken=SECRET&access%5ftoken=SECRET2", "?access%5Ftoken=" + R + "&access%5ftoken=" + R, 2},
		{"encoded dash", "api%2Dkey=SECRET api%2dkey=SECRET2", "api%2Dkey=" + R + " api%2dkey=" + R, 2},
		{"encoded space and dot", "api%20key=S1&app%2Ekey=S2", "api%20key=" + R + "&app%2Ekey=" + R, 2},
		{"encoded camel", "db%50w=S1", "db%50w=" + R, 1}, // dbPw
		{"all encoded", "%70%61%73%73=S1&%70%77=S2", "%70%61%73%73=" + R + "&%70%77=" + R, 2},
		{"encoded value kept as it is", "pass%77ord=a%20b%2Bc&n=1", "pass%77ord=" + R + "&n=1", 1},
		{"encoded json key", `{"pass%77ord":"p1","n":1}`, `{"pass%77ord":"` + R + `","n":1}`, 1},
		{"encoded names of secrets", "?access%5Ftoken%5Ftype=bearer&pass%5Fcount=3&api%2Dkey%2Did=k1&by%70ass=1&pass%77ord%5Fpolicy=strict",
			"?access%5Ftoken%5Ftype=bearer&pass%5Fcount=3&api%2Dkey%2Did=k1&by%70ass=1&pass%77ord%5Fpolicy=strict", 0},
		{"encoded glued", "db%70assword=S1&by%70w=S2", "db%70assword=" + R + "&by%70w=S2", 1},
		{"long all-encoded name", "?" + pctEncode("password_confirmation_value") + "=S1",
			"?" + pctEncode("password_confirmation_value") + "=" + R, 1},
		{"long all-encoded name of a secret", "?" + pctEncode("password_confirmation_policy") + "=S1",
			"?" + pctEncode("password_confirmation_policy") + "=S1", 0},
		{"invalid escapes", "pass%zz=1&pass%=S1&%%70w=S2&%=3&pw%2=S3&%7=4", "pass%zz=1&pass%=" + R + "&%%70w=" + R + "&%=3&pw%2=" + R + "&%7=4", 3},
		{"plus as space", "?api+key=S1&api+key+id=k1&access+token=S2", "?api+key=" + R + "&api+key+id=k1&access+token=" + R, 2},
		{"plus in json key", `{"api+key":"S1"}`, `{"api+key":"` + R + `"}`, 1},
		// a query string percent-encoded inside another (a callback URL as a parameter)
		{"encoded query in a parameter", "/login?next=https%3A%2F%2Fapp.example%2Fcb%3Fstate%3Dx1%26access_token%3DSECRET1%26n%3D2&x=1",
			"/login?next=https%3A%2F%2Fapp.example%2Fcb%3Fstate%3Dx1%26access_token%3D" + R + "%26n%3D2&x=1", 1},
		{"encoded query, lower-case escapes", "?u=cb%3fclient_secret%3dSECRET2%26a%3d1", "?u=cb%3fclient_secret%3d" + R + "%26a%3d1", 1},
		{"encoded query, value to an encoded space", "redirect cb%3Ftoken%3DSECRET3%20then", "redirect cb%3Ftoken%3D" + R + "%20then", 1},
		{"encoded query, value to the text's end", "cb%3Fpassword%3DSECRET4", "cb%3Fpassword%3D" + R, 1},
		{"encoded query, names of secrets", "cb%3Ftoken_type%3Dbearer%26key_id%3Dk1%26password_policy%3Dstrict",
			"cb%3Ftoken_type%3Dbearer%26key_id%3Dk1%26password_policy%3Dstrict", 0},
		{"encoded = without a key", "a %3D b and 100%3D", "a %3D b and 100%3D", 0},
		{"other escapes", "50%25 of %3Cpassword%3E", "50%25 of %3Cpassword%3E", 0},

		// JSON member names with spaces
		{"json key with a space", `{"api key": "SECRET5", "n": 1}`, `{"api key": "` + R + `", "n": 1}`, 1},
		{"json key with spaces, not first", `{"a":1, "my access token":"SECRET6"}`, `{"a":1, "my access token":"` + R + `"}`, 1},
		{"escaped json key with a space", `{"api key":"SECRET7"}`, `{"api key":"` + R + `"}`, 1},
		{"json key with a space, a name", `{"api key id": "k1", "password policy": "strict"}`, `{"api key id": "k1", "password policy": "strict"}`, 0},
		{"quoted words in prose", `he typed "reset your password": done`, `he typed "reset your password": done`, 0},

		// XML and HTML elements named as secrets
		{"xml element", "<user>bob</user><password>SECRET8</password>", "<user>bob</user><password>" + R + "</password>", 1},
		{"xml element with a namespace", "<ns1:api_key>SECRET9</ns1:api_key>", "<ns1:api_key>" + R + "</ns1:api_key>", 1},
		{"xml elements, names of secrets", "<token_type>bearer</token_type><password_policy>strict</password_policy>",
			"<token_type>bearer</token_type><password_policy>strict</password_policy>", 0},
		{"placeholders in prose", "usage: login <user> <password>: then <token> and more", "usage: login <user> <password>: then <token> and more", 0},
		{"empty and self-closing elements", "<password></password><token/>", "<password></password><token/>", 0},
		{"html", "<b>bold</b> <p>text</p>", "<b>bold</b> <p>text</p>", 0},
		{"xml element with attributes", `<password type="x">SECRET10</password>`, `<password type="x">` + R + `</password>`, 1},
		{"ws-security password", `<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText">SECRET11</wsse:Password>`,
			`<wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText">` + R + `</wsse:Password>`, 1},
		{"space in the tags", "<password >SECRET12</password >", "<password >" + R + "</password >", 1},
		{"cdata", "<password><![CDATA[SECRET13]]></password>", "<password>" + R + "</password>", 1},
		{"children of a secret element", "<credentials><value>SECRET14</value></credentials>", "<credentials>" + R + "</credentials>", 1},
		{"prose placeholder before another end tag", "<p>Enter your <password> below, then press Save.</p><li>Copy the <token> in.</li>",
			"<p>Enter your <password> below, then press Save.</p><li>Copy the <token> in.</li>", 0},
		{"start tag ends on another line", "<wsse:Password Type=\"PasswordText\"\t\n>SECRET19</wsse:Password>", "<wsse:Password Type=\"PasswordText\"\t\n>" + R + "</wsse:Password>", 1},
		{"start tag after odd attributes", "<wsse:Password 0!>SECRET20</wsse:Password>", "<wsse:Password 0!>" + R + "</wsse:Password>", 1},
		{"end tag in another case", "<PASSWORD>SECRET21</Password>", "<PASSWORD>" + R + "</Password>", 1},
		{"prefix on one tag only", "<password>SECRET22</ns:password><ns:token>SECRET23</token>", "<password>" + R + "</ns:password><ns:token>" + R + "</token>", 2},
		{"long start tag", `<wsse:Password Type="` + strings.Repeat("u", 600) + `">SECRET24</wsse:Password>`, `<wsse:Password Type="` + strings.Repeat("u", 600) + `">` + R + `</wsse:Password>`, 1},
		{"many start tags, one end tag", strings.Repeat("<token>", 3) + "SECRET15</token>", "<token>" + R + "</token>", 1},
		// nested elements of the same name: the end tag that closes the outer one
		{"nested same name", "<password><password>a</password>SECRET25</password>", "<password>" + R + "</password>", 1},
		{"nested, prefixes and cases", "<ns:Password><PASSWORD x=\"1\">a</password >SECRET26<b></b></ns:password>tail",
			"<ns:Password>" + R + "</ns:password>tail", 1},
		{"nested three deep", "<token><token><token>a</token>b</token>SECRET27</token>", "<token>" + R + "</token>", 1},
		{"nested, then a sibling", "<pw><pw>a</pw>SECRET28</pw> and <pw>SECRET29</pw>", "<pw>" + R + "</pw> and <pw>" + R + "</pw>", 2},
		{"inner secret of another name", "<credentials><password>a</password>SECRET30</credentials>", "<credentials>" + R + "</credentials>", 1},
		{"empty element of the same name inside", "<token><token/>SECRET31</token>", "<token>" + R + "</token>", 1},
		// an element that nothing closes runs to the last end tag of its
		// name (fail closed); only without one is it taken for prose
		{"nesting that never closes", "<password><password>SECRET32</password>", "<password>" + R + "</password>", 1},
		{"unclosed, then nested", "<password>SECRET41<password>x</password>", "<password>" + R + "</password>", 1},
		{"unclosed, a same-name start tag in cdata", "<password><![CDATA[SECRET42<password>ter]]></password>", "<password>" + R + "</password>", 1},
		{"unclosed, another element's end tag after", "<token>SECRET43<token>a</token><b>c</b>", "<token>" + R + "</token><b>c</b>", 1},
		{"prose placeholder before an element of the same name", "Enter your <password> below: <password>SECRET33</password>",
			"Enter your <password>" + R + "</password>", 1},
		{"end tags of names of secrets", "<password_policy><password_policy>strict</password_policy></password_policy><token_type>bearer</token_type>",
			"<password_policy><password_policy>strict</password_policy></password_policy><token_type>bearer</token_type>", 0},
		{"prose placeholders, nested markup", "<ul><li>Type your <password>.</li><li>Then your <password> again.</li></ul>",
			"<ul><li>Type your <password>.</li><li>Then your <password> again.</li></ul>", 0},

		// CDATA sections and comments hold no end tags; quoted attribute values may hold a >
		{"end tag in cdata", "<password><![CDATA[a</password>SECRET47]]></password>", "<password>" + R + "</password>", 1},
		{"end tag in a comment", "<password><!-- </password> -->SECRET48</password> <b>x</b>", "<password>" + R + "</password> <b>x</b>", 1},
		{"cloud sql dsn", "app:hunter2@cloudsql-mysql(proj:region:inst)/db?parseTime=true", "app:" + R + "@cloudsql-mysql(proj:region:inst)/db?parseTime=true", 1},
		{"cloud sql postgres dsn", "user=x app:hunter2@cloudsql-postgres(proj:region:inst)/db", "user=x app:" + R + "@cloudsql-postgres(proj:region:inst)/db", 1},
		{"secret element, value and content", `<token value="x1">y2</token> <b>x</b>`, `<token value="` + R + `</token> <b>x</b>`, 1},
		{"secret element, value, empty content", `<password value="hunter2"></password>`, `<password value="` + R + `</password>`, 1},
		{"secret element, value, left open", `<password value="hunter2"> <b>x</b>`, `<password value="` + R + `"> <b>x</b>`, 1},
		{"identified with a quoted plugin", "ALTER USER app IDENTIFIED WITH 'mysql_native_password' BY '" + S + "'", "ALTER USER app IDENTIFIED WITH 'mysql_native_password' BY '" + R + "'", 1},
		{"identified with a backquoted plugin", "CREATE USER app IDENTIFIED WITH `caching_sha2_password` BY \"" + S + "\"", "CREATE USER app IDENTIFIED WITH `caching_sha2_password` BY \"" + R + "\"", 1},
		{"sql in json, escaped line breaks", `{"sql":"CREATE USER bob\nIDENTIFIED BY\n'` + S + `'"}`, `{"sql":"CREATE USER bob\nIDENTIFIED BY\n'` + R + `'"}`, 1},
		{"sql in json, escaped break in identified by", `{"sql":"CREATE USER bob IDENTIFIED\nBY '` + S + `'"}`, `{"sql":"CREATE USER bob IDENTIFIED\nBY '` + R + `'"}`, 1},
		{"sql in json, escaped tab before password", `{"sql":"ALTER ROLE app WITH PASSWORD\t'` + S + `'"}`, `{"sql":"ALTER ROLE app WITH PASSWORD\t'` + R + `'"}`, 1},
		{"sql in json, double-quoted, escaped", `{"sql":"CREATE USER bob\nIDENTIFIED BY \"` + S + `\""}`, `{"sql":"CREATE USER bob\nIDENTIFIED BY \"` + R + `\""}`, 1},
		{"prose, escaped line break before a quote", `{"msg":"then\n'x' was read"}`, `{"msg":"then\n'x' was read"}`, 0},
		{"password function, spaces", "SELECT PASSWORD ('" + S + "')", "SELECT PASSWORD ('" + R + "')", 1},
		{"password function, spaces inside", "SET authentication_string = PASSWORD( '" + S + "' ) WHERE u", "SET authentication_string = PASSWORD( '" + R + "' ) WHERE u", 1},
		{"prose, a quote after a paren", "call f ('x') and (' y')", "call f ('x') and (' y')", 0},
		{"yaml block scalar with a tag", "password: !!str |\n  " + S + "\nuser: bob", "password: !!str |\n  " + R + "\nuser: bob", 1},
		{"yaml block scalar, ansible vault", "db_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6134\nuser: bob", "db_password: !vault |\n  " + R + "\nuser: bob", 1},
		{"yaml block scalar with an anchor", "password: &pw >-\n  " + S + "\n", "password: &pw >-\n  " + R + "\n", 1},
		{"yaml comment, value below", "password: # the db one\n  " + S + "\nuser: bob", "password: " + R + "\nuser: bob", 1},
		{"yaml comment under a name", "note: # a comment\n  text\nuser: bob", "note: # a comment\n  text\nuser: bob", 0},
		{"yaml tag, no block", "password: !!str " + S + "\nuser: bob", "password: " + R + "\nuser: bob", 1},
		{"create user if not exists, bare", "CREATE USER IF NOT EXISTS app IDENTIFIED BY " + S + ";", "CREATE USER IF NOT EXISTS app IDENTIFIED BY " + R + ";", 1},
		{"create user if not exists, in json", `{"q":"CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY \"` + S + `\""}`, `{"q":"CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY \"` + R + `\""}`, 1},
		{"prose, if not exists", "skip if not exists identified by its id", "skip if not exists identified by its id", 0},
		{"element in cdata", "<soap:Body><![CDATA[<Login><Password>hunter2</Password></Login>]]></soap:Body>", "<soap:Body><![CDATA[<Login><Password>" + R + "</Password></Login>]]></soap:Body>", 1},
		{"element in a comment", "<!-- <password>hunter2</password> --> <b>x</b>", "<!-- <password>" + R + "</password> --> <b>x</b>", 1},
		{"named element in cdata", `<config><![CDATA[<entry key="password">hunter2</entry>]]></config>`, `<config><![CDATA[<entry key="password">` + R + `</entry>]]></config>`, 1},
		{"cdata end tag, element in cdata", "<password><![CDATA[<password>a</password>b]]></password>", "<password>" + R + "</password>", 1},
		{"unclosed, the only end tag in cdata", "<token>SECRET49<![CDATA[</token>]]>", "<token>" + R + "</token>]]>", 1}, // fail closed
		{"cdata that never ends", "<password><![CDATA[SECRET50</password> x", "<password>" + R + "</password> x", 1},
		{"> in a quoted attribute", `<password a="/>" b='>'>SECRET51</password>`, `<password a="/>" b='>'>` + R + `</password>`, 1},
		{"> in an attribute of another element", `<x a=">"><password>SECRET52</password></x>`, `<x a=">"><password>` + R + `</password></x>`, 1},
		// elements a name or key attribute names as a secret, and value attributes
		{"empty element named as a secret, value", `<password value="SECRET61"/>`, `<password value="` + R + `"/>`, 1},
		{"param value", `<param name="password" value="SECRET53">`, `<param name="password" value="` + R + `">`, 1},
		{"spring property", `<property name="password" value="SECRET54"/>`, `<property name="password" value="` + R + `"/>`, 1},
		{"dotnet appsettings", `<add key="ApiKey" value='SECRET55' />`, `<add key="ApiKey" value='` + R + `' />`, 1},
		{"meta content", `<meta name="csrf-token" content="SECRET56">`, `<meta name="csrf-token" content="` + R + `">`, 1},
		{"value by id, value first", `<data value=SECRET57 id=client_secret>`, `<data value=` + R + ` id=client_secret>`, 1},
		{"hibernate property", `<property name="hibernate.connection.password">SECRET58</property>`, `<property name="hibernate.connection.password">` + R + `</property>`, 1},
		{"java properties entry", `<entry key="db.password">SECRET59</entry><entry key="db.user">bob</entry>`, `<entry key="db.password">` + R + `</entry><entry key="db.user">bob</entry>`, 1},
		{"value with a > in it", `<param name="pw" value="a>SECRET60">`, `<param name="pw" value="` + R + `">`, 1},
		{"attributes, names of secrets", `<param name="password_policy" value="strict"><option value="x">y</option><div id="token">t</div><entry key="token_type">bearer</entry><x name="pw"/>`,
			`<param name="password_policy" value="strict"><option value="x">y</option><div id="token">t</div><entry key="token_type">bearer</entry><x name="pw"/>`, 0},
		{"markup and comparisons", `<a href="/x">link</a> and 3 > 2, x => y, a/> <b c=">">d</b>`, `<a href="/x">link</a> and 3 > 2, x => y, a/> <b c=">">d</b>`, 0},

		// HTML inputs: the value of a password field or of an input named as a secret
		{"password input", `<input type="password" name="pw" value="SECRET34">`, `<input type="password" name="pw" value="` + R + `">`, 1},
		{"input named password", `<input name="password" value="SECRET35">`, `<input name="password" value="` + R + `">`, 1},
		{"input named api_key, single quotes", `<input name="api_key" value='SECRET36'>`, `<input name="api_key" value='` + R + `'>`, 1},
		{"input, no quotes", `<input type=password value=SECRET37 autocomplete=off>`, `<input type=password value=` + R + ` autocomplete=off>`, 1},
		{"input, value first, type last", `<input value="SECRET38" class="f" type="password" />`, `<input value="` + R + `" class="f" type="password" />`, 1},
		{"input in capitals", `<INPUT TYPE="PASSWORD" VALUE="SECRET39">`, `<INPUT TYPE="PASSWORD" VALUE="` + R + `">`, 1},
		{"input by id", "<input\n  id='client-secret'\n  value = \"SECRET40\"/>", "<input\n  id='client-secret'\n  value = \"" + R + "\"/>", 1},
		{"input, value with a key=value and quotes", `<input type="password" value="a'b token=c>d">`, `<input type="password" value="` + R + `">`, 1},
		// a tag that ends before its > keeps no value it showed to be a
		// password's (review)
		{"input past the start tag limit", `<input type="password" value="SECRET44" data-x="` + strings.Repeat("a", 5000) + `">`,
			`<input type="password" value="` + R + `" data-x="` + strings.Repeat("a", 5000) + `">`, 1},
		{"input broken by another tag", `<input type="password" name="pw" value="SECRET45" <b>x</b>`, `<input type="password" name="pw" value="` + R + `" <b>x</b>`, 1},
		{"input value holding a <", `<input type="password" value="SEC<RET46">`, `<input type="password" value="` + R + `">`, 1},
		{"input, data-value kept", `<input type="password" data-value="x" value="SECRET41">`, `<input type="password" data-value="x" value="` + R + `">`, 1},
		{"input, no quotes, self-closing", `<input value=SECRET44 type=password/>`, `<input value=` + R + ` type=password/>`, 1},
		{"input cut short", `form: <input type="password" value="SECRET42`, `form: <input type="password" value="` + R, 1},
		{"inputs in a form", `<form><input name="user" value="bob"><input name="pass" type="password" value="SECRET43"></form>`,
			`<form><input name="user" value="bob"><input name="pass" type="password" value="` + R + `"></form>`, 1},
		{"inputs, names of secrets", `<input name="password_policy" value="strict"><input name="username" value="bob"><input type="text" value="x"><input name="token_type" value="bearer">`,
			`<input name="password_policy" value="strict"><input name="username" value="bob"><input type="text" value="x"><input name="token_type" value="bearer">`, 0},
		{"inputs without a value", `<input type="password" name="pw"> <input type="password" value=""> <input type=password value= >`,
			`<input type="password" name="pw"> <input type="password" value=""> <input type=password value= >`, 0},
		{"password in another attribute's value", `<input placeholder='type="password"' value="x">`, `<input placeholder='type="password"' value="x">`, 0},
		{"not an input", `<inputs type="password" value="x"><inp type=password value=x><in type="password" value="x">`,
			`<inputs type="password" value="x"><inp type=password value=x><in type="password" value="x">`, 0},
		{"input with a < in it", `<input type="password" <b value="x">`, `<input type="password" <b value="x">`, 0},
		{"input in prose", "use an <input type=password> field, not <input type=text>", "use an <input type=password> field, not <input type=text>", 0},
		{"encoded twice", "/login?next=https%253A%252F%252Fapp%252Fcb%253Ftoken%253DSECRET16%2526n%253D1",
			"/login?next=https%253A%252F%252Fapp%252Fcb%253Ftoken%253D" + R + "%2526n%253D1", 1},
		{"encoded quoted value", "cb%3Fpassword%3D%22SECRET 17%22%26n%3D1", "cb%3Fpassword%3D%22" + R + "%22%26n%3D1", 1},
		{"encoded key bytes before an encoded =", "cb%3Faccess%5Ftoken%3DSECRET18", "cb%3Faccess%5Ftoken%3D" + R, 1},
		{"uuid and dates", "id 123e4567-e89b-12d3-a456-426614174000 on 2024-01-02", "id 123e4567-e89b-12d3-a456-426614174000 on 2024-01-02", 0},
		{"email", "mail bob@example.com", "mail bob@example.com", 0},

		// Authorization-style text
		{"bearer", "Authorization: Bearer abcdef0123456789XYZ", "Authorization: Bearer " + R, 1},
		{"bearer lower", "sent bearer abc123def456 to upstream", "sent bearer " + R + " to upstream", 1},
		{"bearer jwt", "Bearer " + testJWT, "Bearer " + R, 1},
		{"bearer prose", "bearer authentication failed", "bearer authentication failed", 0},
		{"bearer token prose", "a bearer token is required", "a bearer token is required", 0},
		{"basic", "Basic " + testBasic + " sent", "Basic " + R + " sent", 1},
		{"basic prose", "basic authentication is off", "basic authentication is off", 0},
		{"header basic", "Authorization: Basic " + testBasic, "Authorization: Basic " + R, 1},
		{"bearer then key=value", "BeArer api_key=w36Nyvc5yO04U42ZxwE2lKzs BeArer", "BeArer api_key=" + R + " BeArer", 1},
		{"bearer then secret key", "sent bearer pw=abcdefghij", "sent bearer pw=" + R, 1},
		{"bearer then secret key, quoted value", `Bearer api_key="` + S + `" BeArer secret=` + "`" + S + "`", `Bearer api_key="` + R + `" BeArer secret=` + "`" + R + "`", 2},
		{"bearer then other key=value", "token_type=bearer key_id=abc123def", "token_type=bearer key_id=abc123def", 0},
		{"bearer padded", "Bearer abcdefgh0123== ok", "Bearer " + R + " ok", 1},
		{"bearer padded in brackets", "(Bearer abcdefgh0123==)", "(Bearer " + R + ")", 1},
		{"basic padded in brackets", "(Basic dXNlcjpodW50ZXIy=)", "(Basic " + R + ")", 1},
		{"proxy header", "Proxy-Authorization: Bearer abcdef0123456789XYZ", "Proxy-Authorization: Bearer " + R, 1},

		// token shapes
		{"jwt", "token " + testJWT + " expired", "token " + R + " expired", 1},
		{"jwt in url", "https://x.test/cb#id_token=" + testJWT, "https://x.test/cb#id_token=" + R, 1},
		{"jwt unsigned", "t=eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "t=" + R + ".", 1},
		{"not jwt", "eyJust kidding. eyJ alone", "eyJust kidding. eyJ alone", 0},
		{"aws", "key " + testAWS + " used", "key " + R + " used", 1},
		{"aws temp", "(" + testAWSTemp + ")", "(" + R + ")", 1},
		{"aws too long", "AKIAIOSFODNN7EXAMPLEX", "AKIAIOSFODNN7EXAMPLEX", 0},
		{"github classic", "push with " + testGHP, "push with " + R, 1},
		{"github oauth app", "gho_16C7e42F292c6912E7710c838347Ae178B4a", R, 1},
		{"github server", "ghs_16C7e42F292c6912E7710c838347Ae178B4a,", R + ",", 1},
		{"github user", "ghu_16C7e42F292c6912E7710c838347Ae178B4a", R, 1},
		{"github pat", "use " + testGHPAT + ".", "use " + R + ".", 1},
		{"github short", "ghp_short and my_ghp_", "ghp_short and my_ghp_", 0},
		{"slack bot", "slack " + testSlack, "slack " + R, 1},
		{"slack user", "xoxp-1234-5678-abcdefghij", R, 1},
		{"slack app", "xapp-1-A0123-4567-abcdef0123", R, 1},
		{"pem", "key:\n-----BEGIN RSA PRIVATE KEY-----\n" + testPEMBody + "\n-----END RSA PRIVATE KEY-----\nok",
			"key:\n-----BEGIN RSA PRIVATE KEY-----\n" + R + "\n-----END RSA PRIVATE KEY-----\nok", 1},
		{"pem openssh", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----",
			"-----BEGIN OPENSSH PRIVATE KEY-----\n" + R + "\n-----END OPENSSH PRIVATE KEY-----", 1},
		{"pem unterminated", "-----BEGIN PRIVATE KEY-----\n" + testPEMBody, "-----BEGIN PRIVATE KEY-----\n" + R, 1},
		{"pem certificate", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", 0},

		// URLs
		{"url password", "dial https://user:pw@host/x", "dial https://user:" + R + "@host/x", 1},
		{"url password at", "postgres://app:p@ss:w0rd@db:5432/app", "postgres://app:" + R + "@db:5432/app", 1},
		{"url odd password", "ftp://u:pa$$!@host/", "ftp://u:" + R + "@host/", 1},
		{"url no user", "redis://:hunter2@cache:6379/0", "redis://:" + R + "@cache:6379/0", 1},
		{"url password holding a key=value", "dial https://user:abcPw%3Dsecret@host/p ok", "dial https://user:" + R + " ok", 1},
		{"url user only", "https://bob@example.com/", "https://bob@example.com/", 0},
		{"url query", "GET /cb?code=1&access_token=abc123&token_type=bearer&api_key=zzz#frag",
			"GET /cb?code=1&access_token=" + R + "&token_type=bearer&api_key=" + R, 2}, // '#' may be part of a password
		{"url both", "https://u:p@h/?password=x", "https://u:" + R + "@h/?password=" + R, 2},
		{"presigned", "https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=abcdef",
			"https://b.s3.amazonaws.com/k?X-Amz-Credential=" + R + "&X-Amz-Signature=" + R, 2},

		// key=value and key: value in text
		{"logfmt", "user=bob password=hunter2 ok=true", "user=bob password=" + R + " ok=true", 1},
		{"dsn", "host=db user=app password=hunter2 sslmode=disable", "host=db user=app password=" + R + " sslmode=disable", 1},
		{"json", `{"user":"bob","password":"p@ss w0rd","token_type":"bearer"}`, `{"user":"bob","password":"` + R + `","token_type":"bearer"}`, 1},
		{"json spaced", `{"client_secret" : "abc", "n": 1}`, `{"client_secret" : "` + R + `", "n": 1}`, 1},
		{"json escaped quote", `{"password":"a\"b","x":1}`, `{"password":"` + R + `","x":1}`, 1},
		{"json number", `{"pin":1,"otp":123456}`, `{"pin":1,"otp":` + R + `}`, 1},
		{"json object", `{"credentials":{"user":"u","pw":"p"},"x":1}`, `{"credentials":` + R + `,"x":1}`, 1},
		{"escaped json", `body: {\"access_token\":\"abc\",\"expires_in\":3600}`, `body: {\"access_token\":\"` + R + `\",\"expires_in\":3600}`, 1},
		{"yaml", "password: hunter2\nuser: bob", "password: " + R + "\nuser: bob", 1},
		{"quoted value", "token='abc def' next", "token='" + R + "' next", 1},
		{"header in json", `{"Authorization":"Bearer abc"}`, `{"Authorization":"Bearer ` + R + `"}`, 1},
		{"empty value", "password=&next=1", "password=&next=1", 0},
		{"spaced", "password = hunter2", "password = " + R, 1},
		{"set-cookie", "Set-Cookie: sid=abc123; Path=/", "Set-Cookie: " + R + "; Path=/", 1},
		// in prose, mid-line, a value is one word (the rest of the line is
		// ordinary text: login failed, password: too short, user=bob)
		{"prose", "invalid password: too short", "invalid password: " + R + " short", 1},
		{"prose, go error", "oauth2: cannot fetch token: 401 Unauthorized", "oauth2: cannot fetch token: " + R + " Unauthorized", 1},
		{"curl -u with an e-mail address", "curl -u me@example.com:APITOKEN1 https://x.atlassian.net", "curl -u me@example.com:" + R + " https://x.atlassian.net", 1},
		{"curl --user quoted, domain user", `curl --user 'CORP\bob:pw-SECRET-2' https://x`, `curl --user 'CORP\bob:` + R + `' https://x`, 1},
		{"curl --user= with an e-mail address", "curl --user=me@example.com:T0KEN3 x", "curl --user=me@example.com:" + R + " x", 1},
		{"mysql dsn, a / in the password", "app:Xy/Zq+w9Kq==@tcp(db:3306)/x", "app:" + R + "@tcp(db:3306)/x", 1},
		{"docker -u uid:gid", "docker run -u 1000:1000 img", "docker run -u 1000:1000 img", 0},
		{"prose, build log", "lint pass: ok (3 warnings)", "lint pass: " + R + " (3 warnings)", 1},
		{"prose, logfmt after", "login failed, password: tooshort user=bob id=42", "login failed, password: " + R + " user=bob id=42", 1},

		// header and YAML lines: the value runs to the end of the line
		{"negotiate", "Authorization: Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnagMDAu", "Authorization: Negotiate " + R, 1},
		{"okta ssws", "Authorization: SSWS 00QCjAl4MlV-WPXM-" + S, "Authorization: SSWS " + R, 1},
		{"discord bot", "Authorization: Bot MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs", "Authorization: Bot " + R, 1},
		{"apikey scheme", "authorization: ApiKey " + S, "authorization: ApiKey " + R, 1},
		{"digest", `Authorization: Digest username="u", realm="r", nonce="n", response="` + S + `"`, "Authorization: Digest " + R, 1},
		{"bearer after a tab", "Authorization: Bearer\t" + S, "Authorization: Bearer\t" + R, 1},
		{"unknown scheme", "Authorization: Custom " + S, "Authorization: " + R, 1},
		{"header line inside a quoted value", `token:" pw: Digest username="u", response="` + S + `" ok`, `token:"` + R, 1},
		{"header lines inside a quoted value", `token:" a: b pw: c pw: d"e` + "\n" + `pw: f`, `token:"` + R + `"e` + "\n" + `pw: ` + R, 2},
		{"hash key inside a quoted value", `token:" {:pw => "` + S + `"} ok`, `token:"` + R + `"` + R + `"} ok`, 2},
		{"values that start inside a quoted value", `token:" pw=` + S + ` pw: [a b] ok"`, `token:"` + R + `"`, 1},
		{"digest after an unclosed quote", `he said "hi Authorization: Digest username="u", response="` + S + `" ok`, `he said "hi Authorization: Digest ` + R + ` ok`, 1},
		{"header lines", "GET / HTTP/1.1\r\nAuthorization: Negotiate " + S + " \r\nHost: x\r\n", "GET / HTTP/1.1\r\nAuthorization: Negotiate " + R + " \r\nHost: x\r\n", 1},
		{"curl header, single quotes", "curl -H 'Authorization: Negotiate YIIG " + S + "' https://x/", "curl -H 'Authorization: Negotiate " + R + "' https://x/", 1},
		{"curl header, double quotes", `curl -H "X-Api-Key: abc def" -d x`, `curl -H "X-Api-Key: ` + R + `" -d x`, 1},
		{"header line in a json string", `{"msg":"Password: correct horse","code":1}`, `{"msg":"Password: ` + R + `","code":1}`, 1},
		{"prose in a json string", `{"msg":"bad password: correct horse","code":1}`, `{"msg":"bad password: ` + R + ` horse","code":1}`, 1},
		{"header line in escaped json", `{\"h\":\"Authorization: Negotiate abc ` + S + `\"}`, `{\"h\":\"Authorization: Negotiate ` + R + `\"}`, 1},
		{"header line in escaped text", `"Authorization: Negotiate abc\r\nHost: x"`, `"Authorization: Negotiate ` + R + `\r\nHost: x"`, 1},
		{"header line in a logfmt value", `msg="password: correct horse" user=bob`, `msg="password: ` + R + `" user=bob`, 1},
		{"quotes closed before the key", `a="x" password: correct horse "battery"`, `a="x" password: ` + R, 1},
		{"passphrase", "password: correct horse battery staple", "password: " + R, 1},
		{"passphrase, trailing spaces, next line", "password: correct horse  \nuser: bob", "password: " + R + "  \nuser: bob", 1},
		{"api key header with a space", "X-Api-Key: abc def", "X-Api-Key: " + R, 1},
		{"cookies", "Cookie: theme=dark; sid=" + S, "Cookie: " + R, 1},
		{"ini line", "db_password = correct horse", "db_password = " + R, 1},
		{"quoted yaml value", `password: "a b" # c`, `password: "` + R + `" # c`, 1},
		{"yaml single quotes doubled", "password: 'it''s " + S + "' # c", "password: '" + R + "' # c", 1},
		{"yaml single quotes, empty then more", "{'password': '', 'user': 'bob'}", "{'password': '', 'user': 'bob'}", 0},

		// YAML values on the lines below their key: a block scalar's lines,
		// a value or a mapping indented under it
		{"yaml literal block", "password: |\n  " + S + "\n  line two\n\n  after a blank\nuser: bob",
			"password: |\n  " + R + "\nuser: bob", 1},
		{"yaml folded block, chomping", "password: >-\n  " + S + "\nuser: bob", "password: >-\n  " + R + "\nuser: bob", 1},
		{"yaml block, indentation digit and comment", "password: |2+ # hers\n   " + S + "\n", "password: |2+ # hers\n   " + R + "\n", 1},
		{"yaml block, nested mapping", "db:\n  password: |\n    " + S + "\n  user: bob", "db:\n  password: |\n    " + R + "\n  user: bob", 1},
		{"yaml block in a list", "- password: >\n    " + S + "\n- user: bob", "- password: >\n    " + R + "\n- user: bob", 1},
		{"yaml block, CR LF", "password: |\r\n  " + S + "\r\nuser: bob", "password: |\r\n  " + R + "\r\nuser: bob", 1},
		{"yaml block in a json string", `{"msg":"password: |\n  ` + S + `\nuser: bob","n":1}`, `{"msg":"password: |\n  ` + R + `\nuser: bob","n":1}`, 1},
		{"yaml block to the closing quote", `msg="password: |` + "\n  " + S + `" user=bob`, `msg="password: |` + "\n  " + R + `" user=bob`, 1},
		{"yaml block, nothing under it", "password: |\nuser: bob", "password: " + R + "\nuser: bob", 1},
		{"yaml value on the next line", "password:\n  " + S + "\nuser: bob", "password:\n  " + R + "\nuser: bob", 1},
		{"yaml mapping under a secret key", "credentials:\n  user: bob\n  password: x\nlevel: 3", "credentials:\n  " + R + "\nlevel: 3", 1},
		{"yaml value on the next line, escaped", `"password:\n  ` + S + `\nuser: bob"`, `"password:\n  ` + R + `\nuser: bob"`, 1},
		{"yaml list item line", "- password: correct horse\n- user: bob", "- password: " + R + "\n- user: bob", 1},
		{"yaml, nothing below", "password:\nuser: bob\ntoken:\n\nx: 1\nauth:", "password:\nuser: bob\ntoken:\n\nx: 1\nauth:", 0},
		{"yaml blocks, names of secrets", "password_policy: |\n  at least 12\ntoken_type:\n  bearer", "password_policy: |\n  at least 12\ntoken_type:\n  bearer", 0},
		{"mid-line key, then an indented line", "login failed, password:\n  try again", "login failed, password:\n  try again", 0},
		{"header lines, names of secrets", "token_type: bearer access\npassword_policy: at least 12 chars\nContent-Type: text/plain; charset=utf-8",
			"token_type: bearer access\npassword_policy: at least 12 chars\nContent-Type: text/plain; charset=utf-8", 0},
		{"json values stay as they were", `{"password": 123, "n": 1} {"token": "x y", "n": 2}`, `{"password": ` + R + `, "n": 1} {"token": "` + R + `", "n": 2}`, 2},

		// an auth scheme in key=value text: its credentials
		{"scheme in key=value", "Authorization=Negotiate " + S + " user=bob", "Authorization=Negotiate " + R + " user=bob", 1},
		{"scheme after a colon", "Authorization:NTLM " + S + " user=bob", "Authorization:NTLM " + R + " user=bob", 1},
		{"digest in key=value", `authorization=Digest username="u", response="` + S + `" user=bob`, "authorization=Digest " + R + " user=bob", 1},
		{"aws4 in key=value", "Authorization=AWS4-HMAC-SHA256 Credential=" + testAWS + "/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=" + S + " next",
			"Authorization=AWS4-HMAC-SHA256 " + R + " next", 1},
		{"padded token in key=value", "auth=Bot " + S + "== next", "auth=Bot " + R + " next", 1},
		{"unknown scheme in key=value", "Authorization=Custom " + S, "Authorization=" + R + " " + S, 1},

		// Go MySQL driver DSNs
		{"mysql dsn tcp", "app:" + S + "@tcp(db:3306)/app?parseTime=true", "app:" + R + "@tcp(db:3306)/app?parseTime=true", 1},
		{"mysql dsn unix", "root:" + S + "@unix(/tmp/mysql.sock)/db", "root:" + R + "@unix(/tmp/mysql.sock)/db", 1},
		{"mysql dsn tcp6, @ in the password", "dsn=app:p@ss" + S + "@tcp6([::1]:3306)/x", "dsn=app:" + R + "@tcp6([::1]:3306)/x", 1},
		{"mysql dsn, no address", "root:" + S + "@/db", "root:" + R + "@/db", 1},
		{"dsn, a dialer of the program's", "app:" + S + "@cloudsql(proj:region:db)/app", "app:" + R + "@cloudsql(proj:region:db)/app", 1},
		{"dsn, a dialer and a bare host", "app:" + S + "@mynet(dbhost)/app", "app:" + R + "@mynet(dbhost)/app", 1},
		{"not dsns, prose with @ and parens", "note:bob@example(home) at 10:30@home(x) re:a@b(c) d", "note:bob@example(home) at 10:30@home(x) re:a@b(c) d", 0},
		{"not dsns", "git@github.com:org/repo.git mail bob@example.com (tcp) user@tcp(db) a:b@c d", "git@github.com:org/repo.git mail bob@example.com (tcp) user@tcp(db) a:b@c d", 0},

		// curl's -u user:password
		{"curl -u", "curl -u admin:" + S + " https://x/", "curl -u admin:" + R + " https://x/", 1},
		{"curl --user", "curl --user admin:" + S + " https://x/", "curl --user admin:" + R + " https://x/", 1},
		{"curl --user=", "curl --user=admin:" + S, "curl --user=admin:" + R, 1},
		{"curl -u quoted", "curl -u 'admin:a b" + S + "' https://x/", "curl -u 'admin:" + R + "' https://x/", 1},
		{"curl -u attached", "curl -uadmin:" + S, "curl -uadmin:" + R, 1},
		{"curl --proxy-user, no user", `sh -c "curl --proxy-user :` + S + `"`, `sh -c "curl --proxy-user :` + R + `"`, 1},
		{"not curl -u", "at 12:30 sort -k 1:2 --users a:b -user c:d x-u e:f", "at 12:30 sort -k 1:2 --users a:b -user c:d x-u e:f", 0},

		// command-line flags and the next argument
		{"flag", "run --password " + S + " --verbose", "run --password " + R + " --verbose", 1},
		{"flag api-key", "--api-key " + S, "--api-key " + R, 1},
		{"go flag", "cmd -password " + S + " -v", "cmd -password " + R + " -v", 1},
		{"flag with =", "cmd --token=" + S + " -v", "cmd --token=" + R + " -v", 1},
		{"flag, quoted value", "cmd --password 'a b " + S + "' x", "cmd --password '" + R + "' x", 1},
		{"flags as %q prints them", `["cmd" "--password" "` + S + `"]`, `["cmd" "--password" "` + R + `"]`, 1},
		{"flags in a json array", `["cmd", "--client-secret", "` + S + `"]`, `["cmd", "--client-secret", "` + R + `"]`, 1},
		{"flags in compact json", `["cmd","--token","` + S + `"]`, `["cmd","--token","` + R + `"]`, 1},
		{"flag in a quoted command", `sh -c "app -pw ` + S + `"`, `sh -c "app -pw ` + R + `"`, 1},
		{"flag first in brackets", "[--password " + S + " --verbose]", "[--password " + R + " --verbose]", 1},
		{"flag first in brackets, value last", "[-token " + S + "]", "[-token " + R, 1}, // the ] may be the password's: it goes too
		{"flag in parens", "(--api-key " + S + " -v)", "(--api-key " + R + " -v)", 1},
		{"flag with = in parens", "(--password=" + S + ")", "(--password=" + R, 1},
		{"flags in a pretty-printed json array", "[\n  \"app\",\n  \"--password\",\n  \"" + S + "\"\n]", "[\n  \"app\",\n  \"--password\",\n  \"" + R + "\"\n]", 1},
		{"flags in an escaped json array", `{"args":"[\"--token\", \"` + S + `\"]"}`, `{"args":"[\"--token\", \"` + R + `\"]"}`, 1},
		{"flags in an escaped pretty-printed json array", `{"args":"[\n  \"--token\",\n  \"` + S + `\"\n]"}`, `{"args":"[\n  \"--token\",\n  \"` + R + `\"\n]"}`, 1},
		{"flag, line continuation", "app --password \\\n    " + S + " --verbose", "app --password \\\n    " + R + " --verbose", 1},
		{"flags in brackets, names of secrets", "a[-password] (-token) [--verbose x] [--password --verbose] [--no-color]",
			"a[-password] (-token) [--verbose x] [--password --verbose] [--no-color]", 0},
		{"flags in a yaml list", "args:\n  - --password\n  - " + S + "\n  - --verbose", "args:\n  - --password\n  - " + R + "\n  - --verbose", 1},
		{"flags in a yaml list, quoted", "args:\n- \"--token\"\n- \"" + S + "\"", "args:\n- \"--token\"\n- \"" + R + "\"", 1},
		{"flags in a yaml list, names of secrets", "args:\n  - --password\n  - --verbose\n  - --token\nnext: 1", "args:\n  - --password\n  - --verbose\n  - --token\nnext: 1", 0},
		{"switch flags", "app --no-password start --ask-pass deploy -skip_auth now --prompt-password x --disable-token y --password " + S,
			"app --no-password start --ask-pass deploy -skip_auth now --prompt-password x --disable-token y --password " + R, 1},
		{"flags, names of secrets", "a-password b --password --verbose --password-file /etc/pw --no-color x -token --token-type bearer",
			"a-password b --password --verbose --password-file /etc/pw --no-color x -token --token-type bearer", 0},

		// backticks
		{"backtick value", "secret=`" + S + "` next", "secret=`" + R + "` next", 1},
		{"backtick yaml value", "token: `a b` next", "token: `" + R + "` next", 1},

		// hash rockets
		{"ruby hash", `{"password"=>"` + S + `", "user"=>"bob"}`, `{"password"=>"` + R + `", "user"=>"bob"}`, 1},
		{"php array", `['api_key' => '` + S + `', 'n' => 1]`, `['api_key' => '` + R + `', 'n' => 1]`, 1},
		{"ruby symbol", `{:password => "` + S + `"}`, `{:password => "` + R + `"}`, 1},
		{"ruby number", `{:otp=>123456}`, `{:otp=>` + R + `}`, 1},
		{"perl hash", `(password => 'x1', user => 'bob')`, `(password => '` + R + `', user => 'bob')`, 1},
		{"ruby symbol, value on the next line", ":password =>\n  \"" + S + "\",\n:user => 'bob'", ":password =>\n  \"" + R + "\",\n:user => 'bob'", 1},
		{"php array, value on the next line", "'api_key' =>\r\n\t'" + S + "'", "'api_key' =>\r\n\t'" + R + "'", 1},
		{"json, value on the next line", "{\"password\":\n  \"" + S + "\", \"n\": 1}", "{\"password\":\n  \"" + R + "\", \"n\": 1}", 1},
		{"go short variable declaration", `password := "` + S + `"; n := 1`, `password := "` + R + `"; n := 1`, 1},
		{"triple quotes", `password = """a "b" ` + S + `""" user = '''x'''`, `password = """` + R + `""" user = '''x'''`, 1},
		{"triple single quotes", "token: '''" + S + "'''", "token: '''" + R + "'''", 1},
		{"backticked key", "UPDATE users SET `password` = '" + S + "' WHERE id = 1", "UPDATE users SET `password` = '" + R + "' WHERE id = 1", 1},
		{"backticked key, colon", "`password`: " + S + " next", "`password`: " + R + " next", 1},
		{"backticked keys, names of secrets", "`token_type`: bearer, `password_policy` = 'strict', `pw`", "`token_type`: bearer, `password_policy` = 'strict', `pw`", 0},
		{"quoted key, a key on the next line", "{\"token\":\npassword: |\n  " + S + "\n", "{\"token\":\npassword: |\n  " + R + "\n", 1},
		{"short variable declaration, nothing after it", "token :=\npassword: |\n  " + S, "token :=\npassword: |\n  " + R, 1},
		{"unquoted key, nothing after it", "password=\nbob token =\n x", "password=\nbob token =\n x", 0},
		{"hashes, names of secrets", `{"token_type"=>"bearer", :password_policy => "strict", x => y}`, `{"token_type"=>"bearer", :password_policy => "strict", x => y}`, 0},

		// SQL password literals
		{"identified by", "CREATE USER 'app'@'%' IDENTIFIED BY '" + S + "';", "CREATE USER 'app'@'%' IDENTIFIED BY '" + R + "';", 1},
		{"identified with plugin by", "create user app identified with caching_sha2_password by '" + S + "'", "create user app identified with caching_sha2_password by '" + R + "'", 1},
		{"with password", "CREATE ROLE app WITH LOGIN PASSWORD '" + S + "'", "CREATE ROLE app WITH LOGIN PASSWORD '" + R + "'", 1},
		{"alter role password", "ALTER ROLE app PASSWORD '" + S + "' VALID UNTIL '2030-01-01'", "ALTER ROLE app PASSWORD '" + R + "' VALID UNTIL '2030-01-01'", 1},
		{"doubled quote", "alter user bob password 'it''s " + S + "'", "alter user bob password '" + R + "'", 1},
		{"identified by, two spaces", "CREATE USER app IDENTIFIED BY  '" + S + "';", "CREATE USER app IDENTIFIED BY  '" + R + "';", 1},
		{"password, line break", "ALTER ROLE app PASSWORD\n'" + S + "'", "ALTER ROLE app PASSWORD\n'" + R + "'", 1},
		{"identified by, line breaks", "CREATE USER app\n  IDENTIFIED\n  BY\n  '" + S + "'", "CREATE USER app\n  IDENTIFIED\n  BY\n  '" + R + "'", 1},
		{"set password for", "SET PASSWORD FOR 'bob'@'%' = '" + S + "';", "SET PASSWORD FOR 'bob'@'%' = '" + R + "';", 1},
		{"set password for, function", "SET PASSWORD FOR 'bob'@'%' = PASSWORD('" + S + "');", "SET PASSWORD FOR 'bob'@'%' = PASSWORD('" + R + "');", 1},
		{"set password", "set password = PASSWORD('" + S + "')", "set password = PASSWORD('" + R + "')", 1},
		{"set password for, no spaces", "SET PASSWORD FOR 'bob'@'localhost'=\"" + S + "\"", "SET PASSWORD FOR 'bob'@'localhost'=\"" + R + "\"", 1},
		{"password function", "SELECT PASSWORD('" + S + "')", "SELECT PASSWORD('" + R + "')", 1},
		{"oracle, bare word", "ALTER USER bob IDENTIFIED BY " + S + ";", "ALTER USER bob IDENTIFIED BY " + R + ";", 1},
		{"oracle grant, bare word", "grant connect to bob identified by " + S, "grant connect to bob identified by " + R, 1},
		{"prose, identified by a quoted id", `Resource identified by "req-123" not found`, `Resource identified by "req-123" not found`, 0},
		{"identified by, double quotes, user and host", `CREATE USER 'app'@'%' IDENTIFIED BY "` + S + `";`, `CREATE USER 'app'@'%' IDENTIFIED BY "` + R + `";`, 1},
		{"identified by, double quotes", `CREATE USER bob IDENTIFIED BY "it""s ` + S + `"`, `CREATE USER bob IDENTIFIED BY "` + R + `"`, 1},
		{"replace clause", "ALTER USER bob IDENTIFIED BY '" + S + "' REPLACE 'old1';", "ALTER USER bob IDENTIFIED BY '" + R + "';", 1},
		{"identified by values", "CREATE USER bob IDENTIFIED BY VALUES 'S:" + S + "'", "CREATE USER bob IDENTIFIED BY VALUES '" + R + "'", 1},
		{"identified by password", "CREATE USER bob IDENTIFIED BY PASSWORD '*" + S + "'", "CREATE USER bob IDENTIFIED BY PASSWORD '" + R + "'", 1},
		{"postgres escape string", "ALTER ROLE app PASSWORD E'it\\'s " + S + "'", "ALTER ROLE app PASSWORD E'" + R + "'", 1},
		{"postgres dollar quotes", "ALTER ROLE app PASSWORD $$" + S + "$$ VALID UNTIL 'x'", "ALTER ROLE app PASSWORD $$" + R + "$$ VALID UNTIL 'x'", 1},
		{"postgres tagged dollar quotes", "CREATE ROLE app LOGIN PASSWORD $pw$a$b " + S + "$pw$;", "CREATE ROLE app LOGIN PASSWORD $pw$" + R + "$pw$;", 1},
		{"sql password after a quoted value", `token:" CREATE USER app IDENTIFIED BY "` + S + `"`, `token:"` + R + `"` + R + `"`, 2},
		{"set password after a quoted value", `token:" SET PASSWORD FOR app = "` + S + `"`, `token:"` + R + `"` + R + `"`, 2},
		{"flag after a header line", "token: app --password \\\n  " + S, "token: " + R + "\n  " + R, 2},
		// a quoted word after "password" in prose may be a password: kept out
		{"prose, quoted word after password", "the password 'abc' was rejected", "the password '" + R + "' was rejected", 1},
		{"sql, not passwords", "the request was identified by its id; IDENTIFIED BY RANDOM PASSWORD; cd $HOME; costs $5; caused by  'x'; sorted by\n'y'; PASSWORD $1; set x = 'y'; password for bob = 'z'; password $6$salt$",
			"the request was identified by its id; IDENTIFIED BY RANDOM PASSWORD; cd $HOME; costs $5; caused by  'x'; sorted by\n'y'; PASSWORD $1; set x = 'y'; password for bob = 'z'; password $6$salt$", 0},
		{"sql, no passwords", "ORDER BY 'name'; sorted by 'date'; db_password 'x'; PASSWORD ''; said 'hi'; password_policy 'strict'",
			"ORDER BY 'name'; sorted by 'date'; db_password 'x'; PASSWORD ''; said 'hi'; password_policy 'strict'", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, n := Default().String(tc.in)
			if got != tc.want || n != tc.n {
				t.Errorf("String(%q)\n got %q, %d\nwant %q, %d", tc.in, got, n, tc.want, tc.n)
			}
			// Redacting twice changes and counts nothing.
			if again, n2 := Default().String(got); again != got || n2 != 0 {
				t.Errorf("second pass: %q, %d", again, n2)
			}
			if Default().hasSecret(tc.in) != (tc.n > 0) {
				t.Errorf("hasSecret(%q) = %v", tc.in, !(tc.n > 0))
			}
		})
	}
}

// pctEncode percent-encodes every byte of s.
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// TestTextKeyLongEncoded: a percent-encoded key is bounded by its decoded
// length, and the scan back over a very long one neither panics nor takes
// the remains of a cut escape for part of the key.
func TestTextKeyLongEncoded(t *testing.T) {
	r := Default()
	for _, tc := range []struct {
		key    string
		secret bool
	}{
		{pctEncode(strings.Repeat("x", 100) + "_pass"), true},
		{pctEncode(strings.Repeat("x", 100) + "_pass_confirmation_value"), true},
		{pctEncode(strings.Repeat("_", 80) + "pass"), true},
		{strings.Repeat("%5F", 70) + "pass", true},
		{strings.Repeat("%5", 70) + "pass", false}, // …%5pass: an invalid escape, kept
		{strings.Repeat("x", 200) + "%5Fpass", true},
		{strings.Repeat("%", 300) + "pw", true},
		{strings.Repeat("%41", 80) + "pass", false}, // AAA…Apass: one word
		{pctEncode(strings.Repeat("x", 100) + "_pass_count"), false},
		{strings.Repeat("%", 300), false},
	} {
		in := "?" + tc.key + "=S3CR3T&n=1"
		got, n := r.String(in)
		if (n == 1) != tc.secret || tc.secret && strings.Contains(got, "S3CR3T") || !strings.HasSuffix(got, "&n=1") {
			t.Errorf("String(%.40q…) = …%q, %d; want secret %v", in, got[max(0, len(got)-30):], n, tc.secret)
		}
	}
}

func TestStringFingerprint(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	r, err := New(Options{Mode: Fingerprint, FingerprintKey: key})
	if err != nil {
		t.Fatal(err)
	}
	got, n := r.String("a " + testGHP + " b https://u:hunter2@h/ c")
	want := "a " + FingerprintOf(key, testGHP) + " b https://u:" + FingerprintOf(key, "hunter2") + "@h/ c"
	if got != want || n != 2 {
		t.Errorf("got %q, %d; want %q, 2", got, n, want)
	}
	if again, n := r.String(got); again != got || n != 0 {
		t.Errorf("second pass changed %q to %q (%d)", got, again, n)
	}
	// Same secret, same fingerprint, wherever it is.
	a, _ := r.String("password=hunter2")
	if !strings.HasSuffix(a, FingerprintOf(key, "hunter2")) {
		t.Errorf("fingerprint of query value: %q", a)
	}
}

func TestFingerprintOf(t *testing.T) {
	// HMAC-SHA-256("key", "The quick brown fox jumps over the lazy dog") is
	// f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8.
	got := FingerprintOf([]byte("key"), "The quick brown fox jumps over the lazy dog")
	if want := "hmac-sha256:f7bc83f430538424"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestStringUserPatterns(t *testing.T) {
	r, err := New(Options{Patterns: []Pattern{
		{Literal: "sk_live_", Regexp: regexp.MustCompile(`sk_live_[0-9a-zA-Z]{10,}`)},
		{Literal: "pin ", Regexp: regexp.MustCompile(`pin (?P<secret>\d{4})\b`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, n := r.String("charge with sk_live_abcdef0123456 and pin 1234 ok")
	if want := "charge with " + Redacted + " and pin " + Redacted + " ok"; got != want || n != 2 {
		t.Errorf("got %q, %d; want %q, 2", got, n, want)
	}
	if got, n := r.String("no literal here: sk_test_abcdef0123456"); n != 0 || !strings.Contains(got, "sk_test_") {
		t.Errorf("got %q, %d", got, n)
	}
	if out, _ := r.Attr(slog.String("note", "sk_live_abcdef0123456")); out.Value.String() != Redacted {
		t.Errorf("user pattern not applied to attribute values: %v", out)
	}
}

func TestStringNoAlloc(t *testing.T) {
	r := Default()
	texts := []string{
		"request handled", "GET /api/v1/users?page=2&limit=50 200 OK",
		"user-123 logged in at 2024-01-02T03:04:05Z from 10.0.0.1:5432",
		"token_type=bearer key_id=abc", "https://example.com/path", "",
	}
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under -race")
	}
	if n := testing.AllocsPerRun(20, func() {
		for _, s := range texts {
			if _, k := r.String(s); k != 0 {
				panic(s)
			}
		}
	}); n != 0 {
		t.Errorf("String allocates %v times on clean text", n)
	}
}

// TestStringOverlap: a secret that starts inside another one's replaced
// span and runs past it is still found.
func TestStringOverlap(t *testing.T) {
	for _, in := range []string{
		"Bearer -----BEGIN EC PRIVATE KEY-----\n" + testPEMBody + "\n-----END EC PRIVATE KEY-----",
		"token=-----BEGIN RSA PRIVATE KEY-----\n" + testPEMBody + "\n-----END RSA PRIVATE KEY-----",
		"password=x" + testGHP,
		`token:" <input value="SECRET45" class="f" type="password"/> token:"`,
	} {
		got, _ := Default().String(in)
		checkOutput(t, got, []string{"MIIEowIBAAKCAQEA", "16C7e42F292c6912E7710c838347Ae178B4a", "SECRET45"}, nil)
	}
}

// TestStringLinear: hostile text cannot make the scan quadratic.
func TestStringLinear(t *testing.T) {
	for _, unit := range []string{
		"-----BEGIN RSA PRIVATE KEY-----", "a@", `password="`, "password=", "Bearer ", "{\"token\":[",
		"eyJ", "ghp_", "AKIA", "xoxb-", "https://u:p@", ":", "=", "github_pat_", "eyJaaaaaaaaaaa.",
		"Basic dXNlcjpwYXNz ", `"password":{`, `\"token\":\"`, "token='", "-", "_", "AKIAAAAAAAAAAAAAAAAA ",
		"ghp_aaaaaaaaaaaaaaaaaaaaaaaaaa", "//a@", "Bearer pw={", `bearer pw="`, "Bearer pass%77ord=[", "%5F",
		"%70%77=", "a+", "<input a=", `<input a="x" b="`, `<input type=password value="`, "Set-Cookie: ", "\nSet-Cookie: a", "a/@tcp(", "x a:b/@tcp(",
		"password: ", `"password: `, `a"password: x `, "password: x\n", "@", "a:b@tcp(", "a@tcp(", "--password ", "--password x ",
		"-u a:", "-u :", "PASSWORD '", "IDENTIFIED BY '", "by '", `"password"=>`, "password => ", "Authorization=Digest a=b, ",
		"token: Digest a=\"", "token=`", `{:pw => "`, "pw=>", `token:"pw: [`, `token:"pw=pw=`,
		`pw: a "pw: b `, "pw: a 'pw: b \"pw: c `pw: d ", "https://u:xPw%3Dy@",
		"password: |\n", "password: |\n ", "password:\n ", "pw:\n\n", "- pw: >\n  x\n", `pw: |\n `, "pw: '''x", "pw='a''", `"pw: |\n `,
		"[--password ", "(-pw ", "[\n \"--password\",\n ", `[\"--token\",\n `, "--password \\\n", "[-password]",
		"IDENTIFIED BY ", "create user u identified by x ", "PASSWORD $$", "PASSWORD $a", "PASSWORD $a$", "PASSWORD E'", "PASSWORD('", "PASSWORD  '",
		"SET PASSWORD = ", "SET PASSWORD FOR u = ", "= ", "a = ", " $", "by  ", "by 'x' REPLACE ", "IDENTIFIED BY 'a' REPLACE ", "ed by ",
		`token:" IDENTIFIED BY '`, `token:" x IDENTIFIED BY "`, `token:" SET PASSWORD FOR u = "`, `token:" --pw `, "token: a --pw \\\n",
		":pw =>\n", "\"pw\":\n\n", "`pw`: ", "`pw` = '", "`a`: ",
		`<a b=">`, `<a b="x">`, `">`, "<p name=pw value=", `<a name="pw" value="x"/>`, `<entry key="pw">`, "<![CDATA[", "<!--", "<pw><![CDATA[", "</pw>]]>",
		"<pw><!--", "-->", `<a b='`, "/>", `<pw a=">`, "<a name=pw>",
		"- --pw\n", "- --pw\n - ", "- \"--pw\"\n- ", "pw := ", `pw = """`, "pw='''", `<pw value="`, "<pw value=x/>",
		"--no-pw ", "a:b@x(", "@x(a", "a:b@x(y)", "a:b@x(y.",
		"<!--<pw>-->", "<![CDATA[<pw>]]>", "<![CDATA[<pw></pw>]]>", "<!--<a><pw>", "<pw><!--</pw>-->",
		"pw: !a |\n", "pw: # c\n ", "pw: &a !b ", `CREATE USER u IDENTIFIED BY \"`, `user u\nidentified by\n'`, `\n'`, `PASSWORD\t'`, `\n\n\n`, `by\n`, `u\nBY `,
	} {
		s := strings.Repeat(unit, 200000/len(unit))
		start := time.Now()
		Default().String(s)
		Default().hasSecret(s)
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%q repeated: %v", unit, d)
		}
	}
}

// nextRef is next byte by byte: the first trigger at or after i that is a
// candidate.
func nextRef(s string, i int) int {
	for ; i < len(s); i++ {
		if info[s[i]]&infoTrigger != 0 && candidate(s, i) {
			return i
		}
	}
	return len(s)
}

func checkNext(t *testing.T, s string) {
	t.Helper()
	for i := 0; i <= len(s); i++ {
		if got, want := next(s, i), nextRef(s, i); got != want {
			t.Fatalf("next(%q, %d) = %d, want %d", s, i, got, want)
		}
	}
}

// TestNext: the eight-byte steps of next find what a byte-by-byte scan
// finds, at every length and offset.
func TestNext(t *testing.T) {
	const alpha = "xbe-_=:@AKJy tg%3D5>\"<'d$(E\n[\\n"
	for n := range 20 {
		for k := range 200 {
			b := make([]byte, n)
			for j := range b {
				b[j] = alpha[(k*7+j*j*3+j*k)%len(alpha)]
			}
			checkNext(t, string(b))
		}
	}
	for _, s := range []string{"obsidian_api_key", "u-123", "request handled", "a=b", "-----BEGIN", "xoxb-1", "ghp_x", "eyJhb", "a%3Db", "a%253D", "<a b=\"c\">", "<x>", "<input a=b>", "<IN", "<in x"} {
		checkNext(t, s)
		checkNext(t, s+s+s)
	}
}

func FuzzNext(f *testing.F) {
	for _, s := range []string{"", "obsidian_api_key", "u-123", "GET /a?b=c&token=x", "Bearer abc", "https://u:p@h", "-----BEGIN RSA", "xoxb-", "ghp_", "eyJ.eyJ"} {
		f.Add(s)
	}
	f.Fuzz(checkNext)
}

// BenchmarkStringTagShapes is BenchmarkStringShapes for markup: 64 KiB of
// start and end tags built to make the matching of an element's end tag
// rescan (start tags that never close, a deep nesting, elements open
// around many others) and input tags, against ordinary markup. Each should
// cost about as much per byte as the others; one that rescans shows as a
// shape orders of magnitude slower.
func BenchmarkStringTagShapes(b *testing.B) {
	const size = 64 << 10
	repeat := func(unit string) string { return strings.Repeat(unit, size/len(unit)+1)[:size] }
	half := func(open, close string) string {
		n := size / 2 / len(open)
		return strings.Repeat(open, n) + strings.Repeat(close, n)
	}
	for _, sh := range []struct{ name, text string }{
		{"markup", repeat(`<li class="item"><a href="/u/42">bob</a> logged in</li>`)},
		{"nested-tags", repeat("<password><password>a</password>b</password>")},
		{"nested-starts", repeat("<password>")},
		{"nested-open", repeat("<token><token></token>")},
		{"nested-deep", half("<password>", "</password>")},
		{"nested-deep-other-case", half("<ns:Token a=1>", "</TOKEN>")},
		{"input-tags", repeat(`<input type="password" name="pw" value="x1"><input name="user" value="bob">`)},
		{"input-quotes", repeat(`<input a="<input b='`)},
		{"input-values", "<input " + repeat(` value="a" type="password"`)},
		{"quoted-gt", repeat(`<p a=">" b='/>'>x</p>`)},
		{"quoted-gt-open", repeat(`">`)},
		{"named-values", repeat(`<param name="pw" value="x1"><property key="user" value="bob"/>`)},
		{"named-many", "<add " + repeat(` name="pw" value="x"`)},
		{"cdata", repeat("<pw><![CDATA[</pw>]]><!-- </pw> --></pw>")},
		{"cdata-open", repeat("<pw><![CDATA[<!--")},
	} {
		r := Default()
		b.Run(sh.name, func(b *testing.B) {
			b.SetBytes(int64(len(sh.text)))
			for b.Loop() {
				r.String(sh.text)
			}
		})
	}
}

// sectionsRef finds the CDATA sections and comments of s that end, the
// slow way: from the start, each one that opens where no other is open
// runs to its first terminator. scope[j] is 0 outside them and, for the
// bytes of one, 1 + where it starts; end[id] is where the content of
// scope id ends (the text's end for scope 0).
func sectionsRef(s string) (scope []int, end map[int]int) {
	scope, end = make([]int, len(s)), map[int]int{0: len(s)}
	for j := 0; j < len(s); j++ {
		for _, p := range [][2]string{{"<![CDATA[", "]]>"}, {"<!--", "-->"}} {
			if !strings.HasPrefix(s[j:], p[0]) {
				continue
			}
			if k := strings.Index(s[j+len(p[0]):], p[1]); k >= 0 {
				e := j + len(p[0]) + k + len(p[1])
				for m := j; m < e; m++ {
					scope[m] = j + 1
				}
				end[j+1] = e - len(p[1])
				j = e - 1
			}
			break
		}
	}
	return scope, end
}

// startTagIn is startTag within the scope of s[j] (no tag runs past it).
func startTagIn(s string, scope []int, end map[int]int, j int) (int, string) {
	return startTag(s[:end[scope[j]]], j)
}

// closingRef is the end tag that closes the start tag at s[lt], counted
// the slow way: on from the start tag, depth up at each start tag of the
// same local name in the same scope, down at each end tag of it, the end
// where it is 0; tags in other scopes do not count, but for the last end
// tag of its name, where one never closed ends.
func closingRef(s string, scope []int, end map[int]int, lt int) int {
	gt, local := startTagIn(s, scope, end, lt)
	depth, last := 0, -1
	for j := gt + 1; j < len(s); j++ {
		if s[j] != '<' {
			continue
		}
		name := endTagName(s[:end[scope[j]]], j)
		if scope[j] != scope[lt] {
			if name != "" && strings.EqualFold(name, local) {
				last = j
			}
			continue
		}
		if name != "" && strings.EqualFold(name, local) {
			if depth == 0 {
				return j
			}
			depth--
			last = j
		} else if _, name := startTagIn(s, scope, end, j); name != "" && strings.EqualFold(name, local) {
			depth++
		}
	}
	return last // not closed: the last end tag of its name, if any
}

func checkListTags(t *testing.T, s string) {
	t.Helper()
	scope, end := sectionsRef(s)
	for _, hash := range []func(string) uint64{nameHash, func(string) uint64 { return 1 }} {
		starts := listTags(s, hash)
		k := 0
		for j := 0; j < len(s); j++ {
			if gt, _ := startTagIn(s, scope, end, j); s[j] != '<' || gt < 0 {
				continue
			}
			if k == len(starts) || starts[k].at != j {
				t.Fatalf("listTags(%q): start tag at %d not listed: %v", s, j, starts)
			}
			if got, want := starts[k].end, closingRef(s, scope, end, j); got != want {
				t.Fatalf("listTags(%q): start tag at %d closed at %d, want %d", s, j, got, want)
			}
			k++
		}
		if k != len(starts) {
			t.Fatalf("listTags(%q) = %v: more than the %d start tags", s, starts, k)
		}
	}
	// element takes for a start tag the one that starts at the last <
	// before its >, within maxStartTag: the start tags it takes are the
	// listed ones and those that run past the end of their section (which
	// closing leaves alone).
	listed := make(map[int]bool)
	for _, st := range listTags(s, nameHash) {
		listed[st.at] = true
	}
	elements := 0
	for i := 0; i < len(s); i++ {
		lt := strings.LastIndexByte(s[:i], '<')
		if s[i] != '>' || lt < 0 || i-lt > maxStartTag {
			continue
		}
		if gt, _ := startTag(s, lt); gt != i || i >= end[scope[lt]] {
			continue
		}
		if !listed[lt] {
			t.Fatalf("%q: element takes s[%d:%d] for a start tag, not listed", s, lt, i+1)
		}
		elements++
	}
	if len(listed) != elements {
		t.Fatalf("%q: %d start tags listed, element takes %d", s, len(listed), elements)
	}
}

// TestListTags: the one pass that pairs start and end tags finds, for
// each start tag, the end tag a count of the nesting finds, also when
// every name has the same hash.
func TestListTags(t *testing.T) {
	pieces := []string{"<a>", "</a>", "<A x=1>", "<ns:a>", "</ns:A >", "<b>", "</b>", "<a/>", "<B\t>", "</B>",
		"x", " ", "<", ">", "</a", "<a ", "<:a>", "</:b>", "<a x='>'>", "<b y=\"", "\">", "<![CDATA[", "]]>", "<!--", "-->", "=", "'"}
	for n := range 400 {
		var b strings.Builder
		for j := range 3 + n%12 {
			b.WriteString(pieces[(n*31+j*j*7+j*n)%len(pieces)])
		}
		checkListTags(t, b.String())
	}
	// Start tags about maxStartTag long.
	for n := maxStartTag - 4; n < maxStartTag+2; n++ {
		checkListTags(t, "<a><a"+strings.Repeat(" ", n)+">x</a></a>")
		checkListTags(t, "<a><x:"+strings.Repeat("b", n)+":a>x</a></a>")
	}
}

func FuzzListTags(f *testing.F) {
	for _, s := range []string{"<a><a></a></a>", "<a><b></a></b>", "<x:a>a</A><a/></a >", "<a x='>'></a>", "<a " + strings.Repeat(" ", maxStartTag) + "></a>",
		"<a><![CDATA[</a>]]></a>", "<a><!-- </a> --></a>", "<a><![CDATA[</a>", "<a x=\"/>\">b</a>", "<a x=\"<\">b</a>"} {
		f.Add(s)
	}
	f.Fuzz(checkListTags)
}
