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
    ) -> None:
        self.file = str(file) if file is not None else None
        self.field = field
        self.problem = problem
        self.given = given
        self.allowed = allowed
        self.has_given = (given is not None) if has_given is None else has_given
        super().__init__(self.render())

    def render(self) -> str:
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
        return f"{head}: {detail}" if head else detail

    def with_file(self, file: str | Path) -> ConfigError:
        """The same error, naming ``file`` if it named none."""
        if self.file is None:
            self.file = str(file)
            self.args = (self.render(),)
        return self


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def suggest(name: str, valid: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` for the nearest valid name, or ``""``."""
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else ""
