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

from .config import load_scenario
from .errors import ConfigError
from .experiments import load_experiment, run_model
from .model import DisplacementModel
from .results import BatchResult
from .runner import run_batch, run_mesa, run_scenario
from .schema import Scenario

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
    "run_scenario",
]
