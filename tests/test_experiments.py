"""Experiments: designs, validation of experiment files, sweeps, resume, sensitivity analysis, run_model.

The claims: a sweep's table does not depend on the executor or the chunk size;
a sweep killed with SIGKILL and resumed gives the table of an uninterrupted
run; a changed experiment is refused on resume; Sobol' indices come out right
on the Ishigami function and near zero for a parameter with no effect; every
bad experiment file is a one-line error with exit status 2.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from displacement_sim import load_scenario, run_batch
from displacement_sim import sensitivity as sa
from displacement_sim.cli import main
from displacement_sim.errors import ConfigError
from displacement_sim.executors import open_executor, run_sweep
from displacement_sim.experiments import Parameter, load_experiment, make_design, parameter_path, run_model
from displacement_sim.metrics import reduce_values
from displacement_sim.schema import Enforcement

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.yaml"
EXPERIMENTS = ROOT / "experiments"
TINY = {"weeks": 30, "warmup_weeks": 10, "networks.n_slots": 10}


def write_experiment(folder: Path, name: str = "tiny", **fields) -> Path:
    """A small experiment on the baseline (30 weeks, 10 of them warm-up, 10 slots); ``fields`` replace the defaults."""
    data = {
        "name": name,
        "base": str(BASELINE),
        "design": "grid",
        "replications": 2,
        "overrides": dict(TINY),
        "parameters": [
            {"path": "behaviour.beta", "levels": [0.2, 0.5, 0.8]},
            {"path": "enforcement.BE.rule", "name": "be_rule", "categories": ["threat", "static"]},
        ],
        "outcomes": ["seized_kg", "hub_share", "ports.antwerp.share"],
    }
    data.update(fields)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --- designs ------------------------------------------------------------------------------------------


def test_grid_is_every_combination_first_parameter_slowest(tmp_path):
    sweep = load_experiment(write_experiment(tmp_path))
    assert sweep.n_points == 6
    assert [sweep.design.points[k] for k in range(6)] == [
        (0.2, "threat"),
        (0.2, "static"),
        (0.5, "threat"),
        (0.5, "static"),
        (0.8, "threat"),
        (0.8, "static"),
    ]
    assert sweep.columns[:3] == ["point", "behaviour.beta", "be_rule"]
    assert "ports.antwerp.share_ci95_hi" in sweep.columns


def test_lhs_stratifies_integer_levels_and_categories():
    """A Latin hypercube of n points puts exactly n/k points in each of k equal cells, per parameter."""
    params = [
        Parameter(path="enforcement.info_exchange.delay_weeks", name="delay", range=(0, 12), type="integer"),
        Parameter(path="enforcement.BE.rule", name="rule", categories=["static", "reactive", "threat"]),
        Parameter(path="enforcement.info_exchange.share", name="share", levels=[0.2, 0.5]),
        Parameter(path="behaviour.beta", name="beta", range=(0.1, 1.0)),
    ]
    design = make_design("lhs", params, 78, seed=7)
    cols = list(zip(*(design.points[k] for k in range(design.n_points)), strict=True))
    delay, rule, share, beta = cols
    assert sorted(set(delay)) == list(range(13))
    assert all(delay.count(v) == 6 for v in range(13)) and all(isinstance(v, int) for v in delay)
    assert all(rule.count(v) == 26 for v in ("static", "reactive", "threat"))
    assert share.count(0.2) == share.count(0.5) == 39
    assert min(beta) >= 0.1 and max(beta) <= 1.0
    # one point per stratum of width 0.9/78 for the continuous parameter
    strata = np.floor((np.array(beta) - 0.1) / 0.9 * 78).astype(int)
    assert sorted(strata) == list(range(78))


def test_sobol_and_morris_design_sizes():
    params = [Parameter(name=f"x{i}", range=(0.0, 1.0)) for i in range(3)]
    assert make_design("sobol", params, 8, second_order=True).n_points == 8 * (2 * 3 + 2)
    assert make_design("sobol", params, 8, second_order=False).n_points == 8 * (3 + 2)
    assert make_design("morris", params, 5, morris_levels=4).n_points == 5 * (3 + 1)


def test_designs_are_reproducible_from_the_seed():
    params = [Parameter(name=f"x{i}", range=(0.0, 1.0)) for i in range(2)]
    for kind, n in (("lhs", 10), ("sobol", 8), ("morris", 4)):
        a, b, c = (make_design(kind, params, n, seed=s) for s in (1, 1, 2))
        assert a.fingerprint() == b.fingerprint()
        assert a.fingerprint() != c.fingerprint()


# --- Sobol' and Morris through our pipeline ----------------------------------------------------------


def ishigami(x: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def test_sobol_indices_of_the_ishigami_function_match_the_analytic_values():
    """Ishigami (a=7, b=0.1): S1 = (0.314, 0.442, 0), ST = (0.558, 0.442, 0.244), S13 = 0.244.

    Analytic values from Sobol' & Levitan (1999); the variances are computed below.
    """
    params = [Parameter(name=f"x{i}", range=(-math.pi, math.pi)) for i in (1, 2, 3)]
    design = make_design("sobol", params, 1024, seed=11, second_order=True)
    y = ishigami(design.matrix)
    prob = sa.problem(design.names, [p.range for p in params])
    res = sa.sobol_indices(prob, y, second_order=True, seed=11)
    a, b = 7.0, 0.1
    v1 = 0.5 * (1 + b * math.pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * math.pi**8 * (1 / 18 - 1 / 50)
    var = v1 + v2 + v13
    s1 = [v1 / var, v2 / var, 0.0]
    st = [(v1 + v13) / var, v2 / var, v13 / var]
    for i, name in enumerate(design.names):
        got = res["indices"][name]
        assert got["S1"] == pytest.approx(s1[i], abs=0.04), name
        assert got["ST"] == pytest.approx(st[i], abs=0.04), name
        assert 0 < got["S1_conf"] < 0.1 and 0 < got["ST_conf"] < 0.1
    assert res["S2"]["x1"]["x3"]["S2"] == pytest.approx(v13 / var, abs=0.1)
    assert res["S2"]["x1"]["x2"]["S2"] == pytest.approx(0.0, abs=0.1)


def test_morris_recovers_the_slopes_of_a_linear_function():
    params = [Parameter(name=f"x{i}", range=(0.0, 1.0)) for i in range(3)]
    design = make_design("morris", params, 10, seed=5, morris_levels=4)
    y = design.matrix @ np.array([2.0, -0.5, 0.0])
    res = sa.morris_indices(sa.problem(design.names, [(0, 1)] * 3), design.matrix, y, levels=4, seed=5)["indices"]
    assert [res[n]["mu"] for n in design.names] == pytest.approx([2.0, -0.5, 0.0])
    assert [res[n]["mu_star"] for n in design.names] == pytest.approx([2.0, 0.5, 0.0])
    assert [res[n]["sigma"] for n in design.names] == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)


def test_a_parameter_without_effect_gets_sobol_indices_near_zero(tmp_path):
    """Bremerhaven is switched off, so its corruptibility cannot matter; Antwerp's scanning and beta do."""
    path = write_experiment(
        tmp_path,
        "dummy",
        design="sobol",
        n=16,
        second_order=False,
        overrides={**TINY, "ports.bremerhaven.enabled": False},
        parameters=[
            {"path": "behaviour.beta", "range": [0.1, 1.0]},
            {"path": "ports.antwerp.inspection_rate", "range": [0.01, 0.3]},
            {"path": "ports.bremerhaven.c", "range": [0.0, 1.0]},
        ],
        outcomes=["seized_kg", "hub_share"],
    )
    result = run_sweep(load_experiment(path), tmp_path / "out", chunk_size=20, figures=False)
    for outcome in ("seized_kg", "hub_share"):
        idx = result.sensitivity["outcomes"][outcome]["indices"]
        assert abs(idx["ports.bremerhaven.c"]["S1"]) < 0.02
        assert abs(idx["ports.bremerhaven.c"]["ST"]) < 0.02
        assert idx["behaviour.beta"]["ST"] > 0.2
        assert idx["ports.antwerp.inspection_rate"]["ST"] > 0.1
    saved = json.loads((tmp_path / "out" / "sensitivity.json").read_text())
    assert saved["design"] == "sobol" and saved["n_points"] == 80


