package ortdev

// #include "ortdev.h"
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// IoBinding binds pre-allocated tensors (device or host) to a session's
// inputs and outputs (OrtIoBinding), so that RunWithBinding reads and writes
// them in place. Bound values are held open by the binding until they are
// replaced, cleared or the binding is closed.
type IoBinding struct {
	api     *API
	p       unsafe.Pointer
	session *Session
	inputs  map[string]*Value
	outputs map[string]*Value
	life    life
}

// NewIoBinding creates a binding for the session.
func (s *Session) NewIoBinding() (*IoBinding, error) {
	if err := s.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: create io binding: session: %w", err)
	}
	var p unsafe.Pointer
	if err := s.api.check(C.sd_pp(s.api.table, C.SD_CreateIoBinding, s.p, unsafe.Pointer(&p)), "CreateIoBinding"); err != nil {
		s.life.unuse()
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	b := &IoBinding{api: s.api, p: p, session: s, inputs: map[string]*Value{}, outputs: map[string]*Value{}}
	b.life.release = func() {
		s.api.release(C.SD_ReleaseIoBinding, p)
		b.dropAll(b.inputs)
		b.dropAll(b.outputs)
		s.life.unuse()
	}
	return b, nil
}

// Close releases the binding and lets go of its bound values. It is
// idempotent.
func (b *IoBinding) Close() { b.life.close() }

// dropAll lets go of every value in a bound set and empties it.
func (b *IoBinding) dropAll(set map[string]*Value) {
	for name, v := range set {
		v.life.unuse()
		delete(set, name)
	}
}

// bind runs one Bind* call for a value and records it in set.
func (b *IoBinding) bind(op string, slot C.int, set map[string]*Value, name string, v *Value) error {
	if name == "" {
		return fmt.Errorf("ortdev: %s: empty name", op)
	}
	if v == nil {
		return fmt.Errorf("ortdev: %s %q: nil value", op, name)
	}
	if err := b.life.use(); err != nil {
		return fmt.Errorf("ortdev: %s %q: binding: %w", op, name, err)
	}
	defer b.life.unuse()
	if err := v.life.use(); err != nil {
		return fmt.Errorf("ortdev: %s %q: value: %w", op, name, err)
	}
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	if err := b.api.check(C.sd_ppp(b.api.table, slot, b.p, unsafe.Pointer(cName), v.p), op); err != nil {
		v.life.unuse()
		return fmt.Errorf("ortdev: %s %q: %w", op, name, err)
	}
	if old, ok := set[name]; ok {
		old.life.unuse()
	}
	set[name] = v
	return nil
}

// BindInput binds v to the named input.
func (b *IoBinding) BindInput(name string, v *Value) error {
	return b.bind("BindInput", C.SD_BindInput, b.inputs, name, v)
}

// BindOutput binds the pre-allocated v to the named output, which ORT then
// writes in place. The same value may also be bound as an input, e.g. a KV
// buffer bound as past_key and present_key.
func (b *IoBinding) BindOutput(name string, v *Value) error {
	return b.bind("BindOutput", C.SD_BindOutput, b.outputs, name, v)
}

// BindOutputToDevice lets ORT allocate the named output in m's memory on each
// run; read it with OutputValues.
func (b *IoBinding) BindOutputToDevice(name string, m *MemoryInfo) error {
	if name == "" {
		return errors.New("ortdev: BindOutputToDevice: empty name")
	}
	if m == nil {
		return fmt.Errorf("ortdev: BindOutputToDevice %q: nil memory info", name)
	}
	if err := b.life.use(); err != nil {
		return fmt.Errorf("ortdev: BindOutputToDevice %q: binding: %w", name, err)
	}
	defer b.life.unuse()
	if err := m.life.use(); err != nil {
		return fmt.Errorf("ortdev: BindOutputToDevice %q: memory info: %w", name, err)
	}
	defer m.life.unuse()
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	if err := b.api.check(C.sd_ppp(b.api.table, C.SD_BindOutputToDevice, b.p, unsafe.Pointer(cName), m.p),
		"BindOutputToDevice"); err != nil {
		return fmt.Errorf("ortdev: BindOutputToDevice %q: %w", name, err)
	}
	if old, ok := b.outputs[name]; ok {
		old.life.unuse()
		delete(b.outputs, name)
	}
	return nil
}

