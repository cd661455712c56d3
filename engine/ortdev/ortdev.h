// ortdev.h: strata's own declarations of the few ONNX Runtime C API entry
// points that package ortdev calls. Nothing here comes from ONNX Runtime's
// header: every ORT object is an opaque void*, every enum is a plain int (the
// C ABI passes an enum as an int on every platform ORT supports), and every
// function is reached through its slot number in the OrtApi function table.
//
// The OrtApi struct is append-only: a function keeps its position for ever and
// new functions are only added at the end, so a slot number fixed here stays
// valid for every later library. The numbers below are the zero-based index of
// the function pointer inside the table; the highest one used (CopyTensors,
// 386) exists from API version 23 (ORT 1.23) on.
//
// On Linux and macOS ORT_API_CALL is empty, so the functions use the platform's
// default C calling convention.
#ifndef STRATA_ORTDEV_H
#define STRATA_ORTDEV_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

// The table returned by OrtApiBase.GetApi.
typedef void *const *sd_table;

// The ABI of OrtApiBase: a struct of exactly two function pointers,
// GetApi(uint32_t version) and GetVersionString(void).
typedef struct {
  sd_table (*get_api)(uint32_t version);
  const char *(*get_version_string)(void);
} sd_api_base;

typedef void *(*sd_get_api_base_fn)(void);

