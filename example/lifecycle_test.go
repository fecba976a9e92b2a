package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
)

// serviceEvents returns the service_lifecycle events and their positions
// among all events.
func serviceEvents(evs []map[string]any) (out []map[string]any, at []int) {
	for i, e := range evs {
		if e["event"] == eventServiceLifecycle {
			out = append(out, e)
			at = append(at, i)
		}
	}
	return out, at
}

// The service's start is an audit event, before any request's, with the
// audit configuration in effect; its stop (the signal) is one too, the
// last before the handler closes.
func TestExampleRecordsStartAndStop(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "audit-logs")
	p := start(t, "-audit-dir", dir, "-key-file", filepath.Join(tmp, "audit.key"), "-sync", "interval", "-rotate-bytes", "123456", "-max-age", "8784h")
	if code, _ := p.do(t, "POST", "/servers/obsidian/start", ""); code != 200 {
		t.Fatal(code)
	}
	p.stop(t)
	evs := events(t, dir)
	svc, at := serviceEvents(evs)
	if len(svc) != 3 {
		t.Fatalf("service events %v", svc)
	}
	st := svc[0]
	if at[0] != 0 || st["action"] != "start" || st["status"] != "success" || st["resource"] != serviceName || st["resource_type"] != "service" {
		t.Errorf("start event (at %d): %v", at[0], st)
	}
	// key_id is the banner's; the rest as configured.
	keyID, _ := st["audit.config"].(map[string]any)["integrity"].(map[string]any)["key_id"].(string)
	if keyID == "" || !strings.Contains(p.stdout.String(), "key_id "+keyID) {
		t.Errorf("key_id %q of the start event is not the banner's:\n%s", keyID, p.stdout)
	}
	b, _ := json.Marshal(st["audit.config"])
	want := `{"alerts":{"enabled":true,"rules":` + jsonInt(len(handler.DefaultAlertRules())) + `,"source":"default"},` +
		`"authentication":{"admin_source":"generated","bearer_source":"demo (generated)","principals":[{"principal":"admin","role":"admin"},{"principal":"demo-user","role":"operator"}]},` +
		`"integrity":{"forward_secure":true,"key_id":"` + keyID + `","self_verify_interval":"1m0s","signed_checkpoints":true},` +
		`"otlp":{"export":false},"retention":{"max_age":"8784h0m0s","max_backups":"keep all"},` +
		`"rotate":{"compress":true,"interval":"24h0m0s","low_space_warning":"default (rotate.DefaultLowSpace)","max_bytes":123456},"sync":"interval"}`
	if string(b) != want {
		t.Errorf("audit.config\n%s\nwant\n%s", b, want)
	}
	if st["service.version"] != version || !strings.HasPrefix(p.base, "http://"+stringOf(st["server.address"])) {
		t.Errorf("start event: %v (base %s)", st, p.base)
	}
	n := len(evs)
	if at[1] != n-2 || at[2] != n-1 {
		t.Errorf("stop events at %v of %d, want last", at[1:], n)
	}
	for i, status := range []string{"initiated", "success"} {
		e := svc[1+i]
		if e["action"] != "stop" || e["status"] != status || e["reason"] != "signal" || e["signal"] != "SIGTERM" {
			t.Errorf("stop event %d: %v", i, e)
		}
	}
}

func jsonInt(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// The start event says OTLP export is on, but holds neither the endpoint
// (whose URL may carry credentials) nor any token.
func TestStartEventHoldsNoSecrets(t *testing.T) {
	const tok = "adm-SECRET-start-event-5d4c"
	const pw = "otlpPW-SECRET-start-event"
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "a")
	p := startEnv(t, map[string]string{
		"AUDIT_ADMIN_TOKEN":           tok,
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://ingest:" + pw + "@127.0.0.1:9/v1?api_key=" + pw,
	}, "-audit-dir", dir, "-key-file", filepath.Join(tmp, "k"))
	// The start event is on disk (-sync always) before the banner. Killed: a
	// clean stop would spend its export deadline on the unreachable endpoint.
	p.cmd.Process.Kill()
	<-p.done
	svc, _ := serviceEvents(events(t, dir))
	if len(svc) != 1 || svc[0]["action"] != "start" {
		t.Fatalf("service events %v", svc)
	}
	cfg := svc[0]["audit.config"].(map[string]any)
	if cfg["otlp"].(map[string]any)["export"] != true {
		t.Errorf("start event: OTLP export not on: %v", cfg)
	}
	all := dirText(t, dir)
	for _, s := range []string{tok, pw, "ingest"} {
		if strings.Contains(all, s) {
			t.Errorf("%q found in the audit dir", s)
		}
	}
}

