"""Engine parameters: a validated scenario turned into numpy arrays.

The engines never read the scenario's nested models in their loops; they read
one :class:`Params` per phase (the scenario in force from an intervention week
on, see :func:`displacement_sim.config.phases`). Ports keep their index even
when disabled, so array shapes, and with them the random draws, never change.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import SimpleNamespace

import numpy as np

from . import mechanics as mx
from .config import phases
from .rows import at, rank
from .schema import Networks, Scenario

__all__ = ["AgencyParams", "NetworkParams", "Params", "RunPlan", "build_plan"]

HISTORY_WEEKS = 52  # weeks of port seizure counts kept for the allocation rules


@dataclass(frozen=True)
class AgencyParams:
    """One allocation unit: an agency, or the pooled members of a joint strategy."""

    code: str
    ports: np.ndarray  # indices of the ports this unit spends its budget on
    picture: np.ndarray  # indices of the ports whose seizures it sees (its threat picture)
    budget: float
    rule: str
    review_weeks: int
    i_max: float
    s0: float
    rho: float
    floor: float
    static_weights: np.ndarray  # over ``picture``
    prior: np.ndarray  # at-risk share over ``picture``
    buffer_matrix: np.ndarray  # (picture, picture), spreads weight to buffer ports
    anticipation: float


@dataclass(frozen=True)
class Params:
    """Every number the engines need in one phase, as arrays over ports (index order of ``port_ids``)."""

    port_ids: tuple[str, ...]
    enabled: np.ndarray
    kind: np.ndarray
    country: np.ndarray
    at_risk: np.ndarray
    log_at_risk: np.ndarray
    base_rate: np.ndarray
    q: np.ndarray
    c: np.ndarray
    cost: np.ndarray
    transit_check: np.ndarray
    via: np.ndarray  # index of the via port, -1 for none
    nest_order: np.ndarray  # enabled ports grouped by cluster (the nests)
    nest_starts: np.ndarray  # where each nest starts in nest_order
    nest_of: np.ndarray  # nest of each entry of nest_order
    nest_names: tuple[str, ...]
    margin: float
    beta: float
    nest_lambda: float
    phi: float
    setup: float
    kappa: float
    prior_strength: float
    memory: float
    omega: float
    access_growth: float
    access_decay: float
    access_burn: float
    zeta: float
    split_floor: float
    elsewhere_detection: float
    elsewhere_cost: float
    elsewhere_asc: float
    elsewhere_log_size: float
    hold_utility: float
    units: tuple[AgencyParams, ...]
    port_i_max: np.ndarray  # highest rate the flexible budgets may lift each port to

    @property
    def n_ports(self) -> int:
        return len(self.port_ids)

    def utility_elsewhere(self, lam: np.ndarray) -> np.ndarray:
        """Utility of shipping elsewhere: same form as a port, with its fixed known risk."""
        nd = rank(lam)
        return (
            at(self.margin, nd) * (1.0 - lam * at(self.elsewhere_detection, nd))
            - at(self.elsewhere_cost, nd)
            + at(self.phi, nd) * at(self.elsewhere_log_size, nd)
            + at(self.elsewhere_asc, nd)
        )

    def detection_parts(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(min(1, i q), t)`` per port for inspection rates ``rates`` (last axis ports; ``q`` may be per row)."""
        i_q = np.minimum(1.0, rates * self.q)
        has_via = self.via >= 0
        via_idx = np.where(has_via, self.via, 0)
        t = np.where(has_via, mx.transit_detection(self.transit_check, rates[..., via_idx], self.q[..., via_idx]), 0.0)
        i_q = np.where(self.enabled, i_q, 0.0)
        return i_q, t


@dataclass(frozen=True)
class NetworkParams:
    """The distributions of a network's attributes (``scenario.networks``) as numbers.

    ``load``: base load size m (kg); ``rate``: loads per week; ``lam``: risk aversion;
    each a log-normal by median and log-sd, clipped to [low, high]. In a batch of
    sweep points each number may be per row (see :mod:`displacement_sim.rows`).
    """

    load_median: float
    load_sigma: float
    load_low: float
    load_high: float
    rate_median: float
    rate_sigma: float
    rate_low: float
    rate_high: float
    lam_median: float
    lam_sigma: float
    lam_low: float
    lam_high: float
    homes: tuple[str, ...]  # home country codes, sorted
    home_weights: np.ndarray  # relative weights of ``homes``
    hvt_share: float

    @classmethod
    def from_spec(cls, spec: Networks) -> NetworkParams:
        values = {}
        for prefix, dist in (("load", spec.load_kg), ("rate", spec.loads_per_week), ("lam", spec.risk_aversion)):
            values.update({f"{prefix}_{k}": float(v) for k, v in dist.model_dump().items()})
        homes = tuple(sorted(spec.home))
        weights = np.array([spec.home[h] for h in homes], dtype=float)
        return cls(**values, homes=homes, home_weights=weights, hvt_share=float(spec.hvt_share))


