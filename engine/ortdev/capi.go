package ortdev

// #cgo linux LDFLAGS: -ldl
// #include "ortdev.h"
import "C"

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// APIVersion is the newest OrtApi version ortdev knows: its slot declarations
// (ortdev.h) are checked against the C API header of that version. Open asks
// a library for min(APIVersion, the library's own API version).
const APIVersion = 24

// slotSince is the OrtApi version that added each slot ortdev calls, for the
// slots added after version 1 (the "\since Version 1.N" notes of ORT's C API
// header, which TestSlotNumbersMatchHeader compares against this table).
var slotSince = map[string]int{
	"SessionOptionsAppendExecutionProvider_CUDA_V2": 11,
	"CreateCUDAProviderOptions":                     11,
	"UpdateCUDAProviderOptions":                     11,
	"ReleaseCUDAProviderOptions":                    11,
	"SessionOptionsAppendExecutionProvider":         12,
	"MemoryInfoGetDeviceType":                       14,
	"RegisterExecutionProviderLibrary":              22,
	"UnregisterExecutionProviderLibrary":            22,
	"GetEpDevices":                                  22,
	"SessionOptionsAppendExecutionProvider_V2":      22,
	"EpDevice_EpName":                               22,
	"CopyTensors":                                   23,
}

// MinAPIVersion is the oldest OrtApi version that serves every slot ortdev
// calls (CopyTensors arrived with API 23, ONNX Runtime 1.23).
var MinAPIVersion = func() int {
	v := 1
	for _, s := range slotSince {
		v = max(v, s)
	}
	return v
}()

// ErrorCode is ONNX Runtime's OrtErrorCode.
type ErrorCode int

// The OrtErrorCode values ortdev refers to.
const (
	CodeOK              ErrorCode = 0
	CodeFail            ErrorCode = 1
	CodeInvalidArgument ErrorCode = 2
	CodeNoSuchFile      ErrorCode = 3
	CodeNotImplemented  ErrorCode = 9
)

// Error is a failed ONNX Runtime call: the operation ortdev attempted and the
// code and message of the OrtStatus the library returned.
type Error struct {
	Op      string
	Code    ErrorCode
	Message string
}

// Error formats the failure as "op: message (ORT error code N)".
func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (ORT error code %d)", e.Op, e.Message, e.Code)
}

// ErrClosed is returned when an object is used after Close.
var ErrClosed = errors.New("ortdev: object already closed")

// API is a loaded ONNX Runtime library and its OrtApi function table. It is
// safe for concurrent use and is never unloaded: the library stays mapped for
// the life of the process (onnxruntime_go may share the same handle).
type API struct {
	path          string
	table         C.sd_table
	apiVersion    int
	libAPIVersion int
	ortVersion    string

	defaultAllocOnce sync.Once
	defaultAlloc     unsafe.Pointer
	defaultAllocErr  error
}

