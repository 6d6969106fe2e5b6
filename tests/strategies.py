"""Hypothesis strategies: random *valid* scenarios as dicts (merged over the default port data).

Used by ``test_invariants.py`` and ``test_equivalence.py``. Every value is drawn
inside its schema bounds (``displacement_sim.schema``), and interventions are
built so that a scaled inspection rate never leaves [0, 1], so every drawn
scenario loads without error (``load_scenario`` is still called, and a failure
there is a test failure, not a filtered example).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from displacement_sim import Scenario, load_scenario
from displacement_sim.config import default_ports

PORTS: dict[str, dict[str, Any]] = default_ports()
PORT_IDS = list(PORTS)
KINDS = ("hub", "regional", "inland")
RULES = ("static", "reactive", "threat")
AGENCIES = ("BE", "NL")

# interventions scale a group's rates by at most this, at most this many times: base rates <= 0.1 stay <= 1
MAX_SCALE = 3.0
MAX_SCALINGS = 2
MAX_BASE_RATE = 1.0 / MAX_SCALE**MAX_SCALINGS


def _unit(lo: float = 0.0, hi: float = 1.0) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def port_overrides(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    """Per-port changes: enabled flags (at least one port on), rates, q, c, a, transit checks."""
    enabled = draw(st.lists(st.booleans(), min_size=len(PORT_IDS), max_size=len(PORT_IDS)))
    if not any(enabled):
        enabled[draw(st.integers(0, len(PORT_IDS) - 1))] = True
    out: dict[str, dict[str, Any]] = {}
    for pid, on in zip(PORT_IDS, enabled, strict=True):
        port: dict[str, Any] = {"enabled": on}
        if draw(st.booleans()):
            port["inspection_rate"] = draw(_unit(0.0, MAX_BASE_RATE))
            port["q"] = draw(st.one_of(_unit(0.0, 3.0), _unit(3.0, 15.0)))  # large q saturates i q at 1
            port["c"] = draw(_unit())
            port["a"] = draw(_unit(0.0, 8.0))
        if PORTS[pid]["kind"] == "inland" and draw(st.booleans()):
            port["transit_check"] = draw(_unit())
        out[pid] = port
    return out


@st.composite
def agency(draw: st.DrawFn, code: str) -> dict[str, Any]:
    rule = draw(st.sampled_from(RULES))
    out: dict[str, Any] = {
        "budget": draw(st.one_of(st.just(0.0), _unit(0.0, 600.0))),
        "rule": rule,
        "review_weeks": draw(st.integers(1, 13)),
        "i_max": draw(_unit(0.02, 1.0)),
        "s0": draw(_unit(0.01, 5.0)),
        "rho": draw(_unit(0.05, 1.0)),
        "floor": draw(_unit(0.001, 1.0)),
        "kinds": draw(st.lists(st.sampled_from(KINDS), unique=True, max_size=3)),
    }
    if rule == "static" and draw(st.booleans()):
        own = [p for p in PORT_IDS if PORTS[p]["country"] == code]
        chosen = draw(st.lists(st.sampled_from(own), unique=True, min_size=1))
        out["weights"] = {p: draw(_unit(0.0, 10.0)) for p in chosen}
    if draw(st.booleans()):  # investigations fast enough to end, dismantle and refill within a short run
        out["case_units"] = draw(st.integers(0, 6))
        out["open_rate"] = draw(_unit(0.0, 5.0))
        out["dur_weeks"] = draw(_unit(1.0, 15.0))
        out["sigma"] = draw(_unit())
    return out


@st.composite
def joint_strategy(draw: st.DrawFn) -> dict[str, Any]:
    """Members BE and NL; a pooled budget or none."""
    return {
        "members": list(AGENCIES),
        "anticipation": draw(_unit()),
        "budget": draw(st.one_of(st.just(0.0), _unit(0.0, 600.0))),
        "kinds": draw(st.lists(st.sampled_from(KINDS), unique=True, max_size=3)),
        "rule": draw(st.sampled_from(RULES)),
        "review_weeks": draw(st.integers(1, 13)),
        "i_max": draw(_unit(0.02, 1.0)),
    }


def cooperation(n_agencies: int) -> st.SearchStrategy[dict[str, Any]]:
    """Information exchange and HVT coordination (coordination modes need two agencies)."""
    modes = ["independent", "deconfliction", "best_placed", "joint_team"] if n_agencies == 2 else ["independent"]
    return st.fixed_dictionaries(
        {},
        optional={
            "info_exchange": st.fixed_dictionaries({"share": _unit(), "delay_weeks": st.integers(0, 52)}),
            "hvt": st.fixed_dictionaries(
                {"coordination": st.sampled_from(modes)},
                optional={
                    "conflict_penalty": _unit(),
                    "register_lag_weeks": st.integers(0, 12),
                    "jit_setup_weeks": st.integers(0, 12),
                    "jit_uplift": _unit(0.0, 3.0),
                    "jit_duration_factor": _unit(0.1, 2.0),
                    "nexus_loads": _unit(0.0, 2.0),
                    "nexus_home": _unit(0.0, 2.0),
                    "nexus_evidence": _unit(0.0, 2.0),
                },
            ),
        },
    )


def intel() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "gain_seizure": _unit(),
            "gain_case": _unit(),
            "decay": _unit(),
            "gamma": _unit(),
            "tip_gamma": _unit(),
            "tip_shelf_weeks": _unit(0.5, 6.0),
        },
    )


def succession() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {}, optional={"psi": _unit(), "lag_weeks": st.integers(0, 10), "entry_rate": _unit(0.0, 0.5)}
    )


@st.composite
def shocks(draw: st.DrawFn, weeks: int, agencies: list[str]) -> list[dict[str, Any]]:
    if not agencies:
        return []
    return draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "week": st.integers(0, weeks - 1),
                    "agency": st.sampled_from(agencies),
                    "share_networks": _unit(),
                    "level": _unit(),
                }
            ),
            max_size=2,
        )
    )


def behaviour() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "margin": _unit(0.0, 40.0),
            "beta": _unit(0.0, 1.2),
            "nest_lambda": _unit(0.1, 1.0),
            "phi": _unit(0.0, 4.0),
            "setup": _unit(0.0, 5.0),
            "kappa": _unit(0.0, 0.9),
            "prior_strength": _unit(1.0, 50.0),
            "memory": _unit(0.8, 1.0),
            "omega": _unit(0.0, 1.0),
            "access_growth": _unit(0.0, 1.0),
            "access_decay": _unit(0.0, 1.0),
            "access_burn": _unit(0.0, 1.0),
            "zeta": _unit(0.0, 4.0),
            "split_floor": _unit(0.25, 1.0),
        },
    )


def elsewhere() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {},
        optional={
            "detection": _unit(0.0, 1.0),
            "cost": _unit(0.0, 8.0),
            "at_risk_per_week": _unit(100.0, 10_000.0),
            "asc": _unit(-5.0, 5.0),
        },
    )


@st.composite
def step_series(draw: st.DrawFn, weeks: int, lo: float, hi: float) -> dict[int, float]:
    """A ``{week: value}`` step function starting at week 0, all weeks inside the horizon."""
    later = draw(st.lists(st.integers(1, weeks - 1), unique=True, max_size=3))
    return {w: draw(_unit(lo, hi)) for w in [0, *sorted(later)]}


@st.composite
def interventions(draw: st.DrawFn, weeks: int, agencies: list[str]) -> list[dict[str, Any]]:
    """0-3 interventions: group rate scalings (at most ``MAX_SCALINGS``), budgets, elsewhere detection.

    Rate scalings (``ports[kind=K].inspection_rate: {scale: x}``) only when some
    agency exists: without one, both engines ignore a changed base rate (see
    ``test_rate_intervention_without_agencies`` in test_invariants.py).
    """
    out = []
    n_scale = draw(st.integers(0, MAX_SCALINGS)) if agencies else 0
    for _ in range(n_scale):
        kind = draw(st.sampled_from(KINDS))
        factor = draw(_unit(0.0, MAX_SCALE))
        out.append(
            {
                "week": draw(st.integers(0, weeks - 1)),
                "set": {f"ports[kind={kind}].inspection_rate": {"scale": factor}},
            }
        )
    if agencies and draw(st.booleans()):
        code = draw(st.sampled_from(agencies))
        out.append(
            {
                "week": draw(st.integers(0, weeks - 1)),
                "set": {
                    f"enforcement.{code}.budget": draw(_unit(0.0, 600.0)),
                    "elsewhere.detection": draw(_unit(0.0, 0.5)),
                },
            }
        )
    return out


@st.composite
def scenarios(
    draw: st.DrawFn, min_weeks: int = 20, max_weeks: int = 60, min_slots: int = 5, max_slots: int = 20
) -> dict[str, Any]:
    """A random valid scenario dict for ``load_scenario``."""
    weeks = draw(st.integers(min_weeks, max_weeks))
    codes = draw(st.sampled_from([["BE", "NL"], ["BE", "NL"], ["BE"], ["NL"], []]))
    enforcement: dict[str, Any] = {code: draw(agency(code)) for code in codes}
    if len(codes) == 2 and draw(st.booleans()):
        enforcement["joint_strategy"] = draw(joint_strategy())
    enforcement.update(draw(cooperation(len(codes))))
    return {
        "name": "random",
        "weeks": weeks,
        "warmup_weeks": draw(st.integers(0, weeks // 2)),
        "seed": draw(st.integers(0, 2**31 - 1)),
        "ports": draw(port_overrides()),
        "networks": {
            "n_slots": draw(st.integers(min_slots, max_slots)),
            "hvt_share": draw(_unit()),
            "loads_per_week": {"median": 1.0, "sigma": draw(_unit(0.0, 1.0)), "low": 0.05, "high": 4.0},
        },
        "behaviour": draw(behaviour()),
        "elsewhere": draw(elsewhere()),
        "hold": {"utility": draw(_unit(0.0, 60.0))},
        "enforcement": enforcement,
        "intel": draw(intel()),
        "succession": draw(succession()),
        "shocks": draw(shocks(weeks, codes)),
        "inputs": {
            "supply_index": draw(step_series(weeks, 0.0, 3.0)),
            "origin_interdiction": draw(step_series(weeks, 0.0, 1.0)),
        },
        "interventions": draw(interventions(weeks, codes)),
    }


def without_enforcement(data: dict[str, Any]) -> dict[str, Any]:
    """The same scenario with no inspection and no targeting: rates, budgets, transit, elsewhere, intel terms 0."""
    out = dict(data)
    out["ports"] = {
        pid: {**data.get("ports", {}).get(pid, {}), "inspection_rate": 0.0, "transit_check": 0.0} for pid in PORTS
    }
    out["enforcement"] = {
        k: ({**v, "budget": 0.0} if k in AGENCIES else v) for k, v in data.get("enforcement", {}).items()
    }
    joint = out["enforcement"].get("joint_strategy")
    if joint is not None:
        out["enforcement"]["joint_strategy"] = {**joint, "budget": 0.0}
    out["elsewhere"] = {**data.get("elsewhere", {}), "detection": 0.0}
    out["intel"] = {**data.get("intel", {}), "gamma": 0.0, "tip_gamma": 0.0}
    out["interventions"] = [
        {**iv, "set": {k: (0.0 if k.endswith(("budget", "detection")) else v) for k, v in iv["set"].items()}}
        for iv in data.get("interventions", [])
    ]
    return out


def event_weeks(cfg: Scenario) -> list[int]:
    """Weeks at which something scheduled happens: interventions, shocks, input steps."""
    weeks = [iv.week for iv in cfg.interventions] + [sh.week for sh in cfg.shocks]
    weeks += list(cfg.inputs.supply_index) + list(cfg.inputs.origin_interdiction)
    return weeks


def shortened(path: Path, n_slots: int, min_weeks: int = 70, after: int = 26) -> Scenario:
    """A repository scenario over a shorter horizon that still holds every scheduled event (plus ``after`` weeks)."""
    full = load_scenario(path)
    weeks = min(full.weeks, max(min_weeks, max(event_weeks(full)) + after))
    return load_scenario(
        path,
        overrides={"weeks": weeks, "warmup_weeks": min(full.warmup_weeks, weeks // 2), "networks.n_slots": n_slots},
    )
