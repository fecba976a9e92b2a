package query_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/handler"
	"github.com/slogaudit/slogaudit/query"
	"github.com/slogaudit/slogaudit/rotate"
)

// forgeryService sets up a forward-secure, signed service like the example
// and returns its handler, dir, K(0) and a Reader configured as the
// example's (EpochKey, CheckpointKey).
func forgeryService(t *testing.T) (h *handler.Handler, dir string, k0 []byte, r *query.Reader, vk note.Verifier) {
	dir = t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "audit.key")
	k0 = chain.GenerateKey()
	if err := chain.WriteKeyFile(keyFile, k0); err != nil {
		t.Fatal(err)
	}
	skey, vkey, _ := chain.GenerateSigner("probe")
	signer, _ := note.NewSigner(skey)
	vk, _ = note.NewVerifier(vkey)
	h, err := handler.New(handler.Options{Dir: dir, KeyFile: keyFile, Checkpoints: chain.CheckpointOptions{Signer: signer},
		App: slog.DiscardHandler})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		logAt(t, ctx, h, time.Now(), "genuine", slog.String("event", "credential_access"), slog.String("user.id", "mallory"))
	}
	if err := h.Rotate(); err != nil {
		t.Fatal(err)
	}
	logAt(t, ctx, h, time.Now(), "later")
	if err := h.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	r, err = query.NewReader(dir, query.Options{EpochKey: h.EpochKey, CheckpointKey: vk})
	if err != nil {
		t.Fatal(err)
	}
	return h, dir, k0, r, vk
}

// Someone without any key replaces an old keyed file by an unkeyed
// (sha256) chain of forged records: a Reader given any key (EpochKey,
// CheckpointKey) takes that for a downgrade and verifies none of them.
func TestReaderDowngradeNotVerified(t *testing.T) {
	_, dir, _, r, vk := forgeryService(t)
	files, _ := rotate.List(dir, "", "")
	victim := files[0]
	// Forge: an unkeyed chain with the same seqs, in a scratch dir.
	fdir := t.TempDir()
	w, err := chain.Open(chain.Options{Rotate: rotate.Options{Dir: fdir}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := w.Append([]byte(`"level":"INFO","msg":"FORGED","event":"credential_access","user.id":"alice"`), nil); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	ff, _ := rotate.List(fdir, "", "")
	b, _ := os.ReadFile(ff[0])
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if bad := verifiedForged(t, r); bad > 0 {
		t.Errorf("%d forged events in a downgraded (sha256) file returned Verified=true by a keyed Reader (EpochKey+CheckpointKey)", bad)
	}
	// auditctl query/tail --checkpoint-key FILE.pub (no --key-file)
	rc, _ := query.NewReader(dir, query.Options{CheckpointKey: vk})
	if bad := verifiedForged(t, rc); bad > 0 {
		t.Errorf("%d forged events Verified=true by a Reader with only CheckpointKey (auditctl query --checkpoint-key)", bad)
	}
}

// Someone holding the current key (the key file) re-seals a file of
// earlier, checkpointed epochs, claiming the current epoch: the service's
// Reader does not take the current key for lines before the first it
// sealed, and chain.Verify with K(0) reports the rewrite. (A Reader with
// K(0) alone cannot tell: see the package doc.)
func TestReaderCurrentKeyRewriteNotVerified(t *testing.T) {
	h, dir, k0, r, _ := forgeryService(t)
	ks, _ := h.CurrentKey()
	files, _ := rotate.List(dir, "", "")
	victim := files[0]
	b, _ := os.ReadFile(victim)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	var out []string
	var prev string
	for i, ln := range lines {
		l, err := chain.ParseLine([]byte(ln))
		if err != nil {
			t.Fatal(err)
		}
		if l.Kind == chain.RecCheckpoint {
			continue
		}
		s := string(l.Sealed)
		if i == 0 {
			s = strings.Replace(s, `"epoch":0,`, `"epoch":`+itoa(ks.Epoch)+`,`, 1)
		} else {
			s = s[:strings.Index(s, `"prev":"`)+8] + prev + s[strings.Index(s, `"prev":"`)+8+64:]
			if l.Kind == chain.RecClose {
				s = strings.Replace(s, `"epoch":0,`, `"epoch":`+itoa(ks.Epoch)+`,`, 1)
			}
		}
		s = strings.Replace(s, "genuine", "FORGED", 1)
		mac := macHex(ks.Key, []byte(s))
		prev = mac
		out = append(out, s+`,"mac":"`+mac+`"}`)
	}
	if err := os.WriteFile(victim, []byte(strings.Join(out, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if bad := verifiedForged(t, r); bad > 0 {
		t.Errorf("%d events of an earlier, checkpointed epoch rewritten with the current key returned Verified=true (service Reader: EpochKey+CheckpointKey)", bad)
	}
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: k0})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Intact {
		t.Errorf("chain.Verify with K(0) finds the rewrite intact: %v", rep.Problems())
	}
}

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }

func macHex(key []byte, s []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(s)
	return hex.EncodeToString(m.Sum(nil))
}

// verifiedForged returns how many events r returns Verified whose record
// says FORGED.
func verifiedForged(t *testing.T, r *query.Reader) int {
	t.Helper()
	p, err := r.Query(context.Background(), query.Request{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for _, e := range p.Events {
		if strings.Contains(string(e.Record), "FORGED") && e.Verified {
			bad++
		}
	}
	return bad
}
