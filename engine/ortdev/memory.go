package ortdev

// #include "ortdev.h"
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"unsafe"
)

// Device is where tensor memory lives.
type Device string

// Devices ortdev knows how to name.
const (
	DeviceCPU    Device = "cpu"
	DeviceCUDA   Device = "cuda"
	DeviceWebGPU Device = "webgpu"
)

// ParseDevice maps a --device flag value to a Device.
func ParseDevice(s string) (Device, error) {
	switch d := Device(s); d {
	case DeviceCPU, DeviceCUDA, DeviceWebGPU:
		return d, nil
	}
	return "", fmt.Errorf("ortdev: unknown device %q (want cpu, cuda or webgpu)", s)
}

// memoryInfoNames lists the OrtMemoryInfo names of a device, preferred first:
// ORT 1.23+ calls WebGPU memory "WebGPU_Buf", older libraries "WebGPU_Buffer".
var memoryInfoNames = map[Device][]string{
	DeviceCPU:    {"Cpu"},
	DeviceCUDA:   {"Cuda"},
	DeviceWebGPU: {"WebGPU_Buf", "WebGPU_Buffer"},
}

// ElementType is ORT's ONNXTensorElementDataType, restricted to the types
// strata moves between host and device.
type ElementType int

// Supported element types (values are ONNX's TensorProto data types).
const (
	Float32 ElementType = 1
	Uint8   ElementType = 2
	Int8    ElementType = 3
	Int32   ElementType = 6
	Int64   ElementType = 7
	Float16 ElementType = 10
)

// Size is the number of bytes of one element; 0 for an unsupported type.
func (t ElementType) Size() int {
	switch t {
	case Float32, Int32:
		return 4
	case Int64:
		return 8
	case Float16:
		return 2
	case Uint8, Int8:
		return 1
	}
	return 0
}

// String names the type as ONNX does.
func (t ElementType) String() string {
	switch t {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Float16:
		return "float16"
	case Uint8:
		return "uint8"
	case Int8:
		return "int8"
	}
	return fmt.Sprintf("element type %d", int(t))
}

// MemoryInfo describes a device memory (OrtMemoryInfo). It is only read by
// ORT when passed to a call, so it has no dependants and may be closed any time.
type MemoryInfo struct {
	api    *API
	p      unsafe.Pointer
	device Device
	name   string
	id     int
	life   life
}

// NewMemoryInfo describes the default (device-allocator) memory of device
// number deviceID: "Cpu", "Cuda" or "WebGPU_Buf" (falling back to
// "WebGPU_Buffer" on libraries that predate the short name).
func (a *API) NewMemoryInfo(d Device, deviceID int) (*MemoryInfo, error) {
	names, ok := memoryInfoNames[d]
	if !ok {
		return nil, fmt.Errorf("ortdev: memory info: unknown device %q", d)
	}
	if deviceID < 0 || deviceID > math.MaxInt16 {
		return nil, fmt.Errorf("ortdev: memory info: invalid device id %d", deviceID)
	}
	var err error
	for _, name := range names {
		cName := C.CString(name)
		var p unsafe.Pointer
		err = a.check(C.sd_CreateMemoryInfo(a.table, cName, C.int(allocDevice), C.int(deviceID), C.int(memTypeDefault), &p),
			"CreateMemoryInfo "+name)
		C.free(unsafe.Pointer(cName))
		if err != nil {
			slog.Debug("ortdev: memory info name rejected", "device", d, "name", name, "err", err)
			continue
		}
		m := &MemoryInfo{api: a, p: p, device: d, name: name, id: deviceID}
		m.life.release = func() { a.release(C.SD_ReleaseMemoryInfo, p) }
		return m, nil
	}
	return nil, fmt.Errorf("ortdev: memory info for %s: %w", d, err)
}

// Device is the device this memory info was created for.
func (m *MemoryInfo) Device() Device { return m.device }

// Name is the OrtMemoryInfo name in use ("Cpu", "Cuda", "WebGPU_Buf", …).
func (m *MemoryInfo) Name() string { return m.name }

// ID is the device number.
func (m *MemoryInfo) ID() int { return m.id }

// Close releases the memory info. It is idempotent.
func (m *MemoryInfo) Close() { m.life.close() }

// Allocator allocates tensors in one memory of one session
// (CreateAllocator). It stays valid while any tensor it made is open and
// keeps its session alive until then.
type Allocator struct {
	api     *API
	p       unsafe.Pointer
	session *Session
	device  Device
	life    life
}

// NewAllocator creates an allocator for the session's memory described by m;
// the session must run on an execution provider that owns that memory (CPU
// memory is always available).
func (s *Session) NewAllocator(m *MemoryInfo) (*Allocator, error) {
	if m == nil {
		return nil, errors.New("ortdev: create allocator: nil memory info")
	}
	if err := m.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: create allocator: memory info: %w", err)
	}
	defer m.life.unuse()
	if err := s.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: create allocator: session: %w", err)
	}
	var p unsafe.Pointer
	if err := s.api.check(C.sd_ppp(s.api.table, C.SD_CreateAllocator, s.p, m.p, unsafe.Pointer(&p)),
		"CreateAllocator "+m.name); err != nil {
		s.life.unuse()
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	al := &Allocator{api: s.api, p: p, session: s, device: m.device}
	al.life.release = func() {
		s.api.release(C.SD_ReleaseAllocator, p)
		s.life.unuse()
	}
	return al, nil
}

