"""Named random streams (DESIGN.md section 5).

Streams are keyed, not ordered: the stream for (point, replication, stream) is
``SeedSequence(root, spawn_key=(point, replication, stream))``. Nothing depends on
the order of ``spawn()`` calls, the batch size or the worker count, so
replication ``r`` of a batch is the Mesa model run for replication ``r``.

Each stream draws a fixed-shape block of uniforms every week (or once, for the
initial population); every random variable is computed from those uniforms by
inverse CDF in :mod:`displacement_sim.mechanics`. (The vectorized engine reads
the shipment stream without drawing the uniforms no load uses, :mod:`displacement_sim.pcg64`,
unless many of its rows share each stream: the consumption, and every number, are the same.)
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["Stream", "generator", "init_block_width", "shipment_block_width"]


class Stream(IntEnum):
    """Fixed stream ids: never renumber (that would change every result)."""

    INITIAL_NETWORKS = 0
    SHIPMENTS = 1
    INVESTIGATIONS = 2
    SUCCESSION = 3


def generator(root: int, point: int, replication: int, stream: Stream) -> np.random.Generator:
    """The generator of one stream of one replication of one sweep point."""
    seq = np.random.SeedSequence(int(root), spawn_key=(int(point), int(replication), int(stream)))
    return np.random.Generator(np.random.PCG64(seq))


# Columns of the initial-population block, one row per network slot.
INIT_COLUMNS = ("load_kg", "loads_per_week", "risk_aversion", "home", "hvt")


def init_block_width() -> int:
    """Uniforms per network slot in the initial-population block."""
    return len(INIT_COLUMNS)


def shipment_block_width(l_max: int) -> int:
    """Uniforms per network slot per week: the load count, then a port and a detection uniform per possible load."""
    return 1 + 2 * l_max
