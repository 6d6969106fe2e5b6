"""Experiments declared as data: parameter sweeps and sensitivity designs (DESIGN.md sections 5-7).

An experiment file (``experiments/*.yaml``) names a base scenario, the
parameters to vary (dotted paths with a range, levels or categories), the
design, the replications per point, the seed and the outcomes::

    name: info_exchange_delay
    base: ../scenarios/baseline.yaml       # relative to this file
    design: grid                           # grid | lhs | sobol | morris
    replications: 10
    parameters:
      - path: enforcement.info_exchange.delay_weeks
        levels: [0, 1, 2, 4, 8, 12]
      - path: behaviour.beta
        range: [0.1, 1.0]                  # lhs, sobol, morris
    outcomes: [seized_kg, hub_share]

It is validated like a scenario (pydantic, unknown keys refused) and every
parameter path is checked against the scenario schema at load time by building
the base scenario at each parameter's bounds.

A sweep point ``k`` is the base scenario with the point's values set by dotted
path, run with ``run_batch(config, R, seed, point=k)``: its random streams are
keyed by (root seed, k, replication), so its results do not depend on the
executor, the worker count or the chunking (DESIGN.md section 5). With
``random_numbers: common`` every point uses the streams of point 0 instead
(common random numbers: differences between points are due to the parameters
alone, not to sampling noise). Sobol' and Morris designs default to common
random numbers: with independent streams the noise of each point's mean acts
like one more input and inflates every total index (with 2 replications of a
small model, a parameter with no effect got ST > 1).

The work is sent in chunks of points (:func:`run_chunk`, one task each) to an
executor (:mod:`.executors`); each finished chunk is written atomically to
``chunks/``, so ``--resume`` runs only the missing chunks. See ``docs/experiments.md``.
"""

from __future__ import annotations

import argparse
import copy
import csv
import hashlib
import io
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .config import _check_port_id, apply_path, load_scenario, read_yaml, scenario_from_dict
from .errors import ConfigError, suggest
from .metrics import reduce_values
from .runner import run_batch, run_points, run_scenario
from .schema import Behaviour, CrossFieldError, NumbersAreNumbers, Scenario
from .validation import _convert, _loc_to_path

__all__ = [
    "DESIGNS",
    "Design",
    "Experiment",
    "Parameter",
    "Sweep",
    "add_sweep_parser",
    "load_experiment",
    "make_design",
    "parameter_path",
    "rows_to_csv",
    "run_chunk",
    "run_model",
]

DESIGNS = ("grid", "lhs", "sobol", "morris")
DEFAULT_OUTCOMES = (
    "seized_kg",
    "seizure_rate",
    "hub_share",
    "regional_share",
    "foreign_share",
    "elsewhere_kg",
    "held_kg",
    "flow_entropy",
)
STATS = ("mean", "std", "ci95_lo", "ci95_hi")
MAX_GRID_CHECK = 5000  # grids up to this size have every point validated at load time


# --- the experiment file ---------------------------------------------------------------------------


class _Strict(NumbersAreNumbers):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Link(_Strict):
    """One target of a linked parameter: the path gets ``offset + factor * value``."""

    factor: float = 1.0
    offset: float = 0.0


