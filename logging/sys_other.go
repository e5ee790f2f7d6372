//go:build !linux

package logging

import (
	"errors"
	"os"
)

// fdDevIno is unsupported off Linux: there is no journal there.
func fdDevIno(int) (dev, ino uint64, err error) {
	return 0, 0, errors.New("JOURNAL_STREAM detection needs Linux")
}

// isTerminal is false off Linux, which makes "auto" pick JSON.
func isTerminal(int) bool { return false }

func sealedMemfd([]byte) (*os.File, error) {
	return nil, errors.New("memfd needs Linux")
}
