package rotate

import (
	"bufio"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// List returns the paths of the files a Writer with this Dir, Prefix and Ext
// wrote, oldest first. A compressed file is listed as X.gz, unless X itself
// still exists (its compression was interrupted), when only X is listed.
// Other files, including temporary ones, are ignored. Empty prefix and ext
// mean the Options defaults.
func List(dir, prefix, ext string) ([]string, error) {
	if prefix == "" {
		prefix = "audit"
	}
	if ext == "" {
		ext = ".jsonl"
	}
	files, _, err := scan(dir, prefix, ext)
	if err != nil {
		return nil, err
	}
	paths := make([]string, len(files))
	for i, f := range files {
		name := f.base
		if !f.plain {
			name += ".gz"
		}
		paths[i] = filepath.Join(dir, name)
	}
	return paths, nil
}

// fileInfo describes one file of a Writer's, by its uncompressed base name.
type fileInfo struct {
	base  string
	start time.Time // from the name
	plain bool      // base exists
	gz    bool      // base.gz exists
}

// name returns the name of the copy to read: the plain file if it exists
// (a crash during compression leaves both, and the .gz may be incomplete).
func (f fileInfo) name() string {
	if f.plain {
		return f.base
	}
	return f.base + ".gz"
}

// scan returns the Writer files in dir sorted by name, and the names of
// leftover .gz.tmp files.
func scan(dir, prefix, ext string) (files []fileInfo, tmps []string, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("rotate: %w", err)
	}
	index := make(map[string]int)
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		name := e.Name()
		base := name
		start, ok := parseName(base, prefix, ext)
		if !ok {
			base, ok = strings.CutSuffix(name, ".gz")
			if !ok {
				base, ok = strings.CutSuffix(name, ".gz.tmp")
			}
			if !ok {
				continue
			}
			if start, ok = parseName(base, prefix, ext); !ok {
				continue
			}
		}
		i, seen := index[base]
		if !seen {
			i = len(files)
			index[base] = i
			files = append(files, fileInfo{base: base, start: start})
		}
		switch f := &files[i]; {
		case name == base:
			f.plain = true
		case name == base+".gz":
			f.gz = true
		default:
			tmps = append(tmps, name)
		}
	}
	files = slices.DeleteFunc(files, func(f fileInfo) bool { return !f.plain && !f.gz })
	slices.SortFunc(files, func(a, b fileInfo) int { return cmp.Compare(a.base, b.base) })
	return files, tmps, nil
}

// parseName returns the start time in name, if name is a Writer file name.
func parseName(name, prefix, ext string) (time.Time, bool) {
	ts, ok := strings.CutPrefix(name, prefix+"-")
	if !ok {
		return time.Time{}, false
	}
	if ts, ok = strings.CutSuffix(ts, ext); !ok || len(ts) != len(timeLayout) {
		return time.Time{}, false
	}
	t, err := time.Parse(timeLayout, ts)
	if err != nil || t.Format(timeLayout) != ts {
		return time.Time{}, false
	}
	return t, true
}

// A job is work for the background goroutine.
type job struct {
	closed string   // path of a file the Writer stopped writing to
	old    []string // base names of files found by New, to compress
	tmps   []string // names of leftover .gz.tmp files, to remove
	retain bool     // apply retention afterwards (implied by closed)
	err    error    // to pass to OnError
}

