"""Unit tests of the model's pure equations (``displacement_sim.mechanics``, DESIGN.md sections 3 and 5).

Each test states one claim of an equation's docstring or of DESIGN.md and checks
it against an independent computation (scipy, a hand-written formula, or a
characterisation such as the water-filling level) rather than against the code
itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from displacement_sim import mechanics as mx

# --- helpers ---------------------------------------------------------------------------------------


def nests(clusters: list[str], enabled: list[bool]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(nest_order, nest_starts, nest_of)`` as ``params.build_params`` builds them from cluster labels."""
    groups: dict[str, list[int]] = {}
    for i, (c, e) in enumerate(zip(clusters, enabled, strict=True)):
        if e:
            groups.setdefault(c, []).append(i)
    order = np.array([i for v in groups.values() for i in v], dtype=np.int64)
    starts = np.cumsum([0] + [len(v) for v in groups.values()])[:-1].astype(np.int64)
    nest_of = np.array([k for k, v in enumerate(groups.values()) for _ in v], dtype=np.int64)
    return order, starts, nest_of


def nested_logit_by_hand(
    u: np.ndarray, u_else: float, u_hold: float, beta: float, lam: float, clusters: list[str], enabled: list[bool]
) -> np.ndarray:
    """Textbook nested logit (Train 2009, eq. 4.2) in plain Python, no max-shifting."""
    names = sorted({c for c, e in zip(clusters, enabled, strict=True) if e})
    sums = {k: sum(np.exp(beta * u[i] / lam) for i in range(len(u)) if enabled[i] and clusters[i] == k) for k in names}
    denom = sum(s**lam for s in sums.values()) + np.exp(beta * u_else) + np.exp(beta * u_hold)
    out = np.zeros(len(u) + 2)
    for i in range(len(u)):
        if enabled[i]:
            s = sums[clusters[i]]
            out[i] = np.exp(beta * u[i] / lam) * s ** (lam - 1.0) / denom
    out[-2] = np.exp(beta * u_else) / denom
    out[-1] = np.exp(beta * u_hold) / denom
    return out


CLUSTERS = ["scheldt", "scheldt", "coast", "scheldt", "rhine", "rhine", "elbe"]


# --- Poisson by inverse CDF --------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 1e-9, 0.05, 0.7, 1.0, 3.3, 8.0, 25.0, 60.0, 150.0])
def test_poisson_from_uniform_matches_scipy_ppf(lam: float) -> None:
    """Inverse CDF of Poisson(lam) at u equals scipy's ppf (away from the 1e-12 truncated tail)."""
    rng = np.random.default_rng(7)
    u = np.concatenate([rng.random(4000), [1e-12, 0.5, 0.999999]])
    l_max = mx.poisson_tail_bound(lam)
    got = mx.poisson_from_uniform(u, np.full(u.shape, lam), l_max)
    want = stats.poisson.ppf(u, lam)
    np.testing.assert_array_equal(got, want)
    assert got.dtype.kind == "i"


def test_poisson_from_uniform_broadcasts_over_rates() -> None:
    """Different rates per cell: each cell is the ppf of its own rate."""
    rng = np.random.default_rng(3)
    lam = rng.uniform(0.0, 12.0, size=(5, 7))
    u = rng.random((5, 7))
    got = mx.poisson_from_uniform(u, lam, mx.poisson_tail_bound(12.0))
    np.testing.assert_array_equal(got, stats.poisson.ppf(u, lam))


def test_poisson_from_uniform_truncates_at_l_max() -> None:
    """Counts never exceed the number of load slots drawn."""
    u = np.full(10, 1.0 - 1e-15)
    assert np.all(mx.poisson_from_uniform(u, np.full(10, 30.0), 5) == 5)


