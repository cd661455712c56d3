// The device-resident path (issue 9).
//
// deviceModel opens every graph of a package through engine/ortdev, our cgo
// layer over ONNX Runtime's C API, with the execution provider of
// Options.Device, and deviceExecutor keeps the decode state in that
// device's memory: the KV cache of every kept layer, two hidden-state
// buffers that the layers read and write in turn, the embedding's input ids
// and the head's logits. Per decode step exactly two copies cross between
// host and device — the token ids in ([B,1] int64) and the logits out
// ([B,1,V] float32) — each one Env.CopyTensors call, counted in
// deviceExecutor.copies and asserted by the tests (prefill adds one more
// copy of ids in; creating an executor clears its KV with one copy from a
// zeroed host tensor). seqlens_k and total_seq_len are host tensors, written
// in place and bound again before each run: GroupQueryAttention declares
// total_seq_len a CPU input; should a provider's kernel declare seqlens_k in
// device memory (CUDA's may), ORT copies those B int32 values when they are
// bound, a copy this count does not see.
//
// With Options{DeviceResident: true} and device "cpu" the same code runs on
// ORT's "Cpu" memory, where CopyTensors is a memory copy; that is the path the
// tests exercise on machines without a GPU, against the host executor and the
// plain-Go reference.
//
// Running on a GPU:
//
//   - WebGPU is built into the ONNX Runtime 1.30 library strata fetches:
//     `strata generate --device webgpu …` (Dawn needs a Vulkan driver on
//     Linux; see shared/device-webgpu.md for the recipe used on a lent
//     machine). `STRATA_TEST_DEVICE=webgpu go test ./engine/ortdev/` runs
//     ortdev's binding tests there.
//   - CUDA needs a GPU build of ONNX Runtime 1.30 supplied by the user with
//     --ort-lib or STRATA_ORT_LIB: `strata generate --device cuda --ort-lib
//     /path/to/libonnxruntime.so …`. It cannot be run here.
//
// GPU timings of this executor are to be measured on a lent GPU machine with
// `strata bench --device …`; the session that wrote it had none, so none
// are claimed here.

package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-llm/strata/engine/ortdev"
	"github.com/strata-llm/strata/models/manifest"
)

// deviceModel is the device-resident path: one ortdev session per graph on
// the chosen execution provider and an allocator in that device's memory.
// Sessions and the allocator are shared by every executor; ORT sessions are
// safe for concurrent runs, and each executor owns its bindings and tensors.
type deviceModel struct {
	dev    ortdev.Device
	man    *manifest.Manifest
	api    *ortdev.API
	env    *ortdev.Env
	embed  *ortdev.Session
	head   *ortdev.Session
	layers []*ortdev.Session
	mem    *ortdev.MemoryInfo
	alloc  *ortdev.Allocator
}

// deviceError is a failure of the device itself (no adapter, a provider
// missing from the library, out of memory). It prints as one line naming the
// device and keeps the ORT error for errors.As.
type deviceError struct {
	dev  ortdev.Device
	what string
	err  error
}

func (e *deviceError) Error() string {
	msg := fmt.Sprintf("device %s: %s: %s", e.dev, e.what, strings.Join(strings.Fields(e.err.Error()), " "))
	switch e.dev {
	case ortdev.DeviceWebGPU:
		msg += " (WebGPU needs a GPU adapter: a GPU with a Vulkan driver on Linux)"
	case ortdev.DeviceCUDA:
		msg += " (CUDA needs a GPU build of ONNX Runtime 1.30, given with --ort-lib or STRATA_ORT_LIB)"
	}
	return msg
}

func (e *deviceError) Unwrap() error { return e.err }