class Parameter(_Strict):
    """A parameter of the design: where it goes (``path`` or linked ``paths``) and what values it takes.

    Exactly one of ``range`` (continuous, or whole numbers with ``type: integer``),
    ``levels`` (numbers) or ``categories`` (any values: rules, lists of kinds, ...).
    """

    name: str | None = Field(None, description="column name; default: the path")
    path: str | None = Field(None, description="dotted scenario path, selectors allowed: ports[kind=hub].q")
    paths: dict[str, Link] | None = Field(
        None, description="linked paths: one sampled value sets each path to offset + factor * value"
    )
    range: tuple[float, float] | None = Field(None, description="[low, high] for lhs, sobol and morris")
    type: Literal["real", "integer"] = Field("real", description="integer: whole numbers in the range")
    levels: list[int | float] | None = Field(None, min_length=1, description="numeric values (grid, lhs)")
    categories: list[Any] | None = Field(None, min_length=1, description="values of any type (grid, lhs)")
    description: str = ""

    @property
    def label(self) -> str:
        return self.name or self.path or ""

    @property
    def continuous(self) -> bool:
        return self.range is not None and self.type == "real"

    def choices(self) -> list[Any]:
        """Discrete values (levels or categories), in file order."""
        return list(self.levels if self.levels is not None else self.categories or [])

    def probe_values(self) -> list[Any]:
        """Values checked against the schema at load time: the bounds, or every level and category."""
        if self.range is not None:
            lo, hi = self.range
            return [int(lo), int(hi)] if self.type == "integer" else [float(lo), float(hi)]
        return self.choices()

    def from_unit(self, u: np.ndarray) -> list[Any]:
        """Map uniforms in [0, 1) to values: linear for a range, equal-width cells for levels and categories."""
        u = np.asarray(u, dtype=float)
        if self.range is not None:
            lo, hi = self.range
            if self.type == "integer":
                k = np.minimum(np.floor(u * (hi - lo + 1)), hi - lo).astype(np.int64)
                return [int(lo) + int(v) for v in k]
            return [float(v) for v in lo + u * (hi - lo)]
        values = self.choices()
        idx = np.minimum(np.floor(u * len(values)), len(values) - 1).astype(np.int64)
        return [values[i] for i in idx]

    def overrides(self, value: Any) -> dict[str, Any]:
        """The scenario overrides that set this parameter to ``value``."""
        if self.paths is not None:
            return {p: link.offset + link.factor * value for p, link in self.paths.items()}
        return {str(self.path): value}


class Experiment(_Strict):
    """An experiment file: base scenario, parameters, design, replications, seed, outcomes."""

    name: str = Field(min_length=1)
    description: str = ""
    base: str = Field(description="base scenario file, relative to the experiment file")
    overrides: dict[str, Any] = Field(default_factory=dict, description="fixed changes to the base, every point")
    design: Literal["grid", "lhs", "sobol", "morris"]
    n: int | None = Field(
        None, ge=1, description="lhs: points; sobol: base sample N (a power of 2); morris: trajectories"
    )
    second_order: bool = Field(True, description="sobol: also second-order indices (N (2D + 2) points)")
    morris_levels: int = Field(4, ge=2, description="morris: grid levels (even)")
    replications: int = Field(10, ge=1, le=100_000)
    seed: int | None = Field(None, ge=0, description="root seed; default: the base scenario's seed")
    random_numbers: Literal["independent", "common"] | None = Field(
        None,
        description="independent: point k uses streams (seed, k, r); common: every point uses (seed, 0, r). "
        "Default: common for sobol and morris (indices of the parameters, not of the noise), else independent",
    )
    engine: Literal["vectorized", "mesa"] = "vectorized"
    outcomes: list[str] = Field(default_factory=lambda: list(DEFAULT_OUTCOMES), min_length=1)
    parameters: list[Parameter] = Field(min_length=1)

    @property
    def streams(self) -> str:
        """``common`` or ``independent``: the random-number scheme in force (resolving the default)."""
        if self.random_numbers is not None:
            return self.random_numbers
        return "common" if self.design in ("sobol", "morris") else "independent"

    @model_validator(mode="after")
    def _cross_checks(self) -> Experiment:
        for rule in (_rule_parameter_shape, _rule_unique_names, _rule_design):
            rule(self)
        return self


def _rule_parameter_shape(e: Experiment) -> None:
    for i, p in enumerate(e.parameters):
        where = f"parameters[{i}]"
        if (p.path is None) == (p.paths is None):
            raise CrossFieldError(where, "needs exactly one of path or paths", p.label or None, "path: a.b.c")
        if p.paths is not None and not p.paths:
            raise CrossFieldError(f"{where}.paths", "no paths given", {}, "one or more path: {factor, offset}")
        if p.paths is not None and not p.name:
            raise CrossFieldError(f"{where}.name", "a linked parameter needs a name", None, "a column name")
        kinds = [k for k in ("range", "levels", "categories") if getattr(p, k) is not None]
        if len(kinds) != 1:
            raise CrossFieldError(where, "needs exactly one of range, levels or categories", kinds, "one of them")
        if p.range is not None:
            lo, hi = p.range
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise CrossFieldError(f"{where}.range", "bounds must be finite", list(p.range), "[low, high]")
            if lo == hi:
                raise CrossFieldError(f"{where}.range", "empty range", list(p.range), "low < high")
            if lo > hi:
                raise CrossFieldError(f"{where}.range", "lower bound above upper bound", list(p.range), "low < high")
            if p.type == "integer" and not (float(lo).is_integer() and float(hi).is_integer()):
                raise CrossFieldError(f"{where}.range", "integer range needs whole bounds", list(p.range), "[0, 12]")
        elif p.type == "integer":
            raise CrossFieldError(f"{where}.type", "type applies to a range only", p.type, "real (or drop it)")
        if p.categories is not None and p.paths is not None:
            raise CrossFieldError(f"{where}.paths", "linked paths need numeric values", p.categories, "levels or range")
        values = p.choices()
        keys = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if len(set(keys)) != len(keys):
            dup = next(v for v, k in zip(values, keys, strict=True) if keys.count(k) > 1)
            kind = "levels" if p.levels is not None else "categories"
            raise CrossFieldError(f"{where}.{kind}", "duplicate value", dup, "distinct values")


