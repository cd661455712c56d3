//go:build unix

package safetensors

import (
	"os"
	"syscall"
)

// mapFile maps the whole file read-only.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	data, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}

// release tells the kernel that the pages of data[lo:hi] are not needed soon,
// so reading a large checkpoint does not keep it all resident.
func release(data []byte, lo, hi int64) {
	page := int64(os.Getpagesize())
	lo = (lo + page - 1) / page * page
	hi = hi / page * page
	if hi > lo {
		_ = syscall.Madvise(data[lo:hi], syscall.MADV_DONTNEED)
	}
}