@pytest.mark.parametrize("lam", [1e-6, 0.1, 1.0, 4.0, 8.0, 16.0, 48.0, 120.0])
@pytest.mark.parametrize("tail", [1e-12, 1e-6])
def test_poisson_tail_bound_is_the_smallest_bound(lam: float, tail: float) -> None:
    """``P(N > L) < tail`` for the returned L, and L - 1 would not do (scipy's survival function)."""
    bound = mx.poisson_tail_bound(lam, tail)
    assert stats.poisson.sf(bound, lam) < tail
    if bound > 1:
        assert stats.poisson.sf(bound - 1, lam) >= tail * 0.999


def test_poisson_tail_bound_zero_rate() -> None:
    assert mx.poisson_tail_bound(0.0) == 1
    assert mx.poisson_tail_bound(-1.0) == 1


# --- choosing an alternative ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    probs=arrays(np.float64, st.integers(2, 9), elements=st.sampled_from([0.0, 0.0, 0.01, 0.1, 0.3, 1.0, 2.5])),
    seed=st.integers(0, 2**32 - 1),
)
def test_choose_alternative_never_picks_zero_probability(probs: np.ndarray, seed: int) -> None:
    """Zero-probability alternatives (first, inner) are never chosen, also at u exactly on a bound."""
    if probs.sum() == 0:
        probs[-1] = 1.0
    # trailing zero-probability alternatives: see the normalised-bounds test below
    positive = np.flatnonzero(probs > 0)
    probs = probs[: positive[-1] + 1]
    cum = np.cumsum(probs) / probs.sum()
    rng = np.random.default_rng(seed)
    u = np.concatenate([rng.random(500), cum[cum < 1.0], [0.0, np.nextafter(1.0, 0.0)]])
    idx = mx.choose_alternative(u, np.broadcast_to(cum, (u.size, cum.size)))
    assert np.all(probs[idx] > 0)
    np.testing.assert_array_equal(idx, np.minimum(np.searchsorted(cum, u, side="right"), cum.size - 1))


def test_choose_alternative_trailing_zero_probability_with_bounds_normalised_to_one() -> None:
    """A zero-probability *last* alternative is never drawn once the bounds end exactly at 1.

    ``kernel.decide`` divides the running total by its own last value, so the last two
    bounds are both exactly 1 and no uniform in [0, 1) reaches them.
    """
    probs = np.array([1.0] * 7 + [0.0])
    raw = np.cumsum(probs / probs.sum())
    assert raw[-1] < 1.0  # 7 x (1/7) rounds to 1 - 2.2e-16: the raw bounds leave a gap
    cum = raw / raw[-1]
    idx = mx.choose_alternative(np.array([np.nextafter(1.0, 0.0), 0.0, 0.5]), np.broadcast_to(cum, (3, cum.size)))
    assert np.all(probs[idx] > 0)


def test_choose_alternative_matches_searchsorted_on_random_rows() -> None:
    """Inverse CDF = number of bounds <= u = ``np.searchsorted(cum[:-1], u, 'right')``, row by row."""
    rng = np.random.default_rng(11)
    p = rng.random((300, 6)) * (rng.random((300, 6)) < 0.7)
    p[:, 2] += 0.01
    cum = np.cumsum(p, axis=1) / p.sum(axis=1, keepdims=True)
    u = rng.random(300)
    got = mx.choose_alternative(u, cum)
    want = np.array([np.searchsorted(cum[r, :-1], u[r], side="right") for r in range(300)])
    np.testing.assert_array_equal(got, want)
    # and the empirical frequencies follow the probabilities
    one = p[0] / p[0].sum()
    draws = mx.choose_alternative(rng.random(200_000), np.broadcast_to(np.cumsum(one), (200_000, 6)))
    freq = np.bincount(draws, minlength=6) / draws.size
    np.testing.assert_allclose(freq, one, atol=0.005)


def test_categorical_from_uniform_weights() -> None:
    """Unnormalised weights: index k with probability w_k / sum(w)."""
    w = np.array([0.5, 0.0, 0.3, 0.2])
    u = np.linspace(0.0, 1.0, 100_001)[:-1]
    k = mx.categorical_from_uniform(u, np.broadcast_to(w, (u.size, 4)))
    np.testing.assert_allclose(np.bincount(k, minlength=4) / u.size, w / w.sum(), atol=1e-4)


