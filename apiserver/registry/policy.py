"""PodDisruptionBudgets and HorizontalPodAutoscalers: rules about how many pods may run or stop."""

from __future__ import annotations

from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from apiserver.registry.workloads import validate_int_or_percent
from skiff.api import validation as v
from skiff.api.errors import Cause

UNSET = "<unset>"


class PodDisruptionBudgetStrategy(Strategy):
    status_subresource = True

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes: list[Cause] = []
        if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
            causes.append(v.invalid("spec", spec, "minAvailable and maxUnavailable cannot be both set"))
        causes += validate_int_or_percent(spec.get("minAvailable"), "spec.minAvailable")
        causes += validate_int_or_percent(spec.get("maxUnavailable"), "spec.maxUnavailable")
        causes += v.validate_label_selector(spec.get("selector"), "spec.selector")
        policy = spec.get("unhealthyPodEvictionPolicy")
        causes += v.one_of("spec.unhealthyPodEvictionPolicy", policy, ("AlwaysAllow", "IfHealthyBudget"))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Min Available", description="The minimum number of pods that must be available."),
            p.column("Max Unavailable", description="The maximum number of pods that may be unavailable."),
            p.column(
                "Allowed Disruptions",
                "integer",
                "Calculated number of pods that may be disrupted at this time.",
            ),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec = p.spec(obj)
        minimum = spec.get("minAvailable")
        maximum = spec.get("maxUnavailable")
        return [
            p.name(obj),
            "N/A" if minimum is None else str(minimum),
            "N/A" if maximum is None else str(maximum),
            p.count(p.status(obj).get("disruptionsAllowed")),
            age_of(obj),
        ]


class HorizontalPodAutoscalerStrategy(Strategy):
    status_subresource = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("minReplicas", 1)
        if not spec.get("metrics"):
            target = {"type": "Utilization", "averageUtilization": 80}
            spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": target}}]

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        ref = spec.get("scaleTargetRef") or {}
        causes = [v.required(f"spec.scaleTargetRef.{f}") for f in ("kind", "name") if not ref.get(f)]
        minimum, maximum = spec.get("minReplicas"), spec.get("maxReplicas")
        if isinstance(minimum, int) and minimum < 1:
            causes.append(v.invalid("spec.minReplicas", minimum, "must be greater than or equal to 1"))
        if maximum is None:
            causes.append(v.required("spec.maxReplicas"))
        elif isinstance(minimum, int) and maximum < minimum:
            causes.append(v.invalid("spec.maxReplicas", maximum, "must be greater than or equal to `minReplicas`"))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Reference", description="The object whose scale is managed."),
            p.column("Targets", description="Current and target values of the metrics."),
            p.column("MinPods", description="The lower limit for the number of replicas."),
            p.column("MaxPods", "integer", "The upper limit for the number of replicas."),
            p.column("Replicas", "integer", "Current number of replicas."),
            AGE_COLUMN,
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec = p.spec(obj)
        ref = spec.get("scaleTargetRef") or {}
        minimum = spec.get("minReplicas")
        return [
            p.name(obj),
            f"{ref.get('kind', '')}/{ref.get('name', '')}",
            _targets(spec.get("metrics") or [], p.status(obj).get("currentMetrics") or []),
            UNSET if minimum is None else str(minimum),
            p.count(spec.get("maxReplicas")),
            p.count(p.status(obj).get("currentReplicas")),
            age_of(obj),
        ]


def _targets(metrics: list[Obj], current: list[Obj]) -> str:
    """`cpu: 40%/80%` style summaries of resource metrics; `<unknown>` until a value is observed."""
    if not metrics:
        return p.NONE
    observed = {
        (m.get("resource") or {}).get("name"): (m.get("resource") or {}).get("current") or {}
        for m in current
        if m.get("type") == "Resource"
    }
    cells = []
    for metric in metrics:
        resource = metric.get("resource") or {}
        target = resource.get("target") or {}
        now = observed.get(resource.get("name"), {})
        if target.get("type") == "Utilization":
            value = now.get("averageUtilization")
            shown = f"{value}%" if value is not None else "<unknown>"
            cells.append(f"{resource.get('name', '')}: {shown}/{target.get('averageUtilization')}%")
        else:
            goal = target.get("averageValue") or target.get("value") or ""
            shown = now.get("averageValue") or now.get("value") or "<unknown>"
            cells.append(f"{shown}/{goal}")
    return ", ".join(cells)
