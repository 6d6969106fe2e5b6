"""The scenario schema: every parameter of the model, with its unit and source.

All defaults live here. Each field's description gives its unit and either a
public source (see ``docs/ODD.md`` and ``data/ports.yaml``) or the word
*assumed* with a plausible range. Unknown keys are errors everywhere.

Units: kilograms, thousand euro per kilogram (k EUR/kg), containers, weeks.
"""

from __future__ import annotations

import re
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticKnownError

__all__ = [
    "HVT",
    "Agency",
    "Behaviour",
    "Distribution",
    "Elsewhere",
    "Enforcement",
    "Hold",
    "InfoExchange",
    "Inputs",
    "Intel",
    "Intervention",
    "JointStrategy",
    "Networks",
    "Port",
    "Scenario",
    "Shock",
    "Succession",
]

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Field(ge=0.0)]
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
PORT_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")

PORT_KINDS = ("hub", "regional", "inland")
RULES = ("static", "reactive", "threat")


def _number_kind(annotation: Any) -> str | None:
    """``"int"`` or ``"float"`` for a number field (also when optional), else None."""
    if get_origin(annotation) is Annotated:
        return _number_kind(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        kinds = {_number_kind(a) for a in get_args(annotation) if a is not type(None)}
        return kinds.pop() if len(kinds) == 1 else None
    return {int: "int", float: "float"}.get(annotation)


class NumbersAreNumbers(BaseModel):
    """Base of scenario and experiment files: numbers read as pydantic reads them, with two exceptions.

    A number field refuses ``true``/``false`` (read as 1 and 0 otherwise: ``weeks: true``
    would be a one-week run), and a whole-number field refuses text (``week: "60"``).
    A number field takes text that reads as a number (YAML reads ``2e0`` as text).
    """

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool | str) and info.field_name in cls.model_fields:
            kind = _number_kind(cls.model_fields[info.field_name].annotation)
            if kind is not None and (isinstance(value, bool) or kind == "int"):
                raise PydanticKnownError(f"{kind}_type")  # type: ignore[arg-type]
        return value


