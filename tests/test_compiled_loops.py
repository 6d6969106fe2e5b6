"""The compiled week loops of ``kernel`` against plain numpy written from the equations.

``kernel.decide``, ``ship``, ``learn``, ``milieu_news`` and ``shipment_totals`` run
in compiled loops that both engines call. Here each is checked against a direct
numpy transcription of its equations (mechanics ufuncs on whole arrays, sums over
networks in slot order as a Python loop, ``slot_sum``): sums in slot order must
agree bit for bit, the nested logit to 1e-13; and a batch row must give the same
bits as the same network computed alone (the Mesa agents' single rows).
"""

from __future__ import annotations

import copy
import ctypes
import math

import llvmlite.binding as llvm
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from displacement_sim import cooperation as co
from displacement_sim import kernel as kx
from displacement_sim import mechanics as mx
from displacement_sim.config import load_scenario
from displacement_sim.cooperation import coop_params
from displacement_sim.params import build_plan

SCENARIOS = "scenarios"


def slot_sum(x: np.ndarray, axis: int) -> np.ndarray:
    """Sum over ``axis`` in slot order: the first slot, then each next one added (numpy, one slot at a time)."""
    rows = np.moveaxis(np.asarray(x, dtype=float), axis, 0)
    total = rows[0].copy()
    for row in rows[1:]:
        total += row
    return total


@pytest.mark.parametrize("shape, axis", [((5,), 0), ((3, 7), 1), ((2, 9, 4), 1), ((2, 9, 4), -2), ((6, 2, 3, 5), 2)])
def test_sum_over_networks_adds_in_slot_order(shape: tuple[int, ...], axis: int) -> None:
    x = np.exp(np.random.default_rng(len(shape)).normal(0.0, 3.0, shape))
    np.testing.assert_array_equal(kx.sum_over_networks(x, axis), slot_sum(x, axis))
    counts = np.round(x).astype(np.int64)
    np.testing.assert_array_equal(kx.sum_over_networks(counts, axis), slot_sum(counts, axis))


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_scenario(f"{SCENARIOS}/baseline.yaml"), weeks=10)


def _state(rng: np.random.Generator, shape: tuple[int, ...], n_ports: int) -> dict[str, np.ndarray]:
    """A plausible mid-run state: evidence, exposure, insiders, network attributes."""
    return {
        "lam": rng.lognormal(0.0, 0.5, shape),
        "m": rng.uniform(50.0, 800.0, shape),
        "rate": rng.uniform(0.5, 3.0, shape),
        "seizures": rng.exponential(2.0, (*shape, n_ports)) * (rng.random((*shape, n_ports)) < 0.6),
        "exposure": rng.exponential(30.0, (*shape, n_ports)),
        "h": rng.random((*shape, n_ports)) * (rng.random((*shape, n_ports)) < 0.3),
        "alive": rng.random(shape) < 0.9,
    }


def _decide(p, a0, s: dict[str, np.ndarray], supply: float = 1.0) -> kx.Decision:
    return kx.decide(p, a0, supply, s["lam"], s["m"], s["rate"], s["seizures"], s["exposure"], s["h"], s["alive"])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 5), nets=st.integers(1, 40))
