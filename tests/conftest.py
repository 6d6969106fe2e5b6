"""Shared fixtures: the repository's scenarios and small, fast configurations."""

from __future__ import annotations

from pathlib import Path

import pytest

from displacement_sim import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session")
def scenario_dir() -> Path:
    return SCENARIOS


@pytest.fixture(scope="session")
def baseline():
    return load_scenario(SCENARIOS / "baseline.yaml")


@pytest.fixture(scope="session")
def small_baseline():
    """The baseline over two years with 30 network slots: fast enough for many runs."""
    return load_scenario(SCENARIOS / "baseline.yaml", overrides={"weeks": 104, "networks.n_slots": 30})