@dataclass(frozen=True)
class RunPlan:
    """Everything fixed for a run: the phases' parameters, inputs per week, priors, load slots."""

    scenario: Scenario
    weeks: int
    warmup_weeks: int
    phase_weeks: tuple[int, ...]
    params: tuple[Params, ...]
    coop: tuple  # CoopParams per phase (cooperation.py)
    supply: np.ndarray  # (weeks,) supply index x (1 - origin interdiction)
    a0: np.ndarray  # prior seizures per port (Gamma shape), from the week-0 detection
    l_max: int
    lam_max: float
    n_slots: int
    networks: NetworkParams
    extra: dict = field(default_factory=dict)

    def phase_at(self, week: int) -> int:
        """Index of the phase in force at ``week``."""
        return int(np.searchsorted(self.phase_weeks, week, side="right") - 1)


def _step_series(series: dict[int, float], weeks: int) -> np.ndarray:
    out = np.empty(weeks)
    keys = sorted(series)
    for i, start in enumerate(keys):
        end = keys[i + 1] if i + 1 < len(keys) else weeks
        out[start:end] = series[start]
    return out


def _units(s: Scenario, ids: list[str], at_risk: np.ndarray, enabled: np.ndarray) -> tuple[AgencyParams, ...]:
    ports = s.ports
    agencies = s.enforcement.agencies
    joint = s.enforcement.joint_strategy
    index = {pid: i for i, pid in enumerate(ids)}

    def eligible(code: str, kinds_list: list[str]) -> np.ndarray:
        kinds = set(kinds_list)
        return np.array(
            [i for i, pid in enumerate(ids) if ports[pid].country == code and enabled[i] and ports[pid].kind in kinds],
            dtype=np.int64,
        )

    def own_all(code: str) -> np.ndarray:
        return np.array([i for i, pid in enumerate(ids) if ports[pid].country == code and enabled[i]], dtype=np.int64)

    def buffer_matrix(picture: np.ndarray) -> np.ndarray:
        pos = {int(p): k for k, p in enumerate(picture)}
        mat = np.zeros((len(picture), len(picture)))
        for k, p in enumerate(picture):
            targets = [pos[index[b]] for b in ports[ids[p]].buffer if index[b] in pos]
            for t in targets:
                mat[k, t] = 1.0 / len(targets)
        return mat

    def make(code: str, spend: np.ndarray, picture: np.ndarray, budget: float, ag, anticipation: float):
        risk = at_risk[picture]
        static = np.array([ag.weights.get(ids[p], 0.0) if ag.weights else at_risk[p] for p in picture])
        return AgencyParams(
            code=code,
            ports=spend,
            picture=picture,
            budget=budget,
            rule=ag.rule,
            review_weeks=ag.review_weeks,
            i_max=ag.i_max,
            s0=ag.s0,
            rho=ag.rho,
            floor=ag.floor,
            static_weights=static,
            prior=risk / risk.sum() if risk.sum() > 0 else risk,
            buffer_matrix=buffer_matrix(picture),
            anticipation=anticipation,
        )

    units = []
    members = sorted(joint.members)
    union = np.sort(np.concatenate([own_all(c) for c in members])) if members else np.zeros(0, dtype=np.int64)
    for code, ag in agencies.items():
        if code in members:
            units.append(make(code, eligible(code, ag.kinds), union, ag.budget, ag, joint.anticipation))
        else:
            units.append(make(code, eligible(code, ag.kinds), own_all(code), ag.budget, ag, 0.0))
    if members and joint.budget > 0:
        spend = np.sort(np.concatenate([eligible(c, joint.kinds) for c in members]))
        pool = SimpleNamespace(
            rule=joint.rule, review_weeks=joint.review_weeks, i_max=joint.i_max, s0=1.0, rho=1.0, floor=0.01, weights={}
        )
        units.append(make("+".join(members), spend, union, joint.budget, pool, joint.anticipation))
    return tuple(units)