def test_decide_matches_the_equations_and_rows_alone(plan, seed: int, rows: int, nets: int) -> None:
    p, a0 = plan.params[0], plan.a0
    rng = np.random.default_rng(seed)
    s = _state(rng, (rows, nets), p.n_ports)
    dec = _decide(p, a0, s)
    # the equations on whole arrays
    rho = mx.perceived_risk(a0, p.prior_strength, s["seizures"], s["exposure"])
    rho_eff = mx.effective_risk(rho, p.kappa, s["h"])
    u = mx.port_utility(p.margin, s["lam"][..., None], rho_eff, p.cost, p.setup, s["h"], p.phi, p.log_at_risk)
    probs = mx.choice_probabilities(
        u, p.utility_elsewhere(s["lam"]), p.hold_utility, p.beta, p.nest_lambda, p.nest_order, p.nest_starts, p.nest_of
    )
    np.testing.assert_array_equal(dec.probs, probs)  # the same compiled row function
    risk = np.concatenate([rho_eff, np.full((rows, nets, 1), p.elsewhere_detection)], axis=-1)
    m_eff = mx.effective_load(s["m"], p.zeta, p.split_floor, probs[..., :-1], risk)
    np.testing.assert_array_equal(dec.m_eff, m_eff)
    mean = np.where(s["alive"], mx.expected_loads(1.0, s["rate"], s["m"], m_eff, probs[..., -1]), 0.0)
    np.testing.assert_array_equal(dec.mean_loads, mean)
    cum = np.cumsum(probs[..., :-1], axis=-1)
    np.testing.assert_array_equal(dec.cum_ship, cum / cum[..., -1:])
    assert np.all(dec.cum_ship[..., -1] == 1.0)
    # a row alone (as a Mesa agent computes it) gives the same bits
    r, n = rows - 1, nets // 2
    one = {k: (np.float64(v[r, n]) if v.ndim == 2 else v[r, n]) for k, v in s.items()}
    one["alive"] = bool(s["alive"][r, n])
    alone = _decide(p, a0, one)
    for field in ("probs", "m_eff", "mean_loads", "cum_ship"):
        np.testing.assert_array_equal(getattr(alone, field), getattr(dec, field)[r, n])


def test_ship_counts_alternatives_and_detection(plan) -> None:
    """Each load's count, alternative and seizure from its uniforms, as the equations say."""
    p, l_max = plan.params[0], plan.l_max
    rng = np.random.default_rng(7)
    rows, nets = 3, 25
    s = _state(rng, (rows, nets), p.n_ports)
    dec = _decide(p, plan.a0, s, supply=1.0)
    u = rng.random((rows, nets, 1 + 2 * l_max))
    i_q = rng.uniform(0.0, 0.3, (rows, p.n_ports))
    t = rng.uniform(0.0, 0.1, (rows, p.n_ports))
    cp = coop_params(load_scenario(f"{SCENARIOS}/baseline.yaml"))
    g = rng.uniform(0.0, 0.2, (rows, nets, cp.n_agencies + 1))
    g[..., -1] = 0.0
    loads, caught = kx.ship(p, dec, u, l_max, i_q, t, s["h"], g, cp.port_agency)
    n_loads = mx.poisson_from_uniform(u[..., 0], dec.mean_loads, l_max)
    np.testing.assert_array_equal(loads.sum(axis=-1), n_loads)
    assert np.all(caught <= loads) and np.all(caught >= 0)
    for r in range(rows):
        for n in range(nets):
            k = int(n_loads[r, n])
            alt = mx.choose_alternative(u[r, n, 1 : 1 + k], dec.cum_ship[r, n])
            det = mx.detection_probability(i_q[r], p.kappa, s["h"][r, n], t[r], g[r, n, cp.port_agency])
            det = np.append(det, p.elsewhere_detection)
            hit = u[r, n, 1 + l_max : 1 + l_max + k] < det[alt]
            np.testing.assert_array_equal(loads[r, n], np.bincount(alt, minlength=p.n_ports + 1))
            np.testing.assert_array_equal(caught[r, n], np.bincount(alt, weights=hit, minlength=p.n_ports + 1))
            mine = kx.Decision(*(np.asarray(x)[r, n] for x in (dec.probs, dec.m_eff, dec.mean_loads, dec.cum_ship)))
            one = kx.ship(p, mine, u[r, n], l_max, i_q[r], t[r], s["h"][r, n], g[r, n], cp.port_agency)
            np.testing.assert_array_equal(one[0], loads[r, n])
            np.testing.assert_array_equal(one[1], caught[r, n])


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 4), nets=st.integers(1, 60))
def test_news_and_totals_add_in_slot_order(plan, seed: int, rows: int, nets: int) -> None:
    """Sums over networks equal a running sum in slot order (``slot_sum``) bit for bit."""
    p = plan.params[0]
    cp = coop_params(load_scenario(f"{SCENARIOS}/baseline.yaml"))
    rng = np.random.default_rng(seed)
    n_alt = p.n_ports + 1
    loads = rng.poisson(0.4, (rows, nets, n_alt)).astype(float)
    caught = np.minimum(loads, rng.poisson(0.1, loads.shape)).astype(float)
    h = rng.random((rows, nets, p.n_ports)) * 0.5
    m_eff = rng.uniform(50.0, 700.0, (rows, nets))
    home = rng.integers(-1, cp.n_agencies, (rows, nets))
    n_active = rng.integers(1, nets + 1, rows).astype(float)
    news_s, news_e = kx.milieu_news(p, loads[..., :-1], caught[..., :-1], h, n_active)
    own_exp = mx.own_exposure(loads[..., :-1], p.kappa, h)
    np.testing.assert_array_equal(news_s, slot_sum(caught[..., :-1], axis=1) / n_active[:, None])
    np.testing.assert_array_equal(news_e, slot_sum(own_exp, axis=1) / n_active[:, None])
    totals = kx.shipment_totals(cp, loads, caught, m_eff, home)
    kg = m_eff[..., None]
    for got, per_net in zip(totals[:4], (loads, loads * kg, caught, caught * kg), strict=True):
        np.testing.assert_array_equal(got, slot_sum(per_net, axis=1))
    by_agency = np.zeros((rows, nets, cp.n_agencies))
    for a in range(cp.n_agencies):
        for q in np.flatnonzero(cp.port_agency == a):  # an agency's ports in port order
            by_agency[..., a] += caught[..., q] * m_eff
    foreign = (home[..., None] >= 0) & (home[..., None] != np.arange(cp.n_agencies))
    want = slot_sum(np.where(foreign, by_agency, 0.0), axis=1)
    np.testing.assert_array_equal(totals[4], want)
    # the Mesa engine's shapes: one replication, networks stacked
    alone = kx.shipment_totals(cp, loads[0], caught[0], m_eff[0], home[0])
    for got, want_row in zip(alone, totals, strict=True):
        np.testing.assert_array_equal(got, want_row[0])


