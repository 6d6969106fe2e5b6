"""The model's equations, as pure functions on numpy arrays of any leading shape.

Both engines call these and nothing else for the model's arithmetic: the Mesa
agents pass one network's row, shape ``(P,)``; the vectorized engine passes
``(R, N, P)`` blocks. No function holds state or draws random numbers: every
random variable is computed from uniforms by inverse CDF, so a changed
probability never shifts later draws (DESIGN.md section 5).

Alternatives are indexed ``0..P-1`` for the ports, ``P`` for *elsewhere* and
``P+1`` for *hold*.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtri

__all__ = [
    "allocation_weights",
    "anticipate_displacement",
    "choice_probabilities",
    "choose_alternative",
    "detection_probability",
    "effective_load",
    "effective_risk",
    "expected_loads",
    "geometric_from_uniform",
    "inspection_rates",
    "lognormal_from_uniform",
    "perceived_risk",
    "poisson_from_uniform",
    "poisson_tail_bound",
    "port_utility",
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


def poisson_from_uniform(u: np.ndarray, lam: np.ndarray, l_max: int) -> np.ndarray:
    """Inverse CDF of Poisson(``lam``) at ``u``, truncated at ``l_max`` (tail < 1e-12 by design).

    Counts ``k`` while ``u >= CDF(k - 1)``, with the CDF built term by term
    (``p_k = p_{k-1} lam / k``). Once few entries are still counting, the loop goes
    on over their index list only: the same arithmetic on the same numbers.
    """
    lam = np.asarray(lam, dtype=float)
    u, lam = np.broadcast_arrays(np.asarray(u, dtype=float), lam)
    p = np.exp(-lam)
    cdf = p.copy()
    count = np.zeros(u.shape, dtype=np.int64)
    idx = None  # None: every entry; else the flat indices still counting
    for k in range(1, l_max + 1):
        below = u >= cdf
        if not below.any():  # the CDF only grows: no later term can count
            break
        if idx is None:
            count += below
            if below.size > 64 and np.count_nonzero(below) * 8 < below.size:  # few left: go on with an index list
                idx = np.flatnonzero(below)
                u, lam, p, cdf = u.reshape(-1)[idx], lam.reshape(-1)[idx], p.reshape(-1)[idx], cdf.reshape(-1)[idx]
                below = np.ones(idx.size, dtype=bool)
        else:
            idx, u, lam, p, cdf = idx[below], u[below], lam[below], p[below], cdf[below]
            count.reshape(-1)[idx] += 1
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


def detection_probability(
    i_q: np.ndarray, kappa: float, h: np.ndarray, t: np.ndarray, gamma_intel: np.ndarray
) -> np.ndarray:
    """``d = 1 - (1 - min(1, i q) (1 - kappa h)) (1 - t) (1 - gamma I)`` (DESIGN.md step 5).

    ``i_q`` is ``min(1, i_p q_p)``; ``gamma_intel`` the intelligence term ``gamma I``
    (zero until the intelligence submodel is in the scenario).
    """
    return 1.0 - (1.0 - i_q * (1.0 - kappa * h)) * (1.0 - t) * (1.0 - gamma_intel)


# --- traffickers --------------------------------------------------------------------------------


def perceived_risk(a0: np.ndarray, b0: float, seizures: np.ndarray, exposure: np.ndarray) -> np.ndarray:
    """Gamma-Poisson posterior mean of a port's base risk: ``(a0 + S) / (b0 + E)``, at most 1."""
    return np.minimum((a0 + seizures) / (b0 + exposure), 1.0)


def effective_risk(rho: np.ndarray, kappa: float, h: np.ndarray) -> np.ndarray:
    """Risk the network faces with its insiders: ``rho (1 - kappa h)``."""
    return rho * (1.0 - kappa * h)


def port_utility(
    margin: float,
    lam: np.ndarray,
    rho_eff: np.ndarray,
    cost: np.ndarray,
    setup: float,
    h: np.ndarray,
    phi: float,
    log_at_risk: np.ndarray,
) -> np.ndarray:
    """``U = margin (1 - lam rho_eff) - a - setup (1 - h) + phi ln(at_risk)`` in k EUR/kg."""
    return margin * (1.0 - lam * rho_eff) - cost - setup * (1.0 - h) + phi * log_at_risk


