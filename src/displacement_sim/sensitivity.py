"""Global sensitivity analysis of a sweep, and the sweep's figures.

Sampling and analysis go through SALib (Herman & Usher 2017, JOSS 2(9) 97):

- **Sobol'** (Saltelli 2002; Saltelli et al. 2010): ``SALib.sample.sobol`` draws a
  scrambled Sobol' sequence with Saltelli's cross-sampling, ``N (2D + 2)``
  points with second-order indices, ``N (D + 2)`` without; ``SALib.analyze.sobol``
  gives first-order ``S1`` and total ``ST`` indices (and ``S2``) with bootstrap
  confidence intervals (``*_conf``: half-width of the ``conf_level`` interval).
- **Morris** elementary effects (Morris 1991; Campolongo et al. 2007):
  ``n (D + 1)`` points on a ``levels``-level grid; ``mu_star`` (mean absolute
  effect, with its bootstrap CI) ranks influence, ``sigma`` flags interactions
  or non-linearity.

Functions take a SALib *problem* (``{"num_vars", "names", "bounds"}``) and a
plain array of outputs, so any model can be plugged in: the tests check the
pipeline on the Ishigami function, whose indices are known analytically.

The figures are pure functions (data in, :class:`matplotlib.figure.Figure` out):
an outcome against one parameter with a 95% CI band, a heat map over two grid
parameters, and index bars with their confidence intervals.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "analyze_outcomes",
    "fig_heatmap",
    "fig_indices",
    "fig_outcome_by_parameter",
    "fig_scatter",
    "morris_indices",
    "morris_sample",
    "problem",
    "save_figure",
    "sobol_indices",
    "sobol_sample",
    "sweep_figures",
]

CONF_LEVEL = 0.95
NUM_RESAMPLES = 200


def problem(names: Sequence[str], bounds: Sequence[Sequence[float]]) -> dict[str, Any]:
    """A SALib problem dict for continuous parameters ``names`` with ``bounds`` [low, high]."""
    return {"num_vars": len(names), "names": list(names), "bounds": [[float(lo), float(hi)] for lo, hi in bounds]}


def sobol_sample(prob: dict[str, Any], n: int, *, second_order: bool = True, seed: int = 0) -> np.ndarray:
    """Saltelli's Sobol' design: ``n (2D + 2)`` rows (``n (D + 2)`` without second order); ``n`` a power of 2."""
    from SALib.sample import sobol

    return sobol.sample(prob, int(n), calc_second_order=second_order, scramble=True, seed=int(seed))


def morris_sample(prob: dict[str, Any], n: int, *, levels: int = 4, seed: int = 0) -> np.ndarray:
    """Morris trajectories: ``n (D + 1)`` rows on a ``levels``-level grid."""
    from SALib.sample import morris

    return morris.sample(prob, int(n), num_levels=int(levels), seed=int(seed))


def _nan_to_none(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def sobol_indices(
    prob: dict[str, Any],
    y: np.ndarray,
    *,
    second_order: bool = True,
    seed: int = 0,
    conf_level: float = CONF_LEVEL,
    num_resamples: int = NUM_RESAMPLES,
) -> dict[str, Any]:
    """First-order, total (and second-order) Sobol' indices of outputs ``y`` from :func:`sobol_sample`.

    Returns ``{name: {"S1", "S1_conf", "ST", "ST_conf"}}`` plus, with second
    order, ``"S2": {name_i: {name_j: {"S2", "S2_conf"}}}`` for i < j. ``*_conf``
    is the half-width of the bootstrap ``conf_level`` interval.
    """
    from SALib.analyze import sobol

    res = sobol.analyze(
        prob,
        np.asarray(y, dtype=float),
        calc_second_order=second_order,
        num_resamples=num_resamples,
        conf_level=conf_level,
        seed=int(seed),
    )
    names = prob["names"]
    out: dict[str, Any] = {
        "indices": {
            name: {k: _nan_to_none(res[k][i]) for k in ("S1", "S1_conf", "ST", "ST_conf")}
            for i, name in enumerate(names)
        }
    }
    if second_order:
        out["S2"] = {
            a: {
                b: {"S2": _nan_to_none(res["S2"][i, j]), "S2_conf": _nan_to_none(res["S2_conf"][i, j])}
                for j, b in enumerate(names)
                if j > i
            }
            for i, a in enumerate(names[:-1])
        }
    return out


def morris_indices(
    prob: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    *,
    levels: int = 4,
    seed: int = 0,
    conf_level: float = CONF_LEVEL,
    num_resamples: int = NUM_RESAMPLES,
) -> dict[str, Any]:
    """Morris ``mu``, ``mu_star`` (with ``mu_star_conf``) and ``sigma`` of outputs ``y`` at design ``x``."""
    from SALib.analyze import morris

    res = morris.analyze(
        prob,
        np.asarray(x, dtype=float),
        np.asarray(y, dtype=float),
        num_resamples=num_resamples,
        conf_level=conf_level,
        num_levels=int(levels),
        seed=int(seed),
    )
    return {
        "indices": {
            name: {k: _nan_to_none(res[k][i]) for k in ("mu", "mu_star", "sigma", "mu_star_conf")}
            for i, name in enumerate(prob["names"])
        }
    }


def analyze_outcomes(
    design: str,
    prob: dict[str, Any],
    x: np.ndarray,
    outcomes: dict[str, np.ndarray],
    *,
    second_order: bool = True,
    levels: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """The ``sensitivity.json`` content: indices per outcome for a ``sobol`` or ``morris`` design.

    ``outcomes`` maps a name to its value at each design point (the mean over
    replications). An outcome undefined at some point (NaN) gets no indices and
    says why, rather than indices computed from a partial sample.
    """
    result: dict[str, Any] = {
        "design": design,
        "method": "Sobol' (Saltelli 2010 estimators, SALib)"
        if design == "sobol"
        else "Morris elementary effects (Campolongo 2007, SALib)",
        "parameters": list(prob["names"]),
        "bounds": prob["bounds"],
        "conf_level": CONF_LEVEL,
        "num_resamples": NUM_RESAMPLES,
        "outcome_values": "mean over replications at each design point",
        "outcomes": {},
    }
    if design == "sobol":
        result["second_order"] = second_order
    else:
        result["levels"] = levels
    for name, y in outcomes.items():
        y = np.asarray(y, dtype=float)
        bad = int(np.count_nonzero(~np.isfinite(y)))
        if bad:
            result["outcomes"][name] = {"error": f"undefined at {bad} of {y.size} points; no indices computed"}
            continue
        if float(np.var(y)) == 0.0:
            result["outcomes"][name] = {"error": "constant over the design; indices undefined"}
            continue
        if design == "sobol":
            result["outcomes"][name] = sobol_indices(prob, y, second_order=second_order, seed=seed)
        else:
            result["outcomes"][name] = morris_indices(prob, x, y, levels=levels, seed=seed)
    return result


# --- figures ---------------------------------------------------------------------------------------


def _figure(width: float = 6.4, height: float = 4.2):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Write a figure as PNG atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _axis_values(series: pd.Series) -> tuple[np.ndarray, list[str] | None]:
    """Numeric x positions and, for a categorical parameter, the tick labels."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=float), None
    labels = list(dict.fromkeys(series.astype(str)))
    pos = {v: i for i, v in enumerate(labels)}
    return np.array([pos[v] for v in series.astype(str)], dtype=float), labels


