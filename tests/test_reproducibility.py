"""Reproducibility and common random numbers (DESIGN.md sections 5 and 6).

Claims: the same seed gives the same results and another seed other results;
scenarios run with the same seed share their draws, so a control and a
treatment are identical until the first intervention (both engines); a batch
does not depend on how its replications are grouped or chunked; the Mesa model
works with ``mesa.batch_run`` as documented; the results folder records what is
needed to rerun a result and writes JSON without NaN.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import tempfile
from pathlib import Path

import mesa
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import displacement_sim
from displacement_sim import DisplacementModel, load_scenario, run_batch, runner
from displacement_sim.results import write_results

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
INTERVENTION_WEEK = 104


def small(name: str, weeks: int, n_slots: int):
    return load_scenario(SCENARIOS / name, overrides={"weeks": weeks, "networks.n_slots": n_slots})


@pytest.fixture(scope="module")
def cfg_small():
    return load_scenario(
        {
            "name": "repro",
            "weeks": 40,
            "warmup_weeks": 8,
            "networks": {"n_slots": 8},
            "enforcement": {"BE": {"budget": 80}, "NL": {"budget": 60, "rule": "reactive"}},
        }
    )


# --- seeds ---------------------------------------------------------------------------------------------


def test_same_seed_same_results(cfg_small) -> None:
    a = run_batch(cfg_small, 3, seed=17, keep_series=True)
    b = run_batch(cfg_small, 3, seed=17, keep_series=True)
    assert a.summary() == b.summary()
    for k in a.series:
        np.testing.assert_array_equal(a.series[k], b.series[k], err_msg=k)
    # the Mesa engine too
    m1 = DisplacementModel(config=cfg_small, rng=17).run().weekly()
    m2 = DisplacementModel(config=cfg_small, rng=17).run().weekly()
    for k in m1:
        np.testing.assert_array_equal(m1[k], m2[k], err_msg=k)


def test_different_seeds_differ(cfg_small) -> None:
    a = run_batch(cfg_small, 3, seed=17)
    b = run_batch(cfg_small, 3, seed=18)
    assert a.summary()["metrics"] != b.summary()["metrics"]
    assert not np.array_equal(a.metrics["shipped_kg"], b.metrics["shipped_kg"])
    # and the scenario's own seed is the default
    c = run_batch(cfg_small, 3)
    d = run_batch(cfg_small, 3, seed=cfg_small.seed)
    assert c.seed == cfg_small.seed and c.summary() == d.summary()


# --- common random numbers -------------------------------------------------------------------------------


def assert_crn(control: dict[str, np.ndarray], treatment: dict[str, np.ndarray], week: int) -> None:
    """Identical before ``week`` (every series), different from ``week`` on (rates at once, flows later).

    Series have the week axis at -2 (see :func:`week_axis_series`).
    """
    assert set(control) == set(treatment)
    for k in control:
        np.testing.assert_array_equal(
            control[k][..., :week, :], treatment[k][..., :week, :], err_msg=f"{k} differs before the intervention"
        )
    rates_c, rates_t = control["inspection_rate"][..., week, :], treatment["inspection_rate"][..., week, :]
    assert not np.array_equal(rates_c, rates_t), "the intervention did not change the inspection rates"
    flows = ("loads", "shipped_kg", "seized_loads", "seized_kg")
    assert any(not np.array_equal(control[k][..., week:, :], treatment[k][..., week:, :]) for k in flows), (
        "flows identical after the intervention"
    )


def week_axis_series(series: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Series ``(R, weeks, ...)`` with a port (or agency) axis after the week axis, so the week axis is -2 for all."""
    return {k: v if v.ndim >= 3 else v[..., None] for k, v in series.items()}


