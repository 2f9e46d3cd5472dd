"""How a simulated container behaves, read from `sim.skiff.dev/` pod annotations.

`sim.skiff.dev/<setting>` applies to every container of the pod; `sim.skiff.dev/<container>.<setting>`
applies to one container and wins over the pod-wide form. Container names cannot contain dots, so the
first dot separates the container from the setting. kubelet_sim/README.md documents each setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kubelet_sim.config import parse_duration

PREFIX = "sim.skiff.dev/"
DURATIONS = ("exit-after", "ready-after", "readiness-fail-after", "liveness-fail-after", "log-every", "shutdown-delay")
INTEGERS = ("exit-code", "log-lines")
SETTINGS = (*DURATIONS, *INTEGERS)


def container_annotations(pod_annotations: Mapping[str, str], container: str) -> dict[str, str]:
    """The `sim.skiff.dev/<setting>` annotations in force for one container."""
    general: dict[str, str] = {}
    specific: dict[str, str] = {}
    for key, value in pod_annotations.items():
        if not key.startswith(PREFIX):
            continue
        rest = key[len(PREFIX) :]
        owner, dot, setting = rest.partition(".")
        if not dot:
            general[PREFIX + rest] = str(value)
        elif owner == container:
            specific[PREFIX + setting] = str(value)
    return {**general, **specific}


@dataclass(frozen=True)
class Behaviour:
    exit_after: float | None = None
    exit_code: int = 0
    ready_after: float = 0.0
    readiness_fail_after: float | None = None
    liveness_fail_after: float | None = None
    log_lines: int = 0
    log_every: float | None = None
    shutdown_delay: float = 0.0

    @classmethod
    def from_annotations(cls, annotations: Mapping[str, str]) -> Behaviour:
        """Parse the settings; raises ValueError naming the annotation that is malformed."""
        values: dict[str, float | int] = {}
        for setting in SETTINGS:
            raw = annotations.get(PREFIX + setting)
            if raw is None:
                continue
            try:
                value: float | int = parse_duration(raw) if setting in DURATIONS else int(raw)
            except ValueError:
                kind = "a duration such as 5s" if setting in DURATIONS else "an integer"
                raise ValueError(f'annotation {PREFIX}{setting}: "{raw}" is not {kind}') from None
            if value < 0 and setting != "exit-code":
                raise ValueError(f'annotation {PREFIX}{setting}: "{raw}" must not be negative')
            values[setting.replace("-", "_")] = value
        if values.get("log_every") == 0:
            raise ValueError(f"annotation {PREFIX}log-every: must be more than zero")
        return cls(**values)  # type: ignore[arg-type]
