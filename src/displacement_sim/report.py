"""The self-contained HTML report of a comparison or a run (DESIGN.md section 6).

One file, no network: figures are embedded as base64 PNG data URIs, styles are
inline, nothing is fetched. The report holds the scenarios' descriptions, the
verdicts, tables with confidence intervals (masses in tonnes per year: kg over
the evaluation window x 52 / window weeks / 1000), the figures, and the
assumptions at the end (resolved configs, seed, version, git commit).

``displacement-sim report DIR`` rebuilds ``report.html`` from a results folder:
a ``compare`` folder (``comparison.json`` and one subfolder per scenario with
its ``manifest.json`` and ``summary.json``) or a single ``run`` folder
(``manifest.json``, ``summary.json`` and ``series.csv``: summary only).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .errors import ConfigError
from .plots import SMOOTH_WEEKS, TOP_PORTS, comparison_figures, t_per_year
from .results import BatchResult, dump_json, write_atomic, write_results

__all__ = [
    "add_report_parser",
    "build_report_html",
    "load_results_folder",
    "rebuild_report",
    "verdict",
    "write_comparison_folder",
]

FIGURE_CAPTIONS = {
    "flows": "Cocaine shipped through the largest ports over time, one panel per scenario. Lines are the mean over "
    "replications, shaded bands the 10-90% range of replications (where one in five runs falls outside). Grey: "
    "the warm-up, left out of every number; dashed: the first intervention.",
    "shares": "Each port's share of the flow through the modelled ports over the evaluation window: the control "
    "(what would have happened) beside each policy scenario.",
    "changes": "Change in the flow through each port against the control, sorted; whiskers are paired 95% "
    "confidence intervals. Bars outside the ports show flow that went to other routes, was held back, or was lost "
    "to dismantled networks.",
    "map": "The ports on a map (rough outline for orientation). Bubble area: flow in the scenario; colour: change "
    "against the control (purple less, orange more).",
    "seizures": "Seizures per scenario (and networks dismantled, where the model records them), mean with 95% CI.",
}

HOW_TO_READ = """<details><summary>How to read this report</summary><ul>
<li><b>Bands</b> (flows over time) show the 10-90% range of the runs: how differently things can turn out under
the same policy. <b>95% confidence intervals</b> show how precisely the runs pin down an average; they narrow with
more replications. Neither covers uncertainty in the model's assumed parameters: test those with a sweep.</li>
<li><b>Paired</b> intervals compare each run of a scenario with the same run of the control (common random numbers:
the same chance events), so the control is the exact counterfactual and the paired interval is much narrower than
the unpaired one, shown for reference.</li>
<li><b>Where the drop went</b>: A targeted ports, B their buffer ports, O other modelled ports, E other routes
(elsewhere), H held back, X capacity lost to dismantled networks; the changes add up to zero.</li>
<li><b>Displacement ratio</b> (ΔB+ΔO+ΔE)/(−ΔA): 0 none, 1 full displacement, below 0 diffusion of benefits.
<b>WDQ</b> ΔB/ΔA (Bowers &amp; Johnson 2003) has the opposite sign: negative means displacement into the buffer.
<b>wdq_observed</b> is the WDQ an analyst would compute from seizures alone; compare it with the true WDQ.</li>
<li>A dash means undefined: a ratio whose denominator's interval includes zero, or an interval from one run.
See docs/strategist-guide.md for more.</li></ul></details>"""

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.3em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.1em}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}th{background:#f1f1f1}
td:first-child,th:first-child{text-align:left}.verdict{background:#f4f8fb;border-left:4px solid #0072B2;
padding:.6em 1em;margin:.6em 0}.note{color:#555;font-size:.9em}figure{margin:1.2em 0}
figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{font-size:.9em;color:#444}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.8em}details{margin:.4em 0}
summary{cursor:pointer;font-weight:600}
"""


# --- formatting ------------------------------------------------------------------------------------------


def _e(text: Any) -> str:
    return html.escape(str(text))


