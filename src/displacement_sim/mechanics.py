"""The model's equations, as pure functions on numpy arrays of any leading shape.

Both engines call these and nothing else for the model's arithmetic: the Mesa
agents pass one network's row, shape ``(P,)``; the vectorized engine passes
``(R, N, P)`` blocks. No function holds state or draws random numbers: every
random variable is computed from uniforms by inverse CDF, so a changed
probability never shifts later draws (DESIGN.md section 5).

The elementwise equations of the traffickers' week are numba ufuncs
(``@vectorize``): called with arrays they broadcast like numpy arithmetic, and the
compiled loops of :mod:`kernel` call the very same functions on numbers, once per
network and port. The nested logit is one compiled row function
(:func:`nested_logit_row`) behind :func:`choice_probabilities`. Compiled code is
cached on disk (:mod:`displacement_sim._jit`): the first run on a machine compiles it.

Alternatives are indexed ``0..P-1`` for the ports, ``P`` for *elsewhere* and
``P+1`` for *hold*.
"""

from __future__ import annotations

import math

import numpy as np
from numba import int64, njit, vectorize, void
from scipy.special import ndtri

from ._jit import CACHE, F1, F2, I1, typed_loop
from .rows import per_network

__all__ = [
    "allocation_weights",
    "anticipate_displacement",
    "choice_probabilities",
    "choose_alternative",
    "choose_one",
    "detection_probability",
    "effective_load",
    "effective_risk",
    "expected_loads",
    "geometric_from_uniform",
    "inspection_rates",
    "lognormal_from_uniform",
    "own_exposure",
    "perceived_risk",
    "poisson_from_uniform",
    "poisson_tail_bound",
    "port_utility",
    "split_load",
    "transit_detection",
    "update_access",
    "update_evidence",
    "water_fill",
]

# --- random variables from uniforms ------------------------------------------------------------


def lognormal_from_uniform(u: np.ndarray, median: float, sigma: float, low: float, high: float) -> np.ndarray:
    """Inverse CDF of a log-normal (median, log-sd ``sigma``), clipped to ``[low, high]``."""
    return np.clip(median * np.exp(sigma * ndtri(u)), low, high)


