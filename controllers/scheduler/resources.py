"""Resource amounts as integers: millicores for cpu, whole units (bytes, counts) for everything else.

Quantities are parsed once per distinct string (a cluster has few distinct values), so the hot path
adds and compares plain integers.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from skiff.api.quantity import QuantityError, parse_quantity

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
PODS = "pods"

# What a container without requests counts as when scores compare nodes (kube's non-zero defaults), so
# that best-effort pods still spread instead of piling onto one node.
DEFAULT_MILLI_CPU_REQUEST = 100
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024

Resources = dict[str, int]


@lru_cache(maxsize=4096)
def _amount(name: str, raw: str) -> int:
    try:
        quantity = parse_quantity(raw)
    except QuantityError:
        return 0
    return quantity.milli_value() if name == CPU else quantity.int_value()


def amount(name: str, raw: Any) -> int:
    """One resource's amount: millicores for cpu, whole units otherwise (rounded up, as kube does)."""
    return _amount(name, raw if isinstance(raw, str) else str(raw))


def parse_resources(raw: Mapping[str, Any] | None) -> Resources:
    """A ResourceList (requests, allocatable, overhead) as integers."""
    return {name: amount(name, value) for name, value in (raw or {}).items()}


def add_into(total: Resources, extra: Mapping[str, int]) -> None:
    for name, value in extra.items():
        total[name] = total.get(name, 0) + value


def subtract_from(total: Resources, extra: Mapping[str, int]) -> None:
    for name, value in extra.items():
        left = total.get(name, 0) - value
        if left:
            total[name] = left
        else:
            total.pop(name, None)


def max_into(total: Resources, other: Mapping[str, int]) -> None:
    for name, value in other.items():
        if value > total.get(name, 0):
            total[name] = value
