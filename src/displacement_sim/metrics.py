"""Summaries and displacement measures (DESIGN.md section 4).

The engines feed a :class:`Recorder` one week at a time with arrays whose
first axis is the replication. It keeps, per replication, the totals over the
evaluation window, and per week the mean and quantiles over replications, so
memory does not grow with the number of replications times weeks. (A batch too
large for one pass runs in groups whose recorders keep the bands' weekly series,
in anonymous temporary files, until the bands are computed over every replication:
``Recorder(mergeable=True, spill_dir=...)``.)

All masses are kg over the evaluation window. Undefined values (a ratio with a
zero denominator, a confidence interval of one replication) are ``None`` in
the summaries, never NaN.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import stdtrit  # Student t quantile (scipy.stats is slow to import)

__all__ = [
    "PortInfo",
    "Recorder",
    "port_metrics",
    "reduce_values",
    "replication_metrics",
]

SERIES_KEYS = ("shipped_kg", "seized_kg", "delivered_kg", "inspection_rate")
_KEPT_FOR_BANDS = ("shipped_kg", "seized_kg", "inspection_rate")  # delivered is shipped - seized, recomputed
QUANTILES = (0.1, 0.5, 0.9)
BE_NL = ("BE", "NL")


@dataclass(frozen=True)
class PortInfo:
    """What the metrics need to know about the ports (index order of the engines)."""

    ids: tuple[str, ...]
    kind: np.ndarray
    country: np.ndarray
    enabled: np.ndarray
    agencies: tuple[str, ...] = ()


def _columns(key: str, n_ports: int) -> int:
    """Columns of a weekly series: one per alternative (ports, elsewhere), or per port for the inspection rate."""
    return n_ports + (key != "inspection_rate")


def _with_delivered(rec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A week's record with ``delivered_kg = shipped_kg - seized_kg`` (one subtraction, wherever it is needed)."""
    return {**rec, "delivered_kg": rec["shipped_kg"] - rec["seized_kg"]}


class _SpilledWeeks:
    """A weekly series written to a file as it comes, one week after the other, read back a week at a time.

    The file is anonymous (``tempfile.TemporaryFile`` in ``directory``): it has no name
    to leave behind, and the system frees it when it is closed (:meth:`discard`) or the
    process ends, however it ends. Each week's array has the same shape and dtype;
    ``weeks[w]`` reads week ``w`` back, the same bits, so only one week is in memory at a time.
    """

    def __init__(self, directory: str | Path) -> None:
        # unbuffered: each week goes to the system as it comes (no copy held in a buffer)
        self.file = tempfile.TemporaryFile(dir=directory, buffering=0)  # noqa: SIM115 (closed by discard())
        self.shape: tuple[int, ...] | None = None
        self.dtype: np.dtype | None = None
        self.n_weeks = 0

    def append(self, week: np.ndarray) -> None:
        week = np.ascontiguousarray(week)
        if self.shape is None:
            self.shape, self.dtype = week.shape, week.dtype
        elif (week.shape, week.dtype) != (self.shape, self.dtype):
            raise ValueError(f"a week of {week.shape} {week.dtype} among weeks of {self.shape} {self.dtype}")
        self.file.write(week.data if week.ndim else week.tobytes())
        self.n_weeks += 1

    def __len__(self) -> int:
        return self.n_weeks

    def __getitem__(self, w: int) -> np.ndarray:
        if not 0 <= w < self.n_weeks:
            raise IndexError(f"week {w} of {self.n_weeks} spilled weeks")
        size = math.prod(self.shape) * self.dtype.itemsize
        data = os.pread(self.file.fileno(), size, size * w)
        return np.frombuffer(data, dtype=self.dtype).reshape(self.shape).copy()

    def discard(self) -> None:
        """Close the file, which frees it (the weeks can no longer be read)."""
        self.file.close()
        self.n_weeks = 0


class _JoinedWeeks:
    """The weekly series of several groups of replications, joined (along replications) when a week is read.

    A part is a list of weeks in memory, a :class:`_SpilledWeeks` or another ``_JoinedWeeks``
    (recorders merged one after another).
    """

    def __init__(self, parts: list) -> None:
        self.parts = parts

    def __len__(self) -> int:
        return len(self.parts[0])

    def __getitem__(self, w: int) -> np.ndarray:
        return np.concatenate([part[w] for part in self.parts])

    def discard(self) -> None:
        for part in self.parts:
            _discard(part)


def _discard(weeks) -> None:
    """Free a weekly series' spill files (a list in memory has none)."""
    if isinstance(weeks, _SpilledWeeks | _JoinedWeeks):
        weeks.discard()


