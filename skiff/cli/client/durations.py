"""Go-style durations as kubectl flags take them: `30s`, `5m`, `1h30m`, `250ms`, or a bare number of seconds."""

from __future__ import annotations

import re

from skiff.cli.client.errors import CommandError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str, flag: str) -> float:
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = _PART.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise CommandError(f'invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"')
    return sum(float(number) * _UNITS[unit] for number, unit in parts)