// openDevice opens the package's graphs for opts.Device through ortdev.
// libPath is the ONNX Runtime library onnxruntime_go already loaded; both
// share ORT's process-wide environment.
func openDevice(libPath string, opts Options, man *manifest.Manifest, embed string, layers []string, head string) (d *deviceModel, err error) {
	dev, err := ortdev.ParseDevice(opts.Device)
	if err != nil {
		return nil, err
	}
	if len(layers) != man.NumLayers {
		return nil, fmt.Errorf("device %s: %d layer graphs for %d layers", dev, len(layers), man.NumLayers)
	}
	dm := &deviceModel{dev: dev, man: man}
	d = dm
	defer func() {
		if err != nil {
			dm.close() // the return statement has set d to nil
		}
	}()
	if d.api, err = ortdev.Open(libPath); err != nil {
		return nil, fmt.Errorf("device %s: %w", dev, err)
	}
	if d.env, err = d.api.NewEnv(ortdev.LogWarning, "strata"); err != nil {
		return nil, fmt.Errorf("device %s: %w", dev, err)
	}
	so, err := d.api.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", dev, err)
	}
	defer so.Close()
	if err := so.SetIntraOpNumThreads(max(opts.Threads, 0)); err != nil {
		return nil, fmt.Errorf("device %s: %w", dev, err)
	}
	if err := so.SetGraphOptimizationLevel(ortdev.OptAll); err != nil {
		return nil, fmt.Errorf("device %s: %w", dev, err)
	}
	// On a GPU every node must run there, or ORT would silently move
	// tensors back and forth; with only the CPU provider ORT refuses a
	// session when this is set.
	if dev != ortdev.DeviceCPU {
		if err := so.AddConfigEntry("session.disable_cpu_ep_fallback", "1"); err != nil {
			return nil, fmt.Errorf("device %s: %w", dev, err)
		}
	}
	if err := so.AppendDevice(dev, nil); err != nil {
		return nil, &deviceError{dev, "start the execution provider", err}
	}
	open := func(path string, inputs, outputs []string) (*ortdev.Session, error) {
		s, err := d.env.NewSession(path, so)
		if err != nil {
			return nil, &deviceError{dev, "open " + filepath.Base(path), err}
		}
		if err := checkNames(s, inputs, outputs); err != nil {
			s.Close()
			return nil, fmt.Errorf("device %s: %s: %w", dev, filepath.Base(path), err)
		}
		return s, nil
	}
	if d.embed, err = open(embed, embedInputs, embedOutputs); err != nil {
		return nil, err
	}
	for _, p := range layers {
		s, err := open(p, layerInputs, layerOutputs)
		if err != nil {
			return nil, err
		}
		d.layers = append(d.layers, s)
	}
	if d.head, err = open(head, headInputs, headOutputs); err != nil {
		return nil, err
	}
	if d.mem, err = d.api.NewMemoryInfo(dev, 0); err != nil {
		return nil, &deviceError{dev, "describe device memory", err}
	}
	// Every session runs on the same device and provider, so tensors from
	// one session's allocator serve them all.
	if d.alloc, err = d.embed.NewAllocator(d.mem); err != nil {
		return nil, &deviceError{dev, "create an allocator", err}
	}
	return d, nil
}

// checkNames reports a graph whose inputs or outputs are not the ones the
// executor binds.
func checkNames(s *ortdev.Session, inputs, outputs []string) error {
	for _, want := range inputs {
		if !slices.Contains(s.InputNames(), want) {
			return fmt.Errorf("graph has no input %q (inputs %v)", want, s.InputNames())
		}
	}
	for _, want := range outputs {
		if !slices.Contains(s.OutputNames(), want) {
			return fmt.Errorf("graph has no output %q (outputs %v)", want, s.OutputNames())
		}
	}
	return nil
}

// close releases the allocator, sessions and env. Tensors still open keep
// what they depend on alive until they are closed (ortdev's lifetimes).
func (d *deviceModel) close() {
	if d.alloc != nil {
		d.alloc.Close()
	}
	if d.mem != nil {
		d.mem.Close()
	}
	for _, s := range append([]*ortdev.Session{d.embed, d.head}, d.layers...) {
		if s != nil {
			s.Close()
		}
	}
	if d.env != nil {
		d.env.Close()
	}
}

// newExecutor makes an executor for a batch decoding through kept.
func (d *deviceModel) newExecutor(batch int, kept []int) (executor, error) {
	ex, err := newDeviceExecutor(d, batch, kept)
	if err != nil {
		return nil, err
	}
	return ex, nil
}

