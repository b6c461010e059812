"""Pathway codes: one integer per (pre type, post type, channel type), the index of a chunk's stats.

``code = (pre_type * n_types + post_type) * (max_channel + 1) + channel``.  The NumPy engine encodes
with :meth:`PathwayCodes.encode`, the GPU kernel ``gp_group_init`` computes the same formula from
``n_types`` and ``max_channel`` (passed from here), and the API decodes with :meth:`PathwayCodes.decode`.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PathwayCodes:
    n_types: int  # neuron types (``max(neuron_type) + 1``)
    max_channel: int  # largest channel type id of the network's rows

    @classmethod
    def from_context(cls, ctx):
        n_types = int(ctx.neuron_type.max()) + 1 if ctx.neuron_type.size else 1
        return cls(n_types, int(ctx.max_channel_type_id))

    @property
    def size(self):
        return self.n_types * self.n_types * (self.max_channel + 1)

    def encode(self, pre_type, post_type, channel):
        """Codes of rows or groups (channel types above ``max_channel`` count as ``max_channel``)."""
        ch = np.clip(np.asarray(channel).astype(np.int64), 0, self.max_channel)
        return ((np.asarray(pre_type).astype(np.int64) * self.n_types + post_type) * (self.max_channel + 1) + ch)

    def decode(self, code):
        """``(pre_type, post_type, channel)`` of a code (ints or arrays)."""
        pre, rest = np.divmod(code, self.n_types * (self.max_channel + 1))
        post, ch = np.divmod(rest, self.max_channel + 1)
        return pre, post, ch
