"""The compiled nested logit (``mechanics.choice_probabilities``) against the textbook numpy code.

``_reference`` keeps the original numpy evaluation (ports gathered along the last
axis). The compiled loop sums in another order and skips ``exp(0)`` and ``ln 1``,
so the two agree to a few ulps, not bit for bit: they are compared with a
tolerance of 1e-13 relative to each row's largest probability. What must hold
bit for bit is what the engines rely on: a row gives the same floats alone (the
Mesa agents' single rows, with per-row values as floats) and inside any block
(the vectorized engine's batches).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from displacement_sim import mechanics as mx

# the baseline scenario: 15 ports in 8 nests (sizes 5, 2, 3, 1, 1, 1, 1, 1)
BASE_ORDER = np.array([0, 2, 4, 6, 7, 1, 3, 5, 8, 10, 9, 11, 12, 13, 14], dtype=np.int64)
BASE_STARTS = np.array([0, 5, 7, 10, 11, 12, 13, 14], dtype=np.int64)
BASE_NEST_OF = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 5, 6, 7], dtype=np.int64)
BASE = (BASE_ORDER, BASE_STARTS, BASE_NEST_OF)


def _reference(
    u_ports: np.ndarray,
    u_elsewhere: np.ndarray,
    u_hold: float | np.ndarray,
    beta: float,
    nest_lambda: float,
    nest_order: np.ndarray,
    nest_starts: np.ndarray,
    nest_of: np.ndarray,
) -> np.ndarray:
    """The original ``choice_probabilities`` (before the slab evaluation), verbatim."""
    lead = u_ports.shape[:-1]
    scaled = (beta / nest_lambda) * u_ports[..., nest_order]
    peak = np.maximum.reduceat(scaled, nest_starts, axis=-1)
    e = np.exp(scaled - peak[..., nest_of])
    total = np.add.reduceat(e, nest_starts, axis=-1)
    n_nests = len(nest_starts)
    top = np.empty((*lead, n_nests + 2))
    top[..., :n_nests] = nest_lambda * (peak + np.log(total))
    top[..., n_nests] = beta * u_elsewhere
    top[..., n_nests + 1] = beta * u_hold
    e_top = np.exp(top - top.max(axis=-1, keepdims=True))
    p_top = e_top / e_top.sum(axis=-1, keepdims=True)
    out = np.zeros((*lead, u_ports.shape[-1] + 2))
    out[..., nest_order] = p_top[..., nest_of] * (e / total[..., nest_of])
    out[..., -2:] = p_top[..., n_nests:]
    return out


def close(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal shapes, exact zeros where the reference has them, and within 1e-13 of each row's largest entry."""
    if got.shape != want.shape or not np.array_equal(got == 0.0, want == 0.0):
        return False
    scale = np.max(np.abs(want), axis=-1, keepdims=True)
    return bool(np.all(np.abs(got - want) <= 1e-13 * scale))


def nests(labels: list[int], enabled: list[bool], nest_rank: list[int]) -> tuple[np.ndarray, ...]:
    """``(nest_order, nest_starts, nest_of)`` as ``params.build_params`` builds them, nests ranked by ``nest_rank``."""
    groups: dict[int, list[int]] = {}
    for i, (c, on) in enumerate(zip(labels, enabled, strict=True)):
        if on:
            groups.setdefault(c, []).append(i)
    ordered = [groups[c] for c in sorted(groups, key=lambda c: nest_rank[c])]
    order = np.array([i for v in ordered for i in v], dtype=np.int64)
    starts = np.cumsum([0] + [len(v) for v in ordered])[:-1].astype(np.int64)
    nest_of = np.array([k for k, v in enumerate(ordered) for _ in v], dtype=np.int64)
    return order, starts, nest_of


@st.composite
def nest_structures(draw: st.DrawFn) -> tuple[int, tuple[np.ndarray, ...]]:
    """Random nests over 1-24 ports: some disabled, one-port nests, nests of 9+ ports, 6+ nests."""
    n_ports = draw(st.integers(1, 24))
    n_labels = draw(st.integers(1, n_ports))
    labels = draw(st.lists(st.integers(0, n_labels - 1), min_size=n_ports, max_size=n_ports))
    enabled = draw(st.lists(st.booleans(), min_size=n_ports, max_size=n_ports))
    if not any(enabled):
        enabled[draw(st.integers(0, n_ports - 1))] = True
    rank = draw(st.permutations(range(n_labels)))
    return n_ports, nests(labels, enabled, rank)


def utilities(rng: np.random.Generator, shape: tuple[int, ...], spread: float, decimals: int | None) -> np.ndarray:
    """Utilities in ``[-spread, spread]``; rounded ones have ties and zeros (and maxima shared within a nest)."""
    u = rng.uniform(-spread, spread, size=shape)
    return u if decimals is None else np.round(u, decimals)


