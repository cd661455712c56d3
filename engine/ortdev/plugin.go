package ortdev

// #include "ortdev.h"
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// CUDAProviderName is the name under which the CUDA execution provider
// library offers its devices once registered with RegisterProviderLibrary.
const CUDAProviderName = "CUDAExecutionProvider"

// RegisterProviderLibrary loads an execution-provider library (for CUDA,
// libonnxruntime_providers_cuda.so next to the core library) into the
// environment under name. Unlike appending a provider to session options,
// this also gives the environment the provider's allocators and its
// host↔device data transfer, which Env.CopyTensors uses; and it works with
// a core library built without the provider (as the pinned CUDA build's
// core is). A library that cannot be loaded — the CUDA provider on a
// machine without the CUDA 13 libraries — is an *Error naming the missing
// file.
func (e *Env) RegisterProviderLibrary(name, path string) error {
	if name == "" || path == "" {
		return errors.New("ortdev: register provider library: empty name or path")
	}
	if err := e.life.use(); err != nil {
		return fmt.Errorf("ortdev: register provider library: env: %w", err)
	}
	defer e.life.unuse()
	cName, cPath := C.CString(name), C.CString(path)
	defer C.free(unsafe.Pointer(cName))
	defer C.free(unsafe.Pointer(cPath))
	if err := e.api.check(C.sd_ppp(e.api.table, C.SD_RegisterExecutionProviderLibrary, e.p,
		unsafe.Pointer(cName), unsafe.Pointer(cPath)), "RegisterExecutionProviderLibrary "+name); err != nil {
		return fmt.Errorf("ortdev: %w", err)
	}
	return nil
}

// UnregisterProviderLibrary removes a library registered under name; every
// session using its provider must be closed first.
func (e *Env) UnregisterProviderLibrary(name string) error {
	if err := e.life.use(); err != nil {
		return fmt.Errorf("ortdev: unregister provider library: env: %w", err)
	}
	defer e.life.unuse()
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	if err := e.api.check(C.sd_pp(e.api.table, C.SD_UnregisterExecutionProviderLibrary, e.p, unsafe.Pointer(cName)),
		"UnregisterExecutionProviderLibrary "+name); err != nil {
		return fmt.Errorf("ortdev: %w", err)
	}
	return nil
}

// ProviderDevices lists the execution-provider names of the devices the
// environment knows ("CPUExecutionProvider", and "CUDAExecutionProvider"
// once the CUDA provider library is registered on a machine with a GPU).
func (e *Env) ProviderDevices() ([]string, error) {
	if err := e.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: provider devices: env: %w", err)
	}
	defer e.life.unuse()
	devs, err := e.devices()
	if err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	names := make([]string, len(devs))
	for i, d := range devs {
		names[i] = C.GoString(C.sd_EpDevice_EpName(e.api.table, d))
	}
	return names, nil
}

// devices returns the environment's OrtEpDevice list (owned by ORT).
func (e *Env) devices() ([]unsafe.Pointer, error) {
	var list *unsafe.Pointer
	var n C.size_t
	if err := e.api.check(C.sd_ppp(e.api.table, C.SD_GetEpDevices, e.p, unsafe.Pointer(&list), unsafe.Pointer(&n)),
		"GetEpDevices"); err != nil {
		return nil, err
	}
	if n == 0 || list == nil {
		return nil, nil
	}
	return unsafe.Slice(list, int(n)), nil
}

// AppendProvider appends the execution provider epName (a provider
// registered with Env.RegisterProviderLibrary, e.g. CUDAProviderName) for
// the first of its devices in env, with provider options such as
// "device_id". It fails with an error naming the provider when env has no
// device of it.
func (o *SessionOptions) AppendProvider(env *Env, epName string, options map[string]string) error {
	if env == nil || epName == "" {
		return errors.New("ortdev: append provider: nil env or empty provider name")
	}
	if err := env.life.use(); err != nil {
		return fmt.Errorf("ortdev: append provider %s: env: %w", epName, err)
	}
	defer env.life.unuse()
	devs, err := env.devices()
	if err != nil {
		return fmt.Errorf("ortdev: append provider %s: %w", epName, err)
	}
	var dev unsafe.Pointer
	for _, d := range devs {
		if C.GoString(C.sd_EpDevice_EpName(env.api.table, d)) == epName {
			dev = d
			break
		}
	}
	if dev == nil {
		return fmt.Errorf("ortdev: append provider %s: the environment has no %s device (is its library registered, and is there a device for it?)", epName, epName)
	}
	keys, values := sortedPairs(options)
	cKeys, freeKeys := cStrings(keys)
	defer freeKeys()
	cValues, freeValues := cStrings(values)
	defer freeValues()
	devArr := (*unsafe.Pointer)(C.malloc(C.size_t(unsafe.Sizeof(dev))))
	defer C.free(unsafe.Pointer(devArr))
	*devArr = dev
	return o.call("SessionOptionsAppendExecutionProvider_V2 "+epName, func() unsafe.Pointer {
		return C.sd_AppendExecutionProvider_V2(o.api.table, o.p, env.p, devArr, 1, cKeys, cValues, C.size_t(len(keys)))
	})
}
