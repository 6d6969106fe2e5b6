"""numpy's PCG64 in compiled code, with jumps: the uniforms of a block that are read, and no others.

DESIGN.md section 5 fixes the consumption of each stream: a network's weekly shipment
block has ``1 + 2 L_max`` uniforms (the load count, then a port and a detection uniform
for each possible load), whatever the week brings. A network ships a few loads in a
week, so most of its block is never read. The vectorized engine therefore does not draw
the block: it reads the count, the port and detection uniforms of the loads actually
shipped, and jumps over the rest. The numbers are the same as numpy's
``Generator(PCG64(...)).random`` at the same positions of the stream, bit for bit (tested
against numpy, and the Mesa engine, which draws its blocks with numpy, agrees with the
vectorized engine to the bit), so the fixed consumption, common random numbers and
every stored result are unchanged.

numpy's PCG64 (O'Neill 2014, the XSL-RR output of a 128-bit LCG; numpy's
``random/src/pcg64/pcg64.h``): each step sets ``state = state * M + inc`` (mod
2**128) and returns ``rotr64(high ^ low, high >> 58)``; ``random()`` turns that into
``(x >> 11) * 2**-53``. ``k`` steps at once are ``state = A_k state + C_k inc`` with
``A_k = M**k`` and ``C_k = M**(k-1) + ... + M + 1`` (Brown 1994, "Random number
generation with arbitrary strides"): :func:`jump_table` precomputes them for the
strides a block needs, so a jump costs about two steps. The 64 x 64 -> 128-bit product
is one machine multiplication (an LLVM ``i128`` product, :func:`_mulhi`).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types, uint64, void
from numba.extending import intrinsic

from ._jit import B2, CACHE, F4, I1, U2, typed_loop

__all__ = ["MULTIPLIER", "SkipStreams", "jump_table", "state_of", "uniforms"]

MULTIPLIER = (2549297995355413924 << 64) + 4865540595714422341  # numpy's PCG_DEFAULT_MULTIPLIER_128
_MASK = (1 << 64) - 1
_MASK128 = (1 << 128) - 1
_M_HIGH, _M_LOW = MULTIPLIER >> 64, MULTIPLIER & _MASK
_TO_DOUBLE = 1.0 / 9007199254740992.0  # 2**-53, numpy's uint64 -> double in [0, 1)


@intrinsic
def _mulhi(typingctx, a, b):
    """The high 64 bits of the 128-bit product of two uint64 (one machine multiplication)."""
    sig = types.uint64(types.uint64, types.uint64)

    def codegen(context, builder, signature, args):
        wide = ir.IntType(128)
        product = builder.mul(builder.zext(args[0], wide), builder.zext(args[1], wide))
        return builder.trunc(builder.lshr(product, ir.Constant(wide, 64)), ir.IntType(64))

    return sig, codegen


@njit(inline="always")
def _muladd(ah, al, bh, bl, ch, cl):
    """``a * b + c`` mod 2**128, each as (high, low) uint64 halves."""
    high = _mulhi(al, bl) + ah * bl + al * bh
    low = al * bl
    out = low + cl
    carry = uint64(1) if out < low else uint64(0)
    return high + ch + carry, out


@njit(inline="always")
def step(sh, sl, ih, il):
    """One PCG64 step from state ``(sh, sl)`` with increment ``(ih, il)``: the new state and its uniform."""
    sh, sl = _muladd(sh, sl, uint64(_M_HIGH), uint64(_M_LOW), ih, il)
    x = sh ^ sl
    rot = sh >> uint64(58)
    x = (x >> rot) | (x << ((uint64(64) - rot) & uint64(63)))
    return sh, sl, (x >> uint64(11)) * _TO_DOUBLE


@njit(inline="always")
def jump(sh, sl, ih, il, table, k):
    """The state ``k`` steps on (``table``: :func:`jump_table`, ``k`` at most its last row)."""
    ah, al = _muladd(table[k, 0], table[k, 1], sh, sl, uint64(0), uint64(0))
    return _muladd(table[k, 2], table[k, 3], ih, il, ah, al)


def _power(k: int) -> tuple[int, int]:
    """``(A_k, C_k)``: ``k`` steps are ``state = A_k state + C_k inc`` (mod 2**128)."""
    a, c = 1, 0
    mult, plus = MULTIPLIER, 1
    while k:  # square and multiply over the bits of k (Brown 1994)
        if k & 1:
            a, c = (a * mult) & _MASK128, (c * mult + plus) & _MASK128
        plus = (plus * (mult + 1)) & _MASK128
        mult = (mult * mult) & _MASK128
        k >>= 1
    return a, c


def jump_table(strides: list[int] | range) -> np.ndarray:
    """Rows ``(A_k high, A_k low, C_k high, C_k low)`` for each ``k`` in ``strides``, uint64."""
    rows = [(a >> 64, a & _MASK, c >> 64, c & _MASK) for a, c in map(_power, strides)]
    return np.array(rows, dtype=np.uint64).reshape(-1, 4)


def state_of(generator: np.random.Generator) -> np.ndarray:
    """``(state high, state low, inc high, inc low)`` of a PCG64 generator, uint64."""
    st = generator.bit_generator.state
    if st["bit_generator"] != "PCG64":
        raise TypeError(f"a PCG64 generator is needed, not {st['bit_generator']}")
    s, inc = st["state"]["state"], st["state"]["inc"]
    return np.array([s >> 64, s & _MASK, inc >> 64, inc & _MASK], dtype=np.uint64)


@njit(cache=CACHE)
def _uniforms(state, out):
    sh, sl, ih, il = state[0], state[1], state[2], state[3]
    for i in range(out.size):
        sh, sl, out[i] = step(sh, sl, ih, il)
    state[0], state[1] = sh, sl


def uniforms(state: np.ndarray, n: int) -> np.ndarray:
    """The next ``n`` uniforms from ``state`` (updated in place): numpy's ``random(n)`` from that state."""
    out = np.empty(n)
    _uniforms(state, out)
    return out


