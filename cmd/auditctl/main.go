// Command auditctl manages slogaudit audit directories: it creates keys,
// verifies the hash chain of the audit files, queries and follows their
// events and computes redaction fingerprints.
//
//	auditctl keygen -o FILE [--name SIGNER]
//	auditctl verify [--key-file K0] [--checkpoint-key FILE.pub] [--trusted-checkpoint FILE] [--json] DIR
//	auditctl query [--key-file K0] [--checkpoint-key FILE.pub] [filters] [--order newest|oldest] [--limit N] [--json] DIR
//	auditctl tail [--key-file K0] [--checkpoint-key FILE.pub] [filters] [-n N] [--json] [--poll D] DIR
//	auditctl fingerprint --key-file FILE [VALUE]
//
// verify exits 0 when the files are intact (warnings only: TORN_TAIL after a
// crash, an incomplete last line that begins as the next line would, other
// bytes without a newline being MODIFIED; UNANCHORED records after the last
// checkpoint, GAP for files removed
// by retention as a pruned record attests), 1 when anything is invalid (an
// audit file that cannot be read, such as a corrupt .gz, is MODIFIED) and 2
// for usage and I/O errors, a wrong key included: a --key-file or
// --checkpoint-key that is not the trail's (WRONG_KEY, with nothing else
// found; stderr names the key the trail needs).
//
// -h or --help, of auditctl or of a command, prints the usage on stdout and
// exits 0; a flag error prints it on stderr and exits 2.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/chain"
)

// Exit codes.
const (
	exitOK      = 0
	exitInvalid = 1
	exitUsage   = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// keygenUsage and verifyUsage are the synopses of auditctl keygen and
// verify, for the command's usage and their own.
const keygenUsage = `  auditctl keygen -o FILE [--name SIGNER]          write a new 32-byte MAC key K(0) to FILE (mode 0600),
                                                   the checkpoint signer FILE.signer (0600) and its
                                                   verifier key FILE.pub; exit 0, or 2 when one of
                                                   them exists or cannot be written (none is left)
`

const verifyUsage = `  auditctl verify [--key-file K0] [--checkpoint-key FILE.pub] [--trusted-checkpoint FILE] [--json] DIR
                                                   verify the audit files in DIR: exit 0 intact
                                                   (warnings allowed: TORN_TAIL, an incomplete last
                                                   line as a crash leaves it, beginning as the next
                                                   line would; UNANCHORED; GAP), 1 invalid, 2 usage
                                                   or I/O error, or a key that is not the trail's
`

var usage = "usage:\n" + keygenUsage + verifyUsage + queryUsage + tailUsage + fingerprintUsage

// setUsage makes fs print the synopsis of its command and its flags, as
// -h and a flag error do, to fs's output: stdout or stderr, as parse
// decides.
func setUsage(fs *flag.FlagSet, synopsis string) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage:\n%s\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "keygen":
		return keygen(args[1:], stdout, stderr)
	case "verify":
		return verify(args[1:], stdout, stderr)
	case "query":
		return queryCmd(args[1:], stdout, stderr)
	case "tail":
		return tailCmd(args[1:], stdout, stderr)
	case "fingerprint":
		return fingerprintCmd(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--h", "--help": // the flag package's forms of -h
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "auditctl: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

// parse parses flags that may come before or after the positional
// arguments, and returns the positional ones. What the flag package prints
// goes to stdout when it answers -h or --help (flag.ErrHelp: the command
// then exits 0, see parseExit), to fs's output (stderr) for a flag error.
// It prints the usage before it returns the error that tells the two
// apart, so the text is held until then.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) (pos []string, err error) {
	stderr := fs.Output()
	var printed bytes.Buffer
	fs.SetOutput(&printed)
	defer func() {
		fs.SetOutput(stderr)
		to := stderr
		if errors.Is(err, flag.ErrHelp) {
			to = stdout
		}
		to.Write(printed.Bytes())
	}()
	for {
		if err = fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseExit is the exit code for an error of parse: help that was asked
// for and printed is a success, as for the flag package's ExitOnError;
// any other flag error is a usage error.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitUsage
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("auditctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func keygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", stderr)
	setUsage(fs, keygenUsage)
	out := fs.String("o", "", "key `FILE` to create (must not exist); also writes FILE.signer and FILE.pub")
	host, _ := os.Hostname()
	name := fs.String("name", "slogaudit-"+host, "`SIGNER`: the checkpoint signer key's name, which its notes' signatures carry")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return parseExit(err)
	}
	if *out == "" || len(pos) != 0 {
		fmt.Fprint(stderr, "auditctl keygen: -o FILE is required\n")
		fs.Usage()
		return exitUsage
	}
	// All three must be new: check before writing any, and take back
	// what was written if a later one fails, so that a failed keygen
	// leaves nothing that makes the next one fail.
	for _, p := range []string{*out, *out + ".signer", *out + ".pub"} {
		if _, err := os.Lstat(p); err == nil || !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "auditctl keygen: %s exists (or cannot be checked): nothing written\n", p)
			return exitUsage
		}
	}
	skey, vkey, err := chain.GenerateSigner(*name)
	if err != nil {
		fmt.Fprintf(stderr, "auditctl keygen: %v\n", err)
		return exitUsage
	}
	var written []string
	undo := func(err error) int {
		for _, p := range written {
			os.Remove(p)
		}
		fmt.Fprintf(stderr, "auditctl keygen: %v\n", err)
		return exitUsage
	}
	for _, f := range []struct {
		path, text string
		mode       os.FileMode
	}{{*out + ".signer", skey + "\n", 0o600}, {*out + ".pub", vkey + "\n", 0o644}} {
		if err := writeNew(f.path, f.text, f.mode); err != nil {
			return undo(err)
		}
		written = append(written, f.path)
	}
	key := chain.GenerateKey()
	if err := chain.WriteKeyFile(*out, key); err != nil {
		return undo(err)
	}
	fmt.Fprintf(stdout, `wrote %[1]s         the initial MAC key K(0), key_id %[2]s (mode 0600)
wrote %[1]s.signer  the checkpoint signing key (mode 0600)
wrote %[1]s.pub     the checkpoint verifier key (public)

1. Copy %[1]s to offline storage NOW (a password manager, a vault, paper): it is K(0).
   The service evolves %[1]s in place at every epoch (KeyFile), erasing K(0) from the
   host; only K(0) verifies every epoch, and whoever steals the host's key later
   cannot forge earlier records.
2. Give the service %[1]s as its key file and %[1]s.signer as its signer.
3. Keep %[1]s.pub with the verifiers and in the SIEM that receives the checkpoints.
4. Verify with:
     auditctl verify --key-file OFFLINE-COPY-OF-%[3]s --checkpoint-key %[1]s.pub AUDIT_DIR
   and against the newest checkpoint kept off the host (the SIEM's, or the newest line of
   AUDIT_DIR/audit.checkpoints copied away: ssh HOST tail -n 1 AUDIT_DIR/audit.checkpoints > ckpt.json):
     ... --trusted-checkpoint ckpt.json
`, *out, chain.KeyID(key), filepath.Base(*out))
	return exitOK
}