def choice_probabilities(
    u_ports: np.ndarray,
    u_elsewhere: np.ndarray,
    u_hold: float | np.ndarray,
    beta: float,
    nest_lambda: float,
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
    replication). Every row's result is bit-identical to a call on that row alone
    with that row's values as floats.

    Two evaluations give the same floats, bit for bit: below ``_SLAB_MIN_ROWS``
    rows (the Mesa engine's single rows) the ports are gathered along the last
    axis; from there on (the vectorized engine's blocks) each alternative is one
    contiguous slab of rows, with the same operations in the same order
    (``_choice_probabilities_slabs``).
    """
    lead = u_ports.shape[:-1]
    if lead and math.prod(lead) >= _SLAB_MIN_ROWS and u_ports.dtype == np.float64:
        layout = _nest_layout(nest_order, nest_starts, nest_of, u_ports.shape[-1])
        if layout is not None:
            return _choice_probabilities_slabs(u_ports, u_elsewhere, u_hold, beta, nest_lambda, layout)
    coef, lam = beta / nest_lambda, nest_lambda
    if isinstance(coef, np.ndarray) and coef.ndim:  # one value per row: broadcast over the alternatives
        coef = coef[..., None]
    if isinstance(lam, np.ndarray) and lam.ndim:
        lam = lam[..., None]
    scaled = coef * u_ports[..., nest_order]
    peak = np.maximum.reduceat(scaled, nest_starts, axis=-1)
    e = np.exp(scaled - peak[..., nest_of])
    total = np.add.reduceat(e, nest_starts, axis=-1)
    n_nests = len(nest_starts)
    top = np.empty((*lead, n_nests + 2))
    top[..., :n_nests] = lam * (peak + np.log(total))
    top[..., n_nests] = beta * u_elsewhere
    top[..., n_nests + 1] = beta * u_hold
    e_top = np.exp(top - top.max(axis=-1, keepdims=True))
    p_top = e_top / e_top.sum(axis=-1, keepdims=True)
    out = np.zeros((*lead, u_ports.shape[-1] + 2))
    out[..., nest_order] = p_top[..., nest_of] * (e / total[..., nest_of])
    out[..., -2:] = p_top[..., n_nests:]
    return out


# The slab evaluation of ``choice_probabilities``. It reproduces every float of the
# gather above: the same elementwise operations on the same operands, and sums in
# numpy's order (``_pairwise_sum_rows``): ``np.add.reduceat`` copies a nest's first
# member and adds numpy's pairwise sum of the others to it, ``.sum(axis=-1)`` is the
# pairwise sum of all (sequential from the left below 8 terms, 8 accumulators from 8
# on; numpy/_core/src/umath/loops_utils.h.src). Maxima do not depend on the order
# (a max of -0 or +0 changes no result). A one-port nest needs no exp or log:
# its shifted utility ``d = s - s`` is +0 (nan if ``s`` is not finite) and
# ``exp(+0) = 1``, ``log(1) = +0`` exactly (IEEE 754, C Annex F), so ``exp(d) = d + 1``
# and ``log(exp(d)) = d``; ``_EXACT_AT_ZERO`` checks that this numpy agrees.
_SLAB_MIN_ROWS = 512  # fewer rows: gather along the last axis (cheaper per call)
_SLAB_BLOCK = 8192  # rows per block: the block's slabs stay in cache
_EXACT_AT_ZERO = bool(np.all(np.exp(np.zeros(17)) == 1.0) and np.all(np.log(np.ones(17)) == 0.0))


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    """Maximal runs ``[a, b)`` of consecutive true flags."""
    runs: list[tuple[int, int]] = []
    for i, flag in enumerate(flags):
        if flag and runs and runs[-1][1] == i:
            runs[-1] = (runs[-1][0], i + 1)
        elif flag:
            runs.append((i, i + 1))
    return runs


def _nest_layout(nest_order: np.ndarray, nest_starts: np.ndarray, nest_of: np.ndarray, n_ports: int) -> tuple | None:
    """The nests as ranges of rows for the slab evaluation; None unless laid out as ``build_params`` does.

    That is: unique ports in ``[0, n_ports)``, nests that start at 0 and are not
    empty, ``nest_of`` consistent with ``nest_starts``.
    """
    order, starts, of = np.asarray(nest_order), np.asarray(nest_starts), np.asarray(nest_of)
    if order.ndim != 1 or starts.ndim != 1 or of.shape != order.shape or starts.size == 0:
        return None
    if not all(np.issubdtype(a.dtype, np.integer) for a in (order, starts, of)):
        return None
    ports = order.tolist()
    bounds = [*starts.tolist(), len(ports)]
    sizes = np.diff(bounds)
    if bounds[0] != 0 or np.any(sizes <= 0) or not np.array_equal(of, np.repeat(np.arange(starts.size), sizes)):
        return None
    if len(set(ports)) != len(ports) or min(ports) < 0 or max(ports) >= n_ports:
        return None
    single = [_EXACT_AT_ZERO and n == 1 for n in sizes.tolist()]
    multi = [(g, bounds[g], bounds[g + 1]) for g, one in enumerate(single) if not one]
    single_runs = [(g0, g1, bounds[g0], bounds[g1]) for g0, g1 in _runs(single)]
    multi_runs = [(g0, g1, bounds[g0], bounds[g1]) for g0, g1 in _runs([not one for one in single])]
    disabled = sorted(set(range(n_ports)) - set(ports))
    return ports, multi, single_runs, multi_runs, disabled, starts.size


def _per_row(x: float | np.ndarray, lead: tuple[int, ...]) -> float | np.ndarray:
    """A scalar as it is; an array broadcast to the leading shape, one value per row."""
    if isinstance(x, np.ndarray) and x.ndim:
        return np.broadcast_to(x, lead).reshape(-1)
    return x


def _choice_probabilities_slabs(
    u_ports: np.ndarray,
    u_elsewhere: np.ndarray,
    u_hold: float | np.ndarray,
    beta: float | np.ndarray,
    nest_lambda: float | np.ndarray,
    layout: tuple,
) -> np.ndarray:
    """``choice_probabilities`` by blocks of ``_SLAB_BLOCK`` rows, each alternative a slab of the block."""
    lead, n_ports = u_ports.shape[:-1], u_ports.shape[-1]
    n_rows = math.prod(lead)
    u = u_ports.reshape(n_rows, n_ports)
    per_row = [_per_row(x, lead) for x in (beta / nest_lambda, nest_lambda, beta * u_elsewhere, beta * u_hold)]
    out = np.empty((*lead, n_ports + 2))
    flat = out.reshape(n_rows, n_ports + 2)
    block = min(_SLAB_BLOCK, n_rows)
    work = np.empty((n_ports + 2 + len(layout[0]) + 3 * layout[-1] + 2, block))
    for start in range(0, n_rows, block):
        rows = slice(start, min(start + block, n_rows))
        args = [x[rows] if isinstance(x, np.ndarray) and x.ndim else x for x in per_row]
        _nested_logit_block(u[rows], *args, layout, work[:, : rows.stop - start], flat[rows])
    return out


def _nested_logit_block(
    u: np.ndarray,
    coef: float | np.ndarray,
    lam: float | np.ndarray,
    v_else: float | np.ndarray,
    v_hold: float | np.ndarray,
    layout: tuple,
    work: np.ndarray,
    out: np.ndarray,
) -> None:
    """Rows ``u`` (B, P) to probabilities ``out`` (B, P + 2); ``work`` holds the slabs, alternatives first."""
    ports, multi, single_runs, multi_runs, disabled, n_nests = layout
    n_ports, k = u.shape[1], len(ports)
    alt = work[: n_ports + 2]  # utilities by port, at the end the probabilities by alternative
    s = work[n_ports + 2 : n_ports + 2 + k]  # by nest_order: scaled utilities, exp, conditional, probabilities
    peak, total, top = np.split(work[n_ports + 2 + k :], [n_nests, 2 * n_nests])
    np.copyto(alt[:n_ports], u.T)
    for i, j in enumerate(ports):
        np.multiply(coef, alt[j], out=s[i])
    for g, a, b in multi:
        np.maximum.reduce(s[a:b], axis=0, out=peak[g])
        np.subtract(s[a:b], peak[g], out=s[a:b])
    for g0, g1, a, b in single_runs:
        d = total[g0:g1]  # scratch: the total of a one-port nest is its row of s
        np.subtract(s[a:b], s[a:b], out=d)
        np.add(s[a:b], d, out=top[g0:g1])  # peak + log(total)
        np.add(d, 1.0, out=s[a:b])  # exp(scaled - peak)
    for _, _, a, b in multi_runs:
        np.exp(s[a:b], out=s[a:b])
    for g, a, b in multi:
        if b - a == 1:
            np.copyto(total[g], s[a])
        else:
            np.add(s[a], _pairwise_sum_rows(s[a + 1 : b], total[g]), out=total[g])
    for g0, g1, _, _ in multi_runs:
        np.log(total[g0:g1], out=top[g0:g1])
        np.add(peak[g0:g1], top[g0:g1], out=top[g0:g1])
    np.multiply(lam, top[:n_nests], out=top[:n_nests])
    top[n_nests] = v_else
    top[n_nests + 1] = v_hold
    np.subtract(top, top.max(axis=0), out=top)
    np.exp(top, out=top)
    np.divide(top, _pairwise_sum_rows(top, peak[0]), out=top)
    for g, a, b in multi:
        np.divide(s[a:b], total[g], out=s[a:b])
        np.multiply(top[g], s[a:b], out=s[a:b])
    for g0, g1, a, b in single_runs:
        np.divide(s[a:b], s[a:b], out=s[a:b])
        np.multiply(top[g0:g1], s[a:b], out=s[a:b])
    alt[ports] = s
    if disabled:
        alt[disabled] = 0.0
    alt[n_ports:] = top[n_nests:]
    np.copyto(out, alt.T)


def _pairwise_sum_rows(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sum of the rows of ``x`` (m >= 1 of them) into ``out``, added in the order of numpy's pairwise sum."""
    m = x.shape[0]
    if m < 8:
        if m == 1:
            np.copyto(out, x[0])
        else:
            np.add(x[0], x[1], out=out)
        for i in range(2, m):
            np.add(out, x[i], out=out)
        return out
    if m > 128:
        half = m // 2 - (m // 2) % 8
        right = _pairwise_sum_rows(x[half:], np.empty_like(out))
        return np.add(_pairwise_sum_rows(x[:half], out), right, out=out)
    stop = m - m % 8
    acc = x[:8] if stop == 8 else x[:8].copy()
    for i in range(8, stop, 8):
        np.add(acc, x[i : i + 8], out=acc)
    pairs = np.add(acc[0::2], acc[1::2])
    np.add(pairs[0::2], pairs[1::2], out=pairs[:2])
    np.add(pairs[0], pairs[1], out=out)
    for i in range(stop, m):
        np.add(out, x[i], out=out)
    return out


def effective_load(m: np.ndarray, zeta: float, floor: float, probs: np.ndarray, risk: np.ndarray) -> np.ndarray:
    """Load splitting: ``m_eff = m max(1 - zeta sum_p pi_p rho_eff_p, floor)``.

    ``probs`` and ``risk`` run over the alternatives that carry risk (ports and elsewhere).
    """
    exposure = np.sum(probs * risk, axis=-1)
    return m * np.maximum(1.0 - zeta * exposure, floor)


def expected_loads(supply: float, rate: np.ndarray, m: np.ndarray, m_eff: np.ndarray, p_hold: np.ndarray) -> np.ndarray:
    """Poisson mean of a week's loads: ``supply K / m_eff (1 - pi_hold)`` with ``K = m rate``."""
    return supply * rate * (m / m_eff) * (1.0 - p_hold)


def update_evidence(evidence: np.ndarray, memory: float, own: np.ndarray, omega: float, news: np.ndarray) -> np.ndarray:
    """``S <- w S + own + omega news`` (the same form updates the exposure ``E``)."""
    return memory * evidence + own + omega * news


def update_access(
    h: np.ndarray,
    used: np.ndarray,
    seized: np.ndarray,
    growth: float,
    c: np.ndarray,
    decay: float,
    burn: float,
) -> np.ndarray:
    """Insiders: grow with use at ``g c (1 - h)``, decay by ``delta`` unused, burned by a seizure.

    ``used`` and ``seized`` are booleans per port (a load went there / one was seized there).
    """
    grown = np.where(used, h + growth * c * (1.0 - h), h * (1.0 - decay))
    return np.where(seized, grown * (1.0 - burn), grown)
