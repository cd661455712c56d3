package ortdev

// #include "ortdev.h"
import "C"

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// MappedFile is a file mapped read-only into memory. Tensors made over it
// (Tensor) read the mapping directly: handed to sessions as initializers
// (SessionOptions.AddInitializer), every session reads the same pages and
// none keeps a copy. It stays mapped until it is closed and no tensor over
// it remains.
type MappedFile struct {
	api  *API
	path string
	data []byte
	life life
}

// MapFile maps the file at path read-only.
func (a *API) MapFile(path string) (*MappedFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ortdev: map %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("ortdev: map %w", err)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("ortdev: map %s: empty file", path)
	}
	if st.Size() > int64(^uint(0)>>1) {
		return nil, fmt.Errorf("ortdev: map %s: %d bytes do not fit in memory", path, st.Size())
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("ortdev: map %s: %w", path, err)
	}
	m := &MappedFile{api: a, path: path, data: data}
	m.life.release = func() { _ = syscall.Munmap(data) }
	return m, nil
}

// Size is the mapped file's length in bytes.
func (m *MappedFile) Size() int64 { return int64(len(m.data)) }

// Release gives the pages read so far back to the kernel (madvise
// MADV_DONTNEED): the process's resident memory drops by them, and a later
// read faults them in again from the page cache. Called once the sessions
// reading the file have been created, it leaves resident only what their
// runs read (ONNX Runtime has copied the weights it packs into its own
// layout).
func (m *MappedFile) Release() error {
	if err := m.life.use(); err != nil {
		return fmt.Errorf("ortdev: release %s: %w", m.path, err)
	}
	defer m.life.unuse()
	if err := syscall.Madvise(m.data, syscall.MADV_DONTNEED); err != nil {
		return fmt.Errorf("ortdev: release %s: %w", m.path, err)
	}
	return nil
}

// Close unmaps the file once no tensor over it remains. It is idempotent.
func (m *MappedFile) Close() { m.life.close() }

// Tensor returns a CPU tensor of shape and type t over length bytes of the
// file from offset (CreateTensorWithDataAsOrtValue): no copy. The tensor
// keeps the mapping alive; it is read-only (Bytes must not be written).
func (m *MappedFile) Tensor(offset, length int64, shape []int64, t ElementType) (*Value, error) {
	n, err := numElements(shape, t)
	if err != nil {
		return nil, fmt.Errorf("ortdev: tensor over %s: %w", m.path, err)
	}
	if int64(n*t.Size()) != length {
		return nil, fmt.Errorf("ortdev: tensor over %s: %s %v is %d bytes, not %d", m.path, t, shape, n*t.Size(), length)
	}
	if offset < 0 || length <= 0 || offset > int64(len(m.data))-length {
		return nil, fmt.Errorf("ortdev: tensor over %s: bytes %d..%d outside a file of %d", m.path, offset, offset+length, len(m.data))
	}
	if err := m.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: tensor over %s: %w", m.path, err)
	}
	a := m.api
	var info unsafe.Pointer
	if err := a.check(C.sd_CreateCpuMemoryInfo(a.table, C.int(allocDevice), C.int(memTypeDefault), &info),
		"CreateCpuMemoryInfo"); err != nil {
		m.life.unuse()
		return nil, fmt.Errorf("ortdev: tensor over %s: %w", m.path, err)
	}
	defer a.release(C.SD_ReleaseMemoryInfo, info)
	// The mapping is not Go memory: its address may be handed to C.
	data := unsafe.Pointer(unsafe.SliceData(m.data[offset : offset+length]))
	shape = append([]int64(nil), shape...)
	var p unsafe.Pointer
	if err := a.check(C.sd_CreateTensorWithDataAsOrtValue(a.table, info, data, C.size_t(length), shapeArg(shape),
		C.size_t(len(shape)), C.int(t), &p), "CreateTensorWithDataAsOrtValue"); err != nil {
		m.life.unuse()
		return nil, fmt.Errorf("ortdev: tensor over %s: %w", m.path, err)
	}
	v := &Value{api: a, p: p, elem: t, shape: shape}
	v.life.release = func() {
		a.release(C.SD_ReleaseValue, p)
		m.life.unuse()
	}
	return v, nil
}

// AddInitializer makes sessions created with these options use v as the
// graph's initializer name instead of loading it (OrtApi AddInitializer).
// On the CPU ONNX Runtime reads v's memory in place, so sessions given the
// same value share it. Each session created with the options keeps v alive.
func (o *SessionOptions) AddInitializer(name string, v *Value) error {
	if name == "" || v == nil {
		return errors.New("ortdev: add initializer: empty name or nil value")
	}
	if err := v.life.use(); err != nil {
		return fmt.Errorf("ortdev: add initializer %s: %w", name, err)
	}
	cName := C.CString(name)
	defer C.free(unsafe.Pointer(cName))
	if err := o.call("AddInitializer "+name, func() unsafe.Pointer {
		return C.sd_ppp(o.api.table, C.SD_AddInitializer, o.p, unsafe.Pointer(cName), v.p)
	}); err != nil {
		v.life.unuse()
		return err
	}
	// The options hold the value until they are released; sessions take
	// their own hold when created (newSession).
	o.inits = append(o.inits, v)
	return nil
}

