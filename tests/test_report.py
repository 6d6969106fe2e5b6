"""The HTML report: self-contained, rebuilt from a results folder, renders in headless Chromium."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from displacement_sim.cli import main

CHROMIUM = Path("/usr/bin/chromium")
SMALL = ["--replications", "4", "--weeks", "130", "--set", "networks.n_slots=20"]


@pytest.fixture(scope="module")
def compare_run(scenario_dir, tmp_path_factory) -> tuple[Path, str]:
    """One small ``displacement-sim compare`` run shared by the tests: (folder, what it printed)."""
    out = tmp_path_factory.mktemp("report") / "cmp"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(
            [
                "compare",
                str(scenario_dir / "baseline.yaml"),
                str(scenario_dir / "hub_hardening.yaml"),
                str(scenario_dir / "regional_ports_joint.yaml"),
                "--out",
                str(out),
                "--svg",
                *SMALL,
            ]
        )
    assert rc == 0
    return out, buf.getvalue()


@pytest.fixture(scope="module")
def compare_dir(compare_run) -> Path:
    return compare_run[0]


def test_compare_writes_the_folder_and_prints_verdicts(compare_run):
    out, printed = compare_run
    assert "hub_hardening: Flow through the targeted ports (Antwerp, Rotterdam)" in printed
    assert "regional_ports_joint: " in printed and f"report: {out / 'report.html'}" in printed
    comp = json.loads((out / "comparison.json").read_text())
    assert comp["eval_weeks"] == [104, 130]  # from the first intervention week
    assert comp["replications"] == 4 and comp["control"] == "baseline"
    entry = comp["comparisons"]["hub_hardening"]
    keys = {"differences", "port_differences", "decomposition", "displacement_ratio", "wdq", "wdq_observed"}
    assert keys <= set(entry)
    for sub in ("baseline", "hub_hardening", "regional_ports_joint"):
        assert (out / sub / "summary.json").is_file() and (out / sub / "series.csv").is_file()
    for fig in ("flows", "shares", "changes", "map", "seizures"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 10_000
        assert (out / "figures" / f"{fig}.svg").is_file()


def images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)]


def test_report_is_self_contained_with_figures_tables_and_assumptions(compare_dir):
    text = (compare_dir / "report.html").read_text(encoding="utf-8")
    pngs = images(text)
    assert len(pngs) == 5 and all(p[:8] == b"\x89PNG\r\n\x1a\n" and len(p) > 5_000 for p in pngs)
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', text)  # nothing fetched from the network
    assert "<link" not in text and "<script" not in text
    assert text.count("<table") >= 6
    comp = json.loads((compare_dir / "comparison.json").read_text())
    for entry in comp["comparisons"].values():
        assert entry["verdict"].replace("'", "&#x27;") in text
    assert "Resolved configuration of hub_hardening" in text and "<details>" in text
    assert f"seed</td><td>{comp['seed']}</td>" in text
    assert comp["provenance"]["version"] in text


def test_report_command_rebuilds_the_same_report(compare_dir, capsys):
    first = (compare_dir / "report.html").read_text(encoding="utf-8")
    (compare_dir / "report.html").unlink()
    assert main(["report", str(compare_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    again = (compare_dir / "report.html").read_text(encoding="utf-8")
    strip = re.compile(r'src="data:image/png;base64,[^"]+"')  # PNG bytes may differ in metadata only
    assert strip.sub("", again) == strip.sub("", first)
    assert len(images(again)) == 5


def test_report_from_a_single_run_folder(scenario_dir, tmp_path):
    out = tmp_path / "run"
    rc = main(
        [
            "run",
            str(scenario_dir / "hub_hardening.yaml"),
            "--replications",
            "3",
            "--weeks",
            "130",
            "--set",
            "networks.n_slots=20",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    assert main(["report", str(out)]) == 0
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "Run report: hub_hardening" in text
    assert len(images(text)) == 4  # flows (means), shares, map, seizures: no comparison figure


@pytest.mark.parametrize("kind", ["empty", "missing", "bad json", "missing subfolder"])
def test_report_on_a_folder_that_is_not_a_results_folder_is_exit_2(kind, compare_dir, tmp_path, capsys):
    folder = tmp_path / "x"
    if kind != "missing":
        folder.mkdir()
    if kind == "bad json":
        (folder / "comparison.json").write_text("{not json", encoding="utf-8")
    if kind == "missing subfolder":
        shutil.copy(compare_dir / "comparison.json", folder / "comparison.json")
    rc = main(["report", str(folder)])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    expected = {
        "empty": "not a results folder",
        "missing": "not a folder",
        "bad json": "not valid JSON",
        "missing subfolder": "file missing from the results folder",
    }[kind]
    assert expected in err
    assert not (folder / "report.html").exists()


CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const d = document.createElement('div');
  d.id = 'render-check';
  d.textContent = 'IMAGES ' + ok + '/' + imgs.length + ' TABLES ' + document.querySelectorAll('table').length;
  document.body.appendChild(d);
});
</script>"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium: apt-get install chromium (Debian)")
def test_report_renders_in_headless_chromium_with_all_images_loaded(compare_dir, tmp_path):
    page = tmp_path / "page.html"
    text = (compare_dir / "report.html").read_text(encoding="utf-8")
    page.write_text(text.replace("</body>", CHECK + "</body>"), encoding="utf-8")
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False).stdout
    match = re.search(r'<div id="render-check">IMAGES (\d+)/(\d+) TABLES (\d+)</div>', dom)
    assert match, f"the page did not finish loading; DOM starts {dom[:300]!r}"
    loaded, total, tables = map(int, match.groups())
    assert total == 5 and loaded == total
    assert tables == text.count("<table")