class SkipStreams:
    """Distinct streams read block by block: each one's state at the start of the current block.

    A stream's weekly draw is ``blocks`` blocks of ``width`` uniforms (one block per network
    slot). The compiled reader takes ``states`` (one row per stream: :func:`state_of`) and
    ``jumps`` (:func:`jump_table` for strides 0 to ``width``) and reads what it needs of each
    block, jumping over the rest; :meth:`read_slots` does the same for chosen slots of
    each row's draw. :meth:`advance` then moves every stream to its next weekly draw. The
    numbers are numpy's, checked against the first generator when constructed.
    """

    def __init__(self, generators: list[np.random.Generator], blocks: int, width: int, max_jump: int | None = None):
        self.blocks, self.width = int(blocks), int(width)
        self.states = np.array([state_of(g) for g in generators], dtype=np.uint64).reshape(-1, 4)
        # strides 0 to width, or to max_jump: :meth:`read_slots` jumps longer gaps in several strides
        longest = self.width if max_jump is None else min(self.width, int(max_jump))
        self.jumps = jump_table(range(longest + 1))
        self._week = jump_table([self.blocks * self.width])
        if generators:
            _check_against_numpy(self.states[0], generators[0])

    def read_slots(self, index: np.ndarray, need: np.ndarray, out: np.ndarray, stale: np.ndarray) -> None:
        """Each row's weekly draw from stream ``index[row]``, as ``out`` ``(rows, outer, N, C)``, at the slots ``need``.

        The draw of ``blocks x width`` uniforms is read as ``outer`` blocks of ``N`` slots of ``C``
        uniforms (an investigation block: agencies, network slots, columns). For each
        slot ``n`` with ``need[row, n]``, its ``C`` uniforms in every outer block are computed
        (numpy's numbers at their places, jumping over the rest); the slots in ``stale``
        (those written by the last call) and not needed now are set to NaN, so a read of
        a slot not asked for cannot pass as a number; ``stale`` becomes ``need``. The
        streams stay where they are (:meth:`advance` moves them).
        """
        index = np.asarray(index, dtype=np.int64)
        rows, outer, n_slots, width = out.shape
        if outer * n_slots * width != self.blocks * self.width or len(index) != rows:
            raise ValueError(f"{out.shape} cells for {len(index)} rows of {self.blocks} x {self.width} uniforms")
        if not (out.dtype == np.float64 and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError("out needs to be writable C-ordered float64")
        if need.shape != (rows, n_slots) or stale.shape != (rows, n_slots) or not stale.flags.c_contiguous:
            raise ValueError(f"need and stale need the shape {(rows, n_slots)}")
        if rows and not 0 <= index.min() <= index.max() < len(self.states):
            raise ValueError(f"stream index out of range for {len(self.states)} streams")
        _read_slots(self.states, index, self.jumps, np.ascontiguousarray(need, dtype=np.bool_), out, stale)

    def advance(self, weeks: int = 1) -> None:
        """Move every stream on by ``weeks`` weekly draws (``blocks x width`` uniforms each)."""
        if weeks < 0:
            raise ValueError(f"streams only move forward: {weeks} weeks")
        for _ in range(weeks):
            _advance(self.states, self._week)


@typed_loop(void(U2, I1, U2, B2, F4, B2), cache=CACHE, nogil=True)
def _read_slots(states, index, jumps, need, out, stale):
    """:meth:`SkipStreams.read_slots`: each row's uniforms at its slots, in the order of the draw."""
    n_rows, outer, n_slots, width = out.shape
    stride = jumps.shape[0] - 1  # the longest jump in the table
    for r in range(n_rows):
        s = index[r]
        sh, sl, ih, il = states[s, 0], states[s, 1], states[s, 2], states[s, 3]
        at = 0  # the position of the state in the row's draw
        for o in range(outer):
            for n in range(n_slots):
                if need[r, n]:
                    gap = (o * n_slots + n) * width - at
                    while gap > 0:
                        k = min(gap, stride)
                        sh, sl = jump(sh, sl, ih, il, jumps, k)
                        gap -= k
                    for c in range(width):
                        sh, sl, out[r, o, n, c] = step(sh, sl, ih, il)
                    at = (o * n_slots + n + 1) * width
                elif stale[r, n]:
                    for c in range(width):
                        out[r, o, n, c] = np.nan
        for n in range(n_slots):
            stale[r, n] = need[r, n]


@njit(cache=CACHE)
def _advance(states, table):
    for d in range(states.shape[0]):
        states[d, 0], states[d, 1] = jump(states[d, 0], states[d, 1], states[d, 2], states[d, 3], table, 0)


def _check_against_numpy(state: np.ndarray, generator: np.random.Generator, n: int = 8) -> None:
    """Refuse to run if this numpy's PCG64 ``random`` is not the algorithm above (a future numpy could differ)."""
    probe = np.random.Generator(np.random.PCG64(0))
    probe.bit_generator.state = generator.bit_generator.state  # a copy: the caller's generator is not moved
    if not np.array_equal(uniforms(state.copy(), n), probe.random(n)):
        raise RuntimeError(
            f"numpy {np.__version__}'s PCG64 uniforms differ from displacement_sim.pcg64's: "
            "the vectorized engine would not reproduce the Mesa engine's streams"
        )
