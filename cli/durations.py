"""Durations as kubectl users type them (Go's time.ParseDuration): 30s, 5m, 1h30m, 500ms, 0.

`--timeout` options accept these, and a bare number of seconds too.
"""

from __future__ import annotations

import re

import click

from cli.context import CommandError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration for the forms users type: 30s, 5m, 1h30m, 500ms, 0."""
    if text.strip() == "0":
        return 0.0
    pos = 0
    total = 0.0
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * scale[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise CommandError(f'invalid duration "{text}"')
    return total


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A click parameter type: "60s", "2m", or plain seconds ("60", "1.5")."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return parse_duration(text)
        except CommandError as err:
            self.fail(str(err), param, ctx)


DURATION = Duration()
