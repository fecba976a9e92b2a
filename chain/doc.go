// Package chain is slogaudit's tamper-evident file format: it seals audit
// records into hash-chained JSON lines, keyed with HMAC-SHA-256 (or plain
// SHA-256 without a key), writes them through a rotating durable writer, and
// verifies a directory of such files.
//
// Every line is
//
//	{"seq":N,"prev":"<chain value of line N-1>",<body>,"mac":"<MAC of everything before ,"mac">"}
//
// and the chain value of a line is its MAC. Each file begins with an open
// record naming the file before it and ends with a close record. FORMAT.md in
// the repository root specifies the bytes exactly.
//
// A Writer's directories belong to its user. Open refuses, before it reads
// or writes anything, an audit directory or a key file's directory that
// others may change (see rotate.CheckDir; Rotate.AllowSharedDir and
// Options.AllowSharedKeyDir accept one), and a key file that is a symbolic
// link or another user's. It writes no file through a symbolic link: the
// checkpoints file is appended to, and the key file's old bytes are
// erased, only through a descriptor opened with O_NOFOLLOW and checked to
// be a regular file of the process's user; temporary files are created
// with O_EXCL after a leftover is removed.
package chain