class Recorder:
    """Accumulates a run's weekly records: window totals per replication, weekly quantile bands.

    Args:
        replications: number of replications fed together (first axis of every record).
        weeks: horizon; eval_from: first week of the evaluation window.
        keep_series: also keep every replication's weekly series (memory R x weeks x ports).
        bands: compute the weekly mean and quantile bands (sweeps, which need only totals, skip them).
        mergeable: keep the series the bands are computed from (delivered kg is shipped less
            seized, recomputed the same way) instead of computing the bands week by
            week, so that recorders of several groups of replications can be merged
            (:meth:`merge`) and the bands computed once over all of them
            (:meth:`finish_bands`): exact, the numbers of one recorder fed every
            replication. Memory: R x weeks x (3 P + 2) floats (shipped and seized kg per
            alternative, inspection rate per port; about 0.1 MB per replication of
            ``baseline.yaml``).
        spill_dir: with ``mergeable`` (and bands, without ``keep_series``): write those
            series, week by week, to anonymous temporary files in this directory (one per
            series, nameless, freed when closed or when the process ends) instead of
            keeping them in memory; :meth:`finish_bands` reads them back a week at a time
            and closes them (so does :meth:`close`), so memory does not grow with the
            replications. (On a RAM-backed file system, ``tmpfs``, the files are in memory
            all the same, outside the process.)

    """

    def __init__(
        self,
        replications: int,
        weeks: int,
        eval_from: int,
        n_ports: int,
        keep_series: bool = False,
        bands: bool = True,
        mergeable: bool = False,
        spill_dir: str | Path | None = None,
    ):
        self.replications = replications
        self.weeks = weeks
        self.eval_from = eval_from
        self.totals: dict[str, np.ndarray] = {}
        self.n_ports = n_ports
        self.bands = {k: np.full((weeks, 1 + len(QUANTILES), _columns(k, n_ports)), np.nan) for k in SERIES_KEYS}
        self.keep_series = keep_series
        self.with_bands = bands
        self.mergeable = mergeable
        # the keys whose weekly series are kept: every key, or the bands' own when they are deferred
        defers = Recorder.defers_bands(keep_series, bands, mergeable)
        self.series_keys = None if keep_series else (_KEPT_FOR_BANDS if defers else ())
        # each key's weeks: a list in memory, or (the bands' own series) spilled to a file, or joined by a merge
        self.series: dict[str, list[np.ndarray] | _SpilledWeeks | _JoinedWeeks] = {}
        if spill_dir is not None and defers:
            self.series = {k: _SpilledWeeks(spill_dir) for k in _KEPT_FOR_BANDS}
        self.weeks_seen = 0
        self.consumed = False  # merged into another recorder (Recorder.concatenate)
        self.merged = False  # made by Recorder.concatenate: it takes no more weeks

    def add(self, week: int, rec: dict[str, np.ndarray]) -> None:
        self._check_usable()
        if self.merged:
            raise ValueError("a merged recorder (Recorder.concatenate) takes no more weeks")
        rec = _with_delivered(rec)
        if week >= self.eval_from:
            for k, v in rec.items():
                self.totals[k] = np.array(v, dtype=float) if k not in self.totals else self.totals[k] + v
        if self.with_bands and not self.mergeable:
            self._add_bands(week, rec)
        for k, v in rec.items():
            if self.series_keys is None or k in self.series_keys:
                self.series.setdefault(k, []).append(v.copy())
        self.weeks_seen = max(self.weeks_seen, week + 1)

    @staticmethod
    def defers_bands(keep_series: bool, bands: bool, mergeable: bool) -> bool:
        """Whether a recorder so made keeps only the bands' own series (the ones ``spill_dir`` writes to files)."""
        return mergeable and bands and not keep_series

    @staticmethod
    def spill_bytes(weeks: int, n_ports: int) -> int:
        """Bytes of spill files per replication (``spill_dir``): the bands' own series over ``weeks``."""
        return weeks * sum(_columns(k, n_ports) for k in _KEPT_FOR_BANDS) * 8

    @property
    def eval_weeks(self) -> int:
        return max(self.weeks - self.eval_from, 0)

    def merge(self, other: Recorder) -> Recorder:
        """Concatenate another recorder's replications (:meth:`concatenate` of the two; both are consumed)."""
        return Recorder.concatenate([self, other])

    @staticmethod
    def concatenate(parts: list[Recorder]) -> Recorder:
        """The recorders' replications in order, as one recorder; the parts are consumed.

        The parts' weekly series are moved into the result (never held twice): kept
        series week by week, the bands' own series joined as they are, in memory or in
        their spill files, to be read a week at a time by :meth:`finish_bands`. The parts
        are left empty and refuse further use. They must be
        distinct recorders of the same run (horizon, evaluation window, ports, weeks
        fed, series and bands settings); recorders with bands must be ``mergeable``,
        and so is the result: its bands are computed by :meth:`finish_bands`
        (``BatchResult.from_recorder`` calls it).
        """
        first = parts[0]
        for r in parts:
            r._check_usable()
        if len({id(r) for r in parts}) != len(parts):
            raise ValueError("a recorder appears twice among those merged")
        setting = ("weeks", "eval_from", "n_ports", "weeks_seen", "keep_series", "with_bands", "mergeable")
        for name in setting:
            values = {getattr(r, name) for r in parts}
            if len(values) > 1:
                raise ValueError(f"recorders of different runs cannot be merged: {name} is {sorted(values)}")
        if first.with_bands and not first.mergeable:
            raise ValueError("recorders with bands merge only when mergeable (their bands need every replication)")
        merged = Recorder(
            sum(r.replications for r in parts),
            first.weeks,
            first.eval_from,
            first.n_ports,
            first.keep_series,
            first.with_bands,
            mergeable=first.mergeable,
        )
        for k in first.totals:
            merged.totals[k] = np.concatenate([r.totals[k] for r in parts])
        for k in list(first.series):
            weeks = [r.series.pop(k) for r in parts]
            if first.keep_series:  # moved week by week: each week's parts are released once joined
                merged.series[k] = [np.concatenate([w.pop(0) for w in weeks]) for _ in range(len(weeks[0]))]
            else:  # only the bands read them, a week at a time (from memory or from the spill files)
                merged.series[k] = _JoinedWeeks(weeks)
        merged.weeks_seen, merged.merged = first.weeks_seen, True
        for r in parts:
            r.totals, r.series, r.consumed = {}, {}, True
        return merged

    def finish_bands(self) -> None:
        """A mergeable recorder's bands, from the series of every replication it holds (then those series go).

        The same numbers as a recorder fed every replication week by week: the same
        arrays reach the same reductions. Only the series asked for (``keep_series``)
        stay. Does nothing for a recorder whose bands are done (or that has none).
        """
        self._check_usable()
        if not (self.mergeable and self.with_bands):
            return
        try:
            for week in range(self.weeks_seen):
                self._add_bands(week, _with_delivered({k: self.series[k][week] for k in _KEPT_FOR_BANDS}))
        finally:
            if not self.keep_series:
                self.close()  # the spill files go as soon as the bands are done
        self.mergeable = False

    def close(self) -> None:
        """Free the spill files of the bands' series, and drop those series (their bands can no longer be computed).

        Kept series (``keep_series``) are left alone. :meth:`finish_bands` calls it; a run that
        stops before its bands are computed should too (``runner.run_batch`` does).
        """
        if self.keep_series:
            return
        for weeks in self.series.values():
            _discard(weeks)
        self.series = {}

    def _check_usable(self) -> None:
        if self.consumed:
            raise ValueError("this recorder was merged into another (Recorder.concatenate): use the merged one")

    def rows(self, lo: int, hi: int) -> Recorder:
        """The totals of replications ``lo:hi`` only (one sweep point of a batch of points; no bands)."""
        self._check_usable()
        part = Recorder(hi - lo, self.weeks, self.eval_from, self.n_ports, self.keep_series, bands=False)
        part.totals = {k: v[lo:hi] for k, v in self.totals.items()}
        if self.keep_series:
            part.series = {k: [w[lo:hi] for w in v] for k, v in self.series.items()}
        part.weeks_seen = self.weeks_seen
        return part

    def _add_bands(self, week: int, rec: dict[str, np.ndarray]) -> None:
        """Mean and quantiles over replications of one week (``rec`` includes ``delivered_kg``).

        The quantiles of every series come from one ``np.quantile`` call over their columns
        side by side: each column's quantiles are its own order statistics, so the numbers
        are those of one call per series (tested), at a quarter of the calls' overhead.
        """
        for k in SERIES_KEYS:
            self.bands[k][week, 0] = rec[k].mean(axis=0)
        side_by_side = np.concatenate([rec[k] for k in SERIES_KEYS], axis=1)
        quantiles = np.quantile(side_by_side, QUANTILES, axis=0, overwrite_input=True)  # a scratch array
        lo = 0
        for k in SERIES_KEYS:
            hi = lo + self.bands[k].shape[-1]
            self.bands[k][week, 1:] = quantiles[:, lo:hi]
            lo = hi