// A start that fails once the audit trail is open (here: the address is
// taken) is on record as a failed start with its reason and error, and
// the trail still verifies; no success is recorded.
func TestExampleRecordsFailedStart(t *testing.T) {
	tmp := t.TempDir()
	first := start(t, "-audit-dir", filepath.Join(tmp, "first"), "-key-file", filepath.Join(tmp, "k1"))
	dir := filepath.Join(tmp, "second")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	addr := strings.TrimPrefix(first.base, "http://")
	cmd.Env = append(os.Environ(), argsEnv+"="+strings.Join([]string{"-addr", addr, "-audit-dir", dir, "-key-file", filepath.Join(tmp, "k2")}, "\n"))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("second instance on %s: %v\n%s", addr, err, out)
	}
	svc, _ := serviceEvents(events(t, dir))
	if len(svc) != 1 {
		t.Fatalf("service events %v", svc)
	}
	ev := svc[0]
	if ev["action"] != "start" || ev["status"] != "failed" || ev["reason"] != "listen" ||
		!strings.Contains(stringOf(ev["error"]), "address already in use") || ev["service.version"] != version {
		t.Errorf("failed start event: %v", ev)
	}
	key, err := chain.ReadKeyFile(filepath.Join(tmp, "k2") + ".initial")
	if err != nil {
		t.Fatal(err)
	}
	if rep := verifyDir(t, dir, key); !rep.Intact || len(rep.Problems()) != 0 {
		t.Errorf("trail of the failed start: %+v", rep.Problems())
	}
	first.stop(t)
}

// A stop does not close the audit trail under a request in flight: a
// credential PUT whose body is still coming when SIGTERM arrives, past the
// shutdown timeout, has its connection cut, and its records (the failed
// credential event and the activity record) are in the trail before the
// stop's outcome, which says requests were cut off.
func TestStopWaitsForRequestsInFlight(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "audit-logs")
	p := start(t, "-audit-dir", dir, "-key-file", filepath.Join(tmp, "audit.key"), "-body-timeout", "1m", "-shutdown-timeout", "300ms")
	u, _ := url.Parse(p.base)
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// net/http answers 100 Continue when the handler first reads the
	// body: then the request is in the handler, waiting for the rest.
	fmt.Fprintf(c, "PUT /credentials/inflight_key HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n", p.admin)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 Continue") {
		t.Fatalf("waiting for 100 Continue: %q %v", line, err)
	}
	fmt.Fprint(c, "partial")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the service did not stop")
	}
	evs := events(t, dir)
	credential, activity, stopped := -1, -1, -1
	for i, e := range evs {
		switch {
		case e["event"] == "credential_access" && e["resource"] == "inflight_key":
			credential = i
			if e["status"] != "failed" || e["user.id"] == nil {
				t.Errorf("credential event: %v", e)
			}
		case e["event"] == "http_request" && e["url.path"] == "/credentials/inflight_key":
			activity = i
		case e["event"] == eventServiceLifecycle && e["action"] == "stop" && e["status"] != "initiated":
			stopped = i
			if e["status"] != "failed" || !strings.Contains(stringOf(e["error"]), "cut off") {
				t.Errorf("stop outcome: %v", e)
			}
		}
	}
	if credential < 0 || activity < 0 || stopped < 0 || credential > stopped || activity > stopped {
		t.Errorf("credential event at %d, activity record at %d, stop outcome at %d of %d events: want all, the stop last", credential, activity, stopped, len(evs))
	}
}
