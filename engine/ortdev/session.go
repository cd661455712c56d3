package ortdev

// #include "ortdev.h"
import "C"

import (
	"errors"
	"fmt"
	"sort"
	"unsafe"
)

// GraphOptLevel is ORT's GraphOptimizationLevel.
type GraphOptLevel int

// Graph optimization levels.
const (
	OptDisableAll GraphOptLevel = 0
	OptBasic      GraphOptLevel = 1
	OptExtended   GraphOptLevel = 2
	OptLayout     GraphOptLevel = 3
	OptAll        GraphOptLevel = 99
)

// SessionOptions configures sessions (OrtSessionOptions). ORT copies what it
// needs when a session is created, so the options may be closed right after.
type SessionOptions struct {
	api  *API
	p    unsafe.Pointer
	life life
	// inits and prepacked are what AddInitializer and SetPrepackedWeights
	// handed over (shared.go); the options and each session created with
	// them hold them.
	inits     []*Value
	prepacked *PrepackedWeights
}

// NewSessionOptions creates default session options.
func (a *API) NewSessionOptions() (*SessionOptions, error) {
	var p unsafe.Pointer
	if err := a.check(C.sd_p(a.table, C.SD_CreateSessionOptions, unsafe.Pointer(&p)), "CreateSessionOptions"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	o := &SessionOptions{api: a, p: p}
	o.life.release = o.releaseFunc()
	return o, nil
}

// Close releases the options. It is idempotent.
func (o *SessionOptions) Close() { o.life.close() }

// call runs one status-returning call on the live options.
func (o *SessionOptions) call(op string, f func() unsafe.Pointer) error {
	if err := o.life.use(); err != nil {
		return fmt.Errorf("ortdev: %s: session options: %w", op, err)
	}
	defer o.life.unuse()
	if err := o.api.check(f(), op); err != nil {
		return fmt.Errorf("ortdev: %w", err)
	}
	return nil
}

// SetIntraOpNumThreads sets the intra-op thread count (0 = ORT's default).
func (o *SessionOptions) SetIntraOpNumThreads(n int) error {
	if n < 0 {
		return fmt.Errorf("ortdev: intra-op threads: invalid count %d", n)
	}
	return o.call("SetIntraOpNumThreads", func() unsafe.Pointer {
		return C.sd_pi(o.api.table, C.SD_SetIntraOpNumThreads, o.p, C.int(n))
	})
}

// SetGraphOptimizationLevel sets how much ORT rewrites the graph.
func (o *SessionOptions) SetGraphOptimizationLevel(l GraphOptLevel) error {
	switch l {
	case OptDisableAll, OptBasic, OptExtended, OptLayout, OptAll:
	default:
		return fmt.Errorf("ortdev: graph optimization level: invalid level %d", l)
	}
	return o.call("SetSessionGraphOptimizationLevel", func() unsafe.Pointer {
		return C.sd_pi(o.api.table, C.SD_SetSessionGraphOptimizationLevel, o.p, C.int(l))
	})
}

// DisablePerSessionThreads makes sessions use the environment's shared
// thread pools (NewEnvSharedThreads) instead of pools of their own.
func (o *SessionOptions) DisablePerSessionThreads() error {
	return o.call("DisablePerSessionThreads", func() unsafe.Pointer {
		return C.sd_p(o.api.table, C.SD_DisablePerSessionThreads, o.p)
	})
}

// AddConfigEntry sets a session configuration key, e.g.
// "session.disable_cpu_ep_fallback" = "1" so that every node must run on the
// appended execution provider.
func (o *SessionOptions) AddConfigEntry(key, value string) error {
	if key == "" {
		return errors.New("ortdev: session config entry: empty key")
	}
	cKey, cValue := C.CString(key), C.CString(value)
	defer C.free(unsafe.Pointer(cKey))
	defer C.free(unsafe.Pointer(cValue))
	return o.call("AddSessionConfigEntry "+key, func() unsafe.Pointer {
		return C.sd_ppp(o.api.table, C.SD_AddSessionConfigEntry, o.p, unsafe.Pointer(cKey), unsafe.Pointer(cValue))
	})
}

// sortedPairs splits a map into key and value lists in key order.
func sortedPairs(m map[string]string) (keys, values []string) {
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		values = append(values, m[k])
	}
	return keys, values
}

// AppendExecutionProvider appends an execution provider by its ORT name
// ("WebGPU", "CUDA", "XNNPACK", …) with provider options (the generic
// SessionOptionsAppendExecutionProvider). Whether the provider can actually
// run (a GPU adapter, a driver) is often only known at NewSession.
func (o *SessionOptions) AppendExecutionProvider(name string, options map[string]string) error {
	if name == "" {
		return errors.New("ortdev: append execution provider: empty name")
	}
	keys, values := sortedPairs(options)
	cKeys, freeKeys := cStrings(keys)
	defer freeKeys()
	cValues, freeValues := cStrings(values)
	defer freeValues()
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	return o.call("SessionOptionsAppendExecutionProvider "+name, func() unsafe.Pointer {
		return C.sd_ProviderOptions(o.api.table, C.SD_SessionOptionsAppendExecutionProvider, o.p, cName,
			cKeys, cValues, C.size_t(len(keys)))
	})
}

