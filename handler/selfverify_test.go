package handler

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// A change to a written file is found by the writing process itself: an
// ERROR chain_verification audit event, a security_alert from the default
// rules, OnError and OnFailure, once per finding.
func TestSelfVerifyRaisesAlert(t *testing.T) {
	dir := t.TempDir()
	keyFile, signer, verifier := selfVerifyKeys(t, chain.GenerateKey())
	var mu sync.Mutex
	var reports []*chain.Report
	var errs []error
	h, err := New(Options{
		Dir: dir, KeyFile: keyFile, App: slog.NewJSONHandler(io.Discard, nil),
		Alerts:      &AlertOptions{Rules: DefaultAlertRules()},
		Checkpoints: chain.CheckpointOptions{Signer: signer, Every: 4, Interval: -1}, // the edit lands in an epoch whose key is gone: its signed digest finds it
		SelfVerify: SelfVerify{Interval: 10 * time.Millisecond, CheckpointKey: verifier, OnFailure: func(r *chain.Report) {
			mu.Lock()
			reports = append(reports, r)
			mu.Unlock()
		}},
		OnError: func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l := Logger(slog.New(h))
	for i := range 10 {
		l.Info("op", "i", i)
	}
	time.Sleep(50 * time.Millisecond) // several verifications of an intact directory
	mu.Lock()
	if len(reports) != 0 || len(errs) != 0 {
		t.Fatalf("intact directory reported: %v %v", reports, errs)
	}
	mu.Unlock()

	// Edit an early record in place (same length), as an intruder would.
	path := h.Path()
	data, _ := os.ReadFile(path)
	i := bytes.Index(data, []byte(`"i":1,`))
	f, _ := os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte(`"i":7,`), int64(i))
	f.Close()

	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(reports)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no self-verification failure")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	r := reports[0]
	gotErr := len(errs) > 0 && strings.Contains(errs[0].Error(), "self-verification")
	mu.Unlock()
	if r.Intact || !slices.ContainsFunc(r.Problems(), func(p chain.Problem) bool { return !p.Class.Warning() }) || !gotErr {
		t.Fatalf("report %+v, OnError called: %v", r.Problems(), gotErr)
	}
	time.Sleep(50 * time.Millisecond) // the finding stands: no second alert
	data, _ = os.ReadFile(path)
	if n, a := bytes.Count(data, []byte(`"event":"chain_verification"`)), bytes.Count(data, []byte(`"event":"security_alert"`)); n != 1 || a != 1 || !bytes.Contains(data, []byte(`"level":"ERROR"`)) {
		t.Errorf("%d chain_verification and %d security_alert records in the file", n, a)
	}
	first := verificationDetails(t, path)[0]

	// A second edit, while the first stands, is a new finding: reported
	// alone, the first not again.
	i = bytes.Index(data, []byte(`"i":8,`))
	f, _ = os.OpenFile(path, os.O_WRONLY, 0)
	f.WriteAt([]byte(`"i":9,`), int64(i))
	f.Close()
	var details []string
	for deadline := time.Now().Add(10 * time.Second); len(details) < 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no report of the second edit; reported: %q", details)
		}
		details = verificationDetails(t, path)
	}
	time.Sleep(50 * time.Millisecond)
	if details = verificationDetails(t, path); len(details) != 2 || details[1] == first || strings.Contains(details[1], first) {
		t.Errorf("reports %q: want the first edit's, then the second's alone", details)
	}
	mu.Lock()
	if len(reports) != 2 {
		t.Errorf("OnFailure called %d times, want 2", len(reports))
	}
	mu.Unlock()
}

// verificationDetails returns the details of the chain_verification records
// in the file at path, in order.
func verificationDetails(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for line := range bytes.Lines(data) {
		if !bytes.Contains(line, []byte(`"event":"chain_verification"`)) {
			continue
		}
		var rec struct{ Detail string }
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, rec.Detail)
	}
	return out
}