def _rule_unique_names(e: Experiment) -> None:
    seen: dict[str, int] = {}
    for i, p in enumerate(e.parameters):
        if p.label in seen:
            raise CrossFieldError(f"parameters[{i}]", f"same name as parameters[{seen[p.label]}]", p.label, "unique")
        seen[p.label] = i


# A sweep's points are held in memory (the design) and written to points.csv: a million points is far beyond
# any sweep this machine can run (the 4,608-point Sobol sweep takes about 8 minutes on two cores), and bounds
# a design's memory to tens of MB per parameter.
MAX_POINTS = 1_000_000


def _design_points(e: Experiment) -> int:
    """The number of points ``e``'s design will have (a grid: every combination)."""
    d = len(e.parameters)
    if e.design == "grid":
        return math.prod(len(p.choices()) for p in e.parameters)
    per_n = {"lhs": 1, "sobol": 2 * d + 2 if e.second_order else d + 2, "morris": d + 1}[e.design]
    return int(e.n) * per_n


def _rule_design(e: Experiment) -> None:
    _rule_design_kind(e)
    points = _design_points(e)
    if points > MAX_POINTS:
        if e.design == "grid":
            raise CrossFieldError(
                "parameters",
                f"the grid would have {points:,} points, more than a sweep can hold",
                f"{points:,} combinations of levels",
                f"at most {MAX_POINTS:,} points",
            )
        n_max = MAX_POINTS // (points // e.n)
        if e.design == "sobol":
            n_max = 1 << (n_max.bit_length() - 1)  # a power of 2
        raise CrossFieldError(
            "n",
            f"the {e.design} design would have {points:,} points, more than a sweep can hold",
            e.n,
            f"at most {MAX_POINTS:,} points: n up to {n_max:,} here",
        )


def _rule_design_kind(e: Experiment) -> None:
    if e.design == "grid":
        if e.n is not None:
            raise CrossFieldError(
                "n", "a grid has no sample size: its points are all combinations of the levels", e.n, "leave n out"
            )
        for i, p in enumerate(e.parameters):
            if p.range is not None:
                raise CrossFieldError(
                    f"parameters[{i}].range", "a grid needs levels or categories", list(p.range), "levels: [...]"
                )
        return
    if e.n is None:
        raise CrossFieldError("n", f"design {e.design} needs a sample size n", None, _N_MEANING[e.design])
    if e.design == "sobol" and e.n & (e.n - 1):
        raise CrossFieldError("n", "Sobol' N must be a power of 2", e.n, "1, 2, 4, ..., 256, 512, ...")
    if e.design == "morris":
        if e.n < 2:
            raise CrossFieldError("n", "Morris needs at least 2 trajectories", e.n, ">= 2 (typically 10-50)")
        if e.morris_levels % 2:
            raise CrossFieldError("morris_levels", "Morris levels must be even", e.morris_levels, "4, 6, 8, ...")
    if e.design in ("sobol", "morris"):
        for i, p in enumerate(e.parameters):
            if not p.continuous:
                raise CrossFieldError(
                    f"parameters[{i}]",
                    f"{e.design} needs continuous parameters",
                    p.label,
                    "range: [low, high] with type real (use lhs or grid for integer or categorical parameters)",
                )


_N_MEANING = {
    "lhs": "number of points, e.g. 100",
    "sobol": "base sample N, a power of 2, e.g. 256",
    "morris": "number of trajectories, e.g. 20",
}


