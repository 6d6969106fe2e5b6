"""numpy's PCG64 in compiled code (``pcg64``): the same uniforms as numpy, at every position.

The vectorized engine reads only the uniforms of its shipment blocks that loads use and
jumps over the rest; these tests hold it to numpy's numbers, drawn one by one, jumped
with numpy's own ``advance``, and block by block as the Mesa engine draws them.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from displacement_sim import pcg64
from displacement_sim.streams import Stream, generator

keys = st.tuples(st.integers(0, 2**63 - 1), st.integers(0, 10_000), st.integers(0, 10_000), st.sampled_from(Stream))


@njit
def _jumped(state, table, k):
    return pcg64.jump(state[0], state[1], state[2], state[3], table, k)


def _at(state: np.ndarray, high_low: tuple[int, int]) -> np.ndarray:
    return np.array([high_low[0], high_low[1], state[2], state[3]], dtype=np.uint64)


@settings(max_examples=30, deadline=None)
@given(key=keys, skip=st.integers(0, 300), n=st.integers(1, 200))
def test_uniforms_are_numpys_from_any_position(key, skip: int, n: int) -> None:
    g = generator(*key)
    g.random(skip)  # anywhere in the stream, not only at its start
    state = pcg64.state_of(g)
    got = pcg64.uniforms(state, n)
    np.testing.assert_array_equal(got, g.random(n))
    np.testing.assert_array_equal(state, pcg64.state_of(g))  # and the state moved on as numpy's did
    assert np.all((got >= 0.0) & (got < 1.0))


@settings(max_examples=30, deadline=None)
@given(key=keys, strides=st.lists(st.integers(0, 2**70), min_size=1, max_size=4))
def test_jumps_are_numpys_advance(key, strides: list[int]) -> None:
    """Any stride, up to beyond 2**64, lands where numpy's ``PCG64.advance`` does."""
    table = pcg64.jump_table(strides)
    g = generator(*key)
    start = pcg64.state_of(g)
    for k, stride in enumerate(strides):
        ref = generator(*key)
        ref.bit_generator.advance(stride)
        np.testing.assert_array_equal(_at(start, _jumped(start, table, k)), pcg64.state_of(ref))


def test_every_stride_of_a_block_lands_on_numpys_next_uniform() -> None:
    width = 71
    g = generator(5, 2, 9, Stream.SHIPMENTS)
    table, start = pcg64.jump_table(range(width + 1)), pcg64.state_of(g)
    ahead = g.random(width + 1)
    assert np.array_equal(table[0], [0, 1, 0, 0])  # zero steps: A = 1, C = 0
    for k in range(width + 1):
        assert pcg64.uniforms(_at(start, _jumped(start, table, k)), 1)[0] == ahead[k]


def test_skip_streams_advance_a_week_of_blocks() -> None:
    gens = [generator(3, 0, r, Stream.SHIPMENTS) for r in range(3)]
    copies = [generator(3, 0, r, Stream.SHIPMENTS) for r in range(3)]
    streams = pcg64.SkipStreams(gens, blocks=4, width=9)
    for _week in range(3):
        for d, ref in enumerate(copies):
            block = ref.random((4, 9))  # the week's blocks, as the Mesa engine draws them
            np.testing.assert_array_equal(pcg64.uniforms(streams.states[d].copy(), 36).reshape(4, 9), block)
        streams.advance()
    streams.advance(2)
    for d, ref in enumerate(copies):
        ref.random(2 * 36)
        np.testing.assert_array_equal(streams.states[d], pcg64.state_of(ref))
    with pytest.raises(ValueError, match="only move forward"):
        streams.advance(-1)


def test_a_numpy_that_disagrees_is_refused() -> None:
    """The check run on construction compares the compiled uniforms with numpy's own."""
    g = generator(1, 0, 0, Stream.SHIPMENTS)
    other = pcg64.state_of(generator(1, 0, 1, Stream.SHIPMENTS))
    with pytest.raises(RuntimeError, match="PCG64 uniforms differ"):
        pcg64._check_against_numpy(other, g)
    before = g.bit_generator.state
    pcg64._check_against_numpy(pcg64.state_of(g), g)  # agrees, and leaves the generator where it was
    assert g.bit_generator.state == before


