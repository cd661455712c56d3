package ortdev

// #include "ortdev.h"
import "C"

import (
	"fmt"
	"unsafe"
)

// EnableProfiling makes sessions created from these options record every
// node's run into a JSON trace whose path starts with prefix (ORT adds a
// time stamp); Session.EndProfiling finishes it. Options are copied into a
// session when it is created, so a prefix set before each NewSession names
// that session's trace.
func (o *SessionOptions) EnableProfiling(prefix string) error {
	cPrefix := C.CString(prefix)
	defer C.free(unsafe.Pointer(cPrefix))
	return o.call("EnableProfiling", func() unsafe.Pointer {
		return C.sd_pp(o.api.table, C.SD_EnableProfiling, o.p, unsafe.Pointer(cPrefix))
	})
}

// EndProfiling writes the session's trace and returns its path.
func (s *Session) EndProfiling() (string, error) {
	if err := s.life.use(); err != nil {
		return "", fmt.Errorf("ortdev: end profiling: %w", err)
	}
	defer s.life.unuse()
	a := s.api
	alloc, err := a.defaultAllocator()
	if err != nil {
		return "", err
	}
	var out *C.char
	if err := a.check(C.sd_ppp(a.table, C.SD_SessionEndProfiling, s.p, alloc, unsafe.Pointer(&out)), "SessionEndProfiling"); err != nil {
		return "", fmt.Errorf("ortdev: %w", err)
	}
	path := C.GoString(out)
	if err := a.check(C.sd_pp(a.table, C.SD_AllocatorFree, alloc, unsafe.Pointer(out)), "AllocatorFree"); err != nil {
		return path, fmt.Errorf("ortdev: %w", err)
	}
	return path, nil
}
