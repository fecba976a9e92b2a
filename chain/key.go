package chain

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/slogaudit/slogaudit/rotate"
)

// KeySize is the length of a chain key in bytes.
const KeySize = 32

// GenerateKey returns KeySize bytes from crypto/rand.
func GenerateKey() []byte {
	k := make([]byte, KeySize)
	rand.Read(k) // never returns an error (crypto/rand, Go 1.24+)
	return k
}

// WriteKeyFile creates path with mode 0600 and writes key to it as 64
// lower-case hex digits and a newline. It refuses to overwrite an existing
// file: replacing a key by accident makes every earlier file unverifiable.
func WriteKeyFile(path string, key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("chain: key must be %d bytes, got %d", KeySize, len(key))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		return fmt.Errorf("chain: write key: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(key) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("chain: write key: %w", err)
	}
	return nil
}

// ReadKeyFile reads a key written by WriteKeyFile (64 hex digits, surrounding
// white space ignored) or a raw 32-byte file. Like ssh with private keys, it
// refuses a file that its group or others may read or write. A file that
// holds another of the keys auditctl keygen writes (the checkpoint
// verifier key FILE.pub, the signer FILE.signer) is refused as what it is,
// whatever its mode. Every error names the file.
//
// It returns the initial key K(0): a key file that a writer has evolved
// (see KeyState) is refused, since it cannot verify earlier epochs.
func ReadKeyFile(path string) ([]byte, error) {
	ks, err := ReadKeyState(path)
	if err != nil {
		return nil, err
	}
	if ks.Epoch != 0 {
		return nil, fmt.Errorf("chain: key file %s has evolved to epoch %d (a writer's forward-secure key); verification needs the initial key K(0): use the copy kept offline", path, ks.Epoch)
	}
	return ks.Key, nil
}

// readPrivate reads a secret file that must hold a key of kind want,
// refusing one that its group or others may read or write, like ssh with
// private keys. A file that holds another of the keys auditctl keygen
// writes is named as such first, before its mode is checked: the public
// verifier key, 0644 by design, given for a secret key is a mix-up, which
// "chmod 600" would not fix.
func readPrivate(path string, want keyKind) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("chain: read key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("chain: %s %s is not a regular file: it is %s", want.what(), path, rotate.FileKind(fi.Mode()))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chain: read key: %w", err)
	}
	if got := kindOf(data); got != kindUnknown && got != want {
		return nil, wrongKindError(path, data, got, want)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("chain: %s %s has mode %v; it must not be accessible to group or others (chmod 600)", want.what(), path, fi.Mode().Perm())
	}
	return data, nil
}

// keyKind is one of the keys auditctl keygen -o FILE writes.
type keyKind int

const (
	kindUnknown  keyKind = iota
	kindMAC              // FILE: the MAC key K(0), or a writer's evolved key state
	kindSigner           // FILE.signer: the checkpoint signer key (private)
	kindVerifier         // FILE.pub: the checkpoint verifier key (public)
)

// what names the file that holds a key of kind k, for errors.
func (k keyKind) what() string {
	switch k {
	case kindSigner:
		return "signer key"
	case kindVerifier:
		return "verifier key"
	}
	return "key file"
}

// kindOf tells which of keygen's keys data holds, by its form.
func kindOf(data []byte) keyKind {
	text := strings.TrimSpace(string(data))
	switch {
	case strings.HasPrefix(text, "PRIVATE+KEY+"):
		return kindSigner
	case bytes.HasPrefix(data, []byte(keyStateHeader+"\n")), len(text) == 2*KeySize && isHex([]byte(text)):
		return kindMAC
	}
	if _, err := note.NewVerifier(text); err == nil {
		return kindVerifier
	}
	return kindUnknown
}

