"""The container runtime interface the kubelet drives, shaped after Kubernetes' CRI.

The pod lifecycle code (`pods.py`) talks only to these protocols: `RuntimeService` (pod sandboxes,
containers, runtime config, container events), `ImageService` (pulls) and `Prober` (probe results).
`simruntime.py` implements them with simulated containers; a real runtime (a CRI gRPC client) could be
added beside it without touching the lifecycle code.

As in CRI, the sandbox owns the pod's network identity: `run_pod_sandbox` returns a sandbox whose
status carries the pod IP, allocated from the pod CIDR given to `update_runtime_config`.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


class ContainerState(enum.Enum):
    CREATED = "CONTAINER_CREATED"
    RUNNING = "CONTAINER_RUNNING"
    EXITED = "CONTAINER_EXITED"
    UNKNOWN = "CONTAINER_UNKNOWN"


class SandboxState(enum.Enum):
    READY = "SANDBOX_READY"
    NOTREADY = "SANDBOX_NOTREADY"


@dataclass(frozen=True)
class PodSandboxMetadata:
    name: str
    namespace: str
    uid: str
    attempt: int = 0


@dataclass
class PodSandboxConfig:
    metadata: PodSandboxMetadata
    hostname: str = ""
    log_directory: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class PodSandboxStatus:
    id: str
    metadata: PodSandboxMetadata
    state: SandboxState
    created_at: float
    ip: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerMetadata:
    name: str
    attempt: int = 0


@dataclass
class ContainerConfig:
    metadata: ContainerMetadata
    image: str
    command: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    # Relative to the sandbox's log directory: `<container>/<attempt>.log`.
    log_path: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class ContainerStatus:
    id: str
    sandbox_id: str
    metadata: ContainerMetadata
    state: ContainerState
    image: str
    image_ref: str
    created_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    log_path: str = ""


@dataclass(frozen=True)
class ContainerEvent:
    """CRI's ContainerEventResponse: something happened to a container on its own (it exited)."""

    container_id: str
    sandbox_id: str
    pod_uid: str
    kind: str  # CONTAINER_STARTED_EVENT, CONTAINER_STOPPED_EVENT, ...


@dataclass(frozen=True)
class Image:
    ref: str
    id: str
    size: int


class ImagePullError(Exception):
    """The registry refused the image (not found, unauthorized ...)."""


class RuntimeService(Protocol):
    async def version(self) -> tuple[str, str]:
        """(runtime name, runtime version), e.g. ("skiff-sim", "1.0")."""
        ...

    async def update_runtime_config(self, pod_cidr: str) -> None: ...

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str: ...

    async def stop_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def remove_pod_sandbox(self, sandbox_id: str) -> None: ...

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus: ...

    async def list_pod_sandboxes(self) -> list[PodSandboxStatus]: ...

    async def create_container(self, sandbox_id: str, config: ContainerConfig, sandbox: PodSandboxConfig) -> str: ...

    async def start_container(self, container_id: str) -> None: ...

    async def stop_container(self, container_id: str, timeout: float) -> None:
        """Ask the container to stop (SIGTERM) and kill it after `timeout` seconds; returns once it exited."""
        ...

    async def remove_container(self, container_id: str) -> None: ...

    async def container_status(self, container_id: str) -> ContainerStatus: ...

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...

    def container_events(self) -> AsyncIterator[ContainerEvent]: ...


class ImageService(Protocol):
    async def pull_image(self, image: str) -> Image:
        """Pull `image` (raises `ImagePullError`); returns it once present."""
        ...

    async def image_status(self, image: str) -> Image | None: ...


class Prober(Protocol):
    """Runs one probe of a container; returns (success, output)."""

    async def probe(
        self, kind: str, probe: dict[str, Any], container: ContainerStatus, pod: dict[str, Any], at: float
    ) -> tuple[bool, str]: ...
