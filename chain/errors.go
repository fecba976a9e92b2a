package chain

import "strings"

// nestedError is an error of this package wrapped in another of its errors,
// whose message begins with "chain: " already: it says err's message
// without that prefix ("chain: trusted checkpoint: bad checkpoint: …", not
// "chain: trusted checkpoint: chain: bad checkpoint: …"), and unwraps to
// err, so that errors.Is and errors.As find in it what they find in err.
type nestedError struct{ err error }

func (e nestedError) Error() string { return strings.TrimPrefix(e.err.Error(), "chain: ") }

func (e nestedError) Unwrap() error { return e.err }