// AppendCUDA appends the CUDA execution provider through
// CreateCUDAProviderOptions, UpdateCUDAProviderOptions (options such as
// "device_id") and SessionOptionsAppendExecutionProvider_CUDA_V2. It fails on
// libraries built without CUDA (the CPU/WebGPU npm build among them).
func (o *SessionOptions) AppendCUDA(options map[string]string) error {
	if err := o.life.use(); err != nil {
		return fmt.Errorf("ortdev: append CUDA: session options: %w", err)
	}
	defer o.life.unuse()
	a := o.api
	var cuda unsafe.Pointer
	if err := a.check(C.sd_p(a.table, C.SD_CreateCUDAProviderOptions, unsafe.Pointer(&cuda)), "CreateCUDAProviderOptions"); err != nil {
		return fmt.Errorf("ortdev: append CUDA: %w", err)
	}
	defer a.release(C.SD_ReleaseCUDAProviderOptions, cuda)
	if len(options) > 0 {
		keys, values := sortedPairs(options)
		cKeys, freeKeys := cStrings(keys)
		defer freeKeys()
		cValues, freeValues := cStrings(values)
		defer freeValues()
		if err := a.check(C.sd_ProviderOptions(a.table, C.SD_UpdateCUDAProviderOptions, cuda, nil, cKeys, cValues,
			C.size_t(len(keys))), "UpdateCUDAProviderOptions"); err != nil {
			return fmt.Errorf("ortdev: append CUDA: %w", err)
		}
	}
	if err := a.check(C.sd_pp(a.table, C.SD_SessionOptionsAppendExecutionProvider_CUDA_V2, o.p, cuda),
		"SessionOptionsAppendExecutionProvider_CUDA_V2"); err != nil {
		return fmt.Errorf("ortdev: append CUDA: %w", err)
	}
	return nil
}

// AppendDevice appends the execution provider serving d: nothing for CPU
// (ORT's CPU provider is always present), "WebGPU" for webgpu, AppendCUDA for
// cuda.
func (o *SessionOptions) AppendDevice(d Device, options map[string]string) error {
	switch d {
	case DeviceCPU:
		return o.life.alive()
	case DeviceWebGPU:
		return o.AppendExecutionProvider("WebGPU", options)
	case DeviceCUDA:
		return o.AppendCUDA(options)
	}
	return fmt.Errorf("ortdev: append device: unknown device %q", d)
}

// Session is an ORT inference session (OrtSession) owned by ortdev. It keeps
// its Env alive, and is itself kept alive by its allocators, bindings and
// bound output values.
type Session struct {
	api     *API
	p       unsafe.Pointer
	env     *Env
	inputs  []string
	outputs []string
	life    life
}

// NewSession loads the model file at path. opts may be nil for defaults.
func (e *Env) NewSession(path string, opts *SessionOptions) (*Session, error) {
	return e.newSession(path, nil, opts)
}

// NewSessionFromBytes loads a serialized model; name only labels errors.
// External data locations resolve against the folder set in opts'
// "session.model_external_initializers_file_folder_path" entry.
func (e *Env) NewSessionFromBytes(name string, data []byte, opts *SessionOptions) (*Session, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("ortdev: create session %s: empty model", name)
	}
	return e.newSession(name, data, opts)
}

func (e *Env) newSession(path string, data []byte, opts *SessionOptions) (*Session, error) {
	a := e.api
	if opts == nil {
		def, err := a.NewSessionOptions()
		if err != nil {
			return nil, fmt.Errorf("ortdev: create session %s: %w", path, err)
		}
		defer def.Close()
		opts = def
	}
	if err := opts.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: create session %s: session options: %w", path, err)
	}
	defer opts.life.unuse()
	// The session reads the initializers handed over and the prepacked
	// weights for as long as it lives.
	letGo, err := opts.holdShared()
	if err != nil {
		return nil, fmt.Errorf("ortdev: create session %s: %w", path, err)
	}
	if err := e.life.use(); err != nil {
		letGo()
		return nil, fmt.Errorf("ortdev: create session %s: env: %w", path, err)
	}
	var p unsafe.Pointer
	var buf unsafe.Pointer
	if data != nil {
		buf = C.CBytes(data)
		defer C.free(buf)
	}
	if err := opts.createSession(e, path, buf, len(data), &p); err != nil {
		e.life.unuse()
		letGo()
		return nil, fmt.Errorf("ortdev: create session %s: %w", path, err)
	}
	s := &Session{api: a, p: p, env: e}
	s.life.release = func() {
		a.release(C.SD_ReleaseSession, p)
		e.life.unuse()
		letGo()
	}
	if s.inputs, err = s.names(C.SD_SessionGetInputCount, C.SD_SessionGetInputName); err == nil {
		s.outputs, err = s.names(C.SD_SessionGetOutputCount, C.SD_SessionGetOutputName)
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("ortdev: create session %s: %w", path, err)
	}
	return s, nil
}

