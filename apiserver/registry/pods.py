"""Pods: defaults, validation, the initial status, kubectl's columns and field selectors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import NAME_COLUMN, Column, Obj, Strategy, age_of
from apiserver.registry.podspec import (
    default_pod_spec,
    qos_class,
    validate_pod_spec,
    validate_pod_spec_update,
)
from skiff.api.errors import Cause
from skiff.api.timefmt import age, try_parse_time

NODE_UNREACHABLE_REASON = "NodeLost"
TERMINAL_PHASES = ("Succeeded", "Failed")
RESTARTS_DESCRIPTION = (
    "The number of times the containers in this pod have been restarted and when the last container "
    "in this pod has restarted."
)


class PodStrategy(Strategy):
    return_deleted_object = True

    status_subresource = True
    # Old kubelets wrote broken owner references through `/status`, so kube ignores them there.
    status_update_keeps_metadata = ("ownerReferences",)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        default_pod_spec(spec)
        # What the Priority admission plugin sets when a pod names no priority class.
        if not spec.get("priorityClassName"):
            spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        # The QoS class is fixed at creation; a status writer cannot change it.
        if "qosClass" in (old.get("status") or {}):
            new.setdefault("status", {})["qosClass"] = old["status"]["qosClass"]

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_pod_spec(obj.get("spec"), "spec")

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return validate_pod_spec_update(new.get("spec") or {}, old.get("spec") or {})

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
            p.column("Status", description="The aggregate status of the containers in this pod."),
            p.column(
                "Restarts",
                description=RESTARTS_DESCRIPTION,
            ),
            p.column("Age", description="Time since the object was created."),
            p.column("IP", description="IP address allocated to the pod.", wide=True),
            p.column("Node", description="Name of the node where the pod is scheduled.", wide=True),
            p.column("Nominated Node", description="Node the pod is nominated to run on.", wide=True),
            p.column("Readiness Gates", description="Pod readiness gates.", wide=True),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        summary = summarize_pod(obj)
        status = p.status(obj)
        return [
            p.name(obj),
            f"{summary.ready}/{summary.total}",
            summary.reason,
            summary.restarts_cell(),
            age_of(obj),
            status.get("podIP") or p.NONE,
            p.spec(obj).get("nodeName") or p.NONE,
            status.get("nominatedNodeName") or p.NONE,
            _readiness_gates(obj),
        ]

    def field_selectors(self) -> dict[str, Any]:
        return {
            "spec.nodeName": lambda o: p.spec(o).get("nodeName", ""),
            "spec.restartPolicy": lambda o: p.spec(o).get("restartPolicy", ""),
            "spec.schedulerName": lambda o: p.spec(o).get("schedulerName", ""),
            "spec.serviceAccountName": lambda o: p.spec(o).get("serviceAccountName", ""),
            "spec.hostNetwork": lambda o: "true" if p.spec(o).get("hostNetwork") else "false",
            "status.phase": lambda o: p.status(o).get("phase", ""),
            "status.podIP": lambda o: p.status(o).get("podIP", ""),
            "status.nominatedNodeName": lambda o: p.status(o).get("nominatedNodeName", ""),
        }

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("spec") != old.get("spec")


class PodSummary:
    """What kubectl's STATUS, READY and RESTARTS columns say about a pod."""

    def __init__(self, reason: str, ready: int, total: int, restarts: int, last_restart: datetime | None):
        self.reason = reason
        self.ready = ready
        self.total = total
        self.restarts = restarts
        self.last_restart = last_restart

    def restarts_cell(self) -> str:
        if self.restarts and self.last_restart is not None:
            return f"{self.restarts} ({age(self.last_restart.isoformat())} ago)"
        return str(self.restarts)


