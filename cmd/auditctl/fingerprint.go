package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/redact"
)

const fingerprintUsage = `  auditctl fingerprint --key-file FILE [VALUE]     print the redaction fingerprint of VALUE
                                                   (read from stdin when omitted); FILE holds
                                                   the key in hex (auditctl keygen writes one)
                                                   or as raw bytes, at least 16 bytes either way;
                                                   exit 0, or 2 for usage and key errors
`

// stdin is the input of fingerprint; tests replace it.
var stdin io.Reader = os.Stdin

// fingerprintCmd answers "was this leaked token used?": it computes the
// fingerprint that redaction in Fingerprint mode writes in place of a value,
// so an investigator can search the audit trail for it. Reading the value
// from stdin keeps it out of the shell history.
func fingerprintCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("fingerprint", stderr)
	setUsage(fs, fingerprintUsage)
	keyFile := fs.String("key-file", "", "the deployment's fingerprint key `FILE` (required)")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return parseExit(err)
	}
	if *keyFile == "" || len(pos) > 1 {
		fs.Usage()
		return exitUsage
	}
	key, err := readFingerprintKey(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "auditctl fingerprint: %v\n", err)
		return exitUsage
	}
	var value string
	if len(pos) == 1 {
		value = pos[0]
		// Kept for scripts, but the secret is now in the shell's history
		// and, while this runs, in the process list.
		fmt.Fprint(stderr, "auditctl fingerprint: warning: the value was given as an argument (shell history, process list); pipe it on stdin instead\n")
	} else {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			fmt.Fprintf(stderr, "auditctl fingerprint: %v\n", err)
			return exitUsage
		}
		value = strings.TrimRight(line, "\r\n")
	}
	if value == "" {
		fmt.Fprint(stderr, "auditctl fingerprint: empty value\n")
		return exitUsage
	}
	fmt.Fprintln(stdout, redact.FingerprintOf(key, value))
	return exitOK
}

// readFingerprintKey reads the key of redact.Options.FingerprintKey: hex
// digits (an even number, at least 2*redact.MinFingerprintKeyLen; the file
// auditctl keygen writes is one) or, for any other content, the raw bytes,
// at least redact.MinFingerprintKeyLen of them. Like a key file of chain,
// it must not be accessible to group or others.
func readFingerprintKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Checkpoint keys are text a raw key would take as is: say what the
	// file is (before its mode: the public key is 0644 by design).
	switch text := strings.TrimSpace(string(data)); {
	case strings.HasPrefix(text, "PRIVATE+KEY+"):
		return nil, fmt.Errorf("key file %s is a checkpoint signer key (FILE.signer of auditctl keygen -o FILE), not a fingerprint key", path)
	case isVerifierKey(text):
		return nil, fmt.Errorf("key file %s is a checkpoint verifier key (FILE.pub of auditctl keygen -o FILE), not a fingerprint key", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %v; it must not be accessible to group or others (chmod 600)", path, fi.Mode().Perm())
	}
	if text := bytes.TrimSpace(data); len(text) >= 2*redact.MinFingerprintKeyLen && len(text)%2 == 0 {
		if key, err := hex.DecodeString(string(text)); err == nil {
			return key, nil
		}
	}
	if len(data) < redact.MinFingerprintKeyLen {
		return nil, fmt.Errorf("key file %s holds %d bytes: a fingerprint key has at least %d (or twice as many hex digits)", path, len(data), redact.MinFingerprintKeyLen)
	}
	return data, nil
}

func isVerifierKey(text string) bool {
	_, err := note.NewVerifier(text)
	return err == nil
}
