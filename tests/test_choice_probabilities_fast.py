"""The fast nested logit (``mechanics.choice_probabilities``) against its original code, bit for bit.

The engines must agree to the last bit, so the fast evaluation (alternatives as
contiguous slabs of rows, for the vectorized engine's blocks) must give exactly
the floats of the original code (ports gathered along the last axis), which is
kept here verbatim as ``_reference``. Every comparison is ``np.array_equal``,
never a tolerance. The slab evaluation only runs from ``_SLAB_MIN_ROWS`` rows on,
so most tests also run it on small arrays by lowering that threshold and the
block size (several blocks, the last one short).
"""

from __future__ import annotations

from contextlib import contextmanager
from unittest import mock

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

# (min rows, block rows) of the slab evaluation: as shipped, always (one block), always (short blocks)
ENGINES = [None, (1, 1 << 20), (1, 7), (1, 64)]


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


@contextmanager
def engine(setting: tuple[int, int] | None):
    """Run the slab evaluation from ``min_rows`` rows on, by blocks of ``block`` rows (None: as shipped)."""
    if setting is None:
        yield
        return
    min_rows, block = setting
    with mock.patch.object(mx, "_SLAB_MIN_ROWS", min_rows), mock.patch.object(mx, "_SLAB_BLOCK", block):
        yield


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
    setting=st.sampled_from(ENGINES),
)
def test_matches_reference_bitwise(structure, lead, spread, decimals, beta, lam, seed, setting) -> None:
    n_ports, (order, starts, nest_of) = structure
    rng = np.random.default_rng(seed)
    u = utilities(rng, (*lead, n_ports), spread, decimals)
    u_else = np.asarray(utilities(rng, lead, spread, decimals))  # 0-d for one row, as the Mesa agents pass it
    u_hold = float(utilities(rng, (), spread, decimals))
    want = _reference(u, u_else, u_hold, beta, lam, order, starts, nest_of)
    with engine(setting):
        got = mx.choice_probabilities(u, u_else, u_hold, beta, lam, order, starts, nest_of)
    assert got.shape == want.shape
    assert np.array_equal(got, want)


@pytest.mark.parametrize("lead", [(), (1,), (100, 80), (2, 5000), (3, 171), (511,), (512,)])
@pytest.mark.parametrize("spread", [5.0, 200.0])
def test_baseline_nests_at_engine_shapes(lead: tuple[int, ...], spread: float) -> None:
    """The baseline's nests at the engines' shapes, with the shipped settings (both evaluations, several blocks)."""
    rng = np.random.default_rng(sum(lead) + int(spread))
    u = rng.normal(10.0, spread, size=(*lead, 15))
    u_else = np.asarray(rng.normal(10.0, spread, size=lead))
    args = (u, u_else, 12.5, 0.4, 0.6, *BASE)
    assert np.array_equal(mx.choice_probabilities(*args), _reference(*args))
    # a disabled port (not in nest_order): exactly 0
    order, starts, nest_of = nests(
        [0, 1, 0, 1, 0, 1, 0, 0, 2, 3, 2, 4, 5, 6, 7], [True] * 6 + [False] + [True] * 8, [*range(8)]
    )
    args = (u, u_else, -3.0, 1.3, 0.25, order, starts, nest_of)
    got = mx.choice_probabilities(*args)
    assert np.array_equal(got, _reference(*args))
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
    setting=st.sampled_from(ENGINES),
)
def test_per_row_parameters_equal_row_by_row_calls(
    structure, n_reps, n_rows, spread, decimals, betas, lams, per_row, seed, setting
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
    with engine(setting):
        got = mx.choice_probabilities(
            u, u_else, params["u_hold"], params["beta"], params["nest_lambda"], *(order, starts, nest_of)
        )
    for r in range(n_reps):
        row = {k: float(v[r, 0]) if isinstance(v, np.ndarray) else v for k, v in params.items()}
        want = _reference(u[r], u_else[r], row["u_hold"], row["beta"], row["nest_lambda"], order, starts, nest_of)
        assert np.array_equal(got[r], want)
        with engine(setting):
            alone = mx.choice_probabilities(
                u[r], u_else[r], row["u_hold"], row["beta"], row["nest_lambda"], order, starts, nest_of
            )
        assert np.array_equal(alone, want)


def test_per_row_parameters_in_the_vectorized_engine_shape() -> None:
    """(R, 1) parameters against (R, N) = (20, 80): the slab evaluation as shipped, against scalar calls per row."""
    rng = np.random.default_rng(3)
    u = rng.normal(10.0, 30.0, size=(20, 80, 15))
    u_else = rng.normal(10.0, 30.0, size=(20, 80))
    beta, lam, hold = rng.uniform(0.05, 2.0, (20, 1)), rng.uniform(0.2, 1.0, (20, 1)), rng.normal(10.0, 30.0, (20, 1))
    got = mx.choice_probabilities(u, u_else, hold, beta, lam, *BASE)
    for r in range(20):
        want = _reference(u[r], u_else[r], float(hold[r, 0]), float(beta[r, 0]), float(lam[r, 0]), *BASE)
        assert np.array_equal(got[r], want)


@settings(max_examples=150, deadline=None)
@given(
    structure=nest_structures(),
    lead=LEADS,
    spread=SPREADS,
    beta=BETAS,
    lam=LAMBDAS,
    seed=st.integers(0, 2**32 - 1),
    setting=st.sampled_from(ENGINES),
)
def test_probabilities_are_a_distribution(structure, lead, spread, beta, lam, seed, setting) -> None:
    """Each row sums to 1 within 1e-12, every probability in [0, 1], disabled ports exactly 0."""
    n_ports, (order, starts, nest_of) = structure
    rng = np.random.default_rng(seed)
    u = utilities(rng, (*lead, n_ports), spread, None)
    u_else = np.asarray(utilities(rng, lead, spread, None))
    with engine(setting):
        p = mx.choice_probabilities(u, u_else, 0.5 * spread, beta, lam, order, starts, nest_of)
    assert np.all((p >= 0.0) & (p <= 1.0))
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=0.0, atol=1e-12)
    disabled = np.setdiff1d(np.arange(n_ports), order)
    assert np.all(p[..., disabled] == 0.0)