def _num(x: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if x is None else fmt.format(x)


def _ci(lo: float | None, hi: float | None, fmt: str = "{:.1f}") -> str:
    return "–" if lo is None or hi is None else f"{fmt.format(lo)} to {fmt.format(hi)}"


def _tyr(d: Mapping[str, Any], weeks: int, key: str = "ci95") -> tuple[str, str]:
    lo, hi = d.get(key, [None, None])
    return _num(t_per_year(d["mean"], weeks)), _ci(t_per_year(lo, weeks), t_per_year(hi, weeks))


def _pct(d: Mapping[str, Any], key: str = "ci95") -> tuple[str, str]:
    lo, hi = d.get(key, [None, None])

    def scale(v: float | None) -> float | None:
        return None if v is None else 100 * v

    return _num(scale(d["mean"])), _ci(scale(lo), scale(hi))


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


# --- sections -------------------------------------------------------------------------------------------

MASS_ROWS = (
    ("shipped_kg", "shipped through the modelled ports"),
    ("seized_kg", "seized at the modelled ports"),
    ("delivered_kg", "delivered through the modelled ports"),
    ("elsewhere_kg", "shipped by other routes (elsewhere)"),
    ("elsewhere_seized_kg", "seized on other routes"),
    ("held_kg", "held back (not shipped)"),
    ("lost_kg", "capacity lost to dismantled networks"),
)
SHARE_ROWS = (
    ("seizure_rate", "seizure rate at the modelled ports"),
    ("hub_share", "hub share of the modelled flow"),
    ("regional_share", "regional share"),
    ("inland_share", "inland share"),
    ("foreign_share", "share outside BE/NL"),
)
COUNT_ROWS = (
    ("n_seizures", "seizures (count)"),
    ("networks_dismantled", "networks dismantled"),
    ("cases_opened", "cases opened"),
    ("duplicated_case_weeks", "duplicated case-weeks"),
)


def _summary_section(comp: Mapping[str, Any], weeks: int) -> str:
    keys = [s["key"] for s in comp["scenarios"]]
    head = ["quantity", *[f"{k}: mean (95% CI)" for k in keys]]

    def row(label: str, cells: list[tuple[str, str]]) -> list[str]:
        return [label, *[m if ci == "–" else f"{m} ({ci})" for m, ci in cells]]

    rows = []
    for m, label in MASS_ROWS:
        if all(m in comp["summaries"][k]["metrics"] for k in keys):
            rows.append(row(f"{label}, t/yr", [_tyr(comp["summaries"][k]["metrics"][m], weeks) for k in keys]))
    if comp.get("totals"):
        for m, label in (("total_delivered_kg", "delivered, all routes"), ("total_seized_kg", "seized, all routes")):
            rows.append(row(f"{label}, t/yr", [_tyr(comp["totals"][k][m], weeks) for k in keys]))
    for m, label in SHARE_ROWS:
        rows.append(row(f"{label}, %", [_pct(comp["summaries"][k]["metrics"][m]) for k in keys]))
    for m, label in COUNT_ROWS:
        if all(m in comp["summaries"][k]["metrics"] for k in keys):
            cells = []
            for k in keys:
                d = comp["summaries"][k]["metrics"][m]
                cells.append((_num(d["mean"]), _ci(*d["ci95"])))
            rows.append(row(label, cells))
    return "<h2>Scenario results</h2>" + _table(head, rows)


def _comparison_section(key: str, entry: Mapping[str, Any], comp: Mapping[str, Any], weeks: int) -> str:
    names = {p["id"]: p["name"] for p in comp["ports"]}
    parts = [f"<h2>{_e(key)} against {_e(entry['control'])}</h2>", f'<div class="verdict">{_e(entry["verdict"])}</div>']
    tgt = ", ".join(names[p] for p in entry["targets"]) or "none"
    parts.append(
        f"<p>Targeted ports (A, from {_e(entry['targets_from'])}): {_e(tgt)}. Buffer ports (B): "
        f"{_e(', '.join(names[p] for p in entry['buffer']) or 'none')}. Other modelled ports (O): "
        f"{_e(', '.join(names[p] for p in entry['other']) or 'none')}.</p>"
    )
    dec = entry.get("decomposition")
    if dec:
        rows = []
        for c, d in dec["components"].items():
            mean, ci = _tyr(d["kg"], weeks)
            sh = d["share_of_drop"]
            share = "–" if sh["value"] is None else f"{100 * sh['value']:.0f}"
            share_ci = _ci(*[None if v is None else 100 * v for v in sh["ci95"]], fmt="{:.0f}")
            rows.append([f"Δ{c}: {d['label']}", mean, ci, share, share_ci])
        parts.append("<h3>Where the drop at the targeted ports went</h3>")
        parts.append(_table(["component", "change, t/yr", "paired 95% CI", "% of the drop", "95% CI"], rows))
        parts.append(
            f'<p class="note">The changes add up to zero in every replication (largest gap '
            f"{dec['closure_kg']:.3g} kg): capacity not shipped through A went to B, O, elsewhere, was held back, "
            "or was lost to dismantling.</p>"
        )
    rows = []
    for name, label, meaning in (
        ("displacement_ratio", "displacement ratio (ΔB+ΔO+ΔE)/(−ΔA)", "0 none, 1 full displacement, < 0 diffusion"),
        ("wdq", "WDQ, true flows (ΔB/ΔA)", "negative: displacement into the buffer; positive: diffusion"),
        ("wdq_observed", "WDQ as an analyst sees it, from seizures", "same sign convention as WDQ"),
    ):
        d = entry.get(name) or {}
        v = d.get("value")
        rows.append(
            [label, _num(v, "{:.2f}"), _ci(*d.get("ci95", [None, None]), fmt="{:.2f}"), meaning, d.get("note") or ""]
        )
    parts.append("<h3>Displacement measures</h3>")
    parts.append(_table(["measure", "value", "95% CI", "reads as", "note"], rows))
    wo = entry.get("wdq_observed") or {}
    if wo.get("control_area"):
        pr = wo.get("per_replication") or {}
        parts.append(
            f'<p class="note">wdq_observed: seizures in weeks {wo["before_weeks"][0]}-{wo["before_weeks"][1]} against '
            f"{wo['after_weeks'][0]}-{wo['after_weeks'][1]} of the scenario run, control area "
            f"{_e(', '.join(names[p] for p in wo['control_area']))}. A single analyst sees one run: 80% of runs give "
            f"a value between {_num(pr.get('p10'), '{:.2f}')} and {_num(pr.get('p90'), '{:.2f}')}.</p>"
        )
    rows = []
    for m, label in (
        *MASS_ROWS,
        ("total_delivered_kg", "delivered, all routes"),
        ("total_seized_kg", "seized, all routes"),
    ):
        d = entry["differences"].get(m)
        if d is None:
            continue
        mean, ci = _tyr(d, weeks)
        rows.append([f"{label}, t/yr", mean, ci, _tyr(d, weeks, "ci95_unpaired")[1]])
    for m, label in SHARE_ROWS:
        d = entry["differences"].get(m)
        if d is not None:
            mean, ci = _pct(d)
            rows.append([f"{label}, percentage points", mean, ci, _pct(d, "ci95_unpaired")[1]])
    for m, label in COUNT_ROWS:
        d = entry["differences"].get(m)
        if d is not None:
            rows.append([label, _num(d["mean"]), _ci(*d["ci95"]), _ci(*d["ci95_unpaired"])])
    parts.append("<h3>Differences against the control</h3>")
    parts.append(_table(["quantity", "change", "paired 95% CI", "unpaired 95% CI (for reference)"], rows))
    rows = []
    ctrl = comp["summaries"][entry["control"]]["ports"]
    scen = comp["summaries"][key]["ports"]
    for p in comp["ports"]:
        d = entry["port_differences"][p["id"]]
        mean, ci = _tyr(d["shipped_kg"], weeks)
        smean, sci = _tyr(d["seized_kg"], weeks)
        rows.append(
            [
                p["name"],
                _num(t_per_year(ctrl[p["id"]]["shipped_kg"]["mean"], weeks)),
                _num(t_per_year(scen[p["id"]]["shipped_kg"]["mean"], weeks)),
                mean,
                ci,
                smean,
                sci,
            ]
        )
    parts.append("<h3>Per port (t/yr)</h3>")
    parts.append(
        _table(
            ["port", "flow, control", "flow, scenario", "change", "paired 95% CI", "change in seized", "95% CI"], rows
        )
    )
    return "\n".join(parts)


def _assumptions_section(comp: Mapping[str, Any], manifests: Mapping[str, Mapping[str, Any]]) -> str:
    prov = comp.get("provenance", {})
    items = [
        ("seed", comp.get("seed")),
        ("replications", comp.get("replications")),
        ("engine", comp.get("engine")),
        ("horizon, weeks", comp.get("weeks")),
        ("warm-up, weeks", comp.get("warmup_weeks")),
        ("evaluation window, weeks", f"{comp['eval_weeks'][0]}-{comp['eval_weeks'][1]}"),
        ("displacement-sim version", prov.get("version")),
        ("git commit", prov.get("git_commit") or "unknown"),
        ("numpy", prov.get("numpy")),
        ("created", prov.get("created")),
    ]
    parts = ["<h2>Assumptions and provenance</h2>", _table(["item", "value"], [[k, str(v)] for k, v in items])]
    if comp.get("ci_method"):
        parts.append("<p class='note'>" + " ".join(_e(f"{k}: {v}.") for k, v in comp["ci_method"].items()) + "</p>")
    for s in comp["scenarios"]:
        cfg = (manifests.get(s["key"]) or {}).get("config")
        if cfg is None:
            continue
        text = yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=110)
        summary = f"<summary>Resolved configuration of {_e(s['key'])} (YAML)</summary>"
        parts.append(f"<details>{summary}<pre>{_e(text)}</pre></details>")
    return "\n".join(parts)


