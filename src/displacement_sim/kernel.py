"""The phases of a week, composed from :mod:`mechanics`, for any leading shape.

These functions are what both engines call: the Mesa agents with one network's
row (shape ``(P,)``), the vectorized engine with ``(R, N, P)`` blocks. They are
pure: arrays in, arrays out (except :func:`trade`, which updates the state in
place). Steps 3-6 and the week's sums run in compiled loops (``_decide_rows``,
``_ship_rows``, ``_learn_rows``, ``_news_rows``, ``_totals_rows``; one typed
version each, :mod:`displacement_sim._jit`) over (row, network) pairs, calling
the elementwise equations of :mod:`mechanics`; a Mesa agent's row is one row of
one network. Each of steps 3-6, and the week's shipment sums, is written once, as
a function of one row (``_decide_row``, ``_ship_row``, ``_news_row``,
``_learn_row``, ``_totals_row``): the loops above call it row after row, and
:func:`trade` (the vectorized engine) calls them all for one row before the next.
Every sum across networks adds in slot order (a running sum, as
:func:`sum_over_networks`), so both engines add the same numbers in the same order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import float64, int64, njit, void

from . import cooperation as co
from . import mechanics as mx
from . import pcg64 as pcg
from ._jit import B2, CACHE, F1, F2, F3, I1, I2, U2, c_args, c_ordered, typed_loop
from .params import AgencyParams, NetworkParams, Params
from .rows import aligned_empty, at, built_once, per_network, per_row, rank
from .streams import INIT_COLUMNS, shipment_block_width

__all__ = [
    "Decision",
    "allocate",
    "decide",
    "initial_networks",
    "learn",
    "recent_seizures",
    "ship",
    "sum_over_networks",
    "trade",
]


def sum_over_networks(x: np.ndarray, axis: int) -> np.ndarray:
    """Sum along the network axis strictly in slot order (a running sum, not numpy's pairwise sum).

    Both engines add the same numbers in the same order, so their totals agree to the bit.
    """
    x = np.ascontiguousarray(x, dtype=np.float64)
    axis = axis % x.ndim
    out = np.empty(x.shape[:axis] + x.shape[axis + 1 :])
    pre, post = math.prod(x.shape[:axis]), math.prod(x.shape[axis + 1 :])
    _running_sum(x.reshape(pre, x.shape[axis], post), out.reshape(pre, post))
    return out


@typed_loop(void(F3, F2), cache=CACHE, nogil=True, error_model="numpy")
def _running_sum(x, out):
    """``out[i, k] = x[i, 0, k] + x[i, 1, k] + ...``, added left to right."""
    for i in range(x.shape[0]):
        for k in range(x.shape[2]):
            out[i, k] = x[i, 0, k]
        for n in range(1, x.shape[1]):
            for k in range(x.shape[2]):
                out[i, k] += x[i, n, k]


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

    Arrays have the networks' leading shape (``()`` for one Mesa agent, ``(R, N)`` for a
    batch); per-row parameters have the batch row axis first (``rows.py``). The
    equations run in one compiled pass over the networks (:func:`_decide_rows`).
    """
    n_ports, lead = seizures.shape[-1], seizures.shape[:-1]
    rn = _rows_networks(lead)
    probs = np.empty((*rn, n_ports + 2))
    cum_ship = np.empty((*rn, n_ports + 1))
    m_eff, mean_loads = np.empty(rn), np.empty(rn)
    _decide_rows(
        *_decide_inputs(p, a0, supply, lam, m, rate, seizures, exposure, h, alive, lead, rn),
        probs,
        m_eff,
        mean_loads,
        cum_ship,
    )
    return Decision(
        probs=probs.reshape(*lead, n_ports + 2),
        m_eff=m_eff.reshape(lead),
        mean_loads=mean_loads.reshape(lead),
        cum_ship=cum_ship.reshape(*lead, n_ports + 1),
    )


def _decide_inputs(p, a0, supply, lam, m, rate, seizures, exposure, h, alive, lead, rn) -> tuple:
    """The inputs of :func:`_decide_rows` (and the first ones of :func:`_trade_rows`) for networks of shape ``lead``."""
    n_rep, n_ports = rn[0], seizures.shape[-1]
    pr = _param_rows(p, n_rep)
    return (
        per_row(a0, n_rep, n_ports),
        pr["cost"],
        p.log_at_risk,
        *(pr[k] for k in ("prior_strength", "kappa", "margin", "setup", "phi", "beta", "nest_lambda", "hold_utility")),
        *(pr[k] for k in ("elsewhere_detection", "zeta", "split_floor")),
        *(np.reshape(x, (*rn, n_ports)) for x in (seizures, exposure, h)),
        *(per_network(x, lead, rn) for x in (lam, m, rate, p.utility_elsewhere(lam))),
        per_network(alive, lead, rn, bool),
        float(supply),
        p.nest_order,
        p.nest_of,
        len(p.nest_starts),
    )


def _rows_networks(lead: tuple[int, ...]) -> tuple[int, int]:
    """The compiled loops' view of a leading shape: (batch rows, networks per row).

    The first axis is the batch row (per-row parameters have it too, ``rows.py``);
    a single network (the Mesa agents, ``lead = ()``) is one row of one network.
    """
    n_rep = lead[0] if lead else 1
    return n_rep, math.prod(lead[1:])


# Parameters the compiled loops read, one row per batch row: built once per (Params, rows).
_ROW_SCALARS = (
    "prior_strength", "kappa", "margin", "setup", "phi", "beta", "nest_lambda", "hold_utility",
    "elsewhere_detection", "zeta", "split_floor", "memory", "omega", "access_growth", "access_decay", "access_burn",
)  # fmt: skip
_ROW_PORT_ARRAYS = ("cost", "c")


def _param_rows(p: Params, n_rep: int) -> dict[str, np.ndarray]:
    """``p``'s numbers as arrays ``(n_rep,)`` and port arrays as ``(n_rep, P)``, for the compiled loops.

    Built once per ``Params`` object and row count (:func:`rows.built_once`), so
    the Mesa agents' single rows do not rebuild them every week.
    """

    def build() -> dict[str, np.ndarray]:
        rows = {k: per_row(getattr(p, k), n_rep) for k in _ROW_SCALARS}
        return rows | {k: per_row(getattr(p, k), n_rep, p.n_ports) for k in _ROW_PORT_ARRAYS}

    return built_once(p, ("param_rows", n_rep), build)


@njit(cache=CACHE, nogil=True, error_model="numpy", inline="always")
def _decide_row(r, cr, rows, nets, supply, order, nest_of, work, utility, risk, probs, cum_ship, m_eff, mean_loads):
    """Steps 3-4 for the networks of row ``r``: the equations of :mod:`mechanics` on numbers.

    ``rows`` are the per-row parameters and ``nets`` the per-network arrays of
    :func:`_decide_rows` (tuples: numba inlines calls of at most 30 arguments).
    ``probs`` and ``cum_ship`` are written at row ``cr`` (a scratch row in
    :func:`_trade_rows`); ``work``, ``utility`` and ``risk`` are scratch arrays.
    """
    a0, cost, log_at_risk, b0, kappa, margin, setup, phi, beta, nest_lambda, hold, e_det, zeta, floor = rows
    seizures, exposure, h, lam, m, rate, u_else, alive = nets
    n_net, n_ports = seizures.shape[1], seizures.shape[2]
    b0_r, kappa_r, margin_r, setup_r, phi_r = b0[r], kappa[r], margin[r], setup[r], phi[r]
    for n in range(n_net):
        lam_n = lam[r, n]
        for j in range(n_ports):  # two loops over the ports with fewer arrays each (as in _learn_row)
            rho = mx.perceived_risk(a0[r, j], b0_r, seizures[r, n, j], exposure[r, n, j])
            risk[j] = mx.effective_risk(rho, kappa_r, h[r, n, j])
        for j in range(n_ports):
            utility[j] = mx.port_utility(
                margin_r, lam_n, risk[j], cost[r, j], setup_r, h[r, n, j], phi_r, log_at_risk[j]
            )
        risk[n_ports] = e_det[r]
        row = probs[cr, n]
        coef = beta[r] / nest_lambda[r]
        v_else, v_hold = beta[r] * u_else[r, n], beta[r] * hold[r]
        mx.nested_logit_row(utility, coef, nest_lambda[r], v_else, v_hold, order, nest_of, work, row)
        # two running sums in one loop (each in its own order), so the processor adds them side by side:
        # the risk the loads are exposed to, and the choice given shipping (cumulative)
        exposed, total = 0.0, 0.0
        for j in range(n_ports + 1):
            exposed += row[j] * risk[j]
            total += row[j]
            cum_ship[cr, n, j] = total
        m_eff[r, n] = mx.split_load(m[r, n], zeta[r], floor[r], exposed)
        if alive[r, n]:
            mean_loads[r, n] = mx.expected_loads(supply, rate[r, n], m[r, n], m_eff[r, n], row[n_ports + 1])
        else:
            mean_loads[r, n] = 0.0
        # the choice given shipping normalised by the running total itself, so the last bound is exactly 1
        # and an alternative of probability 0 at the end can never be drawn
        for j in range(n_ports + 1):
            cum_ship[cr, n, j] = cum_ship[cr, n, j] / total if total > 0 else 1.0


_DECIDE_TYPES = (
    F2, F2, F1, F1, F1, F1, F1, F1, F1, F1, F1, F1, F1, F1,  # a0, cost, log_at_risk, then per-row numbers
    F3, F3, F3, F2, F2, F2, F2, B2, float64,  # seizures, exposure, h; lam, m, rate, u_else, alive; supply
    I1, I1, int64, F3, F2, F2, F3,  # nests; outputs
)  # fmt: skip


@typed_loop(void(*_DECIDE_TYPES), cache=CACHE, nogil=True, error_model="numpy")
def _decide_rows(
    a0, cost, log_at_risk, b0, kappa, margin, setup, phi, beta, nest_lambda, hold,
    e_det, zeta, floor, seizures, exposure, h, lam, m, rate, u_else, alive, supply,
    order, nest_of, n_nests, probs, m_eff, mean_loads, cum_ship,
):  # fmt: skip
    """Steps 3-4 for each (row, network), in one pass (:func:`_decide_row` for each row)."""
    n_ports = seizures.shape[2]
    work = mx.nested_logit_work(order, nest_of, n_nests, n_ports)
    utility, risk = np.empty(n_ports), np.empty(n_ports + 1)
    rows = (a0, cost, log_at_risk, b0, kappa, margin, setup, phi, beta, nest_lambda, hold, e_det, zeta, floor)
    nets = (seizures, exposure, h, lam, m, rate, u_else, alive)
    for r in range(seizures.shape[0]):
        _decide_row(r, r, rows, nets, supply, order, nest_of, work, utility, risk, probs, cum_ship, m_eff, mean_loads)


def ship(
    p: Params,
    dec: Decision,
    u: np.ndarray,
    l_max: int,
    i_q: np.ndarray,
    t: np.ndarray,
    h: np.ndarray,
    g: np.ndarray,
    port_agency: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Step 5: each network's loads per alternative this week and how many were seized, ``(..., P + 1)`` each.

    ``u`` is the week's block of uniforms ``(..., 1 + 2 L)``: the load count, then a
    port uniform and a detection uniform for each possible load. ``i_q`` and ``t`` are
    per port (one row per batch row), ``h`` the insiders ``(..., P)``, ``g`` the
    intelligence term of each agency for each network ``(..., A + 1)`` (the last one
    zero: ports with no agency, ``port_agency = -1``). Detection is computed for each
    load at its alternative only.
    """
    n_ports, lead = h.shape[-1], h.shape[:-1]
    _check_ship_inputs(u, l_max, port_agency, g, n_ports)
    rn = _rows_networks(lead)
    n_rep = rn[0]
    pr = _param_rows(p, n_rep)
    loads, caught = np.empty((*rn, n_ports + 1)), np.empty((*rn, n_ports + 1))  # zeroed by the loop
    _ship_rows(
        np.reshape(u, (*rn, u.shape[-1])),
        per_network(dec.mean_loads, lead, rn),
        np.reshape(dec.cum_ship, (*rn, n_ports + 1)),
        per_row(i_q, n_rep, n_ports),
        per_row(t, n_rep, n_ports),
        np.reshape(h, (*rn, n_ports)),
        np.reshape(g, (*rn, g.shape[-1])),
        _agency_columns(port_agency, g),
        pr["kappa"],
        pr["elsewhere_detection"],
        l_max,
        loads,
        caught,
    )
    return loads.reshape(*lead, n_ports + 1), caught.reshape(*lead, n_ports + 1)


def _check_ship_inputs(u: np.ndarray, l_max: int, port_agency: np.ndarray, g: np.ndarray, n_ports: int) -> None:
    """The compiled loops read without bounds checks: check the widths they rely on."""
    width = shipment_block_width(l_max)
    if u.shape[-1] < width:
        raise ValueError(f"uniform block of width {u.shape[-1]} for {l_max} load slots (needs {width})")
    if len(port_agency) != n_ports or np.max(port_agency, initial=-1) >= g.shape[-1] - 1:
        raise ValueError("port_agency needs one agency per port, below the last (zero) column of g")


def _agency_columns(port_agency: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Each port's column of ``g``: its agency, or the last (zero) column for a port with none."""
    return np.where(port_agency < 0, g.shape[-1] - 1, port_agency)


@njit(cache=CACHE, nogil=True, error_model="numpy", inline="always")
def _count_row(r, ur, u, mean_loads, l_max, counts):
    """Each network's load count of row ``r`` (:func:`mechanics.poisson_from_uniform` of its first uniform)."""
    for n in range(u.shape[1]):
        counts[n] = mx.poisson_from_uniform(u[ur, n, 0], mean_loads[r, n], l_max)


@njit(cache=CACHE, nogil=True, error_model="numpy", inline="always")
def _ship_row(r, cr, ur, u, counts, cum_ship, i_q, t, h, g, agency, kappa, e_det, l_max, loads, caught, by_agency):
    """Step 5 for the networks of row ``r``: alternative and detection of each load, in load order.

    ``counts`` holds each network's load count (:func:`_count_row`, or :func:`_draw_row`
    as it draws). ``cum_ship`` is read at row ``cr`` (a scratch row in :func:`_trade_rows`) and the
    uniforms at row ``ur`` of ``u`` (rows on common random numbers share one).
    ``by_agency`` ``(N, A + 1, 2)`` receives each network's loads and seizures in each
    agency's ports (column ``agency[p]`` of port ``p``; the last one: ports with no agency).
    """
    n_net, n_alt = loads.shape[1], loads.shape[2]
    n_ports = n_alt - 1
    for n in range(n_net):
        for j in range(n_alt):
            loads[r, n, j] = 0.0
            caught[r, n, j] = 0.0
        for a in range(by_agency.shape[1]):
            by_agency[n, a, 0] = 0.0
            by_agency[n, a, 1] = 0.0
        for k in range(counts[n]):
            alt = mx.choose_one(u[ur, n, 1 + k], cum_ship[cr, n])
            if alt == n_ports:
                a = -1
                d = e_det[r]
            else:
                a = agency[alt]
                d = mx.detection_probability(i_q[r, alt], kappa[r], h[r, n, alt], t[r, alt], g[r, n, a])
            loads[r, n, alt] += 1.0
            seized = u[ur, n, 1 + l_max + k] < d
            if seized:
                caught[r, n, alt] += 1.0
            if a >= 0:  # whole numbers: the same sums as port by port
                by_agency[n, a, 0] += 1.0
                by_agency[n, a, 1] += seized


@njit(cache=CACHE, nogil=True, error_model="numpy", inline="always")
def _draw_row(r, states, s, jumps, mean_loads, l_max, u, counts):
    """The uniforms :func:`_ship_row` reads for row ``r``, drawn into ``u[0]`` from stream ``s`` of ``states``.

    The stream is at the start of the week's block (``states``, ``jumps``: a
    :class:`pcg64.SkipStreams`). For each network: the load count, the port and the
    detection uniform of each load it ships, at their places in the network's block of
    ``1 + 2 l_max`` (numpy's numbers, bit for bit); the rest of the block is jumped over,
    and its places in ``u`` are left as they were (:func:`_ship_row` does not read them).
    Each network's load count goes to ``counts`` (what :func:`_count_row` would compute).
    """
    sh, sl, ih, il = states[s, 0], states[s, 1], states[s, 2], states[s, 3]
    for n in range(u.shape[1]):
        sh, sl, x = pcg.step(sh, sl, ih, il)
        u[0, n, 0] = x
        k = mx.poisson_from_uniform(x, mean_loads[r, n], l_max)
        counts[n] = k
        for j in range(1, 1 + k):  # the ports of loads 1..k
            sh, sl, x = pcg.step(sh, sl, ih, il)
            u[0, n, j] = x
        sh, sl = pcg.jump(sh, sl, ih, il, jumps, l_max - k)
        for j in range(1 + l_max, 1 + l_max + k):  # their detection uniforms
            sh, sl, x = pcg.step(sh, sl, ih, il)
            u[0, n, j] = x
        sh, sl = pcg.jump(sh, sl, ih, il, jumps, l_max - k)


@typed_loop(void(F3, F2, F3, F2, F2, F3, F3, I1, F1, F1, int64, F3, F3), cache=CACHE, nogil=True, error_model="numpy")
def _ship_rows(
    u, mean_loads, cum_ship, i_q, t, h, g, agency, kappa, e_det, l_max, loads, caught
):  # fmt: skip
    """Step 5 for each (row, network) (:func:`_ship_row` for each row)."""
    by_agency = np.empty((h.shape[1], g.shape[2], 2))
    counts = np.empty(h.shape[1], dtype=np.int64)
    for r in range(h.shape[0]):
        _count_row(r, r, u, mean_loads, l_max, counts)
        _ship_row(r, r, r, u, counts, cum_ship, i_q, t, h, g, agency, kappa, e_det, l_max, loads, caught, by_agency)


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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 6: evidence and exposure with decay and milieu news; insider access.

    ``own_loads`` and ``own_seized`` are this week's counts per port (own loads add
    exposure ``mechanics.own_exposure``); the news (:func:`milieu_news`) is each
    port's seizures and exposure this week per active network, ``(P,)`` or one row
    per batch row ``(R, P)``.
    """
    n_ports, lead = seizures.shape[-1], seizures.shape[:-1]
    rn = _rows_networks(lead)
    n_rep = rn[0]
    out = [np.empty((*rn, n_ports)) for _ in range(3)]
    pr = _param_rows(p, n_rep)
    _learn_rows(
        *(np.reshape(x, (*rn, n_ports)) for x in (seizures, exposure, h, own_loads, own_seized)),
        *(per_row(x, n_rep, n_ports) for x in (news_seized, news_exposure)),
        *(pr[k] for k in ("kappa", "memory", "omega", "access_growth", "access_decay", "access_burn", "c")),
        *out,
    )
    return tuple(x.reshape(*lead, n_ports) for x in out)


@njit(cache=CACHE, nogil=True, error_model="numpy", inline="always")
def _learn_row(
    r, seizures, exposure, h, own_loads, own_seized, news_seized, news_exposure,
    kappa, memory, omega, growth, decay, burn, c, new_s, new_e, new_h,
):  # fmt: skip
    """Step 6 for the networks of row ``r``, port by port (each port's old values read before it is written).

    The loops stop at ``seizures.shape[2]`` ports, so ``own_loads`` and ``own_seized`` may
    carry a last column (elsewhere) that is not read.
    """
    n_net, n_ports = seizures.shape[1], seizures.shape[2]
    w, o, k = memory[r], omega[r], kappa[r]
    g, d, b = growth[r], decay[r], burn[r]
    for n in range(n_net):
        # three loops over the ports, each with few arrays, rather than one with all of them: the compiler
        # keeps each loop's addresses in registers (and may use vector instructions); the access is
        # updated last, after the exposure has read it
        for j in range(n_ports):
            new_s[r, n, j] = mx.update_evidence(seizures[r, n, j], w, own_seized[r, n, j], o, news_seized[r, j])
        for j in range(n_ports):
            own_exp = mx.own_exposure(own_loads[r, n, j], k, h[r, n, j])
            new_e[r, n, j] = mx.update_evidence(exposure[r, n, j], w, own_exp, o, news_exposure[r, j])
        for j in range(n_ports):
            used, hit = own_loads[r, n, j] > 0, own_seized[r, n, j] > 0
            new_h[r, n, j] = mx.update_access(h[r, n, j], used, hit, g, c[r, j], d, b)


@typed_loop(
    void(F3, F3, F3, F3, F3, F2, F2, F1, F1, F1, F1, F1, F1, F2, F3, F3, F3),
    cache=CACHE,
    nogil=True,
    error_model="numpy",
)
def _learn_rows(
    seizures, exposure, h, own_loads, own_seized, news_seized, news_exposure,
    kappa, memory, omega, growth, decay, burn, c, new_s, new_e, new_h,
):  # fmt: skip
    """Step 6 for each (row, network, port) (:func:`_learn_row` for each row)."""
    for r in range(seizures.shape[0]):
        _learn_row(
            r, seizures, exposure, h, own_loads, own_seized, news_seized, news_exposure,
            kappa, memory, omega, growth, decay, burn, c, new_s, new_e, new_h,
        )  # fmt: skip


def milieu_news(
    p: Params, own_loads: np.ndarray, own_seized: np.ndarray, h: np.ndarray, n_active: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray]:
    """The week's seizures and exposure per port, summed over networks in slot order, per active network.

    A network's exposure is :func:`mechanics.own_exposure` of its own loads. Arrays
    ``(..., N, P)``; ``n_active`` has the leading shape ``...`` (or is a number).
    Returns two ``(..., P)`` arrays.
    """
    rows, (n_net, n_ports) = h.shape[:-2], h.shape[-2:]
    n_rep = math.prod(rows)
    shape = (n_rep, n_net, n_ports)
    news_s, news_e = np.empty((n_rep, n_ports)), np.empty((n_rep, n_ports))
    _news_rows(
        *(np.reshape(x, shape) for x in (own_loads, own_seized, h)),
        _param_rows(p, n_rep)["kappa"],
        per_row(np.asarray(n_active, dtype=np.float64).reshape(-1), n_rep),
        news_s,
        news_e,
    )
    return news_s.reshape(*rows, n_ports), news_e.reshape(*rows, n_ports)


@njit(cache=CACHE, nogil=True, error_model="numpy", inline="always")
def _news_row(r, own_loads, own_seized, h, kappa, n_active, news_s, news_e):
    """:func:`milieu_news` of row ``r`` (the loops stop at ``h.shape[2]`` ports)."""
    n_net, n_ports = h.shape[1:]
    news_s[r, :] = 0.0
    news_e[r, :] = 0.0
    k = kappa[r]
    for n in range(n_net):  # two loops over the ports with few arrays each (as in _learn_row)
        for j in range(n_ports):
            news_s[r, j] += own_seized[r, n, j]
        for j in range(n_ports):
            news_e[r, j] += mx.own_exposure(own_loads[r, n, j], k, h[r, n, j])
    for j in range(n_ports):
        news_s[r, j] /= n_active[r]
        news_e[r, j] /= n_active[r]


@typed_loop(void(F3, F3, F3, F1, F1, F2, F2), cache=CACHE, nogil=True, error_model="numpy")
def _news_rows(own_loads, own_seized, h, kappa, n_active, news_s, news_e):
    """Sums over networks, in slot order (a running sum, as :func:`sum_over_networks`), per active network."""
    for r in range(h.shape[0]):
        _news_row(r, own_loads, own_seized, h, kappa, n_active, news_s, news_e)


# --- steps 3-6 in one pass per row (the vectorized engine) -------------------------------------------


@njit(cache=CACHE, nogil=True, error_model="numpy", inline="always")
def _totals_row(r, loads, caught, m_eff, home, port_agency, by_agency, n_loads, shipped, seized, seized_kg, cross):
    """The sums of :func:`shipment_totals` for row ``r``, over networks in slot order (a running sum).

    ``by_agency`` is a scratch array, one cell per agency.
    """
    n_net, n_alt = loads.shape[1], loads.shape[2]
    for j in range(n_alt):  # alternative by alternative, so the four running sums stay in registers
        n_sum, kg_sum, seized_sum, seized_kg_sum = 0.0, 0.0, 0.0, 0.0
        for n in range(n_net):
            kg = m_eff[r, n]
            n_sum += loads[r, n, j]
            kg_sum += loads[r, n, j] * kg
            seized_sum += caught[r, n, j]
            seized_kg_sum += caught[r, n, j] * kg
        n_loads[r, j], shipped[r, j], seized[r, j], seized_kg[r, j] = n_sum, kg_sum, seized_sum, seized_kg_sum
    for a in range(cross.shape[1]):
        cross[r, a] = 0.0
    for n in range(n_net):
        if home[r, n] < 0:
            continue
        kg = m_eff[r, n]
        by_agency[:] = 0.0
        any_seized = False
        for q in range(n_alt - 1):  # each agency's ports, in port order
            a = port_agency[q]
            if a >= 0 and caught[r, n, q] > 0:
                by_agency[a] += caught[r, n, q] * kg
                any_seized = True
        # without a seizure every term is +0.0, and adding +0.0 to these non-negative sums changes nothing
        if any_seized:
            for a in range(cross.shape[1]):
                if home[r, n] != a:
                    cross[r, a] += by_agency[a]


def trade(
    p: Params,
    a0: np.ndarray,
    supply: float,
    lam: np.ndarray,
    m: np.ndarray,
    rate: np.ndarray,
    seizures: np.ndarray,
    exposure: np.ndarray,
    h: np.ndarray,
    alive: np.ndarray,
    u: np.ndarray,
    l_max: int,
    i_q: np.ndarray,
    t: np.ndarray,
    g: np.ndarray,
    port_agency: np.ndarray,
    home_agency: np.ndarray,
    u_rows: np.ndarray | None = None,
    intel: tuple | None = None,
    buffers: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """Steps 3-6 of a batch ``(R, N, P)``: :func:`decide`, :func:`ship`, :func:`milieu_news` and :func:`learn`.

    One compiled pass per row runs the four phases on that row's networks while they
    are in the cache, through the same per-row functions as the separate phases
    (so the numbers are the same, bit for bit). ``seizures``, ``exposure`` and ``h``
    (C-ordered) are updated in place. Row ``r`` ships with the uniforms ``u[u_rows[r]]``
    (default: ``u[r]``), so rows on common random numbers can share one block without
    copies. ``u`` may also be a :class:`pcg64.SkipStreams` at the week's blocks (one
    stream per row of ``u_rows``' range): the pass then computes the uniforms each
    network uses from its stream instead of reading a drawn block, with the same numbers
    (the vectorized engine; the caller advances the streams after the week).
    ``home_agency`` ``(R, N)`` is each network's home agency (-1: none), for the
    week's totals. Returns ``(m_eff, mean_loads, loads, caught, totals)``: ``loads`` and
    ``caught`` are ``(R, N, P + 1)`` counts, ``totals`` what :func:`shipment_totals` returns
    for them, summed while each row is in the cache. With ``intel``, the week's
    :func:`cooperation.intel_inputs`, the pass also gathers the intelligence (step 7 of
    :func:`cooperation.gather_intel` without its shocks) from the row's seizures and loads.
    With ``buffers`` (a dict the caller keeps), ``loads`` and ``caught`` are written into the
    arrays of the last call with that dict (allocated on huge pages, :func:`rows.aligned_empty`),
    so they are valid until the next such call; the vectorized engine keeps one per group.
    """
    n_rep, n_net, n_ports = seizures.shape
    if isinstance(u, pcg.SkipStreams):  # drawn as read: the loop writes each row's uniforms into one scratch row
        if u.width != shipment_block_width(l_max) or u.blocks != n_net:
            raise ValueError(f"streams of {u.blocks} blocks of {u.width} for {n_net} networks and {l_max} load slots")
        states, jumps, n_streams = u.states, u.jumps, len(u.states)
        u = np.empty((1, n_net, u.width))
    else:
        states = jumps = np.empty((0, 4), dtype=np.uint64)
        n_streams = u.shape[0]
    _check_ship_inputs(u, l_max, port_agency, g, n_ports)
    if u_rows is None:
        u_rows = np.arange(n_rep)
    u_rows = np.asarray(u_rows, dtype=np.int64)
    if u_rows.shape != (n_rep,) or (n_rep and not 0 <= u_rows.min() <= u_rows.max() < n_streams):
        raise ValueError(f"u_rows needs one row of the {n_streams} uniform rows for each of {n_rep} rows")
    if u.shape[1] != n_net or g.shape[:2] != (n_rep, n_net):
        raise ValueError(f"uniforms {u.shape[:2]} and intelligence {g.shape[:2]} for networks {(n_rep, n_net)}")
    for x in (seizures, exposure, h):
        if not (x.flags.c_contiguous and x.flags.writeable):
            raise ValueError("trade updates the state in place: it needs writable C-ordered arrays")
    # a bounds check (cheap, every week): for whole C-ordered arrays, overlapping bounds mean shared memory
    if any(np.may_share_memory(x, y) for x, y in ((seizures, exposure), (seizures, h), (exposure, h))):
        raise ValueError("trade updates seizures, exposure and h in place: they must be separate arrays")
    rn = (n_rep, n_net)
    pr = _param_rows(p, n_rep)
    m_eff, mean_loads = np.empty(rn), np.empty(rn)
    shape = (*rn, n_ports + 1)
    if buffers is not None and "loads" in buffers and buffers["loads"].shape == shape:
        loads, caught = buffers["loads"], buffers["caught"]  # zeroed by the loop, network by network
    else:
        loads, caught = aligned_empty(shape), aligned_empty(shape)
        if buffers is not None:
            buffers.update(loads=loads, caught=caught)
    home = np.asarray(home_agency, dtype=np.int64)
    if home.shape != rn:
        raise ValueError(f"home_agency {home.shape} for networks {rn}")
    totals = _totals_outputs(n_rep, n_ports + 1, g.shape[-1] - 1)
    if intel is None:
        intel = co.no_intel(n_rep, n_net)
    elif intel[4].shape[::2] != rn or intel[4].shape[1] > g.shape[-1] - 1:
        raise ValueError(f"intelligence {intel[4].shape} for networks {rn} and {g.shape[-1] - 1} agencies")
    args = (
        *_decide_inputs(p, a0, supply, lam, m, rate, seizures, exposure, h, alive, rn, rn),
        u,
        u_rows,
        states,
        jumps,
        per_row(i_q, n_rep, n_ports),
        per_row(t, n_rep, n_ports),
        g,
        _agency_columns(port_agency, g),
        l_max,
        np.maximum(per_network(alive, rn, rn, bool).sum(axis=1), 1).astype(np.float64),
        *(pr[k] for k in ("memory", "omega", "access_growth", "access_decay", "access_burn", "c")),
        home,
        np.asarray(port_agency, dtype=np.int64),
        m_eff,
        mean_loads,
        loads,
        caught,
        *totals,
        *intel,
    )
    # C-ordered arrays only (_jit.c_ordered); seizures, exposure and h are checked above
    _trade_rows(*c_args(args, (intel[4], intel[5], intel[14]), _TRADE_UNIFORMS))  # written: intel, pending, landed
    return m_eff, mean_loads, loads, caught, totals


_TRADE_UNIFORMS = (26,)  # the uniforms' position: read where they lie in the week's block (any strides)
_TRADE_TYPES = c_ordered((
    *_DECIDE_TYPES[:26],  # decide's inputs (a0 ... nests)
    F3, I1, U2, U2,  # ship: uniforms, each row's uniform row (or stream), the streams and their jumps
    F2, F2, F3, I1, int64,  # i_q, t, g, agency columns, l_max
    F1, F1, F1, F1, F1, F1, F2,  # news and learn: active networks, memory, omega, growth, decay, burn, c
    I2, I1,  # totals: home agency of each network, agency of each port
    F2, F2, F3, F3,  # outputs: m_eff, mean_loads, loads, caught
    F2, F2, F2, F2, F2,  # and the totals: loads, shipped kg, seized loads, seized kg, cross-border seized kg
    *co.INTEL_TYPES,  # intelligence: cooperation.intel_inputs
), _TRADE_UNIFORMS)  # fmt: skip


@typed_loop(void(*_TRADE_TYPES), cache=CACHE, nogil=True, error_model="numpy")
def _trade_rows(
    a0, cost, log_at_risk, b0, kappa, margin, setup, phi, beta, nest_lambda, hold,
    e_det, zeta, floor, seizures, exposure, h, lam, m, rate, u_else, alive, supply,
    order, nest_of, n_nests, u, u_rows, states, jumps, i_q, t, g, agency, l_max,
    n_active, memory, omega, growth, decay, burn, c, home, port_agency, m_eff, mean_loads, loads, caught,
    n_loads, shipped, seized, seized_kg, cross,
    case_on, t_active, alive_i, home_i, intel, pending, slot, now, week,
    gain_seizure, gain_case, gain_home, share, decay_i, landed, memory_i,
):  # fmt: skip
    """:func:`trade` row by row: decide, ship, totals, intelligence, news and learn for a row, then the next row."""
    n_rep, n_net, n_ports = seizures.shape
    work = mx.nested_logit_work(order, nest_of, n_nests, n_ports)
    utility, risk = np.empty(n_ports), np.empty(n_ports + 1)
    probs, cum_ship = np.empty((1, n_net, n_ports + 2)), np.empty((1, n_net, n_ports + 1))  # one row's scratch
    news_s, news_e = np.empty((n_rep, n_ports)), np.empty((n_rep, n_ports))
    by_agency = np.empty(cross.shape[1])
    own = np.empty((intel.shape[1] + 1, n_net))  # each agency's own gain on each network, then their total
    by_port_agency = np.empty((n_net, g.shape[2], 2))  # one row's loads and seizures in each agency's ports
    counts = np.empty(n_net, dtype=np.int64)  # one row's load counts
    rows = (a0, cost, log_at_risk, b0, kappa, margin, setup, phi, beta, nest_lambda, hold, e_det, zeta, floor)
    nets = (seizures, exposure, h, lam, m, rate, u_else, alive)
    for r in range(n_rep):
        _decide_row(r, 0, rows, nets, supply, order, nest_of, work, utility, risk, probs, cum_ship, m_eff, mean_loads)
        ur = u_rows[r]
        if states.shape[0]:  # drawn from the row's stream, not read from a block (pcg64.SkipStreams)
            _draw_row(r, states, ur, jumps, mean_loads, l_max, u, counts)
            ur = 0
        else:
            _count_row(r, ur, u, mean_loads, l_max, counts)
        _ship_row(
            r, 0, ur, u, counts, cum_ship, i_q, t, h, g, agency, kappa, e_det, l_max, loads, caught,
            by_port_agency,
        )  # fmt: skip
        _totals_row(r, loads, caught, m_eff, home, port_agency, by_agency, n_loads, shipped, seized, seized_kg, cross)
        co._intel_row(
            r, by_port_agency, case_on, t_active, alive_i, home_i, intel, pending, slot, now, week,
            gain_seizure, gain_case, gain_home, share, decay_i, landed, memory_i, own,
        )  # fmt: skip
        # own loads and seizures are the first P columns of loads and caught (the loops stop at P)
        _news_row(r, loads, caught, h, kappa, n_active, news_s, news_e)
        _learn_row(
            r, seizures, exposure, h, loads, caught, news_s, news_e,
            kappa, memory, omega, growth, decay, burn, c, seizures, exposure, h,
        )  # fmt: skip


# --- record ----------------------------------------------------------------------------------------


def shipment_totals(cp, loads: np.ndarray, caught: np.ndarray, m_eff: np.ndarray, home_agency: np.ndarray):
    """The week's loads, kg and seizures per alternative, and cross-border seized kg per agency.

    Each is summed over networks in slot order. ``loads`` and ``caught`` are ``(..., N, P + 1)``
    counts, ``m_eff`` the kg per load and ``home_agency`` each network's home agency (-1:
    none), ``(..., N)``. Returns ``(loads, shipped_kg, seized_loads, seized_kg,
    cross_border_seized_kg)``, the first four ``(..., P + 1)``, the last ``(..., A)``;
    cross-border seized kg are a network's seized kg at an agency's ports (added in port
    order) when its home is another agency's country.
    """
    rows, (n_net, n_alt) = loads.shape[:-2], loads.shape[-2:]
    n_rep = math.prod(rows)
    out = _totals_outputs(n_rep, n_alt, cp.n_agencies)
    _totals_rows(
        np.reshape(loads, (n_rep, n_net, n_alt)),
        np.reshape(caught, (n_rep, n_net, n_alt)),
        np.reshape(m_eff, (n_rep, n_net)),
        np.reshape(np.asarray(home_agency, dtype=np.int64), (n_rep, n_net)),
        np.asarray(cp.port_agency, dtype=np.int64),
        *out,
    )
    return tuple(x.reshape(*rows, x.shape[-1]) for x in out)


def _totals_outputs(n_rep: int, n_alt: int, n_agencies: int) -> tuple[np.ndarray, ...]:
    """The arrays :func:`shipment_totals` returns (filled by :func:`_totals_row`)."""
    return (*(np.empty((n_rep, n_alt)) for _ in range(4)), np.empty((n_rep, n_agencies)))


@typed_loop(void(F3, F3, F2, I2, I1, F2, F2, F2, F2, F2), cache=CACHE, nogil=True, error_model="numpy")
def _totals_rows(loads, caught, m_eff, home, port_agency, n_loads, shipped, seized, seized_kg, cross):
    """Sums over networks in slot order (:func:`_totals_row` for each row)."""
    by_agency = np.empty(cross.shape[1])
    for r in range(loads.shape[0]):
        _totals_row(r, loads, caught, m_eff, home, port_agency, by_agency, n_loads, shipped, seized, seized_kg, cross)


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
    are :func:`shipment_totals` of this week's shipments if already summed (:func:`trade`);
    the slots that shipped keep their home through renewal (a successor inherits it, an
    entrant only fills a slot vacant since an earlier week), so both give the same sums.
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
