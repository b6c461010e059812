// gpuprune: fixed-width types and the host/device qualifier shared by every kernel header.
//
// NVRTC (what CuPy compiles with) has no <stdint.h>, so the kernels use their own
// fixed-width names.  These widths hold on every platform CUDA supports (LP64 and
// LLP64): unsigned char 8, int 32, long long 64 bits.
#ifndef GPUPRUNE_GP_COMMON_CUH
#define GPUPRUNE_GP_COMMON_CUH

typedef unsigned char gp_u8;
typedef int gp_i32;
typedef unsigned int gp_u32;
typedef long long gp_i64;
typedef unsigned long long gp_u64;

#if defined(__cplusplus) && __cplusplus >= 201103L
static_assert(sizeof(gp_u8) == 1 && sizeof(gp_i32) == 4 && sizeof(gp_u32) == 4 &&
              sizeof(gp_i64) == 8 && sizeof(gp_u64) == 8, "gpuprune kernels need 8/32/64-bit types");
#endif

// Functions every backend shares: compiled for the device by NVRTC/nvcc, and for the
// host by nvcc or a plain C++ compiler (the emulator and the host-twin tests).
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#define GP_HD __host__ __device__ __forceinline__
#else
#include <math.h>
#define GP_HD inline
#endif

// The generated constants and argument structs (gpuprune.device.kernels.define_block) are in
// gp_defines.cuh, which includes this file; the kernel headers include gp_defines.cuh.

#endif  // GPUPRUNE_GP_COMMON_CUH
