package ortdev

// #include "ortdev.h"
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// HostView returns a tensor of the given shape over v's host memory,
// starting offset elements in: no copy, writes through either tensor are
// seen by both. v must be a host tensor (NewHostTensor, or another view);
// it stays alive until the view is closed.
func (v *Value) HostView(offset int, shape []int64) (*Value, error) {
	if v.host == nil {
		return nil, errors.New("ortdev: host view: not a host tensor")
	}
	n, err := numElements(shape, v.elem)
	if err != nil {
		return nil, fmt.Errorf("ortdev: host view: %w", err)
	}
	if offset < 0 || offset+n > v.NumElements() {
		return nil, fmt.Errorf("ortdev: host view: elements %d..%d outside a tensor of %d", offset, offset+n, v.NumElements())
	}
	if err := v.life.use(); err != nil {
		return nil, fmt.Errorf("ortdev: host view: %w", err)
	}
	a := v.api
	var info unsafe.Pointer
	if err := a.check(C.sd_CreateCpuMemoryInfo(a.table, C.int(allocDevice), C.int(memTypeDefault), &info),
		"CreateCpuMemoryInfo"); err != nil {
		v.life.unuse()
		return nil, fmt.Errorf("ortdev: host view: %w", err)
	}
	defer a.release(C.SD_ReleaseMemoryInfo, info)
	data := unsafe.Add(v.host, offset*v.elem.Size())
	shape = append([]int64(nil), shape...)
	var p unsafe.Pointer
	if err := a.check(C.sd_CreateTensorWithDataAsOrtValue(a.table, info, data, C.size_t(n*v.elem.Size()), shapeArg(shape),
		C.size_t(len(shape)), C.int(v.elem), &p), "CreateTensorWithDataAsOrtValue"); err != nil {
		v.life.unuse()
		return nil, fmt.Errorf("ortdev: host view: %w", err)
	}
	view := &Value{api: a, p: p, elem: v.elem, shape: shape, host: data}
	view.life.release = func() {
		a.release(C.SD_ReleaseValue, p)
		v.life.unuse()
	}
	return view, nil
}

// IsHost reports whether the tensor's data is host memory that HostView can view.
func (v *Value) IsHost() bool { return v.host != nil }
