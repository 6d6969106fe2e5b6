"""Stylized facts of port displacement, as tests (DESIGN.md sections 3-4, port_facts.md).

Every comparison is paired: scenarios run with the same seed share their random
draws (common random numbers, DESIGN.md section 5), so the difference of two
runs' replication r is precise. Each claim is asserted on the mean paired
difference AND on its 95% t-interval excluding 0, never on a single run.

The default versions use 20-60 replications; the ``slow`` versions repeat the
claims whose effect is small against the noise with 200-300 replications.

The order-of-magnitude check compares the baseline with the public figures of
``port_facts.md`` (2017-2022): Antwerp 40-110 t and Rotterdam 20-70 t seized a
year, 5-25% of the cocaine intercepted, almost nothing at Zeebrugge and Ostend.
Those bounds are the observations; they are not to be widened to fit the model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from displacement_sim import load_scenario, run_batch

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
BASELINE = SCENARIOS / "baseline.yaml"
HUB_HARDENING = SCENARIOS / "hub_hardening.yaml"
SEED = 4242
HARDENING_WEEK = 104  # hub_hardening.yaml's intervention week: the comparison window starts here

# Observed order of magnitude, port_facts.md (t/yr seized, 2017-2022; share intercepted).
OBSERVED_T_PER_YEAR = {"antwerp": (40.0, 110.0), "rotterdam": (20.0, 70.0)}
OBSERVED_NEAR_ZERO = {"zeebrugge": 2.0, "ostend": 2.0}  # 0 t in 2022 (demorgen.be): < 2 t/yr each
OBSERVED_SEIZURE_RATE = (0.05, 0.25)  # tijd.be, tvoost: ~10%, 10-20%, 5-20%


# --- helpers --------------------------------------------------------------------------------------


def ci95(values: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval over replications (the finite values)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    assert x.size >= 2, "need at least two defined replications for an interval"
    mean = float(x.mean())
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def assert_negative(diff: np.ndarray, what: str) -> None:
    mean, lo, hi = ci95(diff)
    assert mean < 0 and hi < 0, f"{what}: expected a fall; paired mean {mean:.6g}, 95% CI [{lo:.6g}, {hi:.6g}]"


def assert_positive(diff: np.ndarray, what: str) -> None:
    mean, lo, hi = ci95(diff)
    assert mean > 0 and lo > 0, f"{what}: expected a rise; paired mean {mean:.6g}, 95% CI [{lo:.6g}, {hi:.6g}]"


def t_per_year(kg: np.ndarray, result) -> np.ndarray:
    """kg over the evaluation window -> tonnes per year."""
    return np.asarray(kg) / 1000.0 * 52.0 / (result.weeks - result.eval_from)


def total_delivered(result) -> np.ndarray:
    """Delivered at the modelled ports plus delivered elsewhere, kg per replication."""
    m = result.metrics
    return m["delivered_kg"] + m["elsewhere_kg"] - m["elsewhere_seized_kg"]


def targeted_ports(config) -> list[str]:
    """Ports whose inspection rate the scenario's interventions change (``ports.<id>.inspection_rate``)."""
    out = []
    for iv in config.interventions:
        for path in iv.set:
            parts = path.split(".")
            if len(parts) == 3 and parts[0] == "ports" and parts[2] == "inspection_rate" and parts[1] not in out:
                out.append(parts[1])
    return out


def port_columns(result, ids: list[str]) -> list[int]:
    return [result.ports.ids.index(pid) for pid in ids]


# --- no enforcement, no seizures -------------------------------------------------------------------

# No inspection and no targeting: no port inspects, no agency has a budget, no transit checks, nothing is
# caught elsewhere, and intelligence does not lead to any interception (intel-led targeting, ``gamma I``,
# and partners' tips detect loads even where the inspection rate is 0).
NO_ENFORCEMENT = {
    "ports[kind=hub].inspection_rate": 0.0,
    "ports[kind=regional].inspection_rate": 0.0,
    "ports[kind=inland].inspection_rate": 0.0,
    "ports[kind=inland].transit_check": 0.0,
    "enforcement.BE.budget": 0.0,
    "enforcement.NL.budget": 0.0,
    "elsewhere.detection": 0.0,
    "intel.gamma": 0.0,
    "intel.tip_gamma": 0.0,
}


