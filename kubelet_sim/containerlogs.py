"""Container log files in the CRI format, and reading them the way `kubectl logs` asks.

Each line on disk is `<RFC 3339 timestamp with nanoseconds> <stdout|stderr> F <text>`, the format
containerd and CRI-O write and the kubelet parses. Reading honours tailLines, sinceSeconds/sinceTime,
timestamps and limitBytes; following streams new lines until the container stops.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

FOLLOW_POLL_SECONDS = 0.2


def format_timestamp(moment: float) -> str:
    whole = datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    nanos = round((moment - int(moment)) * 1e9)
    return f"{whole}.{min(nanos, 999_999_999):09d}Z"


def parse_timestamp(text: str) -> float:
    head, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return seconds + (int(fraction.ljust(9, "0")[:9]) / 1e9 if fraction else 0.0)


def format_line(moment: float, text: str, stream: str = "stdout") -> str:
    return f"{format_timestamp(moment)} {stream} F {text}\n"


def append_lines(path: Path, lines: list[tuple[float, str]]) -> None:
    if not lines:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("".join(format_line(moment, text) for moment, text in lines))


def last_timestamp(path: Path) -> float | None:
    """The time of the file's last line (read from its tail), or None for a missing or empty file."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(size - 4096, 0))
            tail = handle.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(tail):
        stamp = line.split(" ", 1)[0]
        try:
            return parse_timestamp(stamp)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since: float | None = None  # epoch seconds
    timestamps: bool = False
    limit_bytes: int | None = None


def render(line: str, options: LogOptions) -> bytes | None:
    """One CRI line as the client sees it, or None when `since` filters it out."""
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 4:
        return None
    stamp, _stream, _tag, text = parts
    if options.since is not None:
        try:
            if parse_timestamp(stamp) < options.since:
                return None
        except ValueError:
            return None
    return f"{stamp} {text}\n".encode() if options.timestamps else f"{text}\n".encode()


def read_all(path: Path, options: LogOptions) -> tuple[bytes, int]:
    """The log's content as the options select it, and the file offset read up to."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b"", 0
    complete = data[: data.rfind(b"\n") + 1]
    lines = complete.decode("utf-8", "replace").splitlines(keepends=True)
    if options.tail_lines is not None:
        lines = lines[-options.tail_lines :] if options.tail_lines > 0 else []
    out = b"".join(chunk for line in lines if (chunk := render(line, options)) is not None)
    return out, len(complete)


async def stream(
    path: Path, options: LogOptions, running: Callable[[], Awaitable[bool]], flush: Callable[[], None]
) -> AsyncIterator[bytes]:
    """Yield the selected content, then (when following) new lines until `running()` turns False."""
    flush()
    content, offset = read_all(path, options)
    sent = 0
    limit = options.limit_bytes

    def clip(chunk: bytes) -> bytes:
        return chunk if limit is None else chunk[: max(limit - sent, 0)]

    if content:
        chunk = clip(content)
        sent += len(chunk)
        yield chunk
    while options.follow and (limit is None or sent < limit):
        alive = await running()
        flush()
        new, offset = _read_from(path, offset)
        if new:
            lines = new.decode("utf-8", "replace").splitlines(keepends=True)
            rendered = b"".join(c for line in lines if (c := render(line, options)) is not None)
            chunk = clip(rendered)
            sent += len(chunk)
            if chunk:
                yield chunk
        elif not alive:
            return
        await asyncio.sleep(FOLLOW_POLL_SECONDS)


def _read_from(path: Path, offset: int) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return b"", offset
    complete = data[: data.rfind(b"\n") + 1]
    return complete, offset + len(complete)
