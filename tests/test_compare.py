"""Paired comparison: differences, where the drop went, displacement ratio and WDQ (DESIGN.md section 4).

The displacement measures are checked against hand-computed values on small
synthetic flows (full displacement, none, deterrence only, diffusion of
benefits, a mixed case); the paired statistics on real runs of small configs.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from displacement_sim import load_scenario, run_batch
from displacement_sim.cli import main
from displacement_sim.compare import (
    Bootstrap,
    Flows,
    buffer_ports,
    build_comparison,
    control_area,
    decompose,
    observed_wdq,
    paired_difference,
    ratio_of_means,
    targeted_ports,
)
from displacement_sim.errors import ConfigError

SMALL = {"weeks": 156, "networks.n_slots": 30}
R = 10


# --- synthetic flows: 4 ports, A = port 0, B = port 1, O = ports 2 and 3 -------------------------------


def flows(port_kg, elsewhere, held, lost=0.0, reps=5, noise=None) -> Flows:
    """Flows repeated over ``reps`` replications, optionally plus a per-replication offset (R, P)."""
    port = np.tile(np.asarray(port_kg, dtype=float), (reps, 1))
    if noise is not None:
        port = port + noise
    return Flows(
        port_kg=port,
        elsewhere_kg=np.full(reps, float(elsewhere)),
        held_kg=np.full(reps, float(held)),
        lost_kg=np.full(reps, float(lost)),
    )


CONTROL = flows([100.0, 10.0, 20.0, 5.0], elsewhere=30.0, held=10.0)


def shares(dec) -> dict[str, float]:
    return {k: v["share_of_drop"]["value"] for k, v in dec["components"].items()}


def kg(dec) -> dict[str, float]:
    return {k: v["kg"]["mean"] for k, v in dec["components"].items()}


def test_full_displacement_into_the_buffer():
    treat = flows([60.0, 50.0, 20.0, 5.0], elsewhere=30.0, held=10.0)  # dA = -40, dB = +40
    dec = decompose(CONTROL, treat, [0], [1])
    assert kg(dec) == pytest.approx({"A": -40, "B": 40, "O": 0, "E": 0, "H": 0, "X": 0})
    assert dec["displacement_ratio"]["value"] == pytest.approx(1.0)
    assert dec["wdq"]["value"] == pytest.approx(-1.0)  # Bowers & Johnson: negative = displacement
    assert shares(dec)["B"] == pytest.approx(1.0)
    assert dec["displacement_ratio"]["ci95"] == pytest.approx([1.0, 1.0])  # identical replications


def test_no_displacement_everything_held_back_is_deterrence():
    treat = flows([60.0, 10.0, 20.0, 5.0], elsewhere=30.0, held=50.0)  # dA = -40, dH = +40
    dec = decompose(CONTROL, treat, [0], [1])
    assert dec["displacement_ratio"]["value"] == pytest.approx(0.0)
    assert dec["wdq"]["value"] == pytest.approx(0.0)
    assert shares(dec) == pytest.approx({"A": -1.0, "B": 0.0, "O": 0.0, "E": 0.0, "H": 1.0, "X": 0.0})


def test_diffusion_of_benefits_gives_negative_ratio_and_positive_wdq():
    treat = flows([60.0, 0.0, 20.0, 5.0], elsewhere=30.0, held=60.0)  # dA = -40, dB = -10, dH = +50
    dec = decompose(CONTROL, treat, [0], [1])
    assert dec["displacement_ratio"]["value"] == pytest.approx(-10 / 40)
    assert dec["wdq"]["value"] == pytest.approx(+10 / 40)
    assert shares(dec)["H"] == pytest.approx(50 / 40)


def test_mixed_case_matches_hand_computation_and_sums_to_the_drop():
    # dA = -100: dB +30, dO +10 (split 4 + 6), dE +20, dH +30, dX +10
    treat = flows([0.0, 40.0, 24.0, 11.0], elsewhere=50.0, held=40.0, lost=10.0)
    dec = decompose(CONTROL, treat, [0], [1])
    assert kg(dec) == pytest.approx({"A": -100, "B": 30, "O": 10, "E": 20, "H": 30, "X": 10})
    assert dec["displacement_ratio"]["value"] == pytest.approx((30 + 10 + 20) / 100)
    assert dec["wdq"]["value"] == pytest.approx(30 / -100)
    s = shares(dec)
    assert s == pytest.approx({"A": -1.0, "B": 0.3, "O": 0.1, "E": 0.2, "H": 0.3, "X": 0.1})
    assert sum(v for k, v in s.items() if k != "A") == pytest.approx(1.0)  # the drop is fully accounted for
    assert dec["closure_kg"] == pytest.approx(0.0, abs=1e-9)


def test_ratios_are_ratios_of_mean_paired_differences_with_bootstrap_ci():
    rng = np.random.default_rng(7)
    reps = 12
    noise = np.zeros((reps, 4))
    noise[:, 1] = rng.normal(0, 3, reps)  # buffer gain varies by replication
    control = flows([100.0, 10.0, 20.0, 5.0], 30.0, 10.0, reps=reps)
    treat_ports = np.tile([60.0, 30.0, 20.0, 5.0], (reps, 1)) + noise
    held = 10.0 + 20.0 - noise[:, 1]  # capacity conserved: what B does not take is held back
    treat = Flows(treat_ports, np.full(reps, 30.0), held, np.zeros(reps))
    dec = decompose(control, treat, [0], [1])
    d_b = treat_ports[:, 1] - 10.0
    expected = d_b.mean() / 40.0  # ratio of mean differences, not mean of ratios
    dr = dec["displacement_ratio"]
    assert dr["value"] == pytest.approx(expected)
    assert dr["ci95"][0] < expected < dr["ci95"][1]
    assert dr["ci95"][1] - dr["ci95"][0] > 0
    # one shared, fixed-seed set of resamples: the same inputs give the same CI
    assert decompose(control, treat, [0], [1])["displacement_ratio"]["ci95"] == dr["ci95"]


def test_ratios_are_null_when_undefined():
    same = decompose(CONTROL, CONTROL, [0], [1])  # dA = 0
    assert same["displacement_ratio"]["value"] is None and "undefined" in same["displacement_ratio"]["note"]
    assert same["wdq"]["value"] is None
    rise = flows([120.0, 10.0, 20.0, 5.0], 30.0, -10.0)  # dA > 0: wdq needs dA < 0
    assert decompose(CONTROL, rise, [0], [1])["wdq"]["value"] is None
    # denominator's CI includes 0: A's change is noise around zero
    boot = Bootstrap(6)
    ratio = ratio_of_means(np.ones(6), np.array([1.0, -1.0, 2.0, -2.0, 0.5, -0.4]), boot)
    assert ratio["value"] is None and "includes 0" in ratio["note"]


def test_single_replication_gives_values_without_ci():
    one = flows([60.0, 50.0, 20.0, 5.0], 30.0, 10.0, reps=1)
    dec = decompose(flows([100.0, 10.0, 20.0, 5.0], 30.0, 10.0, reps=1), one, [0], [1])
    assert dec["displacement_ratio"]["value"] == pytest.approx(1.0)
    assert dec["displacement_ratio"]["ci95"] == [None, None]


def test_paired_difference_matches_hand_computation_and_welch():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    c = np.array([0.0, 0.0, 1.0, 1.0])
    out = paired_difference(t, c)
    half = stats.t.ppf(0.975, 3) * math.sqrt(2 / 3) / 2  # d = 1, 2, 2, 3: mean 2, sd sqrt(2/3)
    assert out["mean"] == pytest.approx(2.0)
    assert out["ci95"] == pytest.approx([2 - half, 2 + half])
    welch = stats.ttest_ind(t, c, equal_var=False).confidence_interval(0.95)
    assert out["ci95_unpaired"] == pytest.approx([welch.low, welch.high])
    nan = paired_difference(np.array([1.0, np.nan, 3.0]), np.array([0.0, 1.0, 1.0]))
    assert nan["n"] == 2 and nan["mean"] == pytest.approx(1.5)


def test_observed_wdq_matches_hand_computation():
    # weeks 0-1 before, 2-3 after; ports A, B, C. Per window (two weeks): A 100 -> 50, B 20 -> 40, C 10 -> 10
    seized = np.zeros((3, 4, 3))
    seized[:, :2, 0], seized[:, 2:, 0] = 50, 25
    seized[:, :2, 1], seized[:, 2:, 1] = 10, 20
    seized[:, :, 2] = 5
    out = observed_wdq(seized, [0], [1], [2], (0, 2), (2, 4))
    expected = (40 / 10 - 20 / 10) / (50 / 10 - 100 / 10)  # = -0.4
    assert out["value"] == pytest.approx(expected)
    assert out["ci95"] == pytest.approx([expected, expected])
    seized[:, :, 2] = 0  # no seizures in the control area: undefined
    assert observed_wdq(seized, [0], [1], [2], (0, 2), (2, 4))["value"] is None


# --- targeted, buffer and control-area ports from scenarios ---------------------------------------------


@pytest.fixture(scope="module")
def configs(scenario_dir):
    names = ("baseline", "hub_hardening", "regional_ports_joint")
    return {n: load_scenario(scenario_dir / f"{n}.yaml", overrides=SMALL) for n in names}


def test_targets_come_from_the_interventions_with_selectors_expanded(configs, scenario_dir):
    assert targeted_ports(configs["hub_hardening"], configs["baseline"]) == ["antwerp", "rotterdam"]
    hubs = load_scenario(
        scenario_dir / "baseline.yaml",
        overrides={**SMALL, "interventions": [{"week": 104, "set": {"ports[kind=hub].inspection_rate": {"scale": 2}}}]},
    )
    assert targeted_ports(hubs, configs["baseline"]) == ["antwerp", "rotterdam", "hamburg"]
    # the same hub hardening in the control is not the scenario's policy
    assert targeted_ports(configs["regional_ports_joint"], configs["hub_hardening"]) == []


def test_buffer_ports_and_control_area(configs):
    cfg = configs["hub_hardening"]
    buf = buffer_ports(cfg, ["antwerp", "rotterdam"])
    expected = set(cfg.ports["antwerp"].buffer) | set(cfg.ports["rotterdam"].buffer)
    assert set(buf) == expected - {"antwerp", "rotterdam"}
    area = control_area(cfg, ["antwerp", "rotterdam"], buf)
    assert area and not set(area) & ({"antwerp", "rotterdam"} | set(buf))
    assert "hamburg" in area and "ostend" not in area  # farthest from the targets, not the nearest


# --- real runs --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs(configs):
    return {n: run_batch(c, R, seed=11, eval_from=104, keep_series=True) for n, c in configs.items()}


def test_a_scenario_against_itself_differs_by_exactly_zero(configs, runs):
    again = run_batch(configs["hub_hardening"], R, seed=11, eval_from=104, keep_series=True)
    comp = build_comparison([runs["hub_hardening"], again], targets=["antwerp", "rotterdam"])
    entry = next(iter(comp["comparisons"].values()))
    checked = 0
    for where, d in [*entry["differences"].items()] + [
        ((port, name), d) for port, metrics in entry["port_differences"].items() for name, d in metrics.items()
    ]:
        if d["n"]:  # NaN-only metrics (e.g. mean seizure size at a port without seizures) have none
            assert d["mean"] == 0.0, where
            assert d["ci95"] == ([0.0, 0.0] if d["n"] > 1 else [None, None]), where
            checked += 1
    assert checked > 100
    assert entry["displacement_ratio"]["value"] is None  # no drop to share out


def test_paired_ci_is_narrower_than_unpaired_for_hub_hardening(runs):
    comp = build_comparison([runs["baseline"], runs["hub_hardening"]])
    entry = comp["comparisons"]["hub_hardening"]

    def width(ci):
        return ci[1] - ci[0]

    for d in (entry["differences"]["seized_kg"], entry["port_differences"]["antwerp"]["shipped_kg"]):
        assert width(d["ci95"]) < width(d["ci95_unpaired"])
    assert entry["targets"] == ["antwerp", "rotterdam"]
    dec = entry["decomposition"]
    assert dec["closure_relative"] < 1e-6  # dA + dB + dO + dE + dH + dX = 0 in every replication
    total = sum(c["kg"]["mean"] for c in dec["components"].values())
    assert abs(total) <= 1e-6 * abs(dec["components"]["A"]["kg"]["mean"])
    assert dec["components"]["A"]["kg"]["ci95"][1] < 0  # tripled scanning lowers the hubs' flow
    assert "Antwerp" in entry["verdict"] and "falls" in entry["verdict"]
    json.dumps(comp, allow_nan=False, default=float)  # plain JSON: no NaN


def test_capacity_is_ports_plus_elsewhere_plus_held(runs):
    r = runs["hub_hardening"]
    total = r.port_values["shipped_kg"].sum(axis=1) + r.metrics["elsewhere_kg"] + r.metrics["held_kg"]
    np.testing.assert_allclose(total, r.metrics["capacity_kg"], rtol=1e-9)


def test_different_port_sets_are_refused(runs, configs):
    extra = load_scenario(
        configs["baseline"].model_dump(mode="json", exclude={"ports"})
        | {
            "ports": {
                "hamburg_extra": {**configs["baseline"].ports["hamburg"].model_dump(mode="json"), "buffer": []},
            },
            "weeks": 156,
        }
    )
    with pytest.raises(ConfigError, match="different port sets"):
        build_comparison([runs["baseline"], run_batch(extra, 2, seed=11, eval_from=104, keep_series=True)])


# --- the command ------------------------------------------------------------------------------------------


def _small_args(tmp_path):
    return ["--replications", "3", "--weeks", "130", "--set", "networks.n_slots=20"]


def test_cli_unknown_target_is_exit_2_naming_it_and_nothing_written(scenario_dir, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(
        [
            "compare",
            str(scenario_dir / "baseline.yaml"),
            str(scenario_dir / "hub_hardening.yaml"),
            "--targets",
            "antwerp,antwrep",
            "--out",
            str(out),
            *_small_args(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "antwrep" in err and "rotterdam" in err and "did you mean 'antwerp'" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_different_port_sets_is_exit_2(scenario_dir, tmp_path, capsys):
    extra = tmp_path / "extra_port.yaml"
    extra.write_text(
        f"name: extra_port\nextends: {scenario_dir / 'baseline.yaml'}\nports:\n  wilhelmshaven:\n"
        "    name: Wilhelmshaven\n    country: DE\n    kind: regional\n    cluster: weser_jade\n"
        "    at_risk_per_week: 5\n    lat: 53.6\n    lon: 8.1\n    inspection_rate: 0.03\n"
        "    q: 1.5\n    c: 0.3\n    a: 4\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    rc = main(["compare", str(scenario_dir / "baseline.yaml"), str(extra), "--out", str(out), *_small_args(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "different port sets" in err and "wilhelmshaven" in err
    assert not out.exists()


def test_cli_horizon_before_the_intervention_is_exit_2(scenario_dir, tmp_path, capsys):
    rc = main(
        [
            "compare",
            str(scenario_dir / "baseline.yaml"),
            str(scenario_dir / "hub_hardening.yaml"),
            "--weeks",
            "100",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "horizon" in err and "hub_hardening.yaml" in err
    assert not (tmp_path / "o").exists()


def test_cli_scenario_folders_carry_the_common_seed(scenario_dir, tmp_path, capsys):
    """Scenarios with seeds of their own run on the common seed; each folder's resolved config says so."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"name: policy\nextends: {scenario_dir / 'hub_hardening.yaml'}\nseed: 777\n", encoding="utf-8")
    out = tmp_path / "out"
    args = ["compare", str(scenario_dir / "baseline.yaml"), str(policy), "--out", str(out), "--seed", "11"]
    assert main([*args, *_small_args(tmp_path)]) == 0
    manifests = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(out.glob("*/manifest.json"))]
    assert len(manifests) == 2
    assert all(m["seed"] == m["config"]["seed"] == 11 for m in manifests)
