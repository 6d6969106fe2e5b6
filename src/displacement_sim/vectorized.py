"""The vectorized engine: R replications of the model in one array pass.

The exact twin of :class:`displacement_sim.model.DisplacementModel`: the same
phases (``kernel``), the same equations (``mechanics``), the same keyed random
streams (``streams``), with state held as arrays of shape ``(R, N, P)``.
Replication ``r`` here equals the Mesa model run with ``replication=r``.

Step order of a week (DESIGN.md section 3), each phase a function below:

1. interventions: switch to the parameters of the phase in force;
2. allocation: each agency (or pooled joint unit) spreads its budget on its review weeks;
3. risk perception and 4. port choice, 5. shipments and detection (load by load),
   6. learning and insider access: ``kernel.trade``, one compiled pass per row through
   the same per-row functions as ``kernel.decide``, ``ship``, ``milieu_news`` and
   ``learn``, which the Mesa agents call phase by phase; the pass computes the
   shipment uniforms each network uses from its stream (``pcg64.SkipStreams``: numpy's
   numbers at their places in the week's block, without drawing the rest), unless
   ``ROWS_PER_DRAWN_STREAM`` rows or more share each stream (then each stream's blocks
   are drawn once and read by all its rows);
7. intelligence: gains, exchange through the delay line and decay in the same pass of
   ``kernel.trade``, right after each row ships (``cooperation._intel_row``, which the
   Mesa model reaches through ``gather_intel``); then the shocks (``cooperation.apply_shocks``);
8. investigations: cases resolve, coordination, new cases;
9. succession and entry (the uniforms of 8 and 9, like the shipments', are computed only
   for the network slots these steps read, ``cooperation.investigation_reads`` and
   ``succession_reads``, unless the rows' streams are drawn whole);
10. record (``kernel.week_record``, with the shipment sums ``kernel.trade`` took in its pass).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import cooperation as co
from . import kernel as kx
from .params import HISTORY_WEEKS, Params, RunPlan
from .pcg64 import SkipStreams
from .rows import aligned_zeros, take_rows
from .streams import Stream, generator, init_block_width, shipment_block_width

__all__ = ["VectorState", "row_keys", "simulate"]

WEEK_CHUNK = 13  # at most this many weeks of uniforms per generator call (same numbers as one call a week)
BLOCK_BYTES = 32 * 2**20  # and at most this much memory per stream's block
# Shipment streams are read without drawing their blocks (_ReadBlocks) unless this many rows or more share
# each stream (common random numbers). Reading costs each row about 1 + 2 x loads uniforms per network-week;
# a drawn block costs 1 + 2 L_max uniforms (71 in baseline.yaml) once per stream, and rows read it from the
# cache when it is small. Measured (trade's pass, 510 rows): reading 5% faster at 1 and 4 rows per stream,
# 2% at 16, 4% slower at 51 (10 streams' blocks: 0.45 MB); a whole run_batch of 300 took 0.82 of the time.
ROWS_PER_DRAWN_STREAM = 32
READ_SLOTS_MAX_JUMP = 1024  # longest stride of the event streams' jump table (4 ms to build; the baseline needs 640)
ROWS_PER_GROUP = 512  # rows stepped together: enough to amortise per-call costs (steps 3-6 run row by row)


@dataclass
class VectorState:
    """State of R replications (struct of arrays; first axis replications, then slots, then ports)."""

    m: np.ndarray  # (R, N) base load size, kg
    rate: np.ndarray  # (R, N) loads per week at full supply
    lam: np.ndarray  # (R, N) risk aversion
    home: np.ndarray  # (R, N) home country code
    hvt: np.ndarray  # (R, N) led by a high-value target
    alive: np.ndarray  # (R, N)
    seizures: np.ndarray  # (R, N, P) seizure evidence S
    exposure: np.ndarray  # (R, N, P) exposure E
    access: np.ndarray  # (R, N, P) insider access h in [0, 1]
    history: np.ndarray  # (R, HISTORY_WEEKS, P) seizures per port, ring buffer
    rates: np.ndarray  # (R, P) inspection rates in force
    extras: list[np.ndarray]  # per allocation unit: (R, n_ports_of_unit) extra inspections
    coop: co.CoopState  # intelligence, cases, succession (steps 7-9)


def row_keys(replications: np.ndarray | range, points: np.ndarray | int = 0) -> np.ndarray:
    """The stream keys ``(point, replication)`` of each batch row, shape ``(B, 2)``."""
    reps = np.asarray(replications, dtype=np.int64).reshape(-1)
    return np.stack([np.broadcast_to(np.asarray(points, dtype=np.int64), reps.shape), reps], axis=1)


def initial_state(plan: RunPlan, seed: int, keys: np.ndarray) -> VectorState:
    """Draw the initial networks of each row from its own keyed stream (``keys``: ``(point, replication)`` rows)."""
    n, n_ports = plan.n_slots, plan.params[0].n_ports
    u = np.stack(
        [generator(seed, int(k), int(r), Stream.INITIAL_NETWORKS).random((n, init_block_width())) for k, r in keys]
    )
    nets = kx.initial_networks(u, plan.networks)
    rows = len(keys)
    shape = (rows, n, n_ports)
    p0 = plan.params[0]
    return VectorState(
        m=nets["m"],
        rate=nets["rate"],
        lam=nets["lam"],
        home=nets["home"],
        hvt=nets["hvt"],
        alive=np.ones((rows, n), dtype=bool),
        seizures=aligned_zeros(shape),  # on whole huge pages when large (rows.aligned_empty)
        exposure=aligned_zeros(shape),
        access=aligned_zeros(shape),
        history=np.zeros((rows, HISTORY_WEEKS, n_ports)),
        rates=np.broadcast_to(p0.base_rate, (rows, n_ports)).copy(),
        extras=[np.zeros((rows, len(u_.ports))) for u_ in p0.units],
        coop=co.initial_coop_state(plan.coop[0], (rows,), n, nets["home"], nets["m"] * nets["rate"]),
    )


def _allocate(p: Params, st: VectorState, week: int, phase_start: bool) -> None:
    """Step 2: reallocate each unit on its review weeks (and whenever a new phase starts)."""
    lead = (st.rates.shape[0],)
    if phase_start:  # every unit reallocates now, so the list is rebuilt for this phase's units
        st.extras = [np.zeros((*lead, len(u.ports))) for u in p.units]
    changed = phase_start  # a new phase may change base rates even where no budget is reallocated
    for k, unit in enumerate(p.units):
        if kx.allocation_due(unit, week, phase_start):
            recent = kx.recent_seizures(st.history, week, unit.review_weeks)
            already = kx.placed_extra(p, st.extras[:k], lead)
            st.extras[k] = kx.allocate(p, unit, recent, st.rates, already)
            changed = True
    if changed:
        st.rates = kx.rates_from_extra(p, st.extras, lead)


def distinct_streams(seed: int, keys: np.ndarray, stream: Stream) -> tuple[np.ndarray, list[np.random.Generator]]:
    """Each row's index into the distinct streams of its keys, and their generators.

    Rows with the same key (common random numbers across sweep points) have the same
    stream: it is drawn once, and every row with that key reads it.
    """
    first: dict[tuple[int, int], int] = {}
    index = np.array([first.setdefault((int(k), int(r)), len(first)) for k, r in keys], dtype=np.int64)
    return index, [generator(seed, k, r, stream) for k, r in first]


class _Blocks:
    """Each row's weekly uniform blocks of one stream, drawn several weeks at a time.

    Drawing ``k`` weeks in one call gives the same numbers as ``k`` weekly calls; the
    number of weeks per draw is bounded so a block stays under ``BLOCK_BYTES``. Rows
    with the same stream key (sweep points on common random numbers) share one draw:
    :meth:`shared` hands out the distinct blocks and each row's index into them,
    :meth:`week` one block per row.
    """

    def __init__(self, seed: int, keys: np.ndarray, stream: Stream, shape: tuple[int, ...], weeks: int):
        self.index, self.gens = distinct_streams(seed, keys, stream)
        self.identity = len(self.gens) == len(keys)  # every row has its own stream (index is 0, 1, 2, ...)
        self.shape, self.weeks = shape, weeks
        per_week = max(len(self.gens) * int(np.prod(shape)) * 8, 1)
        self.chunk = int(max(1, min(WEEK_CHUNK, BLOCK_BYTES // per_week)))
        self.buffer: np.ndarray | None = None
        self.start = -1  # first week of the span in the buffer
        self.per_row: np.ndarray | None = None  # each row's block, when rows share streams

    def shared(self, week: int) -> tuple[np.ndarray, np.ndarray]:
        """The week's distinct blocks ``(D, *shape)`` and each row's index into them ``(rows,)``."""
        start = week - week % self.chunk
        if start != self.start:  # the first call in a new span of weeks draws it (weeks come in order)
            span = min(self.chunk, self.weeks - start)
            if self.buffer is None or self.buffer.shape[1] != span:
                self.buffer = np.empty((len(self.gens), span, *self.shape))
            for block, g in zip(self.buffer, self.gens, strict=True):  # same numbers as weekly draws
                g.random(out=block)
            self.start = start
        return self.buffer[:, week - start], self.index

    def week(self, week: int, need: Callable[[], np.ndarray] | None = None) -> np.ndarray:
        """The week's block of each row ``(rows, *shape)``, valid until the next call.

        A view of the draw when no row shares its stream; otherwise the shared blocks are
        copied into one preallocated buffer (fresh pages every week would cost more than the copy).
        ``need`` is not called: every cell is drawn (:class:`_ReadSlots` computes only the slots it names).
        """
        blocks, index = self.shared(week)
        if self.identity:
            return blocks
        if self.per_row is None:
            self.per_row = np.empty((len(index), *self.shape))
        # mode "clip": with ``out``, the default "raise" copies through a temporary buffer (4x slower
        # here); the indices are valid by construction
        return np.take(blocks, index, axis=0, out=self.per_row, mode="clip")


class _ReadBlocks:
    """Each row's weekly shipment blocks read where they are used, not drawn (:class:`pcg64.SkipStreams`).

    A network reads its block's load count and the two uniforms of each load it ships
    (a few of its ``1 + 2 L_max``); the compiled pass computes them from the stream's
    state at the week's blocks, the same numbers as :class:`_Blocks` would draw.
    :meth:`shared` has :class:`_Blocks`' signature: the streams at ``week`` and each row's index.
    """

    def __init__(self, seed: int, keys: np.ndarray, blocks: int, width: int):
        self.index, gens = distinct_streams(seed, keys, Stream.SHIPMENTS)
        self.streams, self.at = SkipStreams(gens, blocks, width), 0

    def shared(self, week: int) -> tuple[SkipStreams, np.ndarray]:
        """The streams at ``week``'s blocks (weeks come in order) and each row's index into them."""
        self.streams.advance(week - self.at)
        self.at = week
        return self.streams, self.index


class _ReadSlots:
    """Each row's weekly blocks of one stream, of which only the slots a step reads are computed.

    The investigation and succession blocks hold a few uniforms per network slot for events
    that touch few slots in a week (a case opening on a high-value target, a successor in a
    dismantled network's slot); drawing them whole was about 7% of a large batch's time.
    :meth:`week` takes the slots the step reads (``cooperation.investigation_reads``,
    ``succession_reads``) and computes their uniforms from the streams
    (:meth:`pcg64.SkipStreams.read_slots`), the same numbers as :class:`_Blocks` would draw,
    with NaN in the other slots.
    """

    def __init__(self, seed: int, keys: np.ndarray, stream: Stream, shape: tuple[int, ...]):
        self.index, gens = distinct_streams(seed, keys, stream)
        self.shape = shape  # (N, C) or (outer, N, C)
        # one block of the whole weekly draw, jumped in strides of at most READ_SLOTS_MAX_JUMP uniforms (the
        # table of strides is built in Python integers: one row per stride, for every group)
        self.streams = SkipStreams(gens, 1, int(np.prod(shape)), max_jump=READ_SLOTS_MAX_JUMP)
        self.at = 0
        self.buffer = np.full((len(keys), *shape), np.nan)  # every week's block, valid until the next call
        self.stale = np.zeros((len(keys), shape[-2]), dtype=bool)  # the slots of the buffer that hold numbers

    def week(self, week: int, need: Callable[[], np.ndarray]) -> np.ndarray:
        """The week's block of each row ``(rows, *shape)``, computed at the slots ``need()`` (weeks come in order)."""
        self.streams.advance(week - self.at)
        self.at = week
        rows, (n_slots, width) = len(self.index), self.shape[-2:]
        self.streams.read_slots(self.index, need(), self.buffer.reshape(rows, -1, n_slots, width), self.stale)
        return self.buffer


def _reads_streams(keys: np.ndarray) -> bool:
    """Whether rows compute the uniforms they read from their streams, or read blocks drawn whole.

    Drawn whole only when ``ROWS_PER_DRAWN_STREAM`` rows or more share each stream
    (common random numbers): each stream's block is then drawn once for all its rows.
    """
    return len(keys) < ROWS_PER_DRAWN_STREAM * len(np.unique(keys, axis=0))


class _Group:
    """Rows of a batch stepped together, week by week: their state, random streams and parameters."""

    def __init__(self, plan: RunPlan, seed: int, keys: np.ndarray):
        self.plan = plan
        self.st = initial_state(plan, seed, keys)
        n = plan.n_slots
        n_agencies = plan.coop[0].n_agencies
        width = shipment_block_width(plan.l_max)
        inv_shape = (n_agencies, n, len(co.INVESTIGATION_COLUMNS))
        succ_shape = (n, len(co.SUCCESSION_COLUMNS))
        self.shipments: _Blocks | _ReadBlocks
        self.investigations: _Blocks | _ReadSlots
        self.successions: _Blocks | _ReadSlots
        if _reads_streams(keys):  # read: the uniforms of the loads shipped, of the events' slots
            self.shipments = _ReadBlocks(seed, keys, n, width)
            self.investigations = _ReadSlots(seed, keys, Stream.INVESTIGATIONS, inv_shape)
            self.successions = _ReadSlots(seed, keys, Stream.SUCCESSION, succ_shape)
        else:  # many rows on each stream (common random numbers): each stream's blocks drawn once, read by all
            self.shipments = _Blocks(seed, keys, Stream.SHIPMENTS, (n, width), plan.weeks)
            self.investigations = _Blocks(seed, keys, Stream.INVESTIGATIONS, inv_shape, plan.weeks)
            self.successions = _Blocks(seed, keys, Stream.SUCCESSION, succ_shape, plan.weeks)
        self.trade_buffers: dict[str, np.ndarray] = {}  # kernel.trade's week arrays, kept from week to week

    def step(self, week: int, phase: int, phase_start: bool) -> dict[str, np.ndarray]:
        """Steps 2-10 of one week (the phase, step 1, is chosen by the caller); returns the week's record."""
        plan, st = self.plan, self.st
        p, cp = plan.params[phase], plan.coop[phase]
        # 2. allocation
        _allocate(p, st, week, phase_start)
        # 3-6. perception and choice, shipments and detection, learning: one compiled pass per row
        supply = float(plan.supply[week])
        i_q, t = p.detection_parts(st.rates)
        g = co.intel_by_agency(cp, st.coop.intel)
        g_net = np.swapaxes(g, -1, -2)  # (rows, networks, agencies + 1)
        u_ship, u_rows = self.shipments.shared(week)  # rows on common random numbers read one stream
        m_eff, mean_loads, loads, caught, totals = kx.trade(
            p,
            plan.a0,
            supply,
            st.lam,
            st.m,
            st.rate,
            st.seizures,
            st.exposure,
            st.access,
            st.alive,
            u_ship,
            plan.l_max,
            i_q,
            t,
            g_net,
            cp.port_agency,
            st.coop.home_agency,
            u_rows,
            co.intel_inputs(cp, st.coop, week, st.alive),  # 7. intelligence, in the same pass
            buffers=self.trade_buffers,  # loads and caught: this week's, rewritten next week
        )
        # after the pass, not before shipping as in the Mesa model: the loop never reads past
        # l_max load slots, and the error ends the run either way
        kx.check_load_bound(mean_loads, plan.lam_max)
        # 7. the intelligence shocks; 8. investigations
        active = st.alive.copy()  # the networks that traded this week
        u_inv = self.investigations.week(week, lambda: co.investigation_reads(cp, st.coop, week, st.alive, st.hvt))
        co.apply_shocks(cp, st.coop, week, st.alive, u_inv[..., 3])
        events = co.investigate(cp, st.coop, week, u_inv, st.alive, st.hvt)
        # 9. succession and entry
        m_week, rate_week = st.m.copy(), st.rate.copy()
        u_succ = self.successions.week(week, lambda: co.succession_reads(cp, st.coop, week, st.alive))
        successor, entrant = co.succession(cp, st.coop, week, u_succ, st.alive)
        _renew(plan, st, successor, entrant, u_succ)
        events["successors"] = successor.sum(axis=1).astype(float)
        events["entrants"] = entrant.sum(axis=1).astype(float)
        # 10. record
        rec = kx.week_record(
            p, cp, st.coop, supply, loads, caught, m_eff, m_week, rate_week, active, st.alive, st.rates, events, totals
        )
        st.history[:, week % HISTORY_WEEKS] = rec["seized_loads"][:, :-1]
        return rec


def simulate(
    plan: RunPlan,
    seed: int,
    replications: np.ndarray | range,
    recorder,
    point: int | np.ndarray = 0,
    rows_per_group: int | None = None,
) -> list[VectorState]:
    """Run the rows ``(point, replication)`` of ``plan`` as one batch, feeding ``recorder`` week by week.

    ``point`` is one sweep point for every row, or one per row (a batch of several
    points, whose plan is stacked by :func:`displacement_sim.rows.stack`). Rows are
    stepped in equal groups of at most ``rows_per_group`` (default ``ROWS_PER_GROUP``), each with
    its own state and streams; the recorder sees whole weeks.
    Returns each group's final state.
    """
    keys = row_keys(replications, point)
    n_groups = -(-len(keys) // int(rows_per_group or ROWS_PER_GROUP))
    size = -(-len(keys) // max(n_groups, 1))  # groups of equal size, at most rows_per_group
    groups = []
    for lo in range(0, len(keys), size):
        idx = np.arange(lo, min(lo + size, len(keys)))
        groups.append(_Group(take_rows(plan, idx), seed, keys[idx]))
    phase = -1
    for week in range(plan.weeks):
        # 1. interventions
        new_phase = plan.phase_at(week)
        phase_start = new_phase != phase
        phase = new_phase
        recs = [g.step(week, phase, phase_start) for g in groups]
        recorder.add(week, recs[0] if len(recs) == 1 else {k: np.concatenate([r[k] for r in recs]) for k in recs[0]})
    return [g.st for g in groups]


def _renew(plan: RunPlan, st: VectorState, successor: np.ndarray, entrant: np.ndarray, u: np.ndarray) -> None:
    """Put successors and entrants into their slots: new attributes, no insiders, prior beliefs."""
    new = successor | entrant
    if not new.any():
        return
    idx = np.nonzero(new)  # rare: work on the index list of the new slots
    net = take_rows(plan.networks, idx[0])  # per-row distribution numbers, one per new slot
    attrs = co.new_networks(u[idx], net, successor[idx], st.home[idx])
    for name in ("m", "rate", "lam", "home", "hvt"):
        getattr(st, name)[idx] = attrs[name]
    for name in ("seizures", "exposure", "access"):
        getattr(st, name)[idx] = 0.0
    st.alive[idx] = True
    co.reset_slots(plan.coop[0], st.coop, new, st.home)