// Device is the device the allocator's memory lives on.
func (al *Allocator) Device() Device { return al.device }

// Close releases the allocator once the tensors it made are closed. It is
// idempotent.
func (al *Allocator) Close() { al.life.close() }

// Value is an ORT tensor (OrtValue): on a device when made by an Allocator or
// returned from a binding, in C heap memory when made by NewHostTensor.
type Value struct {
	api   *API
	p     unsafe.Pointer
	elem  ElementType
	shape []int64
	host  unsafe.Pointer // C.malloc'd data of a host tensor, nil otherwise
	life  life
}

// numElements validates a shape and returns its element count.
func numElements(shape []int64, t ElementType) (int, error) {
	if t.Size() == 0 {
		return 0, fmt.Errorf("unsupported %s", t)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		if d > 0 && n > math.MaxInt/int(d)/t.Size() {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= int(d)
	}
	return n, nil
}

// shapeArg returns a pointer to the shape for C (nil for a scalar).
func shapeArg(shape []int64) *C.int64_t {
	if len(shape) == 0 {
		return nil
	}
	return (*C.int64_t)(unsafe.Pointer(&shape[0]))
}

// NewTensor allocates an uninitialised tensor through the allocator
// (CreateTensorAsOrtValue). The tensor keeps the allocator alive.
func (al *Allocator) NewTensor(shape []int64, t ElementType) (*Value, error) {
	if _, err := numElements(shape, t); err != nil {
		return nil, fmt.Errorf("ortdev: allocate tensor: %w", err)
	}
	if err := al.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: allocate tensor: allocator: %w", err)
	}
	shape = append([]int64(nil), shape...)
	var p unsafe.Pointer
	if err := al.api.check(C.sd_CreateTensorAsOrtValue(al.api.table, al.p, shapeArg(shape), C.size_t(len(shape)), C.int(t), &p),
		"CreateTensorAsOrtValue"); err != nil {
		al.life.unuse()
		return nil, fmt.Errorf("ortdev: %w", err)
	}
	v := &Value{api: al.api, p: p, elem: t, shape: shape}
	v.life.release = func() {
		al.api.release(C.SD_ReleaseValue, p)
		al.life.unuse()
	}
	return v, nil
}

// NewHostTensor creates a zeroed tensor in C heap memory
// (CreateTensorWithDataAsOrtValue over a "Cpu" memory info). Its data is
// reachable from Go through Bytes and the typed views without breaking cgo's
// pointer rules, since the memory is not Go's.
func (a *API) NewHostTensor(shape []int64, t ElementType) (*Value, error) {
	n, err := numElements(shape, t)
	if err != nil {
		return nil, fmt.Errorf("ortdev: host tensor: %w", err)
	}
	var info unsafe.Pointer
	if err := a.check(C.sd_CreateCpuMemoryInfo(a.table, C.int(allocDevice), C.int(memTypeDefault), &info),
		"CreateCpuMemoryInfo"); err != nil {
		return nil, fmt.Errorf("ortdev: host tensor: %w", err)
	}
	defer a.release(C.SD_ReleaseMemoryInfo, info)
	bytes := n * t.Size()
	data := C.calloc(C.size_t(max(bytes, 1)), 1)
	if data == nil {
		return nil, fmt.Errorf("ortdev: host tensor: out of memory for %d bytes", bytes)
	}
	shape = append([]int64(nil), shape...)
	var p unsafe.Pointer
	if err := a.check(C.sd_CreateTensorWithDataAsOrtValue(a.table, info, data, C.size_t(bytes), shapeArg(shape),
		C.size_t(len(shape)), C.int(t), &p), "CreateTensorWithDataAsOrtValue"); err != nil {
		C.free(data)
		return nil, fmt.Errorf("ortdev: host tensor: %w", err)
	}
	v := &Value{api: a, p: p, elem: t, shape: shape, host: data}
	v.life.release = func() {
		a.release(C.SD_ReleaseValue, p)
		C.free(data)
	}
	return v, nil
}