def test_learn_matches_the_equations(plan) -> None:
    p = plan.params[0]
    rng = np.random.default_rng(11)
    shape = (2, 30, p.n_ports)
    s, e, h = rng.exponential(2.0, shape), rng.exponential(20.0, shape), rng.random(shape) * 0.5
    own_loads = rng.poisson(0.3, shape).astype(float)
    own_seized = np.minimum(own_loads, rng.poisson(0.1, shape)).astype(float)
    news_s, news_e = rng.random((2, p.n_ports)), rng.random((2, p.n_ports))
    new_s, new_e, new_h = kx.learn(p, s, e, h, own_loads, own_seized, news_s, news_e)
    own_exp = mx.own_exposure(own_loads, p.kappa, h)
    np.testing.assert_array_equal(new_s, mx.update_evidence(s, p.memory, own_seized, p.omega, news_s[:, None]))
    np.testing.assert_array_equal(new_e, mx.update_evidence(e, p.memory, own_exp, p.omega, news_e[:, None]))
    want_h = mx.update_access(h, own_loads > 0, own_seized > 0, p.access_growth, p.c, p.access_decay, p.access_burn)
    np.testing.assert_array_equal(new_h, want_h)
    one = kx.learn(p, s[1, 3], e[1, 3], h[1, 3], own_loads[1, 3], own_seized[1, 3], news_s[1], news_e[1])
    for got, batch in zip(one, (new_s, new_e, new_h), strict=True):
        np.testing.assert_array_equal(got, batch[1, 3])