# --- log-normal by inverse CDF ----------------------------------------------------------------------


def test_lognormal_median_quantiles_and_clipping() -> None:
    """Median at u = 0.5; quantiles of scipy's lognorm; clipped to [low, high]."""
    median, sigma, low, high = 60.0, 2.2, 5.0, 5000.0
    assert mx.lognormal_from_uniform(np.array(0.5), median, sigma, low, high) == pytest.approx(median, rel=1e-12)
    u = np.linspace(0.001, 0.999, 999)
    got = mx.lognormal_from_uniform(u, median, sigma, low, high)
    want = np.clip(stats.lognorm.ppf(u, s=sigma, scale=median), low, high)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert got.min() == low and got.max() == high
    assert np.all(np.diff(got) >= 0)
    extreme = mx.lognormal_from_uniform(np.array([0.0, 1e-300, 1.0]), median, sigma, low, high)
    np.testing.assert_array_equal(extreme, [low, low, high])


def test_lognormal_sigma_zero_is_constant() -> None:
    got = mx.lognormal_from_uniform(np.random.default_rng(0).random(50), 3.0, 0.0, 0.5, 10.0)
    np.testing.assert_array_equal(got, 3.0)


# --- water-filling ---------------------------------------------------------------------------------------


def check_water_fill(w: np.ndarray, caps: np.ndarray, budget: float, x: np.ndarray) -> None:
    """Water-filling characterisation: ``x_i = min(cap_i, t w_i)`` for one level ``t`` over cells with weight."""
    scale = max(budget, caps.max(initial=0.0), 1e-12)
    tol = 1e-9 * scale
    assert np.all(x >= 0)
    assert np.all(x <= caps + tol), "a cell exceeds its cap"
    assert np.all(x[(w <= 0) | (caps <= 0)] == 0), "a cell without weight or room got budget"
    assert x.sum() <= budget + tol, "more than the budget was spent"
    live = (w > 0) & (caps > 0)
    if not live.any():
        assert x.sum() == 0
        return
    room = live & (x < caps - tol)
    if x.sum() < budget - tol:  # unspent budget only when every cell with weight is full
        assert not room.any(), f"budget left ({budget - x.sum()}) while cells have room"
    else:
        assert x.sum() == pytest.approx(budget, rel=1e-9, abs=1e-12)
    if room.any():
        level = x[room] / w[room]
        np.testing.assert_allclose(level, level[0], rtol=1e-7)
        full = live & ~room
        # a saturated cell saturated below the common level: cap_i <= t w_i
        assert np.all(caps[full] <= level[0] * w[full] * (1 + 1e-7) + tol)


def test_water_fill_proportional_when_no_cap_binds() -> None:
    w = np.array([1.0, 2.0, 3.0, 4.0])
    x = mx.water_fill(w, np.full(4, 1e9), np.array(100.0))
    np.testing.assert_allclose(x, 100.0 * w / w.sum(), rtol=1e-12)


def test_water_fill_spills_from_saturated_cells() -> None:
    """A cap that binds sends its excess to the others, in proportion to their weights."""
    w = np.array([8.0, 1.0, 1.0])
    x = mx.water_fill(w, np.array([10.0, 100.0, 100.0]), np.array(50.0))
    np.testing.assert_allclose(x, [10.0, 20.0, 20.0], rtol=1e-12)
    # a chain: the spill saturates a second cell
    w = np.array([8.0, 4.0, 1.0])
    x = mx.water_fill(w, np.array([10.0, 12.0, 100.0]), np.array(50.0))
    np.testing.assert_allclose(x, [10.0, 12.0, 28.0], rtol=1e-12)