// A newest file that cannot be read (a corrupted .gz) is alerted like a
// modified one, not only reported to OnError.
func TestSelfVerifyUnreadableFileAlerts(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "audit.key")
	if err := chain.WriteKeyFile(keyFile, chain.GenerateKey()); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var alerts []Alert
	h, err := New(Options{Dir: dir, KeyFile: keyFile, App: slog.DiscardHandler,
		Rotate:     rotate.Options{Compress: true},
		SelfVerify: SelfVerify{Interval: 20 * time.Millisecond},
		Alerts:     &AlertOptions{OnAlert: func(a Alert) { mu.Lock(); alerts = append(alerts, a); mu.Unlock() }},
		OnError:    func(error) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l := Logger(slog.New(h))
	for f := range 3 {
		l.Info("genuine", "event", "credential_access")
		if f < 2 {
			if err := h.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Wait for the second-newest file's compression, then flip a byte of
	// its gzip trailer (the CRC): it no longer reads.
	var gz string
	for deadline := time.Now().Add(10 * time.Second); gz == ""; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second-newest file was not compressed")
		}
		if files, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt); len(files) >= 2 && strings.HasSuffix(files[len(files)-2], ".gz") {
			gz = files[len(files)-2]
		}
	}
	b, err := os.ReadFile(gz)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-6] ^= 1
	// Replaced whole (a verification must not read it half-written).
	if err := os.WriteFile(gz+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(gz+".tmp", gz); err != nil {
		t.Fatal(err)
	}
	// The chain_verification event naming the read error, in a file
	// written after the corruption (not compressed).
	found := func() bool {
		files, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil && !strings.HasSuffix(p, ".gz") {
				for _, line := range strings.Split(string(b), "\n") {
					if strings.Contains(line, `"event":"`+ChainVerification+`"`) && strings.Contains(line, "gzip") {
						return true
					}
				}
			}
		}
		return false
	}
	for deadline := time.Now().Add(10 * time.Second); !found(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no chain_verification event naming the read error")
		}
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(alerts)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no alert for an unreadable audit file")
		}
	}
}

