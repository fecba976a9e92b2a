package query

// FilesRead returns how many files r has read line by line.
func (r *Reader) FilesRead() int64 { return r.filesRead.Load() }

// EncodeCursor exposes encodeCursor.
var EncodeCursor = encodeCursor
