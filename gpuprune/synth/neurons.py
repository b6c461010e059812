"""Neuron attributes: soma position, rotation, morphology variant, distance bound, population unit.

Each is a pure function of the seed and the neuron id, so any block of neurons can be drawn alone.
"""

import numpy as np

from gpuprune.synth.config import (
    DSPN,
    HYPER_VOXEL_SIZE,
    ISPN,
    MAX_DENDRITE_DISTANCE,
    MORPHOLOGY_VARIANTS,
    NEURON_TYPES,
    SIMULATION_ORIGO,
    VOXEL_SIZE,
)
from gpuprune.synth.streams import NEURON_WORDS, STREAM_NEURON, below, uniform

NEURON_BLOCK = 1 << 20  # neurons per pass over neuron attributes


def neuron_attributes(plan, start, stop):
    """Attributes of neurons ``start .. stop-1``: a pure function of seed and id."""
    n = stop - start
    types = plan.neuron_type[start:stop].astype(np.int64)
    w = plan.streams.words(STREAM_NEURON, start, n, NEURON_WORDS)
    home = plan.populated[below(uniform(w[0], 0, 32), len(plan.populated))]
    frac = np.stack([uniform(w[1], 21 * i, 21) for i in range(3)], axis=1)
    voxel = plan.file_voxel_lo[home] + (0.05 + 0.9 * frac) * HYPER_VOXEL_SIZE
    origo = np.array(SIMULATION_ORIGO)
    position = origo + voxel * VOXEL_SIZE
    lo = np.array([r[0] for r in MAX_DENDRITE_DISTANCE])[types]
    hi = np.array([r[1] for r in MAX_DENDRITE_DISTANCE])[types]
    max_dist = (lo + uniform(w[2], 0, 32) * (hi - lo)).astype(np.float32)
    variant = below(uniform(w[2], 32, 32), np.array(MORPHOLOGY_VARIANTS)[types])
    rotation = _rotation_matrices(*(uniform(w[3], 21 * i, 21) for i in range(3)))
    unit = np.zeros(n, dtype=np.int64)
    if plan.population_units > 0:
        extent = plan.grid[0] * plan.hyper_voxel_width
        slab = below(np.clip((position[:, 0] - origo[0]) / extent, 0, 1 - 1e-12), plan.population_units)
        spn = (types == DSPN) | (types == ISPN)
        unit[spn] = 1 + slab[spn]
    return {"type": types, "home": home, "position": position, "max_dist": max_dist,
            "variant": variant, "rotation": rotation, "population_unit": unit}


def _rotation_matrices(u1, u2, u3):
    """Uniform random rotations (Shoemake's quaternion method), rows of 9."""
    a, b = np.sqrt(1 - u1), np.sqrt(u1)
    qw, qx = a * np.sin(2 * np.pi * u2), a * np.cos(2 * np.pi * u2)
    qy, qz = b * np.sin(2 * np.pi * u3), b * np.cos(2 * np.pi * u3)
    return np.stack([
        1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw),
        2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw),
        2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy),
    ], axis=1)


def index_neurons(plan):
    """Per-neuron arrays the row generator needs (type, home file, distance bound)."""
    n = plan.num_neurons
    plan.neuron_type = np.repeat(np.arange(len(NEURON_TYPES), dtype=np.int8), plan.type_counts)
    plan.home_file = np.empty(n, dtype=np.int32)
    plan.max_distance_um = np.empty(n, dtype=np.int32)
    for start in range(0, n, NEURON_BLOCK):
        stop = min(n, start + NEURON_BLOCK)
        attrs = neuron_attributes(plan, start, stop)
        plan.home_file[start:stop] = attrs["home"]
        # Column 8 is in whole micrometres and r = d / max_soma_distance_dend must
        # not exceed 1 with the float32 value widened to float64.
        bound = np.floor(attrs["max_dist"].astype(np.float64) * 1e6).astype(np.int64) - 1
        plan.max_distance_um[start:stop] = bound
