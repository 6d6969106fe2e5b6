"""Per-row parameters: several sweep points in one vectorized batch (issue 4, item 3).

A batch row is one (sweep point, replication). When the points of a batch differ
only in *row fields* (behavioural numbers, detection qualities, budgets,
intelligence gains, ...), their engine parameters are stacked into one
:class:`~displacement_sim.params.RunPlan` whose row fields carry a leading
row axis; everything else (ports, nests, allocation units and rules, phases,
horizon, load slots, coordination mode, delays) is the batch's *structure* and
must be the same for every point (:func:`structure_key` groups points by it).

A shared field keeps its plain value (a float, or an array over ports or
agencies), exactly as in a single run; a per-row field has one more leading
axis (``(B,)`` for a number, ``(B, P)`` for a port array). The numpy code reads
row fields through :func:`at`, which inserts the singleton axes that make a
per-row value broadcast against ``(B, N, P)``-shaped state; the compiled loops
through :func:`per_row`, one value (or port array) per row. Arithmetic is elementwise,
so a row computes with exactly the numbers of its own point: a point's results
do not depend on which points share its batch (``tests/test_batched_points.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np

__all__ = [
    "HUGE_PAGE", "ROW_FIELDS", "NotBatchable", "aligned_empty", "aligned_zeros", "at", "built_once", "per_network",
    "per_row", "rank", "stack", "structure_key", "take_rows",
]  # fmt: skip


class NotBatchable(ValueError):
    """The points differ in a structural field: they cannot share a batch."""


# Row fields per dataclass name: field -> number of trailing (non-row) axes of its plain value.
ROW_FIELDS: dict[str, dict[str, int]] = {
    "Params": {
        **dict.fromkeys(
            (
                "margin",
                "beta",
                "nest_lambda",
                "phi",
                "setup",
                "kappa",
                "prior_strength",
                "memory",
                "omega",
                "access_growth",
                "access_decay",
                "access_burn",
                "zeta",
                "split_floor",
                "elsewhere_detection",
                "elsewhere_cost",
                "elsewhere_asc",
                "elsewhere_log_size",
                "hold_utility",
            ),
            0,
        ),
        **dict.fromkeys(("q", "c", "cost", "base_rate"), 1),
    },
    "AgencyParams": {"budget": 0},
    "CoopParams": {
        **dict.fromkeys(
            (
                "share",
                "gain_seizure",
                "gain_case",
                "gain_home",
                "evidence_weight",
                "decay",
                "gamma",
                "tip_gamma",
                "conflict_penalty",
                "jit_uplift",
                "psi",
                "entry_rate",
                "memory",
            ),
            0,
        ),
        **dict.fromkeys(("open_rate", "sigma"), 1),
    },
    "NetworkParams": {
        **{f"{d}_{k}": 0 for d in ("load", "rate", "lam") for k in ("median", "sigma", "low", "high")},
        "hvt_share": 0,
        "home_weights": 1,
    },
    "RunPlan": {"a0": 1, "lam_max": 0},
}
# Fields that are not engine inputs (the scenario object, free-form extras): kept from the first point.
IGNORED: dict[str, tuple[str, ...]] = {"RunPlan": ("scenario", "extra")}


def rank(x: Any) -> int:
    """``np.ndim`` without its dispatch cost (called for every agent and week): numbers have rank 0."""
    return getattr(x, "ndim", 0)


def at(x: Any, ndim: int, trailing: int = 0) -> Any:
    """``x`` ready for arithmetic with an array of ``ndim`` axes whose first axis is the batch row.

    A shared value (``np.ndim(x) <= trailing``: a number, or an array over ports or
    agencies) is returned as it is, so a single run computes exactly as before; a
    per-row value (one more leading axis) gets singleton axes after the row axis.
    """
    if getattr(x, "ndim", 0) <= trailing:  # numbers and shared arrays: as they are (and fast, for the Mesa agents)
        return x
    return x.reshape((x.shape[0],) + (1,) * (ndim - 1 - trailing) + x.shape[1:])


def per_row(x: Any, n_rows: int, *trailing: int) -> np.ndarray:
    """A shared or per-row value as a writable, C-ordered float array ``(n_rows, *trailing)``, for the compiled loops.

    A view where possible (a per-row array as it is; one shared row for a single row);
    otherwise the shared value broadcast and copied.
    """
    shape = (n_rows, *trailing)
    if isinstance(x, np.ndarray) and x.dtype == np.float64 and x.flags.c_contiguous:
        if x.shape == shape:
            return x
        if n_rows == 1 and x.shape == shape[1:]:
            return x.reshape(shape)
    return np.require(np.broadcast_to(np.asarray(x, dtype=np.float64), shape), requirements=["C", "W"])


_BUILT: dict[tuple, tuple[Any, Any]] = {}
_BUILT_MAX = 256


def built_once(params: Any, key: tuple, build: Callable[[], Any]) -> Any:
    """``build()``, kept for the parameters object ``params`` and ``key``: built once, then returned as it is.

    For the per-row arrays the compiled loops read every week, made from parameters that
    never change once built (the frozen ``Params`` and ``CoopParams``); the cache holds
    the object itself, so an id is never mistaken for a later object's, and it is
    emptied when it reaches ``_BUILT_MAX`` entries. The arrays are the loops' inputs:
    nothing writes them.
    """
    slot = (id(params), *key)
    hit = _BUILT.get(slot)
    if hit is not None and hit[0] is params:
        return hit[1]
    value = build()
    if len(_BUILT) >= _BUILT_MAX:
        _BUILT.clear()
    _BUILT[slot] = (params, value)
    return value


def per_network(x: Any, lead: tuple[int, ...], shape: tuple[int, ...], dtype: type = np.float64) -> np.ndarray:
    """A value per network (or one for all) with leading shape ``lead``, as a writable C-ordered array of ``shape``.

    ``shape`` is ``lead`` flattened for a compiled loop (e.g. ``(rows, networks)``); a view where possible.
    """
    if getattr(x, "ndim", 0) > len(lead):
        raise ValueError(f"a value per network of shape {np.shape(x)} for networks of shape {lead}")
    if not lead:  # one Mesa agent: a fresh array of one value (cheap)
        return np.array(x, dtype=dtype).reshape(shape)
    if isinstance(x, np.ndarray) and x.dtype == dtype and x.shape == lead and x.flags.c_contiguous:
        return np.require(x, requirements=["W"]).reshape(shape)  # a view unless read-only
    return np.require(np.broadcast_to(np.asarray(x, dtype=dtype), lead), requirements=["C", "W"]).reshape(shape)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    if is_dataclass(a):
        return type(a) is type(b) and all(_same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    if isinstance(a, tuple | list):
        return isinstance(b, tuple | list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def stack(objs: Sequence[Any], repeats: Sequence[int], where: str = "") -> Any:
    """One engine-parameter object for a batch: point ``k``'s values repeated ``repeats[k]`` times.

    Row fields that differ between the points get a leading row axis; any other
    difference raises :class:`NotBatchable` naming the field.
    """
    first = objs[0]
    if is_dataclass(first):
        name = type(first).__name__
        rows, ignored = ROW_FIELDS.get(name, {}), IGNORED.get(name, ())
        values = {}
        for f in fields(first):
            vals = [getattr(o, f.name) for o in objs]
            if f.name in ignored or all(_same(v, vals[0]) for v in vals[1:]):
                values[f.name] = vals[0]
            elif f.name in rows:
                values[f.name] = np.repeat(np.stack([np.asarray(v, dtype=float) for v in vals]), repeats, axis=0)
            else:
                values[f.name] = stack(vals, repeats, f"{where}{name}.{f.name}")
        return type(first)(**values)
    if isinstance(first, tuple) and first and is_dataclass(first[0]):
        if any(len(o) != len(first) for o in objs):
            raise NotBatchable(f"{where}: different numbers of entries")
        return tuple(stack([o[i] for o in objs], repeats, f"{where}[{i}].") for i in range(len(first)))
    if all(_same(v, first) for v in objs[1:]):
        return first
    raise NotBatchable(f"{where} differs between the points")


def take_rows(obj: Any, rows: np.ndarray) -> Any:
    """The rows ``rows`` of a stacked object (per-row fields indexed, shared fields kept)."""
    if is_dataclass(obj):
        spec = ROW_FIELDS.get(type(obj).__name__, {})
        values = {}
        for f in fields(obj):
            v = getattr(obj, f.name)
            if f.name in spec and np.ndim(v) > spec[f.name]:
                values[f.name] = np.asarray(v)[rows]
            elif is_dataclass(v) or (isinstance(v, tuple) and v and is_dataclass(v[0])):
                values[f.name] = take_rows(v, rows)
            else:
                values[f.name] = v
        return type(obj)(**values)
    if isinstance(obj, tuple):
        return tuple(take_rows(o, rows) for o in obj)
    return obj


def _key(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return ("array", str(x.dtype), x.shape, x.tobytes())
    if is_dataclass(x):
        name = type(x).__name__
        skip = set(ROW_FIELDS.get(name, {})) | set(IGNORED.get(name, ()))
        return (name, tuple((f.name, _key(getattr(x, f.name))) for f in fields(x) if f.name not in skip))
    if isinstance(x, tuple | list):
        return tuple(_key(v) for v in x)
    if isinstance(x, dict):
        return tuple(sorted((k, _key(v)) for k, v in x.items()))
    return x


def structure_key(plan: Any) -> Any:
    """A hashable key of everything but the row fields: points with equal keys can share a batch."""
    return _key(plan)


# --- the batch state's large arrays ----------------------------------------------------------------------

HUGE_PAGE = 2 * 2**20  # a transparent huge page on x86-64 Linux


def aligned_empty(shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """An empty array whose memory starts on a 2 MiB boundary when it is large (two huge pages or more).

    numpy asks Linux for transparent huge pages on allocations of 4 MiB and more
    (``madvise``), but the system maps huge pages only on the whole 2 MiB ranges inside the
    allocation, wherever ``malloc`` put it. The vectorized engine's large arrays (the
    networks' beliefs and insiders, the week's loads, the intelligence delay line) start on
    such a boundary, so they lie on huge pages when the system has them: measured on the
    baseline's 1,000 replications, run times then stayed within 11.2-11.7 s, where they
    otherwise fell in two clusters, about 11 s and 12.5 s, from one process to the next
    (docs/performance.md). The array is a view of a buffer one huge page longer; small
    arrays are plain ``np.empty``.
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes < 2 * HUGE_PAGE:
        return np.empty(shape, dtype)
    raw = np.empty(nbytes + HUGE_PAGE, dtype=np.uint8)
    start = -raw.ctypes.data % HUGE_PAGE
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def aligned_zeros(shape: tuple[int, ...], dtype: Any = np.float64) -> np.ndarray:
    """:func:`aligned_empty` filled with zeros."""
    out = aligned_empty(shape, dtype)
    out[...] = 0
    return out
