"""The phases of a week, composed from :mod:`mechanics`, for any leading shape.

These functions are what both engines call: the Mesa agents with one network's
row (shape ``(P,)``), the vectorized engine with ``(R, N, P)`` blocks. They are
pure: arrays in, arrays out. Sums across networks go through
:func:`sum_over_networks`, which adds in slot order, so both engines add the
same numbers in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import mechanics as mx
from .params import AgencyParams, NetworkParams, Params
from .rows import at, rank
from .streams import INIT_COLUMNS

__all__ = [
    "Decision",
    "allocate",
    "decide",
    "detection_by_alternative",
    "initial_networks",
    "learn",
    "recent_seizures",
    "sum_over_networks",
]


def sum_over_networks(x: np.ndarray, axis: int) -> np.ndarray:
    """Sum along the network axis strictly in slot order (a running sum, not numpy's pairwise sum).

    Both engines add the same numbers in the same order, so their totals agree to the bit.
    """
    rows = np.moveaxis(np.asarray(x), axis, 0)
    total = rows[0].astype(float, copy=True)
    for row in rows[1:]:
        total += row
    return total


# --- initialisation -------------------------------------------------------------------------------


def initial_networks(u: np.ndarray, net: NetworkParams) -> dict[str, np.ndarray]:
    """Network attributes from the initial block of uniforms (last axis: ``INIT_COLUMNS``).

    ``u`` has the networks' leading shape plus the column axis; per-row distribution
    numbers (a batch of sweep points) have the first axis of ``u``.
    """
    col = {name: u[..., k] for k, name in enumerate(INIT_COLUMNS)}
    nd = u.ndim - 1
    shape = col["home"].shape

    def draw(name: str, prefix: str) -> np.ndarray:
        args = (at(getattr(net, f"{prefix}_{k}"), nd) for k in ("median", "sigma", "low", "high"))
        return mx.lognormal_from_uniform(col[name], *args)

    weights = np.broadcast_to(at(net.home_weights, nd + 1, 1), (*shape, len(net.homes)))
    home_idx = mx.categorical_from_uniform(col["home"], weights)
    return {
        "m": draw("load_kg", "load"),
        "rate": draw("loads_per_week", "rate"),
        "lam": draw("risk_aversion", "lam"),
        "home": np.asarray(net.homes)[home_idx],
        "hvt": col["hvt"] < at(net.hvt_share, nd),
    }


# --- enforcement: allocation ---------------------------------------------------------------------


def allocation_due(unit: AgencyParams, week: int, phase_start: bool) -> bool:
    """A unit reallocates on its review weeks, and whenever a new phase (intervention) starts."""
    return phase_start or week % unit.review_weeks == 0


def recent_seizures(history: np.ndarray, week: int, n_weeks: int) -> np.ndarray:
    """Seizures per port over the ``n_weeks`` before ``week`` from a ring buffer (axis -2 is weeks)."""
    size = history.shape[-2]
    n = min(n_weeks, week, size)
    if n == 0:
        return np.zeros(history.shape[:-2] + history.shape[-1:])
    rows = [(week - 1 - k) % size for k in range(n)]
    return history[..., rows, :].sum(axis=-2)


def allocate(
    p: Params, unit: AgencyParams, seizures: np.ndarray, rates: np.ndarray, already: np.ndarray | None = None
) -> np.ndarray:
    """Extra inspections per week on ``unit.ports`` (DESIGN.md step 2).

    ``seizures`` are recent seizure counts per port, ``rates`` the inspection rates in
    force and ``already`` the extra inspections other units placed first (they lower
    the cap), all with ports on the last axis.
    """
    pic = unit.picture
    detection = np.minimum(1.0, rates[..., pic] * p.q[..., pic])
    weights = mx.allocation_weights(
        unit.rule, seizures[..., pic], detection, unit.prior, unit.static_weights, unit.s0, unit.rho, unit.floor
    )
    if unit.anticipation > 0:
        weights = mx.anticipate_displacement(weights, unit.buffer_matrix, unit.anticipation)
    position = np.searchsorted(pic, unit.ports)
    spend = unit.ports
    caps = np.maximum(unit.i_max - p.base_rate[..., spend], 0.0) * p.at_risk[spend]
    if already is not None:
        caps = np.maximum(caps - already[..., spend], 0.0)
    budget = np.full(weights.shape[:-1], unit.budget)
    # C order: each row's sums over ports are then numpy's sums of a contiguous row, as for a single row (Mesa)
    return mx.water_fill(np.ascontiguousarray(weights[..., position]), caps, budget)


def placed_extra(p: Params, extras: list[np.ndarray], lead_shape: tuple[int, ...]) -> np.ndarray:
    """Extra inspections per week on each port, summed over allocation units."""
    total = np.zeros((*lead_shape, p.n_ports))
    for unit, extra in zip(p.units, extras, strict=False):
        total[..., unit.ports] += extra
    return total


def rates_from_extra(p: Params, extras: list[np.ndarray], lead_shape: tuple[int, ...]) -> np.ndarray:
    """Inspection rates of every port from the units' extra inspections."""
    return mx.inspection_rates(p.base_rate, placed_extra(p, extras, lead_shape), p.at_risk, p.port_i_max)


# --- traffickers: perception, choice, detection ----------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """A network's choice for the week (arrays with the network's leading shape)."""

    probs: np.ndarray  # (..., P + 2): ports, elsewhere, hold
    m_eff: np.ndarray  # (...,) kg per load after splitting
    mean_loads: np.ndarray  # (...,) Poisson mean of loads this week
    cum_ship: np.ndarray  # (..., P + 1) cumulative choice probabilities given shipping


def decide(
    p: Params,
    a0: np.ndarray,
    supply: float,
    lam: np.ndarray,
    m: np.ndarray,
    rate: np.ndarray,
    seizures: np.ndarray,
    exposure: np.ndarray,
    h: np.ndarray,
    alive: np.ndarray | bool = True,
) -> Decision:
    """Steps 3-4: perceived risk, nested-logit choice, load splitting, expected loads (0 if not active).

    Per-row parameters (a batch of sweep points) broadcast through :func:`rows.at`.
    """
    nd, cd = rank(lam), rank(seizures)  # network and cell ranks
    rho = mx.perceived_risk(at(a0, cd, 1), at(p.prior_strength, cd), seizures, exposure)
    rho_eff = mx.effective_risk(rho, at(p.kappa, cd), h)
    utility = mx.port_utility(
        at(p.margin, cd), lam[..., None], rho_eff, at(p.cost, cd, 1), at(p.setup, cd), h, at(p.phi, cd), p.log_at_risk
    )
    probs = mx.choice_probabilities(
        utility,
        p.utility_elsewhere(lam),
        at(p.hold_utility, nd),
        at(p.beta, nd),
        at(p.nest_lambda, nd),
        p.nest_order,
        p.nest_starts,
        p.nest_of,
    )
    risk = _with_elsewhere(rho_eff, at(p.elsewhere_detection, nd))
    m_eff = mx.effective_load(m, at(p.zeta, nd), at(p.split_floor, nd), probs[..., :-1], risk)
    p_hold = probs[..., -1]
    mean_loads = np.where(alive, mx.expected_loads(supply, rate, m, m_eff, p_hold), 0.0)
    # choice given shipping: normalised by the running total itself, so the last bound is exactly 1
    # and an alternative of probability 0 at the end can never be drawn
    cum = np.cumsum(probs[..., :-1], axis=-1)
    total = cum[..., -1:]
    cum_ship = np.where(total > 0, cum / np.where(total > 0, total, 1.0), 1.0)
    return Decision(probs=probs, m_eff=m_eff, mean_loads=mean_loads, cum_ship=cum_ship)


def check_load_bound(mean_loads: np.ndarray, lam_max: float | np.ndarray) -> None:
    """The fixed-consumption design draws ``l_max`` load slots for rate ``lam_max``: check it holds."""
    if np.any(mean_loads > at(lam_max, rank(mean_loads)) * (1.0 + 1e-12)):
        raise RuntimeError(f"load rate {float(np.max(mean_loads))} above the design bound {lam_max}")


def capacity_kg(supply: float, m: np.ndarray, rate: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Cocaine the network could move this week, kg: ``supply K`` with ``K = m rate`` (0 when not active)."""
    return np.where(alive, supply * m * rate, 0.0)


def held_kg(capacity: np.ndarray, shipped: np.ndarray) -> np.ndarray:
    """Held back: capacity not shipped this week (``capacity - shipped``, over all alternatives).

    Its expectation is ``supply K pi_hold``; a single week can be negative when more
    loads than average leave. Defined this way, shipped + elsewhere + held adds up
    to the capacity exactly, so a comparison's decomposition of a drop is exact.
    """
    return capacity - shipped


def detection_by_alternative(
    p: Params, i_q: np.ndarray, t: np.ndarray, h: np.ndarray, gamma_intel: np.ndarray | float = 0.0
) -> np.ndarray:
    """Seizure probability of a load at each port and elsewhere (last axis ``P + 1``)."""
    cd = rank(h)
    per_port = mx.detection_probability(i_q, at(p.kappa, cd), h, t, gamma_intel)
    return _with_elsewhere(per_port, at(p.elsewhere_detection, cd - 1))


def _with_elsewhere(per_port: np.ndarray, elsewhere: float) -> np.ndarray:
    """Append the elsewhere alternative's value to a per-port array (last axis)."""
    out = np.empty((*per_port.shape[:-1], per_port.shape[-1] + 1))
    out[..., :-1] = per_port
    out[..., -1] = elsewhere
    return out


# --- learning -------------------------------------------------------------------------------------


def learn(
    p: Params,
    seizures: np.ndarray,
    exposure: np.ndarray,
    h: np.ndarray,
    own_loads: np.ndarray,
    own_seized: np.ndarray,
    news_seized: np.ndarray,
    news_exposure: np.ndarray,
    own_exp: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 6: evidence and exposure with decay and milieu news; insider access.

    ``own_loads`` and ``own_seized`` are this week's counts per port; the news is
    each port's seizures and exposure this week per active network; ``own_exp`` is
    :func:`own_exposure` if the caller has it already.
    """
    cd = rank(seizures)
    memory, omega = at(p.memory, cd), at(p.omega, cd)
    new_s = mx.update_evidence(seizures, memory, own_seized, omega, news_seized)
    if own_exp is None:
        own_exp = own_exposure(p, own_loads, h)
    new_e = mx.update_evidence(exposure, memory, own_exp, omega, news_exposure)
    growth, decay, burn = at(p.access_growth, cd), at(p.access_decay, cd), at(p.access_burn, cd)
    new_h = mx.update_access(h, own_loads > 0, own_seized > 0, growth, at(p.c, cd, 1), decay, burn)
    return new_s, new_e, new_h


def own_exposure(p: Params, own_loads: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Exposure a network's own loads add: each load weighted ``1 - kappa h``."""
    return own_loads * (1.0 - at(p.kappa, rank(h)) * h)


def milieu_news(
    own_seized: np.ndarray, own_exp: np.ndarray, n_active: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """The week's seizures and exposure per port, summed over networks in slot order, per active network.

    ``own_exp`` is :func:`own_exposure`. Arrays ``(..., N, P)``; ``n_active`` has the leading shape (or is a number).
    """
    both = np.concatenate([own_seized, own_exp], axis=-1)
    total = sum_over_networks(both, axis=both.ndim - 2) / np.asarray(n_active, dtype=float)[..., None]
    n_ports = own_seized.shape[-1]
    return total[..., :n_ports], total[..., n_ports:]


# --- record ----------------------------------------------------------------------------------------


def seized_kg_by_agency(cp, seized_kg: np.ndarray) -> np.ndarray:
    """Seized kg per agency ``(..., A)`` from kg per port ``(..., P)``: each agency's ports added in port order."""
    out = np.zeros((*seized_kg.shape[:-1], cp.n_agencies))
    for a in range(cp.n_agencies):
        ports = np.flatnonzero(cp.port_agency == a)
        if len(ports):
            acc = seized_kg[..., ports[0]].copy()
            for q in ports[1:]:
                acc += seized_kg[..., q]
            out[..., a] = acc
    return out


def foreign_home(home_agency: np.ndarray, n_agencies: int) -> np.ndarray:
    """``(..., N, A)``: the network's home is another agency's country (cross-border for agency ``a``)."""
    home = home_agency[..., None]
    return (home >= 0) & (home != np.arange(n_agencies))


def shipment_totals(cp, loads: np.ndarray, caught: np.ndarray, m_eff: np.ndarray, home_agency: np.ndarray):
    """The week's loads, kg and seizures per alternative, and cross-border seized kg per agency.

    Each is summed over networks in slot order. ``loads`` and ``caught`` are ``(L, N, P + 1)``
    counts, ``m_eff`` the kg per load ``(L, N)``.
    Returns ``(loads, shipped_kg, seized_loads, seized_kg, cross_border_seized_kg)``. The
    vectorized engine computes the same sums from its list of loads (``vectorized._shipment_totals``).
    """
    kg = m_eff[..., None]
    n_alt, n_agencies = loads.shape[-1], cp.n_agencies
    # every per-network quantity in one array, summed over networks in one pass (in slot order)
    widths = (n_alt, n_alt, n_alt, n_alt, n_agencies)
    cols = np.empty((*loads.shape[:-1], sum(widths)))
    part = np.split(cols, np.cumsum(widths)[:-1], axis=-1)  # views into ``cols``
    part[0][...] = loads
    np.multiply(loads, kg, out=part[1])
    part[2][...] = caught
    np.multiply(caught, kg, out=part[3])
    by_agency = seized_kg_by_agency(cp, part[3][..., :-1])
    np.copyto(part[4], np.where(foreign_home(home_agency, n_agencies), by_agency, 0.0))
    sums = sum_over_networks(cols, axis=loads.ndim - 2)
    return tuple(np.split(sums, np.cumsum(widths)[:-1], axis=-1))


def week_record(
    p: Params,
    cp,
    coop,
    supply: float,
    loads: np.ndarray,
    caught: np.ndarray,
    m_eff: np.ndarray,
    m: np.ndarray,
    rate: np.ndarray,
    traded: np.ndarray,
    alive: np.ndarray,
    rates: np.ndarray,
    events: dict[str, np.ndarray],
    totals: tuple[np.ndarray, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Step 10: the week's numbers, summed over networks in slot order (network axis -2 / -1).

    ``loads`` and ``caught`` are ``(L, N, P + 1)`` counts; the rest per network ``(L, N)``:
    ``m``, ``rate`` and ``traded`` describe the networks that traded this week (before
    dismantling and renewal), ``alive`` those active at the end of the week. ``totals``
    is :func:`shipment_totals` if the caller has computed it already.
    """
    if totals is None:
        totals = shipment_totals(cp, loads, caught, m_eff, coop.home_agency)
    n_loads, shipped, seized_loads, seized_kg, cross_border = totals
    both = np.stack([capacity_kg(supply, m, rate, traded), coop.capacity0], axis=-1)
    capacity, capacity0 = np.moveaxis(sum_over_networks(both, axis=both.ndim - 2), -1, 0)
    n_alive = alive.sum(axis=-1)
    intel_alive = np.where(alive[..., None, :], coop.intel, 0.0).sum(axis=-1)
    return {
        "loads": n_loads,
        "shipped_kg": shipped,
        "seized_loads": seized_loads,
        "seized_kg": seized_kg,
        "held_kg": held_kg(capacity, shipped.sum(axis=-1)),
        "capacity_kg": capacity,
        "lost_kg": supply * capacity0 - capacity,
        "inspection_rate": np.array(rates, dtype=float, copy=True),
        "active_networks": np.asarray(n_alive, dtype=float),
        "cross_border_seized_kg": cross_border,
        "intel_mean": intel_alive / np.maximum(n_alive, 1)[..., None],
        "cases_opened": events["cases_opened"],
        "case_weeks": events["case_weeks"],
        "unit_weeks": events["unit_weeks"],
        "compromised_cases": events["compromised"],
        "dismantled": events["dismantled"],
        "dismantled_joint": events["dismantled_joint"],
        "weeks_to_dismantle": events["weeks_to_dismantle"],
        "duplicated_case_weeks": events["duplicated"],
        "successors": events["successors"],
        "entrants": events["entrants"],
    }
