// Package ortdev is strata's small cgo layer over ONNX Runtime's C API for
// device-resident tensors: memory infos for a device, allocators, tensors in
// device memory, host↔device copies and IoBinding of device buffers. The
// engine and every test that runs a graph go through it, on host memory as
// on a device; github.com/yalue/onnxruntime_go appears only in this
// package's tests, for ORT's C API header and to check that both bindings
// work in one process. A decode step of one layer through ORT's WebGPU
// provider took 5.9 ms with host-memory I/O and 0.15–0.68 ms with
// device-bound buffers.
//
// # Slot table
//
// No ONNX Runtime header is used. Open dlopens the library at the given path
// (the same path onnxruntime_go loads yields the same handle), calls
// OrtGetApiBase, reads the library's version (ONNX Runtime 1.N serves OrtApi
// versions 1..N) and asks GetApi for the highest version both the library and
// ortdev know (APIVersion, 24: the C API header its slot numbers are checked
// against); a library older than the newest slot ortdev calls (MinAPIVersion)
// is refused with one error. The result is
// the OrtApi function table: an append-only struct of function pointers, so
// every function keeps its index in all later versions. ortdev.h declares only
// the entries ortdev calls, as slot numbers into that table with their
// argument shapes written out, every ORT object being an opaque pointer and
// every enum an int. Before returning, Open checks the declarations against
// the library: it round-trips a status through CreateStatus, GetErrorCode and
// GetErrorMessage, and reads back name, id, memory type, allocator type and
// device type of a CPU memory info; any mismatch is one error from Open.
//
// Supported libraries: ONNX Runtime 1.23 and newer (API 23 brought
// CopyTensors, the newest slot used); strata pins 1.30.0 for cpu and webgpu
// and 1.29.0's CUDA build for cuda, both used through API 24. Several
// libraries can be open in one process side by side; each stays loaded for
// the life of the process.
//
// # Provider libraries
//
// An execution provider shipped as its own library (CUDA's
// libonnxruntime_providers_cuda.so) is registered with the environment
// (Env.RegisterProviderLibrary) and appended to session options by name
// (SessionOptions.AppendProvider); this works with a core library built
// without that provider and gives the environment the provider's
// host↔device copies.
//
// # Shared weights
//
// MapFile maps a weight file read-only and MappedFile.Tensor makes CPU
// tensors over it without copying; SessionOptions.AddInitializer hands such
// a tensor to sessions in place of a graph initializer, and a
// PrepackedWeights container (SessionOptions.SetPrepackedWeights) lets
// sessions given the same initializers keep one copy of what ORT packs.
// The options, and every session created with them, hold what was handed
// over until they are released.
//
// # Ownership
//
// ortdev creates and releases its own env, sessions, allocators, tensors and
// bindings and never touches onnxruntime_go's objects: every ORT object has
// exactly one owner. ORT's environment is a reference-counted process
// singleton, so Env from NewEnv is a second reference to the environment
// onnxruntime_go may have created (or the first, if it comes first); closing
// ours leaves theirs working and vice versa. Every wrapper has an idempotent
// Close; an object whose dependants (a session's allocators, an allocator's
// tensors, a binding's bound values) are still open is released when the last
// of them closes, and using a closed wrapper returns ErrClosed. Wrappers are
// not meant for concurrent use except where documented (API is).
//
// # What the generator does with it
//
//	api, _ := ortdev.Open(libPath)
//	env, _ := api.NewEnv(ortdev.LogWarning, "strata")
//	opts, _ := api.NewSessionOptions()
//	opts.AppendDevice(dev, nil)                              // "WebGPU", CUDA or nothing for cpu
//	opts.AddConfigEntry("session.disable_cpu_ep_fallback", "1") // GPU only: CPU sessions fail with it
//	sess, _ := env.NewSession("layer_00.onnx", opts)
//	mem, _ := api.NewMemoryInfo(dev, 0)                     // "WebGPU_Buf", "Cuda" or "Cpu"
//	alloc, _ := sess.NewAllocator(mem)
//
// Then, per runner (one batch of rows): two hidden-state tensors [B,S,D] and
// KV tensors [B,Hkv,max_seq_len,Dh] from alloc.NewTensor, a pair for each
// layer the batch's schedule keeps and one scratch pair the skipped layers
// share (docs/design.md, "The KV cache"); host tensors
// (NewHostTensor) for input ids, seqlens_k and total_seq_len, which stay in
// host memory and are bound directly; one IoBinding per layer session with
// past_key/present_key (and value) bound to the same KV tensor, so
// GroupQueryAttention updates it in place. Per step: Env.CopyTensors host→device
// for the embedding input if it is a device tensor, RunWithBinding layer by
// layer with hidden and hidden_out alternating between the two hidden
// buffers, and one CopyTensors device→host of the logits at the end. With
// device = cpu the same code runs on "Cpu" memory (CI), where CopyTensors is a
// plain memory copy.
//
// Device availability is only known when a session is created (or, for
// WebGPU, when the provider is appended): with no GPU adapter or a library
// without the CUDA provider those calls return an *Error, never crash.
package ortdev
