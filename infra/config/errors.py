"""The one error a stack configuration is refused with, listing every problem found."""

from __future__ import annotations


class ConfigError(ValueError):
    """The stack configuration has one or more invalid values; the message lists each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        header = f"invalid stack configuration ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([header, *(f"  - {problem}" for problem in problems)]))