// Open loads the ONNX Runtime shared library at libPath (dlopen of the same
// path onnxruntime_go uses returns the same handle), negotiates the OrtApi
// version — the highest one both ortdev and the library know, refusing a
// library too old to serve every slot ortdev calls — and checks that ortdev's
// slot declarations match the library before anything else uses them.
func Open(libPath string) (*API, error) {
	if libPath == "" {
		return nil, errors.New("ortdev: open: empty library path")
	}
	cPath := C.CString(libPath)
	defer C.free(unsafe.Pointer(cPath))
	handle := C.dlopen(cPath, C.RTLD_LAZY|C.RTLD_LOCAL)
	if handle == nil {
		return nil, fmt.Errorf("ortdev: open %s: %s", libPath, C.GoString(C.dlerror()))
	}
	cSym := C.CString("OrtGetApiBase")
	defer C.free(unsafe.Pointer(cSym))
	getAPIBase := C.dlsym(handle, cSym)
	if getAPIBase == nil {
		return nil, fmt.Errorf("ortdev: open %s: no OrtGetApiBase symbol: %s", libPath, C.GoString(C.dlerror()))
	}
	a := &API{path: libPath}
	if v := C.sd_version_string(getAPIBase); v != nil {
		a.ortVersion = C.GoString(v)
	}
	served, known := libraryAPIVersion(a.ortVersion)
	want := APIVersion
	if known {
		a.libAPIVersion = served
		if served < MinAPIVersion {
			return nil, fmt.Errorf("ortdev: open %s: ONNX Runtime %s serves OrtApi up to version %d, but ortdev calls %s (API %d): use ONNX Runtime 1.%d or newer",
				libPath, a.ortVersion, served, newestSlot(), MinAPIVersion, MinAPIVersion)
		}
		want = min(want, served)
	}
	// GetApi returns NULL (and logs to stderr) for a version the library
	// does not serve; with the library's version known that cannot happen,
	// so the loop below only walks down for an unparsable version string.
	for v := want; v >= MinAPIVersion && a.table == nil; v-- {
		if t := C.sd_get_api(getAPIBase, C.uint32_t(v)); t != nil {
			a.table, a.apiVersion = t, v
		}
	}
	if a.table == nil {
		return nil, fmt.Errorf("ortdev: open %s: ONNX Runtime %q serves no OrtApi version in %d..%d (ortdev needs ONNX Runtime 1.%d or newer)",
			libPath, a.ortVersion, MinAPIVersion, want, MinAPIVersion)
	}
	if err := a.selfCheck(); err != nil {
		return nil, fmt.Errorf("ortdev: open %s (ORT %s, API %d): slot table does not match the library: %w",
			libPath, a.ortVersion, a.apiVersion, err)
	}
	return a, nil
}

