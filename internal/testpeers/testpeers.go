// Package testpeers builds and runs real protocol peers for end-to-end tests:
// an OpenTelemetry Collector distribution (otelcol-peer), Jaeger v2 and
// VictoriaLogs (the Loki stand-in).
//
// Each peer is its own nested Go module under this directory (collector/,
// jaeger/, victorialogs/), so none of their dependencies enter the root
// go.mod. [Build] compiles a peer with the local go command into a cache that
// survives between test runs (see [CacheDir]); the first build is slow
// (collector ~4 min, Jaeger ~7 min on 2 cores), so CI prebuilds all peers with
// build.sh before running the tests.
//
// When a peer cannot be built, a test is skipped loudly, except when
// CI=true: then it fails, because under CI a missing peer is a broken test
// run, not an optional extra.
//
// Every peer binds 127.0.0.1 on free ports, writes its output to a log file in
// t.TempDir() (printed when the test fails), is polled for readiness with a
// deadline and is stopped by t.Cleanup (SIGTERM, then SIGKILL after
// [StopTimeout]).
package testpeers

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Timeouts used by the helpers. They are generous because the machines that
// run the tests are small and shared.
const (
	// StartTimeout bounds the wait for a started peer to become ready.
	StartTimeout = 60 * time.Second
	// StopTimeout bounds the wait for a peer to exit after SIGTERM before it
	// is killed.
	StopTimeout = 15 * time.Second
)

// peer describes how to build one peer from its nested module.
type peer struct {
	dir string // folder under internal/testpeers
	pkg string // package to build, relative to the nested module
	bin string // binary name
}

var peers = map[string]peer{
	"collector":    {dir: "collector", pkg: ".", bin: "otelcol-peer"},
	"jaeger":       {dir: "jaeger", pkg: "github.com/jaegertracing/jaeger/cmd/jaeger", bin: "jaeger"},
	"victorialogs": {dir: "victorialogs", pkg: "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs", bin: "victoria-logs"},
}

// Names lists the peers [Build] knows, sorted.
func Names() []string {
	names := make([]string, 0, len(peers))
	for n := range peers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CacheDir is where built peers are kept: $SLOGAUDIT_TESTPEERS_CACHE if set,
// else <user cache dir>/slogaudit-testpeers ($XDG_CACHE_HOME or ~/.cache on
// Linux), else a folder in the temporary directory. build.sh uses the same
// rule.
func CacheDir() string {
	if d := os.Getenv("SLOGAUDIT_TESTPEERS_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "slogaudit-testpeers")
	}
	return filepath.Join(os.TempDir(), "slogaudit-testpeers")
}

// SourceDir returns the directory holding the peers' nested modules
// (internal/testpeers of the repository).
func SourceDir() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dir := filepath.Dir(file)
		if _, err := os.Stat(filepath.Join(dir, "collector", "go.mod")); err == nil {
			return dir, nil
		}
	}
	// Built with -trimpath: ask the go command where the root module is.
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("locating the repository: go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("locating the repository: not inside the slogaudit module")
	}
	dir := filepath.Join(filepath.Dir(gomod), "internal", "testpeers")
	if _, err := os.Stat(filepath.Join(dir, "collector", "go.mod")); err != nil {
		return "", fmt.Errorf("locating the peers: %v", err)
	}
	return dir, nil
}

// BuildEnv returns the environment a peer is built with: the current one
// with CGO_ENABLED=0 (static binaries, no C toolchain needed; VictoriaLogs
// then uses its pure-Go zstd) and GOWORK=off (a go.work at the repository root
// must not pull the nested modules into a workspace).
func BuildEnv() []string {
	return append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
}

// BuildArgs returns the arguments of `go` that build peer name into out.
// The peer's nested module directory is passed with -C.
func BuildArgs(srcDir, name, out string) []string {
	p := peers[name]
	return []string{"build", "-C", filepath.Join(srcDir, p.dir), "-mod=readonly", "-buildvcs=false",
		"-ldflags=-s -w", "-o", out, p.pkg}
}