def test_rows_with_their_own_parameters_equal_each_point_alone() -> None:
    """A batch whose rows differ in row fields read by every loop: each row gives its own point's bits."""
    from displacement_sim.rows import stack, take_rows

    overrides = [
        {},
        {"behaviour.kappa": 0.9, "behaviour.beta": 0.3, "behaviour.memory": 0.5, "behaviour.access_growth": 0.4},
        {"behaviour.kappa": 0.2, "behaviour.nest_lambda": 0.4, "behaviour.omega": 0.9, "hold.utility": -2.0},
    ]
    cfgs = [load_scenario(f"{SCENARIOS}/baseline.yaml", overrides=o) for o in overrides]
    l_max = 40
    plans = [build_plan(c, weeks=5, l_max=l_max) for c in cfgs]
    plan = stack(plans, [1, 1, 1])
    p, cp = plan.params[0], coop_params(cfgs[0])
    assert np.ndim(p.kappa) == 1 and np.ndim(p.beta) == 1  # per-row fields, not shared
    rng = np.random.default_rng(0)
    rows, nets = 3, 7
    s = _state(rng, (rows, nets), p.n_ports)
    dec = _decide(p, plan.a0, s)
    assert not np.array_equal(dec.probs[0], dec.probs[1])  # the rows' parameters differ
    u = rng.random((rows, nets, 1 + 2 * l_max))
    i_q, t = rng.uniform(0.0, 0.3, (rows, p.n_ports)), rng.uniform(0.0, 0.1, (rows, p.n_ports))
    g = rng.uniform(0.0, 0.2, (rows, nets, cp.n_agencies + 1))
    g[..., -1] = 0.0
    loads, caught = kx.ship(p, dec, u, l_max, i_q, t, s["h"], g, cp.port_agency)
    n_active = np.array([5.0, 6.0, 7.0])
    news = kx.milieu_news(p, loads[..., :-1], caught[..., :-1], s["h"], n_active)
    learned = kx.learn(p, s["seizures"], s["exposure"], s["h"], loads[..., :-1], caught[..., :-1], *news)
    for r in range(rows):
        q = plans[r].params[0]  # the point's own parameters, shared numbers
        for n in range(nets):
            one = {k: (np.float64(v[r, n]) if v.ndim == 2 else v[r, n]) for k, v in s.items()}
            one["alive"] = bool(s["alive"][r, n])
            d1 = _decide(q, plans[r].a0, one)
            for field in ("probs", "m_eff", "mean_loads", "cum_ship"):
                np.testing.assert_array_equal(getattr(d1, field), getattr(dec, field)[r, n])
            l1, c1 = kx.ship(q, d1, u[r, n], l_max, i_q[r], t[r], s["h"][r, n], g[r, n], cp.port_agency)
            np.testing.assert_array_equal(l1, loads[r, n])
            np.testing.assert_array_equal(c1, caught[r, n])
            o = kx.learn(
                q, s["seizures"][r, n], s["exposure"][r, n], s["h"][r, n], l1[:-1], c1[:-1], news[0][r], news[1][r]
            )
            for got, batch in zip(o, learned, strict=True):
                np.testing.assert_array_equal(got, batch[r, n])
        alone = kx.milieu_news(q, loads[r, :, :-1], caught[r, :, :-1], s["h"][r], float(n_active[r]))
        np.testing.assert_array_equal(alone[0], news[0][r])
        np.testing.assert_array_equal(alone[1], news[1][r])
        # the same row as a one-row batch (take_rows), as a batch split into groups holds it
        d2 = _decide(
            take_rows(p, np.array([r])), take_rows(plan, np.array([r])).a0, {k: v[r : r + 1] for k, v in s.items()}
        )
        np.testing.assert_array_equal(d2.probs[0], dec.probs[r])


