"""Paired comparison of scenarios against a control (DESIGN.md sections 4 and 6).

Scenarios compared with the same seed share their random draws (common random
numbers), so replication ``r`` of the control is the exact counterfactual of
replication ``r`` of a scenario: differences pair by replication and their
confidence intervals are narrower than unpaired ones.

What this module computes, per scenario against the control:

- the difference of every metric and port metric: mean of the paired
  differences with a 95% t-interval, and the unpaired (Welch) interval for
  reference;
- **where the drop went** (DESIGN.md section 4): with A the targeted ports, B
  their buffer ports, O the other modelled ports, E elsewhere, H held back and
  X capacity lost to dismantled networks, ``dA + dB + dO + dE + dH + dX = 0``
  for shipped kg in every replication; each term also as a share of ``-dA``;
- ``displacement_ratio = (dB + dO + dE) / (-dA)``: 0 none, 1 full, < 0
  diffusion of benefits;
- ``wdq = dB / dA`` (the weighted displacement quotient of Bowers & Johnson
  2003, with the control as "before"): negative means displacement into the
  buffer, positive diffusion of benefits; defined only when ``dA < 0``;
- ``wdq_observed``: the same quotient as an analyst computes it from seizures
  in the treatment run alone, before against after the intervention, with a
  distant control area C: ``(B_a/C_a - B_b/C_b) / (A_a/C_a - A_b/C_b)``.

Ratios are ratios of mean paired differences; their 95% CIs come from a
paired bootstrap over replications (one fixed-seed set of resamples shared by
every ratio of a comparison), and they are ``None`` when undefined or when the
denominator's 95% CI includes 0.

The core functions (:func:`paired_difference`, :func:`decompose`,
:func:`ratio_of_means`, :func:`observed_wdq`) take plain arrays, so they can
be checked against hand-computed values.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import stdtrit  # Student t quantile (scipy.stats is slow to import)

from .config import expand_path
from .errors import ConfigError, suggest
from .metrics import reduce_values
from .plots import SMOOTH_WEEKS, flow_bands, flow_groups
from .report import verdict
from .results import BatchResult
from .schema import Scenario

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "Bootstrap",
    "Flows",
    "add_compare_parser",
    "buffer_ports",
    "build_comparison",
    "control_area",
    "decompose",
    "first_intervention_week",
    "observed_wdq",
    "paired_difference",
    "ratio_of_means",
    "targeted_ports",
]

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20030601  # fixed: the same results folder always gets the same CIs
SERIES_NEEDED = ("shipped_kg", "seized_kg")  # weekly series a comparison uses (flow bands, wdq_observed)
COMPONENTS = {
    "A": "targeted ports",
    "B": "buffer ports",
    "O": "other modelled ports",
    "E": "elsewhere (other routes)",
    "H": "held back (not shipped)",
    "X": "lost to dismantled networks",
}


# --- statistics on plain arrays ------------------------------------------------------------------


def _t_half(std: float, n: int, df: float | None = None) -> float:
    return float(stdtrit(n - 1 if df is None else df, 0.975) * std / math.sqrt(n)) if n > 1 else math.nan


def paired_difference(treatment: np.ndarray, control: np.ndarray) -> dict[str, Any]:
    """Difference treatment - control with a paired 95% t-interval and the unpaired (Welch) one.

    Replications pair by index (common random numbers). Replications where
    either value is undefined (NaN) are left out of both intervals.
    """
    t = np.asarray(treatment, dtype=float)
    c = np.asarray(control, dtype=float)
    ok = np.isfinite(t) & np.isfinite(c)
    t, c = t[ok], c[ok]
    n = int(t.size)
    if n == 0:
        return {"mean": None, "std": None, "ci95": [None, None], "ci95_unpaired": [None, None], "n": 0}
    d = t - c
    mean = float(d.mean())
    if n < 2:
        return {"mean": mean, "std": None, "ci95": [None, None], "ci95_unpaired": [None, None], "n": n}
    std = float(d.std(ddof=1))
    half = 0.0 if std == 0 else _t_half(std, n)
    v_t, v_c = t.var(ddof=1) / n, c.var(ddof=1) / n
    se = math.sqrt(v_t + v_c)
    if se == 0:
        half_u = 0.0
    else:  # Welch-Satterthwaite degrees of freedom
        df = (v_t + v_c) ** 2 / (v_t**2 / (n - 1) + v_c**2 / (n - 1))
        half_u = float(stdtrit(df, 0.975) * se)
    return {
        "mean": mean,
        "std": std,
        "ci95": [mean - half, mean + half],
        "ci95_unpaired": [mean - half_u, mean + half_u],
        "n": n,
    }


class Bootstrap:
    """Paired bootstrap over replications: one fixed set of resampled replication indices.

    Every ratio of a comparison uses the same resamples, so numerator and
    denominator stay paired (Efron & Tibshirani 1993, percentile interval).
    """

    def __init__(self, n: int, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> None:
        self.n = int(n)
        rng = np.random.Generator(np.random.PCG64(seed))
        self.index = rng.integers(0, self.n, size=(resamples, self.n)) if self.n >= 2 else None

    def means(self, x: np.ndarray) -> np.ndarray | None:
        """Mean of ``x`` (length n) in every resample, or None with fewer than two replications."""
        return None if self.index is None else np.asarray(x, dtype=float)[self.index].mean(axis=1)


def _percentile_ci(samples: np.ndarray | None) -> list[float | None]:
    if samples is None:
        return [None, None]
    s = samples[np.isfinite(samples)]
    if s.size == 0:
        return [None, None]
    lo, hi = np.percentile(s, [2.5, 97.5])
    return [float(lo), float(hi)]


def ratio_of_means(num: np.ndarray, den: np.ndarray, boot: Bootstrap, *, den_sign: int = 1) -> dict[str, Any]:
    """``mean(num) / mean(den)`` over paired replications, with a paired-bootstrap 95% CI.

    The ratio is defined only when ``mean(den)`` has the sign ``den_sign`` and
    the 95% t-interval of ``mean(den)`` excludes 0 (DESIGN.md section 4);
    otherwise ``value`` is None and ``note`` says why.
    """
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    n = int(den.size)
    out: dict[str, Any] = {"value": None, "ci95": [None, None], "n": n, "note": None}
    if n == 0:
        out["note"] = "no replications"
        return out
    m_den = float(den.mean())
    if m_den * den_sign <= 0:
        out["note"] = (
            f"undefined: the denominator's mean is {m_den:.4g}, needs to be {'> 0' if den_sign > 0 else '< 0'}"
        )
        return out
    if n >= 2:
        sd = float(den.std(ddof=1))
        half = 0.0 if sd == 0 else _t_half(sd, n)
        if m_den - half <= 0 <= m_den + half:
            out["note"] = "undefined: the denominator's 95% CI includes 0"
            return out
    out["value"] = float(num.mean()) / m_den
    bn, bd = boot.means(num), boot.means(den)
    if bn is None:
        out["note"] = "one replication: no confidence interval"
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["ci95"] = _percentile_ci(bn / bd)
    return out


# --- flows and where the drop went ---------------------------------------------------------------


@dataclass(frozen=True)
class Flows:
    """Where each replication's capacity went, kg over the evaluation window.

    Per replication: capacity = sum of ``port_kg`` + ``elsewhere_kg`` + ``held_kg``;
    ``lost_kg`` is capacity lost to dismantled networks (zeros when the model
    records none).
    """

    port_kg: np.ndarray  # (R, P) shipped kg per port
    elsewhere_kg: np.ndarray  # (R,)
    held_kg: np.ndarray  # (R,)
    lost_kg: np.ndarray  # (R,)

    @classmethod
    def from_result(cls, result: BatchResult, order: Sequence[str] | None = None) -> Flows:
        """The flows of a run, ports in ``order`` (default: the run's own)."""
        ids = list(result.ports.ids)
        idx = [ids.index(p) for p in order] if order is not None else list(range(len(ids)))
        m = result.metrics
        lost = m.get("lost_kg")
        return cls(
            port_kg=np.asarray(result.port_values["shipped_kg"], dtype=float)[:, idx],
            elsewhere_kg=np.asarray(m["elsewhere_kg"], dtype=float),
            held_kg=np.asarray(m["held_kg"], dtype=float),
            lost_kg=np.zeros_like(m["held_kg"], dtype=float) if lost is None else np.asarray(lost, dtype=float),
        )


def decompose(
    control: Flows,
    treatment: Flows,
    targets: Sequence[int],
    buffer: Sequence[int],
    boot: Bootstrap | None = None,
) -> dict[str, Any]:
    """Where the drop at the targeted ports went (DESIGN.md section 4), with ratios and CIs.

    Args:
        control: the control's flows.
        treatment: the scenario's flows, paired with the control's by replication, same port order.
        targets: port indices of A.
        buffer: port indices of B (any overlap with A is dropped); every other port is in O.
        boot: the shared bootstrap resamples (default: a new fixed-seed set).

    Returns:
        ``components`` (A, B, O, E, H, X: paired kg difference and share of ``-dA``),
        ``closure_kg`` (largest per-replication |dA+dB+dO+dE+dH+dX|; 0 up to rounding),
        ``displacement_ratio`` and ``wdq``.

    """
    n_ports = control.port_kg.shape[1]
    a_idx = sorted(set(int(i) for i in targets))
    b_idx = sorted(set(int(i) for i in buffer) - set(a_idx))
    o_idx = [i for i in range(n_ports) if i not in a_idx and i not in b_idx]
    dport = treatment.port_kg - control.port_kg
    delta = {
        "A": dport[:, a_idx].sum(axis=1),
        "B": dport[:, b_idx].sum(axis=1),
        "O": dport[:, o_idx].sum(axis=1),
        "E": treatment.elsewhere_kg - control.elsewhere_kg,
        "H": treatment.held_kg - control.held_kg,
        "X": treatment.lost_kg - control.lost_kg,
    }
    boot = boot or Bootstrap(dport.shape[0])
    drop = -delta["A"]
    total = sum(delta.values())
    scale = max(float(np.abs(control.port_kg).sum(axis=1).max(initial=0.0)), 1.0)
    components = {}
    for key, label in COMPONENTS.items():
        zeros = np.zeros_like(delta[key])
        components[key] = {
            "label": label,
            "kg": paired_difference(delta[key], zeros),
            "share_of_drop": ratio_of_means(delta[key], drop, boot),
        }
    return {
        "port_index": {"A": a_idx, "B": b_idx, "O": o_idx},
        "components": components,
        "closure_kg": float(np.abs(total).max(initial=0.0)),
        "closure_relative": float(np.abs(total).max(initial=0.0)) / scale,
        "displacement_ratio": ratio_of_means(delta["B"] + delta["O"] + delta["E"], drop, boot),
        "wdq": ratio_of_means(delta["B"], delta["A"], boot, den_sign=-1),
    }


def observed_wdq(
    seized: np.ndarray,
    a_idx: Sequence[int],
    b_idx: Sequence[int],
    c_idx: Sequence[int],
    before: tuple[int, int],
    after: tuple[int, int],
    boot: Bootstrap | None = None,
) -> dict[str, Any]:
    """The WDQ an analyst computes from seizures in the treatment run alone (Bowers & Johnson 2003).

    ``WDQ = (B_a/C_a - B_b/C_b) / (A_a/C_a - A_b/C_b)`` with A, B, C the seized kg
    in the targeted, buffer and control-area ports, ``b`` the weeks ``before``
    and ``a`` the weeks ``after`` (half-open week ranges). Computed from the means
    over replications, with a paired-bootstrap CI; ``per_replication`` gives the
    10/50/90% points of what a single analyst (one replication) would see.

    Args:
        seized: (R, weeks, P or P+1) seized kg per week and port.
        a_idx: column indices of the targeted ports.
        b_idx: column indices of the buffer ports.
        c_idx: column indices of the control-area ports.
        before: weeks [first, last) before the intervention.
        after: weeks [first, last) after it.
        boot: the shared bootstrap resamples (default: a new fixed-seed set).

    """
    seized = np.asarray(seized, dtype=float)
    n = seized.shape[0]
    out: dict[str, Any] = {
        "value": None,
        "ci95": [None, None],
        "per_replication": {"p10": None, "p50": None, "p90": None},
        "before_weeks": list(before),
        "after_weeks": list(after),
        "n": n,
        "note": None,
    }
    if before[1] <= before[0] or after[1] <= after[0]:
        out["note"] = "undefined: no weeks before the intervention outside the warm-up"
        return out
    if not len(a_idx) or not len(b_idx) or not len(c_idx):
        out["note"] = "undefined: needs targeted, buffer and control-area ports"
        return out

    def window(lo: int, hi: int, idx: Sequence[int]) -> np.ndarray:
        return seized[:, lo:hi, :][:, :, list(idx)].sum(axis=(1, 2))

    parts = {
        f"{g}_{w}": window(*rng, idx)
        for g, idx in (("A", a_idx), ("B", b_idx), ("C", c_idx))
        for w, rng in (("b", before), ("a", after))
    }
    out["seized_kg_means"] = {k: float(v.mean()) for k, v in parts.items()}

    def quotient(p: dict[str, Any]) -> tuple[Any, Any]:
        with np.errstate(divide="ignore", invalid="ignore"):
            den = p["A_a"] / p["C_a"] - p["A_b"] / p["C_b"]
            num = p["B_a"] / p["C_a"] - p["B_b"] / p["C_b"]
        return num, den

    num, den = quotient({k: v.mean() for k, v in parts.items()})
    if not (np.isfinite(num) and np.isfinite(den)) or den == 0:
        out["note"] = "undefined: no seizures in the control area or no change at the targeted ports"
        return out
    per_rep_num, per_rep_den = quotient(parts)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_rep = per_rep_num / per_rep_den
    per_rep = per_rep[np.isfinite(per_rep)]
    if per_rep.size:
        p10, p50, p90 = np.percentile(per_rep, [10, 50, 90])
        out["per_replication"] = {"p10": float(p10), "p50": float(p50), "p90": float(p90), "n": int(per_rep.size)}
    boot = boot or Bootstrap(n)
    if boot.index is None:
        out["value"] = float(num / den)
        out["note"] = "one replication: no confidence interval"
        return out
    bparts = {k: boot.means(v) for k, v in parts.items()}
    bnum, bden = quotient(bparts)
    den_ci = _percentile_ci(bden)
    if den_ci[0] is None or den_ci[0] <= 0 <= den_ci[1]:
        out["note"] = (
            "undefined: the denominator's 95% CI includes 0 (seizures at the targeted ports did not change "
            "measurably relative to the control area)"
        )
        return out
    out["value"] = float(num / den)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["ci95"] = _percentile_ci(bnum / bden)
    return out


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine, Earth radius 6371 km)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def control_area(cfg: Scenario, targets: Sequence[str], buffer: Sequence[str]) -> list[str]:
    """The analyst's control area: the farthest half of the enabled ports outside A and B.

    Distance is to the nearest targeted port; at least one port is chosen.
    """
    if not targets:
        return []
    cand = [p for p, port in cfg.ports.items() if port.enabled and p not in targets and p not in buffer]
    if not cand:
        return []

    def dist(pid: str) -> float:
        p = cfg.ports[pid]
        return min(_distance_km(p.lat, p.lon, cfg.ports[t].lat, cfg.ports[t].lon) for t in targets)

    far = sorted(cand, key=lambda p: (-dist(p), p))
    keep = set(far[: max(1, math.ceil(len(far) / 2))])
    return [p for p in cfg.ports if p in keep]