// Slot numbers (zero-based index into the OrtApi function table).
enum {
  SD_CreateStatus = 0,           // OrtStatus* (int code, const char* msg)
  SD_GetErrorCode = 1,           // int (const OrtStatus*)
  SD_GetErrorMessage = 2,        // const char* (const OrtStatus*)
  SD_CreateEnv = 3,              // (int log_level, const char* logid, OrtEnv**)
  SD_CreateEnvWithCustomLogger = 4,  // (OrtLoggingFunction, void* param, int log_level, const char* logid, OrtEnv**)
  SD_CreateSession = 7,          // (const OrtEnv*, const char* path, const OrtSessionOptions*, OrtSession**)
  SD_CreateSessionFromArray = 8, // (const OrtEnv*, const void* data, size_t n, const OrtSessionOptions*, OrtSession**)
  SD_CreateSessionOptions = 10,  // (OrtSessionOptions**)
  SD_CloneSessionOptions = 12,   // (const OrtSessionOptions*, OrtSessionOptions**)
  SD_EnableProfiling = 14,       // (OrtSessionOptions*, const char* prefix)
  SD_SetSessionGraphOptimizationLevel = 23,  // (OrtSessionOptions*, int level)
  SD_SetIntraOpNumThreads = 24,  // (OrtSessionOptions*, int n)
  SD_SessionGetInputCount = 30,  // (const OrtSession*, size_t*)
  SD_SessionGetOutputCount = 31, // (const OrtSession*, size_t*)
  SD_SessionGetInputName = 36,   // (const OrtSession*, size_t, OrtAllocator*, char**)
  SD_SessionGetOutputName = 37,  // (const OrtSession*, size_t, OrtAllocator*, char**)
  SD_CreateRunOptions = 39,      // (OrtRunOptions**)
  SD_CreateTensorAsOrtValue = 48,          // (OrtAllocator*, const int64_t* shape, size_t n, int type, OrtValue**)
  SD_CreateTensorWithDataAsOrtValue = 49,  // (const OrtMemoryInfo*, void* data, size_t bytes, const int64_t* shape, size_t n, int type, OrtValue**)
  SD_GetTensorMutableData = 51,  // (OrtValue*, void**)
  SD_GetTensorElementType = 60,  // (const OrtTensorTypeAndShapeInfo*, int*)
  SD_GetDimensionsCount = 61,    // (const OrtTensorTypeAndShapeInfo*, size_t*)
  SD_GetDimensions = 62,         // (const OrtTensorTypeAndShapeInfo*, int64_t*, size_t)
  SD_GetTensorTypeAndShape = 65, // (const OrtValue*, OrtTensorTypeAndShapeInfo**)
  SD_CreateMemoryInfo = 68,      // (const char* name, int alloc_type, int id, int mem_type, OrtMemoryInfo**)
  SD_CreateCpuMemoryInfo = 69,   // (int alloc_type, int mem_type, OrtMemoryInfo**)
  SD_MemoryInfoGetName = 71,     // (const OrtMemoryInfo*, const char**)
  SD_MemoryInfoGetId = 72,       // (const OrtMemoryInfo*, int*)
  SD_MemoryInfoGetMemType = 73,  // (const OrtMemoryInfo*, int*)
  SD_MemoryInfoGetType = 74,     // (const OrtMemoryInfo*, int*)
  SD_AllocatorFree = 76,         // (OrtAllocator*, void*)
  SD_GetAllocatorWithDefaultOptions = 78,  // (OrtAllocator**)
  SD_ReleaseEnv = 92,            // void (OrtEnv*)
  SD_ReleaseStatus = 93,         // void (OrtStatus*)
  SD_ReleaseMemoryInfo = 94,     // void (OrtMemoryInfo*)
  SD_ReleaseSession = 95,        // void (OrtSession*)
  SD_ReleaseValue = 96,          // void (OrtValue*)
  SD_ReleaseRunOptions = 97,     // void (OrtRunOptions*)
  SD_ReleaseTensorTypeAndShapeInfo = 99,  // void (OrtTensorTypeAndShapeInfo*)
  SD_ReleaseSessionOptions = 100,         // void (OrtSessionOptions*)
  SD_SessionEndProfiling = 110,  // (OrtSession*, OrtAllocator*, char** out)
  SD_DisablePerSessionThreads = 120,     // (OrtSessionOptions*)
  SD_CreateThreadingOptions = 121,       // (OrtThreadingOptions**)
  SD_ReleaseThreadingOptions = 122,      // void (OrtThreadingOptions*)
  SD_AddSessionConfigEntry = 130,         // (OrtSessionOptions*, const char* key, const char* value)
  SD_AddRunConfigEntry = 165,             // (OrtRunOptions*, const char* key, const char* value)
  SD_CreateAllocator = 131,      // (const OrtSession*, const OrtMemoryInfo*, OrtAllocator**)
  SD_ReleaseAllocator = 132,     // void (OrtAllocator*)
  SD_RunWithBinding = 133,       // (OrtSession*, const OrtRunOptions*, const OrtIoBinding*)
  SD_CreateIoBinding = 134,      // (OrtSession*, OrtIoBinding**)
  SD_ReleaseIoBinding = 135,     // void (OrtIoBinding*)
  SD_BindInput = 136,            // (OrtIoBinding*, const char*, const OrtValue*)
  SD_BindOutput = 137,           // (OrtIoBinding*, const char*, const OrtValue*)
  SD_BindOutputToDevice = 138,   // (OrtIoBinding*, const char*, const OrtMemoryInfo*)
  SD_GetBoundOutputValues = 140, // (const OrtIoBinding*, OrtAllocator*, OrtValue***, size_t*)
  SD_ClearBoundInputs = 141,     // void (OrtIoBinding*)
  SD_ClearBoundOutputs = 142,    // void (OrtIoBinding*)
  SD_CreateAndRegisterAllocator = 144,   // (OrtEnv*, const OrtMemoryInfo*, const OrtArenaCfg* or NULL)
  SD_SetGlobalIntraOpNumThreads = 147,   // (OrtThreadingOptions*, int n)
  SD_SetGlobalSpinControl = 149,         // (OrtThreadingOptions*, int allow_spinning)
  SD_AddInitializer = 150,               // (OrtSessionOptions*, const char* name, const OrtValue*)
  SD_CreateEnvWithCustomLoggerAndGlobalThreadPools = 151,  // (OrtLoggingFunction, void* param, int level, const char* logid, const OrtThreadingOptions*, OrtEnv**)
  SD_CreatePrepackedWeightsContainer = 166,   // (OrtPrepackedWeightsContainer**)
  SD_ReleasePrepackedWeightsContainer = 167,  // void (OrtPrepackedWeightsContainer*)
  SD_CreateSessionWithPrepackedWeightsContainer = 168,  // (const OrtEnv*, const char* path, const OrtSessionOptions*, OrtPrepackedWeightsContainer*, OrtSession**)
  SD_CreateSessionFromArrayWithPrepackedWeightsContainer = 169,  // (const OrtEnv*, const void* data, size_t n, const OrtSessionOptions*, OrtPrepackedWeightsContainer*, OrtSession**)
  SD_GetTensorMemoryInfo = 194,  // (const OrtValue*, const OrtMemoryInfo**)
  SD_SynchronizeBoundInputs = 202,   // (OrtIoBinding*)
  SD_SynchronizeBoundOutputs = 203,  // (OrtIoBinding*)
  SD_SessionOptionsAppendExecutionProvider_CUDA_V2 = 204,  // (OrtSessionOptions*, const OrtCUDAProviderOptionsV2*)
  SD_CreateCUDAProviderOptions = 205,   // (OrtCUDAProviderOptionsV2**)
  SD_UpdateCUDAProviderOptions = 206,   // (OrtCUDAProviderOptionsV2*, const char* const* keys, const char* const* values, size_t n)
  SD_ReleaseCUDAProviderOptions = 208,  // void (OrtCUDAProviderOptionsV2*)
  SD_SessionOptionsAppendExecutionProvider = 216,  // (OrtSessionOptions*, const char* name, const char* const* keys, const char* const* values, size_t n)
  SD_MemoryInfoGetDeviceType = 225,     // void (const OrtMemoryInfo*, int*)
  SD_RegisterExecutionProviderLibrary = 301,    // (OrtEnv*, const char* name, const char* path); API >= 22
  SD_UnregisterExecutionProviderLibrary = 302,  // (OrtEnv*, const char* name); API >= 22
  SD_GetEpDevices = 303,                        // (const OrtEnv*, const OrtEpDevice* const** devices, size_t* n); API >= 22
  SD_SessionOptionsAppendExecutionProvider_V2 = 304,  // (OrtSessionOptions*, OrtEnv*, const OrtEpDevice* const*, size_t, const char* const* keys, const char* const* values, size_t n); API >= 22
  SD_EpDevice_EpName = 312,                     // const char* (const OrtEpDevice*); API >= 22
  SD_CopyTensors = 386,  // (const OrtEnv*, const OrtValue* const* src, OrtValue* const* dst, OrtSyncStream* stream, size_t n); API >= 23
};

