// gpuprune: run CUDA kernels on the host (the emulated device of gpuprune.device.emulated).
//
// Included before the kernel sources when they are compiled with a plain C++
// compiler: CUDA's qualifiers expand to nothing, blockIdx/threadIdx/blockDim/gridDim
// are per-thread variables that the generated launchers set while they walk the
// grid block by block and thread by thread, and the atomics the kernels use become
// plain read-modify-writes (one host thread runs a whole grid).  This is exact for
// kernels without shared memory, barriers or warp primitives, which is all of
// prune.cu.
#ifndef GPUPRUNE_EMULATE_H
#define GPUPRUNE_EMULATE_H

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#error "emulate.h is for host compilers only"
#endif

#include <math.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct gp_emu_dim3 {
    unsigned int x, y, z;
};

static thread_local gp_emu_dim3 blockIdx = {0, 0, 0};
static thread_local gp_emu_dim3 threadIdx = {0, 0, 0};
static thread_local gp_emu_dim3 blockDim = {1, 1, 1};
static thread_local gp_emu_dim3 gridDim = {1, 1, 1};

inline unsigned int atomicOr(unsigned int* address, unsigned int value) {
    const unsigned int old = *address;
    *address = old | value;
    return old;
}

inline unsigned long long atomicMin(unsigned long long* address, unsigned long long value) {
    const unsigned long long old = *address;
    *address = value < old ? value : old;
    return old;
}

inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    const unsigned long long old = *address;
    *address = old + value;
    return old;
}

// Walk a 1-D grid of `grid` blocks of `block` threads, calling `body` once per thread.
template <typename Body>
inline void gp_emu_run_grid(unsigned int grid, unsigned int block, Body body) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned int b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        for (unsigned int t = 0; t < block; ++t) {
            threadIdx = {t, 0, 0};
            body();
        }
    }
}

#endif  // GPUPRUNE_EMULATE_H
