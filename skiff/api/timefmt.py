"""Timestamps as Kubernetes writes them, and ages as kubectl prints them.

`metav1.Time` is RFC 3339 in UTC with second precision (`2024-05-01T12:00:00Z`); `metav1.MicroTime`
(events' `eventTime`, leases' renew times) carries six fractional digits. Ages use kubectl's short
human durations (`45s`, `3m12s`, `5h`, `2d3h`, `400d`, `3y`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_SECONDS_PER_MINUTE = 60
_SECONDS_PER_HOUR = 3600
_HOURS_PER_DAY = 24
_DAYS_PER_YEAR = 365


def now() -> datetime:
    """The current time in UTC (one place to read the clock)."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """Format as `metav1.Time`: UTC, whole seconds, `Z` suffix."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(moment: datetime) -> str:
    """Format as `metav1.MicroTime`: UTC with six fractional digits."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_rfc3339() -> str:
    return format_time(now())


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 timestamp (with `Z` or a numeric offset, optional fraction) to aware UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    date_part, sep, rest = value.partition("T") if "T" in value else value.partition("t")
    if not sep:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    value = f"{date_part}T{_trim_fraction(rest)}"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"RFC 3339 timestamp without a time zone: {text!r}")
    return moment.astimezone(UTC)


def _trim_fraction(clock: str) -> str:
    # Python accepts at most six fractional digits; RFC 3339 allows any number (Go writes nine).
    if "." not in clock:
        return clock
    head, _, tail = clock.partition(".")
    digits = ""
    while tail and tail[0].isdigit():
        digits, tail = digits + tail[0], tail[1:]
    return f"{head}.{digits[:6].ljust(6, '0')}{tail}"


def try_parse_time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        return None


def human_duration(elapsed: timedelta | float) -> str:
    """kubectl's short human duration: precise when recent, coarser as the span grows."""
    seconds = elapsed.total_seconds() if isinstance(elapsed, timedelta) else float(elapsed)
    whole = int(seconds)
    if whole < -1:
        return "<invalid>"
    if whole < 0:
        # Up to a second in the future is clock skew between machines, not an error.
        return "0s"
    if whole < 2 * _SECONDS_PER_MINUTE:
        return f"{whole}s"
    return _minutes_or_more(whole)


def _minutes_or_more(seconds: int) -> str:
    minutes = seconds // _SECONDS_PER_MINUTE
    if minutes < 10:
        rest = seconds % _SECONDS_PER_MINUTE
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 3 * 60:
        return f"{minutes}m"
    hours = seconds // _SECONDS_PER_HOUR
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    return _days_or_more(hours)


def _days_or_more(hours: int) -> str:
    days = hours // _HOURS_PER_DAY
    if hours < 8 * _HOURS_PER_DAY:
        rest = hours % _HOURS_PER_DAY
        return f"{days}d" if rest == 0 else f"{days}d{rest}h"
    if days < 2 * _DAYS_PER_YEAR:
        return f"{days}d"
    years = days // _DAYS_PER_YEAR
    if days < 8 * _DAYS_PER_YEAR:
        rest = days % _DAYS_PER_YEAR
        return f"{years}y" if rest == 0 else f"{years}y{rest}d"
    return f"{years}y"


def age(timestamp: object, at: datetime | None = None) -> str:
    """Time since an RFC 3339 timestamp as kubectl shows it; `<unknown>` when there is none."""
    moment = try_parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    return human_duration((at or now()) - moment)