// Function pointer shapes. Every "status" function returns OrtStatus*, which
// is NULL on success.
typedef void *(*sd_fn_p)(void *);
typedef void *(*sd_fn_pp)(void *, void *);
typedef void *(*sd_fn_ppp)(void *, void *, void *);
typedef void *(*sd_fn_pppp)(void *, void *, void *, void *);
typedef void *(*sd_fn_pi)(void *, int);
typedef void *(*sd_fn_ipp)(int, void *, void *);
typedef void *(*sd_fn_iip)(int, int, void *);
typedef void *(*sd_fn_psp)(void *, size_t, void *, void *);
typedef void *(*sd_fn_pps)(void *, void *, size_t);
typedef void (*sd_fn_void_p)(void *);
typedef void (*sd_fn_void_pp)(void *, void *);

static inline const char *sd_version_string(void *get_api_base) {
  sd_api_base *base = (sd_api_base *)((sd_get_api_base_fn)get_api_base)();
  return base == NULL ? NULL : base->get_version_string();
}

static inline sd_table sd_get_api(void *get_api_base, uint32_t version) {
  sd_api_base *base = (sd_api_base *)((sd_get_api_base_fn)get_api_base)();
  return base == NULL ? NULL : base->get_api(version);
}

// Generic callers by slot and argument shape.
static inline void *sd_p(sd_table t, int s, void *a) { return ((sd_fn_p)t[s])(a); }
static inline void *sd_pp(sd_table t, int s, void *a, void *b) { return ((sd_fn_pp)t[s])(a, b); }
static inline void *sd_ppp(sd_table t, int s, void *a, void *b, void *c) {
  return ((sd_fn_ppp)t[s])(a, b, c);
}
static inline void *sd_pppp(sd_table t, int s, void *a, void *b, void *c, void *d) {
  return ((sd_fn_pppp)t[s])(a, b, c, d);
}
static inline void *sd_ppspp(sd_table t, int s, void *a, void *b, size_t c, void *d, void *e) {
  return ((void *(*)(void *, void *, size_t, void *, void *))t[s])(a, b, c, d, e);
}
static inline void *sd_pi(sd_table t, int s, void *a, int b) { return ((sd_fn_pi)t[s])(a, b); }
static inline void *sd_psp(sd_table t, int s, void *a, size_t b, void *c, void *d) {
  return ((sd_fn_psp)t[s])(a, b, c, d);
}
static inline void *sd_pps(sd_table t, int s, void *a, void *b, size_t c) {
  return ((sd_fn_pps)t[s])(a, b, c);
}
static inline void sd_void_p(sd_table t, int s, void *a) { ((sd_fn_void_p)t[s])(a); }
static inline void sd_void_pp(sd_table t, int s, void *a, void *b) { ((sd_fn_void_pp)t[s])(a, b); }

