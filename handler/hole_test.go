package handler

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// A power loss under SyncNone left a page of acknowledged records as zeros
// and later pages on disk. The restarted handler puts it on record: an
// audit_outage record, reason power_loss, with the seqs lost and stranded,
// which the default alert rules alert on; and verify does not pass the
// directory. (The resuming writer used to cut the stranded records away,
// silently, and verify said INTACT.)
func TestPowerLossHoleOnRecord(t *testing.T) {
	src := t.TempDir()
	h, err := New(Options{Dir: src, Key: testKey, App: slog.DiscardHandler, Rotate: rotate.Options{Sync: rotate.SyncNone}})
	if err != nil {
		t.Fatal(err)
	}
	l := Logger(slog.New(h))
	for i := range 200 {
		l.Info("acknowledged", "i", i)
	}
	path := h.Path()
	disk, err := os.ReadFile(path) // what the disk may hold after the power loss
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if content := bytes.IndexByte(disk, 0); content < 3*4096 {
		t.Fatalf("content %d bytes: too short for a hole of a page", content)
	}
	clear(disk[4096:8192])
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(path)), disk, 0o600); err != nil {
		t.Fatal(err)
	}

	var reported []error
	h2, err := New(Options{Dir: dir, Key: testKey, App: slog.DiscardHandler, Rotate: rotate.Options{Sync: rotate.SyncNone},
		Alerts:  &AlertOptions{Rules: DefaultAlertRules()},
		OnError: func(err error) { reported = append(reported, err) }})
	if err != nil {
		t.Fatal(err)
	}
	newFile := h2.Path()
	h2.Close()

	data, err := os.ReadFile(newFile)
	if err != nil {
		t.Fatal(err)
	}
	var outage, alert map[string]any
	for line := range bytes.Lines(data) {
		var m map[string]any
		if json.Unmarshal(line, &m) != nil {
			continue
		}
		switch m["event"] {
		case AuditOutage:
			outage = m
		case SecurityAlert:
			alert = m
		}
	}
	if outage == nil || outage["reason"] != "power_loss" || outage["level"] != "ERROR" || outage["file"] != filepath.Base(path) {
		t.Fatalf("audit_outage record: %v", outage)
	}
	chainSeq, _ := outage["chain_seq"].(float64)
	lost, _ := outage["lost"].(float64)
	from, _ := outage["stranded_from"].(float64)
	to, _ := outage["stranded_to"].(float64)
	if lost < 1 || from != chainSeq+lost+1 || to < from || outage["seq"].(float64) <= chainSeq {
		t.Errorf("seqs in %v: want lost ≥ 1 after chain_seq, stranded_from after them", outage)
	}
	if alert == nil || alert["resource"] != "audit_outage" {
		t.Errorf("no security_alert for it: %v", alert)
	}
	if len(reported) == 0 {
		t.Error("OnError heard nothing")
	}
	rep, err := chain.Verify(dir, chain.VerifyOptions{Key: testKey})
	if err != nil || rep.Intact {
		t.Errorf("verify after the power loss: %v, intact %v", err, rep != nil && rep.Intact)
	}
}