def test_common_random_numbers_vectorized() -> None:
    """baseline and hub_hardening, same seed, R = 2: identical weeks 0..103, different after."""
    control = small("baseline.yaml", 130, 25)
    treatment = small("hub_hardening.yaml", 130, 25)
    assert [iv.week for iv in treatment.interventions] == [INTERVENTION_WEEK]
    c = run_batch(control, 2, seed=3, keep_series=True)
    t = run_batch(treatment, 2, seed=3, keep_series=True)
    assert_crn(week_axis_series(c.series), week_axis_series(t.series), INTERVENTION_WEEK)


def test_common_random_numbers_mesa() -> None:
    """The same on the Mesa engine, one replication over a shorter run."""
    control = small("baseline.yaml", 112, 12)
    treatment = small("hub_hardening.yaml", 112, 12)
    c = DisplacementModel(config=control, rng=3).run().weekly()
    t = DisplacementModel(config=treatment, rng=3).run().weekly()
    one = {k: v[None] for k, v in c.items()}, {k: v[None] for k, v in t.items()}  # a replication axis, as R = 1
    assert_crn(week_axis_series(one[0]), week_axis_series(one[1]), INTERVENTION_WEEK)


# --- grouping and chunking ---------------------------------------------------------------------------------


def test_batch_independent_of_grouping(cfg_small) -> None:
    """R = 4 equals R = 2 (first_replication 0) followed by R = 2 (first_replication 2), metric by metric."""
    whole = run_batch(cfg_small, 4, seed=9)
    first = run_batch(cfg_small, 2, seed=9, first_replication=0)
    second = run_batch(cfg_small, 2, seed=9, first_replication=2)
    np.testing.assert_array_equal(second.replications, [2, 3])
    assert set(whole.metrics) == set(first.metrics)
    for k, v in whole.metrics.items():
        np.testing.assert_array_equal(v, np.concatenate([first.metrics[k], second.metrics[k]]), err_msg=k)
    for k, v in whole.port_values.items():
        np.testing.assert_array_equal(v, np.concatenate([first.port_values[k], second.port_values[k]]), err_msg=k)