def test_one_port_nests_without_the_shortcut() -> None:
    """With ``_EXACT_AT_ZERO`` off, one-port nests go through exp and log like the others: still bit-identical."""
    assert mx._EXACT_AT_ZERO  # on this platform exp(0) = 1 and log(1) = 0 exactly
    rng = np.random.default_rng(5)
    u = rng.normal(0.0, 50.0, size=(7, 90, 15))
    u_else = rng.normal(0.0, 50.0, size=(7, 90))
    args = (u, u_else, 4.0, 0.9, 0.35, *BASE)
    with mock.patch.object(mx, "_EXACT_AT_ZERO", False):
        assert np.array_equal(mx.choice_probabilities(*args), _reference(*args))


@pytest.mark.parametrize("m", [*range(1, 40), 64, 127, 128, 129, 130, 200, 257, 300])
def test_pairwise_sum_rows_adds_in_numpy_order(m: int) -> None:
    """``_pairwise_sum_rows`` equals ``.sum(axis=-1)`` and ``add.reduceat``'s tail, bit for bit."""
    rng = np.random.default_rng(m)
    x = np.exp(rng.normal(0.0, 3.0, size=(50, m)))
    rows = np.ascontiguousarray(x.T)
    assert np.array_equal(mx._pairwise_sum_rows(rows, np.empty(50)), x.sum(axis=-1))
    if m > 1:
        tail = mx._pairwise_sum_rows(rows[1:], np.empty(50))
        assert np.array_equal(rows[0] + tail, np.add.reduceat(x, [0], axis=-1)[:, 0])


def test_unusual_nest_arrays_use_the_gather() -> None:
    """Nest arrays not laid out as ``build_params`` does are left to the original evaluation."""
    assert mx._nest_layout(*BASE, 15) is not None
    assert mx._nest_layout(BASE_ORDER, BASE_STARTS, BASE_NEST_OF[::-1], 15) is None  # nest_of inconsistent
    assert mx._nest_layout(BASE_ORDER, BASE_STARTS[1:], BASE_NEST_OF[5:], 15) is None  # does not start at 0
    assert mx._nest_layout(np.r_[BASE_ORDER[:-1], 0], BASE_STARTS, BASE_NEST_OF, 15) is None  # port listed twice
    assert mx._nest_layout(BASE_ORDER, BASE_STARTS, BASE_NEST_OF, 14) is None  # port out of range
    rng = np.random.default_rng(2)
    u = rng.normal(size=(600, 15))
    u_else = rng.normal(size=600)
    for nest_of in (BASE_NEST_OF, BASE_NEST_OF[::-1]):  # as built (slabs), inconsistent (gather, as before)
        args = (u, u_else, 0.3, 0.7, 0.5, BASE_ORDER, BASE_STARTS, nest_of)
        assert np.array_equal(mx.choice_probabilities(*args), _reference(*args))