// transfers counts the host↔device copies an executor made (CopyTensors
// calls and the bytes they moved).
type transfers struct {
	toDevice, toHost           int
	toDeviceBytes, toHostBytes int64
}

// devKV is one layer's KV cache for the whole batch in device memory,
// [B, Hkv, max_seq_len, Dh] each, bound as both past_* and present_*.
type devKV struct {
	k, v *ortdev.Value
}

func (p *devKV) bytes() int64 {
	return int64(p.k.NumElements()+p.v.NumElements()) * int64(ortdev.Float32.Size())
}

func (p *devKV) close() {
	p.k.Close()
	p.v.Close()
}

// deviceExecutor implements executor with the decode state in device memory
// (see the file comment). Its semantics are hostExecutor's.
//
// # Prefill
//
// hostExecutor prefills one row at a time through a view of that row of each
// KV buffer. Device memory cannot be viewed that way (a WebGPU tensor is a
// buffer handle, not an address that can be offset) and CopyTensors only
// copies whole tensors, so prefill here runs the batch together: prefill
// records each row's prompt and the first logits call runs them all at
// full depth, layer after layer, in two runs per layer:
//
//  1. the prompts without their last token, right-padded to [B, P] with
//     seqlens_k = (length−1)−1 per row (a row whose prompt is one token gets
//     one padding slot, seqlens_k = 0). GroupQueryAttention writes padded
//     slots with values no row ever attends to;
//  2. each row's last prompt token as one decode-shaped step [B,1] at
//     position length−1, which overwrites the first padded slot of shorter
//     rows; the later ones are overwritten by that row's generated tokens.
//
// Step 2 leaves the last position's hidden state of every row in the same
// [B,1,D] buffers decode uses, ready for the head: no gather of per-row
// positions out of [B,P,D] (which device memory cannot do without another
// graph), and no head over [B,P,V]. Running step 2 right after step 1 at each
// layer lets skipped layers share one scratch KV pair, which must hold all B
// rows, since the rows prefill together (the host path's scratch holds one).
// The scratch is freed when prefill ends; kvBytes counts it (peak memory).
type deviceExecutor struct {
	d     *deviceModel
	batch int
	kept  []int
	kv    []*devKV // per layer; nil for layers decoding skips

	idsHost, ids          *ortdev.Value    // [B,1] int64, host and device
	seqlens, total        *ortdev.Value    // host: [B] int32 and a scalar int32
	hidden                [2]*ortdev.Value // device [B,1,D] ping-pong
	logitsDev, logitsHost *ortdev.Value    // [B,1,V] float32, device and host
	rows                  [][]float32      // per-row views of the host logits

	embedB *ortdev.IoBinding
	layerB []*ortdev.IoBinding    // per kept layer, in order
	headB  [2]*ortdev.IoBinding   // head reading hidden[0] or hidden[1]
	ready  int                    // the hidden buffer the head reads next
	owned  []interface{ Close() } // closed in reverse order

	prompts      [][]int // per row, until the batch is prefilled
	prefilled    bool
	scratchBytes int64
	copies       transfers
}