// Key returns the cache key of peer name: a hash of every file of its
// nested module (go.mod, go.sum, sources, manifest; not tests), the Go
// version, the target platform and the build arguments. Any change to them
// gives a new binary name, so a stale binary is never reused.
func Key(srcDir, name, goVersion string) (string, error) {
	p, ok := peers[name]
	if !ok {
		return "", fmt.Errorf("unknown peer %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	root := filepath.Join(srcDir, p.dir)
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%s/%s\x00%q\x00", goVersion, runtime.GOOS, runtime.GOARCH, BuildArgs("", name, ""))
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.HasSuffix(d.Name(), "_test.go") {
			return nil // tests do not change the binary
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// buildResult remembers, per process, how building a peer went, so a
// failing build is not retried by every test.
type buildResult struct {
	bin string
	out []byte
	err error
}

var (
	buildMu    sync.Mutex
	buildLocks = map[string]*sync.Mutex{}
	built      = map[string]*buildResult{}
)

// Build builds peer name ("collector", "jaeger" or "victorialogs") unless
// the cache already holds a binary for the current sources, and returns the
// binary's path. Parallel test processes wait for each other on a file lock;
// the binary appears by atomic rename, so a partial one is never seen.
//
// If the go command is missing or the build fails, Build fails the test when
// CI=true and skips it otherwise. Under -short it skips without building
// (outside CI).
func Build(t testing.TB, name string) string {
	t.Helper()
	if _, ok := peers[name]; !ok {
		t.Fatalf("testpeers: unknown peer %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skipf("testpeers: -short: not building or starting the %s peer", name)
	}

	buildMu.Lock()
	mu := buildLocks[name]
	if mu == nil {
		mu = new(sync.Mutex)
		buildLocks[name] = mu
	}
	buildMu.Unlock()
	// mu serialises builds of one peer; buildMu guards the maps, which
	// builds of different peers share.
	mu.Lock()
	buildMu.Lock()
	r := built[name]
	buildMu.Unlock()
	if r == nil {
		r = new(buildResult)
		r.bin, r.out, r.err = BuildBinary(name)
		buildMu.Lock()
		built[name] = r
		buildMu.Unlock()
	}
	mu.Unlock()

	if r.err != nil {
		msg := fmt.Sprintf("testpeers: cannot build the %s peer: %v", name, r.err)
		if len(r.out) > 0 {
			msg += "\n--- build output ---\n" + string(r.out)
		}
		if ci {
			t.Fatalf("%s\n(CI=true: a peer that cannot be built is a test failure)", msg)
		}
		banner := strings.Repeat("!", 78)
		t.Skipf("\n%s\nSKIPPING: %s\nRun internal/testpeers/build.sh to see why; under CI=true this is a failure.\n%s", banner, msg, banner)
	}
	return r.bin
}

// BuildBinary does the work of [Build] without a testing.TB (for build.sh):
// it returns the cached binary of peer name, building it first if needed,
// and the build output if it built.
func BuildBinary(name string) (bin string, output []byte, err error) {
	if _, ok := peers[name]; !ok {
		return "", nil, fmt.Errorf("unknown peer %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", nil, fmt.Errorf("the go command is not in PATH: %v", err)
	}
	src, err := SourceDir()
	if err != nil {
		return "", nil, err
	}
	ver, err := exec.Command(goBin, "env", "GOVERSION").Output()
	if err != nil {
		return "", nil, fmt.Errorf("go env GOVERSION: %v", err)
	}
	key, err := Key(src, name, strings.TrimSpace(string(ver)))
	if err != nil {
		return "", nil, err
	}
	cache := CacheDir()
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", nil, err
	}
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	bin = filepath.Join(cache, name+"-"+key+exe)
	if fileExists(bin) {
		return bin, nil, nil
	}

	unlock, err := lockFile(filepath.Join(cache, name+".lock"))
	if err != nil {
		return "", nil, fmt.Errorf("locking the cache: %v", err)
	}
	defer unlock()
	if fileExists(bin) { // another process built it while we waited
		return bin, nil, nil
	}

	tmp := filepath.Join(cache, fmt.Sprintf(".%s-%s-%d.tmp%s", name, key, os.Getpid(), exe))
	defer os.Remove(tmp)
	fmt.Fprintf(os.Stderr, "testpeers: building the %s peer into %s (first build of these sources; can take minutes)\n", name, bin)
	start := time.Now()
	cmd := exec.Command(goBin, BuildArgs(src, name, tmp)...)
	cmd.Env = BuildEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", out, fmt.Errorf("go %s: %v", strings.Join(cmd.Args[1:], " "), err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", out, err
	}
	fmt.Fprintf(os.Stderr, "testpeers: built the %s peer in %s\n", name, time.Since(start).Round(time.Second))
	return bin, out, nil
}

func fileExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

var (
	portMu    sync.Mutex
	portsUsed = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// that this process has not handed out before.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testpeers: FreePort: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		portMu.Lock()
		used := portsUsed[port]
		portsUsed[port] = true
		portMu.Unlock()
		if !used {
			return port
		}
	}
	t.Fatalf("testpeers: FreePort: no fresh port after 100 tries")
	return 0
}

// process is one run of a peer binary.
type process struct {
	name    string
	bin     string
	args    []string
	env     []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	err  error         // cmd.Wait result, valid after done
}

func newProcess(t testing.TB, name, bin string, args []string, env map[string]string) *process {
	t.Helper()
	p := &process{
		name:    name,
		bin:     bin,
		args:    args,
		env:     mergeEnv(env),
		logPath: filepath.Join(t.TempDir(), name+".log"),
	}
	// Cleanups run last-in first-out: the log is shown after the stop below.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("testpeers: %s log (%s):\n%s", name, p.logPath, tailFile(p.logPath, 64<<10))
		}
	})
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("testpeers: stopping %s: %v", name, err)
		}
	})
	return p
}

