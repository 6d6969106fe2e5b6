"""Figures: every function runs on real results and on a single-replication result.

Each figure is saved as PNG and checked to be a non-blank image with the
expected number of panels.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from PIL import Image

from displacement_sim import load_scenario, run_batch
from displacement_sim.compare import build_comparison
from displacement_sim.plots import (
    TOP_PORTS,
    coast_outline,
    comparison_figures,
    flow_bands,
    flow_groups,
    plot_flows,
    plot_port_changes,
    plot_port_map,
    plot_seizures,
    plot_shares,
    t_per_year,
)

SMALL = {"weeks": 156, "networks.n_slots": 30}


def _comparison(scenario_dir, replications: int) -> dict:
    names = ("baseline", "hub_hardening", "regional_ports_joint")
    runs = [
        run_batch(
            load_scenario(scenario_dir / f"{n}.yaml", overrides=SMALL),
            replications,
            seed=5,
            eval_from=104,
            keep_series=True,
        )
        for n in names
    ]
    return build_comparison(runs)


@pytest.fixture(scope="module", params=[6, 1], ids=["6 replications", "1 replication"])
def comp(request, scenario_dir):
    return _comparison(scenario_dir, request.param)


def png_check(fig: Figure) -> None:
    """The figure saves as a PNG that is not one flat colour."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    img = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=float)
    assert img.std() > 5  # not blank


def panels(fig: Figure) -> int:
    """Data axes, without colour bars."""
    return sum(1 for ax in fig.axes if ax.get_label() != "<colorbar>")


def one_rep(comp) -> bool:
    return comp["replications"] == 1


def weeks_eval(comp) -> int:
    return comp["eval_weeks"][1] - comp["eval_weeks"][0]


def test_flows_one_panel_per_scenario_with_bands_only_when_there_are_replications(comp):
    fig = plot_flows(comp["flow_bands"], warmup_weeks=52, intervention_weeks={"hub_hardening": 104})
    assert panels(fig) == 3
    bands = sum(
        isinstance(c, PolyCollection) and not c.get_label().startswith("_span")
        for ax in fig.axes
        for c in ax.collections
    )
    n_groups = len(comp["flow_bands"]["groups"])
    if one_rep(comp):
        assert bands == 0 and "means only" in fig._suptitle.get_text()
    else:
        assert bands == 3 * n_groups
    assert fig.axes[0].get_ylabel() == "flow shipped, t/yr"
    png_check(fig)


def test_shares_side_by_side(comp):
    fig = plot_shares(comp["summaries"], comp["ports"])
    assert panels(fig) == 1
    ax = fig.axes[0]
    assert len(ax.patches) == 3 * len(comp["ports"])  # one bar per port and scenario
    assert "%" in ax.get_xlabel()
    assert ("no CI" in ax.get_title()) == one_rep(comp)
    png_check(fig)


def test_port_changes_sorted_with_ci(comp):
    fig = plot_port_changes(comp["comparisons"], comp["ports"], weeks_eval(comp))
    assert panels(fig) == 2
    ax = fig.axes[0]
    widths = [p.get_width() for p in ax.patches]
    assert widths == sorted(widths)  # sorted by change
    entry = comp["comparisons"]["hub_hardening"]
    expected = [d["shipped_kg"]["mean"] for d in entry["port_differences"].values()]
    expected += [
        entry["differences"][k]["mean"] for k in ("elsewhere_kg", "held_kg", "lost_kg") if k in entry["differences"]
    ]
    assert widths == pytest.approx(sorted(t_per_year(x, weeks_eval(comp)) for x in expected))
    assert "t/yr" in ax.get_xlabel()
    assert ("no CI" in fig._suptitle.get_text()) == one_rep(comp)
    png_check(fig)


def test_map_bubbles_and_coast(comp):
    w = weeks_eval(comp)
    flows = {
        k: {p["id"]: t_per_year(comp["summaries"][k]["ports"][p["id"]]["shipped_kg"]["mean"], w) for p in comp["ports"]}
        for k in comp["comparisons"]
    }
    changes = {
        k: {p: t_per_year(d["shipped_kg"]["mean"], w) for p, d in e["port_differences"].items()}
        for k, e in comp["comparisons"].items()
    }
    fig = plot_port_map(comp["ports"], flows, changes)
    assert panels(fig) == 2 and len(fig.axes) == 3  # two maps and a colour bar
    ax = fig.axes[0]
    assert len(ax.collections[0].get_offsets()) == len(comp["ports"])
    assert len(ax.lines) >= len(coast_outline()["coast"])
    png_check(fig)
    plain = plot_port_map(comp["ports"], {"run": flows["hub_hardening"]})  # no change: no colour bar
    assert len(plain.axes) == 1


def test_seizures_with_and_without_dismantled_networks(comp):
    fig = plot_seizures(comp["summaries"], weeks_eval(comp))
    has = all("networks_dismantled" in s["metrics"] for s in comp["summaries"].values())
    assert panels(fig) == (2 if has else 1)
    png_check(fig)
    without = copy.deepcopy(comp["summaries"])
    for s in without.values():
        s["metrics"].pop("networks_dismantled", None)
    fig = plot_seizures(without, weeks_eval(comp))
    assert panels(fig) == 1 and "not recorded" in fig._suptitle.get_text()
    assert ("no CI" in fig._suptitle.get_text()) == one_rep(comp)


def test_all_figures_of_a_comparison(comp):
    figs = comparison_figures(comp)
    assert set(figs) == {"flows", "shares", "changes", "map", "seizures"}
    assert all(isinstance(f, Figure) for f in figs.values())


def test_coast_outline_is_small_and_in_range():
    coast = coast_outline()
    assert "rough" in coast["note"].lower()
    points = [pt for group in ("coast", "borders") for line in coast[group].values() for pt in line]
    assert 50 < len(points) <= 400
    assert all(0 <= lon <= 11 and 48 <= lat <= 55 for lon, lat in points)


def test_flow_groups_always_show_the_targeted_ports():
    order = ["a", "b", "c", "d", "e", "f"]
    names = {p: p.upper() for p in order}
    groups = flow_groups(np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0]), order, names, always=["f"])
    assert list(groups)[:TOP_PORTS] == ["F", "A", "B", "C"][:TOP_PORTS]
    assert groups["other ports"] == [i for i in range(6) if order[i] not in {"f", "a", "b", "c"}]
    assert groups["elsewhere (other routes)"] == [6]


def test_flow_bands_are_trailing_means_in_tonnes_per_year():
    shipped = np.zeros((2, 4, 3))  # 2 replications, 4 weeks, ports x and y plus elsewhere
    shipped[:, :, 0] = [[10.0, 20.0, 30.0, 40.0], [30.0, 40.0, 50.0, 60.0]]
    out = flow_bands(shipped, {"X": [0], "rest": [1, 2]}, weeks_window=2)
    # replication means of the 2-week trailing mean (partial in week 0), x 52 / 1000
    expected = np.array([20.0, 25.0, 35.0, 45.0]) * 52 / 1000
    np.testing.assert_allclose(out["X"]["mean"], expected, atol=1e-4)
    assert out["X"]["p10"][0] < out["X"]["mean"][0] < out["X"]["p90"][0]
    assert out["rest"]["mean"] == [0.0] * 4
    single = flow_bands(shipped[:1], {"X": [0]}, weeks_window=2)
    assert single["X"]["p10"] is None  # one replication: no band