def _experiment_error(err: ValidationError, file: str | None) -> ConfigError:
    """A ValidationError of an experiment file as a ConfigError (unknown keys suggest the experiment's own keys)."""
    first = err.errors()[0]
    if first["type"] != "extra_forbidden":
        return _convert(err, file)
    loc = first["loc"]
    model: type[BaseModel] = Experiment
    if "paths" in loc[:-1]:
        model = Link
    elif loc and loc[0] == "parameters":
        model = Parameter
    key = str(loc[-1])
    valid = list(model.model_fields)
    hint = suggest(key, valid)
    return ConfigError(
        f"unknown key{'; ' + hint if hint else ''}",
        file=file,
        field=_loc_to_path(loc),
        given=key,
        allowed=", ".join(valid),
    )


# --- designs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """The sample points: ``points[k]`` is the tuple of parameter values of point ``k``.

    ``matrix`` is the numeric design SALib analyses (sobol and morris), ``None`` otherwise.
    """

    kind: str
    names: tuple[str, ...]
    points: dict[int, tuple[Any, ...]]
    n_points: int
    matrix: np.ndarray | None = None

    def subset(self, indices: Sequence[int]) -> Design:
        """Only the points ``indices`` (what one chunk task needs)."""
        return replace(self, points={int(k): self.points[int(k)] for k in indices}, matrix=None)

    def fingerprint(self) -> str:
        """Hash of every point's values (changes if a library draws a different design)."""
        h = hashlib.sha256()
        for k in range(self.n_points):
            h.update(repr((k, self.points[k])).encode())
        return h.hexdigest()


def make_design(
    kind: str,
    parameters: Sequence[Parameter],
    n: int | None = None,
    *,
    seed: int = 0,
    second_order: bool = True,
    morris_levels: int = 4,
) -> Design:
    """Draw the design: the model is not involved, so any function can be analysed on it.

    - ``grid``: every combination of the levels, the first parameter varying slowest;
    - ``lhs``: ``n`` points of a Latin hypercube (``scipy.stats.qmc.LatinHypercube``,
      McKay et al. 1979); levels and categories take equal-width cells of [0, 1),
      integer ranges equal-width cells per whole number;
    - ``sobol``: Saltelli's scheme, ``n (2D + 2)`` points (``n (D + 2)`` without second order);
    - ``morris``: ``n`` trajectories of ``D + 1`` points.
    """
    names = tuple(p.label for p in parameters)
    matrix = None
    if kind == "grid":
        rows = [tuple(r) for r in itertools.product(*(p.choices() for p in parameters))]
    elif kind == "lhs":
        from scipy.stats import qmc

        u = qmc.LatinHypercube(d=len(parameters), rng=np.random.default_rng(seed)).random(int(n))
        cols = [p.from_unit(u[:, j]) for j, p in enumerate(parameters)]
        rows = list(zip(*cols, strict=True))
    elif kind in ("sobol", "morris"):
        from . import sensitivity as sa

        prob = salib_problem(parameters)
        if kind == "sobol":
            matrix = sa.sobol_sample(prob, int(n), second_order=second_order, seed=seed)
        else:
            matrix = sa.morris_sample(prob, int(n), levels=morris_levels, seed=seed)
        rows = [tuple(float(v) for v in row) for row in matrix]
    else:
        raise ConfigError("unknown design", field="design", given=kind, allowed=", ".join(DESIGNS))
    return Design(kind, names, dict(enumerate(rows)), len(rows), matrix)


def salib_problem(parameters: Sequence[Parameter]) -> dict[str, Any]:
    """The SALib problem of continuous parameters."""
    from . import sensitivity as sa

    return sa.problem([p.label for p in parameters], [p.range for p in parameters])


# --- loading ---------------------------------------------------------------------------------------


def _configure(base: Mapping[str, Any], overrides: Mapping[str, Any], file: str | None = None) -> Scenario:
    """The base scenario (a resolved dict) with ``overrides`` set by dotted path, validated."""
    data = copy.deepcopy(dict(base))
    for path, value in overrides.items():
        try:
            _check_port_id(path, data.get("ports") or {}, path)
            apply_path(data, path, value)
        except ConfigError as err:
            err.field = err.field or path
            raise err.with_file(file or "overrides") from None
    return scenario_from_dict(data, file=file)