class Strict(NumbersAreNumbers):
    """Base: unknown keys are errors, a loaded config is frozen, numbers are numbers (:class:`NumbersAreNumbers`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


class Port(Strict):
    """A seaport or inland terminal (DESIGN.md section 3, "Ports")."""

    name: str
    country: str = Field(description="ISO 3166-1 alpha-2 code, e.g. BE, NL, FR, DE")
    kind: Literal["hub", "regional", "inland"]
    cluster: str = Field(description="estuary or port system, e.g. scheldt, rhine_maas")
    teu_per_year: NonNeg | None = Field(None, description="container throughput, TEU/year")
    at_risk_per_week: float = Field(
        gt=0.0, description="containers/week arriving from source regions (mainly South America)"
    )
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    inspection_rate: Rate = Field(description="baseline share of at-risk containers physically inspected or scanned")
    q: NonNeg = Field(description="targeting quality: detection per load = inspection_rate * q (capped at 1)")
    c: Rate = Field(description="corruptibility: how easily insiders are recruited (0-1)")
    a: NonNeg = Field(description="trafficker's cost per kg at this port, k EUR/kg")
    buffer: list[str] = Field(default_factory=list, description="ports watched when this one hardens")
    via: str | None = Field(None, description="inland ports: seaport whose checks transit passes")
    transit_check: Rate = Field(0.0, description="inland ports: share of via-port checks met in transit")
    enabled: bool = True
    sources: dict[str, str] = Field(default_factory=dict, description="field -> public source")

    @field_validator("country")
    @classmethod
    def _country_code(cls, value: str) -> str:
        if not COUNTRY_RE.match(value):
            raise CrossFieldError(
                "", "not a country code", value, "a two-letter upper-case country code (ISO 3166-1) such as BE or NL"
            )
        return value

    @field_validator("sources")
    @classmethod
    def _sources_name_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(cls.model_fields))
        if unknown:
            from .errors import suggest

            hint = suggest(unknown[0], cls.model_fields)
            raise CrossFieldError(
                unknown[0],
                f"sources name an unknown port field{'; ' + hint if hint else ''}",
                unknown[0],
                "the port's field names: " + ", ".join(cls.model_fields),
            )
        return value


class Distribution(Strict):
    """A log-normal distribution given by its median and log-sd, clipped to [low, high].

    Clipped, not truncated: the probability mass beyond a bound sits on the bound.
    """

    median: float = Field(gt=0.0)
    sigma: NonNeg
    low: float = Field(gt=0.0)
    high: float = Field(gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> Distribution:
        if not self.low <= self.median <= self.high:
            raise CrossFieldError(
                "",
                "the bounds do not hold the median",
                {"low": self.low, "median": self.median, "high": self.high},
                "low <= median <= high",
            )
        return self


class Networks(Strict):
    """Trafficking networks: a fixed number of slots, attributes drawn at initialisation."""

    n_slots: int = Field(
        80,
        ge=1,
        le=100_000,
        description="network slots; 80 import networks use the BE/NL ports (port_facts.md: 40-150)",
    )
    load_kg: Distribution = Field(
        Distribution(median=60.0, sigma=2.2, low=5.0, high=5000.0),
        description=(
            "base load size m, kg: most finds under 100 kg, about a tenth over a tonne "
            "(crimesite, omroepbrabant); median 60 and sigma 2.2 give P(<100 kg)=0.59, P(>1 t)=0.10"
        ),
    )
    loads_per_week: Distribution = Field(
        Distribution(median=1.2, sigma=0.6, low=0.05, high=4.0),
        description="loads a network sends per week at full supply, so capacity K = m * rate; calibrated "
        "so Antwerp seizes 40-110 t/yr and Rotterdam 20-70 t/yr (port_facts.md); plausible median 0.6-2",
    )
    risk_aversion: Distribution = Field(
        Distribution(median=3.0, sigma=0.4, low=0.5, high=10.0),
        description="lam: weight on the loss of a seized load (1 = risk neutral); assumed, 1-6",
    )
    home: dict[str, NonNeg] = Field(
        default_factory=lambda: {"NL": 0.5, "BE": 0.3, "FR": 0.1, "DE": 0.1},
        description="relative weights of the networks' home countries (assumed; ~80% of Antwerp's "
        "cocaine is bound for NL, Dismark 2018)",
    )
    hvt_share: Rate = Field(0.2, description="share led by high-value targets (port_facts.md: 10-25 of 80 networks)")

    @field_validator("home")
    @classmethod
    def _home(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or sum(value.values()) <= 0:
            raise CrossFieldError(
                "", "needs at least one country with a positive weight", value, "e.g. {NL: 0.5, BE: 0.3}"
            )
        for code in value:
            if not COUNTRY_RE.match(code):
                raise CrossFieldError(
                    code, "not a country code", code, "two-letter upper-case country codes such as BE or NL"
                )
        return value


class Behaviour(Strict):
    """Traffickers' perception, choice and learning (DESIGN.md section 3, steps 3-6)."""

    margin: NonNeg = Field(
        25.0,
        description="k EUR/kg gained by a delivered kg: wholesale 25-35 k EUR minus buying 1-4 k EUR "
        "(ad.nl, nationaledrugmonitor.nl, Antwerp police)",
    )
    beta: NonNeg = Field(0.4, description="logit sensitivity per k EUR/kg; assumed, 0.1-1.0")
    nest_lambda: float = Field(
        0.6, gt=0.0, le=1.0, description="nested-logit dissimilarity within a cluster; assumed, 0.3-1"
    )
    phi: NonNeg = Field(
        3.0,
        description="size term, k EUR/kg per log at-risk container (cover, direct lines); calibrated to "
        "the hubs' share of seizures and near-zero seizures at Zeebrugge and Ostend; plausible 1-4",
    )
    setup: NonNeg = Field(2.0, description="extra cost of a port without insiders, k EUR/kg; assumed, 0.5-5")
    kappa: float = Field(
        0.5, ge=0.0, lt=1.0, description="share of detection insiders remove at full access; assumed 0-0.9"
    )
    prior_strength: float = Field(10.0, gt=0.0, description="b0: prior exposure, in loads; assumed, 2-50")
    memory: Rate = Field(0.98, description="w: weekly decay of seizure evidence and exposure; assumed, 0.9-0.995")
    omega: NonNeg = Field(0.5, description="weight of milieu news (others' seizures at a port); assumed, 0-1")
    access_growth: Rate = Field(
        0.1, description="g: weekly growth of insider access with use, times c_p; assumed, 0.02-0.3"
    )
    access_decay: Rate = Field(0.02, description="delta: weekly decay of unused insider access; assumed, 0.005-0.1")
    access_burn: Rate = Field(0.5, description="share of access lost after a seizure at that port; assumed, 0.2-1")
    zeta: NonNeg = Field(2.0, description="load splitting: m_eff = m (1 - zeta * perceived risk); assumed, 0-4")
    split_floor: float = Field(
        0.5, gt=0.0, le=1.0, description="smallest m_eff / m (loads split at most in two); assumed, 0.25-0.75"
    )