def test_other_bit_generators_are_refused() -> None:
    with pytest.raises(TypeError, match="PCG64 generator is needed, not Philox"):
        pcg64.state_of(np.random.Generator(np.random.Philox(1)))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(1, 6),
    outer=st.integers(1, 3),
    slots=st.integers(1, 7),
    width=st.integers(1, 5),
    density=st.floats(0.0, 1.0),
    weeks=st.integers(1, 4),
)
def test_read_slots_are_numpys_at_their_places(seed, rows, outer, slots, width, density, weeks) -> None:
    """The chosen slots of each row's weekly draw are numpy's numbers there; last week's other slots become NaN.

    The jump table covers one block of ``width``; a gap over several slots is jumped in
    several strides. Slots never read keep what the buffer held.
    """
    rng = np.random.default_rng(seed)
    n_streams = 3
    gens = [generator(seed, 0, d, Stream.INVESTIGATIONS) for d in range(n_streams)]
    streams = pcg64.SkipStreams(gens, outer * slots, width)
    copies = [generator(seed, 0, d, Stream.INVESTIGATIONS) for d in range(n_streams)]
    index = rng.integers(0, n_streams, rows)  # rows may share a stream
    out = np.full((rows, outer, slots, width), -1.0)
    stale = np.zeros((rows, slots), dtype=bool)
    ever = np.zeros((rows, slots), dtype=bool)
    for _week in range(weeks):
        need = rng.random((rows, slots)) < density
        streams.read_slots(index, need, out, stale)
        drawn = np.stack([g.random((outer, slots, width)) for g in copies])[index]  # as the Mesa engine draws them
        cells = np.broadcast_to(need[:, None, :, None], out.shape)
        np.testing.assert_array_equal(out[cells], drawn[cells])
        before = np.broadcast_to((ever & ~need)[:, None, :, None], out.shape)
        assert np.all(np.isnan(out[before]))  # read in an earlier week, not now: NaN
        never = np.broadcast_to((~ever & ~need)[:, None, :, None], out.shape)
        assert np.all(out[never] == -1.0)
        np.testing.assert_array_equal(stale, need)
        ever |= need
        streams.advance()


def test_read_slots_refuses_what_it_cannot_read() -> None:
    streams = pcg64.SkipStreams([generator(1, 0, 0, Stream.SUCCESSION)], 2, 3)
    out, need, stale = np.empty((2, 1, 2, 3)), np.ones((2, 2), bool), np.zeros((2, 2), bool)
    with pytest.raises(ValueError, match="cells for 2 rows"):
        streams.read_slots([0, 0], need, np.empty((2, 1, 2, 4)), stale)
    with pytest.raises(ValueError, match="C-ordered float64"):
        streams.read_slots([0, 0], need, np.empty((2, 1, 2, 3), dtype=np.float32), stale)
    with pytest.raises(ValueError, match="need and stale need the shape"):
        streams.read_slots([0, 0], np.ones((2, 3), bool), out, stale)
    with pytest.raises(ValueError, match="stream index out of range"):
        streams.read_slots([0, 1], need, out, stale)


def test_read_slots_jumps_long_gaps_with_a_short_table() -> None:
    """A jump table shorter than the gaps (``max_jump``): the gaps are jumped in several strides, same numbers."""
    gens = [generator(8, 0, d, Stream.INVESTIGATIONS) for d in range(2)]
    copies = [generator(8, 0, d, Stream.INVESTIGATIONS) for d in range(2)]
    streams = pcg64.SkipStreams(gens, 1, 2 * 50 * 3, max_jump=7)
    assert streams.jumps.shape == (8, 4)
    need = np.zeros((2, 50), dtype=bool)
    need[0, [0, 31, 49]] = need[1, [17]] = True
    out, stale = np.full((2, 2, 50, 3), -1.0), np.zeros((2, 50), dtype=bool)
    streams.read_slots([0, 1], need, out, stale)
    drawn = np.stack([g.random((2, 50, 3)) for g in copies])
    cells = np.broadcast_to(need[:, None, :, None], out.shape)
    np.testing.assert_array_equal(out[cells], drawn[cells])


def test_the_event_streams_jump_table_stays_short_for_large_networks() -> None:
    """The table of strides is built in Python integers for every group: capped, not one row per uniform."""
    from displacement_sim import vectorized

    keys = np.array([[0, 0], [0, 1]])
    blocks = vectorized._ReadSlots(1, keys, Stream.INVESTIGATIONS, (3, 20_000, 4))
    assert blocks.streams.jumps.shape[0] == vectorized.READ_SLOTS_MAX_JUMP + 1