LEADS = st.sampled_from([(), (1,), (5,), (40,), (1, 1), (3, 7), (2, 33), (4, 1, 9)])
SPREADS = st.sampled_from([1.0, 20.0, 200.0])
DECIMALS = st.sampled_from([None, 0, 1])
BETAS = st.floats(0.05, 2.0, exclude_min=True, exclude_max=True)
LAMBDAS = st.floats(0.2, 1.0, exclude_min=True)


@settings(max_examples=300, deadline=None)
@given(
    structure=nest_structures(),
    lead=LEADS,
    spread=SPREADS,
    decimals=DECIMALS,
    beta=BETAS,
    lam=LAMBDAS,
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_reference(structure, lead, spread, decimals, beta, lam, seed) -> None:
    n_ports, (order, starts, nest_of) = structure
    rng = np.random.default_rng(seed)
    u = utilities(rng, (*lead, n_ports), spread, decimals)
    u_else = np.asarray(utilities(rng, lead, spread, decimals))  # 0-d for one row, as the Mesa agents pass it
    u_hold = float(utilities(rng, (), spread, decimals))
    want = _reference(u, u_else, u_hold, beta, lam, order, starts, nest_of)
    got = mx.choice_probabilities(u, u_else, u_hold, beta, lam, order, starts, nest_of)
    assert close(got, want)


@settings(max_examples=150, deadline=None)
@given(
    structure=nest_structures(),
    lead=st.sampled_from([(5,), (40,), (3, 7), (2, 33), (4, 1, 9)]),
    spread=SPREADS,
    decimals=DECIMALS,
    beta=BETAS,
    lam=LAMBDAS,
    seed=st.integers(0, 2**32 - 1),
)
def test_a_row_alone_equals_the_row_in_a_block(structure, lead, spread, decimals, beta, lam, seed) -> None:
    """Bit for bit: every row of a block against the same row computed on its own."""
    n_ports, (order, starts, nest_of) = structure
    rng = np.random.default_rng(seed)
    u = utilities(rng, (*lead, n_ports), spread, decimals)
    u_else = utilities(rng, lead, spread, decimals)
    block = mx.choice_probabilities(u, u_else, 0.25 * spread, beta, lam, order, starts, nest_of)
    for idx in np.ndindex(*lead):
        alone = mx.choice_probabilities(
            u[idx], np.asarray(u_else[idx]), 0.25 * spread, beta, lam, order, starts, nest_of
        )
        assert np.array_equal(alone, block[idx])


@pytest.mark.parametrize("lead", [(), (1,), (100, 80), (2, 5000), (3, 171), (511,), (512,)])
@pytest.mark.parametrize("spread", [5.0, 200.0])
def test_baseline_nests_at_engine_shapes(lead: tuple[int, ...], spread: float) -> None:
    """The baseline's nests at the engines' shapes."""
    rng = np.random.default_rng(sum(lead) + int(spread))
    u = rng.normal(10.0, spread, size=(*lead, 15))
    u_else = np.asarray(rng.normal(10.0, spread, size=lead))
    args = (u, u_else, 12.5, 0.4, 0.6, *BASE)
    assert close(mx.choice_probabilities(*args), _reference(*args))
    # a disabled port (not in nest_order): exactly 0
    order, starts, nest_of = nests(
        [0, 1, 0, 1, 0, 1, 0, 0, 2, 3, 2, 4, 5, 6, 7], [True] * 6 + [False] + [True] * 8, [*range(8)]
    )
    args = (u, u_else, -3.0, 1.3, 0.25, order, starts, nest_of)
    got = mx.choice_probabilities(*args)
    assert close(got, _reference(*args))
    assert np.all(got[..., 6] == 0.0)


@settings(max_examples=150, deadline=None)
@given(
    structure=nest_structures(),
    n_reps=st.integers(1, 4),
    n_rows=st.sampled_from([1, 6, 200]),
    spread=SPREADS,
    decimals=DECIMALS,
    betas=st.lists(BETAS, min_size=4, max_size=4),
    lams=st.lists(LAMBDAS, min_size=4, max_size=4),
    per_row=st.sampled_from(["all", "beta", "nest_lambda", "u_hold"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_per_row_parameters_equal_row_by_row_calls(
    structure, n_reps, n_rows, spread, decimals, betas, lams, per_row, seed
) -> None:
    """``beta``, ``nest_lambda``, ``u_hold`` of shape ``(R, 1)`` against ``(R, N)``: each row as its own scalar call."""
    n_ports, (order, starts, nest_of) = structure
    rng = np.random.default_rng(seed)
    u = utilities(rng, (n_reps, n_rows, n_ports), spread, decimals)
    u_else = utilities(rng, (n_reps, n_rows), spread, decimals)
    beta = np.array(betas[:n_reps])[:, None]
    lam = np.array(lams[:n_reps])[:, None]
    hold = utilities(rng, (n_reps, 1), spread, decimals)
    params = {"beta": beta, "nest_lambda": lam, "u_hold": hold}
    if per_row != "all":  # the others as floats (row 0's values)
        params = {k: (v if k == per_row else float(v[0, 0])) for k, v in params.items()}
    got = mx.choice_probabilities(
        u, u_else, params["u_hold"], params["beta"], params["nest_lambda"], *(order, starts, nest_of)
    )
    for r in range(n_reps):
        row = {k: float(v[r, 0]) if isinstance(v, np.ndarray) else v for k, v in params.items()}
        want = _reference(u[r], u_else[r], row["u_hold"], row["beta"], row["nest_lambda"], order, starts, nest_of)
        assert close(got[r], want)
        alone = mx.choice_probabilities(
            u[r], u_else[r], row["u_hold"], row["beta"], row["nest_lambda"], order, starts, nest_of
        )
        assert np.array_equal(alone, got[r])


def test_per_row_parameters_in_the_vectorized_engine_shape() -> None:
    """(R, 1) parameters against (R, N) = (20, 80), against scalar calls per row."""
    rng = np.random.default_rng(3)
    u = rng.normal(10.0, 30.0, size=(20, 80, 15))
    u_else = rng.normal(10.0, 30.0, size=(20, 80))
    beta, lam, hold = rng.uniform(0.05, 2.0, (20, 1)), rng.uniform(0.2, 1.0, (20, 1)), rng.normal(10.0, 30.0, (20, 1))
    got = mx.choice_probabilities(u, u_else, hold, beta, lam, *BASE)
    for r in range(20):
        args = (u[r], u_else[r], float(hold[r, 0]), float(beta[r, 0]), float(lam[r, 0]), *BASE)
        assert close(got[r], _reference(*args))
        assert np.array_equal(got[r], mx.choice_probabilities(*args))


@settings(max_examples=150, deadline=None)
@given(
    structure=nest_structures(),
    lead=LEADS,
    spread=SPREADS,
    beta=BETAS,
    lam=LAMBDAS,
    seed=st.integers(0, 2**32 - 1),
)
def test_probabilities_are_a_distribution(structure, lead, spread, beta, lam, seed) -> None:
    """Each row sums to 1 within 1e-12, every probability in [0, 1], disabled ports exactly 0."""
    n_ports, (order, starts, nest_of) = structure
    rng = np.random.default_rng(seed)
    u = utilities(rng, (*lead, n_ports), spread, None)
    u_else = np.asarray(utilities(rng, lead, spread, None))
    p = mx.choice_probabilities(u, u_else, 0.5 * spread, beta, lam, order, starts, nest_of)
    assert np.all((p >= 0.0) & (p <= 1.0))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0.0, atol=1e-12)
    disabled = np.setdiff1d(np.arange(n_ports), order)
    assert np.all(p[..., disabled] == 0.0)


def test_one_port_nests_and_largest_terms_as_if_exp_and_log_were_called() -> None:
    """The compiled loop skips ``exp(0)`` and ``ln 1``; the compiled ``exp`` and ``log`` give exactly 1 and 0 there.

    So skipping them changes no result: a row of one-port nests equals its plain
    multinomial logit, computed here with numba's own ``exp`` and ``log``.
    """
    from numba import njit

    @njit
    def exp_log(x: float) -> tuple[float, float]:
        return math.exp(x), math.log(1.0 + x)

    assert exp_log(0.0) == (1.0, 0.0) and exp_log(-0.0) == (1.0, 0.0)
    u = np.array([[0.3, -1.2, 2.5, 0.0]])
    order, starts, nest_of = np.arange(4), np.arange(4), np.arange(4)  # every port its own nest
    got = mx.choice_probabilities(u, np.array([0.1]), -0.4, 1.0, 0.5, order, starts, nest_of)
    v = np.array([0.3, -1.2, 2.5, 0.0, 0.1, -0.4])
    want = np.exp(v - v.max()) / np.exp(v - v.max()).sum()
    np.testing.assert_allclose(got[0], want, rtol=1e-15)


def test_nest_arrays_out_of_range_are_refused() -> None:
    u = np.zeros((3, 15))
    with pytest.raises(ValueError, match="out of range"):
        mx.choice_probabilities(u, np.zeros(3), 0.0, 1.0, 0.5, np.r_[BASE_ORDER[:-1], 15], BASE_STARTS, BASE_NEST_OF)
    with pytest.raises(ValueError, match="out of range"):
        mx.choice_probabilities(u, np.zeros(3), 0.0, 1.0, 0.5, BASE_ORDER, BASE_STARTS[:3], BASE_NEST_OF)


def test_no_enabled_port_leaves_elsewhere_and_hold() -> None:
    """Every port disabled (no nests): the choice is a binary logit between elsewhere and hold."""
    empty = np.array([], dtype=np.int64)
    p = mx.choice_probabilities(np.zeros((2, 4)), np.array([0.0, 1.0]), 0.0, 1.0, 0.5, empty, empty, empty)
    assert np.all(p[:, :4] == 0.0)
    np.testing.assert_allclose(p[:, 4], [0.5, math.e / (1 + math.e)], rtol=1e-15)
