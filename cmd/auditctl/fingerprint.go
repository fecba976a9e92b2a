package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/slogaudit/slogaudit/chain"
	"github.com/slogaudit/slogaudit/redact"
)

const fingerprintUsage = `  auditctl fingerprint --key-file FILE [VALUE]     print the redaction fingerprint of VALUE
                                                   (read from stdin when omitted)
`

// stdin is the input of fingerprint; tests replace it.
var stdin io.Reader = os.Stdin

// fingerprintCmd answers "was this leaked token used?": it computes the
// fingerprint that redaction in Fingerprint mode writes in place of a value,
// so an investigator can search the audit trail for it. Reading the value
// from stdin keeps it out of the shell history.
func fingerprintCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("fingerprint", stderr)
	keyFile := fs.String("key-file", "", "the deployment's fingerprint key file (required)")
	pos, err := parse(fs, args)
	if err != nil {
		return exitUsage
	}
	if *keyFile == "" || len(pos) > 1 {
		fmt.Fprint(stderr, "usage:\n"+fingerprintUsage)
		return exitUsage
	}
	key, err := chain.ReadKeyFile(*keyFile)
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