class Elsewhere(Strict):
    """The outside option 'elsewhere': other European entry points, West Africa, air."""

    detection: Rate = Field(
        0.1, description="share of loads seized elsewhere; EU-wide interception 5-25% (port_facts.md)"
    )
    cost: NonNeg = Field(4.0, description="k EUR/kg; assumed, 2-8 (longer routes, less routine logistics)")
    at_risk_per_week: float = Field(
        6000.0,
        gt=0.0,
        description="size of the other entry points in at-risk containers/week, for the size term; "
        "calibrated (plausible 2,000-10,000) so that about 40% of flow goes elsewhere "
        "(EU seizures 303 t in 2021, of which about half outside BE/NL, EUDA 2025)",
    )
    asc: float = Field(0.0, description="alternative-specific constant, k EUR/kg; assumed 0 (range -5 to 5)")


class Hold(Strict):
    """The outside option 'hold': not shipping this week."""

    utility: float = Field(
        34.0,
        description="k EUR/kg value of waiting, on the scale of the ports' utilities; calibrated so about "
        "6% of supply is held back at baseline (assumed range 3-10%)",
    )


class Agency(Strict):
    """An enforcement agency of one country: a flexible budget of extra inspections."""

    budget: NonNeg = Field(0.0, description="extra inspections per week spread over the agency's ports (containers)")
    rule: Literal["static", "reactive", "threat"] = "threat"
    review_weeks: int = Field(4, ge=1, le=52, description="weeks between reallocations; assumed, 1-13")
    i_max: Rate = Field(0.5, description="highest inspection rate a port can absorb; assumed, 0.2-1")
    s0: float = Field(1.0, gt=0.0, description="pseudo-seizures added in reactive/threat weights")
    rho: float = Field(1.0, gt=0.0, le=1.0, description="reactive exponent (NarcoLogic); <= 1")
    floor: float = Field(0.01, gt=0.0, le=1.0, description="threat rule: lowest detection rate used to invert seizures")
    weights: dict[str, NonNeg] = Field(
        default_factory=dict,
        description="static rule: port -> weight; ports not listed get 0 (empty: weights = at-risk volume)",
    )
    kinds: list[Literal["hub", "regional", "inland"]] = Field(
        default_factory=lambda: ["hub", "regional", "inland"],
        description="kinds of own ports that receive the flexible budget",
    )
    case_units: int = Field(
        3,
        ge=0,
        le=1000,
        description="investigations into high-value-target networks the agency can run at once; assumed, "
        "1-10 for port-related HVT cases (HARC: 151-194 investigations a year, most not on HVTs)",
    )
    open_rate: NonNeg = Field(
        0.5, description="weekly case-opening hazard at full intel and full nexus; assumed, 0.1-2"
    )
    dur_weeks: float = Field(
        52.0,
        ge=1.0,
        description="mean case duration, weeks (geometric); 52 (26-104): Antwerp cases 13-16 months, "
        "DEA operations 17 months (port_facts.md)",
    )
    sigma: Rate = Field(0.3, description="probability a completed case dismantles the network; assumed 0.3 (0.15-0.5)")


