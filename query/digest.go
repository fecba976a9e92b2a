package query

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/rotate"
)

// A reader without the key of an epoch cannot check the MACs of its lines,
// but a signed checkpoint vouches for them: its note carries the SHA-256
// of the epoch's lines (FORMAT.md §6). digests finds, for one file, the seq
// ranges whose epoch's lines hash to what a note signed with
// Options.CheckpointKey says.

// seqRange is an inclusive range of line numbers of a file (1-based): the
// lines whose bytes hashed to a signed digest. Positions, not seqs: a line
// inserted with a plausible seq is outside them.
type seqRange struct{ lo, hi uint64 }

// fileDigests caches the ranges of a file by its size and the checkpoints
// file's: lines and notes are only ever appended, and a file that grew, or
// a new note, means reading it again.
type fileDigests struct {
	size, notes int64
	mtime       time.Time // a preallocated file keeps its size
	ranges      []seqRange
}

// signedDigests returns the digests of the notes in the checkpoints file
// whose signatures verify, by the seq of the line that ends their epoch.
func (r *Reader) signedDigests() map[uint64][sha256.Size]byte {
	path := filepath.Join(r.dir, chain.CheckpointsFileName(r.prefix))
	fi, err := os.Stat(path)
	if err != nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.notes != nil && fi.Size() == r.notesSize {
		return r.notes
	}
	es, err := chain.ReadCheckpointsFile(path)
	if err != nil {
		return r.notes
	}
	m := make(map[uint64][sha256.Size]byte, len(es))
	for _, e := range es {
		if e.Err != nil {
			continue
		}
		if c, err := chain.OpenCheckpoint(e.Note, r.ckptKey); err == nil && c.Digest != ([sha256.Size]byte{}) {
			m[c.Seq] = c.Digest
		}
	}
	r.notes, r.notesSize = m, fi.Size()
	return m
}

// digestRanges returns the seq ranges of the file at path that a signed
// digest vouches for; nil without a checkpoint key.
func (r *Reader) digestRanges(path string) []seqRange {
	if r.ckptKey == nil {
		return nil
	}
	notes := r.signedDigests()
	if len(notes) == 0 {
		return nil
	}
	name := chain.BaseName(path)
	size, mtime := int64(-1), time.Time{}
	if fi, err := os.Stat(path); err == nil {
		size, mtime = fi.Size(), fi.ModTime()
	}
	r.mu.Lock()
	notesSize := r.notesSize
	if fd, ok := r.digests[name]; ok && fd.size == size && fd.mtime.Equal(mtime) && fd.notes == notesSize {
		r.mu.Unlock()
		return fd.ranges
	}
	r.mu.Unlock()

	rc, err := rotate.Open(path)
	if errors.Is(err, fs.ErrNotExist) || err != nil {
		return nil
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	h := sha256.New()
	var (
		ranges []seqRange
		buf    []byte
		no     uint64 // line number
		lo     uint64 = 1
	)
	broken := false // the epoch holds a line too long to read: its digest is unknown
	for {
		var st lineStatus
		buf, _, st, err = readLine(br, buf[:0], false, 0)
		if err != nil || st == lineEnd {
			break
		}
		no++
		if st == lineTooLong {
			broken = true
			continue
		}
		h.Write(buf)
		h.Write([]byte{'\n'})
		l, perr := chain.ParseLine(buf)
		if perr != nil || l.Kind != chain.RecCheckpoint && l.Kind != chain.RecClose {
			continue
		}
		// An epoch that began in an earlier file (after a crash) does not
		// match from here: no false match, only a missed one.
		if d, ok := notes[l.Seq]; ok && !broken && [sha256.Size]byte(h.Sum(nil)) == d {
			ranges = append(ranges, seqRange{lo, no})
		}
		h.Reset()
		broken = false
		lo = no + 1
	}
	r.mu.Lock()
	if len(r.digests) > 1024 {
		clear(r.digests)
	}
	r.digests[name] = fileDigests{size: size, notes: notesSize, mtime: mtime, ranges: ranges}
	r.mu.Unlock()
	return ranges
}

func inRanges(rs []seqRange, seq uint64) bool {
	_, found := slices.BinarySearchFunc(rs, seq, func(r seqRange, s uint64) int {
		switch {
		case r.hi < s:
			return -1
		case r.lo > s:
			return 1
		}
		return 0
	})
	return found
}
