"""CUDA C sources of gpuprune's device engine, shipped as package data.

``philox.cuh`` (Philox4x32-10 and the draw layout of DESIGN §4),
``prune_rules.cuh`` (the per-row and per-group decisions of DESIGN §3) and
``prune.cu`` (the kernels) are read as text by :mod:`gpuprune.cuda`, which
compiles them with CuPy on a GPU, and by :mod:`gpuprune._emulate`, which
compiles them for the host to run the same kernels without a GPU.
"""
