"""Build script for the one optional C extension (the rest of the metadata is in pyproject.toml).

``gpuprune.io._lzf`` decodes Snudda's LZF-compressed hyper voxel chunks several times faster than
h5py.  It is optional: where no C compiler is available the install still succeeds and gpuprune
reads through h5py instead, with the same results.
"""

import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3"]
setup(ext_modules=[Extension("gpuprune.io._lzf", ["gpuprune/io/_lzf.c"], optional=True, extra_compile_args=flags)])
