// Package filelock takes advisory, exclusive, non-blocking locks on open
// files (flock on Unix). A lock belongs to the open file description and
// goes away when the file is closed or the process dies, so a lock that can
// be taken proves no live process holds it.
package filelock

import (
	"errors"
	"os"
)

// ErrLocked is returned by TryLock when another open file holds the lock.
var ErrLocked = errors.New("locked by another process")

// ErrUnsupported is returned by TryLock where the OS has no flock.
var ErrUnsupported = errors.New("file locks are not supported on this system")

// TryLock takes an exclusive lock on f without waiting: ErrLocked when it is
// held elsewhere. Closing f releases it.
func TryLock(f *os.File) error { return tryLock(f) }
