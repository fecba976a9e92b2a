package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/slogaudit/slogaudit/query"
)

// tailUsage is the synopsis of auditctl tail, for the command's usage.
const tailUsage = `  auditctl tail DIR [--key-file K0] [--checkpoint-key FILE.pub] [--since T] [--until T]
        [--event E] [--action A] [--resource R] [--resource-type T] [--principal P]
        [--client C] [--status S] [--trace-id ID] [-n N] [--json] [--poll D]
                                                   print the last N matching events (default 10), then
                                                   follow new ones across rotations until interrupted;
                                                   exit 0 when stopped, 2 usage or I/O error
`

// tailCmd implements auditctl tail; it runs until SIGINT or SIGTERM.
func tailCmd(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return tail(ctx, args, stdout, stderr)
}

// tail prints the last -n matching events of DIR, oldest first, then each
// matching event as it is written (following the newest file and the files
// that rotation starts), in the format of auditctl query, until ctx is
// done. An event printed whose write the writer then rolled back (see
// query.Reader.Follow) is followed by a line "RETRACTED  seq N  (file): …"
// (with --json, {"retracted":[N,...],"file":"..."}), and then by the
// record that took its seq. At the first event that does not verify, a key
// given that is not the trail's is said on stderr, as verify says it. It
// exits 0 when stopped and 2 for usage and I/O errors.
func tail(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("tail", stderr)
	setUsage(fs, tailUsage)
	keyFile, ckptKey := keyFlags(fs)
	filters, since, until := filterFlags(fs)
	n := fs.Int("n", 10, "print the last `N` matching events first (0: only new ones)")
	asJSON := fs.Bool("json", false, "print one JSON object per event and line")
	poll := fs.Duration("poll", 250*time.Millisecond, "look for new records every `D`")
	pos, err := parse(fs, args, stdout)
	if err != nil {
		return parseExit(err)
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "auditctl tail: "+format+"\n", args...)
		return exitUsage
	}
	if len(pos) != 1 {
		return fail("exactly one DIR is required")
	}
	if *n < 0 || *n > query.MaxLimit {
		return fail("-n must be from 0 to %d", query.MaxLimit)
	}
	if *poll <= 0 {
		return fail("--poll must be positive")
	}
	req, err := filterRequest(url.Values{}, filters, *since, *until)
	if err != nil {
		return fail("%v", err)
	}
	r, checkKeys, err := openReader(pos[0], *keyFile, *ckptKey)
	if err != nil {
		return fail("%v", err)
	}

	bw := bufio.NewWriter(stdout)
	keysChecked := false
	print := func(e query.Event) error {
		if *asJSON {
			b, err := json.Marshal(e)
			if err != nil {
				return fmt.Errorf("seq %d: %w", e.Seq, err)
			}
			bw.Write(append(b, '\n'))
		} else {
			writeEventText(bw, e)
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		// Once, at the first event that does not verify: a key given
		// that is not the trail's, as verify says it.
		if !e.Verified && !keysChecked {
			keysChecked = true
			for _, s := range checkKeys() {
				fmt.Fprintf(stderr, "auditctl tail: %s\n", s)
			}
		}
		return nil
	}
	// The last N up to the head, then everything after it: nothing twice,
	// nothing missed in between.
	head, err := r.Head()
	if err != nil {
		return fail("%v", err)
	}
	var last []query.Event // printed before following
	if *n > 0 && head > 0 {
		req.Limit = *n
		page, err := r.Query(ctx, req)
		if err != nil {
			return fail("%v", err)
		}
		last = slices.DeleteFunc(page.Events, func(e query.Event) bool { return e.Seq > head })
		slices.Reverse(last)
		for _, e := range last {
			if err := print(e); err != nil {
				return fail("%v", err)
			}
		}
	}
	unreadable := func(file string, err error) {
		bw.Flush()
		if errors.Is(err, query.ErrLineTooLong) {
			fmt.Fprintf(stderr, "auditctl tail: %s: %v: passed over, the lines after it follow (run auditctl verify)\n", file, err)
			return
		}
		fmt.Fprintf(stderr, "auditctl tail: %s could not be read to its end (%v): its events past the damage are missing (run auditctl verify)\n", file, err)
	}
	// tail runs in another process than the writer: it cannot know
	// whether a line of the file being written is committed, and prints
	// it; if the writer then rolls it back (a failed fsync), Follow says
	// so and the records that took the seqs follow.
	retracted := func(file string, seqs []uint64) {
		if *asJSON {
			b, _ := json.Marshal(struct {
				Retracted []uint64 `json:"retracted"`
				File      string   `json:"file"`
			}{seqs, file})
			bw.Write(append(b, '\n'))
		} else {
			for _, seq := range seqs {
				fmt.Fprintf(bw, "RETRACTED  seq %d  (%s): the writer rolled its write back; not in the audit trail\n", seq, file)
			}
		}
		bw.Flush()
	}
	err = r.Follow(ctx, query.FollowOptions{Filter: req.Filter, After: head, Poll: *poll, OnUnreadable: unreadable,
		OnRetracted: retracted, Shown: last}, print)
	if err != nil && ctx.Err() == nil {
		return fail("%v", err)
	}
	return exitOK
}
