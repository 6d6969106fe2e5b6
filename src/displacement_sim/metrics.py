"""Summaries and displacement measures (DESIGN.md section 4).

The engines feed a :class:`Recorder` one week at a time with arrays whose
first axis is the replication. It keeps, per replication, the totals over the
evaluation window, and per week the mean and quantiles over replications, so
memory does not grow with the number of replications times weeks. (A batch too
large for one pass runs in groups whose recorders keep the bands' weekly series,
in a temporary file, until the bands are computed over every replication:
``Recorder(mergeable=True, spill_dir=...)``.)

All masses are kg over the evaluation window. Undefined values (a ratio with a
zero denominator, a confidence interval of one replication) are ``None`` in
the summaries, never NaN.
"""

from __future__ import annotations

import math
import uuid
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


def _with_delivered(rec: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A week's record with ``delivered_kg = shipped_kg - seized_kg`` (one subtraction, wherever it is needed)."""
    return {**rec, "delivered_kg": rec["shipped_kg"] - rec["seized_kg"]}


class _SpilledWeeks:
    """A weekly series written to a file as it comes, one week after the other, read back a week at a time.

    Each week's array has the same shape; ``weeks[w]`` reads week ``w`` from the file
    (the same float64 bits that were written), so only one week is in memory at a time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shape: tuple[int, ...] | None = None
        self.n_weeks = 0
        path.write_bytes(b"")

    def append(self, week: np.ndarray) -> None:
        week = np.ascontiguousarray(week, dtype=np.float64)
        if self.shape is None:
            self.shape = week.shape
        elif week.shape != self.shape:
            raise ValueError(f"a week of shape {week.shape} among weeks of shape {self.shape}")
        with open(self.path, "ab") as f:  # no file left open between weeks
            f.write(week.tobytes())
        self.n_weeks += 1

    def __len__(self) -> int:
        return self.n_weeks

    def __getitem__(self, w: int) -> np.ndarray:
        if not 0 <= w < self.n_weeks:
            raise IndexError(f"week {w} of {self.n_weeks} spilled weeks")
        n = math.prod(self.shape)
        return np.fromfile(self.path, dtype=np.float64, count=n, offset=8 * n * w).reshape(self.shape)

    def discard(self) -> None:
        """Remove the file (the weeks can no longer be read)."""
        self.path.unlink(missing_ok=True)
        self.n_weeks = 0


class _JoinedWeeks:
    """The weekly series of several groups of replications, joined (along replications) when a week is read."""

    def __init__(self, parts: list) -> None:
        self.parts = parts

    def __len__(self) -> int:
        return len(self.parts[0])

    def __getitem__(self, w: int) -> np.ndarray:
        return np.concatenate([part[w] for part in self.parts])

    def discard(self) -> None:
        for part in self.parts:
            if isinstance(part, _SpilledWeeks):
                part.discard()


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
            series to files in this directory, week by week, instead of keeping them in
            memory; :meth:`finish_bands` reads them back a week at a time, so memory does
            not grow with the replications (the caller removes the directory).

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
        self.bands = {
            k: np.full((weeks, 1 + len(QUANTILES), n_ports + (k != "inspection_rate")), np.nan) for k in SERIES_KEYS
        }
        self.keep_series = keep_series
        self.with_bands = bands
        self.mergeable = mergeable
        # the keys whose weekly series are kept: every key, or the bands' own when they are deferred
        self.series_keys = None if keep_series else (_KEPT_FOR_BANDS if mergeable and bands else ())
        self.series: dict[str, list[np.ndarray]] = {}
        if spill_dir is not None and self.series_keys == _KEPT_FOR_BANDS:  # the bands' own series: to files
            tag = uuid.uuid4().hex
            self.series = {k: _SpilledWeeks(Path(spill_dir) / f"{tag}-{k}.f8") for k in _KEPT_FOR_BANDS}
        self.weeks_seen = 0
        self.consumed = False  # merged into another recorder (Recorder.concatenate)

    def add(self, week: int, rec: dict[str, np.ndarray]) -> None:
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

    @property
    def eval_weeks(self) -> int:
        return max(self.weeks - self.eval_from, 0)

    def merge(self, other: Recorder) -> Recorder:
        """Concatenate another recorder's replications (:meth:`concatenate` of the two; both are consumed)."""
        return Recorder.concatenate([self, other])

    @staticmethod
    def concatenate(parts: list[Recorder]) -> Recorder:
        """The recorders' replications in order, as one recorder; the parts are consumed.

        The parts' weekly series are moved into the result week by week (never held
        twice), so the parts are left empty and refuse further use. They must be
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
        merged.weeks_seen = first.weeks_seen
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
        for week in range(self.weeks_seen):
            self._add_bands(week, _with_delivered({k: self.series[k][week] for k in _KEPT_FOR_BANDS}))
        if not self.keep_series:
            for weeks in self.series.values():
                if isinstance(weeks, _SpilledWeeks | _JoinedWeeks):
                    weeks.discard()  # the spill files go as soon as the bands are done
            self.series = {}
        self.mergeable = False

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