def test_outcomes_undefined_or_constant_get_no_indices_and_say_why():
    params = [Parameter(name=f"x{i}", range=(0.0, 1.0)) for i in range(2)]
    design = make_design("sobol", params, 8, second_order=False)
    prob = sa.problem(design.names, [(0, 1)] * 2)
    y = design.matrix[:, 0].copy()
    y_nan = y.copy()
    y_nan[3] = np.nan
    res = sa.analyze_outcomes(
        "sobol", prob, design.matrix, {"ok": y, "undefined": y_nan, "flat": np.ones_like(y)}, second_order=False
    )
    assert res["outcomes"]["ok"]["indices"]["x0"]["ST"] > 0.9
    assert res["outcomes"]["undefined"] == {"error": "undefined at 1 of 32 points; no indices computed"}
    assert "constant" in res["outcomes"]["flat"]["error"]


# --- sweeps: identical whatever the executor and the chunking ----------------------------------------------


def test_a_point_is_run_batch_with_its_point_index(tmp_path):
    """Point k's row is ``run_batch(config_k, R, seed, point=k)`` reduced: streams keyed by (seed, k, r)."""
    sweep = load_experiment(write_experiment(tmp_path))
    result = run_sweep(sweep, tmp_path / "out", chunk_size=4, figures=False)
    table = result.frame()
    assert list(table["point"]) == list(range(6))
    for k in (0, 3, 5):
        batch = run_batch(sweep.config(k), replications=2, seed=sweep.seed, point=k)
        ref = reduce_values(batch.metrics["seized_kg"])
        assert table.loc[k, "seized_kg_mean"] == ref["mean"]
        assert table.loc[k, "seized_kg_ci95_lo"] == ref["ci95"][0]
        assert sweep.config(k).behaviour.beta == table.loc[k, "behaviour.beta"]
        assert sweep.config(k).enforcement.agencies["BE"].rule == table.loc[k, "be_rule"]