class InfoExchange(Strict):
    """Exchange of intelligence between the agencies (DESIGN.md step 7)."""

    share: Rate = Field(
        0.5, description="share of each intel gain that reaches the partner; 0.5 (0.2-0.8), port_facts.md"
    )
    delay_weeks: int = Field(
        4,
        ge=0,
        le=52,
        description="weeks until a shared gain is usable by the partner; ordinary 4 (1-12), real time 0-1 "
        "(Directive 2023/977 deadlines; Benelux treaty in force 2023)",
    )
    requests_per_case: NonNeg = Field(
        3.0,
        description="requests to the partner a national case on a shared (cross-border) target makes, each "
        "waiting delay_weeks; assumed 1-6 (European Investigation Orders: 30+30 days to recognise, 90 to execute)",
    )


class HVT(Strict):
    """Strategy for high-value targets both countries may investigate (DESIGN.md step 8)."""

    coordination: Literal["independent", "deconfliction", "best_placed", "joint_team"] = Field(
        "independent", description="how the agencies coordinate cases on the same network"
    )
    conflict_penalty: Rate = Field(
        0.3, description="loss of success probability while both countries run cases on one network; assumed 0.1-0.5"
    )
    register_lag_weeks: int = Field(
        4, ge=0, le=52, description="weeks before a partner's new case shows in the shared register; assumed 0-12"
    )
    jit_setup_weeks: int = Field(
        8, ge=0, le=52, description="set-up delay of a joint investigation team, weeks; 4-12 (Eurojust JIT reports)"
    )
    jit_uplift: float = Field(
        1.2, ge=0.0, le=3.0, description="success multiplier of a joint team; 1.2 (1.0-1.4), assumed"
    )
    jit_duration_factor: float = Field(
        0.8, gt=0.0, le=2.0, description="duration multiplier of a joint team; 0.8 (0.6-1.0), assumed"
    )
    nexus_loads: NonNeg = Field(1.0, description="nexus weight of where the network's loads land (Eurojust 2016)")
    nexus_home: NonNeg = Field(1.0, description="nexus weight of where its members live (Eurojust 2016)")
    nexus_evidence: NonNeg = Field(1.0, description="nexus weight of where the evidence (intel) is (Eurojust 2016)")


class JointStrategy(Strict):
    """A joint strategy between agencies (DESIGN.md section 3, step 2).

    Members share the threat picture (each sees the others' seizures) and a joint
    objective (a port's estimated flow also raises the weight of its buffer ports,
    by ``anticipation``). Each agency still spends its own budget on its own ports.
    A pooled ``budget`` (shared mobile scanners) is spent on top, over the members'
    ports of ``kinds``, as one pool and by ``rule``.
    """

    members: list[str] = Field(
        default_factory=list, description="agency codes in the joint strategy, e.g. [BE, NL]; empty = none"
    )
    anticipation: NonNeg = Field(
        0.5,
        description="share of a port's estimated flow added to the weight of its buffer ports "
        "(anticipating displacement); assumed, 0-1",
    )
    budget: NonNeg = Field(
        0.0, description="pooled extra inspections per week (shared mobile scanners) over the members' ports"
    )
    kinds: list[Literal["hub", "regional", "inland"]] = Field(
        default_factory=lambda: ["regional", "inland"], description="kinds of the members' ports the pool serves"
    )
    rule: Literal["static", "reactive", "threat"] = Field("threat", description="allocation rule of the pool")
    review_weeks: int = Field(4, ge=1, le=52, description="weeks between reallocations of the pool")
    i_max: Rate = Field(0.5, description="highest inspection rate the pool may lift a port to")


# country names users may write instead of the code of an agency (enforcement.belgium -> BE)
_COUNTRY_NAMES = {
    "belgium": "BE",
    "belgie": "BE",
    "belgique": "BE",
    "netherlands": "NL",
    "the netherlands": "NL",
    "nederland": "NL",
    "holland": "NL",
    "france": "FR",
    "germany": "DE",
    "deutschland": "DE",
}