func mergeEnv(env map[string]string) []string {
	out := os.Environ()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", p.name)
		}
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== testpeers: %s start %s %s %s\n", time.Now().Format(time.RFC3339Nano), p.name, p.bin, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== testpeers: %s exited: %v\n", time.Now().Format(time.RFC3339Nano), cmd.ProcessState)
		logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// exited reports whether the current run has ended, and how.
func (p *process) exited() (bool, error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true, errors.New("not started")
	}
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.err == nil {
			return true, errors.New("exited with status 0")
		}
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM, waits up to StopTimeout, then kills. Stopping a
// stopped process is a no-op.
func (p *process) stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	if err := terminate(cmd.Process); err != nil {
		_ = cmd.Process.Kill()
	}
	select {
	case <-done:
		return nil
	case <-time.After(StopTimeout):
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return fmt.Errorf("%s did not exit within %s of SIGTERM; killed", p.name, StopTimeout)
}

// kill sends SIGKILL (no shutdown hooks run, nothing is flushed: a crash)
// and waits for the process to exit.
func (p *process) kill() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("%s was never started", p.name)
	}
	select {
	case <-done:
		return fmt.Errorf("%s had already exited", p.name)
	default:
	}
	if err := cmd.Process.Kill(); err != nil {
		return fmt.Errorf("killing %s: %v", p.name, err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(StopTimeout):
		return fmt.Errorf("%s did not exit within %s of SIGKILL", p.name, StopTimeout)
	}
}

// waitReady polls ready until it returns nil, the process exits or the
// deadline passes.
func (p *process) waitReady(timeout time.Duration, ready func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for delay := 20 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		if gone, err := p.exited(); gone {
			return fmt.Errorf("%s exited before it was ready: %v\n--- log %s ---\n%s", p.name, err, p.logPath, tailFile(p.logPath, 16<<10))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last = ready(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s: %v\n--- log %s ---\n%s", p.name, timeout, last, p.logPath, tailFile(p.logPath, 16<<10))
		}
		time.Sleep(delay)
	}
}

func tailFile(path string, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(cannot read: %v)", err)
	}
	if fi.Size() > max {
		f.Seek(fi.Size()-max, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	if fi.Size() > max {
		return fmt.Sprintf("(last %d bytes)\n%s", max, b)
	}
	return string(b)
}

// httpClient is used for all polling and queries; no proxies, short timeouts.
var httpClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	Timeout:   10 * time.Second,
}

// PostJSON POSTs body with Content-Type application/json and returns the
// status code and response body.
func PostJSON(ctx context.Context, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, err
}

func get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, err
}