@pytest.mark.parametrize("per_row", [False, True])
def test_trade_equals_the_phases_one_by_one(per_row: bool) -> None:
    """The vectorized engine's fused pass (steps 3-6 row by row) gives the bits of decide, ship, news and learn."""
    from displacement_sim.rows import stack

    overrides = [{}, {"behaviour.kappa": 0.9, "behaviour.beta": 0.3, "behaviour.memory": 0.5}, {"hold.utility": -2.0}]
    cfgs = [load_scenario(f"{SCENARIOS}/baseline.yaml", overrides=o if per_row else {}) for o in overrides]
    l_max = 40
    plan = stack([build_plan(c, weeks=5, l_max=l_max) for c in cfgs], [1, 1, 1])
    p, cp = plan.params[0], coop_params(cfgs[0])
    assert (np.ndim(p.kappa) == 1) == per_row
    rng = np.random.default_rng(11)
    rows, nets = 3, 30
    s = _state(rng, (rows, nets), p.n_ports)
    u = rng.random((rows, nets, 1 + 2 * l_max))
    i_q, t = rng.uniform(0.0, 0.3, (rows, p.n_ports)), rng.uniform(0.0, 0.1, (rows, p.n_ports))
    g = rng.uniform(0.0, 0.2, (rows, nets, cp.n_agencies + 1))
    g[..., -1] = 0.0
    # the phases one by one, as the Mesa model runs them
    dec = _decide(p, plan.a0, s, supply=1.3)
    loads, caught = kx.ship(p, dec, u, l_max, i_q, t, s["h"], g, cp.port_agency)
    n_active = np.maximum(s["alive"].sum(axis=1), 1).astype(float)
    news = kx.milieu_news(p, loads[..., :-1], caught[..., :-1], s["h"], n_active)
    learned = kx.learn(p, s["seizures"], s["exposure"], s["h"], loads[..., :-1], caught[..., :-1], *news)
    assert loads.sum() > 0 and caught.sum() > 0  # the comparison covers seizures
    # the fused pass, on copies it updates in place
    state = {k: s[k].copy() for k in ("seizures", "exposure", "h")}
    home = rng.integers(-1, cp.n_agencies, (rows, nets))
    got = kx.trade(p, plan.a0, 1.3, s["lam"], s["m"], s["rate"], *state.values(), s["alive"], u, l_max, i_q, t, g,
                   cp.port_agency, home)  # fmt: skip
    totals = kx.shipment_totals(cp, loads, caught, dec.m_eff, home)
    assert totals[4].sum() > 0  # cross-border seizures are compared too
    expected = (dec.m_eff, dec.mean_loads, loads, caught)
    for name, a, b in zip(("m_eff", "mean_loads", "loads", "caught"), got[:4], expected, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for a, b in zip(got[4], totals, strict=True):
        np.testing.assert_array_equal(a, b, err_msg="totals")
    for name, new in zip(state, learned, strict=True):
        np.testing.assert_array_equal(state[name], new, err_msg=name)
    # rows reading shared uniform rows (common random numbers) equal rows given copies of them
    u_rows = np.array([1, 0, 1])
    copies = {k: s[k].copy() for k in ("seizures", "exposure", "h")}
    shared = {k: s[k].copy() for k in ("seizures", "exposure", "h")}
    args = (p, plan.a0, 1.3, s["lam"], s["m"], s["rate"])
    by_copy = kx.trade(*args, *copies.values(), s["alive"], u[u_rows], l_max, i_q, t, g, cp.port_agency, home)
    by_index = kx.trade(*args, *shared.values(), s["alive"], u[:2], l_max, i_q, t, g, cp.port_agency, home, u_rows)
    assert not np.array_equal(by_copy[2], got[2])  # other uniforms, other loads: the index is used
    for a, b in zip((*by_copy[:4], *by_copy[4], *copies.values()), (*by_index[:4], *by_index[4], *shared.values()),
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="u_rows"):
        kx.trade(*args, *shared.values(), s["alive"], u[:2], l_max, i_q, t, g, cp.port_agency, home, np.array([0, 2]))
    # step 7 in the same pass: the intelligence gather_intel gathers from these seizures and loads
    coop = co.initial_coop_state(cp, (rows,), nets, rng.choice(np.array(["BE", "NL", "CO"]), (rows, nets)), 1.0)
    coop.intel, coop.landed = rng.random(coop.intel.shape), rng.exponential(1.0, coop.landed.shape)
    coop.pending = rng.random(coop.pending.shape)
    coop.case_on, coop.t_case_active = rng.random(coop.case_on.shape) < 0.3, rng.integers(0, 9, coop.case_on.shape)
    by_phase, fused = copy.deepcopy(coop), copy.deepcopy(coop)
    week, no_shock = 6, np.ones((rows, cp.n_agencies, nets))
    co.gather_intel(cp, by_phase, week, caught[..., :-1], loads[..., :-1], s["alive"], no_shock)
    state = {k: s[k].copy() for k in ("seizures", "exposure", "h")}
    with_intel = kx.trade(p, plan.a0, 1.3, s["lam"], s["m"], s["rate"], *state.values(), s["alive"], u, l_max, i_q,
                          t, g, cp.port_agency, home, None, co.intel_inputs(cp, fused, week, s["alive"]))  # fmt: skip
    for a, b in zip((*with_intel[:4], *with_intel[4]), (*got[:4], *got[4]), strict=True):
        np.testing.assert_array_equal(a, b)  # and the rest of the pass as without it
    for name in ("intel", "pending", "landed"):
        assert not np.array_equal(getattr(by_phase, name), getattr(coop, name))  # the week changed them
        np.testing.assert_array_equal(getattr(fused, name), getattr(by_phase, name), err_msg=name)
    two_networks = co.intel_inputs(
        cp, co.initial_coop_state(cp, (rows,), 2, np.full((rows, 2), "BE"), 1.0), week, s["alive"][:, :2]
    )
    with pytest.raises(ValueError, match="intelligence"):
        kx.trade(*args, *shared.values(), s["alive"], u, l_max, i_q, t, g, cp.port_agency, home, None, two_networks)
    with pytest.raises(ValueError, match="in place"):
        kx.trade(p, plan.a0, 1.3, s["lam"], s["m"], s["rate"], s["seizures"][:, ::2], s["exposure"][:, ::2],
                 s["h"][:, ::2], s["alive"][:, ::2], u[:, ::2], l_max, i_q, t, g[:, ::2], cp.port_agency,
                 home[:, ::2])  # fmt: skip
    # the compiled pass is C-ordered (_jit.c_ordered): inputs in other orders are copied, with the same result
    state = {k: s[k].copy() for k in ("seizures", "exposure", "h")}
    fortran = [np.asfortranarray(x) for x in (s["lam"], u, i_q, t, g)]
    assert not any(x.flags.c_contiguous for x in fortran)
    other_order = kx.trade(p, plan.a0, 1.3, fortran[0], s["m"], s["rate"], *state.values(), s["alive"], fortran[1],
                           l_max, fortran[2], fortran[3], fortran[4], cp.port_agency, home)  # fmt: skip
    for a, b in zip((*other_order[:4], *other_order[4], *state.values()), (*got[:4], *got[4], *learned), strict=True):
        np.testing.assert_array_equal(a, b)
    # ... but the intelligence it updates in place is refused unless C-ordered (a copy would lose the update)
    strided = co.intel_inputs(cp, copy.deepcopy(coop), week, s["alive"])
    strided = (*strided[:4], np.asfortranarray(strided[4]), *strided[5:])
    with pytest.raises(ValueError, match="updates its arrays in place"):
        kx.trade(*args, *shared.values(), s["alive"], u, l_max, i_q, t, g, cp.port_agency, home, None, strided)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), supply=st.floats(0.0, 6.0), share=st.booleans())