# --- targeted and buffer ports from a scenario ----------------------------------------------------


def _intervention_items(cfg: Scenario) -> set[tuple[int, str, str]]:
    return {(iv.week, path, repr(value)) for iv in cfg.interventions for path, value in iv.set.items()}


def targeted_ports(scenario: Scenario, control: Scenario | None = None) -> list[str]:
    """Ports whose fields the scenario's interventions set (selectors expanded), in port order.

    Interventions the control has identically (same week, path and value) are
    not the scenario's policy and are left out.
    """
    data = scenario.model_dump(mode="python")
    same = _intervention_items(control) if control is not None else set()
    found: set[str] = set()
    for iv in scenario.interventions:
        for path, value in iv.set.items():
            if not path.startswith("ports") or (iv.week, path, repr(value)) in same:
                continue
            for keys in expand_path(data, path):
                if len(keys) >= 2 and keys[0] == "ports":
                    found.add(keys[1])
    return [p for p in scenario.ports if p in found]


def buffer_ports(cfg: Scenario, targets: Sequence[str]) -> list[str]:
    """Union of the targeted ports' ``buffer`` lists, minus the targets, in port order."""
    buf = {b for t in targets for b in cfg.ports[t].buffer} - set(targets)
    return [p for p in cfg.ports if p in buf]


