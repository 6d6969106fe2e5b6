"""Fixed-seed regression baseline of ``scenarios/baseline.yaml`` on the vectorized engine.

The baseline file (``tests/data/regression_baseline.json``) stores, for one
fixed run (``REPLICATIONS`` = 20 replications, seed ``SEED`` = 12345, the
scenario's full horizon and default evaluation window), the mean over
replications of every scenario-level metric and of each port's shipped and
seized kg, together with the numpy version that produced it (as in the
results manifest, DESIGN.md section 5: streams are identical only on the same
numpy build).

A comparison re-runs the file's settings and checks every stored value with a
relative tolerance of ``RTOL_SAME_NUMPY`` (1e-9). When the installed numpy
version differs from the file's, random streams may differ in the last bits,
so the comparison falls back to ``RTOL_OTHER_NUMPY`` (1e-6) and says so. Any
intended change of the model's behaviour therefore shows up as a mismatch,
and the file is then regenerated on purpose (the Covasim practice).

Usage (from the repository root)::

    python -m displacement_sim.regression            # compare; exit 1 and list the differing metrics
    python -m displacement_sim.regression --update   # rewrite tests/data/regression_baseline.json

Options: ``--file PATH`` (another baseline file), ``--scenario PATH`` (with
``--update``: another scenario), ``--replications R`` and ``--seed S`` (with
``--update``). Exit status: 0 on a match or after an update, 1 on a
mismatch, 2 on a bad input (missing file or scenario).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "REPLICATIONS",
    "RTOL_OTHER_NUMPY",
    "RTOL_SAME_NUMPY",
    "SEED",
    "Comparison",
    "Mismatch",
    "compare",
    "default_file",
    "default_scenario",
    "main",
    "snapshot",
]

REPLICATIONS = 20
SEED = 12345
RTOL_SAME_NUMPY = 1e-9
RTOL_OTHER_NUMPY = 1e-6
ATOL = 1e-12  # absolute floor, so values that are 0 in both runs (e.g. a port with no seizures) match
PORT_KEYS = ("shipped_kg", "seized_kg")
FORMAT_VERSION = 1

_ROOT = Path(__file__).resolve().parents[2]


def default_file() -> Path:
    """``tests/data/regression_baseline.json`` in the source tree."""
    return _ROOT / "tests" / "data" / "regression_baseline.json"


def default_scenario() -> Path:
    """``scenarios/baseline.yaml`` in the source tree."""
    return _ROOT / "scenarios" / "baseline.yaml"


def _mean(values: np.ndarray) -> float | None:
    """Mean over replications in replication order, of the defined (finite) values; ``None`` if none."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def _config_digest(config: Any) -> str:
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def snapshot(
    scenario: str | Path | None = None,
    *,
    replications: int = REPLICATIONS,
    seed: int = SEED,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the fixed-seed batch and return the baseline record (the JSON file's content).

    Args:
        scenario: scenario file (default ``scenarios/baseline.yaml``).
        replications: replications of the batch (vectorized engine, full horizon, default evaluation window).
        seed: root seed of the batch.
        overrides: dotted-path overrides, as in :func:`displacement_sim.load_scenario` (used to
            check that a changed parameter breaks the baseline).

    """
    from . import __version__, load_scenario, run_batch

    path = Path(scenario) if scenario is not None else default_scenario()
    config = load_scenario(path, overrides=dict(overrides or {}))
    result = run_batch(config, replications=replications, seed=seed)
    try:
        shown = str(path.resolve().relative_to(_ROOT))
    except ValueError:
        shown = str(path)
    return {
        "format": FORMAT_VERSION,
        "settings": {
            "scenario": shown,
            "engine": result.engine,
            "replications": int(replications),
            "seed": int(seed),
            "weeks": int(result.weeks),
            "eval_from": int(result.eval_from),
            "overrides": dict(overrides or {}),
        },
        "environment": {
            "numpy": np.__version__,
            "python": platform.python_version(),
            "displacement_sim": __version__,
        },
        "config_sha256": _config_digest(config),
        "units": "means over replications; kg over the evaluation window; shares and rates 0-1",
        "metrics": {name: _mean(values) for name, values in result.metrics.items()},
        "ports": {
            pid: {key: _mean(result.port_values[key][:, i]) for key in PORT_KEYS}
            for i, pid in enumerate(result.ports.ids)
        },
    }


@dataclass(frozen=True)
class Mismatch:
    """One stored value that the current run does not reproduce."""

    name: str
    expected: float | None
    actual: float | None

    @property
    def rel(self) -> float | None:
        if self.expected is None or self.actual is None:
            return None
        scale = max(abs(self.expected), abs(self.actual))
        return abs(self.actual - self.expected) / scale if scale > 0 else 0.0

    def __str__(self) -> str:
        rel = "n/a" if self.rel is None else f"{self.rel:.3e}"
        return f"{self.name}: baseline {self.expected!r}, now {self.actual!r} (relative difference {rel})"


@dataclass
class Comparison:
    """Result of :func:`compare`: the mismatches, the tolerance used and notes on the environment."""

    rtol: float
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def report(self) -> str:
        lines = [*self.notes]
        if self.ok:
            lines.append(f"regression baseline reproduced (relative tolerance {self.rtol:g})")
        else:
            lines.append(
                f"{len(self.mismatches)} value(s) differ from the baseline (relative tolerance {self.rtol:g}):"
            )
            lines += [f"  {m}" for m in self.mismatches]
            lines.append("if the change is intended, regenerate with: python -m displacement_sim.regression --update")
        return "\n".join(lines)


def _close(expected: float | None, actual: float | None, rtol: float) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if not (math.isfinite(expected) and math.isfinite(actual)):
        return False
    return abs(actual - expected) <= rtol * max(abs(expected), abs(actual)) + ATOL


def _flatten(record: Mapping[str, Any]) -> dict[str, float | None]:
    out = {f"metrics.{k}": v for k, v in record.get("metrics", {}).items()}
    for pid, values in record.get("ports", {}).items():
        out.update({f"ports.{pid}.{k}": v for k, v in values.items()})
    return out


def compare(reference: Mapping[str, Any], current: Mapping[str, Any]) -> Comparison:
    """Compare a current record with the stored one.

    Every value stored in ``reference`` must be reproduced within the tolerance
    (1e-9 relative on the same numpy version, 1e-6 on another); a stored value
    missing from ``current`` is a mismatch; values only in ``current`` (a metric
    added since) are listed in the notes and do not fail the comparison.
    """
    ref_np = reference.get("environment", {}).get("numpy")
    cur_np = current.get("environment", {}).get("numpy", np.__version__)
    notes = []
    if ref_np == cur_np:
        rtol = RTOL_SAME_NUMPY
    else:
        rtol = RTOL_OTHER_NUMPY
        notes.append(
            f"numpy {cur_np} differs from the baseline's numpy {ref_np}: random streams may differ in the "
            f"last bits, so the loose relative tolerance {RTOL_OTHER_NUMPY:g} is used instead of {RTOL_SAME_NUMPY:g}"
        )
    if reference.get("config_sha256") != current.get("config_sha256"):
        notes.append(
            "note: the resolved scenario (with schema defaults) differs from the one the baseline was made from"
        )
    ref, cur = _flatten(reference), _flatten(current)
    mismatches = [
        Mismatch(name, expected, cur.get(name))
        for name, expected in ref.items()
        if name not in cur or not _close(expected, cur[name], rtol)
    ]
    added = sorted(set(cur) - set(ref))
    if added:
        notes.append(f"not in the baseline (not compared): {', '.join(added)}")
    return Comparison(rtol=rtol, mismatches=mismatches, notes=notes)


def load_file(path: Path) -> dict[str, Any]:
    """Read a baseline file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def check_file(path: Path | None = None) -> Comparison:
    """Re-run a baseline file's settings and compare with it."""
    path = Path(path) if path is not None else default_file()
    reference = load_file(path)
    settings = reference["settings"]
    scenario = Path(settings["scenario"])
    if not scenario.is_absolute():
        scenario = _ROOT / scenario
    current = snapshot(
        scenario,
        replications=settings["replications"],
        seed=settings["seed"],
        overrides=settings.get("overrides") or None,
    )
    return compare(reference, current)


def write_file(record: Mapping[str, Any], path: Path) -> None:
    """Write a baseline record as JSON (atomically; floats keep every digit)."""
    from .results import dump_json, write_atomic

    write_atomic(Path(path), dump_json(dict(record)))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: compare with the baseline file, or rewrite it with ``--update``."""
    parser = argparse.ArgumentParser(
        prog="python -m displacement_sim.regression",
        description="Fixed-seed regression baseline of scenarios/baseline.yaml (vectorized engine).",
    )
    parser.add_argument("--update", action="store_true", help="rewrite the baseline file from a fresh run")
    parser.add_argument("--file", type=Path, default=None, help="baseline file (default tests/data/...)")
    parser.add_argument("--scenario", type=Path, default=None, help="with --update: scenario file")
    parser.add_argument("--replications", type=int, default=REPLICATIONS, help="with --update: replications")
    parser.add_argument("--seed", type=int, default=SEED, help="with --update: root seed")
    args = parser.parse_args(argv)
    path = args.file or default_file()
    if args.update:
        scenario = args.scenario or default_scenario()
        if not scenario.is_file():
            print(f"error: scenario file not found: {scenario}", file=sys.stderr)
            return 2
        if args.replications < 1:
            print(f"error: --replications must be at least 1, got {args.replications}", file=sys.stderr)
            return 2
        record = snapshot(scenario, replications=args.replications, seed=args.seed)
        write_file(record, path)
        s = record["settings"]
        print(
            f"wrote {path}: {s['scenario']}, {s['replications']} replications, seed {s['seed']}, numpy {np.__version__}"
        )
        return 0
    if not path.is_file():
        print(
            f"error: baseline file not found: {path}; create it with: python -m displacement_sim.regression --update",
            file=sys.stderr,
        )
        return 2
    try:
        result = check_file(path)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        print(f"error: {path} is not a regression baseline file ({type(err).__name__}: {err})", file=sys.stderr)
        return 2
    print(result.report())
    return 0 if result.ok else 1


if __name__ == "__main__":  # pragma: no cover - command line
    sys.exit(main())
