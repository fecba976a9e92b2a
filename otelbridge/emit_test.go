package otelbridge

import (
	"context"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"
	"go.opentelemetry.io/otel/trace"

	"github.com/slogaudit/slogaudit/chain"
)

// emitCorpus is a set of records as the handler passes them to Audit
// (members, with a position) and as lines of the file (whole objects, zero
// position): every kind of value, groups, escapes, repeated keys, trace ids
// present and absent in turn, open and close records, a malformed record, and
// a record with more attributes than the SDK keeps inline.
func emitCorpus() (members [][]byte, pos []chain.Position) {
	var mac [32]byte
	for i := range mac {
		mac[i] = byte(i * 7)
	}
	many := []string{`"msg":"many"`}
	for i := range 60 {
		many = append(many, fmt.Sprintf(`"k%d":%d`, i%50, i))
	}
	bodies := []string{
		`"time":"2026-11-27T01:16:10.123456789Z","level":"INFO","msg":"get credential obsidian_api_key: success","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","principal":"alice","client_addr":"10.0.0.7","event":"credential_access","action":"get","resource_type":"credential","resource":"obsidian_api_key","status":"success"`,
		`"time":"2026-11-27T01:16:10Z","level":"WARN+2","msg":"no trace","a":1`,
		`"level":"DEBUG","msg":"m","trace_id":"0af7651916cd43dd8448eb211c80319d","g":{"a":1,"h":{"b":"x","c":false}},"z":2`,
		`"msg":"m","i":-3,"f":1.5,"e":1e3,"big":18446744073709551615,"zero":0,"t":true,"s":"\u00e9\n\"q\"","n":null,"bad":"` + "\xff" + `"`,
		`"msg":"m","ss":["a","b"],"is":[1,2],"fs":[1,2.5],"bs":[true],"mixed":[1,"a",{"k":[null],"k":2}],"empty":[]`,
		`"msg":"m","a":1,"b":2,"g":{"x":1},"a":3,"g.x":"y","":"empty key","span_id":"b7ad6b7169203332"`,
		`"time":"yesterday","msg":"m","trace_id":"xyz","_seq":1,"_mac":"x","long":"` + strings.Repeat("abcdefghij", 20) + `"`,
		strings.Join(many, ","),
		`"msg":"m",`, // malformed
	}
	for i, b := range bodies {
		members = append(members, []byte(b))
		m := mac
		m[0] = byte(i)
		pos = append(pos, chain.Position{Seq: uint64(10 + i), Chain: m})
	}
	line := func(seq int, body string) string {
		return fmt.Sprintf(`{"seq":%d,"prev":"%s",%s,"mac":"%x"}`, seq, strings.Repeat("0", 64), body, mac)
	}
	for _, l := range []string{
		line(1, `"rec":"open","time":"2026-11-27T01:16:10.123456789Z","v":1,"alg":"sha256","file":"audit-x.jsonl","prev_file":"","host":"h","pid":9`),
		line(2, `"time":"2026-11-27T01:16:10Z","level":"ERROR","msg":"m","trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","a":[1,"x"]`),
		line(3, `"rec":"close","time":"2026-11-27T01:16:10Z","file":"audit-x.jsonl","reason":"size"`),
		`{"seq":4,"msg":"torn`,
	} {
		members = append(members, []byte(l))
		pos = append(pos, chain.Position{})
	}
	return members, pos
}

