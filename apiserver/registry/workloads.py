"""Workload controllers' objects: Deployments, ReplicaSets, ReplicationControllers, StatefulSets,
DaemonSets, PodTemplates and ControllerRevisions."""

from __future__ import annotations

import re
from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from apiserver.registry.podspec import default_pod_template, validate_pod_template
from skiff.api import validation as v
from skiff.api.errors import Cause

SELECTOR_MISMATCH = "`selector` does not match template `labels`"
_PERCENT = re.compile(r"^(\d+)%$")


# -- shared rules -----------------------------------------------------------------------------------


def validate_selector_and_template(spec: Obj, kind_word: str) -> list[Cause]:
    """A label-selector workload: a non-empty selector that selects its own pod template."""
    selector = spec.get("selector")
    causes: list[Cause] = []
    if selector is None:
        causes.append(v.required("spec.selector"))
    elif v.selector_is_empty(selector):
        causes.append(v.invalid("spec.selector", selector, f"empty selector is invalid for {kind_word}"))
    else:
        causes += v.validate_label_selector(selector, "spec.selector")
    template = spec.get("template")
    if template is None:
        return [*causes, v.required("spec.template")]
    labels = (template.get("metadata") or {}).get("labels") or {}
    if selector and not v.selector_is_empty(selector) and not v.selector_matches(selector, labels):
        causes.append(v.invalid("spec.template.metadata.labels", labels, SELECTOR_MISMATCH))
    return causes + validate_pod_template(template, "spec.template")


def validate_counts(spec: Obj, *field_names: str) -> list[Cause]:
    causes: list[Cause] = []
    for field_name in field_names:
        causes += v.non_negative(f"spec.{field_name}", spec.get(field_name))
    return causes


def validate_int_or_percent(value: object, path: str) -> list[Cause]:
    """maxSurge/maxUnavailable: a non-negative integer or a percentage up to 100%."""
    if value is None:
        return []
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if not match:
            return [v.invalid(path, value, "must be an integer or percentage (e.g '5%')")]
        if int(match.group(1)) > 100:
            return [v.invalid(path, value, "must not be greater than 100%")]
        return []
    return v.non_negative(path, value)


def is_zero(value: object) -> bool:
    return value in (0, "0%", None)


def validate_rolling_update(rolling: Obj, path: str) -> list[Cause]:
    surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
    causes = validate_int_or_percent(surge, v.child(path, "maxSurge"))
    causes += validate_int_or_percent(unavailable, v.child(path, "maxUnavailable"))
    if is_zero(surge) and is_zero(unavailable):
        detail = "may not be 0 when `maxSurge` is 0"
        causes.append(v.invalid(v.child(path, "maxUnavailable"), unavailable or 0, detail))
    return causes


def selector_update_causes(new: Obj, old: Obj) -> list[Cause]:
    new_selector, old_selector = p.spec(new).get("selector"), p.spec(old).get("selector")
    if new_selector != old_selector:
        return [v.immutable("spec.selector", new_selector)]
    return []


class WorkloadStrategy(Strategy):
    """Shared by controllers of pods: template defaults and a status that is theirs to write."""

    status_update_keeps_metadata = ("labels",)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        self.default_spec(spec)
        default_pod_template(spec.get("template"))

    def default_spec(self, spec: Obj) -> None:
        """Kind-specific spec defaults."""

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("spec") != old.get("spec")


def _replicas_ratio(obj: Obj) -> str:
    return f"{p.count(p.status(obj).get('readyReplicas'))}/{p.count(p.spec(obj).get('replicas'))}"


def _wide_cells(obj: Obj, selector: str) -> list[str]:
    containers, images = p.containers_and_images(p.template_spec(obj))
    return [containers, images, selector]


SELECTOR_WIDE = p.column("Selector", description="The label selector of the pods.", wide=True)


# -- Deployment -------------------------------------------------------------------------------------


