//go:build !linux

package ortlib

import "errors"

// preload is only needed for the CUDA build, which strata pins for Linux.
func preload(path string) error {
	return errors.New("loading CUDA libraries by path is supported on Linux only")
}
