"""The Mesa engine: :class:`DisplacementModel`, the readable reference model.

A week is one step. The step order (DESIGN.md section 3), one method each:

1. ``_apply_interventions``: switch to the parameters of the phase in force;
2. ``_allocate``: agencies spread their budgets on their review weeks;
3-4. ``TraffickingNetwork.choose``: perceived risk, nested-logit port choice;
5. ``TraffickingNetwork.ship``: loads from the slot's uniforms, detection load by load;
6. ``TraffickingNetwork.learn``: evidence, exposure, insider access;
7-9. intelligence, investigations, succession: not in the model yet (issue 3);
10. ``_record``: the week's numbers, and the datacollector.

The model keeps its own week counter ``week`` (Mesa's ``steps`` and ``time``
mean other things). Randomness comes only from the keyed streams of
:mod:`displacement_sim.streams`, never from ``model.rng``, so the vectorized
engine reproduces a replication exactly.
"""

from __future__ import annotations

from typing import Any

import mesa
import numpy as np

from . import kernel as kx
from .agents import EnforcementAgency, Port, TraffickingNetwork
from .config import load_scenario
from .errors import ConfigError
from .params import RunPlan, build_plan
from .schema import Scenario
from .streams import Stream, generator, init_block_width, shipment_block_width

__all__ = ["DisplacementModel"]

RECORD_KEYS = (
    "loads",
    "shipped_kg",
    "seized_loads",
    "seized_kg",
    "held_kg",
    "capacity_kg",
    "inspection_rate",
    "active_networks",
)