def _outcome_names(cfg: Scenario) -> tuple[list[str], list[str], list[str]]:
    """Scenario-level metric names, per-port metric names and port ids, from a two-week run."""
    res = run_batch(cfg, replications=1, weeks=min(cfg.weeks, 2))
    return list(res.metrics), list(res.port_values), list(res.ports.ids)


def _check_outcomes(outcomes: Sequence[str], cfg: Scenario, file: str) -> None:
    metrics, port_metrics, port_ids = _outcome_names(cfg)
    allowed = ", ".join(metrics) + f"; or ports.<id>.<metric> with metric one of {', '.join(port_metrics)}"
    for j, name in enumerate(outcomes):
        parts = name.split(".")
        if len(parts) == 3 and parts[0] == "ports":
            if parts[1] not in port_ids:
                hint = suggest(parts[1], port_ids)
                raise ConfigError(
                    f"unknown port in outcome{'; ' + hint if hint else ''}",
                    file=file,
                    field=f"outcomes[{j}]",
                    given=name,
                    allowed=", ".join(port_ids),
                )
            if parts[2] in port_metrics:
                continue
        elif name in metrics:
            continue
        hint = suggest(parts[-1], metrics + port_metrics)
        raise ConfigError(
            f"unknown outcome{'; ' + hint if hint else ''}",
            file=file,
            field=f"outcomes[{j}]",
            given=name,
            allowed=allowed,
        )


@dataclass(frozen=True)
class Sweep:
    """A loaded, validated experiment with its resolved base scenario and its design (picklable)."""

    experiment: Experiment
    file: str | None
    text: str
    base: dict[str, Any]  # resolved base scenario with the fixed overrides, as a dict
    design: Design
    seed: int
    experiment_hash: str

    @property
    def n_points(self) -> int:
        return self.design.n_points

    @property
    def columns(self) -> list[str]:
        """Columns of the points table, in order."""
        outs = [f"{o}_{s}" for o in self.experiment.outcomes for s in STATS]
        return ["point", *self.design.names, *outs]

    def config(self, k: int) -> Scenario:
        """The scenario of point ``k`` (a ConfigError names the point if the schema refuses the combination)."""
        overrides: dict[str, Any] = {}
        values = self.design.points[int(k)]
        for p, value in zip(self.experiment.parameters, values, strict=True):
            overrides.update(p.overrides(value))
        try:
            return _configure(self.base, overrides)
        except ConfigError as err:
            point = ", ".join(f"{n}={v!r}" for n, v in zip(self.design.names, values, strict=True))
            raise _nested(err, self.file or "experiment", f"point {k} ({point})") from None

    def for_points(self, indices: Sequence[int]) -> Sweep:
        """A copy carrying only the design points ``indices`` (small to send to a worker)."""
        return replace(self, design=self.design.subset(indices), text="")