def build_report_html(
    comparison: Mapping[str, Any],
    manifests: Mapping[str, Mapping[str, Any]],
    figures: Mapping[str, bytes] | None = None,
) -> str:
    """The report as one HTML string; ``figures`` (stem -> PNG bytes) are rendered when not given."""
    if figures is None:
        figures = {name: _png(fig) for name, fig in comparison_figures(comparison).items()}
    weeks = comparison["eval_weeks"][1] - comparison["eval_weeks"][0]
    comps = comparison.get("comparisons") or {}
    title = "Scenario comparison" if comps else f"Run report: {comparison['scenarios'][0]['name']}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>displacement-sim: {_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>displacement-sim: {_e(title)}</h1>",
        f"<p class='note'>{comparison.get('replications')} replication(s), seed {comparison.get('seed')}, evaluated "
        f"over weeks {comparison['eval_weeks'][0]}-{comparison['eval_weeks'][1]} ({weeks} weeks). Masses in tonnes "
        "per year (t/yr). Intervals are 95% confidence intervals over replications; differences are paired by "
        "replication (common random numbers), so each scenario is set against its exact counterfactual.</p>",
        HOW_TO_READ,
        "<h2>Scenarios</h2><dl>",
    ]
    for s in comparison["scenarios"]:
        role = " (control)" if s["key"] == comparison.get("control") else ""
        ivs = "".join(
            f"<li>week {iv['week']}: {_e(iv['label'] + ': ' if iv['label'] else '')}"
            f"{_e('; '.join(f'{k} = {v}' for k, v in iv['set'].items()))}</li>"
            for iv in s.get("interventions", [])
        )
        parts.append(
            f"<dt><b>{_e(s['key'])}</b>{_e(role)}</dt><dd>{_e(s.get('description') or '(no description)')}"
            f"{'<ul>' + ivs + '</ul>' if ivs else '<br><i>no interventions</i>'}</dd>"
        )
    parts.append("</dl>")
    if comps:
        parts.append("<h2>Verdicts</h2>")
        for key, entry in comps.items():
            parts.append(f'<div class="verdict"><b>{_e(key)}</b>: {_e(entry["verdict"])}</div>')
    parts.append(_summary_section(comparison, weeks))
    for key, entry in comps.items():
        parts.append(_comparison_section(key, entry, comparison, weeks))
    parts.append("<h2>Figures</h2>")
    for name, png in figures.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{_e(name)} figure" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(FIGURE_CAPTIONS.get(name, name))}</figcaption></figure>"
        )
    parts.append(_assumptions_section(comparison, manifests))
    parts.append("</body></html>")
    return "\n".join(parts)