def fig_outcome_by_parameter(table: pd.DataFrame, param: str, outcome: str, group: str | None = None):
    """Mean ``outcome`` against ``param`` with its 95% CI band; one line per level of ``group``.

    Other parameters of a grid are averaged over (the band is then the mean of
    the points' CI bounds, a summary, not a joint interval).
    """
    fig = _figure()
    ax = fig.subplots()
    cols = [f"{outcome}_mean", f"{outcome}_ci95_lo", f"{outcome}_ci95_hi"]
    groups = [(None, table)] if group is None else list(table.groupby(group, sort=True))
    labels = None
    for level, sub in groups:
        agg = sub.groupby(param, sort=True)[cols].mean()
        x, labels = _axis_values(pd.Series(agg.index))
        label = None if group is None else f"{group} = {level}"
        (line,) = ax.plot(x, agg[cols[0]].to_numpy(), marker="o", label=label or "mean")
        lo, hi = agg[cols[1]].to_numpy(dtype=float), agg[cols[2]].to_numpy(dtype=float)
        if np.isfinite(lo).any():
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.2, label=None if group else "95% CI")
    if labels is not None:
        ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_xlabel(param)
    ax.set_ylabel(f"{outcome} (mean over replications)")
    ax.set_title(f"{outcome} by {param} (band: 95% CI over replications)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def fig_heatmap(table: pd.DataFrame, param_x: str, param_y: str, outcome: str):
    """Mean ``outcome`` over the grid of two parameters (others averaged over), values printed in the cells."""
    fig = _figure(6.4, 4.8)
    ax = fig.subplots()
    grid = table.groupby([param_y, param_x], sort=True)[f"{outcome}_mean"].mean().unstack(param_x)
    image = ax.imshow(grid.to_numpy(dtype=float), origin="lower", aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), [str(v) for v in grid.columns], rotation=20)
    ax.set_yticks(range(grid.shape[0]), [str(v) for v in grid.index])
    ax.set_xlabel(param_x)
    ax.set_ylabel(param_y)
    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    mid = float(np.median(finite)) if finite.size else 0.0
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=7, color="white" if v < mid else "black")
    fig.colorbar(image, ax=ax, label=f"{outcome} (mean)")
    ax.set_title(f"{outcome} over {param_x} x {param_y}", fontsize=10)
    return fig