// The exporter's records (attributes and trace ids set by its processor,
// strings cut from the queue's chunks) are exactly the records of the plain
// way: convert, the attributes in the log.Record, the ids in the context,
// the SDK's Emit, Clone. Also with the SDK's attribute limits set, and after
// every buffer the records came from is overwritten.
func TestEmitEqualsPlainPath(t *testing.T) {
	for _, limits := range []bool{false, true} {
		t.Run(fmt.Sprintf("limits=%v", limits), func(t *testing.T) {
			if limits {
				t.Setenv("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "7")
				t.Setenv("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", "64") // the least New accepts
			}
			res := resource.NewSchemaless()
			popts := []sdklog.LoggerProviderOption{sdklog.WithResource(res), sdklog.WithAllowKeyDuplication()}
			if !limits {
				popts = append(popts, sdklog.WithAttributeCountLimit(-1))
			}
			ref := &capture{}
			logger := sdklog.NewLoggerProvider(append(popts, sdklog.WithProcessor(ref))...).Logger(scopeName)
			now := time.Unix(1700000000, 5)
			members, pos := emitCorpus()
			var want []string
			for i, m := range members {
				p := pos[i]
				if p.Seq == 0 {
					if l, err := chain.ParseLine(m); err == nil {
						p = chain.Position{Seq: l.Seq, Chain: l.MAC} // as the exporter reads a line
					}
				}
				rec, sc, _ := convert(m, p, now)
				logger.Emit(trace.ContextWithSpanContext(context.Background(), sc), rec)
				want = append(want, describe(ref.recs[len(ref.recs)-1]))
			}

			br, err := newBridge(discardExporter{}, res, newConfig([]Option{WithDir(t.TempDir())}))
			if err != nil {
				t.Fatal(err)
			}
			e := &exporter{b: br}
			// Each record twice: from the queue, and as if read back from
			// the file (a buffer reused for the next line).
			var queued []int
			for i, m := range members {
				if pos[i].Seq != 0 {
					br.Audit(m, pos[i])
					queued = append(queued, i)
				}
			}
			e.take()
			if len(e.pending) != len(queued) {
				t.Fatalf("took %d records, want %d", len(e.pending), len(queued))
			}
			for _, p := range e.pending {
				e.emitPending(p, now)
			}
			lineBuf := make([]byte, 0, 4096)
			for i, m := range members {
				p := pos[i]
				if p.Seq == 0 {
					if l, err := chain.ParseLine(m); err == nil {
						p = chain.Position{Seq: l.Seq, Chain: l.MAC}
					}
				}
				lineBuf = append(lineBuf[:0], m...)
				e.emit(lineBuf, p, now)
				clear(lineBuf[:cap(lineBuf)])
			}
			// What Audit copied and take read is reused for the next records.
			clear(e.spare.data[:cap(e.spare.data)])
			for _, m := range members {
				clear(m)
			}

			got := br.proc.batch
			if len(got) != len(queued)+len(members) {
				t.Fatalf("%d records in the batch, want %d", len(got), len(queued)+len(members))
			}
			for j, i := range queued {
				if d := describe(got[j]); d != want[i] {
					t.Errorf("record %d from the queue:\n got %s\nwant %s", i, d, want[i])
				}
			}
			for i := range members {
				if d := describe(got[len(queued)+i]); d != want[i] {
					t.Errorf("record %d from the file:\n got %s\nwant %s", i, d, want[i])
				}
			}
			// The limits took effect (the comparison above covers them).
			if many := want[7]; limits == strings.HasSuffix(many, "dropped=0") {
				t.Errorf("limits %v, record with 61 attributes: %s", limits, many)
			}
			// audit.seq and audit.chain are the first attributes, kept by
			// the count limit, whole under the least length limit New takes.
			if first := want[0]; limits == strings.HasSuffix(first, "dropped=0") || !strings.Contains(first, `attrs=["audit.seq=INT64:`) ||
				!regexp.MustCompile(`"audit.chain=STRING:[0-9a-f]{64}"`).MatchString(first) {
				t.Errorf("limits %v, first record: %s", limits, first)
			}
		})
	}
}

func TestAppendHex32(t *testing.T) {
	var v [32]byte
	for i := range 256 {
		for j := range v {
			v[j] = byte(i + 37*j)
		}
		if got, want := string(appendHex32([]byte("x"), &v)), "x"+hex.EncodeToString(v[:]); got != want {
			t.Fatalf("%s, want %s", got, want)
		}
	}
}