def test_common_random_numbers_use_the_streams_of_point_zero(tmp_path):
    sweep = load_experiment(write_experiment(tmp_path, random_numbers="common"))
    table = run_sweep(sweep, tmp_path / "out", chunk_size=6, figures=False).frame()
    batch = run_batch(sweep.config(4), replications=2, seed=sweep.seed, point=0)
    assert table.loc[4, "hub_share_mean"] == reduce_values(batch.metrics["hub_share"])["mean"]


def test_the_mesa_engine_gives_the_vectorized_table(tmp_path):
    """One replication: the Mesa engine and the vectorized twin agree to 1e-9 (DESIGN.md section 5)."""
    params = [{"path": "behaviour.beta", "levels": [0.3, 0.7]}]
    runs = {}
    for engine in ("vectorized", "mesa"):
        path = write_experiment(tmp_path, engine, engine=engine, replications=1, parameters=params)
        runs[engine] = run_sweep(load_experiment(path), tmp_path / engine, figures=False).frame()
    stats = [c for c in runs["mesa"].columns if c.endswith("_mean")]
    np.testing.assert_allclose(runs["mesa"][stats], runs["vectorized"][stats], rtol=1e-9, atol=1e-9)
    assert runs["mesa"]["seized_kg_ci95_lo"].isna().all()  # no interval from one replication


def test_serial_processes_and_chunk_sizes_give_identical_tables(tmp_path):
    sweep = load_experiment(write_experiment(tmp_path))
    ref = run_sweep(sweep, tmp_path / "serial-1", chunk_size=1, figures=False)
    texts = {"serial, chunks of 1": ref.table.read_text()}
    texts["serial, chunks of 4"] = run_sweep(
        sweep, tmp_path / "serial-4", chunk_size=4, figures=False
    ).table.read_text()
    with open_executor(2) as handle:
        assert handle.kind == "processes"
        for size in (2, 5):
            res = run_sweep(sweep, tmp_path / f"proc-{size}", executor=handle, chunk_size=size, figures=False)
            texts[f"2 processes, chunks of {size}"] = res.table.read_text()
    assert len(ref.table.read_text().splitlines()) == 7
    for label, text in texts.items():
        assert text == texts["serial, chunks of 1"], label


