"""Find the compiled LZF extension ``gpuprune.io._lzf``, also from a source checkout.

``python -m pytest`` (or any ``python`` started in a clone) puts the clone's ``gpuprune/`` first on
``sys.path``; after a plain (non-editable) ``pip install .`` the compiled extension lives only in
the installed copy, so the normal import fails and gpuprune would fall back to h5py, slower. The
installed distribution's file list (``importlib.metadata``) says where its build is; it is loaded
from there when it is built for this interpreter (its file name carries the ABI tag) and has the
functions the reader and the writer call. (The kernels, plain text, need no install: a checkout
reads its own ``kernels/``, see ``device.cuda.kernel_dir``; a compiled module has to come from a
build.)
"""

import importlib.machinery
import importlib.metadata
import importlib.util
import sys

NAME = "gpuprune.io._lzf"
#: what the reader and the writer call
FUNCTIONS = ("decompress_into", "compress")


def _from_installed():
    # every distribution named gpuprune: a build in the checkout leaves a gpuprune.egg-info there,
    # first on sys.path, that lists the sources only
    for dist in importlib.metadata.distributions(name="gpuprune"):
        for f in dist.files or ():
            if f.parts[:-1] == ("gpuprune", "io") and f.name.startswith("_lzf.") and \
                    any(f.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES):
                module = _load(f.locate())
                if module is not None:
                    return module
    return None


def _load(path):
    spec = importlib.util.spec_from_file_location(NAME, path)
    if spec is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError:  # built for another platform
        return None
    if not all(hasattr(module, name) for name in FUNCTIONS):  # another release's build
        return None
    sys.modules[NAME] = module
    package = sys.modules.get("gpuprune.io")
    if package is not None:
        package._lzf = module  # ``from gpuprune.io import _lzf`` finds it too
    return module


def load_lzf():
    """The ``gpuprune.io._lzf`` module, or None where it was not built (reads and writes then use h5py)."""
    try:
        from gpuprune.io import _lzf
    except ImportError:
        return _from_installed()
    return _lzf