def first_intervention_week(cfg: Scenario) -> int | None:
    """The earliest intervention week of a scenario, or None."""
    return min((iv.week for iv in cfg.interventions), default=None)


def parse_targets(text: str, port_ids: Sequence[str]) -> list[str]:
    """``"antwerp,rotterdam"`` -> ids, checked against the scenario's ports (ConfigError naming a bad one)."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise ConfigError("no port named", field="--targets", given=text, allowed=", ".join(port_ids))
    for name in names:
        if name not in port_ids:
            hint = suggest(name, port_ids)
            raise ConfigError(
                f"unknown port{'; ' + hint if hint else ''}",
                field="--targets",
                given=name,
                allowed=", ".join(port_ids),
            )
    return [p for p in port_ids if p in names]


# --- the comparison ---------------------------------------------------------------------------------


def _derived(result: BatchResult) -> dict[str, np.ndarray]:
    """Per-replication metrics, plus totals over all routes (modelled ports and elsewhere)."""
    m = dict(result.metrics)
    m["total_seized_kg"] = m["seized_kg"] + m["elsewhere_seized_kg"]
    m["total_delivered_kg"] = m["delivered_kg"] + m["elsewhere_kg"] - m["elsewhere_seized_kg"]
    return m


def check_same_ports(configs: Sequence[Scenario], files: Sequence[str] | None = None) -> None:
    """Scenarios compared port by port need the same port ids (ConfigError otherwise)."""
    ref = set(configs[0].ports)
    for i, cfg in enumerate(configs[1:], start=1):
        if set(cfg.ports) != ref:
            extra = sorted(set(cfg.ports) - ref)
            missing = sorted(ref - set(cfg.ports))
            raise ConfigError(
                "scenarios with different port sets cannot be compared port by port "
                f"(added: {', '.join(extra) or 'none'}; missing: {', '.join(missing) or 'none'})",
                file=files[i] if files else cfg.name,
                field="ports",
                given=len(cfg.ports),
                allowed=f"the control's {len(ref)} ports (switch a port off with enabled: false instead)",
            )


def _scenario_key(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", name) or "scenario"
    key, k = base, 2
    while key in taken:
        key, k = f"{base}-{k}", k + 1
    taken.add(key)
    return key


def build_comparison(
    results: Sequence[BatchResult],
    *,
    targets: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The ``comparison.json`` content: summaries, paired differences, decomposition, ratios, verdicts.

    ``results[0]`` is the control; every result must come from the same seed,
    replications and horizon (common random numbers). ``targets`` overrides the
    targeted ports of every scenario (default: the ports its interventions set).
    """
    if len(results) < 2:
        raise ConfigError("a comparison needs a control and at least one scenario", given=len(results))
    control = results[0]
    check_same_ports([r.config for r in results])
    for r in results[1:]:
        if r.seed != control.seed or not np.array_equal(r.replications, control.replications):
            raise ConfigError(
                "scenarios must share seed and replications to pair them",
                field=r.config.name,
                given=f"seed {r.seed}, {r.n_replications} replications",
                allowed=f"seed {control.seed}, {control.n_replications} replications",
            )
        if r.weeks != control.weeks or r.eval_from != control.eval_from:
            raise ConfigError(
                "scenarios must share horizon and evaluation window",
                field=r.config.name,
                given=f"weeks {r.eval_from}-{r.weeks}",
                allowed=f"weeks {control.eval_from}-{control.weeks}",
            )
    ccfg = control.config
    order = list(control.ports.ids)
    names = {p: ccfg.ports[p].name for p in order}
    taken: set[str] = set()
    keys = [_scenario_key(r.config.name, taken) for r in results]
    boot = Bootstrap(control.n_replications)
    c_flows = Flows.from_result(control, order)
    c_metrics = _derived(control)

    comparisons = {}
    for key, res in zip(keys[1:], results[1:], strict=True):
        cfg = res.config
        tgt = list(targets) if targets else targeted_ports(cfg, ccfg)
        buf = buffer_ports(cfg, tgt)
        s_metrics = _derived(res)
        entry: dict[str, Any] = {
            "scenario": key,
            "control": keys[0],
            "targets": tgt,
            "targets_from": "--targets" if targets else "the scenario's interventions",
            "buffer": buf,
            "other": [p for p in order if p not in tgt and p not in buf],
            "differences": {k: paired_difference(s_metrics[k], c_metrics[k]) for k in s_metrics if k in c_metrics},
            "port_differences": {
                pid: {
                    k: paired_difference(res.port_values[k][:, res.ports.ids.index(pid)], v[:, i])
                    for k, v in control.port_values.items()
                    if k in res.port_values
                }
                for i, pid in enumerate(order)
            },
        }
        s_flows = Flows.from_result(res, order)
        tot = {k: s_metrics[k] - c_metrics[k] for k in ("total_delivered_kg", "total_seized_kg", "seized_kg")}
        entry["relative_change"] = {k: ratio_of_means(v, c_metrics[k], boot) for k, v in tot.items() if k in c_metrics}
        if tgt:
            a_idx = [order.index(p) for p in tgt]
            dec = decompose(c_flows, s_flows, a_idx, [order.index(p) for p in buf], boot)
            for comp, idx in dec.pop("port_index").items():
                dec["components"][comp]["ports"] = [order[i] for i in idx]
            entry["decomposition"] = dec
            entry["displacement_ratio"] = dec.pop("displacement_ratio")
            entry["wdq"] = dec.pop("wdq")
            a_c = c_flows.port_kg[:, a_idx].sum(axis=1)
            entry["relative_change"]["targeted_shipped_kg"] = ratio_of_means(
                s_flows.port_kg[:, a_idx].sum(axis=1) - a_c, a_c, boot
            )
            entry["wdq_observed"] = _wdq_observed(res, tgt, buf, boot)
        else:
            note = "no targeted ports: the scenario changes no port relative to the control; name them with --targets"
            entry["decomposition"] = None
            entry["displacement_ratio"] = {"value": None, "ci95": [None, None], "note": note}
            entry["wdq"] = {"value": None, "ci95": [None, None], "note": note}
            entry["wdq_observed"] = {"value": None, "ci95": [None, None], "note": note}
        entry["verdict"] = verdict(entry, names)
        comparisons[key] = entry

    mean_flow = sum(Flows.from_result(r, order).port_kg.mean(axis=0) for r in results)
    groups = flow_groups(mean_flow, order, names, [p for e in comparisons.values() for p in e["targets"]])
    manifest = control.manifest()
    return {
        "provenance": {k: manifest.get(k) for k in ("version", "git_commit", "numpy", "python", "created")},
        "control": keys[0],
        "scenarios": [
            {
                "key": k,
                "name": r.config.name,
                "description": r.config.description.strip(),
                "folder": k,
                "first_intervention_week": first_intervention_week(r.config),
                "interventions": [
                    {"week": iv.week, "label": iv.label, "set": {p: _readable(v) for p, v in iv.set.items()}}
                    for iv in r.config.interventions
                ],
            }
            for k, r in zip(keys, results, strict=True)
        ],
        "seed": control.seed,
        "replications": control.n_replications,
        "engine": control.engine,
        "weeks": control.weeks,
        "warmup_weeks": ccfg.warmup_weeks,
        "eval_weeks": [control.eval_from, control.weeks],
        "units": "kg over the evaluation window (t/yr = kg x 52 / eval weeks / 1000); shares and rates 0-1",
        "ci_method": {
            "differences": "mean of paired differences (replications paired by index, common random numbers), "
            "95% t-interval; ci95_unpaired: Welch t-interval, for reference",
            "ratios": f"ratio of mean paired differences; 95% percentile CI from {BOOTSTRAP_RESAMPLES} paired "
            f"bootstrap resamples (numpy PCG64 seed {BOOTSTRAP_SEED}); null when undefined or when the "
            "denominator's 95% CI includes 0",
        },
        "ports": [
            {
                "id": p,
                "name": ccfg.ports[p].name,
                "kind": ccfg.ports[p].kind,
                "country": ccfg.ports[p].country,
                "lon": ccfg.ports[p].lon,
                "lat": ccfg.ports[p].lat,
                "buffer": list(ccfg.ports[p].buffer),
            }
            for p in order
        ],
        "summaries": {k: r.summary() for k, r in zip(keys, results, strict=True)},
        "totals": {
            k: {m: reduce_values(v) for m, v in _derived(r).items() if m.startswith("total_")}
            for k, r in zip(keys, results, strict=True)
        },
        "comparisons": comparisons,
        "flow_bands": {
            "unit": "t/yr",
            "smoothing_weeks": SMOOTH_WEEKS,
            "band": "10-90% of replications" if control.n_replications > 1 else None,
            "groups": list(groups),
            "series": {
                k: flow_bands(r.series["shipped_kg"], groups, SMOOTH_WEEKS)
                for k, r in zip(keys, results, strict=True)
                if r.series is not None
            },
        },
    }


