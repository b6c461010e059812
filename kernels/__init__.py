"""CUDA C sources of gpuprune's device engine, shipped as package data.

``philox.cuh`` (Philox4x32-10 and the draw layout of DESIGN §4), ``prune_rules.cuh`` (the
per-row and per-group decisions of DESIGN §3) and ``prune.cu`` (the kernels) are read as text by
:mod:`gpuprune.device.kernels`; :mod:`gpuprune.device.cupy_backend` compiles them with CuPy on a
GPU, and :mod:`gpuprune.device.emulated` compiles them for the host to run the same kernels
without a GPU.  ``gp_defines.cuh`` is generated from :mod:`gpuprune.device.abi`.
"""
