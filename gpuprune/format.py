"""The Snudda on-disk contract: file names, row kinds and widths, meta keys, chunking (DESIGN §1-2).

Everything that names a file, a dataset, a column count or a chunk size of Snudda's formats is
defined here once; readers, writers, the generator and the SnuddaPrune compatibility layer import it.
"""

import os
from dataclasses import dataclass

WORKLOG = os.path.join("log", "network-detect-worklog.hdf5")
VOXEL_FILE = os.path.join("voxels", "network-putative-synapses-{}.hdf5")
PROJECTION_FILE = "network-projection-synapses.hdf5"
CONFIG_FILE = "network-config.json"

#: hyper voxel id given to the projection file (it comes first in every order).
PROJECTION_HID = -1
#: meta entries every hyper voxel file must share with the work log.
META_KEYS = ("voxel_size", "hyper_voxel_size", "simulation_origo", "config_file", "position_file", "slurm_id")


@dataclass(frozen=True)
class Kind:
    """One of the two data kinds: synapses or gap junctions."""

    name: str  # "synapses" or "gap_junctions"
    width: int
    matrix: str
    lookup: str
    worklog_counts: str
    kind_id: int  # DESIGN §4 data kind g


SYNAPSES = Kind("synapses", 13, "network/synapses", "network/synapse_lookup", "num_hypervoxel_synapses", 0)
GAP_JUNCTIONS = Kind("gap_junctions", 11, "network/gap_junctions", "network/gap_junction_lookup",
                     "num_hypervoxel_gap_junctions", 1)
KINDS = {"synapses": SYNAPSES, "gap_junctions": GAP_JUNCTIONS}
#: rows per HDF5 chunk of Snudda's row matrices (``synapse_chunk_size``), and their filter
CHUNK_ROWS = 10000
COMPRESSION = "lzf"
#: the count datasets of an output file
COUNT = {"synapses": "network/num_synapses", "gap_junctions": "network/num_gap_junctions"}
#: the pruned output in a network directory (what SnuddaPrune writes)
OUTPUT_FILE = "network-synapses.hdf5"
#: the channel model id Snudda gives gap junctions (their rows have no channel column: all count as this)
GAP_JUNCTION_CHANNEL = 3

# -- Snudda's pruning files (written by SnuddaPrune, gpuprune.compat.snudda) ---------------------------
#: SnuddaPrune's log file, its scratch directory and the hyper voxel directory
PRUNE_LOG = os.path.join("log", "synapse-pruning.txt")
SCRATCH_DIR = "temp"
VOXEL_DIR = "voxels"
#: a merge file in the scratch directory: every row onto dest neurons lo .. hi-1
MERGE_FILE = "{kind}-for-neurons-{lo}-to-{hi}-MERGE-ME.hdf5"
#: the merge info in the network directory (lets a later prune reuse the merge files)
MERGE_INFO_FILE = "pruning_merge_info.json"