// otlpReady reports nil once POSTing an empty OTLP/JSON request ({}, which
// exporters never see) to base+path gets 200 OK: the receiver is up, and
// receivers start last, so the whole pipeline is. 404 counts too: the
// receiver answers it for a signal without a pipeline.
func otlpReady(base, path string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		code, body, err := PostJSON(ctx, base+path, []byte("{}"))
		if err != nil {
			return err
		}
		if code != http.StatusOK && code != http.StatusNotFound {
			return fmt.Errorf("POST %s: %d %s", path, code, bytes.TrimSpace(body))
		}
		return nil
	}
}

// Eventually calls check until it returns nil or timeout passes, then fails
// the test with check's last error. It polls with backoff up to 250 ms.
func Eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := 20 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeers: %s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(delay)
	}
}

// ---------------------------------------------------------------------------
// Collector

// Environment variables StartCollector sets for the collector, for use in
// its config as ${env:NAME}.
const (
	EnvOTLPHTTPEndpoint = "TESTPEER_OTLP_HTTP_ENDPOINT" // 127.0.0.1:PORT for receivers.otlp.protocols.http.endpoint
	EnvOTLPGRPCEndpoint = "TESTPEER_OTLP_GRPC_ENDPOINT" // 127.0.0.1:PORT for receivers.otlp.protocols.grpc.endpoint
	EnvDir              = "TESTPEER_DIR"                // a private temporary directory, e.g. for the file exporter
)

// Collector is a running otelcol-peer.
type Collector struct {
	t testing.TB
	p *process

	Bin        string // the binary
	ConfigPath string // the config file it runs with
	Dir        string // $TESTPEER_DIR
	LogPath    string // its stdout and stderr

	OTLPHTTPAddr string // 127.0.0.1:PORT of the OTLP/HTTP receiver
	OTLPHTTPURL  string // http://127.0.0.1:PORT (append /v1/logs, /v1/traces)
	OTLPGRPCAddr string // 127.0.0.1:PORT of the OTLP/gRPC receiver
}

// ExportPath is the file the exporter of [CollectorConfig] writes to.
func (c *Collector) ExportPath() string { return filepath.Join(c.Dir, "export.jsonl") }