def test_no_inspection_and_no_targeting_seizes_nothing():
    cfg = load_scenario(BASELINE, overrides={"weeks": 104, **NO_ENFORCEMENT})
    assert all(p.inspection_rate == 0.0 and p.transit_check == 0.0 for p in cfg.ports.values())
    res = run_batch(cfg, replications=10, seed=SEED)
    m = res.metrics
    assert np.all(m["seized_kg"] == 0.0)
    assert np.all(m["n_seizures"] == 0)
    assert np.all(m["elsewhere_seized_kg"] == 0.0)
    assert np.all(res.port_values["seized_kg"] == 0.0)
    assert np.all(res.port_values["inspection_rate"] == 0.0)
    assert np.all(m["shipped_kg"] > 0.0)
    assert np.all(m["elsewhere_kg"] > 0.0)


# --- hub hardening: displacement, partial ----------------------------------------------------------


def _hardening_pair(replications: int):
    base = run_batch(load_scenario(BASELINE), replications, seed=SEED, eval_from=HARDENING_WEEK)
    hard_cfg = load_scenario(HUB_HARDENING)
    assert {iv.week for iv in hard_cfg.interventions} == {HARDENING_WEEK}
    hard = run_batch(hard_cfg, replications, seed=SEED, eval_from=HARDENING_WEEK)
    return base, hard, targeted_ports(hard_cfg)


@pytest.fixture(scope="module")
def hardening():
    return _hardening_pair(40)


def _check_shares(base, hard) -> None:
    assert_negative(hard.metrics["hub_share"] - base.metrics["hub_share"], "hub share")
    assert_positive(hard.metrics["regional_share"] - base.metrics["regional_share"], "regional share")
    assert_positive(hard.metrics["foreign_share"] - base.metrics["foreign_share"], "foreign share")


def _check_partial_displacement(base, hard, targeted: list[str]) -> None:
    assert sorted(targeted) == ["antwerp", "rotterdam"]
    cols = port_columns(base, targeted)
    hub_shipped = {name: r.port_values["shipped_kg"][:, cols].sum(axis=1) for name, r in (("b", base), ("h", hard))}
    hubs_drop = hub_shipped["h"] - hub_shipped["b"]
    delivered_change = total_delivered(hard) - total_delivered(base)
    assert_negative(hubs_drop, "shipped kg at the hardened hubs")
    assert_negative(delivered_change, "total delivered kg (ports + elsewhere)")
    # partial: the total falls by less than the hubs' shipments fall, i.e. delivered_change > hubs_drop
    assert_positive(delivered_change - hubs_drop, "total delivered change minus hub shipped change")


def test_hub_hardening_shifts_shares_from_hubs_to_regional_and_foreign(hardening):
    base, hard, _ = hardening
    _check_shares(base, hard)


def test_hub_hardening_displacement_is_partial(hardening):
    _check_partial_displacement(*hardening)


@pytest.mark.slow
def test_hub_hardening_facts_many_replications():
    base, hard, targeted = _hardening_pair(200)
    _check_shares(base, hard)
    _check_partial_displacement(base, hard, targeted)


# --- allocation rules: reactive chases seizures, static does not move --------------------------------

REVIEW = 4


def _allocation_run(rule: str):
    """NL spends 80 extra inspections a week over all its ports under ``rule``; BE as in the baseline."""
    overrides = {
        "weeks": 104,
        "enforcement.NL.rule": rule,
        "enforcement.NL.kinds": ["hub", "regional", "inland"],
        "enforcement.NL.review_weeks": REVIEW,
        "enforcement.NL.budget": 80.0,
        "enforcement.NL.i_max": 1.0,
    }
    cfg = load_scenario(BASELINE, overrides=overrides)
    res = run_batch(cfg, replications=20, seed=SEED, keep_series=True)
    nl = [i for i, pid in enumerate(res.ports.ids) if cfg.ports[pid].country == "NL"]
    at_risk = np.array([cfg.ports[res.ports.ids[i]].at_risk_per_week for i in nl])
    base = np.array([cfg.ports[res.ports.ids[i]].inspection_rate for i in nl])
    rates = res.series["inspection_rate"][:, :, nl]  # (R, weeks, P_NL)
    seized = res.series["seized_loads"][:, :, nl]  # (R, weeks, P_NL); the last column (elsewhere) is not NL's
    extra = (rates - base) * at_risk  # extra inspections per week (containers)
    return rates, seized, extra


