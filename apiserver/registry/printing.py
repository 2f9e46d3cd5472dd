"""Helpers for Table cells, formatted the way kubectl's printers format them."""

from __future__ import annotations

from typing import Any

from apiserver.registry.base import Column

Obj = dict[str, Any]

NONE = "<none>"


def column(name: str, type_: str = "string", description: str = "", wide: bool = False) -> Column:
    return Column(name, type=type_, description=description, priority=1 if wide else 0)


CONTAINERS_COLUMN = column("Containers", description="Names of each container in the template.", wide=True)
IMAGES_COLUMN = column("Images", description="Images referenced by each container in the template.", wide=True)


def meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def name(obj: Obj) -> str:
    return meta(obj).get("name", "")


def containers_and_images(pod_spec: Obj) -> tuple[str, str]:
    """Comma-joined container names and images of a pod spec (the wide CONTAINERS and IMAGES cells)."""
    containers = pod_spec.get("containers") or []
    names = ",".join(c.get("name", "") for c in containers)
    images = ",".join(c.get("image", "") for c in containers)
    return names, images


def template_spec(obj: Obj) -> Obj:
    return (spec(obj).get("template") or {}).get("spec") or {}


def format_labels(labels: dict[str, str] | None) -> str:
    """A label map as `a=b,c=d` (sorted), or `<none>`."""
    if not labels:
        return NONE
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def format_label_selector(selector: Obj | None) -> str:
    """A `metav1.LabelSelector` in selector syntax (`app=web,tier in (a,b)`), or `<none>` if empty."""
    if not selector:
        return NONE
    requirements: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        requirements.append((key, f"{key}={value}"))
    for expression in selector.get("matchExpressions") or []:
        requirements.append((expression.get("key", ""), _format_requirement(expression)))
    text = ",".join(r for _, r in sorted(requirements, key=lambda item: item[0]))
    return text or NONE


def _format_requirement(expression: Obj) -> str:
    key = expression.get("key", "")
    values = ",".join(sorted(expression.get("values") or []))
    operator = expression.get("operator")
    if operator == "In":
        return f"{key} in ({values})"
    if operator == "NotIn":
        return f"{key} notin ({values})"
    if operator == "DoesNotExist":
        return f"!{key}"
    return key


def count(value: Any) -> int:
    """An integer cell: absent counts print as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def access_modes(modes: list[str] | None) -> str:
    """PV/PVC access modes in kubectl's short form (`RWO,ROX`)."""
    short = {
        "ReadWriteOnce": "RWO",
        "ReadOnlyMany": "ROX",
        "ReadWriteMany": "RWX",
        "ReadWriteOncePod": "RWOP",
    }
    present = set(modes or [])
    return ",".join(short[m] for m in short if m in present)
