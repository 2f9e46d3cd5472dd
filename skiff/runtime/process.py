"""Running a component's work until it is told to stop or its work ends by itself."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable


async def run_until_stopped(work: Awaitable[None]) -> bool:
    """Run `work` until SIGINT or SIGTERM, or until it returns by itself.

    Returns True when the work ended by itself — for a leader-elected component, that it lost its lease —
    so that the caller exits non-zero and its supervisor starts it again as a candidate.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.ensure_future(work)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    ended_by_itself = task in done and not stop.is_set()
    for pending in (task, stopper):
        pending.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return ended_by_itself