def test_trade_reading_the_streams_equals_trade_on_numpys_blocks(seed: int, supply: float, share: bool) -> None:
    """The vectorized engine's reads of the shipment streams (pcg64.SkipStreams) give the bits of whole blocks.

    Whole blocks are what the Mesa engine draws with numpy; rows may share a stream
    (common random numbers), and loads run from none to many (up to the slots' bound).
    """
    from displacement_sim import pcg64
    from displacement_sim.streams import Stream, generator

    cfg = load_scenario(f"{SCENARIOS}/baseline.yaml")
    plan = build_plan(cfg, weeks=5)
    p, cp, l_max = plan.params[0], coop_params(cfg), plan.l_max
    rng = np.random.default_rng(seed)
    rows, nets, width = 4, 25, 1 + 2 * l_max
    s = _state(rng, (rows, nets), p.n_ports)
    s["rate"][0, :3] = 8.0  # the scenario's bound on loads per week: some networks ship many loads
    s["rate"][1, 0], s["alive"][1, 0] = 1e12, True  # one fills all l_max slots (no jump), beyond any bound allowed
    i_q, t = rng.uniform(0.0, 0.3, (rows, p.n_ports)), rng.uniform(0.0, 0.1, (rows, p.n_ports))
    g = rng.uniform(0.0, 0.2, (rows, nets, cp.n_agencies + 1))
    g[..., -1] = 0.0
    home = rng.integers(-1, cp.n_agencies, (rows, nets))
    u_rows = np.array([1, 0, 1, 0]) if share else np.arange(rows)
    keys = [(seed, r) for r in range(u_rows.max() + 1)]
    streams = pcg64.SkipStreams([generator(k, 0, r, Stream.SHIPMENTS) for k, r in keys], nets, width)
    mesa_like = [generator(k, 0, r, Stream.SHIPMENTS) for k, r in keys]
    for _week in range(2):
        blocks = np.stack([gen.random((nets, width)) for gen in mesa_like])
        by_block, by_stream = ({k: s[k].copy() for k in ("seizures", "exposure", "h")} for _ in range(2))
        args = (p, plan.a0, supply, s["lam"], s["m"], s["rate"])
        a = kx.trade(*args, *by_block.values(), s["alive"], blocks, l_max, i_q, t, g, cp.port_agency, home, u_rows)
        b = kx.trade(*args, *by_stream.values(), s["alive"], streams, l_max, i_q, t, g, cp.port_agency, home, u_rows)
        for x, y in zip((*a[:4], *a[4], *by_block.values()), (*b[:4], *b[4], *by_stream.values()), strict=True):
            np.testing.assert_array_equal(x, y)
        if supply > 1.0:
            assert a[2][..., :-1].sum(axis=-1).max() >= 6  # many loads from one network: the jumps are short
        if supply > 0.01:
            assert a[2][1, 0].sum() == l_max  # every load slot of the block used
        streams.advance()
    with pytest.raises(ValueError, match="streams of 25 blocks"):
        kx.trade(*args, *by_stream.values(), s["alive"], streams, l_max + 1, i_q, t, g, cp.port_agency, home)
    with pytest.raises(ValueError, match="u_rows"):
        kx.trade(*args, *by_stream.values(), s["alive"], streams, l_max, i_q, t, g, cp.port_agency, home, u_rows + 2)


