// Package limitread reads small files (JSON configs, manifests) whole, but
// refuses one larger than a limit before allocating for it, so a huge or
// endless file (a device, a FIFO) named where a config belongs cannot
// exhaust memory.
package limitread

import (
	"fmt"
	"io"
	"os"
)

// ReadFile reads path, failing with an error naming the file and limit when
// it holds more than limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, above the %d-byte limit for this file", path, st.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s holds more than the %d-byte limit for this file", path, limit)
	}
	return data, nil
}