// Self-verification reads only the newest files; where their first line
// follows a signed epoch end, that epoch's lines are checked against the
// digest of its signed checkpoint: an edit made without any key (the mac
// member left as it was) in an epoch whose key the process no longer holds
// is found.
func TestSelfVerifyWindowStartsAtSignedEnd(t *testing.T) {
	dir := t.TempDir()
	keyFile, signer, verifier := selfVerifyKeys(t, chain.GenerateKey())
	h, err := New(Options{Dir: dir, KeyFile: keyFile, App: slog.DiscardHandler, Checkpoints: chain.CheckpointOptions{Signer: signer}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l := Logger(slog.New(h))
	for f := range 3 {
		for range 3 {
			l.Info("genuine", "event", "credential_access", "user.id", "mallory")
		}
		if f < 2 {
			if err := h.Rotate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := h.Checkpoint(); err != nil { // every epoch so far signed
		t.Fatal(err)
	}
	if rep, err := h.VerifyNewest(2, verifier, dir, "", ""); err != nil || !rep.Intact {
		t.Fatalf("before: %v %v", err, rep.Problems())
	}
	files, _ := rotate.List(dir, chain.DefaultPrefix, chain.DefaultExt)
	victim := files[len(files)-2]
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `"user.id":"mallory"`, `"user.id":"alice__"`, 1)
	if err := os.WriteFile(victim, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := h.VerifyNewest(2, verifier, dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Intact || !slices.ContainsFunc(rep.Problems(), func(p chain.Problem) bool { return p.Class == chain.Modified }) {
		t.Errorf("an edit in the window's first epoch went unnoticed: %v", rep.Problems())
	}
}

// Self-verification of a directory being written raises no false alarm:
// a note signed while the files are read must not look like a cut trail
// (TRUNCATED), under either durability policy; nor must a file closed for
// rotation while the files are read, or just before its successor exists.
func TestSelfVerifyWhileWriting(t *testing.T) {
	for _, tc := range []struct {
		name string
		ro   rotate.Options
	}{
		{rotate.SyncNone.String(), rotate.Options{Sync: rotate.SyncNone}},
		{rotate.SyncAlways.String(), rotate.Options{Sync: rotate.SyncAlways}},
		{"rotating", rotate.Options{Sync: rotate.SyncNone, MaxBytes: 8 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			k0 := chain.GenerateKey()
			keyFile, signer, verifier := selfVerifyKeys(t, k0)
			var mu sync.Mutex
			var fails []string
			h, err := New(Options{
				Dir: dir, KeyFile: keyFile, App: slog.DiscardHandler,
				Checkpoints: chain.CheckpointOptions{Signer: signer, Every: 50},
				Rotate:      tc.ro,
				SelfVerify: SelfVerify{Interval: 5 * time.Millisecond, CheckpointKey: verifier, OnFailure: func(r *chain.Report) {
					mu.Lock()
					defer mu.Unlock()
					for _, p := range r.Problems() {
						if !p.Class.Warning() {
							fails = append(fails, fmt.Sprintf("%v seq %d: %s", p.Class, p.Seq, p.Detail))
						}
					}
				}},
				OnError: func(error) {},
			})
			if err != nil {
				t.Fatal(err)
			}
			l := Logger(slog.New(h))
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for i := range 1000 {
						l.Info("op", "i", i)
					}
				})
			}
			wg.Wait()
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
			if rep, err := chain.Verify(dir, chain.VerifyOptions{Key: k0, CheckpointKey: verifier}); err != nil || !rep.Intact {
				t.Fatalf("verify with K(0): %v %v", err, rep.Problems())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(fails) > 0 {
				t.Errorf("%d false failures, the first: %s", len(fails), fails[0])
			}
		})
	}
}

// Between a rotation's close record and the next file (here: creating it
// failed) the handler's newest file is closed for rotation with no
// successor. Self-verification knows it is the writer's own newest file and
// reports nothing; a verifier outside the process cannot tell it from a
// removed newest file (TRUNCATED). Removing a file the writer created is
// still found by the writer itself.
func TestSelfVerifyNewestClosedForRotation(t *testing.T) {
	dir := t.TempDir()
	k0 := chain.GenerateKey()
	keyFile, signer, verifier := selfVerifyKeys(t, k0)
	var failCreate atomic.Bool
	h, err := New(Options{
		Dir: dir, KeyFile: keyFile, App: slog.DiscardHandler,
		Checkpoints: chain.CheckpointOptions{Signer: signer, Every: 4, Interval: -1},
		Rotate: rotate.Options{OpenFile: func(name string, flag int, perm os.FileMode) (rotate.File, error) {
			if failCreate.Load() {
				return nil, errors.New("injected: cannot create the next file")
			}
			return os.OpenFile(name, flag, perm)
		}},
		OnError: func(error) {},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	l := Logger(slog.New(h))
	for i := range 6 {
		l.Info("op", "i", i)
	}
	failCreate.Store(true)
	if err := h.Rotate(); err == nil {
		t.Fatal("Rotate: want the injected error")
	}
	cut := func(rep *chain.Report) bool {
		return slices.ContainsFunc(rep.Problems(), func(p chain.Problem) bool {
			return p.Class == chain.Truncated && strings.Contains(p.Detail, "closed for rotation")
		})
	}
	if rep, err := h.VerifyNewest(2, verifier, dir, "", ""); err != nil || !rep.Intact || cut(rep) {
		t.Fatalf("self-verification of the writer's own newest file: %v %v", err, rep.Problems())
	}
	if rep, err := chain.Verify(dir, chain.VerifyOptions{Key: k0, CheckpointKey: verifier}); err != nil || rep.Intact || !cut(rep) {
		t.Fatalf("verification from outside: want TRUNCATED: %v %v", err, rep.Problems())
	}

	// The next file is created; someone removes it.
	failCreate.Store(false)
	if err := h.Rotate(); err != nil {
		t.Fatal(err)
	}
	l.Info("op", "i", 6)
	if err := os.Remove(h.Path()); err != nil {
		t.Fatal(err)
	}
	if rep, err := h.VerifyNewest(2, verifier, dir, "", ""); err != nil || rep.Intact || !cut(rep) {
		t.Fatalf("the writer's newest file removed: want TRUNCATED: %v %v", err, rep.Problems())
	}
}

// selfVerifyKeys writes k0 to a forward-secure key file and makes a
// checkpoint signer and its verifier.
func selfVerifyKeys(t *testing.T, k0 []byte) (keyFile string, signer note.Signer, verifier note.Verifier) {
	t.Helper()
	keyFile = filepath.Join(t.TempDir(), "audit.key")
	if err := chain.WriteKeyFile(keyFile, k0); err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := chain.GenerateSigner("self")
	if err != nil {
		t.Fatal(err)
	}
	if signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if verifier, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	return keyFile, signer, verifier
}