def test_ship_refuses_blocks_the_loop_would_overrun(plan) -> None:
    p, l_max = plan.params[0], plan.l_max
    cp = coop_params(load_scenario(f"{SCENARIOS}/baseline.yaml"))
    s = _state(np.random.default_rng(1), (2, 3), p.n_ports)
    dec = _decide(p, plan.a0, s)
    g = np.zeros((2, 3, cp.n_agencies + 1))
    i_q = t = np.zeros((2, p.n_ports))
    with pytest.raises(ValueError, match="uniform block"):
        kx.ship(p, dec, np.zeros((2, 3, 2 * l_max)), l_max, i_q, t, s["h"], g, cp.port_agency)
    with pytest.raises(ValueError, match="port_agency"):
        kx.ship(p, dec, np.zeros((2, 3, 1 + 2 * l_max)), l_max, i_q, t, s["h"], g[..., :1], cp.port_agency)


def test_each_loop_has_one_typed_version_and_refuses_other_types() -> None:
    """Both engines' calls go to the one signature; a float32 array is refused, not compiled anew."""
    loops = [kx._decide_rows, kx._ship_rows, kx._learn_rows, kx._news_rows, kx._totals_rows, kx._running_sum]
    loops += [kx._trade_rows, co._intel_rows, co._nexus_rows, co._open_rows, co._take_first_rows, co._resolve_rows]
    loops += [co._count_cases_rows, co._intel_term_rows]
    loops += [mx._nested_logit_rows, kx._learn_rows]
    assert all(len(f.compile().signatures) == 1 for f in loops)
    with pytest.raises(TypeError, match="No matching definition"):
        kx._running_sum(np.zeros((1, 2, 3), dtype=np.float32), np.zeros((1, 3)))
    assert len(kx._running_sum.signatures) == 1


