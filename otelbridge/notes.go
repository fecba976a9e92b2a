package otelbridge

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"

	"github.com/slogaudit/slogaudit/chain"
)

// The log record of a signed checkpoint: event name EventCheckpoint, body
// the signed note as written in the checkpoints file, and these attributes.
// A SIEM that keeps the newest one holds what `auditctl verify
// --trusted-checkpoint` needs to detect truncation and rollback.
const (
	EventCheckpoint = "audit.checkpoint"
	// CheckpointSeqKey is the seq of the line the note signs (int64); its
	// chain value is in ChainKey.
	CheckpointSeqKey   = "audit.checkpoint.seq"
	CheckpointEpochKey = "audit.checkpoint.epoch"
	CheckpointFileKey  = "audit.checkpoint.file"
)

// maxQueuedNotes bounds the notes Checkpoint queues; beyond it the
// goroutine re-reads them from the checkpoints file.
const maxQueuedNotes = 1024

// Checkpoint queues a signed checkpoint for export. It implements
// handler.CheckpointSink. Notes are exported at least once, in seq order,
// with their own persisted cursor: those not acknowledged are read back from
// the checkpoints file after an outage or a restart.
func (b *Bridge) Checkpoint(c chain.Checkpoint) {
	if b == nil || c.Note == nil {
		return
	}
	b.mu.Lock()
	if b.closed || len(b.notes) >= maxQueuedNotes {
		b.noteScan = true
	} else {
		b.notes = append(b.notes, c)
	}
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// noteState is the exporter goroutine's part for notes.
type noteState struct {
	path, curPath string
	cursor        uint64             // every note up to this seq is acknowledged
	pending       []chain.Checkpoint // sorted by Seq, all after cursor
	inBatch       int                // notes in the batch being exported
}

func noteCursorPath(dir, prefix string) string {
	return filepath.Join(dir, ".otlp-notes-"+prefix)
}

// loadNotes reads the note cursor and the notes after it. The cursor
// ("v2 <seq> <chain value in hex>") counts only if it belongs to the chain
// in the directory, as the record cursor (loadCursor): the checkpoints
// file holds a note for its seq with its chain value, or the audit files
// hold the line. Otherwise (another chain started in the directory, whose
// notes up to the old seq would never be exported; a damaged cursor; the
// v1 cursor, a seq alone) every note is exported again: duplicates, never
// a gap.
func (e *exporter) loadNotes() {
	ns := &e.notes
	ns.path = filepath.Join(e.b.cfg.dir, chain.CheckpointsFileName(e.b.cfg.prefix))
	ns.curPath = noteCursorPath(e.b.cfg.dir, e.b.cfg.prefix)
	if data, err := os.ReadFile(ns.curPath); err == nil {
		seq, mac, ok := parseNoteCursor(data)
		if ok && e.noteCursorValid(seq, mac) {
			ns.cursor = seq
		} else {
			otel.Handle(fmt.Errorf("otelbridge: %s does not match a checkpoint of the chain in %s (a new chain?); exporting every checkpoint note", ns.curPath, e.b.cfg.dir))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		otel.Handle(fmt.Errorf("otelbridge: %w", err))
	}
	e.scanNotes()
}

func parseNoteCursor(data []byte) (seq uint64, mac [32]byte, ok bool) {
	f := strings.Fields(string(data))
	if len(f) != 3 || f[0] != "v2" || len(f[2]) != 2*len(mac) {
		return 0, mac, false
	}
	seq, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, mac, false
	}
	if _, err := hex.Decode(mac[:], []byte(f[2])); err != nil {
		return 0, mac, false
	}
	return seq, mac, true
}

// noteCursorValid reports whether the chain in the directory has chain
// value mac at seq, by its checkpoints file or its audit files.
func (e *exporter) noteCursorValid(seq uint64, mac [32]byte) bool {
	es, err := chain.ReadCheckpointsFile(e.notes.path)
	if err == nil {
		for _, en := range es {
			if en.Err != nil || en.Seq != seq {
				continue
			}
			if c, err := chain.ParseNote(en.Note); err == nil && c.Seq == seq && c.Chain == mac {
				return true
			}
		}
	}
	l, ok, err := e.rd.read(seq)
	return err == nil && ok && l.Seq == seq && l.MAC == mac
}

// scanNotes adds the notes of the checkpoints file after the cursor.
func (e *exporter) scanNotes() {
	ns := &e.notes
	es, err := chain.ReadCheckpointsFile(ns.path)
	if err != nil {
		otel.Handle(fmt.Errorf("otelbridge: %w", err))
		return
	}
	var cs []chain.Checkpoint
	for _, en := range es {
		if en.Err != nil || en.Seq <= ns.cursor {
			continue
		}
		c, err := chain.ParseNote(en.Note)
		if err != nil {
			continue // verify reports it; a SIEM gains nothing from it
		}
		c.Note = en.Note
		cs = append(cs, c)
	}
	e.addNotes(cs)
}

// takeNotes moves the queued notes into pending.
func (e *exporter) takeNotes() {
	b := e.b
	b.mu.Lock()
	cs, scan := b.notes, b.noteScan
	b.notes, b.noteScan = nil, false
	b.mu.Unlock()
	if scan {
		e.scanNotes()
	}
	e.addNotes(cs)
}

func (e *exporter) addNotes(cs []chain.Checkpoint) {
	ns := &e.notes
	if len(cs) == 0 {
		return
	}
	have := make(map[uint64]bool, len(ns.pending))
	for _, p := range ns.pending {
		have[p.Seq] = true
	}
	for _, c := range cs {
		if c.Seq <= ns.cursor || have[c.Seq] {
			continue
		}
		have[c.Seq] = true
		ns.pending = append(ns.pending, c)
	}
	slices.SortFunc(ns.pending, func(a, b chain.Checkpoint) int {
		switch {
		case a.Seq < b.Seq:
			return -1
		case a.Seq > b.Seq:
			return 1
		}
		return 0
	})
}

// buildNotes emits pending notes into the batch, after its records.
func (e *exporter) buildNotes() {
	ns := &e.notes
	for ns.inBatch < len(ns.pending) && e.bn < e.b.cfg.batch && e.bBytes < e.b.cfg.batchBytes {
		c := ns.pending[ns.inBatch]
		var r log.Record
		r.SetEventName(EventCheckpoint)
		r.SetBody(attribute.StringValue(string(c.Note))) // as is: a file for verify --trusted-checkpoint
		r.SetTimestamp(c.Time)
		r.SetObservedTimestamp(c.Time)
		r.SetSeverity(log.SeverityInfo)
		r.SetSeverityText("INFO")
		r.AddAttributes(
			attribute.Int64(CheckpointSeqKey, int64(c.Seq)),
			attribute.Int64(CheckpointEpochKey, int64(c.Epoch)),
			attribute.String(CheckpointFileKey, c.File),
			attribute.String(ChainKey, hex.EncodeToString(c.Chain[:])),
		)
		e.b.logger.Emit(context.Background(), r)
		e.bn++
		e.bBytes += len(c.Note) + recordOverhead
		e.bEnts = append(e.bEnts, bent{seq: c.Seq, mac: c.Chain, note: true})
		ns.inBatch++
	}
}

// notesAcked moves the note cursor past the first n of the batch's notes.
func (e *exporter) notesAcked(n int) {
	ns := &e.notes
	if n == 0 {
		return
	}
	last := ns.pending[n-1]
	ns.cursor = last.Seq
	ns.pending = slices.Delete(ns.pending, 0, n)
	ns.inBatch -= n
	if err := writeNoteCursor(ns.curPath, last.Seq, last.Chain); err != nil {
		otel.Handle(err)
	}
}

func writeNoteCursor(path string, seq uint64, mac [32]byte) error {
	if err := replaceFile(path, fmt.Appendf(nil, "v2 %d %x\n", seq, mac)); err != nil {
		return fmt.Errorf("otelbridge: write note cursor: %w", err)
	}
	return nil
}
