// Command auditctl manages slogaudit audit directories: it creates keys,
// verifies the hash chain of the audit files, queries and follows their
// events and computes redaction fingerprints.
//
//	auditctl keygen -o FILE
//	auditctl verify [--key-file FILE] [--json] DIR
//	auditctl query [--key-file FILE] [filters] [--json] DIR
//	auditctl tail [--key-file FILE] [filters] [-n N] [--json] DIR
//	auditctl fingerprint --key-file FILE [VALUE]
//
// verify exits 0 when the files are intact, 1 when anything is invalid and 2
// for usage and I/O errors.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

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

var usage = `usage:
  auditctl keygen -o FILE                          write a new 32-byte MAC key (mode 0600)
  auditctl verify [--key-file FILE] [--json] DIR   verify the audit files in DIR
` + queryUsage + tailUsage + fingerprintUsage

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
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "auditctl: unknown command %q\n%s", args[0], usage)
	return exitUsage
}

// parse parses flags that may come before or after the positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("auditctl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

func keygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", stderr)
	out := fs.String("o", "", "key file to create (must not exist)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if *out == "" || len(pos) != 0 {
		fmt.Fprint(stderr, "auditctl keygen: -o FILE is required\n")
		return exitUsage
	}
	key := chain.GenerateKey()
	if err := chain.WriteKeyFile(*out, key); err != nil {
		fmt.Fprintf(stderr, "auditctl keygen: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "wrote key %s (key_id %s, mode 0600)\n", *out, chain.KeyID(key))
	fmt.Fprintf(stdout, "Keep a copy offline: whoever holds it can rewrite the audit trail undetected.\n")
	fmt.Fprintf(stdout, "Verify with: auditctl verify --key-file %s AUDIT_DIR\n", *out)
	return exitOK
}

func verify(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("verify", stderr)
	keyFile := fs.String("key-file", "", "MAC key file (required for keyed audit files)")
	asJSON := fs.Bool("json", false, "print a machine-readable report")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, "auditctl verify: exactly one DIR is required\n")
		return exitUsage
	}
	var key []byte
	if *keyFile != "" {
		if key, err = chain.ReadKeyFile(*keyFile); err != nil {
			fmt.Fprintf(stderr, "auditctl verify: %v\n", err)
			return exitUsage
		}
	}
	rep, err := chain.Verify(pos[0], chain.VerifyOptions{Key: key})
	if err != nil {
		if errors.Is(err, chain.ErrKeyRequired) {
			err = fmt.Errorf("%w: pass --key-file", err)
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
	if !rep.Intact {
		return exitInvalid
	}
	return exitOK
}