// newDeviceExecutor allocates the KV pairs of the kept layers (zeroed with
// one copy from the host, once), the per-step tensors, and one IoBinding per
// graph it runs while decoding.
func newDeviceExecutor(d *deviceModel, batch int, kept []int) (ex *deviceExecutor, err error) {
	man := d.man
	if batch < 1 {
		return nil, fmt.Errorf("device executor: batch size %d, want ≥ 1", batch)
	}
	if len(kept) == 0 {
		return nil, errors.New("device executor: no layers to decode through")
	}
	for _, l := range kept {
		if l < 0 || l >= man.NumLayers {
			return nil, fmt.Errorf("device executor: layer %d outside 0..%d", l, man.NumLayers-1)
		}
	}
	x := &deviceExecutor{d: d, batch: batch, kept: slices.Clone(kept), kv: make([]*devKV, man.NumLayers)}
	ex = x
	defer func() {
		if err != nil {
			x.close() // the return statement has set ex to nil
		}
	}()
	var zero []*devKV
	for _, l := range kept {
		if ex.kv[l] == nil {
			if ex.kv[l], err = ex.newKV(); err != nil {
				return nil, err
			}
			zero = append(zero, ex.kv[l])
		}
	}
	if err := ex.zeroKV(zero); err != nil {
		return nil, err
	}
	B, D, V := int64(batch), int64(man.HiddenSize), int64(man.VocabSize)
	if ex.idsHost, err = ex.hostTensor([]int64{B, 1}, ortdev.Int64); err != nil {
		return nil, err
	}
	if ex.ids, err = ex.deviceTensor([]int64{B, 1}, ortdev.Int64); err != nil {
		return nil, err
	}
	if ex.seqlens, err = ex.hostTensor([]int64{B}, ortdev.Int32); err != nil {
		return nil, err
	}
	if ex.total, err = ex.hostTensor(nil, ortdev.Int32); err != nil {
		return nil, err
	}
	for i := range ex.hidden {
		if ex.hidden[i], err = ex.deviceTensor([]int64{B, 1, D}, ortdev.Float32); err != nil {
			return nil, err
		}
	}
	if ex.logitsDev, err = ex.deviceTensor([]int64{B, 1, V}, ortdev.Float32); err != nil {
		return nil, err
	}
	if ex.logitsHost, err = ex.hostTensor([]int64{B, 1, V}, ortdev.Float32); err != nil {
		return nil, err
	}
	data, err := ex.logitsHost.Float32s()
	if err != nil {
		return nil, err
	}
	for b := 0; b < batch; b++ {
		ex.rows = append(ex.rows, data[b*int(V):(b+1)*int(V)])
	}
	ex.prompts = make([][]int, batch) // sized after allocation proved batch sane

	if ex.embedB, err = ex.bind(d.embed, []string{inInputIDs}, []*ortdev.Value{ex.ids},
		[]string{outHidden}, []*ortdev.Value{ex.hidden[0]}); err != nil {
		return nil, fmt.Errorf("device executor: bind embedding: %w", err)
	}
	for j, l := range kept {
		b, err := ex.bindLayer(l, ex.hidden[j%2], ex.hidden[(j+1)%2], ex.kv[l], ex.seqlens, ex.total)
		if err != nil {
			return nil, err
		}
		ex.layerB = append(ex.layerB, b)
	}
	for i := range ex.headB {
		if ex.headB[i], err = ex.bind(d.head, []string{inHidden}, []*ortdev.Value{ex.hidden[i]},
			[]string{outLogits}, []*ortdev.Value{ex.logitsDev}); err != nil {
			return nil, fmt.Errorf("device executor: bind head: %w", err)
		}
	}
	ex.ready = -1
	return ex, nil
}

// own records an object to close with the executor.
func (ex *deviceExecutor) own(c interface{ Close() }) { ex.owned = append(ex.owned, c) }

// deviceTensor allocates an executor-owned tensor in device memory.
func (ex *deviceExecutor) deviceTensor(shape []int64, t ortdev.ElementType) (*ortdev.Value, error) {
	v, err := ex.d.alloc.NewTensor(shape, t)
	if err != nil {
		return nil, &deviceError{ex.d.dev, fmt.Sprintf("allocate %s %v", t, shape), err}
	}
	ex.own(v)
	return v, nil
}

// hostTensor allocates an executor-owned tensor in host memory.
func (ex *deviceExecutor) hostTensor(shape []int64, t ortdev.ElementType) (*ortdev.Value, error) {
	v, err := ex.d.api.NewHostTensor(shape, t)
	if err != nil {
		return nil, fmt.Errorf("device executor: %w", err)
	}
	ex.own(v)
	return v, nil
}

