"""Cluster-level and bookkeeping kinds: Namespaces, Nodes, Events, Leases, PriorityClasses,
ResourceQuotas and LimitRanges."""

from __future__ import annotations

from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from apiserver.registry.podspec import TAINT_EFFECTS
from skiff.api import validation as v
from skiff.api.errors import Cause
from skiff.api.quantity import QuantityError, parse_quantity
from skiff.api.timefmt import age, format_time, try_parse_time

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
ROLE_LABEL_PREFIX = "node-role.kubernetes.io/"
LEGACY_ROLE_LABEL = "kubernetes.io/role"
CREATED_AT_COLUMN = Column("Created At", type="date", description="Time at which the object was created.")


def created_at(obj: Obj) -> str:
    moment = try_parse_time(p.meta(obj).get("creationTimestamp"))
    return format_time(moment) if moment else ""


# -- Namespace --------------------------------------------------------------------------------------


class NamespaceStrategy(Strategy):
    return_deleted_object = True

    tracks_generation = False
    status_subresource = True
    name_rule = staticmethod(v.name_is_dns_label)

    def default(self, obj: Obj) -> None:
        # Every namespace carries its own name as a label, so selectors can pick namespaces by name.
        metadata = obj.setdefault("metadata", {})
        if metadata.get("name"):
            metadata.setdefault("labels", {})[NAMESPACE_NAME_LABEL] = metadata["name"]

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]

    def initial_status(self, obj: Obj) -> Obj | None:
        return {"phase": "Active"}

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for position, finalizer in enumerate(p.spec(obj).get("finalizers") or []):
            causes += v.invalid_each(f"spec.finalizers[{position}]", finalizer, v.qualified_name(finalizer))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if p.name(new) != p.name(old):
            return [v.immutable("metadata.name", p.name(new))]
        return []

    def table_columns(self) -> list[Column]:
        return [NAME_COLUMN, p.column("Status", description="The status of the namespace"), AGE_COLUMN]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), p.status(obj).get("phase", ""), age_of(obj)]

    def field_selectors(self) -> dict[str, Any]:
        return {"status.phase": lambda o: p.status(o).get("phase", ""), "name": p.name}


# -- Node -------------------------------------------------------------------------------------------


class NodeStrategy(Strategy):
    tracks_generation = False
    status_subresource = True

    def default(self, obj: Obj) -> None:
        status = obj.get("status")
        # A node that reports capacity but no allocatable can hand out all of its capacity.
        if isinstance(status, dict) and status.get("capacity") and not status.get("allocatable"):
            status["allocatable"] = dict(status["capacity"])

    def prepare_for_create(self, obj: Obj) -> None:
        # Kubelets register with their status already filled in, so it is kept on create.
        status = obj.get("status")
        super().prepare_for_create(obj)
        if status is not None:
            obj["status"] = status

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes: list[Cause] = []
        for position, taint in enumerate(spec.get("taints") or []):
            path = f"spec.taints[{position}]"
            key = taint.get("key") or ""
            causes += v.invalid_each(f"{path}.key", key, v.qualified_name(key))
            value = taint.get("value") or ""
            causes += v.invalid_each(f"{path}.value", value, v.label_value(value))
            causes += v.one_of(f"{path}.effect", taint.get("effect"), TAINT_EFFECTS, allow_empty=False)
        for position, cidr in enumerate(spec.get("podCIDRs") or []):
            causes += v.invalid_each(f"spec.podCIDRs[{position}]", cidr, v.cidr(cidr))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Status", description="The status of the node"),
            p.column("Roles", description="The roles of the node"),
            AGE_COLUMN,
            p.column("Version", description="Kubelet Version reported by the node."),
            p.column("Internal-IP", description="The node's address inside the cluster.", wide=True),
            p.column("External-IP", description="The node's address outside the cluster.", wide=True),
            p.column("OS-Image", description="OS Image reported by the node.", wide=True),
            p.column("Kernel-Version", description="Kernel Version reported by the node.", wide=True),
            p.column("Container-Runtime", description="Container runtime version reported by the node.", wide=True),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        info = p.status(obj).get("nodeInfo") or {}
        return [
            p.name(obj),
            node_status(obj),
            ",".join(node_roles(obj)) or p.NONE,
            age_of(obj),
            info.get("kubeletVersion", ""),
            _node_address(obj, "InternalIP"),
            _node_address(obj, "ExternalIP"),
            info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>",
        ]

    def field_selectors(self) -> dict[str, Any]:
        return {"spec.unschedulable": lambda o: "true" if p.spec(o).get("unschedulable") else "false"}


