"""The ``displacement-sim`` command (DESIGN.md section 6).

Exit status 0 on success, 2 on bad input (one message on stderr naming the
file, the field, what was given and what is allowed; no traceback; nothing
written).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from .config import load_scenario, parse_override
from .errors import ConfigError, suggest
from .schema import Scenario

__all__ = ["main"]

EXIT_BAD_INPUT = 2


_ARGUMENT = re.compile(r"^argument (?P<name>[^:]+): (?P<rest>.*)$", re.S)
_CHOICE = re.compile(r"^invalid choice: (?P<given>.*?) \(choose from (?P<choices>.*)\)$", re.S)


def _option_error(prog: str, message: str) -> ConfigError:
    """Turn argparse's complaint into a ConfigError naming the command, option, given and allowed."""
    see_help = f"see '{prog} --help'"
    found = _ARGUMENT.match(message)
    if found is None:
        if message.startswith("unrecognized arguments: "):
            return ConfigError(
                "unrecognized arguments",
                field=prog,
                given=message.split(": ", 1)[1],
                allowed=f"the options listed by '{prog} COMMAND --help'",
            )
        if message.startswith("the following arguments are required: "):
            return ConfigError(f"missing argument(s): {message.split(': ', 1)[1]}", field=prog, allowed=see_help)
        return ConfigError(message, field=prog, allowed=see_help)
    name, rest = found["name"].split("/")[-1], found["rest"]
    choice = _CHOICE.match(rest)
    if choice:
        given = choice["given"].strip("'\"")
        choices = [c.strip().strip("'\"") for c in choice["choices"].split(",")]
        hint = suggest(given, choices)
        command = name == "command"
        return ConfigError(
            f"{'unknown command' if command else 'invalid choice'}{'; ' + hint if hint else ''}",
            field=prog if command else f"{prog} {name}",
            given=given,
            allowed=", ".join(choices),
        )
    if "(given " in rest:  # from our own argument types: already says what is allowed
        return ConfigError(rest, field=f"{prog} {name}")
    return ConfigError(rest, field=f"{prog} {name}", allowed=see_help)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad options as a ConfigError (exit 2, one line, no usage dump)."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        raise _option_error(self.prog, message)


def _bad_value(problem: str, given: object, allowed: str) -> argparse.ArgumentTypeError:
    """An argument-type failure; argparse passes its text to ``_Parser.error`` as ``argument NAME: TEXT``."""
    return argparse.ArgumentTypeError(ConfigError(problem, given=given, allowed=allowed, has_given=True).render())


def _overrides(items: Sequence[str] | None) -> dict[str, object]:
    return dict(parse_override(s) for s in items or [])