// StartCollector writes configYAML to a file and runs the collector with it
// and with env added to the environment. The config must bind the OTLP/HTTP
// receiver to ${env:TESTPEER_OTLP_HTTP_ENDPOINT} (readiness is a POST of {}
// to /v1/logs there) and should bind gRPC, if enabled, to
// ${env:TESTPEER_OTLP_GRPC_ENDPOINT}; ${env:TESTPEER_DIR} is a private
// directory. It should set service.telemetry.metrics.level: none (else the
// collector opens :8888). [CollectorConfig] writes such a config.
//
// The collector is stopped when the test ends; Stop and Restart stop it and
// start it again on the same ports (for outage tests).
func StartCollector(t testing.TB, configYAML string, env map[string]string) *Collector {
	t.Helper()
	bin := Build(t, "collector")
	dir := t.TempDir()
	c := &Collector{
		t:            t,
		Bin:          bin,
		ConfigPath:   filepath.Join(dir, "config.yaml"),
		Dir:          dir,
		OTLPHTTPAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		OTLPGRPCAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
	}
	c.OTLPHTTPURL = "http://" + c.OTLPHTTPAddr
	if err := os.WriteFile(c.ConfigPath, []byte(configYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	all := map[string]string{
		EnvOTLPHTTPEndpoint: c.OTLPHTTPAddr,
		EnvOTLPGRPCEndpoint: c.OTLPGRPCAddr,
		EnvDir:              dir,
	}
	for k, v := range env {
		all[k] = v
	}
	c.p = newProcess(t, "collector", bin, []string{"--config", "file:" + c.ConfigPath}, all)
	c.LogPath = c.p.logPath
	c.Restart()
	return c
}

// Stop stops the collector (SIGTERM; it flushes its exporters) and waits
// for it to exit. Its ports are free afterwards.
func (c *Collector) Stop() {
	c.t.Helper()
	if err := c.p.stop(); err != nil {
		c.t.Fatalf("testpeers: %v", err)
	}
}

// Kill kills the collector with SIGKILL, as a crash or the OOM killer
// would: no graceful shutdown, nothing in memory is flushed. It waits for
// the process to exit; Restart starts it again on the same ports, config,
// environment (and so storage directories).
func (c *Collector) Kill() {
	c.t.Helper()
	if err := c.p.kill(); err != nil {
		c.t.Fatalf("testpeers: %v", err)
	}
}

// Restart starts the collector again (or for the first time) with the same
// config, environment and ports, and waits until it is ready. A running
// collector is stopped first.
func (c *Collector) Restart() {
	c.t.Helper()
	c.Stop()
	if err := c.p.start(); err != nil {
		c.t.Fatalf("testpeers: starting the collector: %v", err)
	}
	if err := c.p.waitReady(StartTimeout, otlpReady(c.OTLPHTTPURL, "/v1/logs")); err != nil {
		c.t.Fatalf("testpeers: %v", err)
	}
}

// Running reports whether the collector process is alive.
func (c *Collector) Running() bool {
	gone, _ := c.p.exited()
	return !gone
}

// WaitExport waits until the file exporter's output at [Collector.ExportPath]
// contains substr and returns the output.
func (c *Collector) WaitExport(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	var out string
	Eventually(t, timeout, "collector export contains "+strconv.Quote(substr), func() error {
		b, err := os.ReadFile(c.ExportPath())
		if err != nil {
			return err
		}
		out = string(b)
		if !strings.Contains(out, substr) {
			return fmt.Errorf("%d bytes exported, no match", len(b))
		}
		return nil
	})
	return out
}

// EnvStorageDir is the variable deploy/otel/collector.yaml reads the
// directory of its file_storage extension (the persistent queue) from.
const EnvStorageDir = "OTELCOL_STORAGE_DIR"

// DeployConfigPath returns the path of the compose stack's collector config,
// deploy/otel/collector.yaml.
func DeployConfigPath(t testing.TB) string {
	t.Helper()
	src, err := SourceDir()
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	return filepath.Join(src, "..", "..", "deploy", "otel", "collector.yaml")
}

// DeployCollector runs the real collector with the compose stack's config,
// deploy/otel/collector.yaml, with env added to the environment (its
// endpoints are variables: LOGS_OTLP_ENDPOINT, TRACES_OTLP_ENDPOINT, ...).
// Only the OTLP listen addresses are rewritten, to the ports [StartCollector]
// picks. Unless env sets [EnvStorageDir], the persistent queue lives in a
// new t.TempDir(); it is the same directory after Kill and Restart.
func DeployCollector(t testing.TB, env map[string]string) *Collector {
	t.Helper()
	path := DeployConfigPath(t)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(data)
	for _, r := range []struct{ from, to string }{
		{"${env:OTLP_HTTP_LISTEN:-0.0.0.0:4318}", "${env:" + EnvOTLPHTTPEndpoint + "}"},
		{"${env:OTLP_GRPC_LISTEN:-0.0.0.0:4317}", "${env:" + EnvOTLPGRPCEndpoint + "}"},
	} {
		if !strings.Contains(cfg, r.from) {
			t.Fatalf("testpeers: %s no longer has %s", path, r.from)
		}
		cfg = strings.Replace(cfg, r.from, r.to, 1)
	}
	all := map[string]string{EnvStorageDir: ""}
	for k, v := range env {
		all[k] = v
	}
	if all[EnvStorageDir] == "" {
		all[EnvStorageDir] = t.TempDir()
	}
	return StartCollector(t, cfg, all)
}

// CollectorOptions selects the exporters of [CollectorConfig].
type CollectorOptions struct {
	// LogsURL, if set, adds an otlp_http exporter (protobuf) to the logs
	// pipeline with this full logs endpoint URL, e.g.
	// VictoriaLogs.IngestURL or Collector.OTLPHTTPURL+"/v1/logs".
	LogsURL string
	// TracesURL, if set, adds an otlp_http exporter to the traces pipeline
	// with this full traces endpoint URL, e.g. Jaeger.OTLPHTTPURL+"/v1/traces".
	TracesURL string
	// NoFile leaves out the file exporter.
	NoFile bool
}

// CollectorConfig returns a collector config for [StartCollector]: the OTLP
// receiver (HTTP and gRPC) on the TESTPEER endpoints, a batch processor with
// a 100 ms timeout, logs and traces pipelines exporting to
// ${env:TESTPEER_DIR}/export.jsonl (one OTLP/JSON line per batch, flushed
// every 100 ms) and to the OTLP/HTTP endpoints of o, no own metrics.
func CollectorConfig(o CollectorOptions) string {
	var b strings.Builder
	b.WriteString(`receivers:
  otlp:
    protocols:
      http:
        endpoint: ${env:` + EnvOTLPHTTPEndpoint + `}
      grpc:
        endpoint: ${env:` + EnvOTLPGRPCEndpoint + `}
processors:
  batch:
    timeout: 100ms
exporters:
`)
	var logs, traces []string
	if !o.NoFile {
		b.WriteString(`  file:
    path: ${env:` + EnvDir + `}/export.jsonl
    format: json
    flush_interval: 100ms
`)
		logs = append(logs, "file")
		traces = append(traces, "file")
	}
	if o.LogsURL != "" {
		fmt.Fprintf(&b, `  otlp_http/logs:
    logs_endpoint: %q
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 1s
`, o.LogsURL)
		logs = append(logs, "otlp_http/logs")
	}
	if o.TracesURL != "" {
		fmt.Fprintf(&b, `  otlp_http/traces:
    traces_endpoint: %q
    retry_on_failure:
      initial_interval: 100ms
      max_interval: 1s
`, o.TracesURL)
		traces = append(traces, "otlp_http/traces")
	}
	if len(logs) == 0 && len(traces) == 0 {
		b.WriteString("  debug:\n")
		logs, traces = []string{"debug"}, []string{"debug"}
	}
	b.WriteString(`service:
  telemetry:
    metrics:
      level: none
  pipelines:
`)
	if len(logs) > 0 {
		fmt.Fprintf(&b, "    logs:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [%s]\n", strings.Join(logs, ", "))
	}
	if len(traces) > 0 {
		fmt.Fprintf(&b, "    traces:\n      receivers: [otlp]\n      processors: [batch]\n      exporters: [%s]\n", strings.Join(traces, ", "))
	}
	return b.String()
}

// Validate runs `otelcol-peer validate --config file:CONFIG` with env added
// to the environment and returns an error carrying the output if the
// collector rejects the config.
func Validate(t testing.TB, configPath string, env map[string]string) error {
	t.Helper()
	bin := Build(t, "collector")
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "validate", "--config", "file:"+configPath)
	cmd.Env = mergeEnv(env)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("otelcol-peer validate --config %s: %v\n%s", configPath, err, out)
	}
	return nil
}

