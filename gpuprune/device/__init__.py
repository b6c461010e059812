"""The GPU backend: kernels, the device memory model, CuPy and emulated devices."""