def test_reactive_allocation_chases_last_periods_seizures():
    rates, seized, extra = _allocation_run("reactive")
    weeks = rates.shape[1]
    # rates change only at review weeks
    moves = np.abs(np.diff(rates, axis=1))  # moves[:, w - 1] is the change from week w-1 to week w
    off_review = [w - 1 for w in range(1, weeks) if w % REVIEW]
    assert np.all(moves[:, off_review] == 0.0)
    reviews = np.arange(2 * REVIEW, weeks, REVIEW)
    recent = np.stack([seized[:, t - REVIEW : t].sum(axis=1) for t in reviews], axis=1)  # (R, K, P)
    at_review = extra[:, reviews]  # (R, K, P)
    # change from one review to the next: ports whose seizures rose get more extra inspections
    d_seized = np.diff(recent, axis=1)
    d_extra = np.diff(at_review, axis=1)
    assert np.abs(d_extra).max() > 1.0  # the allocation does move
    corr = np.array([np.corrcoef(d_seized[r].ravel(), d_extra[r].ravel())[0, 1] for r in range(len(rates))])
    mean, lo, _ = ci95(corr)
    assert mean > 0.3 and lo > 0, f"correlation(change in seizures, change in extra): {mean:.3f}, CI low {lo:.3f}"


def test_static_allocation_does_not_move():
    rates, seized, extra = _allocation_run("static")
    assert seized.sum() > 0  # seizures happen, yet the rates stay put
    assert extra[:, 0].sum(axis=-1).min() > 79.0  # the budget is spent (80 per week, under the caps)
    assert np.all(rates == rates[:, :1])


# --- load splitting ------------------------------------------------------------------------------

ALL_PORTS_X3 = {"ports[enabled=true].inspection_rate": {"scale": 3}}


def _mean_load_all_alternatives(result) -> np.ndarray:
    """kg per load over every load shipped in the window (modelled ports and elsewhere), per replication."""
    w = slice(result.eval_from, result.weeks)
    kg = result.series["shipped_kg"][:, w, :].sum(axis=(1, 2))
    loads = result.series["loads"][:, w, :].sum(axis=(1, 2))
    return kg / loads


# Investigations off: dismantled networks are replaced by successors with newly drawn load sizes at
# different times in the two runs of a pair, which breaks the pairing of the mean load at few replications.
# The mechanism under test (load splitting) does not depend on them; the slow test keeps them on.
NO_CASES = {"enforcement.BE.case_units": 0, "enforcement.NL.case_units": 0}


def _splitting_runs(replications: int, overrides: dict) -> dict:
    """Paired runs (every port's inspection as given, and x3) with ``zeta`` as given and with ``zeta = 0``."""
    runs = {}
    for label, extra in (("zeta", {}), ("zeta0", {"behaviour.zeta": 0.0})):
        base_cfg = load_scenario(BASELINE, overrides={**overrides, **extra})
        up_cfg = load_scenario(BASELINE, overrides={**overrides, **extra, **ALL_PORTS_X3})
        runs[label] = tuple(run_batch(c, replications, SEED, keep_series=True) for c in (base_cfg, up_cfg))
    return runs


def _effects(runs: dict, statistic) -> dict[str, np.ndarray]:
    """Relative paired change of ``statistic`` when every port triples its inspection, per replication."""
    return {label: statistic(up) / statistic(base) - 1.0 for label, (base, up) in runs.items()}


def _check_splitting(effects: dict[str, np.ndarray]) -> None:
    assert_negative(effects["zeta"], "relative change of the mean load, inspection x3")
    # The fall comes from the splitting rule: without it the mean load falls significantly less (paired
    # difference of the two effects, same seeds) and by at most two thirds as much. It can still fall a
    # little with zeta = 0, through composition: which networks ship, are dismantled and succeeded.
    assert_negative(effects["zeta"] - effects["zeta0"], "splitting effect minus the no-splitting effect")
    with_split, without = float(np.mean(effects["zeta"])), float(np.mean(effects["zeta0"]))
    assert without > 2.0 / 3.0 * with_split, f"mean load change: {with_split:.4f} with splitting, {without:.4f} without"