def _at_least(name: str, low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``low`` (and <= ``high``); ``name`` is the option, for the message."""
    allowed = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high:,}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _bad_value("not a whole number", text, allowed) from None
        if value < low:
            raise _bad_value("must not be negative" if low == 0 else f"must be at least {low}", value, allowed)
        if high is not None and value > high:
            raise _bad_value("too large", value, allowed)
        return value

    parse.__name__ = name
    return parse


def _positive(name: str) -> Callable[[str], int]:
    """An argparse type: a whole number >= 1."""
    return _at_least(name, 1)


_seed = _at_least("--seed", 0)  # a root seed


def out_folder(text: str) -> Path:
    """An argparse type for ``--out``: a folder path (an empty one would silently mean the default)."""
    if not text.strip():
        raise _bad_value("empty folder name", text, "a folder path, or leave out --out for the default")
    return Path(text)


def option_override(overrides: dict[str, object], key: str, value: object, option: str) -> None:
    """Put an option's value (``--weeks``) into the overrides, refusing a different ``--set`` of the same field."""
    if value is None:
        return
    if key in overrides and overrides[key] != value:
        raise ConfigError(
            f"{key} is set twice, to different values",
            field=option,
            given=f"{option} {value} and --set {key}={overrides[key]}",
            allowed="one of them (or the same value in both)",
        )
    overrides[key] = value


def load_with_options(path: Path | str, overrides: dict[str, object], weeks: int | None) -> Scenario:
    """:func:`load_scenario`, naming ``--weeks`` when the horizon it set is what the scenario cannot take."""
    try:
        return load_scenario(path, overrides=overrides)
    except ConfigError as err:
        about_horizon = err.field in ("weeks", "override weeks") or "horizon" in err.problem
        if weeks is not None and about_horizon:
            err.problem += f" (the horizon is {weeks} weeks, from --weeks {weeks})"
        raise


def check_out_dir(out: Path | None) -> None:
    """Refuse to write into an existing, non-empty folder (nothing is ever overwritten), or where none can be made."""
    from .results import check_out_creatable

    if out is None:
        return
    check_out_creatable(out)
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(
            "output folder exists and is not empty",
            field="--out",
            given=str(out),
            allowed="a new or empty folder",
        )


def progress_bar(total: int, desc: str):
    """A tqdm bar on a terminal, silent when stderr is piped."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="rep", disable=not sys.stderr.isatty(), leave=False)


# --- validate ------------------------------------------------------------------------------------


def describe(cfg: Scenario) -> str:
    """A short plain description of a scenario."""
    ports = cfg.ports
    lines = [f"{cfg.name}: {cfg.description.strip()}" if cfg.description else cfg.name]
    lines.append(f"  horizon: {cfg.weeks} weeks ({cfg.weeks / 52:.1f} years), warm-up {cfg.warmup_weeks} weeks")
    by_country: dict[str, list[str]] = {}
    for pid, p in ports.items():
        by_country.setdefault(p.country, []).append(pid + ("" if p.enabled else " (off)"))
    lines.append(f"  ports: {sum(p.enabled for p in ports.values())} enabled of {len(ports)}")
    for code in sorted(by_country):
        lines.append(f"    {code}: {', '.join(by_country[code])}")
    lines.append(f"  networks: {cfg.networks.n_slots} slots")
    for code, ag in cfg.enforcement.agencies.items():
        lines.append(
            f"  agency {code}: budget {ag.budget:g} extra inspections/week, rule {ag.rule}, "
            f"review every {ag.review_weeks} weeks"
        )
    js = cfg.enforcement.joint_strategy
    if js.members:
        lines.append(
            f"  joint strategy: {' + '.join(js.members)}"
            f"{f', pooled budget {js.budget:g}/week on ' + '+'.join(js.kinds) if js.budget else ''}"
            f", anticipation {js.anticipation:g}"
        )
    if cfg.interventions:
        lines.append(f"  interventions: {len(cfg.interventions)}")
        for iv in sorted(cfg.interventions, key=lambda i: i.week):
            sets = "; ".join(f"{k} = {v}" for k, v in iv.set.items())
            lines.append(f"    week {iv.week}: {iv.label + ': ' if iv.label else ''}{sets}")
    else:
        lines.append("  interventions: none")
    return "\n".join(lines)


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = load_scenario(args.scenario, overrides=_overrides(args.set))
    print(f"OK {args.scenario}")
    print(describe(cfg))
    return 0


# --- run -----------------------------------------------------------------------------------------


def _t_per_year(kg: float | None, weeks: int) -> str:
    return "-" if kg is None else f"{kg / 1000 * 52 / max(weeks, 1):8.1f}"


def summary_table(summary: dict, weeks_eval: int) -> str:
    """The run's readable table: per port shipped, seized, share; totals and shares."""
    m = summary["metrics"]
    out = [
        f"{summary['scenario']}: {summary['engine']} engine, {summary['replications']} replication(s), "
        f"seed {summary['seed']}; weeks {summary['eval_weeks'][0]}-{summary['eval_weeks'][1]} "
        "(means; t/yr = tonnes per year)",
        f"{'port':<20}{'shipped t/yr':>14}{'seized t/yr':>13}{'share':>8}{'seizure %':>11}{'insp. rate':>12}",
    ]
    for pid, d in summary["ports"].items():
        ship, seized = d["shipped_kg"]["mean"], d["seized_kg"]["mean"]
        share = d["share"]["mean"]
        rate = f"{100 * seized / ship:10.1f}%" if ship else "         -"
        out.append(
            f"{pid:<20}{_t_per_year(ship, weeks_eval):>14}{_t_per_year(seized, weeks_eval):>13}"
            f"{'-' if share is None else f'{share:7.1%}':>8}{rate:>11}{d['inspection_rate']['mean']:>12.3f}"
        )
    ci = m["seized_kg"]["ci95"]
    ci_txt = (
        f" (95% CI {_t_per_year(ci[0], weeks_eval).strip()} to {_t_per_year(ci[1], weeks_eval).strip()})"
        if ci[0] is not None
        else ""
    )
    out += [
        f"{'all modelled ports':<20}{_t_per_year(m['shipped_kg']['mean'], weeks_eval):>14}"
        f"{_t_per_year(m['seized_kg']['mean'], weeks_eval):>13}",
        f"seized{ci_txt}; seizure rate {_pct(m['seizure_rate']['mean'])}",
        f"elsewhere {_t_per_year(m['elsewhere_kg']['mean'], weeks_eval).strip()} t/yr, "
        f"held back {_t_per_year(m['held_kg']['mean'], weeks_eval).strip()} t/yr",
        "shares of modelled flow: "
        + ", ".join(
            f"{k.replace('_share', '')} {_pct(m[k]['mean'])}"
            for k in ("hub_share", "regional_share", "inland_share", "foreign_share")
        ),
    ]
    if "networks_dismantled" in m:
        out.append(_cooperation_line(m, weeks_eval))
    return "\n".join(out)


def _num(x: float | None, fmt: str = ".1f") -> str:
    return "-" if x is None else format(x, fmt)


def _cooperation_line(m: dict, weeks_eval: int) -> str:
    """Investigations and intelligence: dismantled networks, cases, duplication, intel per agency."""
    intel = ", ".join(
        f"{k.removeprefix('intel_mean_')} {_num(v['mean'], '.2f')}" for k, v in m.items() if k.startswith("intel_mean_")
    )
    return (
        f"networks dismantled {_num(m['networks_dismantled']['mean'])} "
        f"(cases opened {_num(m['cases_opened']['mean'])}, duplicated case-weeks "
        f"{_num(m['duplicated_case_weeks']['mean'])}, compromised {_num(m['compromised_cases']['mean'])}, "
        f"weeks to dismantle {_num(m['mean_weeks_to_dismantle']['mean'], '.0f')}); "
        f"successors {_num(m['successors']['mean'])}; seized from the other country's networks "
        f"{_t_per_year(m['cross_border_seized_kg']['mean'], weeks_eval).strip()} t/yr; mean intel {intel}"
    )


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def cmd_run(args: argparse.Namespace) -> int:
    from .results import default_out_dir, write_results
    from .runner import run_scenario

    overrides = _overrides(args.set)
    option_override(overrides, "weeks", args.weeks, "--weeks")
    # the seed goes into the config, so the folder's resolved config has the seed the run used
    option_override(overrides, "seed", args.seed, "--seed")
    cfg = load_with_options(args.scenario, overrides, args.weeks)
    out = args.out
    check_out_dir(out)
    seed = cfg.seed
    engine = args.engine or ("vectorized" if args.replications > 1 else "mesa")
    with progress_bar(args.replications, f"{cfg.name} ({engine})") as bar:
        result = run_scenario(
            cfg, engine, args.replications, seed=seed, first_replication=args.first_replication, progress=bar.update
        )
    out = out or default_out_dir(cfg.name)
    write_results(result, out)
    print(summary_table(result.summary(), result.weeks - result.eval_from))
    print(f"results: {out}  ({result.wall_seconds:.1f} s)")
    return 0


# --- entry point -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="displacement-sim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", help="check a scenario and describe it")
    p.add_argument("scenario", type=Path)
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a field (repeatable)")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a scenario and write a results folder")
    p.add_argument("scenario", type=Path)
    p.add_argument(
        "--engine",
        choices=["mesa", "vectorized"],
        default=None,
        help="default: vectorized when --replications > 1, else mesa",
    )
    p.add_argument("--replications", type=_positive("--replications"), default=1)
    p.add_argument("--weeks", type=_positive("--weeks"), default=None)
    p.add_argument("--seed", type=_seed, default=None, help="root seed (default: the scenario's seed)")
    p.add_argument(
        "--first-replication",
        type=_at_least("--first-replication", 0, 2**62),  # stream keys are below 2**63
        default=0,
        metavar="K",
        help="run replications K ... K+R-1, each on its own random streams (default 0); with --engine mesa "
        "and --replications 1, replays replication K of a batch run with the same seed",
    )
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a field (repeatable)")
    p.add_argument(
        "--out", type=out_folder, default=None, help="results folder (default results/<scenario>-<timestamp>-<id>)"
    )
    p.set_defaults(func=cmd_run)

    for extra in _EXTRA_COMMANDS:
        extra(sub)
    return parser


# Further subcommands (compare, sweep, report) register here: each a function(subparsers).
_EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


from .experiments import add_sweep_parser  # noqa: E402  (sweep: issue 5)

_EXTRA_COMMANDS.append(add_sweep_parser)

from .compare import add_compare_parser  # noqa: E402  (compare: issue 6)
from .report import add_report_parser  # noqa: E402  (report: issue 6)

_EXTRA_COMMANDS += [add_compare_parser, add_report_parser]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
