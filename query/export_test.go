package query

// FilesRead returns how many files r has read line by line.
func (r *Reader) FilesRead() int64 { return r.filesRead.Load() }

// EncodeCursor exposes encodeCursor.
var EncodeCursor = encodeCursor

// SetMaxLine sets the longest line readers read (MaxLineBytes) until the
// returned func restores it.
func SetMaxLine(n int) (restore func()) {
	old := maxLine
	maxLine = n
	return func() { maxLine = old }
}
