"""Run cluster components as child processes: logs to files, restart with backoff, clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("skiff.supervisor")

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 30.0
# A process that ran this long is considered healthy: its next crash restarts without delay build-up.
STABLE_SECONDS = 30.0
PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


# Looked up once here, not between fork and exec.
_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the supervisor dies, even by SIGKILL, so
    that no component outlives the supervisor that would have stopped it."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class ProcessSpec:
    """One component: its name, the module entry point and its flags."""

    name: str
    module: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module, *self.args]


@dataclass
class Supervised:
    spec: ProcessSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    backoff: float = INITIAL_BACKOFF
    restarting: bool = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def state(self) -> str:
        if self.running:
            return "running"
        return "restarting" if self.restarting else "stopped"


class Supervisor:
    """Starts each component in its own process group and restarts it with exponential backoff when it
    exits; `stop` ends every group (SIGTERM, then SIGKILL after a timeout)."""

    def __init__(self, log_dir: Path | None, on_change: Callable[[Supervised], None] | None = None) -> None:
        """Each child's output goes to LOG_DIR/<name>.log, or to this process's own output without one."""
        self.log_dir = log_dir
        self.children: dict[str, Supervised] = {}
        self.on_change = on_change
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self, spec: ProcessSpec) -> Supervised:
        child = Supervised(spec)
        self.children[spec.name] = child
        await self._spawn(child)
        self._tasks.append(asyncio.create_task(self._watch(child), name=f"supervise-{spec.name}"))
        return child

    async def _spawn(self, child: Supervised) -> None:
        log_file = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = open(self.log_dir / f"{child.spec.name}.log", "ab")  # noqa: SIM115 - the child owns it
        try:
            child.process = await asyncio.create_subprocess_exec(
                *child.spec.command(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log_file,
                stderr=asyncio.subprocess.STDOUT if log_file is not None else None,
                env={**os.environ, **child.spec.env},
                # Own process group: a Ctrl-C in the terminal reaches the supervisor, which then stops
                # the children in order instead of all of them dying at once.
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            if log_file is not None:
                log_file.close()
        child.started_at = time.monotonic()
        child.restarting = False
        self._changed(child)

    def _changed(self, child: Supervised) -> None:
        if self.on_change is not None:
            self.on_change(child)

    async def _watch(self, child: Supervised) -> None:
        while not self._stopping:
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping:
                return
            child.restarting = True
            self._changed(child)
            ran = time.monotonic() - child.started_at
            if ran >= STABLE_SECONDS:
                child.backoff = INITIAL_BACKOFF
            log.warning("%s exited with %s; restarting in %.0fs", child.spec.name, code, child.backoff)
            await asyncio.sleep(child.backoff)
            child.backoff = min(child.backoff * 2, MAX_BACKOFF)
            if self._stopping:
                return
            child.restarts += 1
            await self._spawn(child)

    @staticmethod
    def _signal_group(child: Supervised, sig: int) -> None:
        """Signal the child's whole process group (its pid: it leads its own session)."""
        if child.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, sig)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop every child: SIGTERM in reverse start order, SIGKILL for what outlives the timeout."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for child in reversed(list(self.children.values())):
            if child.running:
                self._signal_group(child, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            if child.process is None:
                continue
            remaining = max(deadline - time.monotonic(), 0.1)
            try:
                await asyncio.wait_for(child.process.wait(), remaining)
            except TimeoutError:
                log.warning("%s did not stop within %.0fs; killing it", child.spec.name, timeout)
                self._signal_group(child, signal.SIGKILL)
                await child.process.wait()
            # Anything the child left in its group goes too.
            self._signal_group(child, signal.SIGKILL)
            self._changed(child)
