"""Figures for comparisons and runs: pure functions, data in, :class:`matplotlib.figure.Figure` out.

Every function takes plain data (the dictionaries of ``comparison.json`` and
``summary.json``) and returns a new Figure built without pyplot (no global
state, no ``show``); save it with ``fig.savefig``. Masses are shown in tonnes
per year: kg over the evaluation window x 52 / window weeks / 1000.

Conventions (STYLE.md): titles say what is shown, axes carry units, legends
name the bands (mean and 10-90% of replications for flows over time; mean and
paired 95% CI for changes); colours from the Okabe-Ito palette and the
ColorBrewer PuOr diverging map, both colour-blind safe. With one replication
there are no intervals: the figures draw means only and say so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")  # no display needed; figures are only saved

from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

__all__ = [
    "OKABE_ITO",
    "coast_outline",
    "comparison_figures",
    "flow_bands",
    "flow_groups",
    "plot_flows",
    "plot_port_changes",
    "plot_port_map",
    "plot_seizures",
    "plot_shares",
    "t_per_year",
]

# Okabe & Ito (2008), "Color universal design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#999999", "#F0E442")
SMOOTH_WEEKS = 13  # flows over time are shown as 13-week (quarterly) trailing means
TOP_PORTS = 4  # ports drawn individually in the flows figure; the rest are "other ports"
DIVERGING = "PuOr_r"  # ColorBrewer PuOr (colour-blind safe): purple = less flow, orange = more
GROUP_COLOURS = {"A": "#0072B2", "B": "#E69F00", "O": "#009E73", "outside": "#999999"}
GROUP_LABELS = {
    "A": "targeted ports",
    "B": "buffer ports",
    "O": "other modelled ports",
    "outside": "outside the ports (elsewhere, held, lost)",
}


def t_per_year(kg: float | None, weeks_eval: int) -> float | None:
    """Kg over an evaluation window of ``weeks_eval`` weeks -> tonnes per year."""
    return None if kg is None else kg * 52 / max(weeks_eval, 1) / 1000


@cache
def _coast_text() -> str:
    return resources.files("displacement_sim.data").joinpath("coast.json").read_text(encoding="utf-8")


def coast_outline() -> dict[str, Any]:
    """The rough coast and border outline shipped in ``data/coast.json`` (for orientation only)."""
    return json.loads(_coast_text())


def _new_figure(n_panels: int, *, ncols: int | None = None, panel_size=(6.0, 3.6), sharey=False):
    ncols = ncols or min(n_panels, 2)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).ravel()
    for ax in axes[n_panels:]:
        fig.delaxes(ax)
    return fig, list(axes[:n_panels])


# --- flows over time ---------------------------------------------------------------------------------


def plot_flows(
    flow_bands: Mapping[str, Any],
    titles: Mapping[str, str] | None = None,
    *,
    warmup_weeks: int | None = None,
    intervention_weeks: Mapping[str, int | None] | None = None,
) -> Figure:
    """Flow per port over time, one panel per scenario: mean line and 10-90% band over replications.

    Args:
        flow_bands: ``comparison.json["flow_bands"]``: ``groups``, ``unit``, ``smoothing_weeks``, ``band``
            and ``series[key][group] = {mean, p10, p90}`` (p10/p90 None: means only).
        titles: panel title per scenario key (default: the key).
        warmup_weeks: weeks of warm-up, shaded.
        intervention_weeks: scenario key -> first intervention week, drawn as a dashed line.

    """
    series = flow_bands["series"]
    keys = list(series)
    groups = list(flow_bands["groups"])
    fig, axes = _new_figure(max(len(keys), 1), sharey=True)
    has_band = False
    for ax, key in zip(axes, keys, strict=False):
        for g, name in enumerate(groups):
            data = series[key].get(name)
            if data is None:
                continue
            colour = OKABE_ITO[g % len(OKABE_ITO)]
            weeks = range(len(data["mean"]))
            ax.plot(weeks, data["mean"], color=colour, lw=1.4, label=name)
            if data.get("p10") is not None:
                has_band = True
                ax.fill_between(weeks, data["p10"], data["p90"], color=colour, alpha=0.13, lw=0)
        if warmup_weeks:
            ax.axvspan(0, warmup_weeks, color="#dddddd", alpha=0.6, lw=0)
        week = (intervention_weeks or {}).get(key)
        if week is not None:
            ax.axvline(week, color="black", ls="--", lw=1)
        ax.set_title((titles or {}).get(key, key), fontsize=10)
        ax.set_xlabel("week")
        ax.set_ylabel(f"flow shipped, {flow_bands.get('unit', 't/yr')}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    smooth = flow_bands.get("smoothing_weeks")
    band_txt = flow_bands.get("band") or "no band"
    handles = [Line2D([], [], color=OKABE_ITO[g % len(OKABE_ITO)], lw=1.6, label=n) for g, n in enumerate(groups)]
    if has_band:
        handles.append(Patch(color="#555555", alpha=0.25, label=f"lines: mean; bands: {band_txt}"))
    else:
        handles.append(Patch(color="white", label="lines: mean over replications"))
    if warmup_weeks:
        handles.append(Patch(color="#dddddd", label="warm-up (not evaluated)"))
    if intervention_weeks and any(w is not None for w in intervention_weeks.values()):
        handles.append(Line2D([], [], color="black", ls="--", lw=1, label="first intervention"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    what = f"{smooth}-week trailing mean" if smooth else "weekly"
    extra = "" if has_band else " (means only: one replication or no per-replication series, so no band)"
    fig.suptitle(f"Cocaine shipped through the top ports over time ({what}){extra}", fontsize=11)
    return fig


def flow_bands(shipped: np.ndarray, groups: Mapping[str, Sequence[int]], weeks_window: int = SMOOTH_WEEKS) -> dict:
    """Mean and 10-90% band over replications of each group's trailing-mean flow, t/yr.

    Args:
        shipped: (R, weeks, P+1) shipped kg per week, the last column 'elsewhere'.
        groups: group name -> column indices summed into it (see :func:`flow_groups`).
        weeks_window: length of the trailing mean (partial at the start).

    """
    kg = np.stack([shipped[:, :, idx].sum(axis=2) for idx in groups.values()], axis=2)  # (R, W, G)
    csum = np.cumsum(kg, axis=1)
    lag = np.zeros_like(csum)
    lag[:, weeks_window:] = csum[:, :-weeks_window]
    width = np.minimum(np.arange(1, kg.shape[1] + 1), weeks_window)[None, :, None]
    t_yr = (csum - lag) / width * 52 / 1000
    mean = t_yr.mean(axis=0)
    lo, hi = np.percentile(t_yr, [10, 90], axis=0) if kg.shape[0] > 1 else (None, None)
    out = {}
    for g, name in enumerate(groups):
        out[name] = {
            "mean": np.round(mean[:, g], 4).tolist(),
            "p10": None if lo is None else np.round(lo[:, g], 4).tolist(),
            "p90": None if hi is None else np.round(hi[:, g], 4).tolist(),
        }
    return out


def flow_groups(
    mean_flow: np.ndarray, order: Sequence[str], names: Mapping[str, str], always: Sequence[str] = ()
) -> dict[str, list[int]]:
    """Ports drawn on their own, the rest as 'other ports', and 'elsewhere' (column P).

    The ports in ``always`` (the targeted ports) come first, then the largest by
    ``mean_flow`` until there are :data:`TOP_PORTS`.
    """
    own = [order.index(p) for p in order if p in set(always)]
    for i in np.argsort(-np.asarray(mean_flow), kind="stable"):
        if len(own) >= TOP_PORTS:
            break
        if int(i) not in own:
            own.append(int(i))
    rest = [i for i in range(len(order)) if i not in own]
    groups = {names[order[i]]: [i] for i in own}
    if rest:
        groups["other ports"] = rest
    groups["elsewhere (other routes)"] = [len(order)]
    return groups


# --- shares before and after ------------------------------------------------------------------------


def plot_shares(summaries: Mapping[str, Mapping[str, Any]], ports: Sequence[Mapping[str, Any]]) -> Figure:
    """Each port's share of the modelled flow, control and scenarios side by side (mean, 95% CI bars).

    Args:
        summaries: label -> ``summary.json`` content; the first is the control ("before").
        ports: the ``comparison.json["ports"]`` list (id, name).

    """
    fig, (ax,) = _new_figure(1, ncols=1, panel_size=(8.0, 0.32 * len(ports) + 1.6))
    labels = list(summaries)
    n = len(labels)
    height = 0.8 / max(n, 1)
    first = next(iter(summaries.values()))
    order = sorted(ports, key=lambda p: first["ports"][p["id"]]["share"]["mean"] or 0.0)
    has_ci = False
    for j, label in enumerate(labels):
        means, errs = [], [[], []]
        for p in order:
            d = summaries[label]["ports"][p["id"]]["share"]
            m = d["mean"] or 0.0
            lo, hi = d["ci95"]
            means.append(100 * m)
            errs[0].append(100 * (m - lo) if lo is not None else 0.0)
            errs[1].append(100 * (hi - m) if hi is not None else 0.0)
            has_ci |= lo is not None
        y = [i - (j - (n - 1) / 2) * height for i in range(len(order))]  # control on top of each group
        ax.barh(
            y,
            means,
            height=height,
            color=OKABE_ITO[j % len(OKABE_ITO)],
            xerr=errs if has_ci else None,
            error_kw={"lw": 0.8, "capsize": 1.5},
            label=f"{label}{' (control)' if j == 0 and n > 1 else ''}",
        )
    ax.set_yticks(range(len(order)), [p["name"] for p in order], fontsize=8)
    ax.set_xlabel("share of the cocaine shipped through the modelled ports, %")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", title="bars: mean; whiskers: 95% CI" if has_ci else "means only")
    title = "Port shares of the flow, control against scenario(s), over the evaluation window"
    if not has_ci:
        title += " (one replication: no CI)"
    ax.set_title(title, fontsize=10)
    return fig


# --- change per port ---------------------------------------------------------------------------------


def _change_rows(entry: Mapping[str, Any], ports: Sequence[Mapping[str, Any]], weeks_eval: int) -> list[tuple]:
    rows = []
    groups = {p: "A" for p in entry["targets"]} | {p: "B" for p in entry["buffer"]}
    for p in ports:
        d = entry["port_differences"][p["id"]]["shipped_kg"]
        rows.append((p["name"], d, groups.get(p["id"], "O")))
    for metric, name in (("elsewhere_kg", "elsewhere (other routes)"), ("held_kg", "held back"), ("lost_kg", "lost")):
        d = entry["differences"].get(metric)
        if d is not None:
            rows.append((name, d, "outside"))
    out = []
    for name, d, group in rows:
        m = t_per_year(d["mean"], weeks_eval) or 0.0
        lo, hi = (t_per_year(x, weeks_eval) for x in d["ci95"])
        out.append((name, m, lo, hi, group))
    return sorted(out, key=lambda r: r[1])


def plot_port_changes(
    comparisons: Mapping[str, Mapping[str, Any]], ports: Sequence[Mapping[str, Any]], weeks_eval: int
) -> Figure:
    """Change in flow per port against the control, sorted, with paired 95% CI bars; one panel per scenario.

    Args:
        comparisons: label -> a ``comparison.json["comparisons"]`` entry.
        ports: the ``comparison.json["ports"]`` list.
        weeks_eval: length of the evaluation window in weeks (to convert kg to t/yr).

    """
    labels = list(comparisons)
    n_rows = len(ports) + 3
    fig, axes = _new_figure(max(len(labels), 1), panel_size=(6.0, 0.27 * n_rows + 1.4))
    has_ci = False
    for ax, label in zip(axes, labels, strict=False):
        rows = _change_rows(comparisons[label], ports, weeks_eval)
        y = range(len(rows))
        colours = [GROUP_COLOURS[r[4]] for r in rows]
        lows = [r[1] - r[2] if r[2] is not None else 0.0 for r in rows]
        highs = [r[3] - r[1] if r[3] is not None else 0.0 for r in rows]
        ci = any(r[2] is not None for r in rows)
        has_ci |= ci
        ax.barh(
            y,
            [r[1] for r in rows],
            color=colours,
            xerr=[lows, highs] if ci else None,
            error_kw={"lw": 0.9, "capsize": 2},
        )
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(list(y), [r[0] for r in rows], fontsize=8)
        ax.set_xlabel("change in flow against the control, t/yr")
        ax.set_title(label, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=GROUP_COLOURS[g], label=GROUP_LABELS[g]) for g in GROUP_COLOURS]
    handles.append(
        Line2D([], [], color="black", lw=0.9, label="whiskers: paired 95% CI" if has_ci else "no CI (one replication)")
    )
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    title = "Where the flow moved: change in cocaine shipped per port against the control (mean of paired differences)"
    fig.suptitle(title if has_ci else title + ", one replication: no CI", fontsize=11)
    return fig


# --- map -----------------------------------------------------------------------------------------------


def plot_port_map(
    ports: Sequence[Mapping[str, Any]],
    flows: Mapping[str, Mapping[str, float]],
    changes: Mapping[str, Mapping[str, float]] | None = None,
    coast: Mapping[str, Any] | None = None,
) -> Figure:
    """Map of the ports: bubbles sized by flow (t/yr), coloured by the change against the control.

    Args:
        ports: dicts with id, name, lon, lat.
        flows: panel label -> port id -> flow in t/yr (one panel per label).
        changes: panel label -> port id -> change in t/yr (None: bubbles in one colour, no change shown).
        coast: the outline (default: :func:`coast_outline`), drawn in light grey for orientation.

    """
    coast = coast if coast is not None else coast_outline()
    labels = list(flows)
    fig, axes = _new_figure(max(len(labels), 1), panel_size=(6.0, 4.6))
    all_flow = [v for f in flows.values() for v in f.values() if v is not None]
    fmax = max(all_flow, default=1.0) or 1.0
    vmax = max((abs(v) for c in (changes or {}).values() for v in c.values() if v is not None), default=1.0) or 1.0
    norm = Normalize(-vmax, vmax)
    cmap = matplotlib.colormaps[DIVERGING]

    def size(t: float) -> float:
        return 15 + 900 * max(t, 0.0) / fmax

    sc = None
    for ax, label in zip(axes, labels, strict=False):
        for group in ("coast", "borders"):
            for line in coast.get(group, {}).values():
                xs, ys = zip(*line, strict=True)
                ax.plot(
                    xs,
                    ys,
                    color="#9a9a9a" if group == "coast" else "#c4c4c4",
                    lw=0.8 if group == "coast" else 0.6,
                    ls="-" if group == "coast" else ":",
                )
        xs = [p["lon"] for p in ports]
        ys = [p["lat"] for p in ports]
        sizes = [size(flows[label].get(p["id"]) or 0.0) for p in ports]
        if changes is not None:
            cvals = [changes[label].get(p["id"]) or 0.0 for p in ports]
            sc = ax.scatter(
                xs, ys, s=sizes, c=cvals, cmap=cmap, norm=norm, edgecolors="black", linewidths=0.5, zorder=3
            )
        else:
            ax.scatter(xs, ys, s=sizes, color=OKABE_ITO[0], alpha=0.8, edgecolors="black", linewidths=0.5, zorder=3)
        ranked = sorted(ports, key=lambda p: -(flows[label].get(p["id"]) or 0.0))[:9]
        for p in ranked:
            radius = math.sqrt(size(flows[label].get(p["id"]) or 0.0)) / 2
            # a labelled port just east of this one at about the same latitude: put this label on the left
            crowded = any(0 < q["lon"] - p["lon"] < 1.5 and abs(q["lat"] - p["lat"]) < 0.35 for q in ranked)
            offset, ha = ((-radius - 2, -3), "right") if crowded else ((radius + 2, -3), "left")
            ax.annotate(
                p["name"], (p["lon"], p["lat"]), xytext=offset, textcoords="offset points", fontsize=7, ha=ha, zorder=4
            )
        ax.set_xlim(-0.2, 10.8)
        ax.set_ylim(48.9, 54.8)
        ax.set_aspect(1 / math.cos(math.radians(51.5)))
        ax.set_xlabel("longitude, degrees E")
        ax.set_ylabel("latitude, degrees N")
        ax.set_title(label, fontsize=10)
    refs = [r for r in (10, 100, 500) if r <= fmax * 1.2] or [round(fmax, 1)]
    handles = [
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            markersize=math.sqrt(size(r)),
            markerfacecolor="white",
            markeredgecolor="black",
            label=f"{r:g} t/yr",
        )
        for r in refs
    ]
    axes[0].legend(
        handles=handles,
        loc="lower right",
        fontsize=7,
        labelspacing=1.6,
        borderpad=1.0,
        title="bubble area: flow\n(mean over replications)",
        title_fontsize=7,
        framealpha=0.9,
    )
    if sc is not None:
        cbar = fig.colorbar(sc, ax=axes, shrink=0.8)
        cbar.set_label("change in flow against the control, t/yr (mean)")
    what = "coloured by change against the control" if changes is not None else "flow only"
    fig.suptitle(f"Ports of the model, sized by flow, {what} (outline rough, for orientation)", fontsize=11)
    return fig


# --- seizures and dismantled networks ------------------------------------------------------------------


def plot_seizures(summaries: Mapping[str, Mapping[str, Any]], weeks_eval: int) -> Figure:
    """Seizures (t/yr) and, when the model records them, networks dismantled per scenario (mean, 95% CI)."""
    labels = list(summaries)
    dismantled = all("networks_dismantled" in s["metrics"] for s in summaries.values())
    fig, axes = _new_figure(2 if dismantled else 1, panel_size=(5.5, 3.6))
    has_ci = False

    def bars(
        ax,
        values: list[tuple[float, float | None, float | None]],
        colour: str,
        offset: float,
        width: float,
        label: str | None,
    ) -> None:
        nonlocal has_ci
        means = [v[0] for v in values]
        ci = all(v[1] is not None for v in values)
        has_ci |= ci
        err = (
            [
                [m - v[1] for m, v in zip(means, values, strict=True)],
                [v[2] - m for m, v in zip(means, values, strict=True)],
            ]
            if ci
            else None
        )
        ax.bar(
            [i + offset for i in range(len(values))],
            means,
            width=width,
            color=colour,
            yerr=err,
            error_kw={"lw": 0.9, "capsize": 3},
            label=label,
        )

    def tyr(d: Mapping[str, Any]) -> tuple[float, float | None, float | None]:
        return (t_per_year(d["mean"], weeks_eval) or 0.0, *(t_per_year(x, weeks_eval) for x in d["ci95"]))

    ax = axes[0]
    bars(
        ax,
        [tyr(s["metrics"]["seized_kg"]) for s in summaries.values()],
        OKABE_ITO[0],
        -0.2,
        0.4,
        "at the modelled ports",
    )
    bars(
        ax,
        [tyr(s["metrics"]["elsewhere_seized_kg"]) for s in summaries.values()],
        OKABE_ITO[1],
        0.2,
        0.4,
        "elsewhere (other routes)",
    )
    ax.set_xticks(range(len(labels)), labels, fontsize=8, rotation=15)
    ax.set_ylabel("cocaine seized, t/yr")
    ax.set_title("Seizures", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    if dismantled:
        ax = axes[1]
        vals = []
        for s in summaries.values():
            d = s["metrics"]["networks_dismantled"]
            vals.append((d["mean"] or 0.0, *d["ci95"]))
        bars(ax, vals, OKABE_ITO[2], 0.0, 0.6, None)
        ax.set_xticks(range(len(labels)), labels, fontsize=8, rotation=15)
        ax.set_ylabel("networks dismantled in the window, count")
        ax.set_title("Networks dismantled", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        title = "Seizures and networks dismantled per scenario"
    else:
        title = "Seizures per scenario\n(networks dismantled: not recorded by this model version, so not shown)"
    title += "\nbars: mean over replications; whiskers: 95% CI" if has_ci else "\nmeans only: one replication, no CI"
    fig.suptitle(title, fontsize=11)
    return fig


# --- all figures of a comparison -------------------------------------------------------------------------


def comparison_figures(comparison: Mapping[str, Any]) -> dict[str, Figure]:
    """Every figure of a ``comparison.json`` (or of a run, with no ``comparisons``), by file stem."""
    weeks_eval = comparison["eval_weeks"][1] - comparison["eval_weeks"][0]
    scen = {s["key"]: s for s in comparison["scenarios"]}
    summaries = {k: comparison["summaries"][k] for k in scen}
    ports = comparison["ports"]
    figs: dict[str, Figure] = {}
    if comparison.get("flow_bands", {}).get("series"):
        figs["flows"] = plot_flows(
            comparison["flow_bands"],
            {k: f"{k}{' (control)' if k == comparison.get('control') else ''}" for k in scen},
            warmup_weeks=comparison.get("warmup_weeks"),
            intervention_weeks={k: s.get("first_intervention_week") for k, s in scen.items()},
        )
    figs["shares"] = plot_shares(summaries, ports)
    comps = comparison.get("comparisons") or {}
    if comps:
        figs["changes"] = plot_port_changes(
            {f"{k} vs {comparison['control']}": v for k, v in comps.items()}, ports, weeks_eval
        )
    flows = {
        k: {p["id"]: t_per_year(summaries[k]["ports"][p["id"]]["shipped_kg"]["mean"], weeks_eval) for p in ports}
        for k in (comps or summaries)
    }
    changes = (
        {
            k: {p: t_per_year(d["shipped_kg"]["mean"], weeks_eval) for p, d in v["port_differences"].items()}
            for k, v in comps.items()
        }
        if comps
        else None
    )
    figs["map"] = plot_port_map(ports, flows, changes)
    figs["seizures"] = plot_seizures(summaries, weeks_eval)
    return figs