class DisplacementModel(mesa.Model):
    """Trafficking networks choosing ports under Belgian and Dutch enforcement.

    Args:
        config: a loaded scenario (``load_scenario``) or a path to a YAML file.
        rng: root seed (an int); ``None`` uses the scenario's ``seed``.
        replication: which replication's random streams to use (as in the vectorized engine).
        point: the sweep point's index (its streams), 0 outside sweeps.
        weeks: horizon override.
        **overrides: scenario overrides with ``__`` for dots, e.g. ``enforcement__BE__budget=2000``.

    ``mesa.batch_run`` expands iterables, and a pydantic config is iterable: pass
    ``parameters={"config": [cfg]}``.

    """

    def __init__(
        self,
        config: Scenario | str | None = None,
        rng: int | None = None,
        replication: int = 0,
        point: int = 0,
        weeks: int | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(config, tuple):
            raise TypeError("config is a tuple: mesa.batch_run expands iterables, so pass parameters={'config': [cfg]}")
        if rng is not None and not isinstance(rng, int | np.integer):
            raise TypeError("rng must be an int root seed (the model's streams are keyed by it)")
        config = _resolve_config(config, overrides)
        seed = int(config.seed if rng is None else rng)
        super().__init__(rng=seed)
        self.config = config
        self.seed = seed
        self.replication = int(replication)
        self.point = int(point)
        self.plan: RunPlan = build_plan(config, weeks)
        self.week = 0
        self.phase = -1
        self.params = self.plan.params[0]
        self._ship_rng = generator(seed, self.point, self.replication, Stream.SHIPMENTS)

        p = self.params
        init = generator(seed, self.point, self.replication, Stream.INITIAL_NETWORKS).random(
            (self.plan.n_slots, init_block_width())
        )
        attrs = kx.initial_networks(init, config.networks)
        self.networks = [
            TraffickingNetwork(self, slot, {k: v[slot] for k, v in attrs.items()}, p.n_ports)
            for slot in range(self.plan.n_slots)
        ]
        self.ports = [Port(self, i, pid) for i, pid in enumerate(p.port_ids)]
        for port in self.ports:
            port.inspection_rate = float(p.base_rate[port.index])
        self.agencies: dict[str, EnforcementAgency] = {}
        for params in self.plan.params:
            for unit in params.units:
                if unit.code not in self.agencies:
                    self.agencies[unit.code] = EnforcementAgency(self, unit.code)
        self.records: list[dict[str, np.ndarray]] = []
        self.datacollector = mesa.DataCollector(
            model_reporters={
                "week": "week",
                "shipped_kg": lambda m: m._last("shipped_kg")[:-1].sum(),
                "seized_kg": lambda m: m._last("seized_kg")[:-1].sum(),
                "elsewhere_kg": lambda m: m._last("shipped_kg")[-1],
                "held_kg": lambda m: float(m._last("held_kg")),
                "hub_share": lambda m: m._kind_share("hub"),
                "regional_share": lambda m: m._kind_share("regional"),
                "active_networks": lambda m: float(m._last("active_networks")),
            }
        )

    # --- the week ---------------------------------------------------------------------------------

    def step(self) -> None:
        """One week, in the order of the module docstring."""
        self._apply_interventions()
        self._allocate()
        self._trade()
        self._record()
        self.week += 1
        if self.week >= self.plan.weeks:
            self.running = False

    def _apply_interventions(self) -> None:
        """Step 1: the parameters of the phase in force (the loaded config is never changed)."""
        phase = self.plan.phase_at(self.week)
        self._phase_start = phase != self.phase
        self.phase = phase
        self.params = self.plan.params[phase]

    def _port_rates(self) -> np.ndarray:
        return np.array([port.inspection_rate for port in self.ports])

    def _allocate(self) -> None:
        """Step 2: each allocation unit reallocates on its review weeks and when a phase starts."""
        p = self.params
        history = np.stack([port.seizure_history for port in self.ports], axis=-1)
        rates = self._port_rates()
        due = [u for u in p.units if self._phase_start or self.week % u.review_weeks == 0]
        if not due:
            return
        for unit in due:
            self.agencies[unit.code].allocate(p, unit, history, self.week, rates)
        extras = [self.agencies[u.code].extra for u in p.units]
        new_rates = kx.rates_from_extra(p, extras, ())
        for port in self.ports:
            port.inspection_rate = float(new_rates[port.index])

    def _trade(self) -> None:
        """Steps 3-6: every network chooses and ships; then all learn from the week's seizures."""
        p, plan = self.params, self.plan
        supply = float(plan.supply[self.week])
        block = self._ship_rng.random((plan.n_slots, shipment_block_width(plan.l_max)))
        i_q, t = p.detection_parts(self._port_rates())
        for net in self.networks:
            net.choose(p, plan.a0, supply)
            kx.check_load_bound(net.decision.mean_loads, plan.lam_max)
            net.ship(p, block[net.slot], plan.l_max, i_q, t)
        own_loads = np.stack([net.loads[:-1] for net in self.networks])
        own_seized = np.stack([net.seized[:-1] for net in self.networks])
        access = np.stack([net.access for net in self.networks])
        n_active = float(sum(net.alive for net in self.networks))
        news_seized = kx.sum_over_networks(own_seized, axis=0) / n_active
        news_exposure = kx.sum_over_networks(kx.own_exposure(p, own_loads, access), axis=0) / n_active
        for net in self.networks:
            net.learn(p, news_seized, news_exposure)

    def _record(self) -> None:
        """Step 10: the week's numbers (sums over networks in slot order) and the datacollector."""
        supply = float(self.plan.supply[self.week])
        loads = np.stack([n.loads for n in self.networks])
        caught = np.stack([n.seized for n in self.networks])
        kg = np.array([n.decision.m_eff for n in self.networks])[:, None]
        shipped = kx.sum_over_networks(loads * kg, axis=0)
        capacity = kx.sum_over_networks(
            np.array([kx.capacity_kg(supply, n.m, n.rate, n.alive) for n in self.networks]), axis=0
        )
        rec = {
            "loads": kx.sum_over_networks(loads, axis=0),
            "shipped_kg": shipped,
            "seized_loads": kx.sum_over_networks(caught, axis=0),
            "seized_kg": kx.sum_over_networks(caught * kg, axis=0),
            "held_kg": kx.held_kg(capacity, shipped.sum(axis=-1)),
            "capacity_kg": capacity,
            "inspection_rate": self._port_rates(),
            "active_networks": np.float64(sum(n.alive for n in self.networks)),
        }
        for port in self.ports:
            port.record_seizures(self.week, rec["seized_loads"][port.index])
        self.records.append(rec)
        self.datacollector.collect(self)

    # --- reading results ----------------------------------------------------------------------------

    def _last(self, key: str) -> np.ndarray:
        return self.records[-1][key]

    def _kind_share(self, kind: str) -> float:
        shipped = self._last("shipped_kg")[:-1]
        total = shipped.sum()
        return float(shipped[self.params.kind == kind].sum() / total) if total > 0 else float("nan")

    def weekly(self) -> dict[str, np.ndarray]:
        """The recorded weeks as arrays with a leading week axis."""
        return {k: np.stack([r[k] for r in self.records]) for k in RECORD_KEYS}

    def run(self) -> DisplacementModel:
        """Run to the horizon."""
        while self.running:
            self.step()
        return self


def _resolve_config(config: Scenario | str | None, overrides: dict[str, Any]) -> Scenario:
    dotted = {k.replace("__", "."): v for k, v in overrides.items()}
    if isinstance(config, Scenario):
        if not dotted:
            return config
        data = config.model_dump(mode="python")
        from .config import apply_path, scenario_from_dict

        for key, value in dotted.items():
            apply_path(data, key, value)
        return scenario_from_dict(data)
    if config is None:
        raise ConfigError("DisplacementModel needs config=", field="config", allowed="a Scenario or a YAML path")
    return load_scenario(config, overrides=dotted)