def categorical_from_uniform(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Index ``k`` with probability ``weights[..., k] / sum`` (inverse CDF of one uniform)."""
    cum = np.cumsum(weights, axis=-1)
    return choose_alternative(u, cum / cum[..., -1:])


def choose_alternative(u: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """Inverse CDF on cumulative probabilities ``cum`` (last axis); ``u`` broadcasts against ``cum[..., 0]``.

    Returns the number of cumulative bounds (all but the last) that ``u`` reaches,
    so the result is always a valid index, and alternatives of probability zero are
    never chosen provided the bounds end exactly at 1 (``kernel.decide`` divides the
    running total by its last value to ensure it).
    """
    return np.sum(u[..., None] >= cum[..., :-1], axis=-1)


@njit(cache=CACHE, nogil=True, error_model="numpy")
def choose_one(u, cum):
    """:func:`choose_alternative` for one uniform and one row of bounds.

    The bounds never decrease, so counting stops at the first bound ``u`` does not reach.
    """
    k = 0
    while k < cum.size - 1 and u >= cum[k]:
        k += 1
    return k


def geometric_from_uniform(u: np.ndarray, mean: float) -> np.ndarray:
    """Inverse CDF of a geometric number of weeks >= 1 with the given mean (case durations)."""
    if mean <= 1.0:
        return np.ones(np.shape(u), dtype=np.int64)
    return 1 + np.floor(np.log1p(-u) / np.log1p(-1.0 / mean)).astype(np.int64)


def poisson_tail_bound(lam_max: float, tail: float = 1e-12) -> int:
    """Smallest ``L`` with ``P(Poisson(lam_max) > L) < tail``: the load slots drawn per week."""
    if lam_max <= 0:
        return 1
    p = math.exp(-lam_max)
    cdf = p
    k = 0
    while 1.0 - cdf >= tail:
        k += 1
        p *= lam_max / k
        cdf += p
        if k > 100_000:
            raise ValueError(f"load rate {lam_max} too large for the fixed-consumption design")
    return max(k, 1)


@vectorize(cache=CACHE)
def poisson_from_uniform(u, lam, l_max):
    """Inverse CDF of Poisson(``lam``) at ``u``, truncated at ``l_max`` (tail < 1e-12 by design).

    Counts ``k`` while ``u >= CDF(k - 1)``, with the CDF built term by term
    (``p_k = p_{k-1} lam / k``); the CDF only grows, so counting stops at the first miss.
    """
    p = math.exp(-lam)
    cdf = p
    count = 0
    for k in range(1, l_max + 1):
        if not u >= cdf:
            break
        count += 1
        p = p * lam / k
        cdf = cdf + p
    return count


# --- enforcement --------------------------------------------------------------------------------


def inspection_rates(base: np.ndarray, extra: np.ndarray, at_risk: np.ndarray, i_max: float) -> np.ndarray:
    """``i_p = base_p + extra_p / at_risk_p``, where the extra part may not lift ``i_p`` above ``i_max``."""
    return np.maximum(base, np.minimum(base + extra / at_risk, i_max))


def water_fill(weights: np.ndarray, caps: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Spread ``budget`` over the last axis in proportion to ``weights``, at most ``caps`` each.

    Budget a saturated cell cannot absorb goes to the others (water-filling);
    only when every cell with weight is full does budget remain unspent.
    Rows are independent; ``budget`` has the leading shape.
    """
    weights = np.asarray(weights, dtype=float)
    caps = np.broadcast_to(np.asarray(caps, dtype=float), weights.shape)
    extra = np.zeros(weights.shape)
    remaining = np.array(budget, dtype=float, copy=True).reshape(weights.shape[:-1])
    active = (weights > 0) & (caps > 0)
    for _ in range(weights.shape[-1] + 1):
        w = np.where(active, weights, 0.0)
        total = w.sum(axis=-1)
        live = (total > 0) & (remaining > 0)
        if not live.any():
            break
        safe_total = np.where(live, total, 1.0)
        share = np.where(live[..., None], remaining[..., None] * w / safe_total[..., None], 0.0)
        full = active & live[..., None] & (extra + share >= caps)
        any_full = full.any(axis=-1)
        # rows where nothing saturates take their share and are done
        done = live & ~any_full
        extra = np.where(done[..., None], extra + share, extra)
        remaining = np.where(done, 0.0, remaining)
        # rows where something saturates fill those cells and go round again
        grow = np.where(full & any_full[..., None], caps - extra, 0.0)
        extra = extra + grow
        remaining = np.where(any_full, np.maximum(remaining - grow.sum(axis=-1), 0.0), remaining)
        active = active & ~(full & any_full[..., None])
    return extra


def allocation_weights(
    rule: str,
    recent_seizures: np.ndarray,
    detection: np.ndarray,
    prior: np.ndarray,
    static_weights: np.ndarray,
    s0: float,
    rho: float,
    floor: float,
) -> np.ndarray:
    """Weights of an agency's ports under its allocation rule (DESIGN.md section 3, step 2).

    - ``static``: fixed weights;
    - ``reactive``: ``(recent seizures + s0) ** rho``, chasing the last seizures (NarcoLogic,
      Magliocca et al. 2019);
    - ``threat``: estimated flow ``(seizures + s0 * prior) / max(detection, floor)``:
      inverse-probability weighting with a prior, so a quiet port never drops to zero.
    """
    if rule == "static":
        return np.broadcast_to(static_weights, np.broadcast(recent_seizures, static_weights).shape).copy()
    if rule == "reactive":
        return (recent_seizures + s0) ** rho
    if rule == "threat":
        return (recent_seizures + s0 * prior) / np.maximum(detection, floor)
    raise ValueError(f"unknown allocation rule {rule!r}")


def anticipate_displacement(weights: np.ndarray, buffer_matrix: np.ndarray, anticipation: float) -> np.ndarray:
    """Joint strategy: add ``anticipation`` x each port's weight, spread over its buffer ports.

    ``buffer_matrix[q, p]`` is ``1/len(buffer(q))`` when ``p`` is in ``q``'s buffer. The
    product ``weights @ buffer_matrix`` is added up port by port, in a fixed order, so a
    row gives the same bits alone (Mesa) or in a batch (BLAS would round differently).
    """
    spread = weights[..., :1] * buffer_matrix[0]
    for q in range(1, buffer_matrix.shape[0]):
        spread += weights[..., q : q + 1] * buffer_matrix[q]
    return weights + anticipation * spread


def transit_detection(transit_check: np.ndarray, i_via: np.ndarray, q_via: np.ndarray) -> np.ndarray:
    """``t_p = transit_check_p * min(1, i_via * q_via)`` for inland ports (0 for seaports)."""
    return transit_check * np.minimum(1.0, i_via * q_via)


@vectorize(cache=CACHE)
def detection_probability(i_q, kappa, h, t, gamma_intel):
    """``d = 1 - (1 - min(1, i q) (1 - kappa h)) (1 - t) (1 - gamma I)`` (DESIGN.md step 5).

    ``i_q`` is ``min(1, i_p q_p)``; ``gamma_intel`` the intelligence term ``gamma I``
    (zero until the intelligence submodel is in the scenario).
    """
    return 1.0 - (1.0 - i_q * (1.0 - kappa * h)) * (1.0 - t) * (1.0 - gamma_intel)


# --- traffickers --------------------------------------------------------------------------------


# The elementwise equations below are numba ufuncs: called with arrays they broadcast like
# numpy's arithmetic (numpy code, tests), and the compiled week loops of ``kernel``
# call the same functions on numbers, so both engines compute with one definition.


@vectorize(cache=CACHE)
def perceived_risk(a0, b0, seizures, exposure):
    """Gamma-Poisson posterior mean of a port's base risk: ``(a0 + S) / (b0 + E)``, at most 1."""
    return min((a0 + seizures) / (b0 + exposure), 1.0)


@vectorize(cache=CACHE)
def effective_risk(rho, kappa, h):
    """Risk the network faces with its insiders: ``rho (1 - kappa h)``."""
    return rho * (1.0 - kappa * h)


@vectorize(cache=CACHE)
def port_utility(margin, lam, rho_eff, cost, setup, h, phi, log_at_risk):
    """``U = margin (1 - lam rho_eff) - a - setup (1 - h) + phi ln(at_risk)`` in k EUR/kg."""
    return margin * (1.0 - lam * rho_eff) - cost - setup * (1.0 - h) + phi * log_at_risk


def choice_probabilities(
    u_ports: np.ndarray,
    u_elsewhere: np.ndarray,
    u_hold: float | np.ndarray,
    beta: float | np.ndarray,
    nest_lambda: float | np.ndarray,
    nest_order: np.ndarray,
    nest_starts: np.ndarray,
    nest_of: np.ndarray,
) -> np.ndarray:
    """Nested-logit probabilities over (ports..., elsewhere, hold), last axis.

    Ports are nested by cluster: ``nest_order`` lists the enabled ports grouped
    by nest, ``nest_starts`` where each nest's group starts in that list and
    ``nest_of`` the nest of each listed port; ports not listed (disabled) get
    probability 0. Elsewhere and hold are degenerate nests.
    ``P(p) = P(nest k) P(p | k)`` with ``P(p | k) = exp(beta U_p / lambda) / sum_k``
    and ``P(k) ∝ exp(lambda IV_k)``, ``IV_k = ln sum_{j in k} exp(beta U_j / lambda)``
    (McFadden 1978; Train 2009, ch. 4). ``nest_lambda = 1`` is the plain logit.

    ``u_elsewhere`` has the leading shape ``u_ports.shape[:-1]``. ``beta``,
    ``nest_lambda`` and ``u_hold`` are each a float or an array that broadcasts
    against the leading shape (e.g. ``(R, 1)`` against ``(R, N)``: one value per
    replication). Each row is computed by the same compiled row function
    (:func:`nested_logit_row`), so a row gives the same bits alone or in a block;
    the engines call that function from ``kernel.decide``'s compiled loop.
    """
    lead, n_ports = u_ports.shape[:-1], u_ports.shape[-1]
    n_rows = math.prod(lead)
    per_row = (beta / nest_lambda, nest_lambda, beta * u_elsewhere, beta * u_hold)
    rows = [per_network(x, lead, (n_rows,)) for x in per_row]
    out = np.empty((*lead, n_ports + 2))
    _nested_logit_rows(
        np.require(u_ports, np.float64, ["C", "W"]).reshape(n_rows, n_ports),
        *rows,
        np.asarray(nest_order, dtype=np.int64),
        np.asarray(nest_of, dtype=np.int64),
        len(nest_starts),
        out.reshape(n_rows, n_ports + 2),
    )
    return out


@njit(cache=CACHE, nogil=True, error_model="numpy")
def nested_logit_work(order, nest_of, n_nests, n_ports):
    """Scratch arrays for :func:`nested_logit_row`, after checking the nests index within range."""
    for i in range(order.size):
        if order[i] < 0 or order[i] >= n_ports or nest_of[i] < 0 or nest_of[i] >= n_nests:
            raise ValueError("nest_order lists a port, or nest_of a nest, out of range")
    size = np.zeros(n_nests, dtype=np.int64)
    for i in range(order.size):
        size[nest_of[i]] += 1
    return np.empty(order.size), np.empty(n_nests), np.empty(n_nests), np.empty(n_nests + 2), size


@njit(cache=CACHE, nogil=True, error_model="numpy", inline="always")
def nested_logit_row(u, coef, lam, v_else, v_hold, order, nest_of, work, out):
    """One row of :func:`choice_probabilities`: utilities ``u`` (P,) to ``out`` (P + 2,).

    Per nest: ``peak = max(coef U)``, ``e_j = exp(coef U_j - peak)``,
    ``IV = lam (peak + ln sum e)``; then the top level is a logit over the nests'
    ``IV``, elsewhere and hold, shifted by its maximum. Sums run left to right
    along ``order``, the same for every row.
    """
    e, peak, total, top, size = work
    n_nests, n_ports = peak.size, u.size
    peak[:] = -np.inf
    total[:] = 0.0
    for i in range(order.size):
        peak[nest_of[i]] = max(peak[nest_of[i]], coef * u[order[i]])
    # exp(0) = 1 and ln 1 = 0 exactly: a nest's (or the top level's) largest term and a
    # one-port nest's total skip the call
    for i in range(order.size):
        g = nest_of[i]
        x = coef * u[order[i]] - peak[g]
        e[i] = 1.0 if x == 0.0 else math.exp(x)
        total[g] += e[i]
    for g in range(n_nests):
        top[g] = lam * (peak[g] + (0.0 if size[g] == 1 else math.log(total[g])))
    top[n_nests] = v_else
    top[n_nests + 1] = v_hold
    shift = top[0]
    for g in range(1, n_nests + 2):
        shift = max(shift, top[g])
    t = 0.0
    for g in range(n_nests + 2):
        x = top[g] - shift
        top[g] = 1.0 if x == 0.0 else math.exp(x)
        t += top[g]
    for g in range(n_nests + 2):  # each nest's share P(k), once per nest rather than once per port
        top[g] = top[g] / t
    out[:n_ports] = 0.0
    for i in range(order.size):
        g = nest_of[i]
        # P(k) P(p | k); x / 1 is x exactly, so a one-port nest (e = total = 1) skips the division
        out[order[i]] = top[g] * (e[i] if total[g] == 1.0 else e[i] / total[g])
    out[n_ports] = top[n_nests]
    out[n_ports + 1] = top[n_nests + 1]


@typed_loop(void(F2, F1, F1, F1, F1, I1, I1, int64, F2), cache=CACHE, nogil=True, error_model="numpy")
def _nested_logit_rows(u, coef, lam, v_else, v_hold, order, nest_of, n_nests, out):
    """Rows ``u`` (B, P) to probabilities ``out`` (B, P + 2), one :func:`nested_logit_row` each."""
    work = nested_logit_work(order, nest_of, n_nests, u.shape[1])
    for r in range(u.shape[0]):
        nested_logit_row(u[r], coef[r], lam[r], v_else[r], v_hold[r], order, nest_of, work, out[r])


def effective_load(m: np.ndarray, zeta: float, floor: float, probs: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """Load splitting: ``m_eff = m max(1 - zeta sum_p pi_p rho_eff_p, floor)``.

    ``probs`` and ``risk`` run over the alternatives that carry risk (ports and elsewhere).
    The sum runs left to right (a running sum), as in ``kernel.decide``'s compiled loop.
    """
    return split_load(m, zeta, floor, np.cumsum(probs * risk, axis=-1)[..., -1])


@vectorize(cache=CACHE)
def own_exposure(loads, kappa, h):
    """Exposure a network's own loads add at a port: each load weighted ``1 - kappa h``."""
    return loads * (1.0 - kappa * h)


@vectorize(cache=CACHE)
def split_load(m, zeta, floor, exposure):
    """``m max(1 - zeta x, floor)`` for a risk exposure ``x = sum_p pi_p rho_eff_p`` (:func:`effective_load`)."""
    return m * max(1.0 - zeta * exposure, floor)


@vectorize(cache=CACHE)
def expected_loads(supply, rate, m, m_eff, p_hold):
    """Poisson mean of a week's loads: ``supply K / m_eff (1 - pi_hold)`` with ``K = m rate``."""
    return supply * rate * (m / m_eff) * (1.0 - p_hold)


@vectorize(cache=CACHE)
def update_evidence(evidence, memory, own, omega, news):
    """``S <- w S + own + omega news`` (the same form updates the exposure ``E``)."""
    return memory * evidence + own + omega * news


@vectorize(cache=CACHE)
def update_access(h, used, seized, growth, c, decay, burn):
    """Insiders: grow with use at ``g c (1 - h)``, decay by ``delta`` unused, burned by a seizure.

    ``used`` and ``seized`` are booleans per port (a load went there / one was seized there).
    """
    grown = h + growth * c * (1.0 - h) if used else h * (1.0 - decay)
    return grown * (1.0 - burn) if seized else grown
