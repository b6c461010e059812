"""Find the compiled LZF extension ``gpuprune.io._lzf``, also from a source checkout.

``python -m pytest`` (or any ``python`` started in a clone) puts the clone's ``gpuprune/`` first on
``sys.path``; after a plain (non-editable) ``pip install .`` the compiled extension lives only in
the installed copy, so the normal import fails and gpuprune would fall back to h5py, slower. The
installed distribution's file list (``importlib.metadata``) says where its build is; it is loaded
from there when it is built for this interpreter (its file name carries the ABI tag) and has the
functions the reader and the writer call. There is no library for this: the kernels are found the
same way (``device.cuda.kernel_dir``).
"""

import importlib.machinery
import importlib.metadata
import importlib.util
import sys

NAME = "gpuprune.io._lzf"
#: what the reader and the writer call
FUNCTIONS = ("decompress_into", "compress")


def _from_installed():
    try:
        dist = importlib.metadata.distribution("gpuprune")
    except importlib.metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.parts[:-1] == ("gpuprune", "io") and f.name.startswith("_lzf.") and \
                any(f.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES):
            spec = importlib.util.spec_from_file_location(NAME, f.locate())
            if spec is None:
                continue
            module = importlib.util.module_from_spec(spec)
            try:
                spec.loader.exec_module(module)
            except ImportError:  # built for another platform
                continue
            if not all(hasattr(module, name) for name in FUNCTIONS):  # another release's build
                continue
            sys.modules[NAME] = module
            return module
    return None


def load_lzf():
    """The ``gpuprune.io._lzf`` module, or None where it was not built (reads and writes then use h5py)."""
    try:
        from gpuprune.io import _lzf
    except ImportError:
        return _from_installed()
    return _lzf