def test_water_fill_unspent_only_when_all_full() -> None:
    w = np.array([1.0, 1.0, 0.0])
    x = mx.water_fill(w, np.array([3.0, 4.0, 50.0]), np.array(100.0))
    np.testing.assert_allclose(x, [3.0, 4.0, 0.0])
    # zero budget, zero weights, zero caps
    np.testing.assert_array_equal(mx.water_fill(w, np.array([3.0, 4.0, 5.0]), np.array(0.0)), 0.0)
    np.testing.assert_array_equal(mx.water_fill(np.zeros(3), np.ones(3), np.array(5.0)), 0.0)
    np.testing.assert_array_equal(mx.water_fill(np.ones(3), np.zeros(3), np.array(5.0)), 0.0)


def test_water_fill_empty_row() -> None:
    """An agency with no eligible port (all disabled, or no kinds) spends nothing and does not fail."""
    x = mx.water_fill(np.zeros((4, 0)), np.zeros(0), np.full(4, 100.0))
    assert x.shape == (4, 0)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 8),
    data=st.data(),
)
def test_water_fill_properties(n: int, data: st.DataObject) -> None:
    """Random weights, caps and budgets satisfy the water-filling characterisation."""
    w = data.draw(arrays(np.float64, n, elements=st.one_of(st.just(0.0), st.floats(1e-6, 1e4))))
    caps = data.draw(arrays(np.float64, n, elements=st.one_of(st.just(0.0), st.floats(1e-6, 1e4))))
    budget = data.draw(st.one_of(st.just(0.0), st.floats(1e-6, 5e4)))
    x = mx.water_fill(w, caps, np.array(budget))
    check_water_fill(w, caps, budget, x)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 12), n=st.integers(1, 7))
def test_water_fill_rows_independent(seed: int, rows: int, n: int) -> None:
    """Batched rows equal row-by-row calls (and each row is a valid water-filling)."""
    rng = np.random.default_rng(seed)
    w = rng.exponential(size=(rows, n)) * (rng.random((rows, n)) < 0.8)
    caps = rng.exponential(30.0, size=(rows, n)) * (rng.random((rows, n)) < 0.9)
    budget = rng.exponential(60.0, size=rows) * (rng.random(rows) < 0.9)
    batched = mx.water_fill(w, caps, budget)
    for r in range(rows):
        one = mx.water_fill(w[r], caps[r], budget[r])
        np.testing.assert_allclose(batched[r], one, rtol=1e-12, atol=1e-12)
        check_water_fill(w[r], caps[r], float(budget[r]), batched[r])


def test_water_fill_shared_caps_broadcast() -> None:
    """Caps of shape (P,) broadcast over leading axes (how ``kernel.allocate`` calls it)."""
    rng = np.random.default_rng(5)
    w = rng.random((3, 4, 5))
    caps = np.array([1.0, 5.0, 0.5, 20.0, 2.0])
    budget = np.full((3, 4), 12.0)
    x = mx.water_fill(w, caps, budget)
    for idx in np.ndindex(3, 4):
        check_water_fill(w[idx], caps, 12.0, x[idx])


# --- nested logit ---------------------------------------------------------------------------------------


@settings(max_examples=120, deadline=None)
@given(
    u=arrays(np.float64, len(CLUSTERS), elements=st.floats(-60, 60)),
    u_else=st.floats(-60, 60),
    u_hold=st.floats(-60, 60),
    beta=st.floats(0.0, 1.5),
    lam=st.floats(0.05, 1.0),
    enabled=st.lists(st.booleans(), min_size=len(CLUSTERS), max_size=len(CLUSTERS)).filter(any),
)
def test_choice_probabilities_match_textbook_nested_logit(
    u: np.ndarray, u_else: float, u_hold: float, beta: float, lam: float, enabled: list[bool]
) -> None:
    """Rows sum to 1, lie in [0, 1], equal Train's nested logit; disabled ports get exactly 0."""
    order, starts, nest_of = nests(CLUSTERS, enabled)
    p = mx.choice_probabilities(u, np.array(u_else), u_hold, beta, lam, order, starts, nest_of)
    assert p.shape == (len(CLUSTERS) + 2,)
    assert np.all((p >= 0) & (p <= 1))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(p[: len(CLUSTERS)][~np.array(enabled)] == 0.0)
    if beta * max(abs(u).max(), abs(u_else), abs(u_hold)) / lam < 600:  # the unshifted formula stays finite
        want = nested_logit_by_hand(u, u_else, u_hold, beta, lam, CLUSTERS, enabled)
        np.testing.assert_allclose(p, want, rtol=1e-9, atol=1e-15)


