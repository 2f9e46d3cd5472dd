"""A simulated container runtime: sandboxes with real pod IPs, containers that run on a timetable.

No process runs. A container "runs" from its start time; what it does is given by its behaviour
(`behaviour.py`, from `sim.skiff.dev/` annotations): exit after a while with a code, become ready
after a delay, fail its liveness probe, write log lines. Its state at any moment is computed from
those times, so thousands of containers cost only a few timers, and a restarted kubelet that reloads
the saved times finds its containers exactly where they would have been.

State is saved per sandbox under `DATA/kubelet/<node>/runtime/`; pulled images in `images.json`.
Log files are written in the CRI format under each sandbox's log directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubelet_sim import containerlogs
from kubelet_sim.behaviour import Behaviour
from kubelet_sim.ipam import IpAllocator
from kubelet_sim.runtime import (
    ContainerConfig,
    ContainerEvent,
    ContainerMetadata,
    ContainerState,
    ContainerStatus,
    Image,
    ImagePullError,
    PodSandboxConfig,
    PodSandboxMetadata,
    PodSandboxStatus,
    SandboxState,
)

RUNTIME_NAME = "skiff-sim"
RUNTIME_VERSION = "1.0"
# A container killed after its grace period ran out exits as if by SIGKILL.
KILLED_EXIT_CODE = 137
LOG_TICK_SECONDS = 1.0


class NotFoundError(KeyError):
    pass


def image_ref(image: str) -> str:
    """A stable, registry-qualified image ID (`docker.io/library/nginx@sha256:...`) for an image name."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    if ":" in name[slash + 1 :]:
        name = name[: name.rfind(":")]
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


