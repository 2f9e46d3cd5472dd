"""Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it.

Candidates race to write their identity into the Lease. Every write carries the resourceVersion that
was read, so of two candidates writing at once one gets 409 Conflict and stays a follower. The leader
renews `renewTime` every `retry_period`; a follower takes over once the lease is unheld or has not
been renewed for `lease_duration`, incrementing `leaseTransitions`. A leader that cannot renew within
`renew_deadline` stops leading (its work is cancelled) before the lease can expire, so two leaders
never act at once as long as `renew_deadline < lease_duration`.

Expiry is judged by this process's own clock from the moment it last saw the lease change (client-go's
rule, immune to clock skew between machines); only on first sight does it trust the lease's
`renewTime`, so that a lease abandoned long ago is taken over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import httpx

from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.api.timefmt import format_micro_time, now, try_parse_time
from skiff.client.builder import ResourceRef

log = logging.getLogger(__name__)

LEASES: ResourceType = BUILTINS.by_kind("coordination.k8s.io", "v1", "Lease")  # type: ignore[assignment]

StartedLeading = Callable[[], Awaitable[None]]
StoppedLeading = Callable[[], Awaitable[None] | None]
NewLeader = Callable[[str], None]


class LeaseClient(Protocol):
    """The verbs election needs of `skiff.client.rest.AsyncClient`."""

    async def get(
        self, resource: ResourceRef, name: str, namespace: str | None = None, subresource: str = ""
    ) -> dict[str, Any]: ...

    async def create(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]: ...

    async def update(self, obj: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]: ...


@dataclass
class _Observation:
    """The lease as last read, and when (by the monotonic clock) its holder or renewTime last changed."""

    lease: dict[str, Any]
    holder: str
    renew_time: str
    changed_at: float


class LeaderElector:
    def __init__(
        self,
        client: LeaseClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: StartedLeading | None = None,
        on_stopped_leading: StoppedLeading | None = None,
        on_new_leader: NewLeader | None = None,
        release_on_cancel: bool = True,
    ) -> None:
        if not identity:
            raise ValueError("a leader election candidate needs an identity")
        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("need retry_period < renew_deadline < lease_duration")
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.on_new_leader = on_new_leader
        self.release_on_cancel = release_on_cancel
        self._observed: _Observation | None = None
        self._leading = False
        self._reported_leader = ""

    @property
    def is_leader(self) -> bool:
        return self._leading

    @property
    def leader(self) -> str:
        """The holder this candidate last saw ("" if none)."""
        return self._observed.holder if self._observed else ""

    async def run(self) -> None:
        """Campaign until elected, lead until the lease is lost, then return.

        Cancelling `run` while leading stops the leader's work and, with `release_on_cancel`, clears
        the lease's holder so a successor need not wait for it to expire.
        """
        await self._acquire()
        work = asyncio.create_task(self._lead(), name=f"leading {self.name}")
        try:
            await self._renew_until_lost(work)
        except asyncio.CancelledError:
            await self._step_down(work)
            if self.release_on_cancel:
                await self._release()
            raise
        await self._step_down(work)

    # ------------------------------------------------------------------------------------------------
    # Campaign and renewal

    async def _acquire(self) -> None:
        while not await self._attempt():
            await asyncio.sleep(self.retry_period)
        log.info("%s became leader of lease %s/%s", self.identity, self.namespace, self.name)
        self._leading = True

    async def _renew_until_lost(self, work: asyncio.Task[None]) -> None:
        last_renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.retry_period)
            if work.done() and not work.cancelled() and work.exception() is not None:
                log.error("the leader's work failed; giving up the lease", exc_info=work.exception())
                return
            remaining = self.renew_deadline - (time.monotonic() - last_renewed)
            if remaining > 0 and await self._attempt(timeout=remaining):
                last_renewed = time.monotonic()
                continue
            if self._held_by_other() or time.monotonic() - last_renewed >= self.renew_deadline:
                log.warning("%s lost lease %s/%s", self.identity, self.namespace, self.name)
                return

    async def _attempt(self, timeout: float | None = None) -> bool:
        """One try to acquire or renew; False on any failure (which is logged, never raised)."""
        try:
            return await asyncio.wait_for(self._try_acquire_or_renew(), timeout or self.renew_deadline)
        except TimeoutError:
            log.warning("lease %s/%s: the API server did not answer in time", self.namespace, self.name)
        except ApiError as error:
            if error.code != 409:
                log.warning("lease %s/%s: %s", self.namespace, self.name, error)
        except (httpx.HTTPError, OSError) as error:
            log.warning("lease %s/%s: cannot reach the API server: %s", self.namespace, self.name, error)
        return False

    async def _try_acquire_or_renew(self) -> bool:
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except ApiError as error:
            if error.code != 404:
                raise
            created = await self.client.create(self._new_lease(), self.namespace)
            self._observe(created)
            return True
        self._observe(lease)
        if self._held_by_other() and not self._expired():
            return False
        updated = await self.client.update(self._claimed(lease), self.namespace)
        self._observe(updated)
        return True

    def _observe(self, lease: dict[str, Any]) -> None:
        spec = lease.get("spec") or {}
        holder, renew_time = spec.get("holderIdentity") or "", spec.get("renewTime") or ""
        previous = self._observed
        if previous is not None and (previous.holder, previous.renew_time) == (holder, renew_time):
            previous.lease = lease
            return
        changed_at = time.monotonic()
        if previous is None:
            changed_at -= _age_seconds(renew_time)
        self._observed = _Observation(lease, holder, renew_time, changed_at)
        self._report_leader(holder)

    def _report_leader(self, holder: str) -> None:
        if holder and holder != self._reported_leader:
            self._reported_leader = holder
            if self.on_new_leader is not None:
                self.on_new_leader(holder)

    def _held_by_other(self) -> bool:
        return self._observed is not None and self._observed.holder not in ("", self.identity)

    def _expired(self) -> bool:
        assert self._observed is not None
        spec = self._observed.lease.get("spec") or {}
        duration = spec.get("leaseDurationSeconds") or self.lease_duration
        return time.monotonic() - self._observed.changed_at >= float(duration)

    # ------------------------------------------------------------------------------------------------
    # Lease bodies

    def _new_lease(self) -> dict[str, Any]:
        stamp = format_micro_time(now())
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": _whole_seconds(self.lease_duration),
                "acquireTime": stamp,
                "renewTime": stamp,
                "leaseTransitions": 0,
            },
        }

    def _claimed(self, lease: dict[str, Any]) -> dict[str, Any]:
        """`lease` renewed by us, or taken over (new acquireTime, one more transition)."""
        spec = dict(lease.get("spec") or {})
        stamp = format_micro_time(now())
        if spec.get("holderIdentity") != self.identity:
            spec["acquireTime"] = stamp
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec["holderIdentity"] = self.identity
        spec["leaseDurationSeconds"] = _whole_seconds(self.lease_duration)
        spec["renewTime"] = stamp
        # The resourceVersion read stays in metadata: it is the update's precondition.
        return {**lease, "spec": spec}

    # ------------------------------------------------------------------------------------------------
    # Leading and stepping down

    async def _lead(self) -> None:
        if self.on_started_leading is not None:
            await self.on_started_leading()

    async def _step_down(self, work: asyncio.Task[None]) -> None:
        self._leading = False
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work
        if self.on_stopped_leading is not None:
            try:
                result = self.on_stopped_leading()
                if result is not None:
                    await result
            except Exception:
                log.exception("on_stopped_leading failed")

    async def _release(self) -> None:
        """Clear the holder so another candidate takes over at once instead of after expiry."""
        if self._observed is None or self._observed.holder != self.identity:
            return
        lease = self._observed.lease
        spec = dict(lease.get("spec") or {})
        stamp = format_micro_time(now())
        # As client-go does: no holder, a one-second duration, transitions unchanged.
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=stamp, acquireTime=stamp)
        try:
            await asyncio.wait_for(self.client.update({**lease, "spec": spec}, self.namespace), 5)
        except (ApiError, httpx.HTTPError, OSError, TimeoutError) as error:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, error)
            return
        log.info("%s released lease %s/%s", self.identity, self.namespace, self.name)


def _age_seconds(timestamp: str) -> float:
    moment: datetime | None = try_parse_time(timestamp)
    if moment is None:
        return 0.0
    return max(0.0, (now() - moment).total_seconds())


def _whole_seconds(seconds: float) -> int:
    return max(1, round(seconds))
