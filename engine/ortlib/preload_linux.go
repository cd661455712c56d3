package ortlib

// #cgo LDFLAGS: -ldl
// #include <dlfcn.h>
// #include <stdlib.h>
import "C"

import (
	"errors"
	"unsafe"
)

// preload loads the shared library at path into the process for good
// (RTLD_GLOBAL, never closed). A library loaded later that needs it by its
// soname is then satisfied by this copy, wherever the file lies.
func preload(path string) error {
	cPath := C.CString(path)
	defer C.free(unsafe.Pointer(cPath))
	if C.dlopen(cPath, C.RTLD_NOW|C.RTLD_GLOBAL) == nil {
		return errors.New(C.GoString(C.dlerror()))
	}
	return nil
}