func writeNew(path, text string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func verify(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("verify", stderr)
	setUsage(fs, verifyUsage)
	keyFile := fs.String("key-file", "", "`FILE` holding the initial MAC key K(0), as keygen wrote it and kept offline (required for keyed audit files)")
	ckptKey := fs.String("checkpoint-key", "", "`FILE` holding the checkpoint verifier key (keygen's FILE.pub): check the checkpoints' signatures")
	trustedFile := fs.String("trusted-checkpoint", "", "`FILE` holding a signed checkpoint kept off the host: the note, a line of DIR/audit.checkpoints (tail -n 1) or a copy of that file (its newest note is taken); files behind it are ROLLBACK or TRUNCATED (needs --checkpoint-key)")
	asJSON := fs.Bool("json", false, "print a machine-readable report")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return parseExit(err)
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, "auditctl verify: exactly one DIR is required\n")
		return exitUsage
	}
	var key []byte
	if *keyFile != "" {
		if key, err = chain.ReadKeyFile(*keyFile); err != nil {
			fmt.Fprintf(stderr, "auditctl verify: %v\n", keyFileError(err))
			return exitUsage
		}
	}
	opts := chain.VerifyOptions{Key: key}
	if *ckptKey != "" {
		if opts.CheckpointKey, err = chain.ReadVerifierFile(*ckptKey); err != nil {
			fmt.Fprintf(stderr, "auditctl verify: %v\n", err)
			return exitUsage
		}
	}
	if *trustedFile != "" {
		if *ckptKey == "" {
			fmt.Fprint(stderr, "auditctl verify: --trusted-checkpoint needs --checkpoint-key FILE.pub, the verifier key of the checkpoints' signer\n")
			return exitUsage
		}
		if opts.Trusted, err = os.ReadFile(*trustedFile); err != nil {
			fmt.Fprintf(stderr, "auditctl verify: %v\n", err)
			return exitUsage
		}
	}
	if f, ok := stderr.(*os.File); ok && isTerminal(f) {
		start := time.Now()
		opts.Progress = func(done, total int64) {
			if time.Since(start) > time.Second {
				fmt.Fprintf(stderr, "\rverifying: %d of %d MB", done>>20, total>>20)
				if done == total {
					fmt.Fprintln(stderr)
				}
			}
		}
	}
	rep, err := chain.Verify(pos[0], opts)
	if err != nil {
		if errors.Is(err, chain.ErrKeyRequired) {
			err = fmt.Errorf("%w: pass --key-file", err)
		} else if errors.Is(err, chain.ErrTrustedCheckpoint) {
			err = fmt.Errorf("--trusted-checkpoint %s: %w", *trustedFile, err)
		}
		fmt.Fprintf(stderr, "auditctl verify: %v\n", err)
		return exitUsage
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "auditctl verify: %v\n", err)
			return exitUsage
		}
	} else if err := rep.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "auditctl verify: %v\n", err)
		return exitUsage
	}
	// A key that is not the trail's: said on stderr, in the flags' terms;
	// a usage error unless something else was found.
	for _, s := range wrongKeys(rep, *keyFile, *ckptKey, opts.CheckpointKey) {
		fmt.Fprintf(stderr, "auditctl verify: %s\n", s)
	}
	switch {
	case rep.WrongKeyOnly():
		return exitUsage
	case !rep.Intact:
		return exitInvalid
	}
	return exitOK
}

