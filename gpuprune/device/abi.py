"""The kernels' ABI, defined once: compile-time constants and the argument struct every kernel takes.

Every kernel of ``kernels/prune.cu`` takes one parameter, ``const gp_args a``.  Its layout is the
field list :data:`ARGS` below; from it come

- the CUDA ``struct`` text (:func:`struct_text`), part of the generated header block that
  :mod:`gpuprune.device.kernels` puts in front of the kernel source (and that ``kernels/gp_defines.cuh``
  holds for standalone builds);
- the NumPy structured dtype CuPy passes by value (:func:`numpy_dtype`, C alignment);
- the ``ctypes.Structure`` the emulated device passes to the host build (:func:`ctypes_struct`).

Python fills one :class:`Args` per chunk (a dict of field values: device arrays, numbers, or None
for a null pointer); a backend packs it.  Adding a kernel parameter is one line here.
"""

import ctypes
import functools

import numpy as np

#: parameter-set flag bits.
FLAG_HAS_SOFT_MAX = 1
FLAG_HAS_MU2 = 2
FLAG_HAS_A3 = 4
FLAG_CLUSTER = 8
FLAG_ROW_DRAW = 16
#: p(d) table kinds: dense over a column-8 range, or one entry per chunk row (file order).
DIST_DENSE = 0
DIST_PER_ROW = 1
#: error bits of the chunk's error word (``gp_build_keys``, ``gp_group_starts``).
ERR_NEURON = 1
ERR_TYPE = 2
ERR_UNSORTED = 4
#: bits of the channel type in the packed key.
TYPE_BITS = 16
#: "no bad group" value of ``gp_group_init``'s atomicMin slot.
NO_GROUP = np.uint64(0xFFFFFFFFFFFFFFFF)

#: scalar C types of the kernels and their NumPy dtypes.
C_TYPES = {"gp_u8": np.uint8, "gp_i32": np.int32, "gp_u32": np.uint32, "gp_i64": np.int64,
           "gp_u64": np.uint64, "double": np.float64}
_CTYPES = {np.uint8: ctypes.c_uint8, np.int32: ctypes.c_int32, np.uint32: ctypes.c_uint32,
           np.int64: ctypes.c_int64, np.uint64: ctypes.c_uint64, np.float64: ctypes.c_double}

#: parameter-set and probability tables (``gp_rules`` of prune_rules.cuh): (name, C type, comment).
RULES = (
    ("lut", "const gp_i32*", "(lut_types, lut_types, lut_channels, 2) parameter-set index, -1: none"),
    ("lut_types", "gp_i32", ""),
    ("lut_channels", "gp_i32", ""),
    ("flags", "const gp_u8*", "GP_HAS_SOFT_MAX | GP_HAS_MU2 | GP_HAS_A3 | GP_CLUSTER | GP_ROW_DRAW"),
    ("f1", "const double*", ""),
    ("soft_max", "const double*", ""),
    ("a3", "const double*", ""),
    ("dist_index", "const gp_i32*", "distance expression of the set, -1: none"),
    ("p_keep", "const double*", "(sets, table_stride): soft_max keep probability by kept rows n"),
    ("p_mu", "const double*", "(sets, table_stride): mu2 survival probability by kept rows n"),
    ("table_stride", "gp_i64", ""),
)
#: p(d) tables of one chunk (``gp_dist_tables``): GP_DIST_DENSE tables hold p for column-8 values
#: lo[e], lo[e] + 1, ...; GP_DIST_PER_ROW tables one p per chunk row in file order.
DIST = (
    ("mode", "const gp_i32*", ""),
    ("lo", "const gp_i64*", ""),
    ("offset", "const gp_i64*", "start of table e in p"),
    ("p", "const double*", ""),
)
#: the batched evaluation of a tuned pathway (``gp_tune_args``, kernel ``gp_tune_kept``;
#: gpuprune/tune/device.py): rows that passed the distance test, sorted by group then r_f1; P
#: parameter sets of one or two blocks; a3 and soft_max +inf and p_mu +inf where a block has none.
TUNE = (
    ("n_groups", "gp_i64", ""),
    ("n_sets", "gp_i64", "P"),
    ("sets_per_thread", "gp_i64", "each thread takes one group and this many sets (P: all)"),
    ("n_blocks", "gp_i32", "parameter blocks: pruning (0) and pruning_other (1)"),
    ("width", "gp_i64", "table width: largest group + 1"),
    ("lo", "const gp_i64*", "(groups + 1) first row of each group"),
    ("block", "const gp_u8*", "per group"),
    ("r_f1", "const double*", "per row"),
    ("r_sm", "const double*", "per row"),
    ("r_a3", "const double*", "per group"),
    ("r_mu2", "const double*", "per group"),
    ("f1", "const double*", "(P, blocks)"),
    ("a3", "const double*", "(P, blocks)"),
    ("soft_max", "const double*", "(P, blocks)"),
    ("p_keep", "const double*", "(P, blocks, width)"),
    ("p_mu", "const double*", "(P, blocks, width)"),
    ("work", "gp_i32*", "(P, groups) scratch: kept rows after f1 and a3"),
    ("kept", "gp_i32*", "(P, groups) kept rows"),
    ("inside", "const gp_u8*", "per row: inside the z cut (null: no cut)"),
    ("counted", "gp_i32*", "(P, groups) kept rows inside the z cut (null: no cut)"),
)
#: everything a kernel reads or writes (``gp_args``); nested structs by their field lists.
ARGS = (
    ("rules", RULES, ""),
    ("dist", DIST, ""),
    # the run: neurons and their Philox keys
    ("num_neurons", "gp_i64", ""),
    ("seed", "gp_u64", ""),
    ("neuron_type", "const gp_i32*", ""),
    ("unit", "const gp_i64*", "population unit"),
    ("msd", "const double*", "max_soma_distance_dend"),
    ("has_msd", "gp_i32", ""),
    ("key0", "gp_u32*", ""),
    ("key1", "gp_u32*", ""),
    ("code_types", "gp_i32", "pathway codes (gpuprune.engine.pathway.PathwayCodes)"),
    ("max_channel", "gp_i32", ""),
    ("code_size", "gp_i64", ""),
    # the chunk: rows in file order, onto dest neurons [dest_lo, dest_hi)
    ("n", "gp_i64", "rows"),
    ("rows", "const gp_i32*", ""),
    ("width", "gp_i32", ""),
    ("is_synapse", "gp_i32", ""),
    ("kind", "gp_u32", "Philox kind word"),
    ("dest_lo", "gp_i64", ""),
    ("dest_hi", "gp_i64", ""),
    ("dest_shift", "gp_i32", ""),
    ("share_parameter_id", "gp_i32", ""),
    ("cluster_threshold", "double", "voxels"),
    ("error", "gp_u32*", "GP_ERR_* bits"),
    # per row (sorted position unless said otherwise)
    ("key", "gp_u64*", "packed group key, file order"),
    ("order", "const gp_i64*", "file row of each sorted position"),
    ("is_start", "gp_u8*", ""),
    ("row_group", "gp_i64*", ""),
    ("keep", "gp_u8*", ""),
    ("cand", "gp_u8*", "passed the distance rule (cluster pruning candidates)"),
    ("count", "gp_i64*", "cluster neighbour counts"),
    # per group
    ("n_groups", "gp_i64", ""),
    ("starts", "const gp_i64*", ""),
    ("size", "gp_i64*", ""),
    ("pset", "gp_i32*", ""),
    ("alive", "gp_u8*", ""),
    ("code", "gp_i64*", ""),
    ("n_keep", "gp_i64*", ""),
    ("cluster", "gp_u8*", ""),
    ("bad_group", "gp_u64*", "first group whose r lies outside 0..1"),
    # compaction and statistics
    ("m", "gp_i64", "kept rows"),
    ("kept", "const gp_i64*", ""),
    ("out", "gp_i32*", ""),
    ("stats", "gp_u64*", "(4, code_size)"),
    # tuning (gp_tune_kept only)
    ("tune", TUNE, ""),
)
#: the C names of the structs, by field list.
STRUCT_NAMES = {id(RULES): "gp_rules", id(DIST): "gp_dist_tables", id(TUNE): "gp_tune_args", id(ARGS): "gp_args"}
#: every struct, nested ones first
STRUCTS = (RULES, DIST, TUNE, ARGS)