// wrapValue takes ownership of an OrtValue ORT created (a bound output),
// reading its type and shape. The objects in keep are held until the value
// is closed.
func (a *API) wrapValue(p unsafe.Pointer, keep []*life) (*Value, error) {
	var info unsafe.Pointer
	if err := a.check(C.sd_pp(a.table, C.SD_GetTensorTypeAndShape, p, unsafe.Pointer(&info)), "GetTensorTypeAndShape"); err != nil {
		a.release(C.SD_ReleaseValue, p)
		return nil, err
	}
	defer a.release(C.SD_ReleaseTensorTypeAndShapeInfo, info)
	var elem C.int
	var rank C.size_t
	err := a.check(C.sd_pp(a.table, C.SD_GetTensorElementType, info, unsafe.Pointer(&elem)), "GetTensorElementType")
	if err == nil {
		err = a.check(C.sd_pp(a.table, C.SD_GetDimensionsCount, info, unsafe.Pointer(&rank)), "GetDimensionsCount")
	}
	shape := make([]int64, int(rank))
	if err == nil && rank > 0 {
		cShape := (*C.int64_t)(C.malloc(C.size_t(rank) * 8))
		err = a.check(C.sd_pps(a.table, C.SD_GetDimensions, info, unsafe.Pointer(cShape), rank), "GetDimensions")
		copy(shape, unsafe.Slice((*int64)(unsafe.Pointer(cShape)), int(rank)))
		C.free(unsafe.Pointer(cShape))
	}
	if err != nil {
		a.release(C.SD_ReleaseValue, p)
		return nil, err
	}
	for i, l := range keep {
		if err := l.use(); err != nil {
			for _, held := range keep[:i] {
				held.unuse()
			}
			a.release(C.SD_ReleaseValue, p)
			return nil, err
		}
	}
	v := &Value{api: a, p: p, elem: ElementType(elem), shape: shape}
	v.life.release = func() {
		a.release(C.SD_ReleaseValue, p)
		for _, l := range keep {
			l.unuse()
		}
	}
	return v, nil
}

// ElementType is the tensor's element type.
func (v *Value) ElementType() ElementType { return v.elem }

// Shape is a copy of the tensor's shape.
func (v *Value) Shape() []int64 { return append([]int64(nil), v.shape...) }

// NumElements is the product of the shape (1 for a scalar).
func (v *Value) NumElements() int {
	n := 1
	for _, d := range v.shape {
		n *= int(d)
	}
	return n
}

// Close releases the tensor (and, for a host tensor, its memory) once no
// IoBinding holds it. It is idempotent.
func (v *Value) Close() { v.life.close() }

// Bytes is the tensor's data as a byte slice when it lives in CPU memory: a
// host tensor, or a tensor allocated in "Cpu" memory (GetTensorMutableData).
// Device memory cannot be read this way; copy it to a host tensor with
// Env.CopyTensors. The slice aliases C memory and is valid until Close.
func (v *Value) Bytes() ([]byte, error) {
	if err := v.life.alive(); err != nil {
		return nil, fmt.Errorf("ortdev: tensor data: %w", err)
	}
	b, where, err := v.cpuBytes()
	if err != nil {
		return nil, fmt.Errorf("ortdev: tensor data: %w", err)
	}
	if b == nil {
		return nil, fmt.Errorf("ortdev: tensor data: tensor lives in %q device memory; copy it to a host tensor first", where)
	}
	return b, nil
}

// cpuBytes returns the data of a tensor in CPU memory, or nil and the name of
// the memory it lives in otherwise.
func (v *Value) cpuBytes() ([]byte, string, error) {
	n := v.NumElements() * v.elem.Size()
	if v.host != nil {
		return unsafe.Slice((*byte)(v.host), n), "Cpu", nil
	}
	var info unsafe.Pointer
	if err := v.api.check(C.sd_pp(v.api.table, C.SD_GetTensorMemoryInfo, v.p, unsafe.Pointer(&info)), "GetTensorMemoryInfo"); err != nil {
		return nil, "", err
	}
	name, _, _, _, devType, err := v.api.memoryInfoFields(info)
	if err != nil {
		return nil, "", err
	}
	if devType != deviceTypeCPU {
		return nil, name, nil
	}
	if n == 0 {
		return []byte{}, name, nil
	}
	var data unsafe.Pointer
	if err := v.api.check(C.sd_pp(v.api.table, C.SD_GetTensorMutableData, v.p, unsafe.Pointer(&data)), "GetTensorMutableData"); err != nil {
		return nil, "", err
	}
	return unsafe.Slice((*byte)(data), n), name, nil
}

// view returns the data as a []T after checking the element type.
func view[T any](v *Value, want ElementType) ([]T, error) {
	if v.elem != want {
		return nil, fmt.Errorf("ortdev: tensor is %s, not %s", v.elem, want)
	}
	b, err := v.Bytes()
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return []T{}, nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[0])), v.NumElements()), nil
}

// Float32s views a CPU-memory float32 tensor (see Bytes).
func (v *Value) Float32s() ([]float32, error) { return view[float32](v, Float32) }

// Float16s views a CPU-memory float16 tensor as raw IEEE half bits (see Bytes).
func (v *Value) Float16s() ([]uint16, error) { return view[uint16](v, Float16) }

// Int32s views a CPU-memory int32 tensor (see Bytes).
func (v *Value) Int32s() ([]int32, error) { return view[int32](v, Int32) }

// Int64s views a CPU-memory int64 tensor (see Bytes).
func (v *Value) Int64s() ([]int64, error) { return view[int64](v, Int64) }