// ---------------------------------------------------------------------------
// Jaeger

// Jaeger is a running Jaeger v2 with in-memory storage.
type Jaeger struct {
	p *process

	Bin        string
	ConfigPath string
	LogPath    string

	OTLPHTTPAddr string // 127.0.0.1:PORT of the OTLP/HTTP receiver
	OTLPHTTPURL  string // http://127.0.0.1:PORT (append /v1/traces)
	OTLPGRPCAddr string // 127.0.0.1:PORT of the OTLP/gRPC receiver
	QueryURL     string // http://127.0.0.1:PORT of jaeger_query (UI and /api/...)
}

// jaegerConfig is Jaeger v2's config: a collector distribution with the
// OTLP receiver, memory storage and the query extension. enable_tracing:
// false keeps jaeger_query from tracing itself to localhost:4317 (and from
// taking ~8 s to stop); metrics level none keeps it off :8888.
const jaegerConfig = `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
  jaeger_query:
    enable_tracing: false
    storage:
      traces: memstore
    http:
      endpoint: %s
    grpc:
      endpoint: %s
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
      grpc:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
`

// StartJaeger runs Jaeger v2 (memstore) and waits until both its query
// API and its OTLP/HTTP receiver answer.
func StartJaeger(t testing.TB) *Jaeger {
	t.Helper()
	bin := Build(t, "jaeger")
	dir := t.TempDir()
	queryHTTP := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	queryGRPC := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	j := &Jaeger{
		Bin:          bin,
		ConfigPath:   filepath.Join(dir, "jaeger.yaml"),
		OTLPHTTPAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		OTLPGRPCAddr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)),
		QueryURL:     "http://" + queryHTTP,
	}
	j.OTLPHTTPURL = "http://" + j.OTLPHTTPAddr
	cfg := fmt.Sprintf(jaegerConfig, queryHTTP, queryGRPC, j.OTLPHTTPAddr, j.OTLPGRPCAddr)
	if err := os.WriteFile(j.ConfigPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	j.p = newProcess(t, "jaeger", bin, []string{"--config", "file:" + j.ConfigPath}, nil)
	j.LogPath = j.p.logPath
	if err := j.p.start(); err != nil {
		t.Fatalf("testpeers: starting jaeger: %v", err)
	}
	err := j.p.waitReady(StartTimeout, func(ctx context.Context) error {
		code, body, err := get(ctx, j.QueryURL+"/api/services")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET /api/services: %d %s", code, bytes.TrimSpace(body))
		}
		return otlpReady(j.OTLPHTTPURL, "/v1/traces")(ctx)
	})
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	return j
}