def test_choice_probabilities_lambda_one_is_multinomial_logit() -> None:
    """``nest_lambda = 1``: the plain multinomial logit over ports, elsewhere and hold, by hand."""
    rng = np.random.default_rng(2)
    u = rng.normal(20.0, 5.0, size=(10, len(CLUSTERS)))
    u_else = rng.normal(20.0, 5.0, size=10)
    beta, hold = 0.4, 22.0
    order, starts, nest_of = nests(CLUSTERS, [True] * len(CLUSTERS))
    p = mx.choice_probabilities(u, u_else, hold, beta, 1.0, order, starts, nest_of)
    allu = np.concatenate([u, u_else[:, None], np.full((10, 1), hold)], axis=1)
    e = np.exp(beta * allu)
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-12)


def test_choice_probabilities_iia_within_nest_not_across() -> None:
    """Within a nest the odds of two ports do not depend on a third; across nests they do (lambda < 1)."""
    beta, lam = 0.5, 0.4
    order, starts, nest_of = nests(CLUSTERS, [True] * len(CLUSTERS))
    u = np.array([10.0, 9.0, 8.0, 7.0, 10.0, 9.5, 8.0])
    u2 = u.copy()
    u2[3] += 6.0  # a third scheldt port gets much better
    p1 = mx.choice_probabilities(u, np.array(5.0), 5.0, beta, lam, order, starts, nest_of)
    p2 = mx.choice_probabilities(u2, np.array(5.0), 5.0, beta, lam, order, starts, nest_of)
    # within the scheldt nest (ports 0 and 1): odds exp(beta (U0 - U1) / lambda), unchanged
    assert p1[0] / p1[1] == pytest.approx(np.exp(beta * (u[0] - u[1]) / lam), rel=1e-12)
    assert p2[0] / p2[1] == pytest.approx(p1[0] / p1[1], rel=1e-12)
    # across nests (scheldt port 0 against rhine port 4): the improved scheldt port draws more from its own nest
    ratio1, ratio2 = p1[0] / p1[4], p2[0] / p2[4]
    assert ratio2 < ratio1
    # as nested logit predicts: odds ratio = (S_scheldt' / S_scheldt) ** (lambda - 1)
    s1 = np.exp(beta * u[[0, 1, 3]] / lam).sum()
    s2 = np.exp(beta * u2[[0, 1, 3]] / lam).sum()
    assert ratio2 / ratio1 == pytest.approx((s2 / s1) ** (lam - 1.0), rel=1e-10)
    # and with lambda = 1 the cross-nest odds are unchanged too (IIA everywhere)
    q1 = mx.choice_probabilities(u, np.array(5.0), 5.0, beta, 1.0, order, starts, nest_of)
    q2 = mx.choice_probabilities(u2, np.array(5.0), 5.0, beta, 1.0, order, starts, nest_of)
    assert q2[0] / q2[4] == pytest.approx(q1[0] / q1[4], rel=1e-12)


