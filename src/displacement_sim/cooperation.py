"""Intelligence, investigations, coordination and succession (DESIGN.md section 3, steps 7-9).

Pure functions on arrays with any leading shape ``L``: the Mesa model passes
``L = ()`` (its agencies' and networks' rows stacked), the vectorized engine
``L = (R,)``. Agencies are indexed ``0..A-1`` in country-code order (the
tie-break order); networks by slot. The state of these submodels is one
:class:`CoopState`; each week both engines gather the intelligence, then call
:func:`investigate` and :func:`succession`, in that order. The Mesa model gathers it
with :func:`gather_intel`; the vectorized engine passes :func:`intel_inputs` to
``kernel.trade``, whose pass over each row runs the same row function, and then
calls :func:`apply_shocks`.

Coordination modes are small separate functions registered in
:data:`COORDINATION`: each says which networks an agency may open a case on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import float64, int64, njit, void

from . import mechanics as mx
from ._jit import B2, B3, CACHE, F1, F2, F3, F4, I1, I2, I3, c_args, c_ordered, typed_loop
from .rows import aligned_zeros, at, built_once, per_row
from .schema import Scenario

__all__ = [
    "COORDINATION",
    "CoopParams",
    "CoopState",
    "apply_shocks",
    "coop_params",
    "gather_intel",
    "initial_coop_state",
    "intel_by_agency",
    "intel_inputs",
    "investigate",
    "investigation_read_terms",
    "investigation_reads",
    "succession",
    "succession_reads",
]

PENDING_WEEKS = 53  # ring buffer of shared intel in transit (delay_weeks <= 52)
SHARED_LANDED_MIN = 0.1  # decayed loads landed in a country for it to count as involved
INVESTIGATION_COLUMNS = ("open", "duration", "success", "shock")
SUCCESSION_COLUMNS = ("succeed", "enter", "load_kg", "loads_per_week", "risk_aversion", "home", "hvt")


@dataclass(frozen=True)
class CoopParams:
    """Parameters of steps 7-9 in one phase (agency arrays in country-code order)."""

    codes: tuple[str, ...]
    port_agency: np.ndarray  # (P,) agency index of each port, -1 where no agency
    port_onehot: np.ndarray  # (P, A)
    case_units: np.ndarray  # (A,)
    open_rate: np.ndarray  # (A,)
    dur_weeks: np.ndarray  # (A,)
    sigma: np.ndarray  # (A,)
    share: float
    delay_weeks: int
    requests_per_case: float
    gain_seizure: float
    gain_case: float
    gain_home: float
    evidence_weight: float
    decay: float
    gamma: float
    tip_gamma: float
    tip_shelf_weeks: float
    coordination: str
    conflict_penalty: float
    register_lag_weeks: int
    jit_setup_weeks: int
    jit_uplift: float
    jit_duration_factor: float
    nexus_weights: np.ndarray  # (3,) loads, home, evidence
    psi: float
    lag_weeks: int
    entry_rate: float
    memory: float
    shocks: tuple[tuple[int, int, float, float, bool], ...]  # (week, agency index, share, level, action day)

    @property
    def n_agencies(self) -> int:
        return len(self.codes)

    @property
    def tip_weight(self) -> float:
        """Perishable tips: ``max(0, 1 - delay / shelf)`` of a tip arrives before the container."""
        return max(0.0, 1.0 - self.delay_weeks / self.tip_shelf_weeks)


def coop_params(s: Scenario) -> CoopParams:
    """The cooperation parameters of one phase."""
    codes = tuple(s.enforcement.agencies)
    index = {c: i for i, c in enumerate(codes)}
    port_agency = np.array([index.get(p.country, -1) for p in s.ports.values()], dtype=np.int64)
    onehot = np.zeros((len(port_agency), len(codes)))
    for i, a in enumerate(port_agency):
        if a >= 0:
            onehot[i, a] = 1.0
    ag = list(s.enforcement.agencies.values())
    ex, hvt, intel, succ = s.enforcement.info_exchange, s.enforcement.hvt, s.intel, s.succession
    return CoopParams(
        codes=codes,
        port_agency=port_agency,
        port_onehot=onehot,
        case_units=np.array([a.case_units for a in ag], dtype=np.int64),
        open_rate=np.array([a.open_rate for a in ag], dtype=float),
        dur_weeks=np.array([a.dur_weeks for a in ag], dtype=float),
        sigma=np.array([a.sigma for a in ag], dtype=float),
        share=ex.share,
        delay_weeks=ex.delay_weeks,
        requests_per_case=ex.requests_per_case,
        gain_seizure=intel.gain_seizure,
        gain_case=intel.gain_case,
        gain_home=intel.gain_home,
        evidence_weight=intel.evidence_weight,
        decay=intel.decay,
        gamma=intel.gamma,
        tip_gamma=intel.tip_gamma,
        tip_shelf_weeks=intel.tip_shelf_weeks,
        coordination=hvt.coordination,
        conflict_penalty=hvt.conflict_penalty,
        register_lag_weeks=hvt.register_lag_weeks,
        jit_setup_weeks=hvt.jit_setup_weeks,
        jit_uplift=hvt.jit_uplift,
        jit_duration_factor=hvt.jit_duration_factor,
        nexus_weights=np.array([hvt.nexus_loads, hvt.nexus_home, hvt.nexus_evidence], dtype=float),
        psi=succ.psi,
        lag_weeks=succ.lag_weeks,
        entry_rate=succ.entry_rate,
        memory=s.behaviour.memory,
        shocks=tuple((sh.week, index[sh.agency], sh.share_networks, sh.level, sh.action_day) for sh in s.shocks),
    )


@dataclass
class CoopState:
    """State of steps 7-9 (leading shape L; A agencies, N slots)."""

    intel: np.ndarray  # (L, A, N) intel in [0, 1]
    pending: np.ndarray  # (L, PENDING_WEEKS, A, N) shared gains in transit, by arrival week
    case_on: np.ndarray  # (L, A, N) an agency's case on a network is open
    case_joint: np.ndarray  # (L, A, N) the case is a joint team's
    t_case_start: np.ndarray  # (L, A, N) week opened (-1 none)
    t_case_end: np.ndarray  # (L, A, N) week it ends and is resolved
    t_case_active: np.ndarray  # (L, A, N) week investigative work starts (after a joint team's set-up)
    landed: np.ndarray  # (L, A, N) loads landed in each agency's ports, decaying like evidence
    home_agency: np.ndarray  # (L, N) agency index of the network's home country (-1: elsewhere)
    t_dismantled: np.ndarray  # (L, N) week dismantled (-1: never / refilled)
    vacant: np.ndarray  # (L, N) empty slot waiting for an entrant
    capacity0: np.ndarray  # (L, N) capacity of the initial network, kg/week (for lost capacity)


def home_index(home: np.ndarray, codes: tuple[str, ...]) -> np.ndarray:
    """Agency index of each home country code (-1 where no agency)."""
    out = np.full(np.shape(home), -1, dtype=np.int64)
    for i, c in enumerate(codes):
        out[np.asarray(home) == c] = i
    return out


def initial_coop_state(cp: CoopParams, lead: tuple[int, ...], n: int, home: np.ndarray, capacity0: np.ndarray):
    """Zero intel, no cases, every slot alive."""
    a = cp.n_agencies
    z = np.zeros((*lead, a, n))
    return CoopState(
        intel=z.copy(),
        pending=aligned_zeros((*lead, PENDING_WEEKS, a, n)),  # the largest array of a batch: on huge pages
        case_on=np.zeros((*lead, a, n), dtype=bool),
        case_joint=np.zeros((*lead, a, n), dtype=bool),
        t_case_start=np.full((*lead, a, n), -1, dtype=np.int64),
        t_case_end=np.full((*lead, a, n), -1, dtype=np.int64),
        t_case_active=np.full((*lead, a, n), -1, dtype=np.int64),
        landed=z.copy(),
        home_agency=home_index(home, cp.codes),
        t_dismantled=np.full((*lead, n), -1, dtype=np.int64),
        vacant=np.zeros((*lead, n), dtype=bool),
        capacity0=np.asarray(capacity0, dtype=float).copy(),
    )


# --- step 5 input: intelligence-led detection ----------------------------------------------------


def _coop_row(cp: CoopParams, rows: int, name: str) -> np.ndarray:
    """``cp``'s number ``name`` as an array ``(rows,)`` for the compiled loops, built once per ``cp`` and row count.

    Also ``sigma`` ``(rows, A)``, ``open_rate_<a>`` (agency ``a``'s rate) and ``tip``, the
    partners' tip coefficient multiplied in the order of the equation: ``(tip_gamma w_tip) share``.
    """

    def build() -> np.ndarray:
        if name == "sigma":
            return per_row(cp.sigma, rows, cp.n_agencies)
        if name.startswith("open_rate_"):
            return per_row(cp.open_rate[..., int(name.removeprefix("open_rate_"))], rows)
        if name == "tip":
            return per_row(cp.tip_gamma, rows) * cp.tip_weight * per_row(cp.share, rows)
        return per_row(getattr(cp, name), rows)

    return built_once(cp, ("coop_row", rows, name), build)


def intel_by_agency(cp: CoopParams, intel: np.ndarray) -> np.ndarray:
    """``G[a, n] = min(1, gamma I[a, n] + tip_gamma w_tip share sum_{b != a} I[b, n])``, shape ``(L, A + 1, N)``.

    ``w_tip = max(0, 1 - delay / shelf)``: the share of a partner's tip that arrives before
    the container. The extra last row is zeros: the term of ports with no agency (index -1).
    A view of a C-ordered ``(L, N, A + 1)`` array, the layout ``kernel.trade`` reads.
    """
    lead, (n_agencies, n_net) = intel.shape[:-2], intel.shape[-2:]
    rows = math.prod(lead)
    gamma, tip = _coop_row(cp, rows, "gamma"), _coop_row(cp, rows, "tip")
    out = np.empty((rows, n_net, n_agencies + 1))
    _intel_term_rows(*c_args((intel.reshape(rows, n_agencies, n_net), gamma, tip, out), (out,)))
    return np.swapaxes(out.reshape(*lead, n_net, n_agencies + 1), -1, -2)


@typed_loop(void(*c_ordered((F3, F1, F1, F3))), cache=CACHE, nogil=True)
def _intel_term_rows(intel, gamma, tip, out):
    """:func:`intel_by_agency` per row and network: the partners' intel is the others' sum, added in code order.

    The same order as numpy's ``sum`` over the agency axis of ``(L, A, N)`` for any ``N > 1``
    (and for ``A < 8``: with a single network and eight agencies or more numpy would sum pairwise).
    """
    n_rows, n_agencies, n_net = intel.shape
    for r in range(n_rows):
        for n in range(n_net):
            total = intel[r, 0, n] if n_agencies else 0.0
            for a in range(1, n_agencies):
                total += intel[r, a, n]
            for a in range(n_agencies):
                out[r, n, a] = min(1.0, gamma[r] * intel[r, a, n] + tip[r] * (total - intel[r, a, n]))
            out[r, n, n_agencies] = 0.0


# --- step 7: intelligence -----------------------------------------------------------------------------


def gather_intel(
    cp: CoopParams,
    st: CoopState,
    week: int,
    seized: np.ndarray,
    loads: np.ndarray,
    alive: np.ndarray,
    u_shock: np.ndarray,
) -> None:
    """Intel gains from seizures and active cases, exchange through the delay line, decay, shocks.

    ``seized`` and ``loads`` are this week's counts per (network, port), shape ``(L, N, P)``.
    Own gain ``g = min(1, gain_seizure x seizures in own ports + gain_case x active case
    + gain_home x based in the agency's country)``;
    a share of it reaches every partner ``delay_weeks`` later (a gain made in week t is
    usable in week t + delay); ``I <- d + (1 - d) min(1, g + received)`` with ``d = (1 - mu) I``.
    """
    rows, n_net = math.prod(st.intel.shape[:-2]), st.intel.shape[-1]
    seized, loads = (np.reshape(x, (rows, n_net, -1)) for x in (seized, loads))
    _intel_rows(seized, loads, np.asarray(cp.port_agency, dtype=np.int64), *intel_inputs(cp, st, week, alive))
    apply_shocks(cp, st, week, alive, u_shock)


def intel_inputs(cp: CoopParams, st: CoopState, week: int, alive: np.ndarray) -> tuple:
    """The arguments of :func:`_intel_rows` after the seizures, loads and ports' agencies, as rows (views of the state).

    ``kernel.trade`` takes them to gather the intelligence in its own pass over each row
    (step 7 without shocks); :func:`gather_intel` passes them to :func:`_intel_rows`.
    ``intel``, ``landed`` and ``pending`` are made C-ordered first, so the views are updated in place.
    """
    lead, (n_agencies, n_net) = st.intel.shape[:-2], st.intel.shape[-2:]
    rows = math.prod(lead)
    for name in ("intel", "landed", "pending"):
        setattr(st, name, np.ascontiguousarray(getattr(st, name)))
    return (
        st.case_on.reshape(rows, n_agencies, n_net),
        st.t_case_active.reshape(rows, n_agencies, n_net),
        np.reshape(alive, (rows, n_net)),
        st.home_agency.reshape(rows, n_net),
        st.intel.reshape(rows, n_agencies, n_net),
        st.pending.reshape(rows, PENDING_WEEKS, n_agencies, n_net),
        (week + cp.delay_weeks) % PENDING_WEEKS,
        week % PENDING_WEEKS,
        week,
        *(_coop_row(cp, rows, k) for k in ("gain_seizure", "gain_case", "gain_home", "share", "decay")),
        st.landed.reshape(rows, n_agencies, n_net),
        _coop_row(cp, rows, "memory"),
    )


def no_intel(rows: int, n_net: int) -> tuple:
    """:func:`intel_inputs` of a world without agencies: nothing to gather."""
    a = np.zeros((rows, 0, n_net))
    return (
        a.astype(bool),
        a.astype(np.int64),
        np.ones((rows, n_net), dtype=bool),
        np.full((rows, n_net), -1, dtype=np.int64),
        a,
        np.zeros((rows, PENDING_WEEKS, 0, n_net)),
        0,
        0,
        0,
        *(np.zeros(rows) for _ in range(5)),
        a.copy(),
        np.zeros(rows),
    )


def apply_shocks(cp: CoopParams, st: CoopState, week: int, alive: np.ndarray, u_shock: np.ndarray) -> None:
    """The week's intelligence shocks (a leak, a cracked phone network) and their action days."""
    for s_week, agency, share, level, action_day in cp.shocks:
        if s_week == week:
            hit = alive & (u_shock[..., agency, :] < share)
            st.intel[..., agency, :] = np.where(
                hit, np.maximum(st.intel[..., agency, :], level), st.intel[..., agency, :]
            )
            if action_day:  # open cases on the affected networks conclude now, on the new evidence
                due = hit & st.case_on[..., agency, :] & (week >= st.t_case_active[..., agency, :])
                own_row = (np.arange(cp.n_agencies) == agency)[:, None]
                partners = st.case_joint & st.case_joint[..., agency : agency + 1, :]  # members of its joint cases
                rows = st.case_on & due[..., None, :] & (own_row | partners)
                st.t_case_end = np.where(rows, week, st.t_case_end)


INTEL_TYPES = (
    B3, I3, B2, I2, F3, F4, int64, int64, int64,  # cases, networks, intel, pending, slots, week
    F1, F1, F1, F1, F1, F3, F1,  # gains, share, decay; landed, memory
)  # fmt: skip


@njit(cache=CACHE, nogil=True, inline="always")
def _intel_row(
    r, by_agency, case_on, t_active, alive, home, intel, pending, slot, now, week,
    gain_seizure, gain_case, gain_home, share, decay, landed, memory, own,
):  # fmt: skip
    """Step 7 without shocks for the networks of row ``r``, per agency (``intel``, ``pending`` updated in place).

    ``by_agency`` ``(N, >= A, 2)`` holds each network's loads and seizures this week in each
    agency's ports (:func:`_agency_counts`); ``own`` is a scratch array ``(A + 1, N)``: each
    agency's own gain on each network, then their total (added in agency order).
    Also the loads landed in each agency's ports, decaying like evidence: ``landed <- memory x landed + loads``
    (in place). Each cell of ``intel`` and ``landed`` is read before it is written, and by no other cell.
    The loops run agency by agency along the networks (the arrays' last axis), each with few arrays.
    """
    n_agencies, n_net = intel.shape[1], intel.shape[2]
    total = own[n_agencies]
    total[:] = 0.0
    w, gs, gc, gh = memory[r], gain_seizure[r], gain_case[r], gain_home[r]
    for a in range(n_agencies):
        for n in range(n_net):
            landed[r, a, n] = w * landed[r, a, n] + by_agency[n, a, 0]
        for n in range(n_net):
            working = case_on[r, a, n] and week >= t_active[r, a, n]
            domestic = alive[r, n] and home[r, n] == a
            own[a, n] = min(1.0, gs * by_agency[n, a, 1] + gc * working + gh * domestic)
        for n in range(n_net):
            total[n] += own[a, n]
    s, keep = share[r], 1.0 - decay[r]
    for a in range(n_agencies):
        for n in range(n_net):
            pending[r, slot, a, n] += s * (total[n] - own[a, n])
    for a in range(n_agencies):
        for n in range(n_net):
            received = pending[r, now, a, n]
            pending[r, now, a, n] = 0.0
            decayed = intel[r, a, n] * keep
            intel[r, a, n] = decayed + (1.0 - decayed) * min(1.0, own[a, n] + received)


@njit(cache=CACHE, nogil=True, inline="always")
def _agency_counts(r, seized, loads, port_agency, by_agency):
    """Row ``r``'s loads and seizures in each agency's ports, added in port order (whole numbers: exact).

    ``seized`` and ``loads`` are counts per (network, port); columns past the ports are not read.
    """
    by_agency[:] = 0.0
    for n in range(seized.shape[1]):
        for p in range(port_agency.size):
            a = port_agency[p]
            if a >= 0:
                by_agency[n, a, 0] += loads[r, n, p]
                by_agency[n, a, 1] += seized[r, n, p]


@typed_loop(void(F3, F3, I1, *INTEL_TYPES), cache=CACHE, nogil=True)
def _intel_rows(
    seized, loads, port_agency, case_on, t_active, alive, home, intel, pending, slot, now, week,
    gain_seizure, gain_case, gain_home, share, decay, landed, memory,
):  # fmt: skip
    """:func:`gather_intel` without shocks, per row (:func:`_agency_counts`, then :func:`_intel_row`)."""
    by_agency, own = np.empty((intel.shape[2], intel.shape[1], 2)), np.empty((intel.shape[1] + 1, intel.shape[2]))
    for r in range(intel.shape[0]):
        _agency_counts(r, seized, loads, port_agency, by_agency)
        _intel_row(
            r, by_agency, case_on, t_active, alive, home, intel, pending, slot, now, week,
            gain_seizure, gain_case, gain_home, share, decay, landed, memory, own,
        )  # fmt: skip


# --- step 8: investigations ----------------------------------------------------------------------------


def nexus(cp: CoopParams, st: CoopState) -> np.ndarray:
    """Eurojust criteria as a weighted mean of three shares: loads landed, home, evidence (intel)."""
    return _nexus_and_shared(cp, st)[0]


def _nexus_and_shared(cp: CoopParams, st: CoopState) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nexus` ``(L, A, N)`` and the shared targets ``(L, N)``, in one compiled pass.

    A shared target: its loads land in, or its members live in, at least two agencies'
    countries. "Land in" means a decaying count of recent loads above ``SHARED_LANDED_MIN``,
    so a network that stopped using a country's ports stops being that country's target
    after a while (the same rule decides which partners may join a joint team,
    :func:`_form_joint_teams`).
    """
    lead, (n_agencies, n_net) = st.intel.shape[:-2], st.intel.shape[-2:]
    rows = math.prod(lead)
    out, shared = np.empty((rows, n_agencies, n_net)), np.empty((rows, n_net), dtype=np.bool_)
    args = (
        st.landed.reshape(rows, n_agencies, n_net),
        st.intel.reshape(rows, n_agencies, n_net),
        st.home_agency.reshape(rows, n_net),
        np.asarray(cp.nexus_weights, dtype=np.float64),
        SHARED_LANDED_MIN,
        out,
        shared,
    )
    _nexus_rows(*c_args(args, (out, shared)))
    return out.reshape(st.intel.shape), shared.reshape(st.home_agency.shape)


@njit(cache=CACHE, nogil=True, inline="always")
def _nexus_cell(landed, intel, home, w, r, a, n):
    """Agency ``a``'s nexus to network ``n`` of row ``r``: ``(w0 landed share + w1 home + w2 evidence share) / sum w``.

    A share is 0 when its total over agencies is 0; totals add agencies in code order.
    Every nexus the model uses is computed here (whole arrays in :func:`_nexus_rows`,
    single cells in :func:`_open_rows`), so the two give the same bits.
    """
    total_w = w[0] + w[1] + w[2]
    if total_w == 0:
        return 0.0
    landed_total, intel_total = 0.0, 0.0
    for b in range(intel.shape[1]):
        landed_total += landed[r, b, n]
        intel_total += intel[r, b, n]
    landed_share = landed[r, a, n] / landed_total if landed_total > 0 else 0.0
    evidence = intel[r, a, n] / intel_total if intel_total > 0 else 0.0
    at_home = 1.0 if home[r, n] == a else 0.0
    return (w[0] * landed_share + w[1] * at_home + w[2] * evidence) / total_w


@njit(cache=CACHE, nogil=True, inline="always")
def _shared_cell(landed, home, landed_min, r, n):
    """Network ``n`` of row ``r`` is a shared target: loads landed above ``landed_min`` in, or home in, two agencies."""
    involved = 0
    for a in range(landed.shape[1]):
        involved += landed[r, a, n] > landed_min or home[r, n] == a
    return involved >= 2


@typed_loop(void(*c_ordered((F3, F3, I2, F1, float64, F3, B2))), cache=CACHE, nogil=True)
def _nexus_rows(landed, intel, home, w, landed_min, out, shared):
    """Per (row, network): each agency's nexus (:func:`_nexus_cell`) and whether it is shared (:func:`_shared_cell`)."""
    n_rows, n_agencies, n_net = intel.shape
    for r in range(n_rows):
        for n in range(n_net):
            shared[r, n] = _shared_cell(landed, home, landed_min, r, n)
            for a in range(n_agencies):
                out[r, a, n] = _nexus_cell(landed, intel, home, w, r, a, n)


def _known_partner_case(cp: CoopParams, st: CoopState, a: int, week: int) -> np.ndarray:
    """A partner's case on the network that shows in the shared register (it lags ``register_lag_weeks``)."""
    visible = st.case_on & (st.t_case_start <= week - cp.register_lag_weeks)
    others = np.delete(visible, a, axis=-2)
    return others.any(axis=-2)


@dataclass(frozen=True)
class ModeContext:
    """What a coordination mode may look at when agency ``a`` considers opening cases."""

    cp: CoopParams
    st: CoopState
    a: int
    week: int
    nexus: np.ndarray | None  # (L, A, N); None unless the mode is in READS_NEXUS
    shared: np.ndarray | None  # (L, N) shared targets; None unless the mode is in READS_NEXUS


def mode_independent(ctx: ModeContext) -> np.ndarray:
    """Both countries may run cases on the same network."""
    return np.ones(ctx.st.home_agency.shape, dtype=bool)


def mode_deconfliction(ctx: ModeContext) -> np.ndarray:
    """No case where the register shows a partner's case."""
    return ~_known_partner_case(ctx.cp, ctx.st, ctx.a, ctx.week)


def _best_placed(ctx: ModeContext) -> np.ndarray:
    """Whether agency ``a`` has the largest nexus (ties: most loads landed, then country-code order)."""
    key = ctx.nexus + 1e-9 * ctx.st.landed / (1.0 + ctx.st.landed.sum(axis=-2, keepdims=True))
    best = np.argmax(key, axis=-2)
    return best == ctx.a


def mode_best_placed(ctx: ModeContext) -> np.ndarray:
    """As deconfliction; on a shared target only the country with the larger nexus opens a case."""
    return mode_deconfliction(ctx) & (~ctx.shared | _best_placed(ctx))


def mode_joint_team(ctx: ModeContext) -> np.ndarray:
    """As deconfliction; cases on shared targets become joint teams (see :func:`_open_cases`)."""
    return mode_deconfliction(ctx)


COORDINATION: dict[str, Callable[[ModeContext], np.ndarray]] = {
    "independent": mode_independent,
    "deconfliction": mode_deconfliction,
    "best_placed": mode_best_placed,
    "joint_team": mode_joint_team,
}
# The modes whose rule reads ``ctx.nexus`` and ``ctx.shared`` (computed for every network, so only for them);
# :func:`_open_rows` computes the nexus of the networks where a case may open itself.
READS_NEXUS = frozenset({"best_placed"})


def _take_first(want: np.ndarray, priority: np.ndarray, free: np.ndarray | int) -> np.ndarray:
    """The ``free`` wanted networks of highest priority (lowest key; ties by slot), last axis networks.

    Rows that want no more than they have free take all they want; in the others the
    lowest keys are picked one by one (:func:`_take_first_rows`).
    """
    n = want.shape[-1]
    rows = math.prod(want.shape[:-1])
    out = np.empty(want.shape, dtype=bool)
    _take_first_rows(
        np.require(want, bool, ["C", "W"]).reshape(rows, n),
        np.require(np.broadcast_to(priority, want.shape), np.float64, ["C", "W"]).reshape(rows, n),
        np.require(np.broadcast_to(free, want.shape[:-1]), np.int64, ["C", "W"]).reshape(rows),
        out.reshape(rows, n),
    )
    return out


@njit(cache=CACHE, nogil=True, inline="always")
def _take_first_row(want, priority, free, out):
    """One row of :func:`_take_first_rows`."""
    n = want.size
    count = 0
    for j in range(n):
        out[j] = want[j]
        count += want[j]
    if count <= free:
        return
    out[:] = False
    for _ in range(free):
        best = -1
        for j in range(n):
            if want[j] and not out[j] and (best < 0 or priority[j] < priority[best]):
                best = j
        out[best] = True


@typed_loop(void(B2, F2, I1, B2), cache=CACHE, nogil=True)
def _take_first_rows(want, priority, free, out):
    """Per row: all wanted if they fit, else the ``free`` wanted with the lowest key (the lowest slot on ties)."""
    for r in range(want.shape[0]):
        _take_first_row(want[r], priority[r], free[r], out[r])


_OPEN_TYPES = (
    B2, B2, B2, B3, F3, F3, I2, F1, float64,  # allowed, alive, hvt; case_on, intel, landed, home; weights, landed_min
    int64, int64, F1, F2,  # agency, its units, open rate, draws
    B2, B2,  # outputs: opened, opened on shared targets
)  # fmt: skip


_OPEN_UNIFORMS = (12,)  # the draws: read where they lie in the week's block (any strides)


@typed_loop(void(*c_ordered(_OPEN_TYPES, _OPEN_UNIFORMS)), cache=CACHE, nogil=True)
def _open_rows(allowed, alive, hvt, case_on, intel, landed, home, w, landed_min, a, units, rate, u, opened, shared):
    """Per row: the networks on which agency ``a`` opens a case this week, and which of them are shared targets.

    A case may open on a live high-value target where ``a`` has no case and the mode
    allows one (``allowed``); there the hazard ``1 - exp(-rate I nexus)`` (the nexus of
    these cells only, :func:`_nexus_cell`) and the draw ``u < hazard``. Of those wanted, the
    free units' worth (``units`` less ``a``'s open cases, at least 0) with the lowest key
    ``u / hazard`` (:func:`_take_first_row`). ``shared``: opened and a shared target (:func:`_shared_cell`).

    Most draws are far above the hazard; those are skipped before the nexus and ``exp``
    are computed, with the same outcome (the key is read only where a case is wanted).
    The bound: with non-negative weights, loads and intel the nexus is at most 1 in
    floating point too (every rounding is monotone), so ``rate I nexus <= rate I``; and
    ``1 - exp(-x) <= x``, computed within ``2^-52`` (``exp`` is accurate to 1 ulp), so
    ``u >= rate I + 1e-15`` means ``u >= hazard``.
    """
    n = allowed.shape[1]
    want, priority = np.empty(n, dtype=np.bool_), np.empty(n)
    for r in range(allowed.shape[0]):
        busy = 0
        for j in range(n):
            busy += case_on[r, a, j]
            want[j], priority[j] = False, 0.0
            if allowed[r, j] and alive[r, j] and hvt[r, j] and not case_on[r, a, j]:
                if u[r, j] >= rate[r] * intel[r, a, j] + 1e-15:
                    continue  # no case (see the bound above)
                hazard = 1.0 - math.exp(-rate[r] * intel[r, a, j] * _nexus_cell(landed, intel, home, w, r, a, j))
                want[j] = u[r, j] < hazard
                priority[j] = u[r, j] / (hazard if hazard > 0 else 1.0)
        _take_first_row(want, priority, max(units - busy, 0), opened[r])
        for j in range(n):
            shared[r, j] = opened[r, j] and _shared_cell(landed, home, landed_min, r, j)


def _resolve(cp: CoopParams, st: CoopState, week: int, u_success: np.ndarray, alive: np.ndarray, ev: dict) -> None:
    """Cases ending this week succeed (dismantling the network) or fail; partners' cases are compromised.

    Success probability ``sigma (1 - w + 2 w I)`` (the evidence held, ``w = evidence_weight``;
    a joint team holds its members' pooled evidence ``1 - prod(1 - I)``),
    times ``jit_uplift`` for a joint team, or times ``1 - conflict_penalty`` while another
    country runs its own case on the network. Agencies
    resolve in code order, so a tie goes to the first; a joint case is resolved once, by its
    lowest-coded member, and closes in every member's row. ``alive`` is updated in place.
    """
    lead, (n_agencies, n_net) = st.case_on.shape[:-2], st.case_on.shape[-2:]
    rows = math.prod(lead)
    for name in ("case_on", "case_joint", "t_dismantled"):  # C order, so the reshapes below are views
        setattr(st, name, np.ascontiguousarray(getattr(st, name)))
    live = np.ascontiguousarray(alive).reshape(rows, n_net)
    counts = {k: np.zeros((rows, n_agencies)) for k in ("compromised", "dismantled")}
    joint_weeks = np.zeros((rows, 2))  # dismantled by joint teams, weeks to dismantle
    args = (
        st.case_on.reshape(rows, n_agencies, n_net),
        st.case_joint.reshape(rows, n_agencies, n_net),
        st.t_case_start.reshape(rows, n_agencies, n_net),
        st.t_case_end.reshape(rows, n_agencies, n_net),
        st.intel.reshape(rows, n_agencies, n_net),
        st.t_dismantled.reshape(rows, n_net),
        live,
        np.reshape(u_success, (rows, n_agencies, n_net)),
        week,
        *(_coop_row(cp, rows, k) for k in ("jit_uplift", "conflict_penalty", "evidence_weight", "sigma")),
        counts["compromised"],
        counts["dismantled"],
        joint_weeks,
    )
    written = (*args[:2], *args[5:7], *args[-3:])  # cases, dismantled, alive, the counts
    _resolve_rows(*c_args(args, written, _RESOLVE_UNIFORMS))
    alive[...] = live.reshape(alive.shape)
    ev["compromised"] += counts["compromised"].reshape(ev["compromised"].shape)
    ev["dismantled"] += counts["dismantled"].reshape(ev["dismantled"].shape)
    ev["dismantled_joint"] += joint_weeks[:, 0].reshape(ev["dismantled_joint"].shape)
    ev["weeks_to_dismantle"] += joint_weeks[:, 1].reshape(ev["weeks_to_dismantle"].shape)


_RESOLVE_UNIFORMS = (7,)  # the draws: read where they lie in the week's block (any strides)
_RESOLVE_TYPES = (B3, B3, I3, I3, F3, I2, B2, F3, int64, F1, F1, F1, F2, F2, F2, F2)


@typed_loop(void(*c_ordered(_RESOLVE_TYPES, _RESOLVE_UNIFORMS)), cache=CACHE, nogil=True)
def _resolve_rows(
    case_on, case_joint, t_start, t_end, intel, t_dismantled, alive, u_success, week,
    uplift, penalty, weight, sigma, compromised, dismantled, joint_weeks,
):  # fmt: skip
    """:func:`_resolve` per row: agencies in code order, each network's column on its own."""
    n_rows, n_agencies, n_net = case_on.shape
    closing = np.empty(n_agencies, dtype=np.bool_)
    for r in range(n_rows):
        for a in range(n_agencies):
            for n in range(n_net):
                if not (case_on[r, a, n] and t_end[r, a, n] == week):
                    continue  # not ending this week
                joint = case_joint[r, a, n]
                follower = False  # a joint case is resolved by its lowest-coded member
                for b in range(a):
                    follower = follower or (joint and case_joint[r, b, n])
                if follower:
                    continue
                others_on = False
                for b in range(n_agencies):
                    if b != a and case_on[r, b, n] and not case_joint[r, b, n]:
                        others_on = True
                factor = uplift[r] if joint else (1.0 - penalty[r] if others_on else 1.0)
                held = intel[r, a, n]
                if joint:  # a joint team works on the pooled evidence of its members: 1 - prod(1 - I)
                    keep = 1.0
                    for b in range(n_agencies):
                        keep *= 1.0 - intel[r, b, n] if case_joint[r, b, n] else 1.0
                    held = 1.0 - keep
                evidence = 1.0 - weight[r] + 2.0 * weight[r] * held
                success = alive[r, n] and u_success[r, a, n] < min(1.0, sigma[r, a] * factor * evidence)
                earlier_joint = False
                for b in range(n_agencies):
                    closing[b] = b == a or (joint and case_joint[r, b, n])
                    hit = success and case_on[r, b, n] and not closing[b]
                    # a compromised joint case counts once (with its lowest-coded member)
                    if hit and not (case_joint[r, b, n] and earlier_joint):
                        compromised[r, b] += 1.0
                    earlier_joint = earlier_joint or case_joint[r, b, n]
                    if closing[b] or hit:
                        case_on[r, b, n] = False
                        case_joint[r, b, n] = False
                if success:
                    dismantled[r, a] += 1.0
                    joint_weeks[r, 0] += joint
                    joint_weeks[r, 1] += week - t_start[r, a, n]
                    alive[r, n] = False
                    t_dismantled[r, n] = week


def _open_cases(
    cp: CoopParams,
    st: CoopState,
    week: int,
    u_open: np.ndarray,
    u_dur: np.ndarray,
    alive: np.ndarray,
    hvt: np.ndarray,
    ev: dict,
) -> None:
    """Agencies in code order open cases while they have free units (hazard ∝ intel x nexus).

    Durations are geometric with mean ``dur_weeks``; a national case on a shared target
    lasts ``round(requests_per_case x delay_weeks)`` weeks longer (waiting for the partner's
    answers); a joint team needs no requests but starts after ``jit_setup_weeks``.
    The choice runs in one compiled pass per agency (:func:`_open_rows`); the durations
    and the state are then set on the few new cases only.
    """
    rows, n_net, n_agencies = math.prod(alive.shape[:-1]), alive.shape[-1], cp.n_agencies
    rule = COORDINATION[cp.coordination]
    nx, shared = _nexus_and_shared(cp, st) if cp.coordination in READS_NEXUS else (None, None)
    joint_mode = cp.coordination == "joint_team"
    # a national case on a cross-border target waits for the partner's answers
    waiting = round(cp.requests_per_case * cp.delay_weeks)
    weights = np.asarray(cp.nexus_weights, dtype=np.float64)
    for a in range(n_agencies):
        opened, opened_shared = np.empty(alive.shape, dtype=bool), np.empty(alive.shape, dtype=bool)
        args = (
            np.reshape(rule(ModeContext(cp, st, a, week, nx, shared)), (rows, n_net)),
            np.reshape(alive, (rows, n_net)),
            np.reshape(hvt, (rows, n_net)),
            *(np.reshape(x, (rows, n_agencies, n_net)) for x in (st.case_on, st.intel, st.landed)),
            np.reshape(st.home_agency, (rows, n_net)),
            weights,
            SHARED_LANDED_MIN,
            a,
            int(cp.case_units[a]),
            _coop_row(cp, rows, f"open_rate_{a}"),
            np.reshape(u_open[..., a, :], (rows, n_net)),
            opened.reshape(rows, n_net),
            opened_shared.reshape(rows, n_net),
        )
        _open_rows(*c_args(args, args[-2:], _OPEN_UNIFORMS))
        ev["cases_opened"][..., a] += opened.sum(axis=-1)
        new = np.nonzero(opened)  # index tuple over (L, N) of the new cases
        if new[-1].size == 0:
            continue
        if joint_mode:
            before = st.case_on.copy()
            joint = _form_joint_teams(cp, st, a, opened_shared)
            enlisted = np.nonzero(st.case_on & ~before)  # (lead..., agency, slot) of the partners it enlisted
        # durations of the new cases only (partners enlisted in a joint team share its network's duration)
        u_new = u_dur[..., a, :][new]
        dur = mx.geometric_from_uniform(u_new, cp.dur_weeks[a])
        dur = np.where(opened_shared[new], dur + waiting, dur)
        start_work = np.full(dur.shape, week, dtype=np.int64)
        if joint_mode:
            joint_new = joint[new]
            jit_duration = mx.geometric_from_uniform(u_new, cp.dur_weeks[a] * cp.jit_duration_factor)
            dur = np.where(joint_new, cp.jit_setup_weeks + jit_duration, dur)
            start_work = np.where(joint_new, week + cp.jit_setup_weeks, week)
        own = (*new[:-1], np.full(new[-1].shape, a), new[-1])  # (lead..., agency, slot) of a's new cases
        _start_cases(st, own, week, week + dur, start_work)
        if joint_mode:  # the partners' cases end with the network's
            end = np.zeros(opened.shape, dtype=np.int64)
            end[new] = week + dur
            _start_cases(st, enlisted, week, end[(*enlisted[:-2], enlisted[-1])], week + cp.jit_setup_weeks)
            st.case_joint[..., a, :] |= joint


def _start_cases(st: CoopState, cells: tuple[np.ndarray, ...], week: int, end, active) -> None:
    """Open the cases at ``cells`` (indices in ``(L, A, N)``): started now, ending ``end``, working from ``active``."""
    st.case_on[cells] = True
    st.t_case_start[cells] = week
    st.t_case_end[cells] = end
    st.t_case_active[cells] = active


def _form_joint_teams(cp: CoopParams, st: CoopState, a: int, candidates: np.ndarray) -> np.ndarray:
    """Turn agency ``a``'s new cases on shared targets into joint teams with the involved partners.

    Every partner country involved in the target (its loads land there, or its members live
    there) that has a free unit joins, in code order; a joint case takes one unit in each
    member country.
    """
    joint = np.zeros_like(candidates)
    for b in range(cp.n_agencies):
        if b == a:
            continue
        free_b = np.maximum(cp.case_units[b] - st.case_on[..., b, :].sum(axis=-1), 0)
        involved = (st.landed[..., b, :] > SHARED_LANDED_MIN) | (st.home_agency == b)
        possible = candidates & involved & ~st.case_on[..., b, :]
        take = _take_first(possible, np.zeros(possible.shape), free_b)
        st.case_on[..., b, :] |= take
        st.case_joint[..., b, :] |= take
        joint |= take
    return joint


def investigation_read_terms(
    cp: CoopParams, st: CoopState, week: int, alive: np.ndarray, hvt: np.ndarray
) -> dict[str, np.ndarray]:
    """Why steps 7-8 read a network slot's investigation uniforms this week: one mask ``(L, N)`` per reader.

    Taken before :func:`apply_shocks` and :func:`investigate`, from the state they start from:

    - ``shock``: live networks, in a week with a shock (:func:`apply_shocks`);
    - ``targets``: live high-value targets. A case opens only on one (:func:`_open_rows`;
      the duration is read for the new cases), and a case's success draw is read only
      while its network is live (:func:`_resolve`), so the cases ending this week, action
      days included, are on these slots too: a slot's cases are cleared when a new
      network takes it (:func:`reset_slots`). Dismantling only ever takes networks out,
      so the networks live at each read are among those live now.
    """
    return {"shock": alive & any(shock[0] == week for shock in cp.shocks), "targets": alive & hvt}


def investigation_reads(cp: CoopParams, st: CoopState, week: int, alive: np.ndarray, hvt: np.ndarray) -> np.ndarray:
    """The network slots ``(L, N)`` whose uniforms of the week's investigation block steps 7-8 read, or more.

    A slot's uniforms are its cells for every agency and column of the block ``(L, A, N,
    len(INVESTIGATION_COLUMNS))``; the slots are those of :func:`investigation_read_terms`.
    The vectorized engine computes only these (:meth:`pcg64.SkipStreams.read_slots`), the
    Mesa model draws the block whole; a cell read outside them would be NaN, and the
    engines' equivalence tests would fail.
    """
    return np.logical_or.reduce(list(investigation_read_terms(cp, st, week, alive, hvt).values()))


def investigate(
    cp: CoopParams, st: CoopState, week: int, u: np.ndarray, alive: np.ndarray, hvt: np.ndarray
) -> dict[str, np.ndarray]:
    """Step 8: resolve ending cases, count duplicated case-weeks, open new cases.

    ``u`` is the week's block ``(L, A, N, len(INVESTIGATION_COLUMNS))``; ``alive`` is
    updated in place (dismantled networks become inactive). Returns the week's events.
    """
    lead = alive.shape[:-1]
    a = cp.n_agencies
    ev = {
        "cases_opened": np.zeros((*lead, a)),
        "compromised": np.zeros((*lead, a)),
        "dismantled": np.zeros((*lead, a)),
        "dismantled_joint": np.zeros(lead),
        "weeks_to_dismantle": np.zeros(lead),
    }
    if a == 0:
        ev["duplicated"] = np.zeros(lead)
        ev["case_weeks"] = np.zeros((*lead, a))
        ev["unit_weeks"] = np.zeros((*lead, a))
        return ev
    _resolve(cp, st, week, u[..., 2], alive, ev)
    _open_cases(cp, st, week, u[..., 0], u[..., 1], alive, hvt, ev)
    rows = math.prod(lead)
    duplicated, case_weeks, unit_weeks = np.empty(rows), np.empty((rows, a)), np.empty((rows, a))
    args = st.case_on.reshape(rows, a, -1), st.case_joint.reshape(rows, a, -1), duplicated, case_weeks, unit_weeks
    _count_cases_rows(*c_args(args, args[2:]))
    ev["duplicated"] = duplicated.reshape(lead)
    ev["case_weeks"] = case_weeks.reshape((*lead, a))
    ev["unit_weeks"] = unit_weeks.reshape((*lead, a))
    return ev


@typed_loop(void(*c_ordered((B3, B3, F1, F2, F2))), cache=CACHE, nogil=True)
def _count_cases_rows(case_on, case_joint, duplicated, case_weeks, unit_weeks):
    """Per row, the cases open after step 8 (whole numbers, so exact in any order).

    ``duplicated``: national cases on a network beyond the first, summed over networks;
    ``case_weeks``: a joint case is one case (counted with its lowest-coded member) that
    uses a unit in each country, counted in ``unit_weeks``.
    """
    n_rows, n_agencies, n_net = case_on.shape
    for r in range(n_rows):
        duplicated[r] = 0.0
        case_weeks[r, :] = 0.0
        unit_weeks[r, :] = 0.0
        for n in range(n_net):
            single = 0
            joint_below = False  # a lower-coded agency is in a joint case on the network
            for a in range(n_agencies):
                on, joint = case_on[r, a, n], case_joint[r, a, n]
                single += on and not joint
                case_weeks[r, a] += on and not (joint and joint_below)
                unit_weeks[r, a] += on
                joint_below = joint_below or joint
            duplicated[r] += max(single - 1, 0)


# --- step 9: succession and entry ----------------------------------------------------------------------


def succession(
    cp: CoopParams, st: CoopState, week: int, u: np.ndarray, alive: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Which slots get a successor (after ``lag_weeks``, probability ``psi``) or an entrant this week.

    ``u`` is the week's block ``(L, N, len(SUCCESSION_COLUMNS))``. A slot whose network was
    dismantled is refilled by a successor with the same home, or else left vacant; a vacant
    slot receives an entrant with probability ``entry_rate`` each week. Returns
    ``(successor, entrant)`` masks; the caller draws their attributes with :func:`new_networks`.
    """
    due = _succession_due(cp, st, week, alive)
    successor = due & (u[..., 0] < at(cp.psi, alive.ndim))
    st.vacant |= due & ~successor
    entrant = st.vacant & ~due & (u[..., 1] < at(cp.entry_rate, alive.ndim))
    st.vacant &= ~entrant
    return successor, entrant


def _succession_due(cp: CoopParams, st: CoopState, week: int, alive: np.ndarray) -> np.ndarray:
    """Slots whose network was dismantled ``lag_weeks`` ago or more and that are not yet decided."""
    return ~alive & ~st.vacant & (st.t_dismantled >= 0) & (week >= st.t_dismantled + cp.lag_weeks)


def succession_reads(cp: CoopParams, st: CoopState, week: int, alive: np.ndarray) -> np.ndarray:
    """The network slots ``(L, N)`` whose uniforms of the week's succession block step 9 reads, or more.

    :func:`succession` reads a slot's draws only where it is due for a successor or
    vacant, and :func:`new_networks` only those of the new networks, which are among
    them. ``alive`` is the one :func:`succession` gets. The vectorized engine computes
    only these slots of the block (:meth:`pcg64.SkipStreams.read_slots`), the Mesa model
    draws it whole; a cell read outside them would be NaN, and the engines' equivalence
    tests would fail.
    """
    return _succession_due(cp, st, week, alive) | st.vacant


def new_networks(u: np.ndarray, net, successor: np.ndarray, old_home: np.ndarray) -> dict[str, np.ndarray]:
    """Attributes of successors and entrants from the succession block (successors keep the home).

    ``net`` is the plan's :class:`~displacement_sim.params.NetworkParams`, its per-row
    numbers (if any) already aligned with the first axis of ``u``.
    """
    from .kernel import initial_networks

    attrs = initial_networks(u[..., 2:], net)
    attrs["home"] = np.where(successor, old_home, attrs["home"])
    return attrs


def reset_slots(cp: CoopParams, st: CoopState, new: np.ndarray, home: np.ndarray) -> None:
    """A new network in the slot: no intel on it, no cases, nothing landed, not dismantled.

    Works on the index list of the new slots (rare events), not on whole arrays.
    """
    idx = np.nonzero(new)
    lead, slot = idx[:-1], idx[-1]
    every = slice(None)
    st.intel[(*lead, every, slot)] = 0.0
    st.pending[(*lead, every, every, slot)] = 0.0
    st.landed[(*lead, every, slot)] = 0.0
    st.case_on[(*lead, every, slot)] = False
    st.case_joint[(*lead, every, slot)] = False
    st.t_dismantled[idx] = -1
    st.home_agency[idx] = home_index(np.asarray(home)[idx], cp.codes)