// wrongKindError says that the file at path, given for a key of kind want,
// holds one of kind got, which one, and where the key wanted is when
// keygen's file next to it holds it.
func wrongKindError(path string, data []byte, got, want keyKind) error {
	var is string
	switch got {
	case kindVerifier:
		v, _ := note.NewVerifier(strings.TrimSpace(string(data)))
		is = fmt.Sprintf("is the checkpoint verifier key %s+%08x (FILE.pub of auditctl keygen -o FILE: public, it checks checkpoint signatures)", v.Name(), v.KeyHash())
	case kindSigner:
		is = "is the checkpoint signer key (FILE.signer of auditctl keygen -o FILE: private, it signs checkpoints)"
	case kindMAC:
		is = "is a MAC key (FILE of auditctl keygen -o FILE: K(0), or a writer's evolved key)"
	}
	var need string
	var next []string
	base := path
	for _, suffix := range []string{".pub", ".signer", ".initial"} {
		base = strings.TrimSuffix(base, suffix)
	}
	switch want {
	case kindMAC:
		need = "not a MAC key; the key file is FILE itself, the MAC key (to verify: its initial key K(0), the copy kept offline, FILE.initial for the example service)"
		next = []string{base + ".initial", base}
	case kindSigner:
		need = "not the checkpoint signer key: that is FILE.signer"
		next = []string{base + ".signer"}
	case kindVerifier:
		need = "not the checkpoint verifier key: that is FILE.pub"
		next = []string{base + ".pub"}
	}
	var found []string
	for _, p := range next {
		if fi, err := os.Stat(p); p != path && err == nil && fi.Mode().IsRegular() {
			found = append(found, p)
		}
	}
	if len(found) > 0 {
		need += "; next to it: " + strings.Join(found, ", ")
	}
	return fmt.Errorf("chain: %s %s %s, %s", want.what(), path, is, need)
}

// ParseKey decodes a key from the contents of a key file.
func ParseKey(data []byte) ([]byte, error) {
	k, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("chain: key file: %w", err)
	}
	return k, nil
}

func parseKey(data []byte) ([]byte, error) {
	if len(data) == KeySize && !isHex(data) {
		return bytes.Clone(data), nil
	}
	text := bytes.TrimSpace(data)
	if len(text) != 2*KeySize {
		return nil, fmt.Errorf("must hold 64 hex digits (auditctl keygen writes one); it holds %d bytes", len(data))
	}
	k := make([]byte, KeySize)
	if _, err := hex.Decode(k, text); err != nil {
		return nil, fmt.Errorf("must hold 64 hex digits (auditctl keygen writes one): %w", err)
	}
	return k, nil
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// KeyID names a key without revealing it: the first 16 hex digits of
// HMAC-SHA-256(key, "slogaudit key id v1"). Open records carry it so that a
// verifier can tell "wrong key" from "tampered".
func KeyID(key []byte) string {
	if key == nil {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("slogaudit key id v1"))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// Forward security. The MAC key evolves at the end of every epoch:
//
//	K(e+1) = HMAC-SHA-256(K(e), "slogaudit key v2 epoch " || decimal(e+1))
//
// The writer forgets K(e) once K(e+1) is in use, so whoever steals the key
// on the host later cannot forge records of earlier epochs. A verifier
// starts from the initial key K(0), which the operator keeps offline.

// MaxEpochSteps bounds how far KeyState.At evolves a key in one call
// (about ten seconds of HMACs here): a chain whose pruned part spans more
// epochs than this cannot be verified from K(0) in one go.
const MaxEpochSteps = 1 << 24

// EvolveKey returns the key of epoch next, given the key of epoch next-1.
func EvolveKey(key []byte, next uint64) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("slogaudit key v2 epoch "))
	m.Write(strconv.AppendUint(nil, next, 10))
	return m.Sum(nil)
}

// A KeyState is a chain key at an epoch.
type KeyState struct {
	ID    string // KeyID of the initial key K(0): names the chain's key
	Epoch uint64 // the epoch Key belongs to
	Key   []byte // K(Epoch)
	// From, if not 0, is a seq from which on every line is known to be
	// sealed with Key (Writer.CurrentKey sets it): a verifier given this
	// state checks those lines' MACs whatever epoch numbers the files
	// claim. Not stored in key files.
	From uint64
}

// NewKeyState returns the state of the initial key k0 (epoch 0).
func NewKeyState(k0 []byte) KeyState {
	return KeyState{ID: KeyID(k0), Key: bytes.Clone(k0)}
}

// At returns the state at a later (or the same) epoch. It cannot go back:
// that is the point.
//
// It refuses to evolve more than MaxEpochSteps at once: epoch numbers are
// read from the files before any MAC can be checked, and a forged one must
// not make a verifier or a writer spin for ever.
func (ks KeyState) At(epoch uint64) (KeyState, error) {
	if epoch < ks.Epoch {
		return KeyState{}, fmt.Errorf("chain: the key of epoch %d cannot be derived from the key of epoch %d (keys only evolve forward; use the initial key)", epoch, ks.Epoch)
	}
	if epoch-ks.Epoch > MaxEpochSteps {
		return KeyState{}, fmt.Errorf("chain: epoch %d is more than %d epochs after %d: not deriving its key", epoch, MaxEpochSteps, ks.Epoch)
	}
	k := ks.Key
	for e := ks.Epoch + 1; e <= epoch; e++ {
		k = EvolveKey(k, e)
	}
	return KeyState{ID: ks.ID, Epoch: epoch, Key: bytes.Clone(k)}, nil
}