// post hands j to the background goroutine without blocking, so a slow
// compression never holds up the leader.
func (w *Writer) post(j job) {
	w.bgMu.Lock()
	w.jobs = append(w.jobs, j)
	w.bgMu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// background runs posted jobs until Close, then finishes the rest.
// It also makes the free-space checks (see Options.OnLowSpace): those that
// were asked for, and one every spaceCheckEvery.
func (w *Writer) background() {
	defer close(w.bgDone)
	var zw *gzip.Writer
	var space *spaceWatch
	var timer <-chan time.Time
	if w.onLowSpace != nil {
		space = &spaceWatch{timer: time.NewTimer(spaceCheckEvery)}
		defer space.timer.Stop()
		timer = space.timer.C
	}
	for {
		select {
		case <-w.wake:
			zw = w.drain(zw)
		case <-timer:
			w.spaceReq.Store(true)
		case <-w.stopBg:
			w.drain(zw)
			return
		}
		if space != nil {
			w.pollSpace(space)
		}
	}
}

func (w *Writer) drain(zw *gzip.Writer) *gzip.Writer {
	for {
		w.bgMu.Lock()
		jobs := w.jobs
		w.jobs = nil
		w.bgMu.Unlock()
		if len(jobs) == 0 {
			return zw
		}
		retain, closed := false, false
		for _, j := range jobs {
			if j.err != nil {
				w.onError(j.err)
			}
			for _, name := range j.tmps {
				if err := os.Remove(filepath.Join(w.dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					w.onError(fmt.Errorf("rotate: %w", err))
				}
			}
			if j.closed != "" {
				if w.onRotate != nil {
					w.onRotate(j.closed)
				}
				if w.compress {
					zw = w.gzip(zw, j.closed)
				}
			}
			for _, base := range j.old {
				zw = w.gzip(zw, filepath.Join(w.dir, base))
			}
			retain = retain || j.retain || j.closed != ""
			closed = closed || j.closed != ""
		}
		if retain {
			w.retain()
		}
		if closed && w.onLowSpace != nil {
			w.spaceReq.Store(true) // after a rotation and its retention
		}
	}
}

// gzip replaces path by path.gz such that a crash at any point leaves at
// least one complete copy: the .gz is written under a temporary name,
// synced and renamed, and the rename synced, before path is removed. It
// returns the gzip.Writer for reuse.
func (w *Writer) gzip(zw *gzip.Writer, path string) *gzip.Writer {
	err := func() error {
		in, err := os.OpenFile(path, os.O_RDONLY|oNoFollow|oNonblock, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed by retention
		}
		if err != nil {
			return err
		}
		defer in.Close()
		if fi, err := in.Stat(); err != nil {
			return err
		} else if !fi.Mode().IsRegular() {
			return fmt.Errorf("not a regular file: %s", FileKind(fi.Mode()))
		}
		// Never O_TRUNC: whoever may create entries in the directory could
		// have put a symbolic link at this name, and the truncation and the
		// gzip data would go to its target. A leftover is removed instead
		// (which never follows a link) and the file created anew; O_EXCL
		// fails if anything took the name again meanwhile.
		tmp := path + ".gz.tmp"
		if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
		if err != nil {
			return err
		}
		if zw == nil {
			zw = gzip.NewWriter(out)
		} else {
			zw.Reset(out)
		}
		_, err = io.Copy(zw, in)
		if err == nil {
			err = zw.Close()
		}
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(tmp)
			return err
		}
		// Retention may have removed path while it was being copied (a
		// Close runs retention on its caller's goroutine): under its lock,
		// a .gz is made only of a file that is still there, or a removed
		// file would come back compressed.
		w.retainMu.Lock()
		defer w.retainMu.Unlock()
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			os.Remove(tmp)
			return nil
		}
		if err := os.Rename(tmp, path+".gz"); err != nil {
			os.Remove(tmp)
			return err
		}
		if err := syncDir(w.dir); err != nil {
			return err
		}
		if err := os.Remove(path); err != nil {
			return err
		}
		if w.policy != SyncNone {
			return syncDir(w.dir)
		}
		return nil
	}()
	if err != nil {
		w.onError(fmt.Errorf("rotate: compress %s: %w", path, err))
	}
	return zw
}

// retain removes old files by MaxBackups and MaxAge. The open file, and
// anything newer, is never a candidate.
func (w *Writer) retain() {
	if w.maxBackups == 0 && w.maxAge == 0 {
		return
	}
	w.retainMu.Lock()
	defer w.retainMu.Unlock()
	files, _, err := scan(w.dir, w.prefix, w.ext)
	if err != nil {
		w.onError(err)
		return
	}
	// Only now: a file created during the scan is marked active before it
	// exists, so it cannot pass for a backup.
	var active string
	if p := w.active.Load(); p != nil {
		active = filepath.Base(*p)
	}
	backups := len(files)
	for active != "" && backups > 0 && files[backups-1].base >= active {
		backups--
	}
	excess := 0
	if w.maxBackups > 0 && backups > w.maxBackups {
		excess = backups - w.maxBackups
	}
	var cutoff time.Time
	if w.maxAge > 0 {
		cutoff = w.ageNow().Add(-w.maxAge)
	}
	removed := false
	for i := range backups {
		// File i's records all predate file i+1's start.
		old := w.maxAge > 0 && i+1 < len(files) && w.startedBefore(files[i+1], cutoff)
		if i >= excess && !old {
			continue
		}
		if w.beforeRm != nil {
			if err := w.beforeRm(filepath.Join(w.dir, files[i].name())); err != nil {
				if !errors.Is(err, ErrClosed) { // closing: the next start prunes it
					w.onError(fmt.Errorf("rotate: keeping %s: %w", files[i].base, err))
				}
				break
			}
		}
		w.forgetBorn(files[i].base)
		for _, name := range []string{files[i].base, files[i].base + ".gz"} {
			if err := os.Remove(filepath.Join(w.dir, name)); err == nil {
				removed = true
			} else if !errors.Is(err, fs.ErrNotExist) {
				w.onError(fmt.Errorf("rotate: %w", err))
			}
		}
	}
	if removed && w.policy != SyncNone {
		if err := syncDir(w.dir); err != nil {
			w.onError(fmt.Errorf("rotate: %w", err))
		}
	}
}

