"""The two engines are one model (DESIGN.md section 5).

With one replication and the same seed, the Mesa engine (``DisplacementModel``)
and the vectorized engine (``run_batch`` / ``vectorized.simulate``) must produce
the same events and the same numbers, bit for bit (counts and floats). This is
checked for every scenario in ``scenarios/`` (a new scenario is covered as soon
as it is added), for a replication other than 0 inside a larger batch, for
random valid scenarios, and for the full network and cooperation state at the
end of a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from displacement_sim import DisplacementModel, Scenario, load_scenario, run_batch, vectorized
from displacement_sim.metrics import Recorder
from displacement_sim.params import build_plan
from strategies import scenarios, shortened

SCENARIO_FILES = sorted((Path(__file__).resolve().parents[1] / "scenarios").glob("*.yaml"))


def assert_same_series(mesa_weekly: dict[str, np.ndarray], series: dict[str, np.ndarray], r: int = 0) -> None:
    """Every series the Mesa model records equals replication ``r`` of the vectorized series."""
    assert mesa_weekly, "the Mesa model recorded nothing"
    missing = set(mesa_weekly) - set(series)
    assert not missing, f"series recorded by Mesa but not by the vectorized engine: {sorted(missing)}"
    for key, expected in mesa_weekly.items():
        got = series[key][r]
        assert got.shape == expected.shape, f"{key}: shape {got.shape} != {expected.shape}"
        np.testing.assert_array_equal(got, expected, err_msg=key)  # bit for bit, counts and masses alike


def n_phases(cfg: Scenario) -> int:
    return len({0, *(iv.week for iv in cfg.interventions)})


@pytest.mark.parametrize("path", SCENARIO_FILES, ids=[p.stem for p in SCENARIO_FILES])
def test_engines_agree_on_repository_scenario(path: Path) -> None:
    """Mesa replication 0 and the vectorized engine with R = 1, same seed: identical weekly series."""
    cfg = shortened(path, n_slots=12)
    assert len(build_plan(cfg).params) == n_phases(cfg), "the shortened horizon lost an intervention"
    seed = 20_250_101
    model = DisplacementModel(config=cfg, rng=seed).run()
    assert model.week == cfg.weeks and not model.running
    batch = run_batch(cfg, 1, seed=seed, keep_series=True)
    weekly = model.weekly()
    assert weekly["loads"].sum() > 0 and weekly["seized_loads"].sum() > 0, "a run with nothing to compare"
    assert_same_series(weekly, batch.series)
    # the datacollector reports the same numbers
    df = model.datacollector.get_model_vars_dataframe()
    np.testing.assert_allclose(df["shipped_kg"].to_numpy(), batch.series["shipped_kg"][0, :, :-1].sum(axis=-1))
    np.testing.assert_allclose(df["elsewhere_kg"].to_numpy(), batch.series["shipped_kg"][0, :, -1])


def test_replication_two_of_a_batch_equals_mesa_replication_two() -> None:
    """Replication r of a vectorized batch of R = 3 is the Mesa model run with ``replication=r``."""
    cfg = shortened(SCENARIO_FILES[0], n_slots=10, min_weeks=60)
    batch = run_batch(cfg, 3, seed=5, keep_series=True)
    model = DisplacementModel(config=cfg, rng=5, replication=2).run()
    assert_same_series(model.weekly(), batch.series, r=2)
    # and the replications differ from each other (so r = 2 is a real test of the stream keys)
    assert not np.array_equal(batch.series["loads"][0], batch.series["loads"][2])
    other = DisplacementModel(config=cfg, rng=5, replication=0).run()
    assert not np.array_equal(other.weekly()["loads"], model.weekly()["loads"])


@settings(
    max_examples=10,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=scenarios(min_weeks=30, max_weeks=30, min_slots=3, max_slots=8), seed=st.integers(0, 2**31 - 1))
def test_engines_agree_on_random_scenarios(data: dict[str, Any], seed: int) -> None:
    cfg = load_scenario(data)
    model = DisplacementModel(config=cfg, rng=seed).run()
    batch = run_batch(cfg, 1, seed=seed, keep_series=True)
    assert_same_series(model.weekly(), batch.series)


def final_vector_state(cfg: Scenario, seed: int, replication: int = 0) -> vectorized.VectorState:
    """The vectorized engine's state after the last week (as ``runner.run_batch`` drives it)."""
    plan = build_plan(cfg)
    rec = Recorder(1, plan.weeks, plan.warmup_weeks, len(plan.params[0].port_ids), False)
    (state,) = vectorized.simulate(plan, seed, [replication], rec)
    return state


def test_final_network_state_agrees() -> None:
    """At the end: each Mesa network's attributes, beliefs, insiders, and the cooperation state match."""
    data = {
        "name": "state",
        "weeks": 90,
        "warmup_weeks": 10,
        "networks": {"n_slots": 12, "hvt_share": 0.7},
        "enforcement": {
            "BE": {"budget": 150, "rule": "reactive", "case_units": 4, "open_rate": 3.0, "dur_weeks": 6, "sigma": 0.8},
            "NL": {"budget": 120, "rule": "threat", "case_units": 4, "open_rate": 3.0, "dur_weeks": 6, "sigma": 0.8},
            "joint_strategy": {"members": ["BE", "NL"], "budget": 100},
            "hvt": {"coordination": "joint_team", "jit_setup_weeks": 2},
            "info_exchange": {"delay_weeks": 2},
        },
        "succession": {"lag_weeks": 3, "entry_rate": 0.3},
        "intel": {"gain_seizure": 0.6, "gain_case": 0.2},
        "shocks": [{"week": 20, "agency": "NL", "share_networks": 0.8, "level": 0.9}],
        "interventions": [{"week": 45, "set": {"ports[kind=hub].inspection_rate": {"scale": 2}}}],
    }
    cfg = load_scenario(data)
    seed = 99
    model = DisplacementModel(config=cfg, rng=seed).run()
    st_ = final_vector_state(cfg, seed)
    nets = model.networks
    weekly = model.weekly()
    assert weekly["dismantled"].sum() > 0, "no network was dismantled: the state check would miss succession"
    assert (weekly["successors"] + weekly["entrants"]).sum() > 0

    np.testing.assert_array_equal(st_.alive[0], [n.alive for n in nets])
    np.testing.assert_array_equal(st_.home[0], [n.home for n in nets])
    np.testing.assert_array_equal(st_.hvt[0], [n.hvt for n in nets])
    for name in ("m", "rate", "lam"):
        np.testing.assert_array_equal(getattr(st_, name)[0], [getattr(n, name) for n in nets], err_msg=name)
    for name in ("seizures", "exposure", "access"):
        mesa_rows = np.stack([getattr(n, name) for n in nets])
        np.testing.assert_array_equal(getattr(st_, name)[0], mesa_rows, err_msg=name)
    assert np.stack([n.access for n in nets]).max() > 0, "no insider access built: a weak comparison"
    np.testing.assert_array_equal(st_.rates[0], [port.inspection_rate for port in model.ports])
    np.testing.assert_array_equal(st_.history[0], np.stack([port.seizure_history for port in model.ports], axis=-1))
    for name in vars(model.coop):
        mesa_value = getattr(model.coop, name)
        vec_value = getattr(st_.coop, name)[0]
        np.testing.assert_array_equal(vec_value, mesa_value, err_msg=f"coop.{name}")
    # the agents' views of the cooperation state
    for code, agency in model.agencies.items():
        if agency.index is not None:
            np.testing.assert_allclose(agency.intel, st_.coop.intel[0, agency.index], err_msg=code)