def test_choice_probabilities_stable_with_large_utilities() -> None:
    """Utilities of order 1e3 (times beta = 1, lambda = 0.3) give finite probabilities, invariant to a shift."""
    order, starts, nest_of = nests(CLUSTERS, [True, False, True, True, True, True, True])
    u = np.array([1000.0, 990.0, 1003.0, 998.0, 1001.0, -1000.0, 1002.5])
    p = mx.choice_probabilities(u, np.array(999.0), 1001.0, 1.0, 0.3, order, starts, nest_of)
    assert np.all(np.isfinite(p))
    assert p.sum() == pytest.approx(1.0, abs=1e-12)
    shifted = mx.choice_probabilities(u - 1000.0, np.array(-1.0), 1.0, 1.0, 0.3, order, starts, nest_of)
    np.testing.assert_allclose(p, shifted, rtol=1e-9, atol=1e-300)
    want = nested_logit_by_hand(u - 1000.0, -1.0, 1.0, 1.0, 0.3, CLUSTERS, [True, False] + [True] * 5)
    np.testing.assert_allclose(p, want, rtol=1e-9, atol=1e-300)
    # extreme: 1e5 apart, still a valid distribution
    p = mx.choice_probabilities(u * 100, np.array(-1e5), 1e5, 1.0, 0.3, order, starts, nest_of)
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)


def test_choice_probabilities_batched_equals_rows() -> None:
    rng = np.random.default_rng(9)
    order, starts, nest_of = nests(CLUSTERS, [True, True, False, True, True, True, True])
    u = rng.normal(10.0, 8.0, size=(4, 3, len(CLUSTERS)))
    ue = rng.normal(10.0, 8.0, size=(4, 3))
    p = mx.choice_probabilities(u, ue, 12.0, 0.7, 0.5, order, starts, nest_of)
    for idx in np.ndindex(4, 3):
        one = mx.choice_probabilities(u[idx], ue[idx], 12.0, 0.7, 0.5, order, starts, nest_of)
        np.testing.assert_allclose(p[idx], one, rtol=1e-13)


# --- detection, risk, access, allocation -----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    i_q=st.floats(0, 1),
    kappa=st.floats(0, 0.999),
    h=st.floats(0, 1),
    t=st.floats(0, 1),
    g=st.floats(0, 1),
    d_iq=st.floats(0, 1),
    d_g=st.floats(0, 1),
    d_h=st.floats(0, 1),
)
def test_detection_probability_bounds_and_monotonicity(
    i_q: float, kappa: float, h: float, t: float, g: float, d_iq: float, d_g: float, d_h: float
) -> None:
    """``d`` in [0, 1], non-decreasing in ``i q`` and intelligence, non-increasing in access."""

    def d(i_q_: float, h_: float, g_: float) -> float:
        return float(mx.detection_probability(np.array(i_q_), kappa, np.array(h_), np.array(t), np.array(g_)))

    base = d(i_q, h, g)
    assert 0.0 <= base <= 1.0
    eps = 1e-12
    assert d(min(1.0, i_q + d_iq), h, g) >= base - eps
    assert d(i_q, h, min(1.0, g + d_g)) >= base - eps
    assert d(i_q, min(1.0, h + d_h), g) <= base + eps


def test_detection_probability_formula_and_strict_monotonicity() -> None:
    """``d = 1 - (1 - iq (1 - kappa h)) (1 - t) (1 - gamma I)`` at known points; strict where it should be."""
    i_q = np.array([0.0, 0.1, 0.5, 1.0])
    d = mx.detection_probability(i_q, 0.5, np.zeros(4), np.zeros(4), np.zeros(4))
    np.testing.assert_allclose(d, i_q)
    assert np.all(np.diff(d) > 0)
    h = np.array([0.0, 0.5, 1.0])
    d_h = mx.detection_probability(np.full(3, 0.2), 0.5, h, np.zeros(3), np.zeros(3))
    np.testing.assert_allclose(d_h, 0.2 * (1 - 0.5 * h))
    assert np.all(np.diff(d_h) < 0)
    d_all = mx.detection_probability(np.array(0.2), 0.5, np.array(0.4), np.array(0.3), np.array(0.1))
    assert float(d_all) == pytest.approx(1 - (1 - 0.2 * 0.8) * 0.7 * 0.9)


