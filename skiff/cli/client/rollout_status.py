"""Rollout progress: kubectl's status viewers for deployments, daemon sets and stateful sets, and the
output that follows them (one line per change, or a live progress bar on a terminal)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from skiff.cli.client.errors import CommandError

Obj = dict[str, Any]


@dataclass
class RolloutState:
    message: str
    done: bool
    updated: int = 0
    wanted: int = 0
    available: int = 0


def deployment_status(deployment: Obj) -> RolloutState:
    meta, spec, status = deployment.get("metadata") or {}, deployment.get("spec") or {}, deployment.get("status") or {}
    name = meta.get("name")
    wanted = spec.get("replicas", 1)
    updated, total = status.get("updatedReplicas", 0), status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    counts = {"updated": updated, "wanted": wanted, "available": available}
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return RolloutState("Waiting for deployment spec update to be observed...", False, **counts)
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            raise CommandError(f'deployment "{name}" exceeded its progress deadline')
    prefix = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < wanted:
        return RolloutState(f"{prefix}{updated} out of {wanted} new replicas have been updated...", False, **counts)
    if total > updated:
        return RolloutState(f"{prefix}{total - updated} old replicas are pending termination...", False, **counts)
    if available < updated:
        return RolloutState(f"{prefix}{available} of {updated} updated replicas are available...", False, **counts)
    return RolloutState(f'deployment "{name}" successfully rolled out', True, **counts)


def daemonset_status(daemonset: Obj) -> RolloutState:
    meta, status = daemonset.get("metadata") or {}, daemonset.get("status") or {}
    name = meta.get("name")
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return RolloutState("Waiting for daemon set spec update to be observed...", False)
    wanted, updated = status.get("desiredNumberScheduled", 0), status.get("updatedNumberScheduled", 0)
    available = status.get("numberAvailable", 0)
    counts = {"updated": updated, "wanted": wanted, "available": available}
    prefix = f'Waiting for daemon set "{name}" rollout to finish: '
    if updated < wanted:
        return RolloutState(f"{prefix}{updated} out of {wanted} new pods have been updated...", False, **counts)
    if available < wanted:
        return RolloutState(f"{prefix}{available} of {wanted} updated pods are available...", False, **counts)
    return RolloutState(f'daemon set "{name}" successfully rolled out', True, **counts)


def statefulset_status(statefulset: Obj) -> RolloutState:
    meta, spec, status = (
        statefulset.get("metadata") or {},
        statefulset.get("spec") or {},
        statefulset.get("status") or {},
    )
    if meta.get("generation", 0) > status.get("observedGeneration", 0):
        return RolloutState("Waiting for statefulset spec update to be observed...", False)
    wanted, ready = spec.get("replicas", 1), status.get("readyReplicas", 0)
    updated = status.get("updatedReplicas", 0)
    counts = {"updated": updated, "wanted": wanted, "available": ready}
    if ready < wanted:
        return RolloutState(f"Waiting for {wanted - ready} pods to be ready...", False, **counts)
    if status.get("updateRevision") != status.get("currentRevision"):
        return RolloutState(
            f"waiting for statefulset rolling update to complete {updated} pods at revision "
            f"{status.get('updateRevision')}...",
            False,
            **counts,
        )
    return RolloutState(
        f"statefulset rolling update complete {status.get('currentReplicas', 0)} pods at revision "
        f"{status.get('currentRevision')}...",
        True,
        **counts,
    )


STATUS_VIEWERS = {
    "Deployment": deployment_status,
    "DaemonSet": daemonset_status,
    "StatefulSet": statefulset_status,
}


@dataclass
class StatusProgress:
    """Prints each new status line; on a terminal, also a live bar of updated and available replicas."""

    fancy: bool
    last: str = ""
    _progress: Any = field(default=None, repr=False)
    _tasks: dict[str, Any] = field(default_factory=dict, repr=False)

    def __enter__(self) -> StatusProgress:
        if self.fancy:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._progress = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn())
            self._progress.start()
            self._tasks = {k: self._progress.add_task(k, total=1) for k in ("updated", "available")}
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def show(self, state: RolloutState) -> bool:
        if self._progress is not None:
            self._progress.update(self._tasks["updated"], completed=state.updated, total=max(state.wanted, 1))
            self._progress.update(self._tasks["available"], completed=state.available, total=max(state.wanted, 1))
        if state.message != self.last:
            self.last = state.message
            if self._progress is not None:
                self._progress.console.print(state.message, highlight=False, markup=False)
            else:
                print(state.message, file=sys.stdout, flush=True)
        return state.done
