"""Loading scenarios: YAML, ``extends``, dotted-path overrides, interventions.

A scenario file is parsed at the edge into the frozen :class:`~.schema.Scenario`;
the engines never read YAML. Steps:

1. read the YAML (duplicate keys are errors);
2. resolve ``extends`` (relative to the file, any depth, cycles detected) by
   deep merge: mappings merge, lists replace, ``null`` removes a key;
3. merge over the default port data (``data/ports.yaml``), so a scenario names
   only the ports it adds or changes;
4. apply overrides by dotted path (``enforcement.BE.budget``,
   ``ports[kind=regional].inspection_rate``);
5. validate, then validate every intervention by applying it to a copy.

Every failure is a :class:`~.errors.ConfigError` naming the file and field.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError, suggest
from .schema import Agency, Scenario
from .validation import _convert

__all__ = [
    "Phase",
    "apply_path",
    "default_ports",
    "load_scenario",
    "parse_override",
    "phases",
    "scenario_from_dict",
]

# Paths an intervention may change (structure, horizon and the initial population may not).
MUTABLE_PORT_FIELDS = ("inspection_rate", "q", "c", "a", "transit_check", "enabled", "at_risk_per_week")
MUTABLE_ROOTS = ("enforcement", "behaviour", "elsewhere", "hold", "intel", "succession")
FIXED_AT_START = (["behaviour", "prior_strength"],)

_SEGMENT = re.compile(r"^(?P<key>[A-Za-z0-9_\-]+)(?:\[(?P<sel>[^\]]*)\])?$")


# --- YAML ------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a silent overwrite would ignore one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            mark = key_node.start_mark
            raise ConfigError(
                f"duplicate key {key!r} at line {mark.line + 1}",
                given=key,
                allowed="each key once per mapping",
            )
        seen[key] = loader.construct_object(value_node, deep=deep)
    return seen


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _duplicate_path(text: str) -> str | None:
    """Dotted path of the first duplicate key in a YAML text (``ports.antwerp.q``), for the message."""

    def walk(node: yaml.Node, path: str) -> str | None:
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                here = f"{path}.{key}" if path else key
                if key in seen:
                    return here
                seen.add(key)
                found = walk(value_node, here)
                if found:
                    return found
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                found = walk(item, f"{path}[{i}]")
                if found:
                    return found
        return None

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    return walk(root, "") if root is not None else None


def _source_line(text: str, *marks: Any) -> str | None:
    """The (non-blank) source line a YAML error points at, for 'given'."""
    lines = text.splitlines()
    for mark in marks:
        if mark is not None and 0 <= mark.line < len(lines) and lines[mark.line].strip():
            return lines[mark.line].strip()
    return None


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one YAML mapping, turning every failure into a ConfigError naming the file."""
    if path.is_dir():
        raise ConfigError("is a folder, not a file", file=path, given=str(path), allowed="a YAML file")
    if not path.is_file():
        raise ConfigError("file not found", file=path, given=str(path), allowed="an existing YAML file")
    text = ""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506
    except ConfigError as err:
        err.field = err.field or _duplicate_path(text)
        raise err.with_file(path) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        line = _source_line(text, mark, getattr(err, "context_mark", None))
        raise ConfigError(
            f"YAML syntax error{where}: {problem}",
            file=path,
            given=line,
            allowed="well-formed YAML (check indentation, colons, brackets and quotes)",
        ) from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            "not a UTF-8 text file",
            file=path,
            given=f"byte 0x{err.object[err.start]:02x} at position {err.start}",
            allowed="UTF-8 text (save the file with UTF-8 encoding)",
        ) from None
    except OSError as err:
        raise ConfigError("cannot read the file", file=path, given=err.strerror, allowed="a readable file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        kind = {"list": "a list", "str": "a single text value", "int": "a number", "float": "a number"}
        raise ConfigError(
            "top level must be a mapping",
            file=path,
            given=kind.get(type(data).__name__, type(data).__name__),
            allowed="key: value lines such as 'weeks: 260'",
        )
    return data


@cache
def _default_ports_cached() -> dict[str, Any]:
    text = resources.files("displacement_sim.data").joinpath("ports.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["ports"]


def default_ports() -> dict[str, Any]:
    """The default port reference data (``data/ports.yaml``) as a fresh dict (parsed once per process)."""
    return copy.deepcopy(_default_ports_cached())


# --- merging and paths -----------------------------------------------------------------------


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge recursively, other values (lists included) replace; ``None`` deletes."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if value is None and key in out and isinstance(out[key], dict):
            del out[key]
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _resolve_chain(
    path: Path, stack: tuple[Path, ...] = (), files: list[tuple[str, dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """The file merged over the files it extends; ``files`` gets each file of the chain and its data, child first."""
    path = path.resolve()
    if path in stack:
        cycle = " -> ".join(p.name for p in (*stack, path))
        raise ConfigError(
            f"extends cycle: {cycle}",
            file=stack[-1],
            field="extends",
            given=path.name,
            allowed="a chain without loops",
        )
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if files is not None:
        files.append((str(path), copy.deepcopy(data)))
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(
            "extends must be a file name",
            file=path,
            field="extends",
            given=parent,
            allowed="a relative path such as baseline.yaml",
        )
    parent_path = path.parent / parent
    if not parent_path.is_file():
        raise ConfigError(
            "extended file not found",
            file=path,
            field="extends",
            given=parent,
            allowed=f"an existing file, relative to this file's folder ({path.parent})",
        )
    base = _resolve_chain(parent_path, (*stack, path), files)
    # the child's own name and description never inherit silently from the parent
    base.pop("name", None)
    base.pop("description", None)
    return deep_merge(base, data)


def _parse_selector(text: str, path: str) -> dict[str, str]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in part:
            raise ConfigError("bad selector", field=path, given=part, allowed="key=value, e.g. kind=regional")
        key, value = (s.strip() for s in part.split("=", 1))
        out[key] = value
    return out


def _split_path(path: str) -> list[tuple[str, dict[str, str] | None]]:
    segments = []
    for raw in path.split("."):
        match = _SEGMENT.match(raw)
        if not match:
            raise ConfigError(
                "bad path segment",
                field=path,
                given=raw,
                allowed="names separated by dots, e.g. ports[kind=hub].inspection_rate",
            )
        sel = match.group("sel")
        segments.append((match.group("key"), _parse_selector(sel, path) if sel is not None else None))
    return segments


_SELECTABLE = ("kind", "country", "cluster", "enabled")


def expand_path(data: Mapping[str, Any], path: str) -> list[list[str]]:
    """Concrete key lists a (possibly selector) path refers to in ``data``."""
    results: list[list[str]] = [[]]
    for key, sel in _split_path(path):
        if sel is None:
            results = [[*r, key] for r in results]
            continue
        new = []
        for r in results:
            node = _get(data, [*r, key])
            if not isinstance(node, Mapping):
                raise ConfigError(
                    "selector on a field that is not a mapping", field=path, given=key, allowed="ports[kind=...]"
                )
            for field in sel:
                if field not in _SELECTABLE:
                    hint = suggest(field, _SELECTABLE)
                    raise ConfigError(
                        f"unknown selector field{'; ' + hint if hint else ''}",
                        field=path,
                        given=field,
                        allowed=", ".join(_SELECTABLE),
                    )
            for child, value in node.items():
                if isinstance(value, Mapping) and all(str(value.get(f)).lower() == v.lower() for f, v in sel.items()):
                    new.append([*r, key, child])
        if not new:
            raise ConfigError(
                "selector matches nothing",
                field=path,
                given=",".join(f"{f}={v}" for f, v in (sel or {}).items()),
                allowed=_selector_values(data, results, key, sel or {}),
            )
        results = new
    return results


def _selector_values(data: Mapping[str, Any], prefixes: list[list[str]], key: str, sel: Mapping[str, str]) -> str:
    """The values each selector field takes among the entries (for a selector that matched nothing)."""
    seen: dict[str, set[str]] = {f: set() for f in sel}
    for r in prefixes:
        node = _get(data, [*r, key])
        for value in (node or {}).values():
            if isinstance(value, Mapping):
                for f in sel:  # as written in the data (matching ignores case), booleans as in YAML
                    v = value.get(f)
                    seen[f].add(str(v).lower() if isinstance(v, bool) or v is None else str(v))
    return "; ".join(f"{f} one of {', '.join(sorted(v)) or 'nothing'}" for f, v in seen.items())


def _get(data: Mapping[str, Any], keys: list[str]) -> Any:
    node: Any = data
    for k in keys:
        if not isinstance(node, Mapping) or k not in node:
            return None
        node = node[k]
    return node


def apply_path(data: dict[str, Any], path: str, value: Any, *, where: str = "") -> None:
    """Set ``path`` in ``data`` in place; ``value`` may be ``{scale: x}`` to multiply the current one."""
    label = where or path
    for keys in expand_path(data, path):
        node = data
        for i, k in enumerate(keys[:-1]):
            child = node.get(k)
            if child is None:
                default = _schema_default(keys[: i + 1])
                child = node[k] = default if isinstance(default, dict) else {}
            if not isinstance(child, dict):
                raise ConfigError(
                    "path goes through a value that is not a mapping",
                    field=label,
                    given=".".join(keys[: i + 1]),
                    allowed="a path to a field",
                )
            node = child
        last = keys[-1]
        if isinstance(value, Mapping) and set(value) == {"scale"}:
            factor = _number(value["scale"])
            current = node.get(last, _schema_default(keys))
            if isinstance(factor, bool) or not isinstance(factor, int | float) or not math.isfinite(factor):
                raise ConfigError("scale needs a number", field=label, given=factor, allowed="a number")
            if isinstance(current, bool) or not isinstance(current, int | float):
                raise ConfigError("can only scale a number", field=label, given=current, allowed="a numeric field")
            node[last] = current * factor
        else:
            node[last] = copy.deepcopy(value)


def _number(x: Any) -> Any:
    """A number written as text (YAML reads ``2e0`` as text) as a float, as the schema reads numbers; else ``x``."""
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return x
    return x


def _schema_default(keys: list[str]) -> Any:
    """The schema default of a field that a scenario left out (for ``{scale: x}``)."""
    model: type[BaseModel] | None = Scenario
    for k in keys:
        if model is None:
            return None
        if k not in model.model_fields:
            if model.__name__ == "Enforcement":
                # an agency (enforcement.BE) that the scenario left out: an empty mapping, i.e. Agency defaults
                model, default = Agency, {}
                continue
            return None
        info = model.model_fields[k]
        default = info.get_default(call_default_factory=True)
        ann = info.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
        if model is None:
            return default
    if isinstance(default, BaseModel):
        return default.model_dump(mode="python")
    return default


def parse_override(text: str) -> tuple[str, Any]:
    """``"a.b=3"`` -> ``("a.b", 3)``; the value is parsed as YAML (numbers, lists, booleans)."""
    depth, cut = 0, -1
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if ch == "=" and depth == 0:
            cut = i
            break
    if cut < 0 or not text[:cut].strip():
        raise ConfigError(
            "an override needs PATH=VALUE",
            field="--set",
            given=text,
            allowed="e.g. enforcement.BE.budget=2000 or ports[kind=regional].inspection_rate=0.1",
        )
    path, raw = text[:cut], text[cut + 1 :]
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        value = raw
    return path.strip(), value


# --- validation ------------------------------------------------------------------------------


def _depth_in(data: Any, field: str) -> int:
    """How many segments of the field path ``field`` (``a.b[0].c``) ``data`` holds, from the start.

    A bracketed number is a list item or a number key (``supply_index[104]``: YAML reads ``104`` as a number).
    """
    node, depth = data, 0
    for segment in filter(None, re.split(r"[.\[\]]", field)):
        number = int(segment) if segment.isdigit() else None
        if isinstance(node, list) and number is not None and number < len(node):
            node = node[number]
        elif isinstance(node, Mapping) and (segment in node or (number is not None and number in node)):
            node = node[segment if segment in node else number]
        else:
            break
        depth += 1
    return depth


def _defining_file(files: list[tuple[str, dict[str, Any]]], field: str) -> str | None:
    """The file of an ``extends`` chain (child first) that sets ``field``: the one holding most of its path.

    On a tie the file nearer the child wins, as it does when the files are merged.
    None when no file holds any of it (a default).
    """
    best, best_depth = None, 0
    for name, data in files:
        depth = _depth_in(data, field)
        if depth > best_depth:
            best, best_depth = name, depth
    return best


def scenario_from_dict(data: Mapping[str, Any], *, file: str | Path | None = None) -> Scenario:
    """Validate a merged scenario dict (ports included) and its interventions."""
    fname = str(file) if file is not None else None
    try:
        scenario = Scenario.model_validate(dict(data))
    except ValidationError as err:
        raise _convert(err, fname) from None
    for _ in phases(scenario, file=fname):
        pass
    return scenario


def load_scenario(
    path: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> Scenario:
    """Load, merge, override and validate a scenario; the result is frozen.

    Args:
        path: a YAML file, or a mapping with the same content (ports merge over the defaults).
        overrides: ``{dotted.path: value}`` applied after ``extends`` and before validation.

    """
    chain: list[tuple[str, dict[str, Any]]] = []  # the files of an extends chain, child first
    if isinstance(path, Mapping):
        data, fname = copy.deepcopy(dict(path)), None
        if "extends" in data:
            raise ConfigError("extends is only supported in files", field="extends", given=data["extends"])
    else:
        p = Path(path)
        data, fname = _resolve_chain(p, files=chain), str(p.absolute())
    merged = deep_merge({"ports": default_ports()}, data)
    if "name" not in merged and fname is not None:
        merged["name"] = Path(fname).stem
    overrides = dict(overrides or {})
    set_fields: list[str] = []  # the concrete fields the overrides set (a selector sets several)
    for key, value in overrides.items():
        label = f"override {key}"
        try:
            _check_port_id(key, merged.get("ports") or {}, label)
            apply_path(merged, key, value, where=label)
            set_fields += [".".join(keys) for keys in expand_path(merged, key)]
        except ConfigError as err:
            err.field = label if err.field in (None, key) else err.field
            raise err.with_file(fname or "overrides") from None
    try:
        return scenario_from_dict(merged, file=fname)
    except ConfigError as err:
        # a value set by an override is named as such (it is not in the file)
        for key in (*overrides, *set_fields):
            if err.field and _under(err.field, key):
                err.field = f"override {err.field}"
                break
        # a value from a file the scenario extends is blamed on that file (not a rule across
        # fields, which the file run may have broken by setting the other field)
        if (
            len(chain) > 1
            and err.file == fname
            and err.field
            and not err.field.startswith("override ")
            and not err.across_fields
        ):
            source = _defining_file(chain, err.field)
            if source is not None and source != chain[0][0]:
                err.file = source
        raise


# --- interventions as phases -------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """From ``week`` on, the engine's parameters come from ``scenario``."""

    week: int
    scenario: Scenario


def _under(field: str, path: str) -> bool:
    """Whether the dotted ``field`` is ``path`` or lies inside it."""
    return field == path or field.startswith((path + ".", path + "["))


def _check_port_id(path: str, ports: Mapping[str, Any], field: str, file: str | None = None) -> None:
    """A path ``ports.<id>.<field>`` must name an existing port (else a typo would add a port)."""
    segments = _split_path(path)
    if len(segments) < 3 or segments[0] != ("ports", None) or segments[1][1] is not None:
        return
    pid = segments[1][0]
    if pid not in ports:
        hint = suggest(pid, ports)
        raise ConfigError(
            f"unknown port{'; ' + hint if hint else ''}", file=file, field=field, given=pid, allowed=", ".join(ports)
        )


def _check_mutable(path: str, field: str) -> None:
    segments = _split_path(path)
    keys = [k for k, _ in segments]
    if keys[0] == "ports":
        # ports.<id>.<field>, or ports[selector].<field> for a group of ports
        n = 2 if segments[0][1] is not None else 3
        if len(keys) != n or keys[n - 1] not in MUTABLE_PORT_FIELDS:
            raise ConfigError(
                "interventions can change only these port fields",
                field=field,
                given=path,
                allowed=", ".join(MUTABLE_PORT_FIELDS),
            )
        return
    if keys[:2] in FIXED_AT_START:
        raise ConfigError(
            "fixed at week 0 (the networks' prior knowledge); set it in the scenario, not in an intervention",
            field=field,
            given=path,
            allowed="ports.<id>.<field> or a path under " + ", ".join(MUTABLE_ROOTS),
        )
    if keys[0] not in MUTABLE_ROOTS:
        raise ConfigError(
            "interventions cannot change this",
            field=field,
            given=path,
            allowed="ports.<id>.<field> or a path under " + ", ".join(MUTABLE_ROOTS),
        )


def _in_intervention(err: ConfigError, idx: int, iv: Any, data: Mapping[str, Any]) -> ConfigError:
    """Name the intervention entry that made the scenario invalid (``interventions[i].set.PATH``)."""
    where = f"interventions[{idx}]"
    for path, value in iv.set.items():
        try:
            targets = [".".join(keys) for keys in expand_path(data, path)]
        except ConfigError:
            continue
        for target in targets:
            if err.field and _under(err.field, target):
                rest = err.field[len(target) :]
                err.field = f"{where}.set.{path}{rest}" + (f" ({target})" if target != path else "")
                if isinstance(value, Mapping) and set(value) == {"scale"}:
                    head, sep, tail = err.problem.partition(" (+")
                    err.problem = f"{head} after scaling by {value['scale']}{sep}{tail}"
                return err
    err.field = f"{err.field} (as set by {where}, week {iv.week})" if err.field else f"{where}.set"
    return err


def phases(scenario: Scenario, *, file: str | None = None) -> list[Phase]:
    """The scenario in force from each intervention week on, each validated.

    Interventions of the same week apply in file order. The loaded scenario is
    never changed: each phase is a new frozen scenario.
    """
    out = [Phase(0, scenario)]
    if not scenario.interventions:
        return out
    data = scenario.model_dump(mode="python", exclude={"interventions"}, exclude_defaults=False)
    ordered = sorted(enumerate(scenario.interventions), key=lambda t: (t[1].week, t[0]))
    for idx, iv in ordered:
        for path, value in iv.set.items():
            field = f"interventions[{idx}].set.{path}"
            try:
                _check_port_id(path, scenario.ports, field)
                _check_mutable(path, field)
                apply_path(data, path, value, where=field)
            except ConfigError as err:
                err.field = field if err.field in (None, path) else err.field
                raise err.with_file(file or scenario.name) from None
        try:
            new = Scenario.model_validate(data)
        except ValidationError as err:
            raise _in_intervention(_convert(err, file or scenario.name), idx, iv, data) from None
        if set(new.enforcement.agencies) != set(scenario.enforcement.agencies):
            raise ConfigError(
                "interventions cannot add or remove agencies",
                file=file or scenario.name,
                field=f"interventions[{idx}].set",
                given=sorted(new.enforcement.agencies),
                allowed=", ".join(scenario.enforcement.agencies) + " (the agencies at week 0)",
            )
        if out[-1].week == iv.week:
            out[-1] = Phase(iv.week, new)
        else:
            out.append(Phase(iv.week, new))
    return out