// Calls whose argument lists do not fit the generic shapes.
static inline void *sd_ppppp(sd_table t, int s, void *a, void *b, void *c, void *d, void *e) {
  return ((void *(*)(void *, void *, void *, void *, void *))t[s])(a, b, c, d, e);
}
static inline void *sd_ppsppp(sd_table t, int s, void *a, void *b, size_t c, void *d, void *e,
                              void *f) {
  return ((void *(*)(void *, void *, size_t, void *, void *, void *))t[s])(a, b, c, d, e, f);
}
static inline void *sd_CreateStatus(sd_table t, int code, const char *msg) {
  return ((void *(*)(int, const char *))t[SD_CreateStatus])(code, msg);
}
static inline int sd_GetErrorCode(sd_table t, void *status) {
  return ((int (*)(void *))t[SD_GetErrorCode])(status);
}
static inline const char *sd_GetErrorMessage(sd_table t, void *status) {
  return ((const char *(*)(void *))t[SD_GetErrorMessage])(status);
}
static inline void *sd_CreateEnv(sd_table t, int level, const char *logid, void **out) {
  return ((sd_fn_ipp)t[SD_CreateEnv])(level, (void *)logid, out);
}
// strataOrtLog is the OrtLoggingFunction, exported from Go (logger.go).
extern void strataOrtLog(void *param, int severity, char *category, char *logid,
                         char *code_location, char *message);
static inline void *sd_CreateEnvWithCustomLogger(sd_table t, int level, const char *logid,
                                                 void **out) {
  return ((void *(*)(void *, void *, int, const char *, void **))t[SD_CreateEnvWithCustomLogger])(
      (void *)strataOrtLog, NULL, level, logid, out);
}
static inline void *sd_CreateEnvWithCustomLoggerAndGlobalThreadPools(sd_table t, int level,
                                                                     const char *logid,
                                                                     void *threading, void **out) {
  return ((void *(*)(void *, void *, int, const char *, void *, void **))
              t[SD_CreateEnvWithCustomLoggerAndGlobalThreadPools])((void *)strataOrtLog, NULL, level,
                                                                   logid, threading, out);
}
static inline void *sd_CreateCpuMemoryInfo(sd_table t, int alloc_type, int mem_type, void **out) {
  return ((sd_fn_iip)t[SD_CreateCpuMemoryInfo])(alloc_type, mem_type, out);
}
static inline void *sd_CreateMemoryInfo(sd_table t, const char *name, int alloc_type, int id,
                                        int mem_type, void **out) {
  return ((void *(*)(const char *, int, int, int, void **))t[SD_CreateMemoryInfo])(
      name, alloc_type, id, mem_type, out);
}
static inline void *sd_CreateTensorAsOrtValue(sd_table t, void *alloc, const int64_t *shape,
                                              size_t n, int type, void **out) {
  return ((void *(*)(void *, const int64_t *, size_t, int, void **))t[SD_CreateTensorAsOrtValue])(
      alloc, shape, n, type, out);
}
static inline void *sd_CreateTensorWithDataAsOrtValue(sd_table t, void *info, void *data,
                                                      size_t bytes, const int64_t *shape,
                                                      size_t n, int type, void **out) {
  return ((void *(*)(void *, void *, size_t, const int64_t *, size_t, int, void **))
              t[SD_CreateTensorWithDataAsOrtValue])(info, data, bytes, shape, n, type, out);
}
static inline void *sd_ProviderOptions(sd_table t, int s, void *target, const char *name,
                                       const char *const *keys, const char *const *values,
                                       size_t n) {
  if (s == SD_SessionOptionsAppendExecutionProvider) {
    return ((void *(*)(void *, const char *, const char *const *, const char *const *, size_t))
                t[s])(target, name, keys, values, n);
  }
  return ((void *(*)(void *, const char *const *, const char *const *, size_t))t[s])(
      target, keys, values, n);
}
static inline const char *sd_EpDevice_EpName(sd_table t, const void *dev) {
  return ((const char *(*)(const void *))t[SD_EpDevice_EpName])(dev);
}
static inline void *sd_AppendExecutionProvider_V2(sd_table t, void *opts, void *env,
                                                  void *const *devices, size_t n_devices,
                                                  const char *const *keys,
                                                  const char *const *values, size_t n) {
  return ((void *(*)(void *, void *, void *const *, size_t, const char *const *,
                     const char *const *, size_t))t[SD_SessionOptionsAppendExecutionProvider_V2])(
      opts, env, devices, n_devices, keys, values, n);
}
static inline void *sd_CopyTensors(sd_table t, void *env, void *const *src, void *const *dst,
                                   size_t n) {
  return ((void *(*)(void *, void *const *, void *const *, void *, size_t))t[SD_CopyTensors])(
      env, src, dst, NULL, n);
}

#endif