def test_batch_independent_of_chunking(cfg_small, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forcing the batch into chunks of one replication (memory limit) changes no replication's numbers."""
    whole = run_batch(cfg_small, 3, seed=4, keep_series=True)
    monkeypatch.setattr(runner, "MAX_CELLS_PER_BATCH", 1)
    chunked = run_batch(cfg_small, 3, seed=4, keep_series=True)
    for k, v in whole.metrics.items():
        np.testing.assert_array_equal(v, chunked.metrics[k], err_msg=k)
    for k, v in whole.series.items():
        np.testing.assert_array_equal(v, chunked.series[k], err_msg=k)
    for k, v in whole.bands.items():
        np.testing.assert_array_equal(v, chunked.bands[k], err_msg=k)


@pytest.mark.parametrize("max_reps", [1, 5])
def test_chunked_batch_has_the_bands_of_one_batch(cfg_small, monkeypatch: pytest.MonkeyPatch, max_reps) -> None:
    """A batch split by the memory limit, without kept series, has the weekly bands of one batch, bit for bit.

    Quantiles of groups cannot be combined into the quantiles of the whole, so the groups keep
    the bands' series and the bands are computed once over every replication; no series is returned.
    17 replications in uneven groups (17 x 1, or 5 + 5 + 5 + 2): enough for numpy's pairwise sums.
    """
    whole = run_batch(cfg_small, 17, seed=4)
    plan = runner.build_plan(cfg_small)
    monkeypatch.setattr(runner, "MAX_CELLS_PER_BATCH", plan.n_slots * len(plan.params[0].port_ids) * max_reps)
    chunked = run_batch(cfg_small, 17, seed=4)
    assert chunked.series is None
    assert set(chunked.bands) == set(whole.bands)
    for k, v in whole.bands.items():
        assert not np.isnan(v).any(), k
        np.testing.assert_array_equal(v, chunked.bands[k], err_msg=k)
    for k, v in whole.metrics.items():
        np.testing.assert_array_equal(v, chunked.metrics[k], err_msg=k)
    # the test's power: merging the groups' quantiles (the replication-weighted average used before)
    # would not pass it
    parts = [run_batch(cfg_small, n, seed=4, first_replication=f) for f, n in ((0, 10), (10, 7))]
    averaged = (10 * parts[0].bands["shipped_kg"][:, 1:] + 7 * parts[1].bands["shipped_kg"][:, 1:]) / 17
    assert not np.array_equal(averaged, whole.bands["shipped_kg"][:, 1:])


def test_recorders_merge_only_as_parts_of_one_run() -> None:
    """Bands computed week by week, a recorder merged twice or a different run: refused; merged parts are consumed."""
    from displacement_sim.metrics import Recorder

    a, b = Recorder(2, 3, 0, 2), Recorder(1, 3, 0, 2)
    with pytest.raises(ValueError, match="mergeable"):
        a.merge(b)
    m1, m2 = Recorder(2, 3, 0, 2, mergeable=True), Recorder(1, 3, 0, 2, mergeable=True)
    with pytest.raises(ValueError, match="twice"):
        m1.merge(m1)
    with pytest.raises(ValueError, match="weeks is"):
        m1.merge(Recorder(1, 4, 0, 2, mergeable=True))
    with pytest.raises(ValueError, match="with_bands is"):
        Recorder.concatenate([Recorder(1, 3, 0, 2, bands=False), Recorder(1, 3, 0, 2, mergeable=True)])
    rec = {"shipped_kg": np.ones((1, 3)), "seized_kg": np.ones((1, 3)), "inspection_rate": np.ones((1, 2))}
    for week in range(3):
        m1.add(week, {k: np.repeat(v, 2, axis=0) for k, v in rec.items()})
        m2.add(week, rec)
    merged = m1.merge(m2)
    assert merged.replications == 3 and len(merged.series["shipped_kg"]) == 3
    merged.finish_bands()
    np.testing.assert_array_equal(merged.bands["delivered_kg"][:, 0], 0.0)
    assert merged.series == {}
    with pytest.raises(ValueError, match="merged into another"):
        m1.finish_bands()


# --- Mesa conventions ----------------------------------------------------------------------------------------


@pytest.fixture
def restore_start_method():
    """``mesa.batch_run`` forces the 'spawn' start method globally; put the previous one back."""
    before = multiprocessing.get_start_method(allow_none=True)
    yield
    multiprocessing.set_start_method(before, force=True)


def test_mesa_batch_run(cfg_small, restore_start_method) -> None:
    """batch_run works with ``parameters={'config': [cfg]}``, stops at the horizon, matches a direct run."""
    rows = mesa.batch_run(
        DisplacementModel,
        parameters={"config": [cfg_small]},
        rng=[1, 2],
        max_steps=1000,
        display_progress=False,
        number_processes=1,
    )
    assert len(rows) == 2
    by_rng = {row["rng"]: row for row in rows}
    for row in rows:
        assert row["Step"] == cfg_small.weeks, "the model did not stop at its horizon"
        assert row["week"] == cfg_small.weeks - 1
    direct = DisplacementModel(config=cfg_small, rng=1).run()
    assert by_rng[1]["shipped_kg"] == pytest.approx(direct.weekly()["shipped_kg"][-1, :-1].sum(), rel=1e-12)
    assert by_rng[1]["shipped_kg"] != by_rng[2]["shipped_kg"]


def test_config_tuple_is_rejected_with_hint(cfg_small, restore_start_method) -> None:
    with pytest.raises(TypeError, match=r"parameters=\{'config': \[cfg\]\}"):
        DisplacementModel(config=tuple(cfg_small), rng=1)
    # what happens when the list is forgotten: batch_run iterates the config into tuples
    with pytest.raises(TypeError, match="config is a tuple"):
        mesa.batch_run(
            DisplacementModel,
            parameters={"config": cfg_small},
            rng=[1],
            max_steps=5,
            display_progress=False,
            number_processes=1,
        )


def test_keyword_overrides_apply(cfg_small) -> None:
    model = DisplacementModel(config=cfg_small, rng=1, behaviour__beta=0.2, enforcement__BE__budget=10.0)
    assert model.config.behaviour.beta == 0.2
    assert model.params.beta == 0.2
    assert model.config.enforcement.agencies["BE"].budget == 10.0
    assert cfg_small.behaviour.beta != 0.2, "the loaded config must stay unchanged"
    # the same as loading with the override
    same = load_scenario(
        {**cfg_small.model_dump(mode="python"), "name": cfg_small.name},
        overrides={"behaviour.beta": 0.2, "enforcement.BE.budget": 10.0},
    )
    a = model.run().weekly()
    b = DisplacementModel(config=same, rng=1).run().weekly()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    plain = DisplacementModel(config=cfg_small, rng=1).run().weekly()
    assert not np.array_equal(plain["loads"], a["loads"])


# --- results folder -------------------------------------------------------------------------------------------


def _no_nan(text: str):
    def refuse(token: str):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def test_results_folder_manifest_and_summary(cfg_small, tmp_path: Path) -> None:
    result = run_batch(cfg_small, 2, seed=21)
    out = write_results(result, tmp_path / "run")
    manifest = _no_nan((out / "manifest.json").read_text())
    assert manifest["seed"] == 21
    assert manifest["version"] == displacement_sim.__version__
    assert manifest["replications"] == 2
    assert manifest["config"] == json.loads(json.dumps(cfg_small.model_dump(mode="json")))
    # the manifest's config reloads to the same scenario and reruns to the same summary
    again = load_scenario(manifest["config"])
    assert again == cfg_small
    summary = _no_nan((out / "summary.json").read_text())
    assert summary == _no_nan(json.dumps(run_batch(again, 2, seed=manifest["seed"]).summary(), default=float))


def test_cli_replays_one_replication_of_a_batch_on_mesa(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``run --engine mesa --first-replication K`` writes replication K of a vectorized batch, the same numbers."""
    import pandas as pd

    from displacement_sim.cli import main

    common = ["scenarios/baseline.yaml", "--weeks", "60", "--seed", "13"]
    assert main(["run", *common, "--replications", "3", "--out", str(tmp_path / "batch")]) == 0
    assert main(["run", *common, "--engine", "mesa", "--first-replication", "2", "--out", str(tmp_path / "one")]) == 0
    capsys.readouterr()
    batch = pd.read_csv(tmp_path / "batch" / "replications.csv")
    one = pd.read_csv(tmp_path / "one" / "replications.csv")
    assert list(one["replication"]) == [2]
    assert json.loads((tmp_path / "one" / "manifest.json").read_text())["first_replication"] == 2
    row = batch[batch["replication"] == 2].reset_index(drop=True)
    assert row["shipped_kg"].iloc[0] > 0
    pd.testing.assert_frame_equal(one, row, check_exact=True)
    ports = {k: pd.read_csv(tmp_path / k / "ports.csv") for k in ("batch", "one")}
    pd.testing.assert_frame_equal(
        ports["one"], ports["batch"][ports["batch"]["replication"] == 2].reset_index(drop=True), check_exact=True
    )
    assert not one.equals(batch[batch["replication"] == 1].reset_index(drop=True))


def test_summary_json_has_no_nan_when_undefined(tmp_path: Path) -> None:
    """No supply: every ratio is undefined; one replication: no CI. JSON holds null, never NaN."""
    cfg = load_scenario({"name": "empty", "weeks": 12, "warmup_weeks": 2, "inputs": {"supply_index": {0: 0.0}}})
    result = run_batch(cfg, 1, seed=1)
    assert np.isnan(result.metrics["hub_share"][0])
    out = write_results(result, tmp_path / "empty")
    summary = _no_nan((out / "summary.json").read_text())
    assert summary["metrics"]["hub_share"]["mean"] is None
    assert summary["metrics"]["shipped_kg"]["mean"] == 0.0
    assert summary["metrics"]["shipped_kg"]["ci95"] == [None, None]
    for name in ("manifest.json",):
        _no_nan((out / name).read_text())


def test_common_random_numbers_hold_across_scenarios_with_different_load_bounds() -> None:
    """A scenario that needs more load slots per week still shares the control's draws at a common width."""
    from displacement_sim.params import required_load_slots

    control = load_scenario(SCENARIOS / "baseline.yaml", overrides={"weeks": 90, "networks.n_slots": 20})
    policy = load_scenario(
        SCENARIOS / "baseline.yaml",
        overrides={
            "weeks": 90,
            "networks.n_slots": 20,
            "interventions": [{"week": 60, "set": {"behaviour.split_floor": 0.3, "behaviour.zeta": 4.0}}],
        },
    )
    widths = required_load_slots(control), required_load_slots(policy)
    assert widths[0] < widths[1]  # without a common width the blocks would differ and so would every draw
    common = max(widths)
    a = run_batch(control, 2, seed=3, keep_series=True, l_max=common)
    b = run_batch(policy, 2, seed=3, keep_series=True, l_max=common)
    assert np.array_equal(a.series["shipped_kg"][:, :60], b.series["shipped_kg"][:, :60])
    assert not np.array_equal(a.series["shipped_kg"][:, 60:], b.series["shipped_kg"][:, 60:])
    with pytest.raises(ValueError, match="load slots"):
        run_batch(policy, 1, seed=3, l_max=widths[0])


def _spill_feed(sizes: tuple[int, ...], weeks: int, seed: int = 3) -> list[list[dict[str, np.ndarray]]]:
    """Random weekly records for recorders of ``sizes`` replications (3 ports)."""
    rng = np.random.default_rng(seed)
    return [
        [
            {
                "shipped_kg": rng.gamma(2.0, 9.0, (n, 4)),
                "seized_kg": rng.gamma(1.0, 2.0, (n, 4)),
                "inspection_rate": rng.random((n, 3)),
            }
            for _ in range(weeks)
        ]
        for n in sizes
    ]


def _spilled_parts(feeds, weeks: int, directory) -> list:
    from displacement_sim.metrics import Recorder

    parts = [Recorder(len(f[0]["shipped_kg"]), weeks, 2, 3, mergeable=True, spill_dir=directory) for f in feeds]
    for part, feed in zip(parts, feeds, strict=True):
        for week in range(weeks):
            part.add(week, feed[week])
    return parts


def test_spilled_series_are_read_from_their_files_and_give_the_bands_of_memory(tmp_path) -> None:
    """Recorders spilling the bands' series: files only (nothing in memory), the same bands, the files freed."""
    from displacement_sim.metrics import Recorder, _SpilledWeeks

    weeks, sizes = 6, (4, 3, 5)
    feeds = _spill_feed(sizes, weeks)
    one = Recorder(sum(sizes), weeks, 2, 3)  # every replication, bands week by week
    for week in range(weeks):
        one.add(week, {k: np.concatenate([f[week][k] for f in feeds]) for k in feeds[0][0]})
    parts = _spilled_parts(feeds, weeks, tmp_path)
    spills = [w for p in parts for w in p.series.values()]
    assert len(spills) == 3 * len(sizes) and all(isinstance(w, _SpilledWeeks) for w in spills)
    assert all(not isinstance(v, np.ndarray | list) for w in spills for v in vars(w).values())  # no weeks held
    assert sum(os.fstat(w.file.fileno()).st_size for w in spills) == 8 * weeks * sum(n * (4 + 4 + 3) for n in sizes)
    assert list(tmp_path.iterdir()) == []  # anonymous files: nothing to leave behind
    merged = Recorder.concatenate(parts)
    merged.finish_bands()
    for k, v in one.bands.items():
        assert not np.isnan(v).any(), k
        np.testing.assert_array_equal(v, merged.bands[k], err_msg=k)
    np.testing.assert_array_equal(one.totals["shipped_kg"], merged.totals["shipped_kg"])
    assert all(w.file.closed for w in spills) and merged.series == {}
    # the bands are read from the files: week 2 of the first group's shipped kg overwritten on disk
    tampered = _spilled_parts(feeds, weeks, tmp_path)
    shipped = tampered[0].series["shipped_kg"]
    os.pwrite(shipped.file.fileno(), np.full((4, 4), 1e6).tobytes(), 2 * 4 * 4 * 8)
    merged = Recorder.concatenate(tampered)
    merged.finish_bands()
    changed = ~np.all(merged.bands["shipped_kg"] == one.bands["shipped_kg"], axis=(1, 2))
    np.testing.assert_array_equal(changed, np.arange(weeks) == 2)


def test_recorders_merged_one_after_another_free_every_spill_file(tmp_path) -> None:
    """``a.merge(b).merge(c)``: the bands of one recorder, and every part's files closed; a merged recorder is full."""
    from displacement_sim.metrics import Recorder

    weeks, sizes = 4, (2, 3, 1)
    feeds = _spill_feed(sizes, weeks, seed=8)
    one = Recorder(sum(sizes), weeks, 2, 3)
    for week in range(weeks):
        one.add(week, {k: np.concatenate([f[week][k] for f in feeds]) for k in feeds[0][0]})
    a, b, c = _spilled_parts(feeds, weeks, tmp_path)
    spills = [w for p in (a, b, c) for w in p.series.values()]
    merged = a.merge(b).merge(c)
    with pytest.raises(ValueError, match="takes no more weeks"):
        merged.add(weeks, feeds[0][0])
    merged.finish_bands()
    for k, v in one.bands.items():
        np.testing.assert_array_equal(v, merged.bands[k], err_msg=k)
    assert all(w.file.closed for w in spills)


def test_spilled_weeks_keep_their_dtype(tmp_path) -> None:
    """A spilled series reads back the bits it was given, float32 included; a week of another shape is refused."""
    from displacement_sim.metrics import _SpilledWeeks

    weeks = _SpilledWeeks(tmp_path)
    data = [np.random.default_rng(w).random((3, 2)).astype(np.float32) for w in range(3)]
    for w in data:
        weeks.append(w)
    for w in range(3):
        assert weeks[w].dtype == np.float32
        np.testing.assert_array_equal(weeks[w], data[w])
    with pytest.raises(IndexError, match="week 3 of 3"):
        weeks[3]
    with pytest.raises(ValueError, match="among weeks of"):
        weeks.append(np.zeros((3, 2)))
    weeks.discard()
    assert weeks.file.closed


@pytest.mark.parametrize("fail", [None, RuntimeError, KeyboardInterrupt])
def test_split_batch_frees_its_spill_files_however_it_ends(cfg_small, monkeypatch, tmp_path, fail) -> None:
    """run_batch's groups spill the bands' series (only then) to anonymous files, closed when the run ends or fails."""
    from displacement_sim import metrics, vectorized

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made: list = []
    init = metrics._SpilledWeeks.__init__

    def recording_init(self, directory) -> None:
        init(self, directory)
        made.append((self, directory))

    monkeypatch.setattr(metrics._SpilledWeeks, "__init__", recording_init)
    plan = runner.build_plan(cfg_small)
    monkeypatch.setattr(runner, "MAX_CELLS_PER_BATCH", plan.n_slots * len(plan.params[0].port_ids) * 2)
    if fail is None:
        run_batch(cfg_small, 5, seed=4)
        assert len(made) == 3 * 3  # three groups, three series
        assert all(len(w) == 0 for w, _ in made)  # read and freed
        for kwargs in ({"keep_series": True}, {"bands": False}):  # nothing spilled: no bands, or series kept
            run_batch(cfg_small, 5, seed=4, **kwargs)
        run_batch(cfg_small, 2, seed=4)  # one group: bands week by week
        assert len(made) == 9
    else:
        simulate = vectorized.simulate

        def second_group_fails(plan, seed, chunk, recorder, point=0):
            if chunk[0] > 0:
                raise fail("stopped")
            return simulate(plan, seed, chunk, recorder, point=point)

        monkeypatch.setattr(vectorized, "simulate", second_group_fails)
        with pytest.raises(fail, match="stopped"):
            run_batch(cfg_small, 5, seed=4)
        assert len(made) == 2 * 3  # the groups that started
    assert {d for _, d in made} == {str(tmp_path)}
    assert all(w.file.closed for w, _ in made)
    assert list(tmp_path.iterdir()) == []


def test_split_batch_without_room_for_its_spill_files_is_refused_before_it_runs(
    cfg_small, monkeypatch, tmp_path, capsys
) -> None:
    """Too little free space for the bands' files: a ConfigError on the replications, exit 2, nothing run or written."""
    import shutil
    from collections import namedtuple

    from displacement_sim import vectorized
    from displacement_sim.cli import main
    from displacement_sim.errors import ConfigError
    from displacement_sim.metrics import Recorder

    plan = runner.build_plan(cfg_small, 30)
    n_ports = len(plan.params[0].port_ids)
    monkeypatch.setattr(runner, "MAX_CELLS_PER_BATCH", plan.n_slots * n_ports * 2)
    per_rep = Recorder.spill_bytes(30, n_ports)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, 4 * per_rep + 1))
    calls: list[int] = []
    simulate = vectorized.simulate

    def counted(*args, **kwargs):
        calls.append(1)
        return simulate(*args, **kwargs)

    monkeypatch.setattr(vectorized, "simulate", counted)
    with pytest.raises(ConfigError, match=r"replications: .*need .* GB of temporary files .*given 5.*at most 4 here"):
        run_batch(cfg_small, 5, seed=4, weeks=30)
    assert calls == []
    run_batch(cfg_small, 4, seed=4, weeks=30)  # four fit
    assert len(calls) == 2  # two groups
    cfg_path = tmp_path / "small.yaml"
    cfg_path.write_text(
        "name: repro\nweeks: 40\nwarmup_weeks: 8\nnetworks: {n_slots: 8}\n"
        "enforcement: {BE: {budget: 80}, NL: {budget: 60, rule: reactive}}\n"
    )  # cfg_small
    out = tmp_path / "out"
    assert main(["run", str(cfg_path), "--replications", "5", "--weeks", "30", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: replications: ") and err.count("\n") == 1 and "TMPDIR" in err, err
    assert not out.exists() and len(calls) == 2


@settings(max_examples=60, deadline=None)
@given(
    replications=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
)
def test_bands_are_each_series_own_mean_and_quantiles(replications: int, seed: int, ties: bool) -> None:
    """The recorder's weekly bands: each series' mean and ``np.quantile``, bit for bit (one call for all series)."""
    from displacement_sim.metrics import QUANTILES, SERIES_KEYS, Recorder

    rng = np.random.default_rng(seed)
    n_ports, weeks = 5, 3
    rec = Recorder(replications, weeks, 0, n_ports)
    feed = []
    for week in range(weeks):
        shipped = (
            rng.integers(0, 4, (replications, n_ports + 1)) * 700.0
            if ties
            else rng.gamma(0.7, 900.0, (replications, n_ports + 1))
        )
        week_rec = {
            "shipped_kg": shipped,
            "seized_kg": shipped * rng.random(shipped.shape).round(1 if ties else 9),
            "inspection_rate": rng.random((replications, n_ports)),
        }
        rec.add(week, week_rec)
        feed.append({**week_rec, "delivered_kg": week_rec["shipped_kg"] - week_rec["seized_kg"]})
    for k in SERIES_KEYS:
        for week in range(weeks):
            np.testing.assert_array_equal(rec.bands[k][week, 0], feed[week][k].mean(axis=0), err_msg=k)
            np.testing.assert_array_equal(
                rec.bands[k][week, 1:], np.quantile(feed[week][k], QUANTILES, axis=0), err_msg=k
            )