def node_status(node: Obj) -> str:
    """`Ready`, `NotReady` or `Unknown`, with `,SchedulingDisabled` for a cordoned node."""
    states = [
        "Ready" if c.get("status") == "True" else "NotReady"
        for c in p.status(node).get("conditions") or []
        if c.get("type") == "Ready"
    ][:1] or ["Unknown"]
    if p.spec(node).get("unschedulable"):
        states.append("SchedulingDisabled")
    return ",".join(states)


def node_roles(node: Obj) -> list[str]:
    roles = set()
    for key, value in (p.meta(node).get("labels") or {}).items():
        if key.startswith(ROLE_LABEL_PREFIX) and key[len(ROLE_LABEL_PREFIX) :]:
            roles.add(key[len(ROLE_LABEL_PREFIX) :])
        elif key == LEGACY_ROLE_LABEL and value:
            roles.add(value)
    return sorted(roles)


def _node_address(node: Obj, address_type: str) -> str:
    for address in p.status(node).get("addresses") or []:
        if address.get("type") == address_type:
            return address.get("address") or p.NONE
    return p.NONE


# -- Event ------------------------------------------------------------------------------------------

EVENT_TYPES = ("Normal", "Warning")
NOTE_LIMIT = 1024
REASON_LIMIT = 128


def _involved(event: Obj) -> Obj:
    """The object an event is about, whichever API group the event was written through."""
    return event.get("involvedObject") or event.get("regarding") or {}


def _event_source(event: Obj) -> str:
    source = event.get("source") or event.get("deprecatedSource") or {}
    component = source.get("component") or event.get("reportingComponent") or event.get("reportingController")
    instance = source.get("host") or event.get("reportingInstance")
    if not component:
        return ""
    return f"{component}, {instance}" if instance else component