// names reads the session's input or output names.
func (s *Session) names(countSlot, nameSlot C.int) ([]string, error) {
	a := s.api
	alloc, err := a.defaultAllocator()
	if err != nil {
		return nil, err
	}
	var n C.size_t
	if err := a.check(C.sd_pp(a.table, countSlot, s.p, unsafe.Pointer(&n)), "SessionGet(Input|Output)Count"); err != nil {
		return nil, err
	}
	names := make([]string, 0, int(n))
	for i := C.size_t(0); i < n; i++ {
		var cName *C.char
		if err := a.check(C.sd_psp(a.table, nameSlot, s.p, i, alloc, unsafe.Pointer(&cName)),
			"SessionGet(Input|Output)Name"); err != nil {
			return nil, err
		}
		names = append(names, C.GoString(cName))
		if err := a.check(C.sd_pp(a.table, C.SD_AllocatorFree, alloc, unsafe.Pointer(cName)), "AllocatorFree"); err != nil {
			return nil, err
		}
	}
	return names, nil
}

// InputNames lists the model's inputs in order.
func (s *Session) InputNames() []string { return append([]string(nil), s.inputs...) }

// OutputNames lists the model's outputs in order.
func (s *Session) OutputNames() []string { return append([]string(nil), s.outputs...) }

// Close releases the session once its allocators, bindings and bound output
// values are closed. It is idempotent.
func (s *Session) Close() { s.life.close() }

// RunOptions are per-run settings (OrtRunOptions); RunWithBinding also
// accepts nil for defaults.
type RunOptions struct {
	api  *API
	p    unsafe.Pointer
	life life
}

// NewRunOptions creates default run options.
func (a *API) NewRunOptions() (*RunOptions, error) {
	var p unsafe.Pointer
	if err := a.check(C.sd_p(a.table, C.SD_CreateRunOptions, unsafe.Pointer(&p)), "CreateRunOptions"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	r := &RunOptions{api: a, p: p}
	r.life.release = func() { a.release(C.SD_ReleaseRunOptions, p) }
	return r, nil
}

// Close releases the run options. It is idempotent.
func (r *RunOptions) Close() { r.life.close() }

// AddConfigEntry sets a run configuration entry, e.g. "gpu_graph_id": which
// captured CUDA graph a run of a session with graph capture enabled records
// or replays ("-1": run without capturing).
func (r *RunOptions) AddConfigEntry(key, value string) error {
	if key == "" {
		return errors.New("ortdev: run config entry: empty key")
	}
	if err := r.life.use(); err != nil {
		return fmt.Errorf("ortdev: run config entry %s: %w", key, err)
	}
	defer r.life.unuse()
	cKey, cValue := C.CString(key), C.CString(value)
	defer C.free(unsafe.Pointer(cKey))
	defer C.free(unsafe.Pointer(cValue))
	if err := r.api.check(C.sd_ppp(r.api.table, C.SD_AddRunConfigEntry, r.p, unsafe.Pointer(cKey), unsafe.Pointer(cValue)),
		"AddRunConfigEntry "+key); err != nil {
		return fmt.Errorf("ortdev: %w", err)
	}
	return nil
}

// RunWithBinding runs the session on the inputs and outputs bound in b
// (which must have been created from this session), with ro or default run
// options when ro is nil. Outputs bound to device memory stay there.
func (s *Session) RunWithBinding(b *IoBinding, ro *RunOptions) error {
	if b == nil {
		return errors.New("ortdev: run with binding: nil binding")
	}
	if b.session != s {
		return errors.New("ortdev: run with binding: the binding belongs to another session")
	}
	if err := s.life.use(); err != nil {
		return fmt.Errorf("ortdev: run with binding: session: %w", err)
	}
	defer s.life.unuse()
	if err := b.life.use(); err != nil {
		return fmt.Errorf("ortdev: run with binding: binding: %w", err)
	}
	defer b.life.unuse()
	var rop unsafe.Pointer
	if ro != nil {
		if err := ro.life.use(); err != nil {
			return fmt.Errorf("ortdev: run with binding: run options: %w", err)
		}
		defer ro.life.unuse()
		rop = ro.p
	}
	if err := s.api.check(C.sd_ppp(s.api.table, C.SD_RunWithBinding, s.p, rop, b.p), "RunWithBinding"); err != nil {
		return fmt.Errorf("ortdev: %w", err)
	}
	return nil
}
