"""Invariants of the vectorized engine on random valid scenarios (hypothesis).

Claims (DESIGN.md sections 3-4): mass balance per port and week (seized never
more than shipped, in loads and kg), loads are non-negative integers, average
load sizes lie inside the drawn load-size range, no NaN or infinity anywhere,
inspection rates in [0, 1] and never below a port's base rate, ports of
countries without an agency keep their base rate, disabled ports get nothing,
shares in [0, 1] that add up, and without any inspection nothing is seized.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from displacement_sim import kernel as kx
from displacement_sim import load_scenario, run_batch
from displacement_sim import mechanics as mx
from displacement_sim.params import build_plan
from displacement_sim.schema import Scenario
from strategies import scenarios, shortened, without_enforcement

# Shrinking a whole-scenario example takes minutes; the unshrunk failing example is printed all the same.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)
SETTINGS = settings(max_examples=30, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow])


def walk_numbers(obj: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every leaf of a nested dict/list with its path."""
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in walk_numbers(v, f"{path}.{k}")]
    if isinstance(obj, list | tuple):
        return [x for i, v in enumerate(obj) for x in walk_numbers(v, f"{path}[{i}]")]
    return [(path, obj)]


def check_run(cfg: Scenario, replications: int, seed: int) -> None:
    """Run the vectorized engine and assert every invariant of the module docstring."""
    res = run_batch(cfg, replications, seed=seed, keep_series=True)
    s = res.series
    plan = build_plan(cfg)
    R, W, P = replications, cfg.weeks, len(cfg.ports)
    assert s["loads"].shape == (R, W, P + 1)
    assert s["inspection_rate"].shape == (R, W, P)

    for name, x in s.items():
        assert np.all(np.isfinite(x)), f"non-finite values in series {name}"

    loads, seized_loads = s["loads"], s["seized_loads"]
    shipped, seized, delivered = s["shipped_kg"], s["seized_kg"], s["delivered_kg"]
    # loads are non-negative integer counts, seizures at most the loads
    assert np.all(loads >= 0) and np.all(loads == np.round(loads))
    assert np.all(seized_loads >= 0) and np.all(seized_loads == np.round(seized_loads))
    assert np.all(seized_loads <= loads)
    # kg: seized never more than shipped (independent of delivered = shipped - seized)
    assert np.all(seized >= 0) and np.all(seized <= shipped)
    np.testing.assert_allclose(shipped, seized + delivered, rtol=1e-12, atol=1e-9)
    assert np.all(delivered >= 0)
    # kg come in loads of a positive size inside the drawn range: m_eff in [split_floor low, high]
    floor = min(p.split_floor for p in plan.params)
    lo, hi = floor * cfg.networks.load_kg.low, cfg.networks.load_kg.high
    assert np.all((shipped > 0) == (loads > 0))
    assert np.all((seized > 0) == (seized_loads > 0))
    for kg, n in ((shipped, loads), (seized, seized_loads)):
        mean_kg = kg[n > 0] / n[n > 0]
        assert np.all(mean_kg >= lo * (1 - 1e-12)) and np.all(mean_kg <= hi * (1 + 1e-12))

    # capacity: supply x the active networks' capacity; held back = capacity not shipped, so they add up
    assert np.all(s["capacity_kg"] >= 0)
    assert np.all(s["capacity_kg"][:, plan.supply == 0] == 0)
    np.testing.assert_allclose(s["held_kg"] + shipped.sum(axis=-1), s["capacity_kg"], rtol=1e-9, atol=1e-6)
    active = s["active_networks"]
    assert np.all((active >= 0) & (active <= cfg.networks.n_slots) & (active == np.round(active)))

    # cooperation records: intel in [0, 1]; events are non-negative counts; open cases within capacity
    assert np.all((s["intel_mean"] >= 0) & (s["intel_mean"] <= 1 + 1e-12))
    counts = ("cases_opened", "case_weeks", "unit_weeks", "compromised_cases", "dismantled", "dismantled_joint")
    counts += ("duplicated_case_weeks", "successors", "entrants", "weeks_to_dismantle")
    for name in counts:
        x = s[name]
        assert np.all((x >= 0) & (x == np.round(x))), name
    units = np.array([a.case_units for a in cfg.enforcement.agencies.values()])
    assert np.all(s["unit_weeks"] <= units)
    assert np.all(s["case_weeks"] <= s["unit_weeks"])  # a joint case is one case using a unit in each country
    assert np.all(s["cross_border_seized_kg"].sum(axis=-1) <= seized[..., :-1].sum(axis=-1) * (1 + 1e-12) + 1e-9)
    # a network leaves only when dismantled and a slot is refilled only by a successor or an entrant
    before = np.concatenate([np.full((R, 1), float(cfg.networks.n_slots)), active[:, :-1]], axis=1)
    joined = s["successors"] + s["entrants"]
    np.testing.assert_array_equal(active, before - s["dismantled"].sum(axis=-1) + joined)

    # inspection rates: in [0, 1], never below the base rate of the phase in force, at most max(base, i_max)
    rates = s["inspection_rate"]
    assert np.all((rates >= 0) & (rates <= 1))
    agency_countries = list(cfg.enforcement.agencies)
    for week in range(W):
        p = plan.params[plan.phase_at(week)]
        assert np.all(rates[:, week] >= p.base_rate - 1e-12)
        cap = p.base_rate.copy()
        budget = 0.0
        for unit in p.units:
            cap[unit.ports] = np.maximum(cap[unit.ports], unit.i_max)
            budget += unit.budget if len(unit.ports) else 0.0
        assert np.all(rates[:, week] <= cap + 1e-12)
        # extra inspections in force never exceed the budgets
        placed = ((rates[:, week] - p.base_rate) * p.at_risk).sum(axis=-1)
        assert np.all(placed <= budget * (1 + 1e-9) + 1e-9)
        # ports of countries without an agency keep their base rate
        others = ~np.isin(p.country, agency_countries)
        np.testing.assert_array_equal(
            rates[:, week][:, others], np.broadcast_to(p.base_rate[others], (R, others.sum()))
        )

    # disabled ports get no loads at all
    disabled = np.array([not port.enabled for port in cfg.ports.values()])
    assert np.all(loads[..., :-1][..., disabled] == 0)

    # metrics: shares in [0, 1], kind shares add to 1 when there is flow, port shares add to 1
    m = res.metrics
    flow = m["shipped_kg"] > 0
    for name in ("hub_share", "regional_share", "inland_share", "foreign_share", "seizure_rate", "flow_hhi"):
        x = m[name][flow]
        assert np.all((x >= 0) & (x <= 1 + 1e-12)), name
        assert np.all(np.isnan(m[name][~flow])), f"{name} is defined without flow"
    kinds = m["hub_share"] + m["regional_share"] + m["inland_share"]
    np.testing.assert_allclose(kinds[flow], 1.0, rtol=1e-12)
    share = res.port_values["share"]
    assert np.all((share[flow] >= 0) & (share[flow] <= 1 + 1e-12))
    np.testing.assert_allclose(share[flow].sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(share[flow][:, disabled] == 0)
    assert np.all(m["flow_entropy"][flow] >= -1e-12)
    assert np.all(m["flow_entropy"][flow] <= math.log(max((~disabled).sum(), 1)) + 1e-9)

    # the summary follows the JSON convention: finite numbers or None, never NaN or infinity
    for path, value in walk_numbers(res.summary()):
        if isinstance(value, float):
            assert math.isfinite(value), f"summary{path} = {value}"


@SETTINGS
@given(data=scenarios(), replications=st.integers(2, 4), seed=st.integers(0, 2**31 - 1))
def test_invariants_on_random_scenarios(data: dict[str, Any], replications: int, seed: int) -> None:
    cfg = load_scenario(data)
    check_run(cfg, replications, seed)


@settings(max_examples=10, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow])
@given(data=scenarios(), seed=st.integers(0, 2**31 - 1))
def test_no_inspection_means_no_seizures(data: dict[str, Any], seed: int) -> None:
    """All rates 0, budgets 0, transit checks 0, elsewhere detection 0: nothing is seized anywhere."""
    cfg = load_scenario(without_enforcement(data))
    res = run_batch(cfg, 2, seed=seed, keep_series=True)
    assert np.all(res.series["seized_loads"] == 0)
    assert np.all(res.series["seized_kg"] == 0)
    assert np.all(res.series["inspection_rate"] == 0)
    np.testing.assert_array_equal(res.series["delivered_kg"], res.series["shipped_kg"])