def test_loads_get_smaller_as_enforcement_rises():
    runs = _splitting_runs(40, {"weeks": 156, **NO_CASES})
    _check_splitting(_effects(runs, _mean_load_all_alternatives))


@pytest.mark.slow
def test_loads_get_smaller_as_enforcement_rises_full_model():
    """The full baseline (investigations and succession on), five years. The ``mean_load_kg`` metric
    (modelled ports only) is dominated by a few tonne-size loads and by which networks use the modelled
    ports, so it needs many replications."""
    runs = _splitting_runs(300, {})
    _check_splitting(_effects(runs, _mean_load_all_alternatives))
    _check_splitting(_effects(runs, lambda r: r.metrics["mean_load_kg"]))


# --- order of magnitude: the baseline against the public figures ------------------------------------


def _calibration_run(replications: int):
    return run_batch(load_scenario(BASELINE), replications, seed=SEED)


@pytest.fixture(scope="module")
def calibration():
    return _calibration_run(60)


def _check_port_t_per_year(res, port: str) -> None:
    i = res.ports.ids.index(port)
    seized = t_per_year(res.port_values["seized_kg"][:, i], res)
    mean, lo, hi = ci95(seized)
    low, high = OBSERVED_T_PER_YEAR[port]
    assert low <= mean <= high, (
        f"{port}: {mean:.1f} t/yr seized (95% CI {lo:.1f}-{hi:.1f}), observed {low:g}-{high:g} t/yr"
    )


def _check_near_zero(res, port: str) -> None:
    i = res.ports.ids.index(port)
    mean, lo, hi = ci95(t_per_year(res.port_values["seized_kg"][:, i], res))
    assert mean < OBSERVED_NEAR_ZERO[port], f"{port}: {mean:.2f} t/yr (95% CI {lo:.2f}-{hi:.2f})"


def _check_seizure_rate(res) -> None:
    mean, lo, hi = ci95(res.metrics["seizure_rate"])
    low, high = OBSERVED_SEIZURE_RATE
    assert low <= mean <= high, f"seizure rate {mean:.3f} (95% CI {lo:.3f}-{hi:.3f}), observed {low}-{high}"


@pytest.mark.parametrize("port", sorted(OBSERVED_T_PER_YEAR))
def test_baseline_hub_seizures_in_observed_range(calibration, port):
    _check_port_t_per_year(calibration, port)


@pytest.mark.parametrize("port", sorted(OBSERVED_NEAR_ZERO))
def test_baseline_small_belgian_ports_seize_almost_nothing(calibration, port):
    _check_near_zero(calibration, port)


def test_baseline_share_seized_in_observed_range(calibration):
    _check_seizure_rate(calibration)


@pytest.mark.slow
def test_baseline_order_of_magnitude_many_replications():
    res = _calibration_run(200)
    for port in OBSERVED_T_PER_YEAR:
        _check_port_t_per_year(res, port)
    for port in OBSERVED_NEAR_ZERO:
        _check_near_zero(res, port)
    _check_seizure_rate(res)


# --- inputs: supply and interdiction at origin ----------------------------------------------------


def _input_run(inputs: dict):
    overrides = {"weeks": 104, **{f"inputs.{k}": v for k, v in inputs.items()}}
    return run_batch(load_scenario(BASELINE, overrides=overrides), replications=20, seed=SEED)


@pytest.fixture(scope="module")
def input_control():
    return _input_run({})


def test_more_supply_ships_more(input_control):
    more = _input_run({"supply_index": {0: 1.5}})
    assert_positive(more.metrics["shipped_kg"] - input_control.metrics["shipped_kg"], "shipped kg, supply x1.5")
    assert_positive(more.metrics["capacity_kg"] - input_control.metrics["capacity_kg"], "capacity kg, supply x1.5")


def test_origin_interdiction_halves_capacity(input_control):
    half = _input_run({"origin_interdiction": {0: 0.5}})
    ratio = half.metrics["capacity_kg"] / input_control.metrics["capacity_kg"]
    mean, lo, hi = ci95(ratio)
    assert lo >= 0.45 and hi <= 0.55, f"capacity ratio {mean:.4f} (95% CI {lo:.4f}-{hi:.4f}), expected about 0.5"
    assert_negative(half.metrics["shipped_kg"] - input_control.metrics["shipped_kg"], "shipped kg, interdiction 0.5")
