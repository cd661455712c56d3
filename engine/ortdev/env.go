package ortdev

// #include "ortdev.h"
import "C"

import (
	"errors"
	"fmt"
	"sync"
	"unsafe"
)

// LogLevel is ORT's OrtLoggingLevel.
type LogLevel int

// ORT logging levels.
const (
	LogVerbose LogLevel = iota
	LogInfo
	LogWarning
	LogError
	LogFatal
)

// Env is ortdev's reference to ORT's environment.
//
// Inside ORT the environment is a reference-counted process singleton:
// CreateEnv either builds it (with the given log level and id) or, when one
// exists already (onnxruntime_go's, for instance), returns that same instance
// and only bumps its count; the log settings of the later call are ignored.
// ReleaseEnv drops one count and the environment is destroyed with the last
// one. ortdev and onnxruntime_go therefore each hold their own count on the
// shared environment and release only their own, in any order.
type Env struct {
	api  *API
	p    unsafe.Pointer
	life life
}

// NewEnv creates (or joins) the ORT environment. Close it after every
// session created from it is closed. ORT's messages at level and above go
// to log/slog (see logger.go), never straight to stderr; when the
// environment already exists (created by another library in the process)
// its logging stays as that library set it up.
func (a *API) NewEnv(level LogLevel, logID string) (*Env, error) {
	if level < LogVerbose || level > LogFatal {
		return nil, fmt.Errorf("ortdev: create env: invalid log level %d", level)
	}
	cID := C.CString(logID)
	defer C.free(unsafe.Pointer(cID))
	var p unsafe.Pointer
	if err := a.check(C.sd_CreateEnvWithCustomLogger(a.table, C.int(level), cID, &p), "CreateEnvWithCustomLogger"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	e := &Env{api: a, p: p}
	e.life.release = func() { a.release(C.SD_ReleaseEnv, p) }
	return e, nil
}

// NewEnvSharedThreads creates the ORT environment with one intra-op thread
// pool shared by every session whose options call DisablePerSessionThreads
// (threads: its size, 0 for ORT's default; spin: whether its workers spin
// while waiting for work). The environment is a process singleton: when it
// exists already, ORT returns it as it is, with or without a shared pool.
func (a *API) NewEnvSharedThreads(level LogLevel, logID string, threads int, spin bool) (*Env, error) {
	if level < LogVerbose || level > LogFatal {
		return nil, fmt.Errorf("ortdev: create env: invalid log level %d", level)
	}
	var opts unsafe.Pointer
	if err := a.check(C.sd_p(a.table, C.SD_CreateThreadingOptions, unsafe.Pointer(&opts)), "CreateThreadingOptions"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	defer C.sd_void_p(a.table, C.SD_ReleaseThreadingOptions, opts)
	if err := a.check(C.sd_pi(a.table, C.SD_SetGlobalIntraOpNumThreads, opts, C.int(threads)), "SetGlobalIntraOpNumThreads"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	allow := 0
	if spin {
		allow = 1
	}
	if err := a.check(C.sd_pi(a.table, C.SD_SetGlobalSpinControl, opts, C.int(allow)), "SetGlobalSpinControl"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	cID := C.CString(logID)
	defer C.free(unsafe.Pointer(cID))
	var p unsafe.Pointer
	if err := a.check(C.sd_CreateEnvWithCustomLoggerAndGlobalThreadPools(a.table, C.int(level), cID, opts, &p),
		"CreateEnvWithCustomLoggerAndGlobalThreadPools"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	e := &Env{api: a, p: p}
	e.life.release = func() { a.release(C.SD_ReleaseEnv, p) }
	return e, nil
}

// Retain takes another reference to the environment, released by the
// returned Env's Close: ORT's CreateEnv on a live environment returns that
// same instance and counts one more reference (see Env).
func (e *Env) Retain() (*Env, error) {
	if err := e.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: retain env: %w", err)
	}
	defer e.life.unuse()
	cID := C.CString("strata")
	defer C.free(unsafe.Pointer(cID))
	var p unsafe.Pointer
	if err := e.api.check(C.sd_CreateEnv(e.api.table, C.int(LogWarning), cID, &p), "CreateEnv"); err != nil {
		return nil, fmt.Errorf("ortdev: retain env: %w", err)
	}
	if p != e.p {
		e.api.release(C.SD_ReleaseEnv, p)
		return nil, errors.New("ortdev: retain env: ONNX Runtime returned a second environment")
	}
	r := &Env{api: e.api, p: p}
	r.life.release = func() { e.api.release(C.SD_ReleaseEnv, p) }
	return r, nil
}

// Close releases this reference to the environment (once every session made
// from it is closed). It is idempotent.
func (e *Env) Close() { e.life.close() }

// CopyTensors copies each src[i] into dst[i] (ORT's CopyTensors, no stream:
// the copy is complete when it returns). All sources must live on one device
// and all destinations on one device; host↔device and device↔device copies go
// through the data transfer the device's execution provider registers in the
// environment. ORT registers no CPU-to-CPU transfer there, so when every
// tensor is in CPU memory (device = cpu) the copy is a plain memory copy done
// here. Element types and element counts must match pairwise.
func (e *Env) CopyTensors(src, dst []*Value) error {
	if len(src) != len(dst) {
		return fmt.Errorf("ortdev: copy tensors: %d sources but %d destinations", len(src), len(dst))
	}
	if len(src) == 0 {
		return nil
	}
	if err := e.life.use(); err != nil {
		return fmt.Errorf("ortdev: copy tensors: env: %w", err)
	}
	defer e.life.unuse()
	for i := range src {
		if src[i] == nil || dst[i] == nil {
			return fmt.Errorf("ortdev: copy tensors: pair %d has a nil value", i)
		}
		if src[i].elem != dst[i].elem || src[i].NumElements() != dst[i].NumElements() {
			return fmt.Errorf("ortdev: copy tensors: pair %d: %s %v into %s %v", i,
				src[i].elem, src[i].shape, dst[i].elem, dst[i].shape)
		}
		for _, v := range []*Value{src[i], dst[i]} {
			if err := v.life.use(); err != nil {
				return fmt.Errorf("ortdev: copy tensors: pair %d: %w", i, err)
			}
			defer v.life.unuse()
		}
	}
	if done, err := copyOnHost(src, dst); done || err != nil {
		return err
	}
	n := len(src)
	ptrSize := unsafe.Sizeof(unsafe.Pointer(nil))
	arrays := C.malloc(C.size_t(2 * uintptr(n) * ptrSize))
	defer C.free(arrays)
	items := unsafe.Slice((*unsafe.Pointer)(arrays), 2*n)
	for i := range src {
		items[i] = src[i].p
		items[n+i] = dst[i].p
	}
	srcArr := (*unsafe.Pointer)(arrays)
	dstArr := &items[n]
	if err := e.api.check(C.sd_CopyTensors(e.api.table, e.p, srcArr, dstArr, C.size_t(n)), "CopyTensors"); err != nil {
		return fmt.Errorf("ortdev: %w", err)
	}
	return nil
}

// copyOnHost copies pairs whose tensors all live in CPU memory; done is false
// (and nothing is copied) when any tensor is on a device.
func copyOnHost(src, dst []*Value) (done bool, err error) {
	srcData := make([][]byte, len(src))
	dstData := make([][]byte, len(dst))
	for i := range src {
		if srcData[i], _, err = src[i].cpuBytes(); err != nil || srcData[i] == nil {
			return false, wrapCopyErr(err)
		}
		if dstData[i], _, err = dst[i].cpuBytes(); err != nil || dstData[i] == nil {
			return false, wrapCopyErr(err)
		}
	}
	for i := range src {
		copy(dstData[i], srcData[i])
	}
	return true, nil
}

func wrapCopyErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("ortdev: copy tensors: %w", err)
}

var (
	sharedMu  sync.Mutex
	sharedCPU = map[unsafe.Pointer]bool{} // environments with a shared CPU arena
)

// ShareCPUAllocator registers one arena allocator for CPU memory with the
// environment; sessions whose options set "session.use_env_allocators" to
// "1" then take their intermediate tensors from it instead of growing an
// arena each. The environment is a process singleton, so this happens once
// per process; later calls do nothing.
func (e *Env) ShareCPUAllocator() error {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if sharedCPU[e.p] {
		return nil
	}
	if err := e.life.use(); err != nil {
		return fmt.Errorf("ortdev: share CPU allocator: %w", err)
	}
	defer e.life.unuse()
	a := e.api
	var info unsafe.Pointer
	if err := a.check(C.sd_CreateCpuMemoryInfo(a.table, C.int(allocArena), C.int(memTypeDefault), &info),
		"CreateCpuMemoryInfo"); err != nil {
		return fmt.Errorf("ortdev: share CPU allocator: %w", err)
	}
	defer a.release(C.SD_ReleaseMemoryInfo, info)
	if err := a.check(C.sd_ppp(a.table, C.SD_CreateAndRegisterAllocator, e.p, info, nil), "CreateAndRegisterAllocator"); err != nil {
		return fmt.Errorf("ortdev: share CPU allocator: %w", err)
	}
	sharedCPU[e.p] = true
	return nil
}