def _readable(value: Any) -> str:
    """An intervention value as a reader would write it: ``{scale: 3}`` -> ``x 3``."""
    if isinstance(value, dict) and set(value) == {"scale"}:
        return f"x {value['scale']:g}" if isinstance(value["scale"], int | float) else str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _wdq_observed(res: BatchResult, tgt: list[str], buf: list[str], boot: Bootstrap) -> dict[str, Any]:
    """wdq_observed for one treatment run: windows around its own first intervention week."""
    if res.series is None:
        return {"value": None, "ci95": [None, None], "note": "weekly series not kept"}
    cfg = res.config
    t0 = first_intervention_week(cfg)
    if t0 is None:
        t0 = res.eval_from
    t0 = max(t0, cfg.warmup_weeks)
    after = (t0, res.weeks)
    before = (max(cfg.warmup_weeks, t0 - (res.weeks - t0)), t0)
    area = control_area(cfg, tgt, buf)
    ids = list(res.ports.ids)
    out = observed_wdq(
        res.series["seized_kg"],
        [ids.index(p) for p in tgt],
        [ids.index(p) for p in buf],
        [ids.index(p) for p in area],
        before,
        after,
        boot,
    )
    out["control_area"] = area
    return out


# --- the command ---------------------------------------------------------------------------------