// ClearBoundInputs unbinds every input.
func (b *IoBinding) ClearBoundInputs() error {
	if err := b.life.use(); err != nil {
		return fmt.Errorf("ortdev: clear bound inputs: %w", err)
	}
	defer b.life.unuse()
	C.sd_void_p(b.api.table, C.SD_ClearBoundInputs, b.p)
	b.dropAll(b.inputs)
	return nil
}

// ClearBoundOutputs unbinds every output.
func (b *IoBinding) ClearBoundOutputs() error {
	if err := b.life.use(); err != nil {
		return fmt.Errorf("ortdev: clear bound outputs: %w", err)
	}
	defer b.life.unuse()
	C.sd_void_p(b.api.table, C.SD_ClearBoundOutputs, b.p)
	b.dropAll(b.outputs)
	return nil
}

// SynchronizeInputs waits until bound inputs are ready on their device
// (needed only when inputs were written asynchronously).
func (b *IoBinding) SynchronizeInputs() error {
	return b.sync(C.SD_SynchronizeBoundInputs, "SynchronizeBoundInputs")
}

// SynchronizeOutputs waits until the last run's outputs are complete on their
// device.
func (b *IoBinding) SynchronizeOutputs() error {
	return b.sync(C.SD_SynchronizeBoundOutputs, "SynchronizeBoundOutputs")
}

func (b *IoBinding) sync(slot C.int, op string) error {
	if err := b.life.use(); err != nil {
		return fmt.Errorf("ortdev: %s: %w", op, err)
	}
	defer b.life.unuse()
	if err := b.api.check(C.sd_p(b.api.table, slot, b.p), op); err != nil {
		return fmt.Errorf("ortdev: %w", err)
	}
	return nil
}

// OutputValues returns the bound outputs of the last run, in binding order,
// as new Values the caller must Close (GetBoundOutputValues). Pre-bound
// outputs come back as further references to the same memory, which may have
// come from an Allocator, so each returned Value holds open the session and
// every value bound as an output at the time of the call.
func (b *IoBinding) OutputValues() ([]*Value, error) {
	if err := b.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: bound output values: %w", err)
	}
	defer b.life.unuse()
	a := b.api
	alloc, err := a.defaultAllocator()
	if err != nil {
		return nil, fmt.Errorf("ortdev: bound output values: %w", err)
	}
	var arr unsafe.Pointer
	var n C.size_t
	if err := a.check(C.sd_pppp(a.table, C.SD_GetBoundOutputValues, b.p, alloc, unsafe.Pointer(&arr), unsafe.Pointer(&n)),
		"GetBoundOutputValues"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	if arr == nil || n == 0 {
		return nil, nil
	}
	raw := append([]unsafe.Pointer(nil), unsafe.Slice((*unsafe.Pointer)(arr), int(n))...)
	freeErr := a.check(C.sd_pp(a.table, C.SD_AllocatorFree, alloc, arr), "AllocatorFree")
	keep := []*life{&b.session.life}
	for _, v := range b.outputs {
		keep = append(keep, &v.life)
	}
	values := make([]*Value, 0, len(raw))
	for i, p := range raw {
		v, err := a.wrapValue(p, keep)
		if err != nil {
			for _, q := range raw[i+1:] {
				a.release(C.SD_ReleaseValue, q)
			}
			for _, done := range values {
				done.Close()
			}
			return nil, fmt.Errorf("ortdev: bound output %d: %w", i, err)
		}
		values = append(values, v)
	}
	if freeErr != nil {
		for _, v := range values {
			v.Close()
		}
		return nil, fmt.Errorf("ortdev: bound output values: %w", freeErr)
	}
	return values, nil
}
