package export

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strata-llm/strata/internal/filelock"
)

// ErrOutputOverlapsInput is wrapped by the error for an output directory
// that is the input checkpoint, lies inside it or holds it.
var ErrOutputOverlapsInput = errors.New("overlaps the input checkpoint")

// ErrOutputBusy is wrapped by the error for an output directory another
// export is writing.
var ErrOutputBusy = errors.New("another export is writing it")

// checkOverlap refuses an output path that is the input, lies inside it or
// holds it, comparing file identities (so symbolic links, relative paths
// and bind mounts are seen through): writing the package there, or
// replacing it with --force, would destroy the checkpoint.
func checkOverlap(in, out string) error {
	inInfo, err := os.Stat(in)
	if err != nil {
		return nil // OpenSource reports a missing input
	}
	outReal, err := realPath(out)
	if err != nil {
		return fmt.Errorf("output %s: %w", out, err)
	}
	for p := outReal; ; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && os.SameFile(st, inInfo) {
			if p == outReal {
				return fmt.Errorf("output %s is the input checkpoint %s: %w", out, in, ErrOutputOverlapsInput)
			}
			return fmt.Errorf("output %s lies inside the input checkpoint %s: %w", out, in, ErrOutputOverlapsInput)
		}
		if parent := filepath.Dir(p); parent == p {
			break
		}
	}
	outInfo, err := os.Stat(outReal)
	if err != nil {
		return nil // a new directory holds nothing
	}
	inReal, err := realPath(in)
	if err != nil {
		return fmt.Errorf("input %s: %w", in, err)
	}
	for p := filepath.Dir(inReal); ; p = filepath.Dir(p) {
		if st, err := os.Stat(p); err == nil && os.SameFile(st, outInfo) {
			return fmt.Errorf("output %s holds the input checkpoint %s: %w", out, in, ErrOutputOverlapsInput)
		}
		if parent := filepath.Dir(p); parent == p {
			break
		}
	}
	return nil
}

// realPath is path made absolute with every symbolic link of its longest
// existing prefix resolved; the part that does not exist yet is appended.
func realPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rest := ""
	for p := abs; ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil {
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return "", err
			}
			return filepath.Join(real, rest), nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// lockOut takes the lock of the output directory out: a lock file next to
// it that one export at a time holds, from before it looks at out until
// the package is in place. unlock removes the file and releases the lock.
func lockOut(out string) (unlock func(), err error) {
	path := filepath.Join(filepath.Dir(out), "."+filepath.Base(out)+".export.lock")
	for range 3 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock output %s: %w", out, err)
		}
		err = filelock.TryLock(f)
		if errors.Is(err, filelock.ErrLocked) {
			f.Close()
			return nil, fmt.Errorf("output %s: %w (its lock file %s is held)", out, ErrOutputBusy, path)
		}
		if err != nil && !errors.Is(err, filelock.ErrUnsupported) {
			f.Close()
			return nil, fmt.Errorf("lock output %s: %w", out, err)
		}
		// The holder removes the file before it unlocks: a lock taken on
		// a file no longer at path came too late, try the new one.
		st, serr := os.Stat(path)
		fst, ferr := f.Stat()
		if serr == nil && ferr == nil && os.SameFile(st, fst) {
			return func() {
				os.Remove(path)
				f.Close()
			}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("output %s: %w", out, ErrOutputBusy)
}
