package handler

import (
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
)

// SelfVerify configures the handler's periodic verification of the newest
// audit files by the writing process itself (PCI DSS 10.3.4: detect changes
// to audit logs). Each failing finding is reported once, while it stands (a
// finding is its class, file, line, seq and detail; one that goes away and comes
// back is reported again), with ReportVerifyFailure (an ERROR chain_verification audit event, which the
// default alert rules turn into a security_alert), OnError and OnFailure;
// a file that does not decompress (a corrupt .gz) is such a finding
// (MODIFIED). A run that finds new findings reports those alone, in one
// event; OnFailure gets the whole report. A verification that fails with an error instead (the
// directory or a file cannot be read: permissions, I/O) is reported the same
// way, without OnFailure (there is no report), once two in a row failed
// with the same error. With a forward-secure key the process holds only the
// current epoch's key: it checks every link, seq, file name, open and close
// record and checkpoint of the files, and the MACs of the current epoch;
// the MACs of earlier epochs need K(0) (auditctl verify).
type SelfVerify struct {
	// Interval between verifications; 0 turns self-verification off.
	Interval time.Duration
	// Files is the number of newest files to verify; default 2.
	Files int
	// CheckpointKey, if set, also checks the signatures of the checkpoints.
	CheckpointKey note.Verifier
	// OnFailure, if set, receives each failing report (besides the alert).
	OnFailure func(*chain.Report)
}

// selfVerify runs until stop is closed.
func (h *Handler) selfVerify(sv SelfVerify, dir, prefix, ext string, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(sv.Interval)
	defer t.Stop()
	var standing map[chain.Problem]bool // the failing findings of the last run, all reported
	last := ""                          // the read error last alerted, so that it alerts once
	lastErr := ""                       // the error of the run before, if it failed to read
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		rep, err := h.VerifyNewest(sv.Files, sv.CheckpointKey, dir, prefix, ext)
		if err != nil {
			h.c.report(fmt.Errorf("handler: self-verification: %w", err))
			// Files that cannot be read hide what they hold: a failure
			// like a modified file, alerted once it is seen twice in a
			// row (not a file that went away mid-read).
			summary := "unreadable: " + err.Error()
			if summary == lastErr && summary != last {
				last = summary
				h.ReportVerifyFailure(err, "the newest audit files could not be read")
			}
			lastErr = summary
			continue
		}
		lastErr, last = "", ""
		found := make(map[chain.Problem]bool)
		var fresh []chain.Problem
		for _, p := range rep.Problems() {
			if p.Class.Warning() {
				continue
			}
			if !standing[p] && !found[p] {
				fresh = append(fresh, p)
			}
			found[p] = true
		}
		standing = found
		if len(fresh) == 0 {
			continue
		}
		summary := failures(fresh)
		h.ReportVerifyFailure(nil, summary) // its write error goes to OnError
		h.c.report(fmt.Errorf("handler: self-verification of %s failed: %s", dir, summary))
		if sv.OnFailure != nil {
			sv.OnFailure(rep)
		}
	}
}

// VerifyNewest verifies the newest n files of the handler's directory with
// the current key (see SelfVerify).
func (h *Handler) VerifyNewest(n int, ckpt note.Verifier, dir, prefix, ext string) (*chain.Report, error) {
	ks, _ := h.CurrentKey()
	// Writing: in the moment between a rotation's close record and the
	// next file (or after creating that file failed) the newest file is
	// closed for rotation and has no successor yet, which is no truncation
	// when it is still the writer's last file. A newer file the writer
	// created and someone removed is still reported (TRUNCATED).
	return chain.Verify(dir, chain.VerifyOptions{KeyAt: ks, CheckpointKey: ckpt, Prefix: prefix, Ext: ext, Last: max(n, 1), Writing: h.Path})
}

// failures summarises ps, failing problems, in one line.
func failures(ps []chain.Problem) string {
	var b strings.Builder
	for i, p := range ps[:min(len(ps), 3)] {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s %s seq %d: %s", p.Class, p.File, p.Seq, p.Detail)
	}
	if len(ps) > 3 {
		fmt.Fprintf(&b, "; and %d more", len(ps)-3)
	}
	return b.String()
}
