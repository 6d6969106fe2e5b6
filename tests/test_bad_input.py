"""The bad-input catalogue (DESIGN.md section 6, "Command line").

On a bad input (a config error, a missing file, a bad option) ``displacement-sim``
exits with status 2 and prints ONE message on stderr that names the file, the
field path, what was given and what is allowed; no traceback; nothing is
written to the output folder. Unknown names get the nearest valid one suggested.

Each case writes small scenario files into ``tmp_path`` (most ``extends`` the
repository's ``scenarios/baseline.yaml`` by absolute path) and runs the real
command: in-process through ``cli.main`` for the whole catalogue, and through
``python -m displacement_sim.cli`` in a subprocess for a few, to prove the exit
status and the absence of a traceback end to end.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from displacement_sim.cli import main
from displacement_sim.config import _convert, load_scenario, parse_override, phases
from displacement_sim.errors import ConfigError, suggest

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "scenarios" / "baseline.yaml"
BASE = f"extends: {json.dumps(str(BASELINE))}\n"  # a JSON string is a valid YAML scalar


@dataclass(frozen=True)
class Case:
    """One malformed input and what its message must say.

    ``names`` is the file the message must start with (relative to tmp_path; None
    for option errors that concern no file), ``field`` the field path that must
    follow it, ``given``/``allowed`` substrings of the "(given ...; allowed: ...)"
    part, ``also`` further substrings (e.g. the 'did you mean'). ``{tmp}`` in any
    expectation stands for tmp_path.
    """

    id: str
    files: dict[str, str | bytes]
    field: str | None
    given: str | None
    allowed: str
    also: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    names: str | None = "bad.yaml"
    scenario: str = "bad.yaml"
    cmd: str = "run"
    extra: tuple[str, ...] = ()
    dirs: tuple[str, ...] = ()
    out_files: dict[str, str] = field(default_factory=dict)


def _iv(path: str, value: str, week: int = 10) -> str:
    """A scenario (over the baseline) with one intervention setting ``path: value``."""
    return f"{BASE}interventions:\n  - week: {week}\n    set:\n      {path}: {value}\n"


CASES = [
    # --- YAML itself --------------------------------------------------------------------------
    Case(
        "yaml_syntax_error",
        {"bad.yaml": BASE + "seed: [1, 2\n"},
        field=None,
        given="'seed: [1, 2'",
        allowed="well-formed YAML",
        also=("YAML syntax error at line 3",),
    ),
    Case(
        "duplicate_key",
        {"bad.yaml": BASE + "seed: 1\nseed: 2\n"},
        field="seed",
        given="'seed'",
        allowed="each key once",
        also=("duplicate key 'seed' at line 3",),
    ),
    Case(
        "duplicate_nested_key",
        {"bad.yaml": BASE + "ports:\n  antwerp:\n    q: 1.5\n    q: 2.5\n"},
        field="ports.antwerp.q",
        given="'q'",
        allowed="each key once",
    ),
    Case(
        "top_level_is_a_list",
        {"bad.yaml": "- weeks\n- 60\n"},
        field=None,
        given="'a list'",
        allowed="key: value",
        also=("top level must be a mapping",),
    ),
    Case(
        "top_level_is_text",
        {"bad.yaml": "just some text\n"},
        field=None,
        given="'a single text value'",
        allowed="key: value",
    ),
    Case(
        "not_utf8",
        {"bad.yaml": BASE.encode() + b"name: caf\xe9\n"},
        field=None,
        given="'byte 0xe9 at position",
        allowed="UTF-8",
        also=("not a UTF-8 text file",),
    ),
    # --- files -------------------------------------------------------------------------------
    Case(
        "scenario_file_missing",
        {},
        names="nothere.yaml",
        scenario="nothere.yaml",
        field=None,
        given="'{tmp}/nothere.yaml'",
        allowed="an existing YAML file",
        also=("file not found",),
    ),
    Case(
        "scenario_is_a_folder",
        {},
        dirs=("folder",),
        names="folder",
        scenario="folder",
        field=None,
        given="'{tmp}/folder'",
        allowed="a YAML file",
    ),
    Case(
        "extends_cycle",
        {"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"},
        scenario="a.yaml",
        names="b.yaml",
        field="extends",
        given="'a.yaml'",
        allowed="a chain without loops",
        also=("a.yaml -> b.yaml -> a.yaml",),
    ),
    Case(
        "bad_value_in_an_extended_file",  # named: the file that holds the value, not the one run
        {"parent.yaml": BASE + "networks:\n  n_slots: 0\n", "bad.yaml": "extends: parent.yaml\nseed: 3\n"},
        names="parent.yaml",
        field="networks.n_slots",
        given="0",
        allowed="a whole number from 1",
    ),
    Case(
        "unknown_key_in_an_extended_file",
        {"parent.yaml": BASE + "behaviour:\n  betta: 1.0\n", "bad.yaml": "extends: parent.yaml\nseed: 3\n"},
        names="parent.yaml",
        field="behaviour.betta",
        given="'betta'",
        allowed="beta",
        also=("did you mean 'beta'?",),
    ),
    Case(
        "bad_value_in_the_file_over_an_extended_one",  # the child sets it again: the child is named
        {
            "parent.yaml": BASE + "networks:\n  n_slots: 0\n",
            "bad.yaml": "extends: parent.yaml\nnetworks:\n  n_slots: -2\n",
        },
        field="networks.n_slots",
        given="-2",
        allowed="a whole number from 1",
    ),
    Case(
        "extends_missing_file",
        {"bad.yaml": "extends: nothere.yaml\nseed: 1\n"},
        field="extends",
        given="'nothere.yaml'",
        allowed="relative to this file's folder ({tmp})",
    ),
    Case(
        "extends_not_a_name",
        {"bad.yaml": "extends: 5\n"},
        field="extends",
        given="5",
        allowed="a relative path",
    ),
    # --- unknown keys, with a suggestion -------------------------------------------------------------
    Case(
        "unknown_top_level_key",
        {"bad.yaml": BASE + "weks: 100\n"},
        field="weks",
        given="'weks'",
        allowed="weeks",
        also=("unknown key; did you mean 'weeks'?",),
    ),
    Case(
        "unknown_nested_key",
        {"bad.yaml": BASE + "behaviour:\n  betta: 0.3\n"},
        field="behaviour.betta",
        given="'betta'",
        allowed="beta",
        also=("did you mean 'beta'?",),
    ),
    Case(
        "weeks_true",  # read as 1 without the check: a one-week run
        {"bad.yaml": BASE + "weeks: true\n"},
        cmd="validate",  # `run --weeks 60` would override the bad value
        field="weeks",
        given="True",
        allowed="a whole number from 1 to 5200",
        also=("not a whole number",),
    ),
    Case(
        "budget_true",
        {"bad.yaml": BASE + "enforcement:\n  BE:\n    budget: true\n"},
        field="enforcement.BE.budget",
        given="True",
        allowed="a number >= 0",
        also=("not a number",),
    ),
    Case(
        "intervention_week_as_text",
        {"bad.yaml": BASE + 'interventions:\n  - week: "60"\n    set:\n      ports.antwerp.q: 2.0\n'},
        field="interventions[0].week",
        given="'60'",
        allowed="a whole number >= 0",
    ),
    Case(
        "unknown_port_field",
        {"bad.yaml": BASE + "ports:\n  antwerp:\n    inspection_rat: 0.1\n"},
        field="ports.antwerp.inspection_rat",
        given="'inspection_rat'",
        allowed="inspection_rate",
        also=("did you mean 'inspection_rate'?",),
    ),
    Case(
        "unknown_port_id",
        {"bad.yaml": BASE + "ports:\n  antwrp:\n    inspection_rate: 0.1\n"},
        field="ports.antwrp",
        given="'antwrp'",
        allowed="missing: name, country",
        also=("unknown port; did you mean 'antwerp'?",),
    ),
    Case(
        "unknown_source_field",
        {"bad.yaml": BASE + "ports:\n  antwerp:\n    sources: {inspection_rat: a report}\n"},
        field="ports.antwerp.sources.inspection_rat",
        given="'inspection_rat'",
        allowed="the port's field names",
        also=("did you mean 'inspection_rate'?",),
    ),
    # --- pydantic type errors: each with a sensible 'allowed' ---------------------------------------
    Case(
        "string_for_int_weeks",
        {"bad.yaml": BASE + "weeks: many\n"},
        cmd="validate",  # `run --weeks 60` would override the bad value
        field="weeks",
        given="'many'",
        allowed="a whole number from 1 to 5200",
        also=("not a whole number",),
    ),
    Case(
        "string_for_int_seed",
        {"bad.yaml": BASE + "seed: many\n"},
        field="seed",
        given="'many'",
        allowed="a whole number >= 0",
    ),
    Case(
        "fraction_for_int",
        {"bad.yaml": BASE + "warmup_weeks: 10.5\n"},
        field="warmup_weeks",
        given="10.5",
        allowed="a whole number >= 0",
        also=("fractional part",),
    ),
    Case(
        "string_for_float",
        {"bad.yaml": BASE + "behaviour:\n  beta: high\n"},
        field="behaviour.beta",
        given="'high'",
        allowed="a number >= 0",
        also=("not a number",),
    ),
    Case(
        "not_finite",
        {"bad.yaml": BASE + "elsewhere:\n  asc: .nan\n"},
        field="elsewhere.asc",
        given="nan",
        allowed="a number",
        also=("not a finite number",),
    ),
    Case(
        "bad_boolean",
        {"bad.yaml": BASE + "ports:\n  antwerp:\n    enabled: maybe\n"},
        field="ports.antwerp.enabled",
        given="'maybe'",
        allowed="true or false",
    ),
    Case(
        "list_for_mapping",
        {"bad.yaml": BASE + "ports: [antwerp, rotterdam]\n"},
        field="ports",
        given="['antwerp', 'rotterdam']",
        allowed="a mapping of text to a mapping with keys name, country",
        also=("not a mapping",),
    ),
    Case(
        "number_for_agency",
        {"bad.yaml": BASE + "enforcement:\n  BE: 5\n"},
        field="enforcement.BE",
        given="5",
        allowed="a mapping with keys budget, rule",
    ),
    Case(
        "text_for_list",
        {"bad.yaml": BASE + "enforcement:\n  BE:\n    kinds: hub\n"},
        field="enforcement.BE.kinds",
        given="'hub'",
        allowed="a list, each item one of hub, regional, inland",
        also=("not a list",),
    ),
    Case(
        "list_for_text",
        {"bad.yaml": BASE + "name: [a, b]\n"},
        field="name",
        given="['a', 'b']",
        allowed="non-empty text",
        also=("not text",),
    ),
    Case(
        "unknown_port_kind",
        {"bad.yaml": BASE + "ports:\n  antwerp:\n    kind: harbour\n"},
        field="ports.antwerp.kind",
        given="'harbour'",
        allowed="one of hub, regional, inland",
    ),
    Case(
        "unknown_allocation_rule",
        {"bad.yaml": BASE + "enforcement:\n  BE:\n    rule: random\n"},
        field="enforcement.BE.rule",
        given="'random'",
        allowed="one of static, reactive, threat",
    ),
    Case(
        "week_key_not_a_number",
        {"bad.yaml": BASE + "inputs:\n  supply_index: {zero: 1.0}\n"},
        field="inputs.supply_index",
        given="'zero'",
        allowed="a whole number",
        also=("invalid key",),
    ),
    # --- ranges --------------------------------------------------------------------------------
    Case(
        "rate_above_one",
        {"bad.yaml": BASE + "ports:\n  antwerp:\n    inspection_rate: 1.5\n"},
        field="ports.antwerp.inspection_rate",
        given="1.5",
        allowed="a number between 0 and 1",
        also=("less than or equal to 1",),
    ),
    Case(
        "negative_budget",
        {"bad.yaml": BASE + "enforcement:\n  BE:\n    budget: -5\n"},
        field="enforcement.BE.budget",
        given="-5",
        allowed="a number >= 0",
    ),
    Case(
        "negative_home_weight",
        {"bad.yaml": BASE + "networks:\n  home: {NL: -1}\n"},
        field="networks.home.NL",
        given="-1",
        allowed="a number >= 0",
    ),
    Case(
        "bad_country_code",
        {"bad.yaml": BASE + "ports:\n  antwerp:\n    country: Belgium\n"},
        field="ports.antwerp.country",
        given="'Belgium'",
        allowed="two-letter upper-case country code",
    ),
    Case(
        "distribution_low_above_median",
        {"bad.yaml": BASE + "networks:\n  load_kg: {median: 60, sigma: 2.2, low: 100, high: 5000}\n"},
        field="networks.load_kg",
        given="{'low': 100.0, 'median': 60.0, 'high': 5000.0}",
        allowed="low <= median <= high",
    ),
    Case(
        "series_not_from_week_0",
        {"bad.yaml": BASE + "inputs:\n  supply_index: {4: 1.0, 10: 0.5}\n"},
        field="inputs.supply_index",
        given="{4: 1.0, 10: 0.5}",
        allowed="starting at week 0",
        also=("first week given is 4",),
    ),
    # --- cross-field rules ------------------------------------------------------------------------
    Case(
        "warmup_not_before_horizon",
        {"bad.yaml": BASE + "warmup_weeks: 60\n"},  # run with --weeks 60
        field="warmup_weeks",
        given="60",
        allowed="0 to 59",
        also=("from --weeks 60",),  # the horizon the file does not say
    ),
    Case(
        "unknown_buffer_port",
        {"bad.yaml": BASE + "ports:\n  antwerp:\n    buffer: [zeebruge]\n"},
        field="ports.antwerp.buffer[0]",
        given="'zeebruge'",
        allowed="zeebrugge",
        also=("did you mean 'zeebrugge'?",),
    ),
    Case(
        "inland_port_without_via",
        {"bad.yaml": BASE + "ports:\n  venlo:\n    via: null\n"},
        field="ports.venlo.via",
        given="nothing (null)",
        allowed="rotterdam",
        absent=("venlo,", "liege_trilogiport"),  # only seaports are allowed
    ),
    Case(
        "via_is_itself",
        {"bad.yaml": BASE + "ports:\n  venlo:\n    via: venlo\n"},
        field="ports.venlo.via",
        given="'venlo'",
        allowed="rotterdam",
        also=("its own via port",),
    ),
    Case(
        "via_unknown",
        {"bad.yaml": BASE + "ports:\n  venlo:\n    via: rotterdm\n"},
        field="ports.venlo.via",
        given="'rotterdm'",
        allowed="rotterdam",
        also=("did you mean 'rotterdam'?",),
    ),
    Case(
        "agency_without_ports",
        {"bad.yaml": BASE + "enforcement:\n  XX:\n    budget: 5\n"},
        field="enforcement.XX",
        given="'XX'",
        allowed="BE, DE, FR, NL",
    ),
    Case(
        "agency_key_not_a_code",
        {"bad.yaml": BASE + "enforcement:\n  belgium:\n    budget: 5\n"},
        field="enforcement.belgium",
        given="'belgium'",
        allowed="two-letter country code",
        also=("did you mean 'BE'?",),
    ),
    Case(
        "joint_strategy_one_member",
        {"bad.yaml": BASE + "enforcement:\n  joint_strategy:\n    members: [BE]\n"},
        field="enforcement.joint_strategy.members",
        given="['BE']",
        allowed="[BE, NL]",
        also=("two or more",),
    ),
    Case(
        "joint_strategy_unknown_member",
        {"bad.yaml": BASE + "enforcement:\n  joint_strategy:\n    members: [BE, FR]\n"},
        field="enforcement.joint_strategy.members[1]",
        given="'FR'",
        allowed="BE, NL",
    ),
    # --- interventions -----------------------------------------------------------------------------
    Case(
        "intervention_unknown_port",
        {"bad.yaml": _iv("ports.antwrp.inspection_rate", "0.2")},
        field="interventions[0].set.ports.antwrp.inspection_rate",
        given="'antwrp'",
        allowed="antwerp",
        also=("did you mean 'antwerp'?",),
    ),
    Case(
        "intervention_after_horizon",
        {"bad.yaml": _iv("ports.antwerp.inspection_rate", "0.2", week=100)},  # run with --weeks 60
        field="interventions[0].week",
        given="100",
        allowed="0 to 59",
    ),
    Case(
        "intervention_changes_structure",
        {"bad.yaml": _iv("networks.n_slots", "20")},
        field="interventions[0].set.networks.n_slots",
        given="'networks.n_slots'",
        allowed="enforcement",
    ),
    Case(
        "intervention_scale_by_text",
        {"bad.yaml": _iv("ports.antwerp.inspection_rate", "{scale: abc}")},
        field="interventions[0].set.ports.antwerp.inspection_rate",
        given="'abc'",
        allowed="a number",
        also=("scale needs a number",),
    ),
    Case(
        "intervention_scales_text_field",
        {"bad.yaml": _iv("enforcement.BE.rule", "{scale: 2}")},
        field="interventions[0].set.enforcement.BE.rule",
        given="'threat'",
        allowed="a numeric field",
    ),
    Case(
        "intervention_scaled_out_of_range",
        {
            "bad.yaml": _iv("ports.antwerp.inspection_rate", "{scale: 3}").replace(
                "interventions:", "ports:\n  antwerp:\n    inspection_rate: 0.5\ninterventions:"
            )
        },
        field="interventions[0].set.ports.antwerp.inspection_rate",
        given="1.5",
        allowed="a number between 0 and 1",
        also=("after scaling by 3",),
    ),
    Case(
        "intervention_unknown_key",
        {"bad.yaml": _iv("behaviour.betta", "1")},
        field="interventions[0].set.behaviour.betta",
        given="'betta'",
        allowed="beta",
        also=("did you mean 'beta'?",),
    ),
    Case(
        "intervention_unknown_rule",
        {"bad.yaml": _iv("enforcement.BE.rule", "rnd")},
        field="interventions[0].set.enforcement.BE.rule",
        given="'rnd'",
        allowed="one of static, reactive, threat",
    ),
    Case(
        "selector_matches_nothing",
        {"bad.yaml": _iv("ports[kind=harbour].inspection_rate", "0.2")},
        field="interventions[0].set.ports[kind=harbour].inspection_rate",
        given="'kind=harbour'",
        allowed="kind one of hub, inland, regional",
    ),
    Case(
        "selector_matches_no_country",  # the codes are listed as written (BE, not be)
        {"bad.yaml": _iv("ports[country=XX].inspection_rate", "0.2")},
        field="interventions[0].set.ports[country=XX].inspection_rate",
        given="'country=XX'",
        allowed="country one of BE, DE, FR, NL",
    ),
    Case(
        "bad_selector_field",
        {"bad.yaml": _iv("ports[size=big].inspection_rate", "0.2")},
        field="interventions[0].set.ports[size=big].inspection_rate",
        given="'size'",
        allowed="kind, country, cluster, enabled",
    ),
    Case(
        "intervention_not_a_list",
        {"bad.yaml": BASE + "interventions:\n  week: 10\n"},
        field="interventions",
        given="{'week': 10}",
        allowed="a list, each item a mapping with keys week, label, set",
    ),
    # --- command-line options ----------------------------------------------------------------------
    Case(
        "set_without_equals",
        {"bad.yaml": BASE},
        extra=("--set", "weeks"),
        names=None,
        field="--set",
        given="'weeks'",
        allowed="enforcement.BE.budget=2000",
        also=("needs PATH=VALUE",),
    ),
    Case(
        "set_unknown_path",
        {"bad.yaml": BASE},
        extra=("--set", "behaviour.betta=5"),
        field="override behaviour.betta",
        given="'betta'",
        allowed="beta",
        also=("did you mean 'beta'?",),
    ),
    Case(
        "set_unknown_port",
        {"bad.yaml": BASE},
        extra=("--set", "ports.antwrp.q=1.5"),
        field="override ports.antwrp.q",
        given="'antwrp'",
        allowed="antwerp",
        also=("did you mean 'antwerp'?",),
    ),
    Case(
        "set_selector_matches_nothing",
        {"bad.yaml": BASE},
        extra=("--set", "ports[kind=harbour].inspection_rate=0.1"),
        field="override ports[kind=harbour].inspection_rate",
        given="'kind=harbour'",
        allowed="kind one of hub, inland, regional",
    ),
    Case(
        "set_value_out_of_range",
        {"bad.yaml": BASE},
        extra=("--set", "ports.antwerp.inspection_rate=2"),
        field="override ports.antwerp.inspection_rate",
        given="2",
        allowed="a number between 0 and 1",
    ),
    Case(
        "replications_zero",
        {"bad.yaml": BASE},
        extra=("--replications", "0"),
        names=None,
        field="displacement-sim run --replications",
        given="0",
        allowed="a whole number >= 1",
    ),
    Case(
        "seed_negative",
        {"bad.yaml": BASE},
        extra=("--seed", "-1"),
        names=None,
        field="displacement-sim run --seed",
        given="-1",
        allowed="a whole number >= 0",
    ),
    Case(
        "seed_not_a_number",
        {"bad.yaml": BASE},
        extra=("--seed", "x"),
        names=None,
        field="displacement-sim run --seed",
        given="'x'",
        allowed="a whole number >= 0",
    ),
    Case(
        "first_replication_negative",
        {"bad.yaml": BASE},
        extra=("--first-replication", "-3"),
        names=None,
        field="displacement-sim run --first-replication",
        given="-3",
        allowed="a whole number from 0 to 4,611,686,018,427,387,904",
    ),
    Case(
        "first_replication_too_large",
        {"bad.yaml": BASE},
        extra=("--first-replication", str(2**63)),
        names=None,
        field="displacement-sim run --first-replication",
        given=str(2**63),
        allowed="a whole number from 0 to 4,611,686,018,427,387,904",
    ),
    Case(
        "out_empty",  # an empty --out would silently mean the default folder
        {"bad.yaml": BASE},
        extra=("--out", ""),
        names=None,
        field="displacement-sim run --out",
        given="''",
        allowed="a folder path",
        also=("empty folder name",),
    ),
    Case(
        "weeks_set_twice",  # the harness runs with --weeks 60
        {"bad.yaml": BASE},
        extra=("--set", "weeks=80"),
        names=None,
        field="--weeks",
        given="'--weeks 60 and --set weeks=80'",
        allowed="one of them",
        also=("weeks is set twice",),
    ),
    Case(
        "seed_set_twice",
        {"bad.yaml": BASE},
        extra=("--seed", "3", "--set", "seed=4"),
        names=None,
        field="--seed",
        given="'--seed 3 and --set seed=4'",
        allowed="one of them",
    ),
    Case(
        "workers_beyond_the_cores",
        {"bad.yaml": BASE},
        cmd="sweep",
        extra=("--workers", "100000"),
        names=None,
        field="displacement-sim sweep --workers",
        given="100000",
        allowed="a whole number from 1 to",
    ),
    Case(
        "engine_unknown",
        {"bad.yaml": BASE},
        extra=("--engine", "fast"),
        names=None,
        field="displacement-sim run --engine",
        given="'fast'",
        allowed="mesa, vectorized",
    ),
    Case(
        "unknown_option",
        {"bad.yaml": BASE},
        extra=("--bogus",),
        names=None,
        field="displacement-sim",
        given="'--bogus'",
        allowed="--help",
    ),
    Case(
        "unknown_command",
        {"bad.yaml": BASE},
        cmd="valdate",
        names=None,
        field="displacement-sim",
        given="'valdate'",
        allowed="validate, run",
        also=("did you mean 'validate'?",),
    ),
    Case(
        "out_folder_not_empty",
        {"bad.yaml": BASE},
        out_files={"keep.txt": "earlier results\n"},
        names=None,
        field="--out",
        given="'{tmp}/out'",
        allowed="a new or empty folder",
    ),
]


# --- running a case ----------------------------------------------------------------------------------


def _write(case: Case, tmp_path: Path) -> Path:
    for name, content in case.files.items():
        target = tmp_path / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    for name in case.dirs:
        (tmp_path / name).mkdir()
    if case.out_files:
        (tmp_path / "out").mkdir()
        for name, content in case.out_files.items():
            (tmp_path / "out" / name).write_text(content, encoding="utf-8")
    return tmp_path / case.scenario


def _argv(case: Case, tmp_path: Path, cmd: str | None = None) -> list[str]:
    cmd = cmd or case.cmd
    argv = [cmd, str(tmp_path / case.scenario)]
    if cmd == "run":
        argv += ["--out", str(tmp_path / "out"), "--weeks", "60"]
    return argv + list(case.extra)


def _snapshot(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with a hash of its content."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(root.rglob("*"))
    }


def _check_message(stderr: str, case: Case, tmp_path: Path) -> str:
    """The contract: one line, 'error:', file, field path, given, allowed; no traceback."""
    tmp = str(tmp_path)
    assert "Traceback" not in stderr, stderr
    assert stderr.endswith("\n") and stderr.count("\n") == 1, f"not a single line:\n{stderr}"
    line = stderr[:-1]
    assert line.startswith("error: "), line
    head = "error: "
    if case.names is not None:
        head += f"{tmp_path / case.names}: "
        assert line.startswith(head), f"the message should start with the file {head!r}:\n{line}"
    if case.field is not None:
        assert line.startswith(head + case.field + ": "), f"field {case.field!r} should follow {head!r}:\n{line}"
    if case.given is not None:
        assert f"(given {case.given.replace('{tmp}', tmp)}" in line, line
    allowed = re.search(r"allowed: (.+)\)$", line)
    assert allowed, f"no 'allowed' part:\n{line}"
    assert case.allowed.replace("{tmp}", tmp) in allowed.group(1), line
    for text in case.also:
        assert text in line, f"{text!r} missing:\n{line}"
    for text in case.absent:
        assert text not in allowed.group(1), f"{text!r} should not be allowed:\n{line}"
    return line


def _run_in_process(case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], cmd: str | None = None):
    _write(case, tmp_path)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    status = main(_argv(case, tmp_path, cmd))
    captured = capsys.readouterr()
    return status, captured.out, captured.err, before, _snapshot(tmp_path)


# --- the catalogue -------------------------------------------------------------------------------------


def test_catalogue_is_large_and_distinct() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_clear_message(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err, before, after = _run_in_process(case, tmp_path, capsys)
    assert status == 2, err
    assert out == ""
    _check_message(err, case, tmp_path)
    # nothing written: no output folder created, an existing one untouched, no other file changed
    assert after == before
    if not case.out_files:
        assert not (tmp_path / "out").exists()


CASES_BY_ID = {c.id: c for c in CASES}

# file problems that `validate` must report exactly as `run` does
VALIDATE_IDS = ["yaml_syntax_error", "unknown_top_level_key", "rate_above_one", "extends_cycle", "not_utf8"]


@pytest.mark.parametrize("case_id", VALIDATE_IDS)
def test_validate_reports_the_same_message(case_id: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES_BY_ID[case_id]
    status, out, err, before, after = _run_in_process(case, tmp_path, capsys, cmd="validate")
    assert status == 2
    assert out == ""
    assert "OK" not in out
    _check_message(err, case, tmp_path)
    assert after == before
    assert main(_argv(case, tmp_path, "run")) == 2
    assert capsys.readouterr().err == err


def test_validate_with_bad_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    case = CASES_BY_ID["set_unknown_path"]
    status, out, err, _, _ = _run_in_process(case, tmp_path, capsys, cmd="validate")
    assert (status, out) == (2, "")
    _check_message(err, case, tmp_path)


def test_missing_scenario_argument(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: displacement-sim run: missing argument(s): scenario (allowed: ")


def test_out_that_is_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ok.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "out").write_text("not a folder", encoding="utf-8")
    assert main(["run", str(tmp_path / "ok.yaml"), "--out", str(tmp_path / "out"), "--weeks", "60"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: ") and "allowed: a new or empty folder" in err
    assert (tmp_path / "out").read_text(encoding="utf-8") == "not a folder"


# --- end to end, in a subprocess -------------------------------------------------------------------------

SUBPROCESS_IDS = ["yaml_syntax_error", "rate_above_one", "seed_negative"]


@pytest.mark.parametrize("case_id", SUBPROCESS_IDS)
def test_bad_input_end_to_end(case_id: str, tmp_path: Path) -> None:
    case = CASES_BY_ID[case_id]
    _write(case, tmp_path)
    before = _snapshot(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "displacement_sim.cli", *_argv(case, tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    _check_message(proc.stderr, case, tmp_path)
    assert _snapshot(tmp_path) == before


# --- units: the message and the suggestion ------------------------------------------------------------


def test_render_full_message() -> None:
    err = ConfigError(
        "Input should be less than or equal to 1",
        file="/path/bad.yaml",
        field="ports.antwerp.inspection_rate",
        given=1.5,
        allowed="a number between 0 and 1",
    )
    expected = (
        "/path/bad.yaml: ports.antwerp.inspection_rate: Input should be less than or equal to 1 "
        "(given 1.5; allowed: a number between 0 and 1)"
    )
    assert err.render() == expected
    assert str(err) == expected


def test_render_leaves_out_unknown_parts() -> None:
    assert ConfigError("file not found").render() == "file not found"
    assert ConfigError("bad", field="weeks").render() == "weeks: bad"
    assert ConfigError("bad", file="f.yaml", allowed="x").render() == "f.yaml: bad (allowed: x)"
    assert ConfigError("bad", given="x").render() == "bad (given 'x')"
    # a given None is shown when asked for (via: null), not silently dropped
    assert (
        ConfigError("needs a via port", given=None, has_given=True).render()
        == "needs a via port (given nothing (null))"
    )


def test_render_is_one_short_line() -> None:
    err = ConfigError("two\nlines", given="x" * 500, allowed="a\nb")
    text = err.render()
    assert "\n" not in text
    assert "x" * 100 not in text and "..." in text


def test_naming_the_file_or_field_later_updates_the_message() -> None:
    err = ConfigError("scale needs a number", given="abc", allowed="a number")
    err.field = "interventions[0].set.ports.antwerp.inspection_rate"
    err.with_file("/p/s.yaml")
    assert str(err).startswith("/p/s.yaml: interventions[0].set.ports.antwerp.inspection_rate: scale needs")
    assert err.args[0] == str(err)
    err.with_file("/other.yaml")  # a file already named is kept
    assert err.file == "/p/s.yaml"


def test_suggest() -> None:
    assert suggest("weks", ["name", "weeks", "warmup_weeks"]) == "did you mean 'weeks'?"
    assert suggest("betta", ["margin", "beta", "phi"]) == "did you mean 'beta'?"
    assert suggest("antwrp", ["antwerp", "rotterdam"]) == "did you mean 'antwerp'?"
    assert suggest("Antwerp", ["antwerp", "rotterdam"]) == "did you mean 'antwerp'?"  # case is ignored
    assert suggest("be", ["BE", "NL"]) == "did you mean 'BE'?"
    assert suggest("zzzzzz", ["antwerp", "rotterdam"]) == ""
    assert suggest("weeks", ["weeks"]) == ""
    assert suggest("x", []) == ""


class _Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class _Toy(BaseModel):
    colour: _Colour
    on: bool
    n: int
    items: list[int]


@pytest.mark.parametrize(
    ("data", "field", "allowed"),
    [
        ({"colour": "green", "on": True, "n": 1, "items": []}, "colour", "one of red, blue"),
        ({"colour": "red", "on": "maybe", "n": 1, "items": []}, "on", "true or false"),
        ({"colour": "red", "on": True, "n": "x", "items": []}, "n", "a whole number"),
        ({"colour": "red", "on": True, "n": 1, "items": 3}, "items", "a list"),
    ],
)
def test_convert_falls_back_to_the_error_type(data: dict, field: str, allowed: str) -> None:
    """Outside the scenario schema (e.g. an enum) the 'allowed' text comes from pydantic's error type."""
    with pytest.raises(ValidationError) as info:
        _Toy.model_validate(data)
    err = _convert(info.value, "toy.yaml")
    assert err.file == "toy.yaml" and err.field == field
    assert err.allowed is not None and err.allowed.startswith(allowed)