def test_loops_compile_when_first_called_and_a_batch_compiles_only_its_own(tmp_path) -> None:
    """Importing the package compiles no loop; the vectorized engine never compiles the Mesa agents' loops."""
    import subprocess
    import sys

    code = """
from displacement_sim import kernel as kx, load_scenario, run_batch
mesa_only = [kx._decide_rows, kx._ship_rows, kx._learn_rows, kx._news_rows, kx._totals_rows]
assert not kx._trade_rows.signatures and not any(f.signatures for f in mesa_only), "compiled at import"
run_batch(load_scenario({"name": "tiny", "weeks": 8, "warmup_weeks": 2}), 2, seed=1)
assert len(kx._trade_rows.signatures) == 1
assert not any(f.signatures for f in mesa_only), [f.__name__ for f in mesa_only if f.signatures]
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_cache_directory_follows_the_source_and_falls_back(tmp_path, monkeypatch) -> None:
    """Keyed by a hash of the compiled modules; NUMBA_CACHE_DIR first; None when nothing is writable."""
    from displacement_sim import _jit

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    first = _jit.cache_dir()
    assert first is not None and first.parent == tmp_path and first.name.startswith("displacement-sim-")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(blocked))
    fallback = _jit.cache_dir()
    assert fallback is not None and blocked not in fallback.parents  # the next writable place
    monkeypatch.setattr(_jit, "_writable", lambda path: False)
    assert _jit.cache_dir() is None
    monkeypatch.setattr(_jit, "_SOURCES", ("no-such-module.py",))
    assert _jit._source_digest() is None


def test_a_new_cache_beside_the_package_removes_the_caches_of_earlier_sources(tmp_path, monkeypatch) -> None:
    """Stale ``numba-*`` caches in the package's ``__pycache__`` go; shared cache folders are left alone."""
    import shutil

    from displacement_sim import _jit

    package = tmp_path / "pkg"
    package.mkdir()
    for name in _jit._SOURCES:
        shutil.copy(_jit._HERE / name, package / name)
    monkeypatch.setattr(_jit, "_HERE", package)
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    pycache = package / "__pycache__"
    for name in ("numba-0123456789abcdef", "numba-fedcba9876543210", "other"):
        (pycache / name).mkdir(parents=True)
        (pycache / name / "loop.nbi").write_bytes(b"x")
    current = _jit.cache_dir()
    assert current is not None and current.parent == pycache
    assert sorted(p.name for p in pycache.iterdir()) == sorted([current.name, "other"])
    (pycache / "numba-0000000000000000").mkdir()
    assert _jit.cache_dir() == current  # an existing cache: nothing is removed
    assert (pycache / "numba-0000000000000000").exists()
    # a shared cache folder keeps other versions' caches
    shared = tmp_path / "shared"
    (shared / "displacement-sim-0123456789abcdef").mkdir(parents=True)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(shared))
    assert _jit.cache_dir().parent == shared
    assert (shared / "displacement-sim-0123456789abcdef").exists()


@njit
def _exp_calls(x, out):
    """``exp`` as compiled code calls it (compiled here, after the package's binding)."""
    for i in range(x.size):
        out[i] = math.exp(x[i])


def test_compiled_code_calls_glibcs_current_exp_with_the_same_bits() -> None:
    """numba's own binding of ``exp`` (a compatibility wrapper) and ours give the same bits, edge cases included."""
    from numba import _helperlib

    from displacement_sim import _jit

    current, bound = _jit.libm_version("exp", b"GLIBC_2.29"), dict(_jit.LIBM_BOUND)
    if current is None:
        assert bound == {}
        pytest.skip("not glibc 2.29 or later: numba's own binding is kept")
    assert _jit.LIBM_FUNCTIONS == ("exp",)
    assert bound == {"exp": current}
    assert llvm.address_of_symbol("exp") == current != _helperlib.c_helpers["exp"]
    rng = np.random.default_rng(3)
    edges = [0.0, -0.0, 1.0, -1.0, 709.78, 709.79, -708.4, -745.13, -745.14, 1e-310, -1e-310, 1e308, -1e308]
    edges += [np.inf, -np.inf, np.nan, -np.nan]
    x = np.concatenate([edges, rng.uniform(-750.0, 750.0, 3000), rng.normal(0.0, 3.0, 3000)])
    compiled = np.empty(x.size)
    _exp_calls(x, compiled)
    numbas_own = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double)(_helperlib.c_helpers["exp"])
    expected = np.array([numbas_own(v) for v in x])
    assert compiled.tobytes() == expected.tobytes()
    # the edges were reached: overflow, underflow to zero, subnormal results, NaN
    assert np.isinf(compiled).any() and (compiled == 0).any() and np.isnan(compiled).any()
    assert ((compiled > 0) & (compiled < np.finfo(float).tiny)).any()
