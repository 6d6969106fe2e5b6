"""The scenario schema: every parameter of the model, with its unit and source.

All defaults live here. Each field's description gives its unit and either a
public source (see ``docs/ODD.md`` and ``data/ports.yaml``) or the word
*assumed* with a plausible range. Unknown keys are errors everywhere.

Units: kilograms, thousand euro per kilogram (k EUR/kg), containers, weeks.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "Agency",
    "Behaviour",
    "Distribution",
    "Elsewhere",
    "Enforcement",
    "Hold",
    "Inputs",
    "Intervention",
    "JointStrategy",
    "Networks",
    "Port",
    "Scenario",
]

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
NonNeg = Annotated[float, Field(ge=0.0)]
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
PORT_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")

PORT_KINDS = ("hub", "regional", "inland")
RULES = ("static", "reactive", "threat")


class Strict(BaseModel):
    """Base: unknown keys are errors, and a loaded config is frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


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
            raise ValueError(f"must be a two-letter upper-case country code such as BE, got {value!r}")
        return value

    @field_validator("sources")
    @classmethod
    def _sources_name_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"sources name unknown fields {unknown}; allowed: the port's field names")
        return value


class Distribution(Strict):
    """A log-normal distribution given by its median and log-sd, truncated to [low, high]."""

    median: float = Field(gt=0.0)
    sigma: NonNeg
    low: float = Field(gt=0.0)
    high: float = Field(gt=0.0)

    @model_validator(mode="after")
    def _ordered(self) -> Distribution:
        if not self.low <= self.median <= self.high:
            raise ValueError(f"need low <= median <= high, got low={self.low}, median={self.median}, high={self.high}")
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
        Distribution(median=1.0, sigma=0.6, low=0.05, high=4.0),
        description="loads a network sends per week at full supply, so capacity K = m * rate; calibrated "
        "so Antwerp seizes 40-110 t/yr and Rotterdam 20-70 t/yr (port_facts.md); plausible median 0.5-1.5",
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
            raise ValueError("needs at least one country with a positive weight")
        for code in value:
            if not COUNTRY_RE.match(code):
                raise ValueError(f"keys must be two-letter country codes, got {code!r}")
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
        "assumed, 2,000-10,000 (EU seizures 303 t in 2021, of which about half outside BE/NL, EUDA 2025)",
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
    review_weeks: int = Field(4, ge=1, description="weeks between reallocations; assumed, 1-13")
    i_max: Rate = Field(0.5, description="highest inspection rate a port can absorb; assumed, 0.2-1")
    s0: float = Field(1.0, gt=0.0, description="pseudo-seizures added in reactive/threat weights")
    rho: float = Field(1.0, gt=0.0, le=1.0, description="reactive exponent (NarcoLogic); <= 1")
    floor: float = Field(0.01, gt=0.0, le=1.0, description="threat rule: lowest detection rate used to invert seizures")
    weights: dict[str, NonNeg] = Field(
        default_factory=dict, description="static rule: port -> weight (default: at-risk volume)"
    )
    kinds: list[Literal["hub", "regional", "inland"]] = Field(
        default_factory=lambda: ["hub", "regional", "inland"],
        description="kinds of own ports that receive the flexible budget",
    )


class JointStrategy(Strict):
    """A joint strategy between agencies (DESIGN.md section 3, step 2)."""

    members: list[str] = Field(
        default_factory=list, description="agency codes in the joint strategy, e.g. [BE, NL]; empty = none"
    )
    anticipation: NonNeg = Field(
        0.5,
        description="share of a port's estimated flow added to the weight of its buffer ports "
        "(anticipating displacement); assumed, 0-1",
    )
    pool_budgets: bool = Field(
        False, description="pool the members' budgets over all their ports (shared mobile scanners)"
    )


class Enforcement(Strict):
    """Agencies keyed by country code (``enforcement.BE``), plus the joint strategy."""

    model_config = ConfigDict(extra="allow", frozen=True, validate_default=True)
    __pydantic_extra__: dict[str, Agency] = Field(init=False)  # type: ignore[assignment]

    joint_strategy: JointStrategy = JointStrategy()

    @model_validator(mode="before")
    @classmethod
    def _keys_are_codes(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields and not (isinstance(key, str) and COUNTRY_RE.match(key)):
                    from .errors import suggest

                    hint = suggest(str(key), list(cls.model_fields))
                    raise ValueError(
                        f"unknown key {key!r}: allowed are 'joint_strategy' or a two-letter country "
                        f"code (an agency) such as 'BE'{'; ' + hint if hint else ''}"
                    )
        return data

    @property
    def agencies(self) -> dict[str, Agency]:
        """The agencies, sorted by country code (the tie-break order of DESIGN.md)."""
        extra = self.__pydantic_extra__ or {}
        return {code: extra[code] for code in sorted(extra)}


SeriesValue = dict[int, float]


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
        if not value:
            raise ValueError("needs at least the value at week 0, e.g. {0: 1.0}")
        if min(value) != 0:
            raise ValueError(f"must start at week 0; first week given is {min(value)}")
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
    inputs: Inputs = Inputs()
    interventions: list[Intervention] = Field(default_factory=list)

    @field_validator("ports")
    @classmethod
    def _port_ids(cls, value: dict[str, Port]) -> dict[str, Port]:
        if not value:
            raise ValueError("needs at least one port")
        for pid in value:
            if not PORT_ID_RE.match(pid):
                raise ValueError(f"port id {pid!r} must be lower case letters, digits and _")
        if not any(p.enabled for p in value.values()):
            raise ValueError("at least one port must be enabled")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Scenario:
        for rule in _CROSS_RULES:
            rule(self)
        return self


# --- cross-field rules, one small function each ---------------------------------------------


class CrossFieldError(ValueError):
    """A cross-field rule failed; ``field`` is the dotted path it concerns."""

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
            if other not in s.ports or other == pid:
                raise CrossFieldError(f"ports.{pid}.buffer[{i}]", "unknown buffer port", other, _ids(s, exclude=pid))


def _rule_via(s: Scenario) -> None:
    for pid, port in s.ports.items():
        if port.kind == "inland" and port.via is None:
            raise CrossFieldError(f"ports.{pid}.via", "an inland port needs a via seaport", None, _ids(s))
        if port.via is not None:
            target = s.ports.get(port.via)
            if target is None or port.via == pid:
                raise CrossFieldError(f"ports.{pid}.via", "unknown via port", port.via, _ids(s, exclude=pid))
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
    if len(members) == 1:
        raise CrossFieldError(
            "enforcement.joint_strategy.members",
            "a joint strategy needs two or more agencies",
            members,
            "e.g. [BE, NL]",
        )
    if len(set(members)) != len(members):
        raise CrossFieldError("enforcement.joint_strategy.members", "duplicate agency", members, "distinct codes")


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


def _ids(s: Scenario, exclude: str | None = None) -> str:
    return ", ".join(k for k in s.ports if k != exclude)


_CROSS_RULES = (
    _rule_warmup,
    _rule_buffers,
    _rule_via,
    _rule_agencies,
    _rule_joint,
    _rule_intervention_weeks,
)
