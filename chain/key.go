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
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
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
// refuses a file that its group or others may read or write.
func ReadKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("chain: read key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("chain: key file %s has mode %v; it must not be accessible to group or others (chmod 600)", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("chain: read key: %w", err)
	}
	return ParseKey(data)
}

// ParseKey decodes a key from the contents of a key file.
func ParseKey(data []byte) ([]byte, error) {
	if len(data) == KeySize && !isHex(data) {
		return bytes.Clone(data), nil
	}
	text := bytes.TrimSpace(data)
	if len(text) != 2*KeySize {
		return nil, errors.New("chain: key file must hold 64 hex digits (auditctl keygen writes one)")
	}
	k := make([]byte, KeySize)
	if _, err := hex.Decode(k, text); err != nil {
		return nil, fmt.Errorf("chain: key file: %w", err)
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