def test_transit_detection() -> None:
    got = mx.transit_detection(np.array([0.3, 0.0, 1.0]), np.array([0.1, 0.5, 0.8]), np.array([2.0, 2.0, 2.0]))
    np.testing.assert_allclose(got, [0.06, 0.0, 1.0])


def test_perceived_risk_is_gamma_poisson_posterior_mean() -> None:
    """``(a0 + S) / (b0 + E)`` is the mean of the Gamma(a0 + S, rate b0 + E) posterior; capped at 1."""
    rng = np.random.default_rng(4)
    a0 = rng.uniform(0.01, 2.0, 50)
    b0 = 10.0
    s = rng.uniform(0, 5, 50)
    e = rng.uniform(0, 200, 50)
    got = mx.perceived_risk(a0, b0, s, e)
    want = stats.gamma(a=a0 + s, scale=1.0 / (b0 + e)).mean()
    np.testing.assert_allclose(got, np.minimum(want, 1.0), rtol=1e-12)
    assert np.all(got <= 1.0)
    capped = mx.perceived_risk(np.array([5.0]), 2.0, np.array([10.0]), np.array([1.0]))
    assert capped[0] == 1.0
    # more seizures, more risk; more exposure without seizures, less risk
    assert mx.perceived_risk(a0, b0, s + 1, e)[0] > got[0]
    assert mx.perceived_risk(a0, b0, s, e + 1)[0] < got[0]


@settings(max_examples=100, deadline=None)
@given(
    h=arrays(np.float64, 6, elements=st.floats(0, 1)),
    used=arrays(np.bool_, 6),
    seized=arrays(np.bool_, 6),
    growth=st.floats(0, 1),
    c=arrays(np.float64, 6, elements=st.floats(0, 1)),
    decay=st.floats(0, 1),
    burn=st.floats(0, 1),
)
def test_update_access_stays_in_unit_interval(
    h: np.ndarray, used: np.ndarray, seized: np.ndarray, growth: float, c: np.ndarray, decay: float, burn: float
) -> None:
    """Access stays in [0, 1]; grows only with use, never grows on a seizure without use."""
    seized = seized & used  # a seizure needs a load there
    new = mx.update_access(h, used, seized, growth, c, decay, burn)
    assert np.all((new >= 0) & (new <= 1))
    assert np.all(new[~used] <= h[~used])
    assert np.all(new[used & ~seized] >= h[used & ~seized])


def test_update_access_formula() -> None:
    h = np.array([0.2, 0.2, 0.2])
    new = mx.update_access(
        h, np.array([True, False, True]), np.array([False, False, True]), 0.1, np.full(3, 0.5), 0.02, 0.5
    )
    np.testing.assert_allclose(new, [0.2 + 0.05 * 0.8, 0.2 * 0.98, (0.2 + 0.05 * 0.8) * 0.5])


def test_update_evidence() -> None:
    got = mx.update_evidence(np.array([2.0, 0.0]), 0.9, np.array([1.0, 0.0]), 0.5, np.array([0.4, 2.0]))
    np.testing.assert_allclose(got, [1.8 + 1.0 + 0.2, 1.0])


def test_allocation_weights_reactive_chases_seizures() -> None:
    """Reactive: ``(S + s0) ** rho``, increasing in recent seizures; a quiet port keeps ``s0 ** rho``."""
    s = np.array([0.0, 1.0, 5.0, 20.0])
    w = mx.allocation_weights("reactive", s, np.full(4, 0.1), np.full(4, 0.25), np.ones(4), 1.0, 0.7, 0.01)
    np.testing.assert_allclose(w, (s + 1.0) ** 0.7)
    assert np.all(np.diff(w) > 0)
    # the port with the most seizures gets the most budget after water-filling
    x = mx.water_fill(w, np.full(4, 1e6), np.array(100.0))
    assert np.argmax(x) == 3


