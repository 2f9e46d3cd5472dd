"""A pod's status as the kubelet reports it, computed from what the runtime says about its containers.

Phase, conditions (PodReadyToStartContainers, Initialized, Ready, ContainersReady, PodScheduled) and
container statuses follow the kubelet's rules: `restartCount` is the newest container's attempt, a
container waiting to be restarted shows `waiting` with the reason (CrashLoopBackOff ...) and its last
run in `lastState.terminated`, and the phase is Pending until every container has run, Running while
one runs or will be restarted, then Succeeded or Failed. A condition's lastTransitionTime changes only
when its status does, so computing the status again gives the same answer and causes no write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubelet_sim.runtime import ContainerState, ContainerStatus

CONTAINER_ID_SCHEME = "skiff-sim://"


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ContainerView:
    """Everything the status needs about one container of the pod spec."""

    spec: dict[str, Any]
    current: ContainerStatus | None = None
    previous: ContainerStatus | None = None
    # Why the container is not running now (ContainerCreating, CrashLoopBackOff, ...): (reason, message).
    waiting: tuple[str, str] | None = None
    ready: bool = False
    started: bool = False

    @property
    def name(self) -> str:
        return str(self.spec.get("name") or "")

    def exited(self) -> bool:
        return self.current is not None and self.current.state is ContainerState.EXITED

    def running(self) -> bool:
        return self.current is not None and self.current.state is ContainerState.RUNNING

    def succeeded(self) -> bool:
        return self.exited() and self.current is not None and self.current.exit_code == 0


@dataclass
class PodView:
    pod: dict[str, Any]
    host_ip: str
    pod_ip: str
    sandbox_ready: bool
    init: list[ContainerView] = field(default_factory=list)
    containers: list[ContainerView] = field(default_factory=list)


def _terminated(status: ContainerStatus) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": status.exit_code,
            "reason": status.reason or ("Completed" if status.exit_code == 0 else "Error"),
            "startedAt": rfc3339(status.started_at) if status.started_at else None,
            "finishedAt": rfc3339(status.finished_at),
            "containerID": CONTAINER_ID_SCHEME + status.id,
        }
    }


def _waiting(reason: str, message: str) -> dict[str, Any]:
    waiting = {"reason": reason}
    if message:
        waiting["message"] = message
    return {"waiting": waiting}


def container_status(view: ContainerView) -> dict[str, Any]:
    spec, current = view.spec, view.current
    out: dict[str, Any] = {
        "name": view.name,
        "state": {},
        "lastState": {},
        "ready": view.ready and view.running(),
        "restartCount": current.metadata.attempt if current is not None else 0,
        "image": spec.get("image") or "",
        "imageID": current.image_ref if current is not None else "",
        "started": view.started and view.running(),
    }
    if current is not None:
        out["containerID"] = CONTAINER_ID_SCHEME + current.id
    if current is not None and current.state is ContainerState.RUNNING:
        out["state"] = {"running": {"startedAt": rfc3339(current.started_at)}}
    elif current is not None and current.state is ContainerState.EXITED and view.waiting is None:
        out["state"] = _terminated(current)
    else:
        reason, message = view.waiting or ("ContainerCreating", "")
        out["state"] = _waiting(reason, message)
    last = current if (view.waiting is not None and view.exited()) else view.previous
    if last is not None and last.state is ContainerState.EXITED:
        out["lastState"] = _terminated(last)
    return out


def initialized(view: PodView) -> bool:
    return all(c.succeeded() or (c.spec.get("restartPolicy") == "Always" and c.started) for c in view.init)


def phase(view: PodView, restart_policy: str) -> str:
    """The kubelet's getPhase."""
    if not initialized(view):
        failed_init = any(c.exited() and not c.succeeded() and c.waiting is None for c in view.init)
        return "Failed" if failed_init and restart_policy == "Never" else "Pending"
    running = waiting = stopped = succeeded = 0
    for container in view.containers:
        if container.running() and container.waiting is None:
            running += 1
        elif container.exited():
            stopped += 1
            succeeded += 1 if container.succeeded() and container.waiting is None else 0
        elif container.waiting is not None and container.previous is not None:
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(kind: str, ok: bool, reason: str = "", message: str = "") -> dict[str, Any]:
    condition: dict[str, Any] = {"type": kind, "status": "True" if ok else "False", "lastProbeTime": None}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def conditions(view: PodView, pod_phase: str) -> list[dict[str, Any]]:
    completed = pod_phase == "Succeeded"
    init_done = initialized(view)
    pending_init = [c.name for c in view.init if not c.succeeded()]
    unready = [c.name for c in view.containers if not (c.ready and c.running())]
    all_ready = not unready and init_done
    out = [_condition("PodReadyToStartContainers", view.sandbox_ready)]
    if completed:
        out.append(_condition("Initialized", True, "PodCompleted"))
    elif init_done:
        out.append(_condition("Initialized", True))
    else:
        out.append(
            _condition(
                "Initialized",
                False,
                "ContainersNotInitialized",
                f"containers with incomplete status: [{' '.join(pending_init)}]",
            )
        )
    for kind in ("Ready", "ContainersReady"):
        if completed:
            out.append(_condition(kind, False, "PodCompleted"))
        elif all_ready:
            out.append(_condition(kind, True))
        else:
            names = unready or [c.name for c in view.containers]
            out.append(
                _condition(kind, False, "ContainersNotReady", f"containers with unready status: [{' '.join(names)}]")
            )
    return out


def _carry_transition_times(new: list[dict[str, Any]], old: list[dict[str, Any]], stamp: str) -> None:
    before = {c.get("type"): c for c in old}
    for condition in new:
        previous = before.get(condition["type"])
        same = previous is not None and previous.get("status") == condition["status"]
        condition["lastTransitionTime"] = previous.get("lastTransitionTime") if same and previous else stamp


def build_status(view: PodView, now: float, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status to report; `previous` (default: the pod's stored status) supplies the times that
    must not move: startTime and the conditions' lastTransitionTime."""
    pod = view.pod
    spec = pod.get("spec") or {}
    old = previous if previous is not None else pod.get("status") or {}
    restart_policy = spec.get("restartPolicy") or "Always"
    pod_phase = phase(view, restart_policy)
    stamp = rfc3339(now)
    new_conditions = conditions(view, pod_phase)
    old_conditions = old.get("conditions") or []
    _carry_transition_times(new_conditions, old_conditions, stamp)
    scheduled = next((c for c in old_conditions if c.get("type") == "PodScheduled"), None)
    new_conditions.append(
        scheduled or {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": stamp}
    )
    status: dict[str, Any] = {
        "phase": pod_phase,
        "conditions": new_conditions,
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "startTime": old.get("startTime") or stamp,
        "containerStatuses": [container_status(c) for c in view.containers],
    }
    if view.pod_ip:
        status["podIP"] = view.pod_ip
        status["podIPs"] = [{"ip": view.pod_ip}]
    if view.init:
        status["initContainerStatuses"] = [container_status(c) for c in view.init]
    return status


def differs(status: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when writing `status` would change the pod's stored status."""
    return any(current.get(key) != value for key, value in status.items())