# --- per-replication metrics ------------------------------------------------------------------------


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def replication_metrics(totals: dict[str, np.ndarray], ports: PortInfo, eval_weeks: int = 1) -> dict[str, np.ndarray]:
    """Scenario-level metrics per replication (each an array of length R; NaN where undefined)."""
    ship = totals["shipped_kg"][:, :-1] * ports.enabled
    seized = totals["seized_kg"][:, :-1] * ports.enabled
    shipped_kg = ship.sum(axis=1)
    seized_kg = seized.sum(axis=1)
    shares = _ratio(ship, shipped_kg[:, None])
    foreign = ~np.isin(ports.country, BE_NL)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(shares > 0, np.log(np.where(shares > 0, shares, 1.0)), 0.0)
    entropy = np.where(shipped_kg > 0, -(shares * logs).sum(axis=1), np.nan)
    hhi = np.where(shipped_kg > 0, (shares**2).sum(axis=1), np.nan)
    loads = totals["loads"][:, :-1].sum(axis=1)
    seizures = totals["seized_loads"][:, :-1].sum(axis=1)
    return {
        "shipped_kg": shipped_kg,
        "seized_kg": seized_kg,
        "delivered_kg": shipped_kg - seized_kg,
        "seizure_rate": _ratio(seized_kg, shipped_kg),
        "elsewhere_kg": totals["shipped_kg"][:, -1],
        "elsewhere_seized_kg": totals["seized_kg"][:, -1],
        "held_kg": totals["held_kg"],
        "capacity_kg": totals["capacity_kg"],
        "hub_share": _ratio(ship[:, ports.kind == "hub"].sum(axis=1), shipped_kg),
        "regional_share": _ratio(ship[:, ports.kind == "regional"].sum(axis=1), shipped_kg),
        "inland_share": _ratio(ship[:, ports.kind == "inland"].sum(axis=1), shipped_kg),
        "foreign_share": _ratio(ship[:, foreign].sum(axis=1), shipped_kg),
        "flow_entropy": entropy,
        "flow_hhi": hhi,
        "n_loads": loads,
        "n_seizures": seizures,
        "mean_load_kg": _ratio(shipped_kg, loads),
        "mean_seizure_kg": _ratio(seized_kg, seizures),
        **cooperation_metrics(totals, ports, eval_weeks),
    }


