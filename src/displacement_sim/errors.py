"""One exception type for bad input, with a message a user can act on.

Every bad input (a scenario, an experiment file, a command-line option, a
results folder) ends as a :class:`ConfigError` whose message names the file,
the field path, what was given and what is allowed. The command line prints it
on one line and exits with status 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

__all__ = ["ConfigError", "suggest"]


class ConfigError(ValueError):
    """A bad input, reported as ``FILE: FIELD: PROBLEM (given ...; allowed ...)``."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | Path | None = None,
        field: str | None = None,
        given: object = None,
        allowed: str | None = None,
        has_given: bool | None = None,
        across_fields: bool = False,
    ) -> None:
        self.across_fields = across_fields  # a rule between fields (warm-up before the horizon), not one value
        self.file = str(file) if file is not None else None
        self.field = field
        self.problem = problem
        self.given = given
        self.allowed = allowed
        self.has_given = (given is not None) if has_given is None else has_given
        super().__init__(self.render())

    def render(self) -> str:
        """The one-line message: ``FILE: FIELD: PROBLEM (given G; allowed: A)``, leaving out unknown parts."""
        parts = []
        if self.file:
            parts.append(self.file)
        if self.field:
            parts.append(self.field)
        head = ": ".join(parts)
        detail = self.problem
        extra = []
        if self.has_given:
            extra.append(f"given {_short(self.given)}")
        if self.allowed:
            extra.append(f"allowed: {self.allowed}")
        if extra:
            detail += " (" + "; ".join(extra) + ")"
        text = f"{head}: {detail}" if head else detail
        return " ".join(text.split("\n"))  # always one line

    def __str__(self) -> str:
        # rendered afresh: callers may name the file or field after construction
        return self.render()

    def with_file(self, file: str | Path) -> ConfigError:
        """The same error, naming ``file`` if it named none."""
        if self.file is None:
            self.file = str(file)
        self.args = (self.render(),)
        return self


def _short(value: object, limit: int = 80) -> str:
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def suggest(name: str, valid: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` for the nearest valid name, or ``""``.

    Matching ignores case (``Antwerp`` -> ``antwerp``, ``be`` -> ``BE``); a
    name that is already valid gets no suggestion.
    """
    valid = [str(v) for v in valid]
    if name in valid:
        return ""
    lowered = {v.lower(): v for v in reversed(valid)}
    if name.lower() in lowered:
        return f"did you mean '{lowered[name.lower()]}'?"
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return f"did you mean '{lowered[close[0]]}'?" if close else ""