def test_no_inspection_still_ships() -> None:
    """The zero-seizure claim above is not vacuous: the same scenario ships loads."""
    data = without_enforcement({"name": "x", "weeks": 30, "networks": {"n_slots": 10}, "warmup_weeks": 5})
    res = run_batch(load_scenario(data), 2, seed=3, keep_series=True)
    assert res.series["loads"].sum() > 100
    assert np.all(res.series["seized_loads"] == 0)


def test_invariants_on_repository_scenarios(scenario_dir) -> None:
    """The shipped scenarios, shortened to hold their events, pass the same checks."""
    for path in sorted(scenario_dir.glob("*.yaml")):
        check_run(shortened(path, n_slots=8), 2, seed=7)


@settings(max_examples=20, deadline=None, phases=PHASES, suppress_health_check=[HealthCheck.too_slow])
@given(data=scenarios(), n_slots=st.integers(1, 7), seed=st.integers(0, 2**31 - 1))
def test_decide_probabilities_and_detection_on_random_states(data: dict[str, Any], n_slots: int, seed: int) -> None:
    """``kernel.decide``: probabilities in [0, 1] summing to 1; detection in [0, 1] for any state."""
    rng = np.random.default_rng(seed)
    plan = build_plan(load_scenario(data))
    for p in plan.params:
        shape = (3, n_slots)
        lam = rng.uniform(0.5, 10.0, shape)
        m = rng.uniform(5.0, 5000.0, shape)
        rate = rng.uniform(0.05, 4.0, shape)
        seizures = rng.exponential(5.0, (*shape, p.n_ports)) * (rng.random((*shape, p.n_ports)) < 0.5)
        exposure = rng.exponential(50.0, (*shape, p.n_ports))
        h = rng.random((*shape, p.n_ports))
        supply = float(rng.uniform(0.0, 3.0))
        alive = rng.random(shape) < 0.8
        dec = kx.decide(p, plan.a0, supply, lam, m, rate, seizures, exposure, h, alive)
        assert np.all(np.isfinite(dec.probs))
        assert np.all((dec.probs >= 0) & (dec.probs <= 1))
        np.testing.assert_allclose(dec.probs.sum(axis=-1), 1.0, rtol=1e-12)
        assert np.all(dec.probs[..., :-2][..., ~p.enabled] == 0)
        assert np.all((dec.m_eff >= p.split_floor * m * (1 - 1e-12)) & (dec.m_eff <= m * (1 + 1e-12)))
        assert np.all(dec.mean_loads >= 0)
        assert np.all(dec.mean_loads[~alive] == 0)
        assert np.all(np.diff(dec.cum_ship, axis=-1) >= -1e-15)
        # the conditional distribution given shipping ends at 1, up to the rounding of p_ship = 1 - p_hold
        p_ship = dec.probs[..., :-1].sum(axis=-1)
        tol = np.maximum(1e-12, 4e-16 / np.maximum(p_ship, 1e-300))
        ok = (p_ship > 0) & (tol < 0.5)
        assert np.all(np.abs(dec.cum_ship[..., -1] - 1.0)[ok] <= tol[ok])
        rates = rng.random((3, p.n_ports))
        i_q, t = p.detection_parts(rates)
        det = mx.detection_probability(i_q[:, None, :], p.kappa, h, t[:, None, :], rng.random((*shape, p.n_ports)))
        assert np.all((det >= 0) & (det <= 1))