@dataclass
class SimContainer:
    id: str
    sandbox_id: str
    name: str
    attempt: int
    image: str
    log_path: str
    annotations: dict[str, str]
    created_at: float
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    stop_requested_at: float = 0.0
    logged_until: float = 0.0
    notes: list[tuple[float, str]] = field(default_factory=list)
    # The last answer of each kind of probe, so the log shows only changes.
    probe_ok: dict[str, bool] = field(default_factory=dict)

    @functools.cached_property
    def behaviour(self) -> Behaviour:
        return Behaviour.from_annotations(self.annotations)

    def natural_exit(self) -> float | None:
        """When the container ends on its own, if it does."""
        exit_after = self.behaviour.exit_after
        return None if not self.started_at or exit_after is None else self.started_at + exit_after

    def state_at(self, moment: float) -> tuple[ContainerState, float, int, str]:
        """(state, finished_at, exit code, reason) as of `moment`."""
        if self.finished_at and self.finished_at <= moment:
            return ContainerState.EXITED, self.finished_at, self.exit_code, self.reason
        natural = self.natural_exit()
        if natural is not None and natural <= moment:
            code = self.behaviour.exit_code
            return ContainerState.EXITED, natural, code, "Completed" if code == 0 else "Error"
        if self.started_at:
            return ContainerState.RUNNING, 0.0, 0, ""
        return ContainerState.CREATED, 0.0, 0, ""

    def log_lines(self, since: float, until: float) -> list[tuple[float, str]]:
        """What the container printed in (since, until]."""
        if not self.started_at:
            return []
        state, finished, code, _ = self.state_at(until)
        end = finished if state is ContainerState.EXITED else until
        behaviour = self.behaviour
        lines: list[tuple[float, str]] = []
        start = self.started_at
        if since < start <= end:
            lines.append((start, f"skiff-sim: container {self.name} started (image {self.image})"))
            lines += [
                (start, f"{self.name}: line {i}/{behaviour.log_lines}") for i in range(1, behaviour.log_lines + 1)
            ]
        if behaviour.log_every:
            first = max(int((since - start) // behaviour.log_every) + 1, 1)
            tick = first
            while start + tick * behaviour.log_every <= end:
                lines.append((start + tick * behaviour.log_every, f"{self.name}: tick {tick}"))
                tick += 1
        if since < self.stop_requested_at <= end:
            lines.append((self.stop_requested_at, f"skiff-sim: {self.name} received SIGTERM, shutting down"))
        if state is ContainerState.EXITED and since < finished <= until:
            lines.append((finished, f"skiff-sim: container {self.name} exited with code {code}"))
        lines.sort(key=lambda line: line[0])
        return lines


@dataclass
class SimSandbox:
    id: str
    name: str
    namespace: str
    uid: str
    attempt: int
    ip: str
    log_directory: str
    created_at: float
    state: str = SandboxState.READY.value
    containers: dict[str, SimContainer] = field(default_factory=dict)

    def metadata(self) -> PodSandboxMetadata:
        return PodSandboxMetadata(self.name, self.namespace, self.uid, self.attempt)


class SimRuntime:
    """RuntimeService, ImageService and Prober for simulated containers on one node."""

    def __init__(
        self,
        node_dir: Path,
        fail_image_patterns: tuple[str, ...] = (),
        pull_duration: float = 0.5,
    ) -> None:
        self.directory = node_dir / "runtime"
        self.ipam = IpAllocator(node_dir / "ipam")
        self.fail_image_patterns = fail_image_patterns
        self.pull_duration = pull_duration
        self.pod_cidr = ""
        self._sandboxes: dict[str, SimSandbox] = {}
        self._containers: dict[str, SimContainer] = {}
        self._images: dict[str, Image] = {}
        self._subscribers: list[asyncio.Queue[ContainerEvent]] = []
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._ticker: asyncio.Task[None] | None = None

    # -- persistence ------------------------------------------------------------------------------------

    def load(self) -> None:
        """Reload saved sandboxes and images; containers that were running are running still."""
        sandboxes_dir = self.directory / "sandboxes"
        if sandboxes_dir.exists():
            for path in sandboxes_dir.glob("*.json"):
                raw = json.loads(path.read_text())
                containers = {cid: SimContainer(**c) for cid, c in raw.pop("containers").items()}
                for container in containers.values():
                    container.notes = [tuple(note) for note in container.notes]  # type: ignore[misc]
                    container.logged_until = self._resume_log(raw["log_directory"], container)
                sandbox = SimSandbox(**raw, containers=containers)
                self._sandboxes[sandbox.id] = sandbox
                self._containers.update(containers)
        images = self.directory / "images.json"
        if images.exists():
            self._images = {ref: Image(**value) for ref, value in json.loads(images.read_text()).items()}

    @staticmethod
    def _resume_log(log_directory: str, container: SimContainer) -> float:
        # Continue the log after its last line rather than writing what is already there again.
        last = containerlogs.last_timestamp(Path(log_directory) / container.log_path)
        return max(last or 0.0, container.logged_until)

    def _save(self, sandbox: SimSandbox) -> None:
        data = asdict(sandbox)
        _write_json(self.directory / "sandboxes" / f"{sandbox.id}.json", data)

    def _save_images(self) -> None:
        _write_json(self.directory / "images.json", {ref: asdict(image) for ref, image in self._images.items()})

    def start(self) -> None:
        """Arm exit timers for restored containers and start writing periodic log lines."""
        for container in self._containers.values():
            self._arm_exit_timer(container)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_logs(), name="sim-runtime-logs")

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker

    # -- RuntimeService ---------------------------------------------------------------------------------

    async def version(self) -> tuple[str, str]:
        return RUNTIME_NAME, RUNTIME_VERSION

    async def update_runtime_config(self, pod_cidr: str) -> None:
        self.pod_cidr = pod_cidr

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        if not self.pod_cidr:
            raise RuntimeError("network is not ready: the node has no pod CIDR yet")
        meta = config.metadata
        ip = self.ipam.allocate(self.pod_cidr, meta.uid)
        sandbox = SimSandbox(
            id=secrets.token_hex(32),
            name=meta.name,
            namespace=meta.namespace,
            uid=meta.uid,
            attempt=meta.attempt,
            ip=ip,
            log_directory=config.log_directory,
            created_at=time.time(),
        )
        self._sandboxes[sandbox.id] = sandbox
        self._save(sandbox)
        return sandbox.id

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        sandbox = self._sandbox(sandbox_id)
        moment = time.time()
        for container in sandbox.containers.values():
            if container.state_at(moment)[0] is ContainerState.RUNNING:
                self._finish(container, moment, KILLED_EXIT_CODE, "Error")
        sandbox.state = SandboxState.NOTREADY.value
        # The network goes with the sandbox, as CNI DEL releases the address.
        self.ipam.release(sandbox.uid)
        self._save(sandbox)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        sandbox = self._sandboxes.pop(sandbox_id, None)
        if sandbox is None:
            return
        for container_id in sandbox.containers:
            self._containers.pop(container_id, None)
            timer = self._timers.pop(container_id, None)
            if timer is not None:
                timer.cancel()
        if not any(s.uid == sandbox.uid for s in self._sandboxes.values()):
            self.ipam.release(sandbox.uid)
        (self.directory / "sandboxes" / f"{sandbox_id}.json").unlink(missing_ok=True)

    async def pod_sandbox_status(self, sandbox_id: str) -> PodSandboxStatus:
        sandbox = self._sandbox(sandbox_id)
        return PodSandboxStatus(
            sandbox.id, sandbox.metadata(), SandboxState(sandbox.state), sandbox.created_at, sandbox.ip
        )

    async def list_pod_sandboxes(self) -> list[PodSandboxStatus]:
        return [await self.pod_sandbox_status(sandbox_id) for sandbox_id in list(self._sandboxes)]

    async def create_container(self, sandbox_id: str, config: ContainerConfig, sandbox: PodSandboxConfig) -> str:
        owner = self._sandbox(sandbox_id)
        Behaviour.from_annotations(config.annotations)  # refuse a malformed behaviour at creation
        container = SimContainer(
            id=secrets.token_hex(32),
            sandbox_id=sandbox_id,
            name=config.metadata.name,
            attempt=config.metadata.attempt,
            image=config.image,
            log_path=config.log_path,
            annotations=dict(config.annotations),
            created_at=time.time(),
        )
        owner.containers[container.id] = container
        self._containers[container.id] = container
        self._save(owner)
        return container.id

    async def start_container(self, container_id: str) -> None:
        container = self._container(container_id)
        container.started_at = time.time()
        container.logged_until = container.started_at - 1e-6
        self._save(self._sandboxes[container.sandbox_id])
        self._arm_exit_timer(container)
        self._flush_logs(container)

    async def stop_container(self, container_id: str, timeout: float) -> None:
        container = self._container(container_id)
        moment = time.time()
        if container.state_at(moment)[0] is not ContainerState.RUNNING:
            return
        container.stop_requested_at = moment
        self._flush_logs(container)
        delay = container.behaviour.shutdown_delay
        natural = container.natural_exit()
        if natural is not None and natural - moment < min(delay, timeout):
            delay = max(natural - moment, 0.0)
        graceful = delay <= timeout
        await asyncio.sleep(min(delay, max(timeout, 0.0)))
        if container.state_at(time.time())[0] is ContainerState.RUNNING:
            code = container.behaviour.exit_code if graceful else KILLED_EXIT_CODE
            reason = "Completed" if graceful and code == 0 else "Error"
            self._finish(container, time.time(), code, reason)

    async def remove_container(self, container_id: str) -> None:
        container = self._containers.pop(container_id, None)
        if container is None:
            return
        timer = self._timers.pop(container_id, None)
        if timer is not None:
            timer.cancel()
        sandbox = self._sandboxes.get(container.sandbox_id)
        if sandbox is not None:
            sandbox.containers.pop(container_id, None)
            self._save(sandbox)

    async def container_status(self, container_id: str) -> ContainerStatus:
        return self._status(self._container(container_id), time.time())

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        moment = time.time()
        if sandbox_id is None:
            chosen = list(self._containers.values())
        else:
            sandbox = self._sandboxes.get(sandbox_id)
            chosen = list(sandbox.containers.values()) if sandbox is not None else []
        return [self._status(container, moment) for container in chosen]

    async def container_events(self) -> AsyncIterator[ContainerEvent]:  # type: ignore[override]
        queue: asyncio.Queue[ContainerEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    # -- ImageService -----------------------------------------------------------------------------------

    async def pull_image(self, image: str) -> Image:
        await asyncio.sleep(self.pull_duration)
        for pattern in self.fail_image_patterns:
            if fnmatch.fnmatchcase(image, pattern):
                raise ImagePullError(
                    f'failed to pull and unpack image "{image}": simulated failure: the image matches the '
                    f'node\'s --fail-image-pattern "{pattern}"'
                )
        size = 20_000_000 + int(hashlib.sha256(image.encode()).hexdigest()[:6], 16) * 10
        pulled = Image(image, image_ref(image), size)
        self._images[image] = pulled
        self._save_images()
        return pulled

    async def image_status(self, image: str) -> Image | None:
        return self._images.get(image)

    # -- Prober -----------------------------------------------------------------------------------------

    async def probe(
        self, kind: str, probe: dict[str, Any], container: ContainerStatus, pod: dict[str, Any], at: float
    ) -> tuple[bool, str]:
        sim = self._containers.get(container.id)
        if sim is None or sim.state_at(at)[0] is not ContainerState.RUNNING:
            return False, "container is not running"
        behaviour, running_for = sim.behaviour, at - sim.started_at
        if kind == "liveness":
            ok = behaviour.liveness_fail_after is None or running_for < behaviour.liveness_fail_after
        else:
            ok = running_for >= behaviour.ready_after
            if kind == "readiness" and behaviour.readiness_fail_after is not None:
                ok = ok and running_for < behaviour.readiness_fail_after
        output = "" if ok else _failure_output(probe, (pod.get("status") or {}).get("podIP", ""))
        self._note_probe(sim, kind, ok, probe, at)
        return ok, output

    def _note_probe(self, sim: SimContainer, kind: str, ok: bool, probe: dict[str, Any], at: float) -> None:
        # The container's log shows each change of a probe's answer, as an access log would.
        if sim.probe_ok.get(kind) == ok:
            return
        sim.probe_ok[kind] = ok
        sim.notes.append((at, f"{sim.name}: {kind} probe {_describe_probe(probe)}: {'ok' if ok else 'failing'}"))

    # -- internals --------------------------------------------------------------------------------------

    def _sandbox(self, sandbox_id: str) -> SimSandbox:
        sandbox = self._sandboxes.get(sandbox_id)
        if sandbox is None:
            raise NotFoundError(f"sandbox {sandbox_id} not found")
        return sandbox

    def _container(self, container_id: str) -> SimContainer:
        container = self._containers.get(container_id)
        if container is None:
            raise NotFoundError(f"container {container_id} not found")
        return container

    def _status(self, container: SimContainer, moment: float) -> ContainerStatus:
        state, finished, code, reason = container.state_at(moment)
        image = self._images.get(container.image)
        return ContainerStatus(
            id=container.id,
            sandbox_id=container.sandbox_id,
            metadata=ContainerMetadata(container.name, container.attempt),
            state=state,
            image=container.image,
            image_ref=image.id if image else image_ref(container.image),
            created_at=container.created_at,
            started_at=container.started_at,
            finished_at=finished,
            exit_code=code,
            reason=reason,
            log_path=container.log_path,
        )

    def _finish(self, container: SimContainer, moment: float, code: int, reason: str) -> None:
        container.finished_at, container.exit_code, container.reason = moment, code, reason
        timer = self._timers.pop(container.id, None)
        if timer is not None:
            timer.cancel()
        self._flush_logs(container)
        self._save(self._sandboxes[container.sandbox_id])
        self._publish(container, "CONTAINER_STOPPED_EVENT")

    def _arm_exit_timer(self, container: SimContainer) -> None:
        natural = container.natural_exit()
        if natural is None or container.finished_at or container.id in self._timers:
            return
        loop = asyncio.get_running_loop()
        delay = max(natural - time.time(), 0.0)
        self._timers[container.id] = loop.call_later(delay, self._exited_on_its_own, container.id)

    def _exited_on_its_own(self, container_id: str) -> None:
        self._timers.pop(container_id, None)
        container = self._containers.get(container_id)
        if container is not None:
            self._flush_logs(container)
            self._publish(container, "CONTAINER_STOPPED_EVENT")

    def _publish(self, container: SimContainer, kind: str) -> None:
        sandbox = self._sandboxes.get(container.sandbox_id)
        event = ContainerEvent(container.id, container.sandbox_id, sandbox.uid if sandbox else "", kind)
        for queue in self._subscribers:
            queue.put_nowait(event)

    def flush_logs(self, container_id: str) -> None:
        """Bring a container's log file up to now (the log server calls this before reading)."""
        container = self._containers.get(container_id)
        if container is not None:
            self._flush_logs(container)

    def _flush_logs(self, container: SimContainer) -> None:
        sandbox = self._sandboxes.get(container.sandbox_id)
        if sandbox is None or not container.started_at:
            return
        moment = time.time()
        lines = container.log_lines(container.logged_until, moment)
        lines += [note for note in container.notes if note[0] <= moment]
        container.notes = [note for note in container.notes if note[0] > moment]
        container.logged_until = moment
        lines.sort(key=lambda line: line[0])  # stable: lines of one moment keep their order
        containerlogs.append_lines(Path(sandbox.log_directory) / container.log_path, lines)

    async def _tick_logs(self) -> None:
        while True:
            await asyncio.sleep(LOG_TICK_SECONDS)
            for container in list(self._containers.values()):
                chatty = container.behaviour.log_every is not None or container.notes
                if chatty and container.state_at(container.logged_until)[0] is ContainerState.RUNNING:
                    self._flush_logs(container)


def _describe_probe(probe: dict[str, Any]) -> str:
    if "httpGet" in probe:
        get = probe["httpGet"] or {}
        return f"GET {get.get('path', '/')} on port {get.get('port', '')}"
    if "tcpSocket" in probe:
        return f"tcp port {(probe['tcpSocket'] or {}).get('port', '')}"
    if "exec" in probe:
        return "exec " + " ".join((probe["exec"] or {}).get("command") or [])
    if "grpc" in probe:
        return f"grpc port {(probe['grpc'] or {}).get('port', '')}"
    return "(no handler)"


def _failure_output(probe: dict[str, Any], pod_ip: str) -> str:
    # What the kubelet reports for each kind of failing probe.
    if "httpGet" in probe:
        return "HTTP probe failed with statuscode: 503"
    if "tcpSocket" in probe:
        port = (probe["tcpSocket"] or {}).get("port", "")
        return f"dial tcp {pod_ip}:{port}: connect: connection refused"
    if "grpc" in probe:
        return 'service unhealthy (responded with "NOT_SERVING")'
    command = (probe.get("exec") or {}).get("command") or []
    return f"command {json.dumps(' '.join(command))} exited with 1"


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)