# --- the verdict -----------------------------------------------------------------------------------


def _digits(*xs: float) -> int:
    """Decimals for percentages: one when every value is under 10%, else none."""
    return 1 if all(abs(x) < 0.1 for x in xs) else 0


def _pct_change(r: dict[str, Any], what: str, *, one_rep: bool) -> str:
    """``"falls 38% (95% CI 33-42%)"`` from a relative change."""
    v = r.get("value")
    if v is None:
        return f"{what}: change not estimable ({r.get('note')})"
    lo, hi = r["ci95"]
    word = "falls" if v < 0 else "rises"
    if lo is None:
        d = _digits(v)
        return f"{what} {word} {100 * abs(v):.{d}f}% ({'one replication, no CI' if one_rep else 'no CI'})"
    d = _digits(v, lo, hi)
    if lo <= 0 <= hi:
        return f"{what} does not change measurably ({_spct(v, d)}, 95% CI {_spct(lo, d)} to {_spct(hi, d)})"
    a, b = sorted((abs(lo), abs(hi)))
    return f"{what} {word} {100 * abs(v):.{d}f}% (95% CI {100 * a:.{d}f}-{100 * b:.{d}f}%)"


def _spct(x: float, digits: int = 0) -> str:
    """Signed percent, without a minus sign on a rounded zero."""
    return f"{0:.{digits}f}%" if round(100 * x, digits) == 0 else f"{100 * x:+.{digits}f}%"