// Clone copies the options (CloneSessionOptions): configuration entries,
// providers, initializers added so far and the prepacked-weights container.
func (o *SessionOptions) Clone() (*SessionOptions, error) {
	if err := o.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: clone session options: %w", err)
	}
	defer o.life.unuse()
	a := o.api
	var p unsafe.Pointer
	if err := a.check(C.sd_pp(a.table, C.SD_CloneSessionOptions, o.p, unsafe.Pointer(&p)), "CloneSessionOptions"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	c := &SessionOptions{api: a, p: p, prepacked: o.prepacked, inits: append([]*Value(nil), o.inits...)}
	// o holds each of them: none is released yet.
	for _, v := range c.inits {
		v.life.retain()
	}
	if c.prepacked != nil {
		c.prepacked.life.retain()
	}
	c.life.release = c.releaseFunc()
	return c, nil
}

// releaseFunc releases the options and lets go of what they hold.
func (o *SessionOptions) releaseFunc() func() {
	return func() {
		o.api.release(C.SD_ReleaseSessionOptions, o.p)
		for _, v := range o.inits {
			v.life.unuse()
		}
		if o.prepacked != nil {
			o.prepacked.life.unuse()
		}
	}
}

// PrepackedWeights is a container of weights that kernels packed into
// their own layout (OrtPrepackedWeightsContainer): sessions created with
// the same container (SessionOptions.SetPrepackedWeights) and the same
// initializer values (AddInitializer) keep one packed copy of a weight
// instead of one each, for the kernels of the CPU provider that support
// it. It is released once closed and no options or session use it.
type PrepackedWeights struct {
	api  *API
	p    unsafe.Pointer
	life life
}

// NewPrepackedWeights creates an empty container.
func (a *API) NewPrepackedWeights() (*PrepackedWeights, error) {
	var p unsafe.Pointer
	if err := a.check(C.sd_p(a.table, C.SD_CreatePrepackedWeightsContainer, unsafe.Pointer(&p)),
		"CreatePrepackedWeightsContainer"); err != nil {
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	w := &PrepackedWeights{api: a, p: p}
	w.life.release = func() { a.release(C.SD_ReleasePrepackedWeightsContainer, p) }
	return w, nil
}

// Close releases the container once no options or session use it. It is
// idempotent.
func (w *PrepackedWeights) Close() { w.life.close() }

// SetPrepackedWeights makes sessions created with these options share
// packed weights through w (CreateSessionWithPrepackedWeightsContainer).
func (o *SessionOptions) SetPrepackedWeights(w *PrepackedWeights) error {
	if w == nil {
		return errors.New("ortdev: set prepacked weights: nil container")
	}
	if err := o.life.alive(); err != nil {
		return fmt.Errorf("ortdev: set prepacked weights: session options: %w", err)
	}
	if err := w.life.use(); err != nil {
		return fmt.Errorf("ortdev: set prepacked weights: %w", err)
	}
	if o.prepacked != nil {
		o.prepacked.life.unuse()
	}
	o.prepacked = w
	return nil
}

// holdShared takes a hold, for a session being created with o, on every
// initializer value and the prepacked-weights container o refers to;
// the returned function lets go of them.
func (o *SessionOptions) holdShared() (func(), error) {
	var held []*life
	done := func() {
		for _, l := range held {
			l.unuse()
		}
	}
	if err := o.life.alive(); err != nil {
		return nil, err
	}
	// The options hold each of them, so none is released yet, even if
	// its owner closed it.
	for _, v := range o.inits {
		v.life.retain()
		held = append(held, &v.life)
	}
	if o.prepacked != nil {
		o.prepacked.life.retain()
		held = append(held, &o.prepacked.life)
	}
	return done, nil
}

// createSession calls the CreateSession variant the options ask for: from a
// file or bytes, with or without a prepacked-weights container.
func (o *SessionOptions) createSession(e *Env, path string, data unsafe.Pointer, n int, out *unsafe.Pointer) error {
	a := e.api
	switch {
	case data != nil && o.prepacked != nil:
		return a.check(C.sd_ppsppp(a.table, C.SD_CreateSessionFromArrayWithPrepackedWeightsContainer, e.p, data, C.size_t(n),
			o.p, o.prepacked.p, unsafe.Pointer(out)), "CreateSessionFromArrayWithPrepackedWeightsContainer")
	case data != nil:
		return a.check(C.sd_ppspp(a.table, C.SD_CreateSessionFromArray, e.p, data, C.size_t(n), o.p, unsafe.Pointer(out)),
			"CreateSessionFromArray")
	}
	cPath := C.CString(path)
	defer C.free(unsafe.Pointer(cPath))
	if o.prepacked != nil {
		return a.check(C.sd_ppppp(a.table, C.SD_CreateSessionWithPrepackedWeightsContainer, e.p, unsafe.Pointer(cPath), o.p,
			o.prepacked.p, unsafe.Pointer(out)), "CreateSessionWithPrepackedWeightsContainer")
	}
	return a.check(C.sd_pppp(a.table, C.SD_CreateSession, e.p, unsafe.Pointer(cPath), o.p, unsafe.Pointer(out)), "CreateSession")
}

// retain takes another reference on an object that the caller already
// holds a reference on (so it cannot have been released), closed or not.
func (l *life) retain() {
	l.mu.Lock()
	l.refs++
	l.mu.Unlock()
}