class EventStrategy(Strategy):
    tracks_generation = False

    def validate(self, obj: Obj) -> list[Cause]:
        if self.resource.group == "events.k8s.io":
            return self._validate_structured(obj)
        causes: list[Cause] = []
        involved_namespace = _involved(obj).get("namespace")
        namespace = p.meta(obj).get("namespace")
        if involved_namespace and involved_namespace != namespace:
            causes.append(v.invalid("involvedObject.namespace", involved_namespace, "does not match event.namespace"))
        if obj.get("eventTime"):
            causes += self._require("reportingComponent", "action", "reason", "reportingInstance", obj=obj)
        return causes

    def _validate_structured(self, obj: Obj) -> list[Cause]:
        causes = self._require("eventTime", "reportingController", "reportingInstance", "action", "reason", obj=obj)
        event_type = obj.get("type")
        if event_type not in EVENT_TYPES:
            causes.append(v.invalid("type", "", f"has invalid value: {event_type or ''}"))
        if len(obj.get("note") or "") > NOTE_LIMIT:
            causes.append(v.too_long("note", NOTE_LIMIT))
        if len(obj.get("reason") or "") > REASON_LIMIT:
            causes.append(v.too_long("reason", REASON_LIMIT))
        return causes

    @staticmethod
    def _require(*field_names: str, obj: Obj) -> list[Cause]:
        return [v.required(name) for name in field_names if not obj.get(name)]

    def table_columns(self) -> list[Column]:
        return [
            p.column("Last Seen", description="The time at which the most recent occurrence was recorded."),
            p.column("Type", description="Type of this event (Normal, Warning)."),
            p.column("Reason", description="A short reason for the event."),
            p.column("Object", description="The object this event is about."),
            p.column("Subobject", description="The part of the object this event is about.", wide=True),
            p.column("Source", description="The component reporting this event.", wide=True),
            p.column("Message", description="A human-readable description of the event."),
            p.column("First Seen", description="The time at which the event was first recorded.", wide=True),
            p.column("Count", description="The number of times this event has occurred.", wide=True),
            p.column("Name", description="Name of the event.", wide=True),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        involved = _involved(obj)
        first = obj.get("firstTimestamp") or obj.get("deprecatedFirstTimestamp") or obj.get("eventTime")
        last = obj.get("lastTimestamp") or obj.get("deprecatedLastTimestamp") or first
        occurrences = obj.get("count") or obj.get("deprecatedCount") or 1
        series = obj.get("series")
        if isinstance(series, dict):
            last, occurrences = series.get("lastObservedTime") or last, series.get("count") or occurrences
        kind = (involved.get("kind") or "").lower()
        target = f"{kind}/{involved['name']}" if involved.get("name") else kind
        return [
            age(last),
            obj.get("type", ""),
            obj.get("reason", ""),
            target,
            involved.get("fieldPath", ""),
            _event_source(obj),
            (obj.get("message") or obj.get("note") or "").strip(),
            age(first),
            occurrences,
            p.name(obj),
        ]

    def field_selectors(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            f"involvedObject.{name}": _involved_field(name)
            for name in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
        }
        fields["reason"] = lambda o: o.get("reason", "")
        fields["reportingComponent"] = lambda o: o.get("reportingComponent") or o.get("reportingController") or ""
        fields["source"] = lambda o: (o.get("source") or o.get("deprecatedSource") or {}).get("component", "")
        fields["type"] = lambda o: o.get("type", "")
        return fields


def _involved_field(name: str) -> Any:
    return lambda event: _involved(event).get(name, "")


# -- Lease ------------------------------------------------------------------------------------------


class LeaseStrategy(Strategy):
    tracks_generation = False

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = v.positive("spec.leaseDurationSeconds", spec.get("leaseDurationSeconds"))
        causes += v.non_negative("spec.leaseTransitions", spec.get("leaseTransitions"))
        strategy = spec.get("strategy")
        causes += v.one_of("spec.strategy", strategy, ("OldestEmulationVersion",))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Holder", description="The identity of the holder of the lease."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), p.spec(obj).get("holderIdentity", ""), age_of(obj)]


# -- PriorityClass ----------------------------------------------------------------------------------

HIGHEST_USER_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_PREFIX = "system-"


class PriorityClassStrategy(Strategy):
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        obj.setdefault("preemptionPolicy", "PreemptLowerPriority")

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        value = obj.get("value")
        if value is None:
            causes.append(v.required("value"))
        elif value > HIGHEST_USER_PRIORITY and not p.name(obj).startswith(SYSTEM_PRIORITY_PREFIX):
            detail = f"maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"
            causes.append(v.forbidden("value", detail))
        policy = obj.get("preemptionPolicy")
        causes += v.one_of("preemptionPolicy", policy, ("Never", "PreemptLowerPriority"), allow_empty=False)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes: list[Cause] = []
        if new.get("value") != old.get("value"):
            causes.append(v.forbidden("value", "may not be changed in an update."))
        if new.get("preemptionPolicy") != old.get("preemptionPolicy"):
            causes.append(v.immutable("preemptionPolicy", new.get("preemptionPolicy")))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Value", "integer", "The priority of pods that use this class."),
            p.column("Global-Default", "boolean", "Whether pods without a class get this one."),
            AGE_COLUMN,
            p.column("PreemptionPolicy", description="Whether pods of this class preempt lower ones."),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        value = p.count(obj.get("value"))
        return [
            p.name(obj),
            value,
            bool(obj.get("globalDefault")),
            age_of(obj),
            obj.get("preemptionPolicy", ""),
        ]


# -- ResourceQuota and LimitRange -------------------------------------------------------------------


def _validate_amounts(amounts: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for name, raw in amounts.items():
        try:
            amount = parse_quantity(raw)
        except QuantityError as error:
            causes.append(v.invalid(f"{path}[{name}]", raw, str(error)))
            continue
        if amount.sign() < 0:
            causes.append(v.invalid(f"{path}[{name}]", str(amount), "must be greater than or equal to 0"))
    return causes


class ResourceQuotaStrategy(Strategy):
    tracks_generation = False
    status_subresource = True

    def validate(self, obj: Obj) -> list[Cause]:
        return _validate_amounts(p.spec(obj).get("hard") or {}, "spec.hard")

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            AGE_COLUMN,
            p.column("Request", description="Used and hard request amounts."),
            p.column("Limit", description="Used and hard limit amounts."),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        status = p.status(obj)
        used, hard = status.get("used") or {}, status.get("hard") or {}
        requests, limits = [], []
        # Like kube's printer, show what the quota controller has accounted (status.hard), not the spec.
        for name in sorted(hard):
            cell = f"{name}: {_quantity_text(used.get(name))}/{_quantity_text(hard.get(name))}"
            (limits if name.startswith("limits.") else requests).append(cell)
        return [p.name(obj), age_of(obj), ", ".join(requests), ", ".join(limits)]


def _quantity_text(raw: object) -> str:
    try:
        return str(parse_quantity(raw if raw is not None else 0))
    except QuantityError:
        return str(raw)


class LimitRangeStrategy(Strategy):
    tracks_generation = False

    def validate(self, obj: Obj) -> list[Cause]:
        causes: list[Cause] = []
        for position, limit in enumerate(p.spec(obj).get("limits") or []):
            path = f"spec.limits[{position}]"
            causes += v.one_of(f"{path}.type", limit.get("type"), ("Container", "PersistentVolumeClaim", "Pod"))
            for field_name in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                causes += _validate_amounts(limit.get(field_name) or {}, f"{path}.{field_name}")
        return causes

    def table_columns(self) -> list[Column]:
        return [NAME_COLUMN, CREATED_AT_COLUMN]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), created_at(obj)]