def test_several_errors_say_how_many_more(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(BASE + "behaviour:\n  beta: -1\n  phi: -1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\(\+1 more problem\(s\)\)"):
        load_scenario(path)


# --- regressions: valid inputs next to the bad ones ----------------------------------------------------


def test_override_with_selector_splits_at_the_right_equals() -> None:
    assert parse_override("ports[kind=regional].inspection_rate=0.1") == ("ports[kind=regional].inspection_rate", 0.1)
    assert parse_override("enforcement.BE.budget=2000") == ("enforcement.BE.budget", 2000)


def test_selector_intervention_is_accepted(tmp_path: Path) -> None:
    """DESIGN.md's own example (``ports[kind=regional].inspection_rate``) must load, not be refused."""
    path = tmp_path / "group.yaml"
    path.write_text(_iv("ports[kind=regional].inspection_rate", "0.15"), encoding="utf-8")
    cfg = load_scenario(path)
    later = phases(cfg)[-1].scenario
    regional = [p for p in later.ports.values() if p.kind == "regional"]
    assert regional and all(p.inspection_rate == 0.15 for p in regional)
    assert later.ports["antwerp"].inspection_rate == cfg.ports["antwerp"].inspection_rate


def test_override_of_an_agency_left_out_gets_agency_defaults() -> None:
    cfg = load_scenario(BASELINE, overrides={"enforcement.FR.budget": 5})
    assert cfg.enforcement.agencies["FR"].budget == 5


@pytest.mark.parametrize("command", ["run", "compare", "sweep"])
@pytest.mark.parametrize("where", ["under_a_file", "a_file"])
def test_out_where_no_folder_can_be_made_is_refused_before_running(tmp_path, capsys, command, where) -> None:
    """``--out`` inside a file, or a file: exit 2 before anything runs, one line naming --out; nothing written."""
    blocker = tmp_path / "afile"
    blocker.write_text("keep me", encoding="utf-8")
    out = blocker / "sub" if where == "under_a_file" else blocker
    scenario = tmp_path / "ok.yaml"
    scenario.write_text(BASE, encoding="utf-8")
    args = {
        "run": ["run", str(scenario), "--weeks", "60"],
        "compare": ["compare", str(scenario), str(scenario), "--weeks", "60", "--replications", "2"],
        "sweep": ["sweep", str(ROOT / "experiments" / "sobol_key_parameters.yaml"), "--n", "2", "--workers", "1"],
    }[command]
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: ") and err.count("\n") == 1, err
    assert ("cannot be made" if where == "under_a_file" else "is a file") in err
    assert blocker.read_text(encoding="utf-8") == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == [
        "afile",
        "ok.yaml",
    ]


def test_the_resolved_config_has_the_seed_the_run_used(tmp_path, capsys) -> None:
    """``run --seed`` wins over the scenario's: manifest and config agree, so a rerun matches.

    (A ``--set seed`` of the same value is allowed; a different one is refused: ``seed_set_twice``.)
    """
    scenario = tmp_path / "ok.yaml"
    scenario.write_text(BASE, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(scenario), "--weeks", "60", "--seed", "9", "--set", "seed=9", "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["seed"] == manifest["config"]["seed"] == 9
    again = tmp_path / "again"
    (tmp_path / "resolved.yaml").write_text(json.dumps(manifest["config"]), encoding="utf-8")
    assert main(["run", str(tmp_path / "resolved.yaml"), "--out", str(again)]) == 0
    assert (again / "replications.csv").read_bytes() == (out / "replications.csv").read_bytes()


@pytest.mark.parametrize(
    ("body", "field", "hint"),
    [
        (
            "interventions:\n  - week: 60\n    sett: {ports.antwerp.inspection_rate: 0.1}\n",
            "interventions[0].sett",
            "set",
        ),
        ("networks:\n  load_kg: {median: 60, sigmaa: 1, low: 20, high: 400}\n", "networks.load_kg.sigmaa", "sigma"),
    ],
)
def test_a_misspelt_required_field_is_named_not_hidden_behind_the_missing_one(tmp_path, body, field, hint) -> None:
    """The unknown key comes first in the message (with its suggestion), not "required field is missing"."""
    path = tmp_path / "typo.yaml"
    path.write_text(BASE + body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert f"{field}: unknown key; did you mean '{hint}'?" in str(err.value), str(err.value)


@pytest.mark.parametrize(("factor", "ok"), [("2e0", True), ("1.5E0", True), ("abc", False), (".nan", False)])
def test_scale_takes_a_number_written_in_exponent_form(factor, ok) -> None:
    """``--set ...={scale: 2e0}`` (text to YAML) scales like ``{scale: 2}``; no number, or nan: refused."""
    base = load_scenario(BASELINE).ports["antwerp"].inspection_rate
    overrides = dict([parse_override(f"ports.antwerp.inspection_rate={{scale: {factor}}}")])
    if ok:
        assert load_scenario(BASELINE, overrides=overrides).ports["antwerp"].inspection_rate == base * float(factor)
    else:
        with pytest.raises(ConfigError, match="scale needs a number"):
            load_scenario(BASELINE, overrides=overrides)


def test_a_bad_scheduler_address_is_the_only_line_a_sweep_prints(tmp_path, capsys) -> None:
    """The sweep's header goes out once its executor has started, so a bad ``--scheduler`` is one error line."""
    experiment = str(ROOT / "experiments" / "sobol_key_parameters.yaml")
    assert main(["sweep", experiment, "--scheduler", "notaurl", "--n", "2", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --scheduler: cannot connect"), err
    assert not (tmp_path / "out").exists()


def test_compare_refuses_weeks_or_seed_set_twice(tmp_path, capsys) -> None:
    for extra, option in (
        (["--weeks", "60", "--set", "weeks=70"], "--weeks"),
        (["--seed", "1", "--set", "seed=2"], "--seed"),
    ):
        assert main(["compare", str(BASELINE), str(BASELINE), "--replications", "2", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {option}: ") and "set twice" in err and err.count("\n") == 1, err


def test_a_file_that_corrects_what_it_extends_is_valid(tmp_path) -> None:
    (tmp_path / "parent.yaml").write_text(BASE + "networks:\n  n_slots: 0\n", encoding="utf-8")
    (tmp_path / "child.yaml").write_text("extends: parent.yaml\nnetworks:\n  n_slots: 12\n", encoding="utf-8")
    assert load_scenario(tmp_path / "child.yaml").networks.n_slots == 12


@pytest.mark.parametrize("data", [{"name": "x", "weeks": True}, {"name": "x", "intel": {"decay": "abc"}}])
def test_a_scenario_given_as_a_mapping_gets_the_same_clear_error(data) -> None:
    with pytest.raises(ConfigError, match=r"^(weeks|intel\.decay): not a (whole )?number"):
        load_scenario(data)


def _chain(tmp_path: Path, parent: str, child: str) -> Path:
    (tmp_path / "parent.yaml").write_text(BASE + parent, encoding="utf-8")
    (tmp_path / "child.yaml").write_text("extends: parent.yaml\n" + child, encoding="utf-8")
    return tmp_path / "child.yaml"


def test_which_file_of_an_extends_chain_is_named(tmp_path) -> None:
    parent, child = str(tmp_path / "parent.yaml"), str((tmp_path / "child.yaml").absolute())

    def error(parent_text: str, child_text: str, overrides=None) -> ConfigError:
        with pytest.raises(ConfigError) as err:
            load_scenario(_chain(tmp_path, parent_text, child_text), overrides=overrides)
        return err.value

    # a number key of a week table, set in the parent only (the child sets another week of the same table)
    e = error("inputs:\n  supply_index: {0: 1.0, 104: -1.0}\n", "inputs:\n  supply_index: {0: 1.0}\n")
    assert (e.file, e.field) == (parent, "inputs.supply_index[104]")
    # a selector --set that reaches a field the parent holds: the override, in the file run
    e = error("ports:\n  antwerp:\n    q: 2.0\n", "seed: 4\n", {"ports[kind=hub].q": -1})
    assert (e.file, e.field) == (child, "override ports.antwerp.q")
    # a rule between fields broken by the child's horizon: the child, though the parent holds the warm-up
    e = error("warmup_weeks: 52\n", "weeks: 40\n")
    assert (e.file, e.field) == (child, "warmup_weeks") and e.across_fields


def test_the_horizon_from_weeks_is_named_only_for_horizon_errors(tmp_path, capsys) -> None:
    scenario = _chain(tmp_path, "", "seed: 4\n")
    assert main(["run", str(scenario), "--weeks", "40", "--set", "warmup_weeks=-1"]) == 2
    err = capsys.readouterr().err
    assert "override warmup_weeks" in err and "from --weeks" not in err, err
    assert main(["run", str(scenario), "--weeks", "40"]) == 2
    assert "(the horizon is 40 weeks, from --weeks 40)" in capsys.readouterr().err


def test_an_experiment_file_refuses_true_for_a_number(tmp_path) -> None:
    from displacement_sim.experiments import load_experiment

    text = (ROOT / "experiments" / "sobol_key_parameters.yaml").read_text(encoding="utf-8")
    assert re.search(r"^replications: \d+$", text, re.M), "the experiment file changed: adapt this test"
    bad = tmp_path / "exp.yaml"
    bad.write_text(re.sub(r"^replications: \d+$", "replications: true", text, flags=re.M), encoding="utf-8")
    scenario = ROOT / "scenarios" / "baseline.yaml"
    bad.write_text(bad.read_text(encoding="utf-8").replace("../scenarios/", f"{scenario.parent}/"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"replications: not a whole number \(given True"):
        load_experiment(bad)


@pytest.mark.parametrize(
    ("content", "field", "given"),
    [
        ({"scenarios": []}, "eval_weeks", "keys scenarios"),
        ({"scenarios": [{"key": "a"}], "eval_weeks": [0, 1]}, "scenarios[0].folder", "keys key"),
        ({"scenarios": {"a": 1}, "eval_weeks": [0, 1]}, "scenarios", "dict"),
    ],
)
def test_a_malformed_comparison_json_names_its_field(tmp_path, capsys, content, field, given) -> None:
    """``report`` on a compare folder whose comparison.json lacks a field: FILE: FIELD: PROBLEM (given; allowed)."""
    (tmp_path / "comparison.json").write_text(json.dumps(content), encoding="utf-8")
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'comparison.json'}: {field}: ") and err.count("\n") == 1, err
    assert f"(given {given}" in err or f"(given '{given}'" in err, err
    assert "allowed: " in err, err
