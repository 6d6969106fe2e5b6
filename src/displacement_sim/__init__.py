"""displacement-sim: cocaine-trafficking displacement between the seaports of Belgium, the Netherlands and neighbours.

Public API (DESIGN.md section 6)::

    from displacement_sim import load_scenario, DisplacementModel, run_batch

    cfg = load_scenario("scenarios/hub_hardening.yaml")
    model = DisplacementModel(config=cfg, rng=42)   # a mesa.Model
    batch = run_batch(cfg, replications=1000, seed=42)  # vectorized engine
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("displacement-sim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from . import _jit
from .config import load_scenario
from .errors import ConfigError
from .model import DisplacementModel
from .results import BatchResult
from .runner import run_batch, run_mesa, run_points, run_scenario
from .schema import Scenario

_jit.restore_cache_setting()


def __getattr__(name: str):
    """Experiment helpers load on first use (SALib and the executors are slow to import)."""
    if name in ("load_experiment", "run_model"):
        from . import experiments

        return getattr(experiments, name)
    raise AttributeError(f"module 'displacement_sim' has no attribute {name!r}")


__all__ = [
    "BatchResult",
    "ConfigError",
    "DisplacementModel",
    "Scenario",
    "__version__",
    "load_experiment",
    "load_scenario",
    "run_batch",
    "run_mesa",
    "run_model",
    "run_points",
    "run_scenario",
]
