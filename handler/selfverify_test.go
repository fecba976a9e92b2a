package handler

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
)

// A change to a written file is found by the writing process itself: an
// ERROR chain_verification audit event, a security_alert from the default
// rules, OnError and OnFailure, once per finding.
func TestSelfVerifyRaisesAlert(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "audit.key")
	if err := chain.WriteKeyFile(keyFile, chain.GenerateKey()); err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := chain.GenerateSigner("self")
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
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
}
