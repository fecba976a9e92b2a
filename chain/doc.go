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
package chain
