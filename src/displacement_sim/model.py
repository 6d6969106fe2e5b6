"""The Mesa engine: :class:`DisplacementModel`, the readable reference model.

A week is one step. The step order (DESIGN.md section 3), one method each:

1. ``_apply_interventions``: switch to the parameters of the phase in force;
2. ``_allocate``: agencies spread their budgets on their review weeks;
3-4. ``TraffickingNetwork.choose``: perceived risk, nested-logit port choice;
5. ``TraffickingNetwork.ship``: loads from the slot's uniforms, detection load by load;
6. ``TraffickingNetwork.learn``: evidence, exposure, insider access;
7-9. ``_cooperate``: intelligence and its exchange, investigations and coordination,
     succession and entry (``cooperation.py``, shared with the vectorized engine);
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

from . import cooperation as co
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
    "lost_kg",
    "inspection_rate",
    "active_networks",
    "cross_border_seized_kg",
    "intel_mean",
    "cases_opened",
    "case_weeks",
    "unit_weeks",
    "compromised_cases",
    "dismantled",
    "dismantled_joint",
    "weeks_to_dismantle",
    "duplicated_case_weeks",
    "successors",
    "entrants",
)


class DisplacementModel(mesa.Model):
    """Trafficking networks choosing ports under Belgian and Dutch enforcement.

    Args:
        config: a loaded scenario (``load_scenario``) or a path to a YAML file.
        rng: root seed (an int); ``None`` uses the scenario's ``seed``.
        replication: which replication's random streams to use (as in the vectorized engine).
        point: the sweep point's index (its streams), 0 outside sweeps.
        weeks: horizon override.
        l_max: load slots drawn per network-week (a common width keeps random numbers shared across scenarios).
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
        l_max: int | None = None,
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
        self.plan: RunPlan = build_plan(config, weeks, l_max)
        self.week = 0
        self.phase = -1
        self.params = self.plan.params[0]
        self._ship_rng = generator(seed, self.point, self.replication, Stream.SHIPMENTS)

        p = self.params
        init = generator(seed, self.point, self.replication, Stream.INITIAL_NETWORKS).random(
            (self.plan.n_slots, init_block_width())
        )
        attrs = kx.initial_networks(init, self.plan.networks)
        self.networks = [
            TraffickingNetwork(self, slot, {k: v[slot] for k, v in attrs.items()}, p.n_ports)
            for slot in range(self.plan.n_slots)
        ]
        self.ports = [Port(self, i, pid) for i, pid in enumerate(p.port_ids)]
        for port in self.ports:
            port.inspection_rate = float(p.base_rate[port.index])
        self.agencies: dict[str, EnforcementAgency] = {}
        cp0 = self.plan.coop[0]
        for i, code in enumerate(cp0.codes):
            self.agencies[code] = EnforcementAgency(self, code, i)
        for params in self.plan.params:
            for unit in params.units:
                if unit.code not in self.agencies:
                    self.agencies[unit.code] = EnforcementAgency(self, unit.code)
        self.coop = co.initial_coop_state(cp0, (), self.plan.n_slots, attrs["home"], attrs["m"] * attrs["rate"])
        self._inv_rng = generator(seed, self.point, self.replication, Stream.INVESTIGATIONS)
        self._succ_rng = generator(seed, self.point, self.replication, Stream.SUCCESSION)
        self._events: dict[str, np.ndarray] = {}
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
                "networks_dismantled": lambda m: float(m._last("dismantled").sum()),
                "cases_open": lambda m: float(m.coop.case_on.sum()),
            }
        )

    # --- the week ---------------------------------------------------------------------------------

    def step(self) -> None:
        """One week, in the order of the module docstring."""
        self._apply_interventions()
        self._allocate()
        self._trade()
        self._cooperate()
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
        extras = []
        changed = self._phase_start  # a new phase may change base rates even where no budget moves
        for unit in p.units:
            agency = self.agencies[unit.code]
            if kx.allocation_due(unit, self.week, self._phase_start):
                already = kx.placed_extra(p, extras, ())
                agency.allocate(p, unit, history, self.week, rates, already)
                changed = True
            extras.append(agency.extra)
        if changed:
            new_rates = kx.rates_from_extra(p, extras, ())
            for port in self.ports:
                port.inspection_rate = float(new_rates[port.index])

    def _trade(self) -> None:
        """Steps 3-6: every network chooses and ships; then all learn from the week's seizures."""
        p, plan = self.params, self.plan
        supply = float(plan.supply[self.week])
        block = self._ship_rng.random((plan.n_slots, shipment_block_width(plan.l_max)))
        i_q, t = p.detection_parts(self._port_rates())
        cp = self.plan.coop[self.phase]
        intel = co.intel_by_agency(cp, self.coop.intel)  # (agencies + 1, networks)
        for net in self.networks:
            net.choose(p, plan.a0, supply)
            kx.check_load_bound(net.decision.mean_loads, plan.lam_max)
            net.ship(p, block[net.slot], plan.l_max, i_q, t, intel[:, net.slot], cp.port_agency)
        own_loads = np.stack([net.loads[:-1] for net in self.networks])
        own_seized = np.stack([net.seized[:-1] for net in self.networks])
        access = np.stack([net.access for net in self.networks])
        n_active = float(max(sum(net.alive for net in self.networks), 1))
        news_seized, news_exposure = kx.milieu_news(p, own_loads, own_seized, access, n_active)
        for net in self.networks:
            net.learn(p, news_seized, news_exposure)

    def _cooperate(self) -> None:
        """Steps 7-9: intelligence, investigations, succession and entry (shared with the vectorized engine)."""
        cp, nets = self.plan.coop[self.phase], self.networks
        u_inv = self._inv_rng.random((cp.n_agencies, self.plan.n_slots, len(co.INVESTIGATION_COLUMNS)))
        u_succ = self._succ_rng.random((self.plan.n_slots, len(co.SUCCESSION_COLUMNS)))
        seized = np.stack([n.seized[:-1] for n in nets])
        loads = np.stack([n.loads[:-1] for n in nets])
        alive = np.array([n.alive for n in nets])
        self._traded = (alive.copy(), np.array([n.m for n in nets]), np.array([n.rate for n in nets]))
        hvt = np.array([n.hvt for n in nets])
        co.gather_intel(cp, self.coop, self.week, seized, loads, alive, u_inv[..., 3])
        self._events = co.investigate(cp, self.coop, self.week, u_inv, alive, hvt)
        successor, entrant = co.succession(cp, self.coop, self.week, u_succ, alive)
        for net in nets:
            if net.alive and not alive[net.slot]:
                net.alive, net.t_dismantled = False, self.week
        new = successor | entrant
        if new.any():
            homes = np.array([n.home for n in nets])
            attrs = co.new_networks(u_succ, self.plan.networks, successor, homes)
            for slot in np.flatnonzero(new):
                nets[slot].renew({k: v[slot] for k, v in attrs.items()})
            co.reset_slots(cp, self.coop, new, np.array([n.home for n in nets]))
        self._events["successors"] = np.float64(successor.sum())
        self._events["entrants"] = np.float64(entrant.sum())

    def _record(self) -> None:
        """Step 10: the week's numbers (sums over networks in slot order) and the datacollector."""
        nets = self.networks
        rec = kx.week_record(
            self.params,
            self.plan.coop[self.phase],
            self.coop,
            float(self.plan.supply[self.week]),
            np.stack([n.loads for n in nets]),
            np.stack([n.seized for n in nets]),
            np.array([n.decision.m_eff for n in nets]),
            self._traded[1],
            self._traded[2],
            self._traded[0],
            np.array([n.alive for n in nets]),
            self._port_rates(),
            self._events,
        )
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
