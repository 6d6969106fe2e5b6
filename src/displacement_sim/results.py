"""Results: the :class:`BatchResult` object and the results folder.

A results folder holds (DESIGN.md section 6):

- ``manifest.json``: resolved config, seed, engine, replications, weeks, versions, git commit, wall time;
- ``summary.json``: metrics with mean, std and 95% CI over replications;
- ``replications.csv``: one row per replication, its scenario-level metrics;
- ``series.csv``: weekly series per port, tidy (week, port, variable, mean, p10, p50, p90).

Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .metrics import QUANTILES, SERIES_KEYS, PortInfo, Recorder, port_metrics, reduce_values, replication_metrics
from .schema import Scenario

__all__ = ["BatchResult", "default_out_dir", "write_atomic", "write_results"]


def _version() -> str:
    from . import __version__

    return __version__


@dataclass
class BatchResult:
    """Per-replication metrics and reduced weekly series of one scenario's run."""

    config: Scenario
    engine: str
    seed: int
    replications: np.ndarray
    weeks: int
    eval_from: int
    ports: PortInfo
    metrics: dict[str, np.ndarray]
    port_values: dict[str, np.ndarray]
    bands: dict[str, np.ndarray]
    series: dict[str, np.ndarray] | None = None
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_recorder(
        cls,
        config: Scenario,
        rec: Recorder,
        ports: PortInfo,
        *,
        engine: str,
        seed: int,
        replications: np.ndarray,
        wall_seconds: float,
    ) -> BatchResult:
        rec.finish_bands()  # a merged recorder's bands (runner.run_batch's groups)
        weeks_eval = max(rec.eval_weeks, 1)
        series = {k: np.stack(v, axis=1) for k, v in rec.series.items()} if rec.keep_series else None
        return cls(
            config=config,
            engine=engine,
            seed=seed,
            replications=np.asarray(replications),
            weeks=rec.weeks,
            eval_from=rec.eval_from,
            ports=ports,
            metrics=replication_metrics(rec.totals, ports, weeks_eval),
            port_values=port_metrics(rec.totals, ports, weeks_eval),
            bands=rec.bands,
            series=series,
            wall_seconds=wall_seconds,
        )

    @property
    def n_replications(self) -> int:
        return len(self.replications)

    def summary(self) -> dict[str, Any]:
        """The ``summary.json`` layout."""
        return {
            "scenario": self.config.name,
            "engine": self.engine,
            "replications": self.n_replications,
            "weeks": self.weeks,
            "eval_weeks": [self.eval_from, self.weeks],
            "seed": self.seed,
            "units": "kg over the evaluation window; shares and rates 0-1",
            "metrics": {k: reduce_values(v) for k, v in self.metrics.items()},
            "ports": {
                pid: {k: reduce_values(v[:, i]) for k, v in self.port_values.items()}
                for i, pid in enumerate(self.ports.ids)
            },
        }

    def to_frame(self) -> pd.DataFrame:
        """One row per replication: its scenario-level metrics."""
        df = pd.DataFrame({k: v for k, v in self.metrics.items()})
        df.insert(0, "replication", self.replications)
        return df

    def ports_frame(self) -> pd.DataFrame:
        """One row per (replication, port): per-port metrics."""
        rows = []
        for i, pid in enumerate(self.ports.ids):
            df = pd.DataFrame({k: v[:, i] for k, v in self.port_values.items()})
            df.insert(0, "port", pid)
            df.insert(0, "replication", self.replications)
            rows.append(df)
        return pd.concat(rows, ignore_index=True)

    def series_frame(self) -> pd.DataFrame:
        """Weekly series, tidy: week, port (``elsewhere`` for the outside option), variable, mean and quantiles."""
        qnames = [f"p{int(q * 100)}" for q in QUANTILES]
        frames = []
        for var in SERIES_KEYS:
            band = self.bands[var]
            names = list(self.ports.ids) + (["elsewhere"] if band.shape[-1] > len(self.ports.ids) else [])
            weeks, _, n = band.shape
            week_idx = np.repeat(np.arange(weeks), n)
            data = {"week": week_idx, "port": np.tile(names, weeks), "variable": var}
            for k, name in enumerate(["mean", *qnames]):
                data[name] = band[:, k, :].reshape(-1)
            frames.append(pd.DataFrame(data))
        return pd.concat(frames, ignore_index=True)

    def manifest(self) -> dict[str, Any]:
        return {
            "scenario": self.config.name,
            "config": self.config.model_dump(mode="json"),
            "seed": self.seed,
            "engine": self.engine,
            "replications": self.n_replications,
            "first_replication": int(self.replications[0]) if self.n_replications else 0,
            "weeks": self.weeks,
            "eval_from": self.eval_from,
            "version": _version(),
            "git_commit": _git_commit(),
            "numpy": np.__version__,
            "python": platform.python_version(),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_seconds": round(self.wall_seconds, 3),
        }


def _git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def _clean(obj: Any) -> Any:
    """Replace NaN and infinities by None (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_json(obj: Any) -> str:
    return json.dumps(_clean(obj), indent=2, default=_json_default, allow_nan=False) + "\n"


def default_out_dir(name: str, root: Path = Path("results")) -> Path:
    """``results/<name>-<timestamp>-<random>``: unique even for runs started together."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return root / f"{name}-{stamp}-{secrets.token_hex(3)}"


def check_out_creatable(out: Path) -> None:
    """Refuse an output path that is a file, or whose folder could not be made (checked before a run starts)."""
    from .errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError("the output path is a file", field="--out", given=str(out), allowed="a new or empty folder")
    parent = out
    while not parent.exists():  # the nearest existing folder above, where the new folders would be made
        parent = parent.parent
    try:  # a real test: a folder made and removed there (permissions alone miss read-only and special file systems)
        if not parent.is_dir():
            raise NotADirectoryError(parent)
        os.rmdir(tempfile.mkdtemp(prefix=".displacement-sim-check-", dir=parent))
    except OSError:
        raise ConfigError(
            f"the output folder cannot be made: {parent} is not a writable folder",
            field="--out",
            given=str(out),
            allowed="a new or empty folder in a writable place",
        ) from None


def write_results(result: BatchResult, out: Path) -> Path:
    """Write the results folder of one run."""
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "manifest.json", dump_json(result.manifest()))
    write_atomic(out / "summary.json", dump_json(result.summary()))
    write_atomic(out / "replications.csv", result.to_frame().to_csv(index=False))
    write_atomic(out / "ports.csv", result.ports_frame().to_csv(index=False))
    write_atomic(out / "series.csv", result.series_frame().to_csv(index=False))
    return out