// wrongKeys says what the WRONG_KEY findings of rep are in the terms of
// the flags that gave the keys (keyFile, ckptKeyFile holding ckptKey): the
// key the trail is sealed with (or its checkpoints signed by), the key
// given, and that no event could be verified with it. verify, query and
// tail say it in these words.
func wrongKeys(rep *chain.Report, keyFile, ckptKeyFile string, ckptKey note.Verifier) []string {
	var says []string
	for _, p := range rep.Chain {
		if p.Class != chain.WrongKey {
			continue
		}
		if rep.TrailKeyID != "" && strings.HasPrefix(p.Detail, "the trail is sealed") {
			says = append(says, fmt.Sprintf("wrong key: the trail is sealed with key_id %s, the key given (--key-file %s) is key_id %s: no event could be verified with it; --key-file takes the trail's initial key K(0)", rep.TrailKeyID, keyFile, rep.KeyID))
		} else if len(rep.CheckpointSigners) > 0 && strings.HasPrefix(p.Detail, "the checkpoints are signed") {
			says = append(says, wrongCheckpointKey(rep.CheckpointSigners, ckptKeyFile, ckptKey, keyFile != ""))
		}
	}
	return says
}

// wrongCheckpointKey says that no checkpoint note verifies with ckptKey
// (from the file ckptKeyFile), which signers' keys they need, and what that
// leaves: the events are still checked by their MACs when K(0) was given
// (withKey), and not at all by the notes.
func wrongCheckpointKey(signers []string, ckptKeyFile string, ckptKey note.Verifier, withKey bool) string {
	leaves := "no checkpoint signature could be checked with it, so no event is verified by the checkpoints (give --key-file K(0) to check the events' MACs)"
	if withKey {
		leaves = "no checkpoint signature could be checked with it (the events' MACs are checked with --key-file)"
	}
	return fmt.Sprintf("wrong checkpoint key: checkpoints are signed by %s, --checkpoint-key %s is %s+%08x: %s; it takes the verifier key (FILE.pub) of their signer", strings.Join(signers, ", "), ckptKeyFile, ckptKey.Name(), ckptKey.KeyHash(), leaves)
}

// keyFileError returns err, an error reading the file of --key-file, with
// what the flag takes when the file is not there.
func keyFileError(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w; --key-file takes the trail's initial key K(0): the FILE auditctl keygen -o FILE wrote, kept offline (the example service copies it to FILE.initial); for a new trail, create one with auditctl keygen -o FILE", err)
	}
	return err
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
