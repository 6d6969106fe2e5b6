"""The Mesa agents: trafficking networks, ports and enforcement agencies.

Each agent holds its own state and calls the shared equations
(:mod:`displacement_sim.kernel`, :mod:`displacement_sim.mechanics`) on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import mesa
import numpy as np

from . import kernel as kx
from .params import HISTORY_WEEKS, AgencyParams, Params

if TYPE_CHECKING:
    from .model import DisplacementModel

__all__ = ["EnforcementAgency", "Port", "TraffickingNetwork"]


class TraffickingNetwork(mesa.Agent):
    """A trafficking network in one slot: chooses ports, ships loads, learns from seizures.

    Attributes:
        slot: fixed slot index (the row of the random blocks it reads).
        m: base load size, kg; rate: loads per week at full supply; lam: risk aversion.
        home: home country; hvt: led by a high-value target.
        seizures, exposure: evidence ``S`` and exposure ``E`` per port (Gamma-Poisson belief).
        access: insider access ``h`` per port, in [0, 1].
        alive: whether the network is active; t_dismantled: week it was dismantled (or None).

    """

    model: DisplacementModel

    def __init__(self, model: DisplacementModel, slot: int, attrs: dict[str, object], n_ports: int) -> None:
        super().__init__(model)
        self.slot = slot
        self.seizures = np.zeros(n_ports)
        self.exposure = np.zeros(n_ports)
        self.access = np.zeros(n_ports)
        self.t_dismantled: int | None = None
        self.renew(attrs)
        self.decision: kx.Decision | None = None
        self.loads = np.zeros(n_ports + 1)
        self.seized = np.zeros(n_ports + 1)

    def choose(self, p: Params, a0: np.ndarray, supply: float) -> None:
        """Steps 3-4: perceive risk per port and choose where (and whether) to ship."""
        self.decision = kx.decide(
            p,
            a0,
            supply,
            np.float64(self.lam),
            np.float64(self.m),
            np.float64(self.rate),
            self.seizures,
            self.exposure,
            self.access,
            self.alive,
        )

    def ship(
        self,
        p: Params,
        u: np.ndarray,
        l_max: int,
        i_q: np.ndarray,
        t: np.ndarray,
        intel: np.ndarray,
        port_agency: np.ndarray,
    ) -> None:
        """Step 5: draw this week's loads from the slot's row of uniforms; each load is seized or not.

        ``intel`` is each agency's intelligence-led detection of this network's loads
        (``cooperation.intel_by_agency``), ``port_agency`` the agency of each port.
        """
        self.loads, self.seized = kx.ship(p, self.decision, u, l_max, i_q, t, self.access, intel, port_agency)

    def renew(self, attrs: dict[str, object]) -> None:
        """A new network in the slot (at the start, or a successor or entrant in step 9).

        New attributes, no insiders, prior beliefs.
        """
        self.m = float(attrs["m"])
        self.rate = float(attrs["rate"])
        self.lam = float(attrs["lam"])
        self.home = str(attrs["home"])
        self.hvt = bool(attrs["hvt"])
        self.alive = True
        self.t_dismantled = None
        self.seizures = np.zeros_like(self.seizures)
        self.exposure = np.zeros_like(self.exposure)
        self.access = np.zeros_like(self.access)

    def learn(self, p: Params, news_seized: np.ndarray, news_exposure: np.ndarray) -> None:
        """Step 6: update evidence, exposure and insider access from own loads and milieu news."""
        self.seizures, self.exposure, self.access = kx.learn(
            p,
            self.seizures,
            self.exposure,
            self.access,
            self.loads[:-1],
            self.seized[:-1],
            news_seized,
            news_exposure,
        )


class Port(mesa.Agent):
    """A port: its inspection rate in force and its record of seizures (for the allocation rules)."""

    model: DisplacementModel

    def __init__(self, model: DisplacementModel, index: int, port_id: str) -> None:
        super().__init__(model)
        self.index = index
        self.port_id = port_id
        self.inspection_rate = 0.0
        self.seizure_history = np.zeros(HISTORY_WEEKS)

    def record_seizures(self, week: int, n_seized: float) -> None:
        self.seizure_history[week % HISTORY_WEEKS] = n_seized


class EnforcementAgency(mesa.Agent):
    """An agency of one country (or the pooled members of a joint strategy): allocates extra inspections.

    A country's agency also holds its intelligence on each network (``intel``, its row of the
    model's cooperation state) and its cases (``case_on``).
    """

    model: DisplacementModel

    def __init__(self, model: DisplacementModel, code: str, index: int | None = None) -> None:
        super().__init__(model)
        self.code = code
        self.index = index  # row in the cooperation state (None for a pooled allocation unit)
        self.extra = np.zeros(0)

    @property
    def intel(self) -> np.ndarray:
        """Intel on each network slot, in [0, 1]."""
        return self.model.coop.intel[self.index]

    @property
    def case_on(self) -> np.ndarray:
        """Whether the agency runs a case on each network slot."""
        return self.model.coop.case_on[self.index]

    def allocate(
        self, p: Params, unit: AgencyParams, history: np.ndarray, week: int, rates: np.ndarray, already: np.ndarray
    ) -> None:
        """Step 2: spread the budget over the unit's ports by its rule (water-filling under the cap)."""
        recent = kx.recent_seizures(history, week, unit.review_weeks)
        self.extra = kx.allocate(p, unit, recent, rates, already)