const keyStateHeader = "slogaudit-key v2"

// MarshalText writes the key file form of ks:
//
//	slogaudit-key v2
//	key_id <16 hex>
//	epoch <decimal>
//	key <64 hex>
func (ks KeyState) MarshalText() ([]byte, error) {
	if len(ks.Key) != KeySize {
		return nil, fmt.Errorf("chain: key must be %d bytes, got %d", KeySize, len(ks.Key))
	}
	return fmt.Appendf(nil, "%s\nkey_id %s\nepoch %d\nkey %x\n", keyStateHeader, ks.ID, ks.Epoch, ks.Key), nil
}

// ParseKeyState decodes a key file: the form MarshalText writes, or an
// initial key (64 hex digits or 32 raw bytes, as WriteKeyFile writes it),
// which is epoch 0.
func ParseKeyState(data []byte) (KeyState, error) {
	ks, err := parseKeyState(data)
	if err != nil {
		return KeyState{}, fmt.Errorf("chain: key file: %w", err)
	}
	return ks, nil
}

func parseKeyState(data []byte) (KeyState, error) {
	if !bytes.HasPrefix(data, []byte(keyStateHeader+"\n")) {
		k, err := parseKey(data)
		if err != nil {
			return KeyState{}, err
		}
		return NewKeyState(k), nil
	}
	var ks KeyState
	var keyHex string
	rest := strings.TrimPrefix(string(data), keyStateHeader+"\n")
	if _, err := fmt.Sscanf(rest, "key_id %s\nepoch %d\nkey %s\n", &ks.ID, &ks.Epoch, &keyHex); err != nil {
		return KeyState{}, fmt.Errorf("malformed %s file: %w", keyStateHeader, err)
	}
	k, err := hex.DecodeString(keyHex)
	if err != nil || len(k) != KeySize || len(ks.ID) != 16 {
		return KeyState{}, errors.New("malformed key or key_id")
	}
	ks.Key = k
	return ks, nil
}

// ReadKeyState reads a key file as ReadKeyFile does, evolved or not.
func ReadKeyState(path string) (KeyState, error) {
	data, err := readPrivate(path, kindMAC)
	if err != nil {
		return KeyState{}, err
	}
	ks, err := parseKeyState(data)
	if err != nil {
		return KeyState{}, fmt.Errorf("chain: key file %s: %w", path, err)
	}
	return ks, nil
}

// WriteKeyState replaces the key file at path by ks, atomically: a crash
// leaves either the old or the new state, never a mix. The old state's
// bytes are then overwritten with zeros through the replaced file, so that
// they do not linger in the file system as far as it overwrites in place
// (copy-on-write file systems and SSDs may keep old blocks; see FORMAT.md).
//
// The new state is written to path.tmp, created with O_EXCL (a leftover is
// erased and removed first) and renamed over path. Nothing is written
// through a symbolic link: zeros go only to a regular file of the
// process's user, opened with O_NOFOLLOW and checked on its descriptor; a
// link at path is replaced, its target left alone.
func WriteKeyState(path string, ks KeyState) error {
	text, err := ks.MarshalText()
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	// A temporary file left by a crash holds a key too: erase it first.
	// Removing a name never follows a link.
	eraseFile(tmp)
	os.Remove(tmp)
	old, _ := openFile(path, os.O_WRONLY, 0)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		if old != nil {
			old.Close()
		}
		return fmt.Errorf("chain: write key: %w", err)
	}
	_, err = f.Write(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	renamed := false
	if err == nil {
		err = os.Rename(tmp, path)
		renamed = err == nil
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if old != nil {
		if renamed {
			// The old key is no longer the file's: erase its bytes (a
			// file system that overwrites in place really forgets them).
			if fi, serr := old.Stat(); serr == nil {
				old.WriteAt(make([]byte, fi.Size()), 0)
				old.Sync()
			}
		}
		old.Close()
	}
	if err != nil {
		if !renamed {
			eraseFile(tmp)
			os.Remove(tmp)
		}
		return fmt.Errorf("chain: write key: %w", err)
	}
	return nil
}

// eraseFile overwrites a file's bytes with zeros, if it exists as a
// regular file of the process's user: not through a symbolic link (see
// openFile).
func eraseFile(path string) {
	f, err := openFile(path, os.O_WRONLY, 0)
	if err != nil {
		return
	}
	if fi, err := f.Stat(); err == nil {
		f.WriteAt(make([]byte, fi.Size()), 0)
		f.Sync()
	}
	f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