def _snum(x: float) -> str:
    """Signed number with two decimals under 1, one above; no sign on a rounded zero."""
    d = 2 if abs(x) < 1 else 1
    return f"{0:.{d}f}" if round(x, d) == 0 else f"{x:+.{d}f}"


def _share(r: dict[str, Any]) -> str:
    v, (lo, hi) = r["value"], r["ci95"]
    return f"{v:.0%}" if lo is None else f"{v:.0%} (95% CI {lo:.0%} to {hi:.0%})"


def verdict(entry: dict[str, Any], names: dict[str, str]) -> str:
    """A short plain-language verdict generated from a comparison entry's numbers."""
    rel = entry["relative_change"]
    one_rep = entry["differences"]["shipped_kg"]["n"] < 2
    parts = []
    tgt = entry["targets"]
    if tgt and "targeted_shipped_kg" in rel:
        where = ", ".join(names.get(p, p) for p in tgt)
        parts.append(
            _pct_change(rel["targeted_shipped_kg"], f"Flow through the targeted ports ({where})", one_rep=one_rep)
        )
        dr = entry["displacement_ratio"]
        dec = entry["decomposition"]
        if dr["value"] is not None:
            gains = [
                (d["shipped_kg"]["mean"], names.get(p, p))
                for p, d in entry["port_differences"].items()
                if p not in tgt and d["shipped_kg"]["mean"] is not None
            ]
            gains.append((dec["components"]["E"]["kg"]["mean"], "other routes (elsewhere)"))
            gains = sorted((g for g in gains if g[0] > 0), reverse=True)
            total_gain = sum(g for g, _ in gains)
            top = [n for g, n in gains[:3] if g >= 0.1 * total_gain][:3]
            if dr["value"] >= 0:
                text = f"{_share(dr)} of it reappears at other ports and routes"
                if top:
                    text += ", mostly " + " and ".join([", ".join(top[:-1]), top[-1]] if len(top) > 1 else top)
            else:
                text = f"flow also falls elsewhere (diffusion of benefits: displacement ratio {_share(dr)})"
            parts.append(text)
            held = dec["components"]["H"]["share_of_drop"]
            if held["value"] is not None and abs(held["value"]) >= 0.05:
                parts.append(f"{_share(held)} is held back (deterred)")
            lost = dec["components"]["X"]["share_of_drop"]
            if lost["value"] is not None and abs(lost["value"]) >= 0.05:
                parts.append(f"{_share(lost)} is capacity lost to dismantled networks")
        elif dr.get("note"):
            parts.append(f"displacement ratio not estimable ({dr['note'].removeprefix('undefined: ')})")
    else:
        parts.append("No targeted ports (the scenario changes no port's fields against the control)")
    parts.append(_pct_change(rel["total_delivered_kg"], "total delivered (all routes)", one_rep=one_rep))
    parts.append(_pct_change(rel["seized_kg"], "the amount seized at the modelled ports", one_rep=one_rep))
    dis = entry["differences"].get("networks_dismantled")
    if dis is not None and dis["mean"] is not None:
        lo, hi = dis["ci95"]
        ci = "" if lo is None else f", 95% CI {_snum(lo)} to {_snum(hi)}"
        same = lo is not None and lo <= 0 <= hi
        word = "no measurable change in networks dismantled" if same else "networks dismantled"
        parts.append(f"{word} ({_snum(dis['mean'])} per run{ci})")
    text = "; ".join(parts) + "."
    return text[0].upper() + text[1:]