// monoNow is the monotonic clock of MaxAge (time.Now carries a monotonic
// reading, which Sub uses); a variable for the tests, taken by New.
var monoNow = time.Now

// ageBase returns the wall time that retention by MaxAge counts from: now,
// or the modification time of the newest of files in dir if that is
// earlier (see Options.MaxAge).
func ageBase(now time.Time, dir string, files []fileInfo) time.Time {
	now = now.Round(0) // the wall time, not a monotonic reading
	if n := len(files); n > 0 {
		if fi, err := os.Lstat(filepath.Join(dir, files[n-1].name())); err == nil && fi.ModTime().Before(now) {
			return fi.ModTime()
		}
	}
	return now
}

// noteBorn remembers, for MaxAge, the monotonic time at which this Writer
// created the file name.
func (w *Writer) noteBorn(name string) {
	if w.maxAge <= 0 {
		return
	}
	w.bornMu.Lock()
	w.born[name] = w.mono()
	w.bornMu.Unlock()
}

func (w *Writer) forgetBorn(name string) {
	w.bornMu.Lock()
	delete(w.born, name)
	w.bornMu.Unlock()
}

// startedBefore reports whether f started more than MaxAge ago: by the
// monotonic time since this Writer created it, which no step of the wall
// clock changes (one that was wrong when the file was named and set right
// since, either way), or, for a file an earlier Writer created, by its
// name's time against cutoff (ageNow - MaxAge).
func (w *Writer) startedBefore(f fileInfo, cutoff time.Time) bool {
	w.bornMu.Lock()
	born, ok := w.born[f.base]
	w.bornMu.Unlock()
	if ok {
		return w.mono().Sub(born) > w.maxAge
	}
	return f.start.Before(cutoff)
}

// ageNow returns the time up to which retention counts a file's age: the
// clock, but never ahead of the monotonic time elapsed since New allows.
func (w *Writer) ageNow() time.Time {
	now := w.now().Round(0) // compare wall times, not monotonic readings
	if limit := w.ageBase.Add(w.mono().Sub(w.monoBase)); now.After(limit) {
		return limit
	}
	return now
}

// ticker fsyncs for SyncInterval, through the leader role so that it never
// races a write.
func (w *Writer) ticker(every time.Duration) {
	defer close(w.tickDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.stopTick:
			return
		case <-t.C:
			if err := w.control(opTick); err != nil && err != ErrClosed {
				w.post(job{err: err})
			}
		}
	}
}

// Open opens a file that List returned, for reading, through gzip if it is
// compressed. A plain file that was compressed since it was listed is
// opened as its .gz, which holds the same bytes: a reader of a live
// directory does not fail because the Writer compressed a file meanwhile.
func Open(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !strings.HasSuffix(path, ".gz") {
		path += ".gz"
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(path, ".gz") {
		return f, nil
	}
	zr, err := NewGzipReader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return gzReader{zr, f}, nil
}

type gzReader struct {
	io.Reader
	f *os.File
}

func (g gzReader) Close() error { return g.f.Close() }

// NewGzipReader reads every gzip member of r in turn, as gzip -d does,
// including its acceptance of zero bytes after the last member (padding,
// e.g. by a tape or a block device): they end the stream. Other bytes
// after a member must be another member.
func NewGzipReader(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	return &gzipMembers{br: br, zr: zr}, nil
}

type gzipMembers struct {
	br  *bufio.Reader
	zr  *gzip.Reader
	err error // sticky: the stream ended (io.EOF) or failed
}

func (g *gzipMembers) Read(p []byte) (int, error) {
	for g.err == nil {
		n, err := g.zr.Read(p)
		if err != io.EOF {
			if err != nil {
				g.err = err
			}
			return n, err
		}
		if n > 0 {
			return n, nil // the member's end again on the next call
		}
		g.err = g.nextMember()
	}
	return 0, g.err
}

// nextMember starts the member after the one just read, or reports io.EOF
// when only zero bytes (or nothing) follow.
func (g *gzipMembers) nextMember() error {
	b, err := g.br.Peek(1)
	if err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return err
	}
	if b[0] != 0 {
		if err := g.zr.Reset(g.br); err != nil {
			return err
		}
		g.zr.Multistream(false)
		return nil
	}
	for {
		c, err := g.br.ReadByte()
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
		if c != 0 {
			return fmt.Errorf("%w: other bytes after zero padding", gzip.ErrHeader)
		}
	}
}