def fig_scatter(table: pd.DataFrame, params: Sequence[str], outcome: str, bins: int = 8):
    """Sampled designs: ``outcome`` at each point against each parameter, with a binned mean and its 95% CI band."""
    n = len(params)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = _figure(3.2 * cols, 2.8 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    y = table[f"{outcome}_mean"].to_numpy(dtype=float)
    for ax, param in zip(axes, params, strict=False):
        x, labels = _axis_values(table[param])
        ax.scatter(x, y, s=6, alpha=0.35, color="tab:blue", label="point mean")
        edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1))) if labels is None else None
        if edges is not None and len(edges) > 2:
            idx = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, len(edges) - 2)
            centres, means, half = [], [], []
            for b in range(len(edges) - 1):
                sel = y[(idx == b) & np.isfinite(y)]
                if sel.size >= 2:
                    centres.append(0.5 * (edges[b] + edges[b + 1]))
                    means.append(sel.mean())
                    half.append(1.96 * sel.std(ddof=1) / math.sqrt(sel.size))
            if centres:
                m, h = np.array(means), np.array(half)
                ax.plot(centres, m, color="tab:red", label="bin mean")
                ax.fill_between(centres, m - h, m + h, color="tab:red", alpha=0.2, label="95% CI of bin mean")
        if labels is not None:
            ax.set_xticks(range(len(labels)), labels, rotation=20, fontsize=7)
        ax.set_xlabel(param, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    axes[0].set_ylabel(outcome, fontsize=8)
    axes[0].legend(fontsize=6)
    fig.suptitle(f"{outcome} across the design", fontsize=10)
    return fig


def fig_indices(indices: dict[str, Any], outcome: str, design: str):
    """Sobol' S1 and ST (or Morris mu* and sigma) per parameter as bars, with confidence intervals."""
    fig = _figure(max(6.4, 0.7 * len(indices) + 2), 4.2)
    ax = fig.subplots()
    names = list(indices)
    x = np.arange(len(names))

    def col(key: str) -> np.ndarray:
        return np.array([np.nan if indices[n][key] is None else indices[n][key] for n in names], dtype=float)

    if design == "sobol":
        bars = (("S1", "S1_conf", "first order S1"), ("ST", "ST_conf", "total ST"))
        ylabel = "Sobol' index (bars: 95% bootstrap CI)"
    else:
        bars = (("mu_star", "mu_star_conf", "mu* (mean |elementary effect|)"), ("sigma", None, "sigma"))
        ylabel = "elementary effect (bars: 95% bootstrap CI of mu*)"
    width = 0.38
    for k, (key, conf, label) in enumerate(bars):
        err = col(conf) if conf else None
        ax.bar(x + (k - 0.5) * width, col(key), width, yerr=err, capsize=3, label=label)
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.axhline(0.0, color="black", lw=0.6)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(f"{outcome}: {'Sobol indices' if design == 'sobol' else 'Morris screening'}", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return fig


def sweep_figures(
    table: pd.DataFrame,
    design: str,
    names: Sequence[str],
    outcomes: Sequence[str],
    sensitivity: dict[str, Any] | None,
    folder: Path,
) -> list[Path]:
    """Write a sweep's PNG figures into ``folder``; returns their paths.

    Per outcome: for a grid, the outcome against the first parameter (one line
    per level of the second) and, with two or more parameters, a heat map over
    the first two; for sampled designs, a panel per parameter; and the index
    bars when the design has sensitivity indices.
    """
    names = list(names)
    paths = []
    for o in outcomes:
        safe = o.replace(".", "_")
        if design == "grid":
            group = names[1] if len(names) > 1 else None
            paths.append(save_figure(fig_outcome_by_parameter(table, names[0], o, group), folder / f"{safe}.png"))
            if len(names) >= 2:
                paths.append(save_figure(fig_heatmap(table, names[0], names[1], o), folder / f"{safe}-heatmap.png"))
        else:
            paths.append(save_figure(fig_scatter(table, names, o), folder / f"{safe}.png"))
        if sensitivity and "indices" in sensitivity["outcomes"].get(o, {}):
            fig = fig_indices(sensitivity["outcomes"][o]["indices"], o, design)
            paths.append(save_figure(fig, folder / f"{safe}-sensitivity.png"))
    return paths