# --- writing and rebuilding -----------------------------------------------------------------------------


def write_comparison_folder(
    out: Path, results: Sequence[BatchResult], comparison: Mapping[str, Any], *, svg: bool = False
) -> Path:
    """Write a compare folder: per-scenario results, ``comparison.json``, figures and ``report.html``."""
    out.mkdir(parents=True, exist_ok=True)
    manifests = {}
    for s, res in zip(comparison["scenarios"], results, strict=True):
        write_results(res, out / s["folder"])
        manifests[s["key"]] = res.manifest()
    write_atomic(out / "comparison.json", dump_json(comparison))
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    pngs = {}
    for name, fig in comparison_figures(comparison).items():
        pngs[name] = _png(fig)
        (fig_dir / f"{name}.png").write_bytes(pngs[name])
        if svg:
            fig.savefig(fig_dir / f"{name}.svg", format="svg")
    write_atomic(out / "report.html", build_report_html(comparison, manifests, pngs))
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            "file missing from the results folder", file=path, allowed="a complete results folder"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"not valid JSON ({err})", file=path) from None
    if not isinstance(data, dict):
        raise ConfigError("not a JSON object", file=path, given=type(data).__name__)
    return data


def _run_as_comparison(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A ``run`` folder in the shape of ``comparison.json`` (one scenario, no comparisons)."""
    summary = _read_json(folder / "summary.json")
    manifest = _read_json(folder / "manifest.json")
    try:
        cfg = manifest["config"]
        key = summary["scenario"]
        eval_weeks = summary["eval_weeks"]
        ports = [
            {
                "id": pid,
                "name": p["name"],
                "kind": p["kind"],
                "country": p["country"],
                "lon": p["lon"],
                "lat": p["lat"],
                "buffer": p.get("buffer", []),
            }
            for pid, p in cfg["ports"].items()
        ]
        first = min((iv["week"] for iv in cfg.get("interventions", [])), default=None)
        comp: dict[str, Any] = {
            "control": None,
            "scenarios": [
                {
                    "key": key,
                    "name": key,
                    "description": (cfg.get("description") or "").strip(),
                    "folder": ".",
                    "first_intervention_week": first,
                    "interventions": [
                        {
                            "week": iv["week"],
                            "label": iv.get("label", ""),
                            "set": {k: repr(v) for k, v in iv["set"].items()},
                        }
                        for iv in cfg.get("interventions", [])
                    ],
                }
            ],
            "seed": summary["seed"],
            "replications": summary["replications"],
            "engine": summary["engine"],
            "weeks": summary["weeks"],
            "warmup_weeks": cfg.get("warmup_weeks"),
            "eval_weeks": eval_weeks,
            "ports": ports,
            "summaries": {key: summary},
            "comparisons": {},
            "provenance": {k: manifest.get(k) for k in ("version", "git_commit", "numpy", "created")},
        }
    except (KeyError, TypeError) as err:
        raise ConfigError(
            f"results folder lacks a field: {err}", file=folder, allowed="a folder written by run"
        ) from None
    series_path = folder / "series.csv"
    if series_path.is_file():
        comp["flow_bands"] = _flow_means_from_csv(series_path, ports, key)
    return comp, {key: manifest}


def _flow_means_from_csv(path: Path, ports: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    """Flow means per top port from a run's ``series.csv`` (means add and smooth exactly; quantiles do not)."""
    df = pd.read_csv(path)
    df = df[df["variable"] == "shipped_kg"]
    wide = df.pivot(index="week", columns="port", values="mean").sort_index()
    smooth = wide.rolling(SMOOTH_WEEKS, min_periods=1).mean() * 52 / 1000
    names = {p["id"]: p["name"] for p in ports}
    port_cols = [p["id"] for p in ports if p["id"] in smooth]
    top = sorted(port_cols, key=lambda p: -wide[p].sum())[:TOP_PORTS]
    groups = {names[p]: smooth[p] for p in top}
    rest = [p for p in port_cols if p not in top]
    if rest:
        groups["other ports"] = smooth[rest].sum(axis=1)
    if "elsewhere" in smooth:
        groups["elsewhere (other routes)"] = smooth["elsewhere"]
    return {
        "unit": "t/yr",
        "smoothing_weeks": SMOOTH_WEEKS,
        "band": None,
        "groups": list(groups),
        "series": {key: {g: {"mean": v.round(4).tolist(), "p10": None, "p90": None} for g, v in groups.items()}},
    }


def load_results_folder(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(comparison-shaped data, manifests by scenario key) from a compare or run folder; ConfigError otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError("not a folder", field="RESULTS_DIR", given=str(folder), allowed="a results folder")
    if (folder / "comparison.json").is_file():
        path = folder / "comparison.json"
        comp = _read_json(path)

        def field(obj: Any, key: str, where: str) -> Any:
            if not isinstance(obj, dict) or key not in obj:
                raise ConfigError(
                    "missing field",
                    file=path,
                    field=where,
                    given=f"keys {', '.join(map(str, obj))}" if isinstance(obj, dict) else type(obj).__name__,
                    allowed="a comparison.json written by 'displacement-sim compare'",
                )
            return obj[key]

        manifests = {}
        scenarios = field(comp, "scenarios", "scenarios")
        if not isinstance(scenarios, list):
            raise ConfigError(
                "not a list",
                file=path,
                field="scenarios",
                given=type(scenarios).__name__,
                allowed="a list of scenarios",
            )
        for i, s in enumerate(scenarios):
            sub = folder / str(field(s, "folder", f"scenarios[{i}].folder"))
            manifests[field(s, "key", f"scenarios[{i}].key")] = _read_json(sub / "manifest.json")
            _read_json(sub / "summary.json")
        field(comp, "eval_weeks", "eval_weeks")
        return comp, manifests
    if (folder / "summary.json").is_file() and (folder / "manifest.json").is_file():
        return _run_as_comparison(folder)
    raise ConfigError(
        "not a results folder",
        field="RESULTS_DIR",
        given=str(folder),
        allowed="a folder written by 'displacement-sim compare' (with comparison.json) or 'run' "
        "(with summary.json and manifest.json)",
    )


def rebuild_report(folder: Path) -> Path:
    """Rebuild ``report.html`` in a results folder; returns its path."""
    comp, manifests = load_results_folder(folder)
    try:
        text = build_report_html(comp, manifests)
    except ConfigError:
        raise
    except (KeyError, TypeError, IndexError, ValueError) as err:
        raise ConfigError(f"results folder is incomplete or malformed ({err!r})", file=folder) from None
    path = Path(folder) / "report.html"
    write_atomic(path, text)
    return path


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``displacement-sim report RESULTS_DIR``."""
    p = sub.add_parser("report", help="rebuild report.html from a compare or run results folder")
    p.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    path = rebuild_report(args.results_dir)
    print(f"report: {path}")
    return 0