// newKV allocates one batch-wide KV pair on the device. It is not owned:
// the caller closes it (kv pairs with close, the scratch after prefill).
func (ex *deviceExecutor) newKV() (*devKV, error) {
	man := ex.d.man
	shape := []int64{int64(ex.batch), int64(man.NumKVHeads), int64(man.MaxSeqLen), int64(man.HeadDim)}
	k, err := ex.d.alloc.NewTensor(shape, ortdev.Float32)
	if err != nil {
		return nil, &deviceError{ex.d.dev, fmt.Sprintf("allocate KV cache %v", shape), err}
	}
	v, err := ex.d.alloc.NewTensor(shape, ortdev.Float32)
	if err != nil {
		k.Close()
		return nil, &deviceError{ex.d.dev, fmt.Sprintf("allocate KV cache %v", shape), err}
	}
	return &devKV{k, v}, nil
}

// zeroKV clears freshly allocated KV pairs (device allocations are
// uninitialised, and a NaN bit pattern in a slot no row attends to could
// still reach a kernel that multiplies it by a zero weight) with one copy
// from a zeroed host tensor. It runs once per executor, never per step.
func (ex *deviceExecutor) zeroKV(pairs []*devKV) error {
	if len(pairs) == 0 {
		return nil
	}
	zeros, err := ex.d.api.NewHostTensor(pairs[0].k.Shape(), ortdev.Float32)
	if err != nil {
		return fmt.Errorf("device executor: clear KV cache: %w", err)
	}
	defer zeros.Close()
	var src, dst []*ortdev.Value
	for _, p := range pairs {
		src = append(src, zeros, zeros)
		dst = append(dst, p.k, p.v)
	}
	if err := ex.d.env.CopyTensors(src, dst); err != nil {
		return &deviceError{ex.d.dev, "clear KV cache", err}
	}
	return nil
}

