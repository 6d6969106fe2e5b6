"""Fixed-seed regression baseline of ``scenarios/baseline.yaml`` (``displacement_sim.regression``).

The stored file ``tests/data/regression_baseline.json`` must be reproduced to
1e-9 relative on the same numpy build (1e-6 on another); a changed parameter
must break it (the Covasim practice: a baseline that nothing can break checks
nothing). Regenerate after an intended change of the model's behaviour with::

    python -m displacement_sim.regression --update
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from displacement_sim import load_scenario, regression


@pytest.fixture(scope="module")
def stored() -> dict:
    path = regression.default_file()
    assert path.is_file(), f"{path} is missing; create it with: python -m displacement_sim.regression --update"
    return regression.load_file(path)


@pytest.fixture(scope="module")
def current(stored) -> dict:
    s = stored["settings"]
    return regression.snapshot(
        regression.default_scenario(), replications=s["replications"], seed=s["seed"], overrides=s["overrides"] or None
    )


def test_stored_file_has_the_documented_settings(stored):
    s = stored["settings"]
    assert s["scenario"] == "scenarios/baseline.yaml"
    assert (s["engine"], s["replications"], s["seed"]) == ("vectorized", regression.REPLICATIONS, regression.SEED)
    assert s["weeks"] == load_scenario(regression.default_scenario()).weeks  # the full horizon
    assert stored["environment"]["numpy"]
    assert {"shipped_kg", "seized_kg", "seizure_rate", "hub_share", "mean_load_kg"} <= set(stored["metrics"])
    assert {"antwerp", "rotterdam", "zeebrugge"} <= set(stored["ports"])
    assert all(set(v) == {"shipped_kg", "seized_kg"} for v in stored["ports"].values())


def test_baseline_is_reproduced(stored, current):
    result = regression.compare(stored, current)
    same_numpy = stored["environment"]["numpy"] == np.__version__
    assert result.rtol == (regression.RTOL_SAME_NUMPY if same_numpy else regression.RTOL_OTHER_NUMPY)
    assert result.ok, result.report()


def test_changed_parameter_breaks_the_baseline(stored):
    s = stored["settings"]
    beta = load_scenario(regression.default_scenario()).behaviour.beta
    changed = regression.snapshot(
        regression.default_scenario(),
        replications=s["replications"],
        seed=s["seed"],
        overrides={"behaviour.beta": beta + 0.05},
    )
    result = regression.compare(stored, changed)
    assert not result.ok
    names = {m.name for m in result.mismatches}
    assert {"metrics.shipped_kg", "metrics.seized_kg", "ports.antwerp.shipped_kg"} <= names
    assert "metrics.shipped_kg" in result.report()


def _tweak(record: dict, name: str, rel: float) -> dict:
    out = copy.deepcopy(record)
    out["metrics"][name] *= 1.0 + rel
    return out


def test_tolerances_same_and_other_numpy(stored):
    same = copy.deepcopy(stored)
    assert regression.compare(stored, _tweak(same, "seized_kg", 1e-12)).ok
    assert not regression.compare(stored, _tweak(same, "seized_kg", 1e-8)).ok
    other = copy.deepcopy(stored)
    other["environment"]["numpy"] = "0.0.0-other"
    loose = regression.compare(stored, _tweak(other, "seized_kg", 1e-8))
    assert loose.ok and loose.rtol == regression.RTOL_OTHER_NUMPY
    assert "differs" in loose.report() and "1e-06" in loose.report()
    assert not regression.compare(stored, _tweak(other, "seized_kg", 1e-5)).ok
    # a stored value the current run lacks is a mismatch; a newly added metric is only noted
    missing = copy.deepcopy(stored)
    del missing["metrics"]["seized_kg"]
    assert [m.name for m in regression.compare(stored, missing).mismatches] == ["metrics.seized_kg"]
    added = copy.deepcopy(stored)
    added["metrics"]["new_metric"] = 1.0
    assert regression.compare(stored, added).ok
    assert "new_metric" in regression.compare(stored, added).report()


def test_command_line_update_then_compare(tmp_path, capsys):
    scenario = tmp_path / "short.yaml"  # a short horizon keeps the command-line round trip fast
    scenario.write_text("name: short\nweeks: 30\nwarmup_weeks: 10\n", encoding="utf-8")
    path = tmp_path / "baseline.json"
    assert regression.main(["--update", "--file", str(path), "--scenario", str(scenario), "--replications", "2"]) == 0
    settings = json.loads(path.read_text())["settings"]
    assert (settings["replications"], settings["weeks"], settings["seed"]) == (2, 30, regression.SEED)
    assert regression.main(["--file", str(path)]) == 0
    assert "reproduced" in capsys.readouterr().out
    record = json.loads(path.read_text())
    record["ports"]["antwerp"]["seized_kg"] *= 1.001
    path.write_text(json.dumps(record))
    assert regression.main(["--file", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ports.antwerp.seized_kg" in out and "--update" in out
    assert regression.main(["--file", str(tmp_path / "missing.json")]) == 2