def summarize_pod(pod: Obj) -> PodSummary:
    """Compute the STATUS reason the way kubectl does: phase, then init containers, then containers."""
    spec, status = p.spec(pod), p.status(pod)
    init_specs = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    tally = _Tally(total=len(spec.get("containers") or []) + len(sidecars))
    tally.reason = status.get("reason") or status.get("phase") or ""
    if _condition(status, "PodScheduled", "False") == "SchedulingGated":
        tally.reason = "SchedulingGated"
    initializing = _scan_init_containers(status.get("initContainerStatuses") or [], init_specs, sidecars, tally)
    if not initializing or _condition_true(status, "Initialized"):
        tally.restarts, tally.last_restart = tally.sidecar_restarts, tally.sidecar_last_restart
        _scan_containers(status, tally)
    if pod.get("metadata", {}).get("deletionTimestamp"):
        if status.get("reason") == NODE_UNREACHABLE_REASON:
            tally.reason = "Unknown"
        elif status.get("phase") not in TERMINAL_PHASES:
            tally.reason = "Terminating"
    return PodSummary(tally.reason, tally.ready, tally.total, tally.restarts, tally.last_restart)


class _Tally:
    def __init__(self, total: int) -> None:
        self.total = total
        self.reason = ""
        self.ready = 0
        self.restarts = 0
        self.last_restart: datetime | None = None
        self.sidecar_restarts = 0
        self.sidecar_last_restart: datetime | None = None

    def note_restart(self, container: Obj, sidecar: bool) -> None:
        self.restarts += int(container.get("restartCount") or 0)
        finished = try_parse_time(((container.get("lastState") or {}).get("terminated") or {}).get("finishedAt"))
        if finished is not None and (self.last_restart is None or finished > self.last_restart):
            self.last_restart = finished
        if sidecar:
            self.sidecar_restarts += int(container.get("restartCount") or 0)
            if finished is not None and (self.sidecar_last_restart is None or finished > self.sidecar_last_restart):
                self.sidecar_last_restart = finished


def _scan_init_containers(statuses: list[Obj], init_specs: list[Obj], sidecars: set[Any], tally: _Tally) -> bool:
    for position, container in enumerate(statuses):
        sidecar = container.get("name") in sidecars
        tally.note_restart(container, sidecar)
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if sidecar and container.get("started"):
            tally.ready += 1 if container.get("ready") else 0
            continue
        if terminated is not None:
            tally.reason = "Init:" + _terminated_reason(terminated)
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            tally.reason = "Init:" + waiting["reason"]
        else:
            tally.reason = f"Init:{position}/{len(init_specs)}"
        return True
    return False


def _scan_containers(status: Obj, tally: _Tally) -> None:
    has_running = False
    for container in reversed(status.get("containerStatuses") or []):
        tally.note_restart(container, sidecar=False)
        state = container.get("state") or {}
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if waiting is not None and waiting.get("reason"):
            tally.reason = waiting["reason"]
        elif terminated is not None:
            tally.reason = terminated.get("reason") or _terminated_reason(terminated)
        elif container.get("ready") and state.get("running") is not None:
            has_running = True
            tally.ready += 1
    # A completed container beside a running one means the pod as a whole is still running.
    if tally.reason == "Completed" and has_running:
        tally.reason = "Running" if _condition_true(status, "Ready") else "NotReady"


def _terminated_reason(terminated: Obj) -> str:
    if terminated.get("reason"):
        return terminated["reason"]
    if terminated.get("signal"):
        return f"Signal:{terminated['signal']}"
    return f"ExitCode:{terminated.get('exitCode', 0)}"


def _condition(status: Obj, condition_type: str, value: str) -> str | None:
    """The reason of a condition with the given type and status, or None when there is none."""
    for condition in status.get("conditions") or []:
        if condition.get("type") == condition_type and condition.get("status") == value:
            return condition.get("reason") or ""
    return None


def _condition_true(status: Obj, condition_type: str) -> bool:
    return _condition(status, condition_type, "True") is not None


def _readiness_gates(pod: Obj) -> str:
    gates = p.spec(pod).get("readinessGates") or []
    if not gates:
        return p.NONE
    status = p.status(pod)
    passed = sum(1 for gate in gates if _condition_true(status, gate.get("conditionType", "")))
    return f"{passed}/{len(gates)}"