// bind creates an executor-owned IoBinding on s.
func (ex *deviceExecutor) bind(s *ortdev.Session, inNames []string, in []*ortdev.Value, outNames []string, out []*ortdev.Value) (*ortdev.IoBinding, error) {
	b, err := s.NewIoBinding()
	if err != nil {
		return nil, err
	}
	ex.own(b)
	for i, name := range inNames {
		if err := b.BindInput(name, in[i]); err != nil {
			return nil, err
		}
	}
	for i, name := range outNames {
		if err := b.BindOutput(name, out[i]); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// bindLayer binds layer l reading in and writing out, with kv bound as both
// past and present.
func (ex *deviceExecutor) bindLayer(l int, in, out *ortdev.Value, kv *devKV, seqlens, total *ortdev.Value) (*ortdev.IoBinding, error) {
	b, err := ex.bind(ex.d.layers[l],
		[]string{inHidden, inPastKey, inPastValue, inSeqlensK, inTotalSeqLen},
		[]*ortdev.Value{in, kv.k, kv.v, seqlens, total},
		[]string{outHiddenOut, outPresentKey, outPresentVal},
		[]*ortdev.Value{out, kv.k, kv.v})
	if err != nil {
		return nil, fmt.Errorf("device executor: bind layer %d: %w", l, err)
	}
	return b, nil
}

// upload copies a host tensor to the device and counts it.
func (ex *deviceExecutor) upload(src, dst *ortdev.Value) error {
	if err := ex.d.env.CopyTensors([]*ortdev.Value{src}, []*ortdev.Value{dst}); err != nil {
		return &deviceError{ex.d.dev, "copy to the device", err}
	}
	ex.copies.toDevice++
	ex.copies.toDeviceBytes += int64(src.NumElements() * src.ElementType().Size())
	return nil
}

// download copies a device tensor to the host and counts it.
func (ex *deviceExecutor) download(src, dst *ortdev.Value) error {
	if err := ex.d.env.CopyTensors([]*ortdev.Value{src}, []*ortdev.Value{dst}); err != nil {
		return &deviceError{ex.d.dev, "copy from the device", err}
	}
	ex.copies.toHost++
	ex.copies.toHostBytes += int64(src.NumElements() * src.ElementType().Size())
	return nil
}

// run runs one graph through its binding; what and layer (≥ 0 for a layer
// graph) name it in an error, formatted only then.
func (ex *deviceExecutor) run(s *ortdev.Session, b *ortdev.IoBinding, what string, layer int) error {
	if err := s.RunWithBinding(b, nil); err != nil {
		if layer >= 0 {
			what = fmt.Sprintf("%s %d", what, layer)
		}
		return fmt.Errorf("%s on %s: %s", what, ex.d.dev, strings.Join(strings.Fields(err.Error()), " "))
	}
	return nil
}

// prefill records row's prompt; the batch runs at the first logits call,
// once every row has its prompt (see the type's comment).
func (ex *deviceExecutor) prefill(row int, prompt []int) error {
	man := ex.d.man
	switch {
	case ex.prefilled:
		return errors.New("device executor: the batch is already prefilled (rows prefill together, once)")
	case row < 0 || row >= ex.batch:
		return fmt.Errorf("device executor: prefill row %d of a batch of %d", row, ex.batch)
	case len(prompt) == 0:
		return errors.New("device executor: empty prompt")
	case len(prompt) >= man.MaxSeqLen:
		return fmt.Errorf("device executor: prompt of %d tokens leaves no room in max_seq_len %d", len(prompt), man.MaxSeqLen)
	}
	for _, id := range prompt {
		if id < 0 || id >= man.VocabSize {
			return fmt.Errorf("device executor: prompt token id %d outside the vocabulary (0..%d)", id, man.VocabSize-1)
		}
	}
	ex.prompts[row] = slices.Clone(prompt)
	return nil
}

// setStep writes one token per row (ids, positions) into the host inputs and
// copies the ids to the device.
func (ex *deviceExecutor) setStep(ids, positions []int) error {
	hostIDs, err := ex.idsHost.Int64s()
	if err != nil {
		return err
	}
	seqlens, err := ex.seqlens.Int32s()
	if err != nil {
		return err
	}
	total, err := ex.total.Int32s()
	if err != nil {
		return err
	}
	maxPos := 0
	for b := range ids {
		hostIDs[b] = int64(ids[b])
		seqlens[b] = int32(positions[b])
		maxPos = max(maxPos, positions[b])
	}
	total[0] = int32(maxPos + 1)
	return ex.upload(ex.idsHost, ex.ids)
}

// runStep runs one [B,1] step through the embedding and the given layers
// (bound in order, reading hidden[0] first). Inputs whose contents change
// between steps are bound again before each run: ORT's BindInput copies an
// input to the memory its kernel declares at bind time, so a rebind keeps
// them current on any provider, and costs nothing where no copy is needed
// (every input here already lives where its kernel reads it).
func (ex *deviceExecutor) runStep(layers []int, bindings []*ortdev.IoBinding) error {
	if err := ex.runEmbed(); err != nil {
		return err
	}
	for j, b := range bindings {
		if err := b.BindInput(inSeqlensK, ex.seqlens); err != nil {
			return err
		}
		if err := b.BindInput(inTotalSeqLen, ex.total); err != nil {
			return err
		}
		if err := ex.run(ex.d.layers[layers[j]], b, "layer", layers[j]); err != nil {
			return err
		}
	}
	ex.ready = len(bindings) % 2
	return nil
}

// runEmbed embeds the step's ids (ex.ids) into hidden[0], binding the ids
// again first (see runStep).
func (ex *deviceExecutor) runEmbed() error {
	if err := ex.embedB.BindInput(inInputIDs, ex.ids); err != nil {
		return err
	}
	return ex.run(ex.d.embed, ex.embedB, "embedding", -1)
}

// runPrefill runs every row's prompt at full depth (see the type's comment).
func (ex *deviceExecutor) runPrefill() (err error) {
	man := ex.d.man
	B, D, L := ex.batch, man.HiddenSize, man.NumLayers
	maxLen := 0
	for b, p := range ex.prompts {
		if p == nil {
			return fmt.Errorf("device executor: row %d of %d was not prefilled", b, B)
		}
		maxLen = max(maxLen, len(p))
	}
	// tmp holds what only prefill needs; it is closed before returning.
	var tmp []interface{ Close() }
	defer func() {
		for i := len(tmp) - 1; i >= 0; i-- {
			tmp[i].Close()
		}
	}()
	deviceT := func(shape []int64, t ortdev.ElementType) (*ortdev.Value, error) {
		v, err := ex.d.alloc.NewTensor(shape, t)
		if err != nil {
			return nil, &deviceError{ex.d.dev, fmt.Sprintf("allocate %s %v", t, shape), err}
		}
		tmp = append(tmp, v)
		return v, nil
	}
	hostT := func(shape []int64, t ortdev.ElementType) (*ortdev.Value, error) {
		v, err := ex.d.api.NewHostTensor(shape, t)
		if err != nil {
			return nil, fmt.Errorf("device executor: %w", err)
		}
		tmp = append(tmp, v)
		return v, nil
	}
	bindLayer := func(l int, in, out *ortdev.Value, kv *devKV, seqlens, total *ortdev.Value) (*ortdev.IoBinding, error) {
		b, err := ex.d.layers[l].NewIoBinding()
		if err != nil {
			return nil, fmt.Errorf("device executor: bind layer %d: %w", l, err)
		}
		tmp = append(tmp, b)
		for _, p := range []struct {
			name string
			v    *ortdev.Value
		}{{inHidden, in}, {inPastKey, kv.k}, {inPastValue, kv.v}, {inSeqlensK, seqlens}, {inTotalSeqLen, total}} {
			if err := b.BindInput(p.name, p.v); err != nil {
				return nil, fmt.Errorf("device executor: bind layer %d: %w", l, err)
			}
		}
		for _, p := range []struct {
			name string
			v    *ortdev.Value
		}{{outHiddenOut, out}, {outPresentKey, kv.k}, {outPresentVal, kv.v}} {
			if err := b.BindOutput(p.name, p.v); err != nil {
				return nil, fmt.Errorf("device executor: bind layer %d: %w", l, err)
			}
		}
		return b, nil
	}

	var scratch *devKV
	if len(ex.kept) < L {
		if scratch, err = ex.newKV(); err != nil {
			return err
		}
		tmp = append(tmp, scratch.k, scratch.v)
		if err := ex.zeroKV([]*devKV{scratch}); err != nil {
			return err
		}
		ex.scratchBytes = scratch.bytes()
	}
	kvOf := func(l int) *devKV {
		if ex.kv[l] != nil {
			return ex.kv[l]
		}
		return scratch
	}

	// Step 1: all but the last token of every prompt, right-padded to P.
	P := maxLen - 1
	var prefixB []*ortdev.IoBinding
	var embedPrefix *ortdev.IoBinding
	if P > 0 {
		idsHost, err := hostT([]int64{int64(B), int64(P)}, ortdev.Int64)
		if err != nil {
			return err
		}
		ids, err := deviceT([]int64{int64(B), int64(P)}, ortdev.Int64)
		if err != nil {
			return err
		}
		seqlens, err := hostT([]int64{int64(B)}, ortdev.Int32)
		if err != nil {
			return err
		}
		total, err := hostT(nil, ortdev.Int32)
		if err != nil {
			return err
		}
		idData, err := idsHost.Int64s() // zeroed: padding is token 0
		if err != nil {
			return err
		}
		seqData, err := seqlens.Int32s()
		if err != nil {
			return err
		}
		totalData, err := total.Int32s()
		if err != nil {
			return err
		}
		for b, p := range ex.prompts {
			for i, id := range p[:len(p)-1] {
				idData[b*P+i] = int64(id)
			}
			seqData[b] = int32(max(len(p)-1, 1) - 1)
		}
		totalData[0] = int32(P)
		if err := ex.upload(idsHost, ids); err != nil {
			return err
		}
		var h [2]*ortdev.Value
		for i := range h {
			if h[i], err = deviceT([]int64{int64(B), int64(P), int64(D)}, ortdev.Float32); err != nil {
				return err
			}
		}
		if embedPrefix, err = ex.d.embed.NewIoBinding(); err != nil {
			return fmt.Errorf("device executor: bind embedding: %w", err)
		}
		tmp = append(tmp, embedPrefix)
		if err := embedPrefix.BindInput(inInputIDs, ids); err != nil {
			return fmt.Errorf("device executor: bind embedding: %w", err)
		}
		if err := embedPrefix.BindOutput(outHidden, h[0]); err != nil {
			return fmt.Errorf("device executor: bind embedding: %w", err)
		}
		for l := 0; l < L; l++ {
			b, err := bindLayer(l, h[l%2], h[(l+1)%2], kvOf(l), seqlens, total)
			if err != nil {
				return err
			}
			prefixB = append(prefixB, b)
		}
	}

	// Step 2: the last token of every prompt as one [B,1] step.
	last := make([]int, B)
	pos := make([]int, B)
	for b, p := range ex.prompts {
		last[b], pos[b] = p[len(p)-1], len(p)-1
	}
	if err := ex.setStep(last, pos); err != nil {
		return err
	}
	var lastB []*ortdev.IoBinding
	for l := 0; l < L; l++ {
		b, err := bindLayer(l, ex.hidden[l%2], ex.hidden[(l+1)%2], kvOf(l), ex.seqlens, ex.total)
		if err != nil {
			return err
		}
		lastB = append(lastB, b)
	}

	if P > 0 {
		if err := ex.run(ex.d.embed, embedPrefix, "prefill embedding", -1); err != nil {
			return err
		}
	}
	if err := ex.runEmbed(); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	for l := 0; l < L; l++ {
		if P > 0 {
			if err := ex.run(ex.d.layers[l], prefixB[l], "prefill layer", l); err != nil {
				return err
			}
		}
		if err := ex.run(ex.d.layers[l], lastB[l], "prefill layer", l); err != nil {
			return err
		}
	}
	ex.ready = L % 2
	ex.prefilled = true
	ex.prompts = nil
	return nil
}

// logits prefills the batch if that is still pending, runs the head over
// the hidden state waiting for it and returns one row of logits per batch row.
func (ex *deviceExecutor) logits() ([][]float32, error) {
	if !ex.prefilled {
		if err := ex.runPrefill(); err != nil {
			return nil, err
		}
	}
	if err := ex.run(ex.d.head, ex.headB[ex.ready], "head", -1); err != nil {
		return nil, err
	}
	if err := ex.download(ex.logitsDev, ex.logitsHost); err != nil {
		return nil, err
	}
	return ex.rows, nil
}

// decode appends ids[b] at position positions[b] of row b through the kept
// layers and returns the next-token logits of every row.
func (ex *deviceExecutor) decode(ids []int, positions []int) ([][]float32, error) {
	man := ex.d.man
	if !ex.prefilled {
		return nil, errors.New("device executor: decode before prefill")
	}
	if len(ids) != ex.batch || len(positions) != ex.batch {
		return nil, fmt.Errorf("device executor: %d ids and %d positions for a batch of %d", len(ids), len(positions), ex.batch)
	}
	for b := range ids {
		if ids[b] < 0 || ids[b] >= man.VocabSize {
			return nil, fmt.Errorf("device executor: row %d: token id %d outside the vocabulary (0..%d)", b, ids[b], man.VocabSize-1)
		}
		if positions[b] < 0 || positions[b] >= man.MaxSeqLen {
			return nil, fmt.Errorf("device executor: row %d: position %d outside 0..%d", b, positions[b], man.MaxSeqLen-1)
		}
	}
	if err := ex.setStep(ids, positions); err != nil {
		return nil, err
	}
	if err := ex.runStep(ex.kept, ex.layerB); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	return ex.logits()
}

// kvBytes is the KV memory the executor holds on the device: one pair per
// kept layer, plus the batch-wide scratch pair prefill held while it ran.
func (ex *deviceExecutor) kvBytes() int64 {
	n := ex.scratchBytes
	for _, p := range ex.kv {
		if p != nil {
			n += p.bytes()
		}
	}
	return n
}

// close releases the executor's bindings and tensors. It is idempotent.
func (ex *deviceExecutor) close() {
	for i := len(ex.owned) - 1; i >= 0; i-- {
		ex.owned[i].Close()
	}
	ex.owned = nil
	for l, p := range ex.kv {
		if p != nil {
			p.close()
			ex.kv[l] = nil
		}
	}
}