def build_params(s: Scenario) -> Params:
    """The parameter arrays of one phase."""
    ids = list(s.ports)
    ports = [s.ports[i] for i in ids]
    enabled = np.array([p.enabled for p in ports])
    at_risk = np.array([p.at_risk_per_week for p in ports], dtype=float)
    clusters: dict[str, list[int]] = {}
    for i, p in enumerate(ports):
        if p.enabled:
            clusters.setdefault(p.cluster, []).append(i)
    b, e = s.behaviour, s.elsewhere
    units = _units(s, ids, at_risk, enabled)
    port_i_max = np.zeros(len(ids))
    for unit in units:  # a port served by several units may be lifted to the highest of their caps
        port_i_max[unit.ports] = np.maximum(port_i_max[unit.ports], unit.i_max)
    return Params(
        port_ids=tuple(ids),
        enabled=enabled,
        kind=np.array([p.kind for p in ports]),
        country=np.array([p.country for p in ports]),
        at_risk=at_risk,
        log_at_risk=np.log(at_risk),
        base_rate=np.array([p.inspection_rate for p in ports], dtype=float),
        q=np.array([p.q for p in ports], dtype=float),
        c=np.array([p.c for p in ports], dtype=float),
        cost=np.array([p.a for p in ports], dtype=float),
        transit_check=np.array([p.transit_check for p in ports], dtype=float),
        via=np.array([ids.index(p.via) if p.via else -1 for p in ports], dtype=np.int64),
        nest_order=np.array([i for v in clusters.values() for i in v], dtype=np.int64),
        nest_starts=np.cumsum([0] + [len(v) for v in clusters.values()])[:-1].astype(np.int64),
        nest_of=np.array([k for k, v in enumerate(clusters.values()) for _ in v], dtype=np.int64),
        nest_names=tuple(clusters),
        margin=b.margin,
        beta=b.beta,
        nest_lambda=b.nest_lambda,
        phi=b.phi,
        setup=b.setup,
        kappa=b.kappa,
        prior_strength=b.prior_strength,
        memory=b.memory,
        omega=b.omega,
        access_growth=b.access_growth,
        access_decay=b.access_decay,
        access_burn=b.access_burn,
        zeta=b.zeta,
        split_floor=b.split_floor,
        elsewhere_detection=e.detection,
        elsewhere_cost=e.cost,
        elsewhere_asc=e.asc,
        elsewhere_log_size=float(np.log(e.at_risk_per_week)),
        hold_utility=s.hold.utility,
        units=units,
        port_i_max=port_i_max,
    )


def _load_slots(lam_max: float, requested: int | None) -> int:
    needed = mx.poisson_tail_bound(lam_max)
    if requested is None:
        return needed
    if requested < needed:
        raise ValueError(f"l_max={requested} is below the {needed} load slots this scenario needs")
    return int(requested)


def required_load_slots(s: Scenario, weeks: int | None = None) -> int:
    """Load slots per network-week the scenario needs (for a common width across scenarios)."""
    return build_plan(s, weeks).l_max


def build_plan(s: Scenario, weeks: int | None = None, l_max: int | None = None) -> RunPlan:
    """Phases, inputs and fixed quantities of a run of ``s`` (optionally over another horizon).

    ``l_max`` widens the weekly shipment block to a common width, so that scenarios
    with different load-rate bounds still share their random numbers (common random
    numbers in a comparison); it may not be smaller than the scenario needs.
    """
    horizon = int(weeks) if weeks is not None else s.weeks
    phase_list = [ph for ph in phases(s) if ph.week < horizon]
    params = tuple(build_params(ph.scenario) for ph in phase_list)
    # the prior (a0, b0) is the networks' knowledge at week 0: later phases keep its strength
    params = tuple(replace(p, prior_strength=params[0].prior_strength) for p in params)
    from .cooperation import coop_params

    coop = tuple(coop_params(ph.scenario) for ph in phase_list)
    supply = _step_series(s.inputs.supply_index, horizon) * (1.0 - _step_series(s.inputs.origin_interdiction, horizon))
    first = params[0]
    base_rates = first.base_rate
    i_q, t = first.detection_parts(base_rates)
    d0 = mx.detection_probability(i_q, 0.0, 0.0, t, 0.0)
    a0 = first.prior_strength * np.maximum(d0, 1e-6)
    rate_high = s.networks.loads_per_week.high
    lam_max = float(supply.max()) * rate_high / min(p.split_floor for p in params)
    return RunPlan(
        scenario=s,
        weeks=horizon,
        warmup_weeks=min(s.warmup_weeks, horizon - 1),
        phase_weeks=tuple(ph.week for ph in phase_list),
        params=params,
        coop=coop,
        supply=supply,
        a0=a0,
        l_max=_load_slots(lam_max, l_max),
        lam_max=lam_max,
        n_slots=s.networks.n_slots,
        networks=NetworkParams.from_spec(s.networks),
    )
