"""Startup, readiness and liveness probes, run on the probe's own schedule.

Probe n of a container runs at `startedAt + initialDelaySeconds + n * periodSeconds`. A pod sync runs
every probe that has come due since the last one, in order, so the outcome does not depend on when the
sync happened to run. Readiness starts out failed and turns ready after `successThreshold` successes
in a row; `failureThreshold` failures in a row make it unready again, or (startup, liveness) get the
container killed and restarted. Each failed probe records an `Unhealthy` event, as the kubelet does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubelet_sim.runtime import ContainerStatus, Prober
from skiff.runtime import WARNING, EventRecorder

KINDS = (("startup", "startupProbe"), ("readiness", "readinessProbe"), ("liveness", "livenessProbe"))
# After a long pause (a kubelet restart) only this many periods are replayed; older probes are skipped.
MAX_REPLAYED_PERIODS = 20


@dataclass
class _Worker:
    kind: str
    probe: dict[str, Any]
    next_due: float
    result: bool
    successes: int = 0
    failures: int = 0

    @property
    def period(self) -> float:
        return float(self.probe.get("periodSeconds") or 10)

    @property
    def failure_threshold(self) -> int:
        return int(self.probe.get("failureThreshold") or 3)

    def record(self, ok: bool) -> None:
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= int(self.probe.get("successThreshold") or 1):
                self.result = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= self.failure_threshold:
                self.result = False


@dataclass
class ProbeOutcome:
    started: bool = True
    ready: bool = True
    # Set when a startup or liveness probe failed for good: the kubelet kills the container.
    kill_message: str = ""
    next_due: float | None = None


@dataclass
class _ContainerProbes:
    container_id: str
    workers: dict[str, _Worker] = field(default_factory=dict)


class ProbeManager:
    def __init__(self, prober: Prober, recorder: EventRecorder) -> None:
        self.prober = prober
        self.recorder = recorder
        self._containers: dict[tuple[str, str], _ContainerProbes] = {}

    async def run(self, pod: dict[str, Any], spec: dict[str, Any], status: ContainerStatus, now: float) -> ProbeOutcome:
        """Run the probes due for a running container and say where it stands."""
        probes = self._probes_for(pod, spec, status)
        startup = probes.workers.get("startup")
        outcome = ProbeOutcome()
        if startup is not None and not startup.result:
            killed = await self._catch_up(pod, spec, status, startup, now)
            outcome.started = startup.result
            if killed:
                outcome.kill_message = f"Container {spec['name']} failed startup probe, will be restarted"
            if not startup.result:
                outcome.ready = False
                outcome.next_due = startup.next_due
                return outcome
        for kind in ("readiness", "liveness"):
            worker = probes.workers.get(kind)
            if worker is None:
                continue
            if startup is not None and worker.next_due < startup.next_due - startup.period:
                # Readiness and liveness begin once the startup probe has succeeded.
                worker.next_due = startup.next_due - startup.period
            failed = await self._catch_up(pod, spec, status, worker, now)
            if kind == "readiness":
                outcome.ready = worker.result
            elif failed:
                outcome.kill_message = f"Container {spec['name']} failed liveness probe, will be restarted"
            outcome.next_due = min(filter(None, (outcome.next_due, worker.next_due)))
        return outcome

    def _probes_for(self, pod: dict[str, Any], spec: dict[str, Any], status: ContainerStatus) -> _ContainerProbes:
        key = (pod["metadata"]["uid"], spec["name"])
        probes = self._containers.get(key)
        if probes is not None and probes.container_id == status.id:
            return probes
        # A new container (first start or a restart) starts its probes afresh.
        probes = _ContainerProbes(status.id)
        for kind, field_name in KINDS:
            probe = spec.get(field_name)
            if isinstance(probe, dict):
                first = status.started_at + float(probe.get("initialDelaySeconds") or 0)
                probes.workers[kind] = _Worker(kind, probe, first, result=kind == "liveness")
        self._containers[key] = probes
        return probes

    async def _catch_up(
        self, pod: dict[str, Any], spec: dict[str, Any], status: ContainerStatus, worker: _Worker, now: float
    ) -> bool:
        """Run the worker's due probes; True when a liveness or startup probe reached its failure threshold."""
        oldest = now - MAX_REPLAYED_PERIODS * worker.period
        if worker.next_due < oldest:
            skipped = int((oldest - worker.next_due) // worker.period) + 1
            worker.next_due += skipped * worker.period
        while worker.next_due <= now:
            ok, output = await self.prober.probe(worker.kind, worker.probe, status, pod, worker.next_due)
            worker.next_due += worker.period
            worker.record(ok)
            if not ok:
                self.recorder.event(pod, WARNING, "Unhealthy", f"{worker.kind.capitalize()} probe failed: {output}")
                if worker.kind != "readiness" and worker.failures >= worker.failure_threshold:
                    return True
        return False

    def forget(self, uid: str, container: str | None = None) -> None:
        for key in [k for k in self._containers if k[0] == uid and (container is None or k[1] == container)]:
            del self._containers[key]