def _is_pointer(ctype):
    return isinstance(ctype, str) and ctype.endswith("*")


def _base(ctype):
    return ctype.removeprefix("const ").rstrip("*").strip()


def fields(struct=ARGS, prefix=""):
    """``(dotted name, C type)`` of every scalar or pointer field, nested structs flattened."""
    out = []
    for name, ctype, _ in struct:
        if isinstance(ctype, tuple):
            out += fields(ctype, f"{prefix}{name}.")
        else:
            out.append((prefix + name, ctype))
    return out


def pointer_dtype(ctype):
    """NumPy dtype a pointer field points to."""
    return np.dtype(C_TYPES[_base(ctype)])


def struct_text():
    """C definitions of the structs (nested ones first)."""
    parts = []
    for struct in STRUCTS:
        lines = [f"struct {STRUCT_NAMES[id(struct)]} {{"]
        for name, ctype, comment in struct:
            decl = f"{STRUCT_NAMES[id(ctype)]} {name};" if isinstance(ctype, tuple) else f"{ctype} {name};"
            lines.append(f"    {decl}" + (f"  // {comment}" if comment else ""))
        parts.append("\n".join(lines) + "\n};")
    return "\n".join(parts)


def numpy_dtype(struct=ARGS):
    """The struct as a NumPy structured dtype with C alignment (pointers as uint64)."""
    names, formats = [], []
    for name, ctype, _ in struct:
        names.append(name)
        if isinstance(ctype, tuple):
            formats.append(numpy_dtype(ctype))
        else:
            formats.append(np.dtype(np.uint64) if _is_pointer(ctype) else np.dtype(C_TYPES[ctype]))
    return np.dtype({"names": names, "formats": formats}, align=True)


@functools.cache
def ctypes_struct(struct_id=None):
    """The struct (default :data:`ARGS`) as a ``ctypes.Structure`` class (pointers as ``c_void_p``)."""
    struct_id = id(ARGS) if struct_id is None else struct_id
    struct = next(s for s in STRUCTS if id(s) == struct_id)
    members = []
    for name, ctype, _ in struct:
        if isinstance(ctype, tuple):
            members.append((name, ctypes_struct(id(ctype))))
        else:
            members.append((name, ctypes.c_void_p if _is_pointer(ctype) else _CTYPES[C_TYPES[ctype]]))
    return type(STRUCT_NAMES[struct_id], (ctypes.Structure,), {"_fields_": members})


FIELDS = dict(fields())


class Args(dict):
    """Field values of one :data:`ARGS` struct by dotted name; unknown names are refused."""

    def __setitem__(self, name, value):
        if name not in FIELDS:
            raise KeyError(f"gp_args has no field {name!r}")
        super().__setitem__(name, value)

    def update(self, *args, **kw):
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def copy(self):
        return Args(self)


__all__ = ["ARGS", "Args", "DIST", "FIELDS", "RULES", "STRUCTS", "TUNE", "ctypes_struct", "fields", "numpy_dtype",
           "struct_text"]