def test_allocation_weights_threat_keeps_quiet_ports() -> None:
    """Threat: ``(S + s0 prior) / max(detection, floor)``: positive for a port with no seizures."""
    s = np.array([0.0, 0.0, 10.0])
    det = np.array([0.0, 0.2, 0.1])
    prior = np.array([0.2, 0.3, 0.5])
    w = mx.allocation_weights("threat", s, det, prior, np.ones(3), 1.0, 1.0, 0.01)
    np.testing.assert_allclose(w, (s + prior) / np.maximum(det, 0.01))
    assert np.all(w > 0)
    # inverse-probability weighting: equal seizures at a lower detection rate mean more flow
    w2 = mx.allocation_weights(
        "threat", np.array([3.0, 3.0]), np.array([0.05, 0.2]), np.array([0.5, 0.5]), np.ones(2), 1.0, 1.0, 0.01
    )
    assert w2[0] > w2[1]


def test_allocation_weights_static_and_unknown() -> None:
    sw = np.array([1.0, 2.0, 3.0])
    w = mx.allocation_weights("static", np.zeros((4, 3)), np.zeros((4, 3)), np.ones(3), sw, 1.0, 1.0, 0.01)
    assert w.shape == (4, 3)
    np.testing.assert_array_equal(w, np.broadcast_to(sw, (4, 3)))
    with pytest.raises(ValueError, match="unknown allocation rule"):
        mx.allocation_weights("greedy", np.zeros(3), np.zeros(3), np.ones(3), sw, 1.0, 1.0, 0.01)


def test_anticipate_displacement_adds_to_buffer_ports() -> None:
    w = np.array([10.0, 0.0, 2.0])
    buffer = np.array([[0.0, 0.5, 0.5], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    got = mx.anticipate_displacement(w, buffer, 0.5)
    np.testing.assert_allclose(got, [10.0, 0.5 * (5.0 + 2.0), 2.0 + 0.5 * 5.0])


def test_inspection_rates_cap_and_floor() -> None:
    """``i = base + extra / at_risk`` but the extra never lifts it over i_max, and never lowers it below base."""
    base = np.array([0.1, 0.6, 0.1])
    got = mx.inspection_rates(base, np.array([10.0, 50.0, 1000.0]), np.array([100.0, 100.0, 100.0]), 0.5)
    np.testing.assert_allclose(got, [0.2, 0.6, 0.5])


def test_effective_load_and_expected_loads() -> None:
    """Load splitting ``m (1 - zeta sum pi rho)`` floored; Poisson mean ``supply K / m_eff (1 - pi_hold)``."""
    probs = np.array([0.5, 0.3, 0.2])
    risk = np.array([0.1, 0.2, 0.05])
    m_eff = mx.effective_load(np.array(100.0), 2.0, 0.5, probs, risk)
    assert float(m_eff) == pytest.approx(100.0 * (1 - 2.0 * (0.05 + 0.06 + 0.01)))
    assert float(mx.effective_load(np.array(100.0), 4.0, 0.5, probs, np.ones(3))) == 50.0
    mean = mx.expected_loads(2.0, np.array(1.5), np.array(100.0), m_eff, np.array(0.1))
    # kg shipped in expectation = mean * m_eff = supply * rate * m * (1 - hold): splitting keeps the mass
    assert float(mean * m_eff) == pytest.approx(2.0 * 1.5 * 100.0 * 0.9)


def test_geometric_from_uniform_matches_scipy() -> None:
    """Case durations: geometric on {1, 2, ...} with the given mean, by inverse CDF (scipy's geom.ppf)."""
    u = np.random.default_rng(8).random(20_000)
    for mean in (1.5, 6.0, 52.0):
        got = mx.geometric_from_uniform(u, mean)
        np.testing.assert_array_equal(got, stats.geom.ppf(u, 1.0 / mean))
        assert got.min() >= 1
        assert got.mean() == pytest.approx(mean, rel=0.05)
    np.testing.assert_array_equal(mx.geometric_from_uniform(u[:10], 1.0), 1)
