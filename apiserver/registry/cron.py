"""Cron schedules as CronJobs accept them: five fields or a descriptor such as `@hourly`.

The errors repeat the wording of the cron library kube-apiserver uses, since they are shown to users
verbatim in `spec.schedule: Invalid value: ...` messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_MONTH_NAMES = {
    n: i + 1 for i, n in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}
_DAY_NAMES = {n: i for i, n in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_GO_DURATION = re.compile(r"^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$")


@dataclass(frozen=True)
class _Bounds:
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Bounds(0, 59, {}),
    _Bounds(0, 23, {}),
    _Bounds(1, 31, {}),
    _Bounds(1, 12, _MONTH_NAMES),
    _Bounds(0, 6, _DAY_NAMES),
)


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class CronSchedule:
    """The minutes, hours, days of month, months and weekdays a schedule fires at."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    every_seconds: float | None = None


def parse_schedule(text: str) -> CronSchedule:
    spec = text.strip()
    if spec.startswith("@"):
        return _parse_descriptor(spec)
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    sets = [_parse_field(field, bounds) for field, bounds in zip(fields, _FIELDS, strict=True)]
    return CronSchedule(*sets)


def _parse_descriptor(spec: str) -> CronSchedule:
    if spec in _DESCRIPTORS:
        return parse_schedule(_DESCRIPTORS[spec])
    if spec.startswith("@every "):
        duration = spec[len("@every ") :].strip()
        if not _GO_DURATION.match(duration):
            raise CronError(f'failed to parse duration {spec}: time: invalid duration "{duration}"')
        return CronSchedule(frozenset(), frozenset(), frozenset(), frozenset(), frozenset(), every_seconds=0.0)
    raise CronError(f"unrecognized descriptor: {spec}")


def _parse_field(field: str, bounds: _Bounds) -> frozenset[int]:
    values: set[int] = set()
    for part in field.split(","):
        values |= _parse_range(part, bounds)
    return frozenset(values)


def _parse_range(expr: str, bounds: _Bounds) -> set[int]:
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    if len(low_and_high) > 2:
        raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) > 2:
        raise CronError(f"too many slashes: {expr}")
    if low_and_high[0] in ("*", "?"):
        start, end = bounds.low, bounds.high
    else:
        start = _parse_value(low_and_high[0], bounds)
        end = _parse_value(low_and_high[1], bounds) if len(low_and_high) == 2 else start
    step = 1
    if len(range_and_step) == 2:
        step = _parse_int(range_and_step[1])
        if len(low_and_high) == 1 and low_and_high[0] not in ("*", "?"):
            end = bounds.high  # `5/15` means from 5 to the end, every 15
    _check_range(expr, start, end, step, bounds)
    return set(range(start, end + 1, step))


def _check_range(expr: str, start: int, end: int, step: int, bounds: _Bounds) -> None:
    if start < bounds.low:
        raise CronError(f"beginning of range ({start}) below minimum ({bounds.low}): {expr}")
    if end > bounds.high:
        raise CronError(f"end of range ({end}) above maximum ({bounds.high}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step <= 0:
        raise CronError(f"step of range should be a positive number: {expr}")


def _parse_value(text: str, bounds: _Bounds) -> int:
    named = bounds.names.get(text.lower())
    return named if named is not None else _parse_int(text)


def _parse_int(text: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", text):
        raise CronError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    value = int(text)
    if value < 0:
        raise CronError(f"negative number ({value}) not allowed: {text}")
    return value