def test_sweep_writes_table_chunks_manifest_and_figures(tmp_path, capsys):
    path = write_experiment(tmp_path)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--chunk-size", "4"]) == 0
    table = pd.read_csv(out / "points.csv")
    assert len(table) == 6 and table["point"].tolist() == list(range(6))
    assert (table["seized_kg_ci95_lo"] <= table["seized_kg_mean"]).all()
    assert sorted(p.name for p in (out / "chunks").iterdir()) == ["chunk-00000.csv", "chunk-00001.csv"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_points"] == 6 and manifest["chunk_size"] == 4
    assert manifest["experiment_text"] == path.read_text()
    assert manifest["base_config"]["weeks"] == 30 and manifest["seed"] == 20241210
    assert manifest["versions"]["numpy"] == np.__version__
    assert manifest["executor"].startswith("serial") and manifest["wall_seconds"] > 0
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert "seized_kg.png" in figures and "seized_kg-heatmap.png" in figures
    assert (out / "figures" / "seized_kg.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "sensitivity.json").exists()  # a grid has no indices
    assert "6 points" in capsys.readouterr().out


def test_sobol_sweep_writes_indices_with_confidence_intervals(tmp_path):
    path = write_experiment(
        tmp_path,
        "sob",
        design="sobol",
        n=2,
        parameters=[
            {"path": "behaviour.beta", "range": [0.1, 1.0]},
            {"path": "ports[kind=hub].q", "name": "hub_q", "range": [1.5, 3.0]},
        ],
        outcomes=["seized_kg"],
    )
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--n", "4"]) == 0
    sens = json.loads((out / "sensitivity.json").read_text())
    assert sens["n"] == 4 and sens["n_points"] == 4 * 6
    idx = sens["outcomes"]["seized_kg"]["indices"]
    assert set(idx) == {"behaviour.beta", "hub_q"}
    assert set(idx["hub_q"]) == {"S1", "S1_conf", "ST", "ST_conf"}
    assert "S2_conf" in sens["outcomes"]["seized_kg"]["S2"]["behaviour.beta"]["hub_q"]
    assert (out / "figures" / "seized_kg-sensitivity.png").is_file()


def test_morris_sweep_writes_mu_star_and_sigma(tmp_path):
    path = write_experiment(
        tmp_path,
        "mor",
        design="morris",
        n=3,
        parameters=[
            {"path": "behaviour.beta", "range": [0.1, 1.0]},
            {"path": "behaviour.omega", "range": [0.0, 1.0]},
        ],
        outcomes=["hub_share"],
    )
    result = run_sweep(load_experiment(path), tmp_path / "out", figures=False)
    assert result.n_points == 9
    idx = result.sensitivity["outcomes"]["hub_share"]["indices"]
    assert set(idx["behaviour.omega"]) == {"mu", "mu_star", "sigma", "mu_star_conf"}
    assert idx["behaviour.beta"]["mu_star"] >= abs(idx["behaviour.beta"]["mu"])


# --- resume ----------------------------------------------------------------------------------------


def _sweep_cmd(path: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "displacement_sim.cli", "sweep", str(path), "--out", str(out), *extra]


def test_a_sweep_killed_with_sigkill_resumes_to_the_uninterrupted_table(tmp_path):
    path = write_experiment(
        tmp_path,
        "killme",
        overrides={"weeks": 40, "warmup_weeks": 10, "networks.n_slots": 20},
        parameters=[
            {"path": "behaviour.beta", "levels": [0.2, 0.35, 0.5, 0.65, 0.8, 0.95]},
            {"path": "enforcement.BE.rule", "name": "be_rule", "categories": ["threat", "static", "reactive"]},
        ],
    )
    out = tmp_path / "killed"
    chunks = out / "chunks"
    proc = subprocess.Popen(
        _sweep_cmd(path, out, "--workers", "1", "--chunk-size", "1", "--no-figures"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if chunks.is_dir() and len([p for p in chunks.iterdir() if p.suffix == ".csv"]) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read().decode()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    done = sorted(p.name for p in chunks.iterdir() if p.suffix == ".csv")
    assert 2 <= len(done) < 18, done
    assert not (out / "points.csv").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"

    assert main(["sweep", str(path), "--out", str(out), "--resume", "--workers", "1", "--no-figures"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["sessions"][-1]["resumed"] and manifest["sessions"][-1]["chunks_run"] == 18 - len(done)

    fresh = tmp_path / "fresh"
    assert main(["sweep", str(path), "--out", str(fresh), "--workers", "1", "--chunk-size", "5", "--no-figures"]) == 0
    assert (out / "points.csv").read_bytes() == (fresh / "points.csv").read_bytes()


def test_resume_refuses_a_changed_experiment(tmp_path, capsys):
    path = write_experiment(tmp_path)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--no-figures"]) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    write_experiment(tmp_path, replications=3)  # same file, one field changed
    assert main(["sweep", str(path), "--out", str(out), "--resume", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "changed since this sweep started" in err and "--resume" in err and str(path) in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    write_experiment(tmp_path)
    assert main(["sweep", str(path), "--out", str(out), "--replications", "3", "--resume", "--workers", "1"]) == 2


def test_resume_of_a_complete_sweep_runs_nothing_and_keeps_the_table(tmp_path):
    path = write_experiment(tmp_path)
    out = tmp_path / "out"
    first = run_sweep(load_experiment(path), out, chunk_size=2, figures=False)
    table = first.table.read_bytes()
    again = run_sweep(load_experiment(path), out, resume=True, figures=False)
    assert again.chunks_run == 0 and again.table.read_bytes() == table


def test_existing_output_folder_is_refused_without_resume(tmp_path, capsys):
    path = write_experiment(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    assert main(["sweep", str(path), "--out", str(out)]) == 2
    assert "add --resume" in capsys.readouterr().err
    empty = tmp_path / "empty"
    assert main(["sweep", str(path), "--out", str(empty), "--resume"]) == 2
    assert "no manifest.json" in capsys.readouterr().err


# --- bad experiment files: exit 2 with a clear message ----------------------------------------------------


def _param(**kw):
    return [{"path": "behaviour.beta", **kw}]


BAD_FILES = [
    (
        "unknown parameter path",
        {"parameters": [{"path": "behaviour.betta", "levels": [0.1]}]},
        ["parameters[0] (behaviour.betta)", "unknown key", "did you mean 'beta'"],
    ),
    (
        "unknown port in a path",
        {"parameters": [{"path": "ports.antwrp.q", "levels": [1.0]}]},
        ["parameters[0]", "unknown port", "antwerp"],
    ),
    (
        "empty range",
        {"design": "lhs", "n": 4, "parameters": _param(range=[0.3, 0.3])},
        ["parameters[0].range", "empty"],
    ),
    (
        "lower above upper",
        {"design": "lhs", "n": 4, "parameters": _param(range=[0.9, 0.1])},
        ["parameters[0].range", "lower bound above upper bound", "[0.9, 0.1]"],
    ),
    ("unknown design", {"design": "factorial"}, ["design", "'factorial'", "grid", "sobol"]),
    (
        "Sobol N not a power of 2",
        {"design": "sobol", "n": 100, "parameters": _param(range=[0.1, 1.0])},
        ["n", "power of 2", "100"],
    ),
    ("levels empty", {"parameters": _param(levels=[])}, ["parameters[0].levels", "at least 1"]),
    ("duplicate levels", {"parameters": _param(levels=[0.2, 0.2])}, ["parameters[0].levels", "duplicate"]),
    ("no values", {"parameters": [{"path": "behaviour.beta"}]}, ["parameters[0]", "exactly one of range, levels"]),
    ("grid with a range", {"parameters": _param(range=[0.1, 1.0])}, ["grid needs levels or categories"]),
    ("lhs without n", {"design": "lhs", "parameters": _param(range=[0.1, 1.0])}, ["n", "needs a sample size"]),
    (
        "Sobol over categories",
        {"design": "sobol", "n": 8, "parameters": [{"path": "enforcement.BE.rule", "categories": ["threat"]}]},
        ["sobol needs continuous parameters"],
    ),
    (
        "value outside the schema",
        {"design": "lhs", "n": 4, "parameters": [{"path": "behaviour.memory", "range": [0.9, 1.5]}]},
        ["parameters[0] (behaviour.memory)", "at value 1.5"],
    ),
    ("unknown top-level key", {"desgin": "grid"}, ["desgin", "unknown key", "did you mean 'design'"]),
    ("unknown key in a parameter", {"parameters": _param(levels=[0.2], rnage=1)}, ["parameters[0].rnage", "range"]),
    ("unknown outcome", {"outcomes": ["seized"]}, ["outcomes[0]", "unknown outcome", "seized_kg"]),
    ("missing base", {"base": "nowhere.yaml"}, ["base", "not found", "nowhere.yaml"]),
    ("zero replications", {"replications": 0}, ["replications", "0"]),
    ("bad override", {"overrides": {"behaviour.beta": -1}}, ["overrides", "behaviour.beta"]),
]


@pytest.mark.parametrize(("label", "fields", "fragments"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_experiment_files_exit_2_with_a_clear_message(tmp_path, capsys, label, fields, fragments):
    path = write_experiment(tmp_path, **fields)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert str(path) in err
    for fragment in fragments:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not out.exists()


def test_bad_yaml_and_missing_file_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nparameters: [\n")
    assert main(["sweep", str(bad)]) == 2
    assert "YAML syntax error" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_the_command_line_refuses_two_executors(tmp_path, capsys):
    path = write_experiment(tmp_path)
    assert main(["sweep", str(path), "--workers", "2", "--dask-local", "2"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


# --- the shipped experiment files -------------------------------------------------------------------------


def test_sobol_key_parameters_is_the_4608_point_design_of_the_target():
    sweep = load_experiment(EXPERIMENTS / "sobol_key_parameters.yaml")
    exp = sweep.experiment
    assert exp.design == "sobol" and exp.n == 256 and exp.second_order
    assert len(exp.parameters) >= 8 and sweep.n_points == 256 * (2 * len(exp.parameters) + 2)
    assert sweep.n_points == 4608
    assert exp.streams == "common"
    paths = {p.path for p in exp.parameters}
    assert {"behaviour.beta", "behaviour.memory", "ports[kind=hub].q", "succession.psi"} <= paths
    # a point's values reach the scenario
    k = 17
    values = dict(zip(sweep.design.names, sweep.design.points[k], strict=True))
    cfg = sweep.config(k)
    assert cfg.ports["antwerp"].q == cfg.ports["rotterdam"].q == values["hub_q"]
    assert cfg.networks.risk_aversion.median == values["risk_aversion"]


@pytest.mark.skipif(
    "info_exchange" not in Enforcement.model_fields,
    reason="enforcement.info_exchange is not in the scenario schema yet (issue 3)",
)
def test_info_exchange_delay_is_a_grid_over_delay_and_share():
    sweep = load_experiment(EXPERIMENTS / "info_exchange_delay.yaml")
    assert sweep.n_points == 18
    cfg = sweep.config(sweep.n_points - 1)
    assert cfg.enforcement.info_exchange.delay_weeks == 12 and cfg.enforcement.info_exchange.share == 0.8


def test_regional_budget_split_keeps_the_joint_budget_at_180():
    sweep = load_experiment(EXPERIMENTS / "regional_budget_split.yaml")
    assert sweep.n_points == 16
    pooled = []
    for k in range(sweep.n_points):
        cfg = sweep.config(k)
        ag = cfg.enforcement.agencies
        js = cfg.enforcement.joint_strategy
        assert ag["BE"].budget + ag["NL"].budget + js.budget == pytest.approx(180.0)
        assert js.rule == sweep.design.points[k][1]
        pooled.append(js.budget)
    assert min(pooled) == 0.0 and max(pooled) == pytest.approx(144.0)


# --- run_model: EMA Workbench and SALib ---------------------------------------------------------------------


def test_run_model_returns_the_scenario_metrics_and_is_reproducible():
    kw = {"scenario": BASELINE, "weeks": 30, "warmup_weeks": 10, "n_slots": 10, "rng": 3}
    a = run_model(beta=0.3, **kw)
    b = run_model(behaviour__beta=0.3, **kw)
    assert pd.Series(a).equals(pd.Series(b))  # short name and path name are the same parameter (NaN == NaN here)
    assert {"seized_kg", "hub_share", "networks_dismantled"} <= set(a)
    assert all(isinstance(v, float) for v in a.values())
    cfg = load_scenario(BASELINE, overrides={**TINY, "behaviour.beta": 0.3})
    ref = run_batch(cfg, replications=1, seed=3)
    assert a["seized_kg"] == ref.metrics["seized_kg"][0]
    assert run_model(beta=0.9, **kw)["hub_share"] != a["hub_share"]
    assert run_model(beta=0.3, **{**kw, "rng": 4})["shipped_kg"] != a["shipped_kg"]
    assert parameter_path("hub_q") == "ports[kind=hub].q"
    assert parameter_path("enforcement__BE__budget") == "enforcement.BE.budget"


def test_run_model_rejects_an_unknown_parameter():
    with pytest.raises(ConfigError, match=r"run_model.*betta"):
        run_model(scenario=BASELINE, weeks=30, behaviour__betta=0.3)


def test_the_ema_workbench_example_runs(tmp_path):
    """docs/experiments.md: run_model as an EMA Workbench ReplicatorModel, a handful of experiments."""
    ema = pytest.importorskip("ema_workbench")

    model = ema.ReplicatorModel("displacement", function=run_model)
    model.uncertainties = [ema.RealParameter("beta", 0.1, 1.0), ema.RealParameter("hub_q", 1.5, 3.0)]
    model.constants = [
        ema.Constant("scenario", str(BASELINE)),
        ema.Constant("weeks", 30),
        ema.Constant("warmup_weeks", 10),
        ema.Constant("n_slots", 10),
    ]
    model.replications = [{"rng": 1}, {"rng": 2}]
    model.outcomes = [
        ema.ScalarOutcome("seized_kg", function=np.mean),
        ema.ScalarOutcome("hub_share", function=np.mean),
    ]
    with ema.SequentialEvaluator(model) as evaluator:
        experiments, outcomes = evaluator.perform_experiments(scenarios=4)
    assert len(experiments) == 4
    assert outcomes["seized_kg"].shape == (4,)
    first = experiments.iloc[0]
    direct = [
        run_model(
            beta=first["beta"], hub_q=first["hub_q"], scenario=BASELINE, weeks=30, warmup_weeks=10, n_slots=10, rng=r
        )
        for r in (1, 2)
    ]
    assert outcomes["hub_share"][0] == pytest.approx(np.mean([d["hub_share"] for d in direct]))


def test_the_salib_problemspec_example_runs():
    from SALib import ProblemSpec

    sp = ProblemSpec({"names": ["beta", "hub_q"], "bounds": [[0.1, 1.0], [1.5, 3.0]], "outputs": ["hub_share"]})

    def evaluate(x: np.ndarray) -> np.ndarray:
        return np.array(
            [
                run_model(beta=b, hub_q=q, scenario=BASELINE, weeks=30, warmup_weeks=10, n_slots=10, rng=1)["hub_share"]
                for b, q in x
            ]
        )

    sp.sample_sobol(4, calc_second_order=False, seed=1).evaluate(evaluate).analyze_sobol(calc_second_order=False)
    assert sp.samples.shape == (16, 2)
    assert set(sp.analysis.to_df()[0].columns) >= {"ST", "ST_conf"}


def test_a_grid_point_the_schema_refuses_is_reported_at_load_time(tmp_path, capsys):
    """Each level alone is valid; the combination weeks 20 with warm-up 30 is not: exit 2, nothing written."""
    path = write_experiment(
        tmp_path,
        "clash",
        overrides={"weeks": 60, "networks.n_slots": 10, "warmup_weeks": 10},
        parameters=[{"path": "weeks", "levels": [60, 20]}, {"path": "warmup_weeks", "levels": [10, 30]}],
    )
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "point 3 (weeks=20, warmup_weeks=30)" in err and "warm-up must end before the horizon" in err
    assert not out.exists()


def test_a_sampled_point_the_schema_refuses_stops_the_sweep_naming_it(tmp_path):
    path = write_experiment(
        tmp_path,
        "clash",
        design="lhs",
        n=6,
        overrides={"weeks": 60, "networks.n_slots": 10, "warmup_weeks": 10},
        parameters=[
            {"path": "weeks", "range": [20, 60], "type": "integer"},
            {"path": "warmup_weeks", "range": [5, 40], "type": "integer"},
        ],
    )
    sweep = load_experiment(path)
    bad = [k for k, (w, u) in sweep.design.points.items() if u >= w]
    assert bad, "the design should hold at least one invalid combination"
    with pytest.raises(ConfigError, match=rf"point {bad[0]} \(weeks=.*warm-up must end before the horizon"):
        run_sweep(sweep, tmp_path / "out", chunk_size=1, figures=False)
    assert len(list((tmp_path / "out" / "chunks").glob("*.csv"))) == bad[0]  # the points before it are kept


def test_run_sweep_accepts_any_concurrent_futures_executor(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    sweep = load_experiment(write_experiment(tmp_path))
    ref = run_sweep(sweep, tmp_path / "serial", chunk_size=6, figures=False)
    with ThreadPoolExecutor(2) as pool:
        res = run_sweep(sweep, tmp_path / "threads", executor=pool, chunk_size=1, figures=False)
    assert res.table.read_bytes() == ref.table.read_bytes()


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux only")
def test_default_workers_are_the_available_cores():
    from displacement_sim.executors import available_cores

    assert available_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("fields", "n", "match"),
    [
        ({"design": "lhs", "n": 10**8}, None, r"n: the lhs design would have 100,000,000 points.*n up to 1,000,000"),
        ({"design": "lhs", "n": 10}, 10**30, r"n: the lhs design would have 1,000,000,000,000,000,000,000,000,000,000"),
        ({"design": "sobol", "n": 4}, 2**40, r"n: the sobol design would have .* n up to 131,072 here"),
        ({"design": "morris", "n": 4}, 10**21, r"n: the morris design would have"),
    ],
)
def test_a_design_too_large_to_hold_is_refused(tmp_path, fields, n, match) -> None:
    """More than MAX_POINTS points (in the file or from --n): a ConfigError on n, before any design is drawn."""
    continuous = [{"path": "behaviour.beta", "range": [0.2, 0.8]}, {"path": "behaviour.zeta", "range": [0.1, 0.5]}]
    path = write_experiment(tmp_path, parameters=continuous, **fields)
    with pytest.raises(ConfigError, match=match):
        load_experiment(path, n=n)


def test_a_grid_too_large_to_hold_is_refused(tmp_path, capsys) -> None:
    """A grid of 1,048,576 combinations: exit 2 on the command line, naming the parameters; nothing written."""
    levels = [{"path": "behaviour.beta", "levels": [0.1 * (k + 1) for k in range(16)]}]
    levels += [
        {"path": p, "levels": [0.05 * (k + 1) for k in range(16)]}
        for p in ("behaviour.zeta", "enforcement.BE.budget", "enforcement.NL.budget", "enforcement.info_exchange.share")
    ]
    path = write_experiment(tmp_path, parameters=levels)
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: parameters: the grid would have 1,048,576 points") and err.count("\n") == 1
    assert not out.exists()