def load_experiment(
    path: str | Path, *, n: int | None = None, replications: int | None = None, seed: int | None = None
) -> Sweep:
    """Load and validate an experiment file; ``n``, ``replications`` and ``seed`` override the file's.

    Every parameter is checked by building the base scenario with the parameter
    at each bound (or level or category); an unknown path or a value the
    schema refuses is a :class:`ConfigError` naming the parameter.
    """
    path = Path(path)
    fname = str(path)
    data = read_yaml(path)
    data.setdefault("name", path.stem)
    for key, value in (("n", n), ("replications", replications), ("seed", seed)):
        if value is not None:
            data[key] = value
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as err:
        raise _experiment_error(err, fname) from None
    base_path = path.parent / exp.base
    if not base_path.is_file():
        raise ConfigError(
            "base scenario not found", file=fname, field="base", given=exp.base, allowed="a path relative to this file"
        )
    plain = load_scenario(base_path)  # an invalid base scenario is reported against its own file
    base_plain = plain.model_dump(mode="python")
    try:
        base_cfg = _configure(base_plain, exp.overrides)
    except ConfigError as err:
        raise _nested(err, fname, "overrides") from None
    base = base_cfg.model_dump(mode="python")
    for i, p in enumerate(exp.parameters):
        for value in p.probe_values():
            try:
                _configure(base, p.overrides(value))
            except ConfigError as err:
                raise _nested(err, fname, f"parameters[{i}] ({p.label})", value) from None
    _check_outcomes(exp.outcomes, base_cfg, fname)
    root_seed = int(exp.seed if exp.seed is not None else base_cfg.seed)
    design = make_design(
        exp.design,
        exp.parameters,
        exp.n,
        seed=root_seed,
        second_order=exp.second_order,
        morris_levels=exp.morris_levels,
    )
    sweep = Sweep(exp, fname, path.read_text(encoding="utf-8"), base, design, root_seed, "")
    if exp.design == "grid" and design.n_points <= MAX_GRID_CHECK:
        for k in range(design.n_points):  # every combination, so a grid never fails half-way
            sweep.config(k)
    digest = hashlib.sha256(
        json.dumps(
            {"experiment": exp.model_dump(mode="json"), "base": base_cfg.model_dump(mode="json"), "seed": root_seed},
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()
    return replace(sweep, experiment_hash=digest)


def _nested(err: ConfigError, file: str, field: str, value: Any = None) -> ConfigError:
    """A scenario error met while checking an experiment, reported against the experiment file."""
    at = f"at value {value!r}: " if value is not None and "unknown" not in err.problem else ""
    inner = f"{err.field}: " if err.field else ""
    return ConfigError(
        f"{at}{inner}{err.problem}",
        file=file,
        field=field,
        given=err.given,
        allowed=err.allowed,
        has_given=err.has_given,
    )


# --- running points --------------------------------------------------------------------------------


def _outcome_values(result: Any, name: str) -> np.ndarray:
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "ports":
        return result.port_values[parts[2]][:, result.ports.ids.index(parts[1])]
    return result.metrics[name]


def run_point(sweep: Sweep, k: int) -> dict[str, Any]:
    """Run point ``k``: its parameters and, per outcome, mean, std and 95% CI over replications."""
    exp = sweep.experiment
    result = run_scenario(
        sweep.config(k), exp.engine, exp.replications, seed=sweep.seed, point=_stream_key(sweep, k), bands=False
    )
    return _point_row(sweep, k, result)


def _stream_key(sweep: Sweep, k: int) -> int:
    """The point index of point ``k``'s random streams (0 for every point with common random numbers)."""
    return int(k) if sweep.experiment.streams == "independent" else 0


def _point_row(sweep: Sweep, k: int, result: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"point": int(k)}
    row.update(zip(sweep.design.names, sweep.design.points[int(k)], strict=True))
    for name in sweep.experiment.outcomes:
        red = reduce_values(_outcome_values(result, name))
        lo, hi = red["ci95"]
        row.update(
            {f"{name}_mean": red["mean"], f"{name}_std": red["std"], f"{name}_ci95_lo": lo, f"{name}_ci95_hi": hi}
        )
    return row


def run_chunk(sweep: Sweep, point_indices: Sequence[int]) -> list[dict[str, Any]]:
    """Run a chunk of points: the unit of work sent to an executor.

    On the vectorized engine the chunk's points run as one batch (``run_points``: K points
    x R replications in one array pass, each point on its own streams); on the Mesa
    engine one after the other. Either way a point's row does not depend on the chunk.
    """
    exp = sweep.experiment
    if exp.engine == "mesa":
        return [run_point(sweep, k) for k in point_indices]
    configs = [sweep.config(k) for k in point_indices]
    keys = [_stream_key(sweep, k) for k in point_indices]
    results = run_points(configs, exp.replications, sweep.seed, keys)
    return [_point_row(sweep, k, r) for k, r in zip(point_indices, results, strict=True)]


def _cell(value: Any) -> str:
    """A CSV cell: floats in shortest round-trip form, undefined values empty."""
    if value is None:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return repr(float(value)) if math.isfinite(value) else ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def rows_to_csv(columns: Sequence[str], rows: Sequence[Mapping[str, Any]], header: bool = True) -> str:
    """CSV text of ``rows`` (same bytes whatever process produced them)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return buf.getvalue()


# --- run_model: the model as a plain function (EMA Workbench, SALib) ------------------------------------------

SHORT_NAMES: dict[str, str] = {
    **{f: f"behaviour.{f}" for f in Behaviour.model_fields},
    "risk_aversion": "networks.risk_aversion.median",
    "n_slots": "networks.n_slots",
    "hvt_share": "networks.hvt_share",
    "hub_q": "ports[kind=hub].q",
    "regional_q": "ports[kind=regional].q",
    "hub_inspection_rate": "ports[kind=hub].inspection_rate",
    "regional_inspection_rate": "ports[kind=regional].inspection_rate",
    "be_budget": "enforcement.BE.budget",
    "nl_budget": "enforcement.NL.budget",
    "elsewhere_detection": "elsewhere.detection",
    "elsewhere_cost": "elsewhere.cost",
    "hold_utility": "hold.utility",
}


def parameter_path(name: str) -> str:
    """The scenario path of a ``run_model`` keyword: a short name (``SHORT_NAMES``) or ``a__b__c`` -> ``a.b.c``."""
    return SHORT_NAMES.get(name, name.replace("__", "."))


_DEFAULT_SCENARIO = "scenarios/baseline.yaml"


def _resolve_scenario_path(scenario: str | Path | None) -> Path:
    path = Path(scenario if scenario is not None else _DEFAULT_SCENARIO)
    if path.is_file() or scenario is not None:
        return path
    checkout = Path(__file__).resolve().parents[2] / _DEFAULT_SCENARIO  # a source checkout
    if checkout.is_file():
        return checkout
    raise ConfigError(
        "no scenario given and scenarios/baseline.yaml not found here",
        field="run_model(scenario=...)",
        allowed="a scenario file or a loaded Scenario",
    )


@lru_cache(maxsize=16)
def _base_dict_cached(path: str, mtime_ns: int) -> dict[str, Any]:
    return load_scenario(path).model_dump(mode="python")


def run_model(
    *,
    rng: int | np.random.Generator | None = None,
    scenario: str | Path | Scenario | None = None,
    replications: int = 1,
    weeks: int | None = None,
    engine: str = "vectorized",
    **params: Any,
) -> dict[str, float]:
    """Run the model with parameters given as keywords; return each scenario-level outcome's mean.

    Args:
        rng: root seed (an int), a ``numpy.random.Generator`` to draw one from,
            or ``None`` for the scenario's seed. The same seed across calls gives
            common random numbers.
        scenario: base scenario file or loaded :class:`~.schema.Scenario`
            (default ``scenarios/baseline.yaml``).
        replications: replications averaged over (vectorized, in one pass).
        weeks: horizon (default: the scenario's).
        engine: ``vectorized`` or ``mesa``.
        **params: parameter values by identifier name: a short name of
            ``SHORT_NAMES`` (``beta``, ``hub_q``, ``risk_aversion``, ...) or a
            path with ``__`` for dots (``behaviour__beta``, ``enforcement__BE__budget``).

    Returns:
        ``{metric: mean over replications}`` for every scenario-level metric
        (DESIGN.md section 4); NaN where undefined.

    """
    if isinstance(scenario, Scenario):
        base = scenario.model_dump(mode="python")
    else:
        path = _resolve_scenario_path(scenario)
        if not path.is_file():
            raise ConfigError("scenario file not found", field="run_model(scenario=...)", given=str(path))
        base = _base_dict_cached(str(path.resolve()), path.stat().st_mtime_ns)
    overrides = {}
    for name, value in params.items():
        overrides[parameter_path(name)] = value.item() if isinstance(value, np.generic) else value
    try:
        cfg = _configure(base, overrides)
    except ConfigError as err:
        by_path = {parameter_path(n): n for n in params}
        name = next((by_path[p] for p in by_path if err.field and err.field.startswith(p.split("[")[0])), None)
        raise ConfigError(
            f"{err.field}: {err.problem}" if err.field else err.problem,
            field=f"run_model({name})" if name else "run_model",
            given=err.given,
            allowed=err.allowed,
            has_given=err.has_given,
        ) from None
    if isinstance(rng, np.random.Generator):
        seed = int(rng.integers(0, 2**63 - 1))
    else:
        seed = cfg.seed if rng is None else int(rng)
    result = run_scenario(cfg, engine, int(replications), seed=seed, weeks=weeks)
    out = {}
    for name, values in result.metrics.items():
        mean = reduce_values(values)["mean"]
        out[name] = float("nan") if mean is None else float(mean)
    return out


# --- command line --------------------------------------------------------------------------------------


def add_sweep_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``displacement-sim sweep`` (defined in :mod:`.executors`, with the sweep it runs)."""
    from .executors import add_sweep_parser as add

    add(sub)