// libraryAPIVersion is the OrtApi version a library of ONNX Runtime version
// v serves: ORT 1.N serves API versions 1..N. known is false when v is not of
// the form 1.N[.P].
func libraryAPIVersion(v string) (api int, known bool) {
	major, rest, ok := strings.Cut(v, ".")
	if !ok || major != "1" {
		return 0, false
	}
	minor, _, _ := strings.Cut(rest, ".")
	n, err := strconv.Atoi(minor)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// newestSlot names the slot (or slots) that need MinAPIVersion.
func newestSlot() string {
	var names []string
	for name, v := range slotSince {
		if v == MinAPIVersion {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Path is the library path Open was given.
func (a *API) Path() string { return a.path }

// Version is the library's own version string, e.g. "1.30.0".
func (a *API) Version() string { return a.ortVersion }

// APIVersion is the OrtApi version in use: the lower of APIVersion and the
// library's own.
func (a *API) APIVersion() int { return a.apiVersion }

// LibraryAPIVersion is the newest OrtApi version the library serves (its
// ONNX Runtime minor version), or 0 when its version string did not say.
func (a *API) LibraryAPIVersion() int { return a.libAPIVersion }

// selfCheck exercises the status and memory-info slots with known inputs and
// compares what comes back, so a wrong slot number or signature shows up as
// one error at start-up rather than as a crash later.
func (a *API) selfCheck() error {
	const probe = "strata ortdev probe"
	cMsg := C.CString(probe)
	defer C.free(unsafe.Pointer(cMsg))
	st := C.sd_CreateStatus(a.table, C.int(CodeInvalidArgument), cMsg)
	if st == nil {
		return errors.New("CreateStatus returned NULL")
	}
	code := ErrorCode(C.sd_GetErrorCode(a.table, st))
	msg := C.GoString(C.sd_GetErrorMessage(a.table, st))
	C.sd_void_p(a.table, C.SD_ReleaseStatus, st)
	if code != CodeInvalidArgument || msg != probe {
		return fmt.Errorf("status round trip gave code %d message %q, want %d %q", code, msg, CodeInvalidArgument, probe)
	}

	var info unsafe.Pointer
	st = C.sd_CreateCpuMemoryInfo(a.table, C.int(allocArena), C.int(memTypeDefault), &info)
	if err := a.check(st, "CreateCpuMemoryInfo"); err != nil {
		return err
	}
	defer C.sd_void_p(a.table, C.SD_ReleaseMemoryInfo, info)
	name, id, memType, allocType, devType, err := a.memoryInfoFields(info)
	if err != nil {
		return err
	}
	if name != "Cpu" || id != 0 || memType != memTypeDefault || allocType != allocArena || devType != deviceTypeCPU {
		return fmt.Errorf("CPU memory info reads back as name %q id %d mem type %d allocator type %d device type %d, want \"Cpu\" 0 %d %d %d",
			name, id, memType, allocType, devType, memTypeDefault, allocArena, deviceTypeCPU)
	}
	return nil
}

// check turns an OrtStatus into an *Error (nil for a NULL status) and
// releases the status.
func (a *API) check(st unsafe.Pointer, op string) error {
	if st == nil {
		return nil
	}
	err := &Error{
		Op:      op,
		Code:    ErrorCode(C.sd_GetErrorCode(a.table, st)),
		Message: strings.TrimSpace(C.GoString(C.sd_GetErrorMessage(a.table, st))),
	}
	C.sd_void_p(a.table, C.SD_ReleaseStatus, st)
	return err
}

// release calls a Release* slot; a NULL object is ignored.
func (a *API) release(slot C.int, p unsafe.Pointer) {
	if p != nil {
		C.sd_void_p(a.table, slot, p)
	}
}

// Internal enum values (OrtAllocatorType, OrtMemType, OrtMemoryInfoDeviceType).
const (
	allocDevice    = 0
	allocArena     = 1
	memTypeDefault = 0
	deviceTypeCPU  = 0
)

// memoryInfoFields reads back every field of an OrtMemoryInfo.
func (a *API) memoryInfoFields(info unsafe.Pointer) (name string, id, memType, allocType, devType int, err error) {
	var cName *C.char
	if err = a.check(C.sd_pp(a.table, C.SD_MemoryInfoGetName, info, unsafe.Pointer(&cName)), "MemoryInfoGetName"); err != nil {
		return
	}
	name = C.GoString(cName)
	var cID, cMem, cAlloc, cDev C.int
	if err = a.check(C.sd_pp(a.table, C.SD_MemoryInfoGetId, info, unsafe.Pointer(&cID)), "MemoryInfoGetId"); err != nil {
		return
	}
	if err = a.check(C.sd_pp(a.table, C.SD_MemoryInfoGetMemType, info, unsafe.Pointer(&cMem)), "MemoryInfoGetMemType"); err != nil {
		return
	}
	if err = a.check(C.sd_pp(a.table, C.SD_MemoryInfoGetType, info, unsafe.Pointer(&cAlloc)), "MemoryInfoGetType"); err != nil {
		return
	}
	cDev = -1
	C.sd_void_pp(a.table, C.SD_MemoryInfoGetDeviceType, info, unsafe.Pointer(&cDev))
	return name, int(cID), int(cMem), int(cAlloc), int(cDev), nil
}

// defaultAllocator is ORT's process-wide CPU allocator (never released), used
// for the name strings and value arrays ORT hands back.
func (a *API) defaultAllocator() (unsafe.Pointer, error) {
	a.defaultAllocOnce.Do(func() {
		var p unsafe.Pointer
		a.defaultAllocErr = a.check(C.sd_p(a.table, C.SD_GetAllocatorWithDefaultOptions, unsafe.Pointer(&p)),
			"GetAllocatorWithDefaultOptions")
		a.defaultAlloc = p
	})
	return a.defaultAlloc, a.defaultAllocErr
}

// cStrings copies Go strings into one C array of C strings; free releases both.
func cStrings(ss []string) (arr **C.char, free func()) {
	if len(ss) == 0 {
		return nil, func() {}
	}
	ptrSize := unsafe.Sizeof((*C.char)(nil))
	mem := C.malloc(C.size_t(uintptr(len(ss)) * ptrSize))
	items := unsafe.Slice((**C.char)(mem), len(ss))
	for i, s := range ss {
		items[i] = C.CString(s)
	}
	return (**C.char)(mem), func() {
		for _, p := range items {
			C.free(unsafe.Pointer(p))
		}
		C.free(mem)
	}
}