def add_compare_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``displacement-sim compare`` (DESIGN.md section 6)."""
    from .cli import _positive, _seed, out_folder

    p = sub.add_parser("compare", help="compare scenarios against a control, paired by replication")
    p.add_argument("control", type=Path, help="the control scenario (the counterfactual)")
    p.add_argument("scenarios", type=Path, nargs="+", help="one or more policy scenarios")
    p.add_argument(
        "--replications",
        type=_positive("--replications"),
        default=200,
        help="paired replications of every scenario (default 200)",
    )
    p.add_argument("--seed", type=_seed, default=None, help="root seed (default: the control's seed)")
    p.add_argument("--weeks", type=_positive("--weeks"), default=None, help="horizon for every scenario")
    p.add_argument("--targets", default=None, metavar="PORT,PORT", help="targeted ports (default: from interventions)")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a field in every scenario")
    p.add_argument(
        "--out", type=out_folder, default=None, help="output folder (default results/compare-<timestamp>-<id>)"
    )
    p.add_argument("--svg", action="store_true", help="also write the figures as SVG")
    p.set_defaults(func=cmd_compare)


def comparison_window(configs: Sequence[Scenario], files: Sequence[str] | None = None) -> int:
    """First week of the evaluation window: the earliest intervention of the non-control scenarios.

    Never inside the warm-up; the warm-up end when no scenario has interventions.
    """
    warmup = max(c.warmup_weeks for c in configs)
    weeks = [w for c in configs[1:] if (w := first_intervention_week(c)) is not None]
    start = max(min(weeks), warmup) if weeks else warmup
    if start >= configs[0].weeks:
        raise ConfigError(
            "the evaluation window is empty: the first intervention is at or after the horizon",
            file=files[1] if files else None,
            field="weeks",
            given=configs[0].weeks,
            allowed=f"--weeks greater than {start}",
        )
    return start


def cmd_compare(args: argparse.Namespace) -> int:
    from .cli import _overrides, check_out_dir, load_with_options, option_override, progress_bar
    from .params import required_load_slots
    from .report import write_comparison_folder
    from .results import default_out_dir
    from .runner import run_batch

    files = [str(args.control), *map(str, args.scenarios)]
    overrides = _overrides(args.set)
    option_override(overrides, "weeks", args.weeks, "--weeks")
    option_override(dict(overrides), "seed", args.seed, "--seed")  # only checked: the common seed is set below
    configs = [load_with_options(f, overrides, args.weeks) for f in files]
    check_same_ports(configs, files)
    for f, cfg in zip(files[1:], configs[1:], strict=True):
        if cfg.weeks != configs[0].weeks:
            raise ConfigError(
                "every scenario needs the control's horizon",
                file=f,
                field="weeks",
                given=cfg.weeks,
                allowed=f"{configs[0].weeks} (or set all with --weeks)",
            )
    targets = parse_targets(args.targets, list(configs[0].ports)) if args.targets is not None else None
    eval_from = comparison_window(configs, files)
    out = args.out
    check_out_dir(out)
    seed = configs[0].seed if args.seed is None else args.seed
    # every scenario runs on the common seed: their folders' resolved configs say so
    configs = [cfg if cfg.seed == seed else cfg.model_copy(update={"seed": seed}) for cfg in configs]

    # one shipment-block width for all, so every scenario reads the same random numbers
    l_max = max(required_load_slots(cfg) for cfg in configs)
    results = []
    with progress_bar(args.replications * len(configs), "compare") as bar:
        for cfg in configs:
            res = run_batch(
                cfg,
                args.replications,
                seed=seed,
                eval_from=eval_from,
                keep_series=True,
                progress=bar.update,
                l_max=l_max,
            )
            res.series = {k: res.series[k] for k in SERIES_NEEDED}  # free the rest before the next run
            results.append(res)
    comparison = build_comparison(results, targets=targets)
    out = out or default_out_dir("compare")
    write_comparison_folder(out, results, comparison, svg=args.svg)
    weeks_eval = comparison["eval_weeks"][1] - comparison["eval_weeks"][0]
    print(
        f"{len(configs) - 1} scenario(s) against {comparison['control']}: {args.replications} paired replications, "
        f"seed {seed}, evaluated over weeks {eval_from}-{configs[0].weeks} ({weeks_eval} weeks)"
    )
    for key, entry in comparison["comparisons"].items():
        print(f"\n{key}: {entry['verdict']}")
    print(f"\nreport: {out / 'report.html'}")
    return 0