def cooperation_metrics(totals: dict[str, np.ndarray], ports: PortInfo, eval_weeks: int) -> dict[str, np.ndarray]:
    """Intelligence, investigations and succession per replication (DESIGN.md section 4)."""
    if "dismantled" not in totals:
        return {}
    dismantled = totals["dismantled"].sum(axis=-1)
    case_weeks = totals["case_weeks"].sum(axis=-1)
    out = {
        "networks_dismantled": dismantled,
        "dismantled_by_joint_teams": totals["dismantled_joint"],
        "cases_opened": totals["cases_opened"].sum(axis=-1),
        "case_weeks": case_weeks,
        "unit_weeks": totals["unit_weeks"].sum(axis=-1),
        "case_weeks_per_dismantled": _ratio(case_weeks, dismantled),
        "duplicated_case_weeks": totals["duplicated_case_weeks"],
        "compromised_cases": totals["compromised_cases"].sum(axis=-1),
        "mean_weeks_to_dismantle": _ratio(totals["weeks_to_dismantle"], dismantled),
        "successors": totals["successors"],
        "entrants": totals["entrants"],
        "lost_kg": totals["lost_kg"],
        "cross_border_seized_kg": totals["cross_border_seized_kg"].sum(axis=-1),
    }
    for k, code in enumerate(ports.agencies):
        out[f"intel_mean_{code}"] = totals["intel_mean"][:, k] / max(eval_weeks, 1)
        out[f"cross_border_seized_kg_{code}"] = totals["cross_border_seized_kg"][:, k]
        out[f"networks_dismantled_{code}"] = totals["dismantled"][:, k]
    return out


def port_metrics(totals: dict[str, np.ndarray], ports: PortInfo, eval_weeks: int) -> dict[str, np.ndarray]:
    """Per-port metrics per replication: arrays (R, P)."""
    ship = totals["shipped_kg"][:, :-1]
    seized = totals["seized_kg"][:, :-1]
    n_seized = totals["seized_loads"][:, :-1]
    total = (ship * ports.enabled).sum(axis=1, keepdims=True)
    return {
        "shipped_kg": ship,
        "seized_kg": seized,
        "delivered_kg": ship - seized,
        "share": _ratio(ship, np.broadcast_to(total, ship.shape)),
        "n_seizures": n_seized,
        "mean_seizure_kg": _ratio(seized, n_seized),
        "inspection_rate": totals["inspection_rate"] / max(eval_weeks, 1),
    }


def reduce_values(values: np.ndarray) -> dict[str, float | list[float | None] | None]:
    """Mean, standard deviation and 95% t-interval over replications; ``None`` where undefined."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return {"mean": None, "std": None, "ci95": [None, None], "n": 0}
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "std": None, "ci95": [None, None], "n": n}
    std = float(x.std(ddof=1))
    half = float(stdtrit(n - 1, 0.975) * std / math.sqrt(n))
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half], "n": n}