// Trace polls GET /api/traces/<traceIDHex> until Jaeger has the trace (it
// answers 404 until the batch is flushed) and returns the JSON body.
func (j *Jaeger) Trace(t testing.TB, traceIDHex string, timeout time.Duration) []byte {
	t.Helper()
	var body []byte
	Eventually(t, timeout, "jaeger has trace "+traceIDHex, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		code, b, err := get(ctx, j.QueryURL+"/api/traces/"+url.PathEscape(traceIDHex))
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET /api/traces/%s: %d %s", traceIDHex, code, bytes.TrimSpace(b))
		}
		body = b
		return nil
	})
	return body
}

// ---------------------------------------------------------------------------
// VictoriaLogs

// VictoriaLogs is a running single-node VictoriaLogs.
type VictoriaLogs struct {
	p *process

	Bin     string
	DataDir string
	LogPath string

	URL       string // http://127.0.0.1:PORT
	IngestURL string // URL + /insert/opentelemetry/v1/logs (OTLP/HTTP, protobuf only)
}

// StartVictoriaLogs runs VictoriaLogs with its storage in t.TempDir() and
// waits until /health answers OK.
func StartVictoriaLogs(t testing.TB) *VictoriaLogs {
	t.Helper()
	bin := Build(t, "victorialogs")
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	v := &VictoriaLogs{
		Bin:     bin,
		DataDir: t.TempDir(),
		URL:     "http://" + addr,
	}
	v.IngestURL = v.URL + "/insert/opentelemetry/v1/logs"
	v.p = newProcess(t, "victorialogs", bin, []string{
		"-httpListenAddr=" + addr,
		"-storageDataPath=" + v.DataDir,
	}, nil)
	v.LogPath = v.p.logPath
	if err := v.p.start(); err != nil {
		t.Fatalf("testpeers: starting victorialogs: %v", err)
	}
	err := v.p.waitReady(StartTimeout, func(ctx context.Context) error {
		code, body, err := get(ctx, v.URL+"/health")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET /health: %d %s", code, bytes.TrimSpace(body))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	return v
}

// Query runs a LogsQL query (/select/logsql/query) and returns the
// matching entries; VictoriaLogs returns every field as a string (_msg is
// the body, _time the timestamp).
func (v *VictoriaLogs) Query(t testing.TB, logsql string) []map[string]string {
	t.Helper()
	rows, err := v.query(logsql)
	if err != nil {
		t.Fatalf("testpeers: victorialogs query %q: %v", logsql, err)
	}
	return rows
}

// WaitQuery polls Query until it returns at least n entries (ingested logs
// become searchable about a second later) and returns them.
func (v *VictoriaLogs) WaitQuery(t testing.TB, logsql string, n int, timeout time.Duration) []map[string]string {
	t.Helper()
	var rows []map[string]string
	Eventually(t, timeout, fmt.Sprintf("victorialogs has %d entries for %q", n, logsql), func() error {
		var err error
		rows, err = v.query(logsql)
		if err != nil {
			return err
		}
		if len(rows) < n {
			return fmt.Errorf("%d entries", len(rows))
		}
		return nil
	})
	return rows
}

func (v *VictoriaLogs) query(logsql string) ([]map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code, body, err := get(ctx, v.URL+"/select/logsql/query?query="+url.QueryEscape(logsql))
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%d %s", code, bytes.TrimSpace(body))
	}
	var rows []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var row map[string]string
		if err := json.Unmarshal(line, &row); err != nil {
			return nil, fmt.Errorf("decoding %q: %v", line, err)
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}
