package otelbridge

import (
	"bytes"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	collogpb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	logpb "go.opentelemetry.io/proto/otlp/logs/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/protobuf/proto"
)

// receiver is a real OTLP/HTTP endpoint (protobuf, /v1/logs and
// /v1/traces) on 127.0.0.1 that can answer 503 or be stopped and started
// again on the same port.
type receiver struct {
	t    *testing.T
	addr string

	mu       sync.Mutex
	srv      *http.Server
	status   int
	requests int
	recs     []received
	seqs     map[int64]int
	headers  http.Header // of the last logs request
	spans    int
}

type received struct {
	res *resourcepb.Resource
	rec *logpb.LogRecord
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{t: t, addr: "127.0.0.1:0", seqs: make(map[int64]int)}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *receiver) endpoint() string { return "http://" + r.addr }

func (r *receiver) start() {
	r.t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		ln, err = net.Listen("tcp", r.addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the port of the stopped server may still be held briefly
	}
	if err != nil {
		r.t.Fatalf("receiver: listen %s: %v", r.addr, err)
	}
	r.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(r.serve)}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go srv.Serve(ln)
}

func (r *receiver) stop() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (r *receiver) setStatus(code int) {
	r.mu.Lock()
	r.status = code
	r.mu.Unlock()
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err == nil && req.Header.Get("Content-Encoding") == "gzip" {
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(body)); err == nil {
			body, err = io.ReadAll(zr)
		}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
	if r.status != 0 && r.status != http.StatusOK {
		http.Error(w, "unavailable", r.status)
		return
	}
	var resp proto.Message
	switch req.URL.Path {
	case "/v1/logs":
		var m collogpb.ExportLogsServiceRequest
		if err := proto.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.headers = req.Header.Clone()
		for _, rl := range m.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					r.recs = append(r.recs, received{res: rl.Resource, rec: lr})
					if v, ok := attr(lr.Attributes, SeqKey); ok {
						r.seqs[v.GetIntValue()]++
					}
				}
			}
		}
		resp = &collogpb.ExportLogsServiceResponse{}
	case "/v1/traces":
		var m coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range m.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				r.spans += len(ss.Spans)
			}
		}
		resp = &coltracepb.ExportTraceServiceResponse{}
	default:
		http.NotFound(w, req)
		return
	}
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// missing returns the seqs in want that the receiver has not seen.
func (r *receiver) missing(want []uint64) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, s := range want {
		if r.seqs[int64(s)] == 0 {
			out = append(out, s)
		}
	}
	return out
}

// bySeq returns the last record received with audit.seq seq.
func (r *receiver) bySeq(seq uint64) (received, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.recs) - 1; i >= 0; i-- {
		if v, ok := attr(r.recs[i].rec.Attributes, SeqKey); ok && v.GetIntValue() == int64(seq) {
			return r.recs[i], true
		}
	}
	return received{}, false
}

func (r *receiver) counts() (records, duplicates int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range r.seqs {
		duplicates += n - 1
	}
	return len(r.recs), duplicates
}

func attr(kvs []*commonpb.KeyValue, key string) (*commonpb.AnyValue, bool) {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