# --- interventions on groups; a known defect reduced to a minimal reproduction -----------------------


def test_group_selector_intervention() -> None:
    """``ports[kind=hub].inspection_rate: {scale: 3}`` in an intervention equals the port-by-port form."""
    base = {"name": "x", "weeks": 30, "warmup_weeks": 5, "networks": {"n_slots": 5}, "enforcement": {"BE": {}}}
    by_port = {
        **base,
        "interventions": [
            {
                "week": 10,
                "set": {f"ports.{pid}.inspection_rate": {"scale": 3} for pid in ("antwerp", "rotterdam", "hamburg")},
            }
        ],
    }
    group = {**base, "interventions": [{"week": 10, "set": {"ports[kind=hub].inspection_rate": {"scale": 3}}}]}
    a = build_plan(load_scenario(by_port))
    b = build_plan(load_scenario(group))
    assert {p for p, port in load_scenario(base).ports.items() if port.kind == "hub"} == {
        "antwerp",
        "rotterdam",
        "hamburg",
    }
    np.testing.assert_array_equal(a.params[1].base_rate, b.params[1].base_rate)
    np.testing.assert_array_equal(
        b.params[1].base_rate[b.params[1].kind == "hub"], 3 * b.params[0].base_rate[b.params[0].kind == "hub"]
    )


def test_rate_intervention_without_agencies() -> None:
    """A scaled base rate is in force from the intervention week even when no agency reallocates."""
    data = {
        "name": "x",
        "weeks": 20,
        "warmup_weeks": 5,
        "networks": {"n_slots": 5},
        "interventions": [{"week": 10, "set": {"ports.antwerp.inspection_rate": {"scale": 3}}}],
    }
    cfg = load_scenario(data)
    assert not cfg.enforcement.agencies
    antwerp = list(cfg.ports).index("antwerp")
    rates = run_batch(cfg, 1, seed=1, keep_series=True).series["inspection_rate"][0, :, antwerp]
    base = cfg.ports["antwerp"].inspection_rate
    np.testing.assert_allclose(rates[:10], base)
    np.testing.assert_allclose(rates[10:], 3 * base)


def test_adding_a_pool_never_removes_inspections() -> None:
    """An agency's inspections stay in force when a joint pool with a lower cap adds budget on the same ports."""
    agency = {"budget": 100, "kinds": ["regional"], "i_max": 0.5, "rule": "static"}
    base = {"name": "x", "weeks": 6, "warmup_weeks": 1, "networks": {"n_slots": 3}}
    alone = {**base, "enforcement": {"BE": agency, "NL": {"budget": 0}}}
    pooled = {
        **base,
        "enforcement": {
            "BE": agency,
            "NL": {"budget": 0},
            "joint_strategy": {"members": ["BE", "NL"], "budget": 10, "kinds": ["regional"], "i_max": 0.05},
        },
    }

    def placed(data: dict[str, Any]) -> float:
        cfg = load_scenario(data)
        p = build_plan(cfg).params[0]
        rates = run_batch(cfg, 1, seed=1, keep_series=True).series["inspection_rate"][0, 0]
        return float(((rates - p.base_rate) * p.at_risk).sum())

    assert placed(alone) > 20  # BE fills its regional ports up to i_max = 0.5 (about 27 inspections a week)
    assert placed(pooled) >= placed(alone) - 1e-9