class Enforcement(Strict):
    """Agencies keyed by country code (``enforcement.BE``), plus the joint strategy."""

    model_config = ConfigDict(extra="allow", frozen=True, validate_default=True, allow_inf_nan=False)
    __pydantic_extra__: dict[str, Agency] = Field(init=False)  # type: ignore[assignment]

    joint_strategy: JointStrategy = JointStrategy()
    info_exchange: InfoExchange = InfoExchange()
    hvt: HVT = HVT()

    @model_validator(mode="before")
    @classmethod
    def _keys_are_codes(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields and not (isinstance(key, str) and COUNTRY_RE.match(key)):
                    from .errors import suggest

                    text = str(key)
                    code = _COUNTRY_NAMES.get(text.lower().replace("-", " ").replace("_", " "))
                    if code is None and len(text) == 2 and text.isalpha():
                        code = text.upper()
                    hint = f"did you mean '{code}'?" if code else suggest(text, list(cls.model_fields))
                    raise CrossFieldError(
                        text,
                        f"unknown key{'; ' + hint if hint else ''}",
                        key,
                        ", ".join(cls.model_fields) + ", or a two-letter country code (an agency) such as BE",
                    )
        return data

    @property
    def agencies(self) -> dict[str, Agency]:
        """The agencies, sorted by country code (the tie-break order of DESIGN.md)."""
        extra = self.__pydantic_extra__ or {}
        return {code: extra[code] for code in sorted(extra)}


SeriesValue = dict[int, float]


class Intel(Strict):
    """Intelligence an agency holds on a network, in [0, 1] (DESIGN.md step 7)."""

    gain_seizure: Rate = Field(
        0.2, description="intel gained per seizure of the network's load in the agency's ports; assumed 0.1-0.4"
    )
    gain_case: Rate = Field(0.05, description="weekly intel gained from an active case; assumed 0.02-0.1")
    gain_home: Rate = Field(
        0.005,
        description="weekly intel gained on networks based in the agency's own country (informants, domestic "
        "cases); assumed 0-0.02 (steady state for a home network: gain_home / (gain_home + decay))",
    )
    evidence_weight: Rate = Field(
        0.5,
        description="how much a case's success depends on the intel held at its end: success = sigma "
        "(1 - w + 2 w I), so sigma is the success at I = 0.5; assumed 0-1",
    )
    decay: Rate = Field(0.02, description="mu: weekly decay of intel (half-life ~35 weeks); assumed 0.01-0.05")
    gamma: Rate = Field(
        0.2,
        description="extra detection of a network's loads at full intel (intelligence-led targeting); "
        "assumed 0.1-0.5, set with the calibration of hub seizures",
    )
    tip_gamma: Rate = Field(
        0.2, description="extra detection from a partner's shipment tips at full intel and weight; assumed 0.1-0.5"
    )
    tip_shelf_weeks: float = Field(
        3.0,
        gt=0.0,
        description="a tip is useless if it arrives after the container: South America-Europe takes 2-3 weeks",
    )


class Shock(Strict):
    """An intelligence shock (e.g. Sky ECC, 2021): one agency's intel jumps on many networks at once."""

    week: int = Field(ge=0)
    agency: str = Field(description="country code of the agency that gains the intel")
    share_networks: Rate = Field(0.5, description="share of active networks affected")
    level: Rate = Field(0.8, description="intel level the affected networks are raised to (at least)")
    action_day: bool = Field(
        True,
        description="the agency's open cases on affected networks conclude that week (arrests on the new "
        "evidence), as on the Sky ECC action day in Belgium: 48 arrests, 200 raids (port_facts.md)",
    )


class Succession(Strict):
    """Succession and entry: the hydra effect (DESIGN.md step 9)."""

    psi: Rate = Field(0.8, description="probability a dismantled network is succeeded; 0.8 (0.6-0.95), port_facts.md")
    lag_weeks: int = Field(26, ge=0, le=520, description="weeks until the successor starts; 26 (8-52), port_facts.md")
    entry_rate: Rate = Field(
        0.02, description="weekly probability an empty slot receives a new network; assumed 0.005-0.05"
    )


class Inputs(Strict):
    """Inputs over time: step functions given as ``{week: value}`` (value holds until the next)."""

    supply_index: dict[int, NonNeg] = Field(
        default_factory=lambda: {0: 1.0}, description="cocaine available to ship, relative to baseline"
    )
    origin_interdiction: dict[int, Rate] = Field(
        default_factory=lambda: {0: 0.0}, description="share seized at origin before departure"
    )

    @field_validator("supply_index", "origin_interdiction")
    @classmethod
    def _starts_at_zero(cls, value: dict[int, float]) -> dict[int, float]:
        allowed = "a mapping {week: value} starting at week 0, e.g. {0: 1.0, 104: 0.8}"
        if not value:
            raise CrossFieldError("", "needs at least the value at week 0", value, allowed)
        if min(value) != 0:
            raise CrossFieldError("", f"must start at week 0 (the first week given is {min(value)})", value, allowed)
        return dict(sorted(value.items()))


class Intervention(Strict):
    """At ``week``, set or scale parameters given by dotted paths."""

    week: int = Field(ge=0)
    label: str = ""
    set: dict[str, object] = Field(min_length=1)


class Scenario(Strict):
    """A complete, resolved scenario (what ``load_scenario`` returns; frozen)."""

    name: str = Field(min_length=1)
    description: str = ""
    weeks: int = Field(260, ge=1, le=5200, description="horizon in weeks (260 = five years)")
    warmup_weeks: int = Field(52, ge=0, description="weeks left out of every metric while beliefs and insiders settle")
    seed: int = Field(42, ge=0, description="root seed (the command line's --seed overrides it)")
    ports: dict[str, Port]
    networks: Networks = Networks()
    behaviour: Behaviour = Behaviour()
    elsewhere: Elsewhere = Elsewhere()
    hold: Hold = Hold()
    enforcement: Enforcement = Enforcement()
    intel: Intel = Intel()
    succession: Succession = Succession()
    inputs: Inputs = Inputs()
    shocks: list[Shock] = Field(default_factory=list, description="intelligence shocks (input events)")
    interventions: list[Intervention] = Field(default_factory=list)

    @field_validator("ports")
    @classmethod
    def _port_ids(cls, value: dict[str, Port]) -> dict[str, Port]:
        if not value:
            raise CrossFieldError("", "needs at least one port", value, "one or more ports")
        for pid in value:
            if not PORT_ID_RE.match(pid):
                raise CrossFieldError(
                    pid, "bad port id", pid, "lower-case letters, digits and _, starting with a letter (e.g. le_havre)"
                )
        if not any(p.enabled for p in value.values()):
            raise CrossFieldError("", "at least one port must be enabled", "all disabled", "one or more enabled ports")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        for rule in _CROSS_RULES:
            rule(self)
        return self


# --- cross-field rules, one small function each ---------------------------------------------


class CrossFieldError(ValueError):
    """A rule failed; ``field`` is the dotted path it concerns, relative to the model being validated.

    For the ``_rule_*`` functions (run on the whole scenario) that is the path
    from the root, e.g. ``ports.venlo.via``; in a field or model validator it is
    relative to that field or model (``""`` for the value itself). The loader
    turns it into a :class:`~.errors.ConfigError` with the given and allowed parts.
    """

    def __init__(self, field: str, problem: str, given: object, allowed: str) -> None:
        self.field, self.problem, self.given, self.allowed = field, problem, given, allowed
        super().__init__(f"{field}: {problem}")


def _rule_warmup(s: Scenario) -> None:
    if s.warmup_weeks >= s.weeks:
        raise CrossFieldError(
            "warmup_weeks", "warm-up must end before the horizon", s.warmup_weeks, f"0 to {s.weeks - 1}"
        )


def _rule_buffers(s: Scenario) -> None:
    for pid, port in s.ports.items():
        for i, other in enumerate(port.buffer):
            if other == pid:
                raise CrossFieldError(
                    f"ports.{pid}.buffer[{i}]", "a port cannot be its own buffer port", other, _ids(s, exclude=pid)
                )
            if other not in s.ports:
                raise CrossFieldError(
                    f"ports.{pid}.buffer[{i}]", "unknown buffer port" + _hint(other, s.ports), other, _ids(s, pid)
                )


def _rule_via(s: Scenario) -> None:
    for pid, port in s.ports.items():
        seaports = ", ".join(k for k, p in s.ports.items() if p.kind != "inland")
        if port.kind == "inland" and port.via is None:
            raise CrossFieldError(f"ports.{pid}.via", "an inland port needs a via seaport", None, seaports)
        if port.via is not None:
            target = s.ports.get(port.via)
            if port.via == pid:
                raise CrossFieldError(f"ports.{pid}.via", "a port cannot be its own via port", port.via, seaports)
            if target is None:
                raise CrossFieldError(
                    f"ports.{pid}.via", "unknown via port" + _hint(port.via, s.ports), port.via, seaports
                )
            if target.kind == "inland":
                raise CrossFieldError(
                    f"ports.{pid}.via", "via must be a seaport, not an inland port", port.via, "a hub or regional port"
                )


def _rule_agencies(s: Scenario) -> None:
    countries = {p.country for p in s.ports.values()}
    for code, agency in s.enforcement.agencies.items():
        if code not in countries:
            raise CrossFieldError(
                f"enforcement.{code}", "an agency needs ports in its country", code, ", ".join(sorted(countries))
            )
        for pid in agency.weights:
            if pid not in s.ports or s.ports[pid].country != code:
                own = [k for k, p in s.ports.items() if p.country == code]
                raise CrossFieldError(
                    f"enforcement.{code}.weights.{pid}", "not a port of this agency", pid, ", ".join(own)
                )


def _rule_joint(s: Scenario) -> None:
    members = s.enforcement.joint_strategy.members
    agencies = s.enforcement.agencies
    for i, code in enumerate(members):
        if code not in agencies:
            raise CrossFieldError(
                f"enforcement.joint_strategy.members[{i}]",
                "not an agency of this scenario",
                code,
                ", ".join(agencies) or "no agencies defined",
            )
    js = s.enforcement.joint_strategy
    if js.budget > 0 and not members:
        raise CrossFieldError(
            "enforcement.joint_strategy.budget", "a pooled budget needs members", js.budget, "members: [BE, NL]"
        )
    if len(members) == 1:
        raise CrossFieldError(
            "enforcement.joint_strategy.members",
            "a joint strategy needs two or more agencies",
            members,
            "e.g. [BE, NL]",
        )
    if len(set(members)) != len(members):
        raise CrossFieldError("enforcement.joint_strategy.members", "duplicate agency", members, "distinct codes")


def _rule_shocks(s: Scenario) -> None:
    agencies = s.enforcement.agencies
    for i, shock in enumerate(s.shocks):
        if shock.agency not in agencies:
            raise CrossFieldError(
                f"shocks[{i}].agency", "not an agency of this scenario", shock.agency, ", ".join(agencies) or "none"
            )
        if shock.week >= s.weeks:
            raise CrossFieldError(f"shocks[{i}].week", "shock after the horizon", shock.week, f"0 to {s.weeks - 1}")


def _rule_joint_team(s: Scenario) -> None:
    if s.enforcement.hvt.coordination != "independent" and len(s.enforcement.agencies) < 2:
        raise CrossFieldError(
            "enforcement.hvt.coordination",
            "coordination needs a partner: at least two agencies",
            s.enforcement.hvt.coordination,
            "independent, or add a second agency (e.g. enforcement.NL)",
        )


def _rule_intervention_weeks(s: Scenario) -> None:
    for i, iv in enumerate(s.interventions):
        if iv.week >= s.weeks:
            raise CrossFieldError(
                f"interventions[{i}].week", "intervention after the horizon", iv.week, f"0 to {s.weeks - 1}"
            )
    for name in ("supply_index", "origin_interdiction"):
        series = getattr(s.inputs, name)
        late = [w for w in series if w >= s.weeks]
        if late:
            raise CrossFieldError(f"inputs.{name}", "week after the horizon", late[0], f"0 to {s.weeks - 1}")


def _hint(name: str, valid: object) -> str:
    from .errors import suggest

    hint = suggest(name, valid)  # type: ignore[arg-type]
    return f"; {hint}" if hint else ""


def _ids(s: Scenario, exclude: str | None = None) -> str:
    return ", ".join(k for k in s.ports if k != exclude)


_CROSS_RULES = (
    _rule_warmup,
    _rule_buffers,
    _rule_via,
    _rule_agencies,
    _rule_joint,
    _rule_intervention_weeks,
    _rule_shocks,
    _rule_joint_team,
)