class DeploymentStrategy(WorkloadStrategy):
    status_subresource = True

    def default_spec(self, spec: Obj) -> None:
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = validate_selector_and_template(spec, "deployment")
        causes += validate_counts(spec, "replicas", "minReadySeconds", "revisionHistoryLimit")
        causes += self._validate_strategy(spec.get("strategy") or {})
        deadline = spec.get("progressDeadlineSeconds")
        if isinstance(deadline, int) and deadline <= (spec.get("minReadySeconds") or 0):
            causes.append(v.invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
        return causes

    def _validate_strategy(self, strategy: Obj) -> list[Cause]:
        kind = strategy.get("type")
        causes = v.one_of("spec.strategy.type", kind, ("Recreate", "RollingUpdate"), allow_empty=False)
        rolling = strategy.get("rollingUpdate")
        if kind == "Recreate" and rolling is not None:
            detail = "may not be specified when strategy `type` is 'Recreate'"
            causes.append(v.forbidden("spec.strategy.rollingUpdate", detail))
        elif kind == "RollingUpdate" and isinstance(rolling, dict):
            causes += validate_rolling_update(rolling, "spec.strategy.rollingUpdate")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return selector_update_causes(new, old)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        # Annotations count too, because the controller copies them onto the ReplicaSets it owns.
        new_annotations = new.get("metadata", {}).get("annotations")
        old_annotations = old.get("metadata", {}).get("annotations")
        return new.get("spec") != old.get("spec") or new_annotations != old_annotations

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Ready", description="Number of the pod with ready state"),
            p.column(
                "Up-to-date",
                "integer",
                "Pods of this deployment that run the current template.",
            ),
            p.column(
                "Available",
                "integer",
                "Pods of this deployment that have been ready for at least minReadySeconds.",
            ),
            AGE_COLUMN,
            p.CONTAINERS_COLUMN,
            p.IMAGES_COLUMN,
            SELECTOR_WIDE,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        status = p.status(obj)
        return [
            p.name(obj),
            _replicas_ratio(obj),
            p.count(status.get("updatedReplicas")),
            p.count(status.get("availableReplicas")),
            age_of(obj),
            *_wide_cells(obj, p.format_label_selector(p.spec(obj).get("selector"))),
        ]


# -- ReplicaSet and ReplicationController ----------------------------------------------------------

_REPLICA_COLUMNS = [
    NAME_COLUMN,
    p.column("Desired", "integer", "Number of desired pods."),
    p.column("Current", "integer", "The most recently observed number of replicas."),
    p.column("Ready", "integer", "The number of pods targeted by this set with a Ready Condition."),
    AGE_COLUMN,
    p.CONTAINERS_COLUMN,
    p.IMAGES_COLUMN,
    SELECTOR_WIDE,
]


def _replica_cells(obj: Obj, selector: str) -> list[Any]:
    status = p.status(obj)
    return [
        p.name(obj),
        p.count(p.spec(obj).get("replicas")),
        p.count(status.get("replicas")),
        p.count(status.get("readyReplicas")),
        age_of(obj),
        *_wide_cells(obj, selector),
    ]


def _status_replicas(obj: Obj) -> str:
    return str(p.count(p.status(obj).get("replicas")))


class ReplicaSetStrategy(WorkloadStrategy):
    status_subresource = True

    def default_spec(self, spec: Obj) -> None:
        spec.setdefault("replicas", 1)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = validate_selector_and_template(spec, "deployment")
        return causes + validate_counts(spec, "replicas", "minReadySeconds")

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return selector_update_causes(new, old)

    def table_columns(self) -> list[Column]:
        return list(_REPLICA_COLUMNS)

    def table_row(self, obj: Obj) -> list[Any]:
        return _replica_cells(obj, p.format_label_selector(p.spec(obj).get("selector")))

    def field_selectors(self) -> dict[str, Any]:
        return {"status.replicas": _status_replicas}


class ReplicationControllerStrategy(WorkloadStrategy):
    status_subresource = True

    def default_spec(self, spec: Obj) -> None:
        spec.setdefault("replicas", 1)
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        if labels and not spec.get("selector"):
            spec["selector"] = dict(labels)

    def default(self, obj: Obj) -> None:
        super().default(obj)
        labels = ((p.spec(obj).get("template") or {}).get("metadata") or {}).get("labels")
        metadata = obj.setdefault("metadata", {})
        if labels and not metadata.get("labels"):
            metadata["labels"] = dict(labels)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        selector = spec.get("selector") or {}
        causes = validate_counts(spec, "replicas", "minReadySeconds")
        if not selector:
            causes.append(v.required("spec.selector"))
        causes += v.validate_labels(selector, "spec.selector")
        template = spec.get("template")
        if template is None:
            return [*causes, v.required("spec.template")]
        labels = (template.get("metadata") or {}).get("labels") or {}
        if selector and any(labels.get(k) != value for k, value in selector.items()):
            causes.append(v.invalid("spec.template.metadata.labels", labels, SELECTOR_MISMATCH))
        return causes + validate_pod_template(template, "spec.template")

    def table_columns(self) -> list[Column]:
        return list(_REPLICA_COLUMNS)

    def table_row(self, obj: Obj) -> list[Any]:
        return _replica_cells(obj, p.format_labels(p.spec(obj).get("selector")))

    def field_selectors(self) -> dict[str, Any]:
        return {"status.replicas": _status_replicas}


# -- StatefulSet ------------------------------------------------------------------------------------

STATEFULSET_UPDATE_FORBIDDEN = (
    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
    "'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)
STATEFULSET_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)
RETENTION_POLICIES = ("Delete", "Retain")


class StatefulSetStrategy(WorkloadStrategy):
    status_subresource = True

    def default_spec(self, spec: Obj) -> None:
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        update = spec.setdefault("updateStrategy", {})
        update.setdefault("type", "RollingUpdate")
        if update["type"] == "RollingUpdate":
            update.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = validate_selector_and_template(spec, "statefulset")
        causes += validate_counts(spec, "replicas", "minReadySeconds", "revisionHistoryLimit")
        policy = spec.get("podManagementPolicy")
        causes += v.one_of("spec.podManagementPolicy", policy, ("OrderedReady", "Parallel"), allow_empty=False)
        causes += self._validate_update_strategy(spec.get("updateStrategy") or {})
        retention = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        for when in ("whenDeleted", "whenScaled"):
            path = f"spec.persistentVolumeClaimRetentionPolicy.{when}"
            causes += v.one_of(path, retention.get(when), RETENTION_POLICIES, allow_empty=False)
        return causes

    def _validate_update_strategy(self, update: Obj) -> list[Cause]:
        kind = update.get("type")
        path = "spec.updateStrategy"
        causes = v.one_of(f"{path}.type", kind, ("OnDelete", "RollingUpdate"), allow_empty=False)
        rolling = update.get("rollingUpdate")
        if kind == "OnDelete" and rolling is not None:
            detail = "only allowed for updateStrategy 'RollingUpdate'"
            causes.append(v.invalid(f"{path}.rollingUpdate", rolling, detail))
        elif isinstance(rolling, dict):
            causes += v.non_negative(f"{path}.rollingUpdate.partition", rolling.get("partition"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        new_spec, old_spec = p.spec(new), p.spec(old)
        fixed_new = {k: val for k, val in new_spec.items() if k not in STATEFULSET_MUTABLE}
        fixed_old = {k: val for k, val in old_spec.items() if k not in STATEFULSET_MUTABLE}
        if fixed_new != fixed_old:
            return [v.forbidden("spec", STATEFULSET_UPDATE_FORBIDDEN)]
        return []

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Ready", description="Number of the pod with ready state"),
            AGE_COLUMN,
            p.CONTAINERS_COLUMN,
            p.IMAGES_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        containers, images = p.containers_and_images(p.template_spec(obj))
        return [p.name(obj), _replicas_ratio(obj), age_of(obj), containers, images]


# -- DaemonSet --------------------------------------------------------------------------------------


class DaemonSetStrategy(WorkloadStrategy):
    status_subresource = True

    def default_spec(self, spec: Obj) -> None:
        update = spec.setdefault("updateStrategy", {})
        update.setdefault("type", "RollingUpdate")
        if update["type"] == "RollingUpdate":
            rolling = update.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = validate_selector_and_template(spec, "daemonset")
        causes += validate_counts(spec, "minReadySeconds", "revisionHistoryLimit")
        update = spec.get("updateStrategy") or {}
        kind = update.get("type")
        causes += v.one_of("spec.updateStrategy.type", kind, ("OnDelete", "RollingUpdate"), allow_empty=False)
        if kind == "RollingUpdate" and isinstance(update.get("rollingUpdate"), dict):
            causes += validate_rolling_update(update["rollingUpdate"], "spec.updateStrategy.rollingUpdate")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        return selector_update_causes(new, old)

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
            p.column("Current", "integer", "The number of nodes running at least one daemon pod."),
            p.column("Ready", "integer", "The number of nodes running the daemon pod and ready."),
            p.column("Up-to-date", "integer", "The number of nodes running the updated daemon pod."),
            p.column("Available", "integer", "The number of nodes with an available daemon pod."),
            p.column("Node Selector", description="The node selector of the daemon pods."),
            AGE_COLUMN,
            p.CONTAINERS_COLUMN,
            p.IMAGES_COLUMN,
            SELECTOR_WIDE,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        status = p.status(obj)
        counts = [
            p.count(status.get(f))
            for f in (
                "desiredNumberScheduled",
                "currentNumberScheduled",
                "numberReady",
                "updatedNumberScheduled",
                "numberAvailable",
            )
        ]
        node_selector = p.format_labels(p.template_spec(obj).get("nodeSelector"))
        selector = p.format_label_selector(p.spec(obj).get("selector"))
        return [p.name(obj), *counts, node_selector, age_of(obj), *_wide_cells(obj, selector)]


# -- PodTemplate and ControllerRevision -------------------------------------------------------------


class PodTemplateStrategy(Strategy):
    tracks_generation = False

    def default(self, obj: Obj) -> None:
        default_pod_template(obj.get("template"))

    def validate(self, obj: Obj) -> list[Cause]:
        policies = ("Always", "Never", "OnFailure")
        return validate_pod_template(obj.get("template"), "template", restart_policies=policies)

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Containers", description="Names of each container in the template."),
            p.column("Images", description="Images referenced by each container in the template."),
            p.column("Pod Labels", description="The labels for the pod template."),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        template = obj.get("template") or {}
        containers, images = p.containers_and_images(template.get("spec") or {})
        labels = p.format_labels((template.get("metadata") or {}).get("labels"))
        return [p.name(obj), containers, images, labels]


class ControllerRevisionStrategy(Strategy):
    tracks_generation = False

    def validate(self, obj: Obj) -> list[Cause]:
        revision = obj.get("revision")
        return v.non_negative("revision", revision)

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        if new.get("data") != old.get("data"):
            return [v.immutable("data", new.get("data"))]
        return []

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Controller", description="Controller of the object."),
            p.column("Revision", "integer", "Revision indicates the revision of the state represented by Data."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        return [p.name(obj), _controller_of(obj), p.count(obj.get("revision")), age_of(obj)]


def _controller_of(obj: Obj) -> str:
    for reference in p.meta(obj).get("ownerReferences") or []:
        if reference.get("controller"):
            group = reference.get("apiVersion", "").rpartition("/")[0]
            kind = reference.get("kind", "").lower()
            resource = f"{kind}.{group}" if group else kind
            return f"{resource}/{reference.get('name', '')}"
    return p.NONE
