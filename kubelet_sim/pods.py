"""The pod lifecycle on one node: a level-triggered sync per pod, driven through the runtime interface.

A sync reads the pod (from the shared informer) and the runtime's sandbox and containers, and takes
the next steps: volumes → sandbox with an IP → image → init containers in order → containers, then
probes, restarts with backoff and, once `deletionTimestamp` is set, stopping the containers within the
grace period and deleting the pod for good (grace 0, uid precondition). It ends by writing the
computed status through `pods/status` when it differs from what the API server has. A sync never
waits: pulls, kills and container exits come back as new syncs (runtime events, finished tasks) and
timed steps (probes, backoff) as delayed syncs, so a few workers handle thousands of pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelet_sim.backoff import Backoff
from kubelet_sim.behaviour import Behaviour, container_annotations
from kubelet_sim.images import ImageManager
from kubelet_sim.podstatus import ContainerView, PodView, build_status, differs
from kubelet_sim.probes import ProbeManager
from kubelet_sim.runtime import (
    ContainerConfig,
    ContainerMetadata,
    ContainerState,
    ContainerStatus,
    ImageService,
    PodSandboxConfig,
    PodSandboxMetadata,
    Prober,
    RuntimeService,
    SandboxState,
)
from kubelet_sim.volumes import VolumeManager
from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.client.rest import AsyncClient
from skiff.runtime import NORMAL, WARNING, Controller, EventRecorder, Informer, make_key, split_key

log = logging.getLogger("skiff.kubelet.pods")

PODS: ResourceType = BUILTINS.by_kind("", "v1", "Pod")  # type: ignore[assignment]
TERMINAL_PHASES = ("Succeeded", "Failed")
MOUNT_RETRY_MAX = 8.0
SANDBOX_RETRY_SECONDS = 5.0


def go_duration(seconds: float) -> str:
    """Go's time.Duration rendering for whole seconds: 10s, 1m20s, 5m0s."""
    whole = int(seconds)
    minutes, rest = divmod(whole, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def pod_full_name(pod: dict[str, Any]) -> str:
    metadata = pod["metadata"]
    return f"{metadata['name']}_{metadata['namespace']}({metadata['uid']})"


class LogError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class LogTarget:
    path: Path
    container_id: str


class PodWorkers:
    """Syncs the pods bound to one node."""

    def __init__(
        self,
        node_name: str,
        host_ip: Callable[[], str],
        pod_cidr: Callable[[], str | None],
        client: AsyncClient,
        recorder: EventRecorder,
        pods: Informer,
        runtime: RuntimeService,
        images: ImageService,
        prober: Prober,
        volumes: VolumeManager,
        backoff_base: float,
        backoff_max: float,
        workers: int,
    ) -> None:
        self.node_name = node_name
        self.host_ip = host_ip
        self.pod_cidr = pod_cidr
        self.client = client
        self.recorder = recorder
        self.pods = pods
        self.runtime = runtime
        self.volumes = volumes
        self.crash_backoff = Backoff(backoff_base, backoff_max, time.time)
        self.images = ImageManager(images, recorder, Backoff(backoff_base, backoff_max, time.time), self.enqueue)
        self.probes = ProbeManager(prober, recorder)
        self.controller: Controller[str] = Controller(
            f"kubelet-{node_name}", self.sync, workers=workers, wait_for=[pods], logger=log
        )
        # uid -> (sandbox id, pod key)
        self._sandboxes: dict[str, tuple[str, str]] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._stopping: set[str] = set()
        self._mount_failures: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- plumbing -----------------------------------------------------------------------------------------

    def enqueue(self, key: str) -> None:
        self.controller.enqueue(key)

    def enqueue_all(self) -> None:
        for pod in self.pods.by_index("nodeName", self.node_name):
            self.enqueue(make_key(pod["metadata"]["namespace"], pod["metadata"]["name"]))

    async def restore(self) -> None:
        """Pick up the sandboxes a previous run left (their pods are synced, or cleaned up if gone)."""
        for sandbox in await self.runtime.list_pod_sandboxes():
            key = make_key(sandbox.metadata.namespace, sandbox.metadata.name)
            self._sandboxes[sandbox.metadata.uid] = (sandbox.id, key)
            self.enqueue(key)

    async def follow_runtime_events(self) -> None:
        async for event in self.runtime.container_events():
            entry = self._sandboxes.get(event.pod_uid)
            if entry is not None:
                self.enqueue(entry[1])

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the sync -----------------------------------------------------------------------------------------

    async def sync(self, key: str) -> float | None:
        namespace, name = split_key(key)
        pod = self.pods.get(namespace, name)
        if pod is not None and (pod.get("spec") or {}).get("nodeName") != self.node_name:
            pod = None
        uid = pod["metadata"]["uid"] if pod is not None else None
        for old_uid, (_, owner) in list(self._sandboxes.items()):
            if owner == key and old_uid != uid:
                await self._teardown(old_uid)
        if pod is None:
            return None
        if pod["metadata"].get("deletionTimestamp"):
            return await self._terminate(pod, key)
        return await self._run(pod, key)

    async def _run(self, pod: dict[str, Any], key: str) -> float | None:
        uid = pod["metadata"]["uid"]
        terminal = (pod.get("status") or {}).get("phase") in TERMINAL_PHASES
        entry = self._sandboxes.get(uid)
        if entry is None:
            if terminal:
                return None
            started = await self._start_sandbox(pod, key)
            if isinstance(started, float | type(None)):
                return started
            sandbox_id = started
        else:
            sandbox_id = entry[0]
            if not terminal and VolumeManager.refreshed(pod):
                for failure in await self.volumes.mount_all(pod):
                    self.recorder.event(pod, WARNING, "FailedMount", failure)
        now = time.time()
        sandbox = await self.runtime.pod_sandbox_status(sandbox_id)
        statuses = await self.runtime.list_containers(sandbox_id)
        can_start = not terminal and sandbox.state is SandboxState.READY
        view, wake = await self._drive(pod, key, sandbox_id, sandbox.ip, can_start, statuses, now)
        view.sandbox_ready = sandbox.state is SandboxState.READY
        status = await self._write_status(pod, view)
        if status["phase"] in TERMINAL_PHASES and sandbox.state is SandboxState.READY:
            # A finished pod gives its network back, as the kubelet tears down its sandbox.
            await self.runtime.stop_pod_sandbox(sandbox_id)
            return None
        if VolumeManager.refreshed(pod) and not terminal:
            wake.append(now + self.volumes.objects.ttl)
        return max(min(wake) - time.time(), 0.05) if wake else None

    async def _start_sandbox(self, pod: dict[str, Any], key: str) -> str | float | None:
        """The new sandbox's id, or when to try again (None: when something changes)."""
        uid = pod["metadata"]["uid"]
        cidr = self.pod_cidr()
        if not cidr:
            await self._write_status(pod, self._waiting_view(pod))
            return None
        failures = await self.volumes.mount_all(pod)
        if failures:
            for failure in failures:
                self.recorder.event(pod, WARNING, "FailedMount", failure)
            await self._write_status(pod, self._waiting_view(pod))
            count = self._mount_failures[uid] = self._mount_failures.get(uid, 0) + 1
            return min(0.5 * 2 ** (count - 1), MOUNT_RETRY_MAX)
        self._mount_failures.pop(uid, None)
        await self.runtime.update_runtime_config(cidr)
        try:
            sandbox_id = await self.runtime.run_pod_sandbox(self._sandbox_config(pod))
        except Exception as error:
            self.recorder.event(pod, WARNING, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {error}")
            await self._write_status(pod, self._waiting_view(pod))
            return SANDBOX_RETRY_SECONDS
        self._sandboxes[uid] = (sandbox_id, key)
        return sandbox_id

    def _sandbox_config(self, pod: dict[str, Any]) -> PodSandboxConfig:
        metadata = pod["metadata"]
        return PodSandboxConfig(
            metadata=PodSandboxMetadata(metadata["name"], metadata["namespace"], metadata["uid"]),
            hostname=(pod.get("spec") or {}).get("hostname") or metadata["name"],
            log_directory=str(self.volumes.pod_dir(metadata["uid"]) / "logs"),
            labels=dict(metadata.get("labels") or {}),
            annotations=dict(metadata.get("annotations") or {}),
        )

    def _waiting_view(self, pod: dict[str, Any]) -> PodView:
        spec = pod.get("spec") or {}
        init = [ContainerView(c, waiting=("PodInitializing", "")) for c in spec.get("initContainers") or []]
        first = "PodInitializing" if init else "ContainerCreating"
        containers = [ContainerView(c, waiting=(first, "")) for c in spec.get("containers") or []]
        if init:
            init[0].waiting = ("ContainerCreating", "")
        return PodView(pod, self.host_ip(), "", False, init, containers)

    # -- containers ---------------------------------------------------------------------------------------

    async def _drive(
        self,
        pod: dict[str, Any],
        key: str,
        sandbox_id: str,
        pod_ip: str,
        can_start: bool,
        statuses: list[ContainerStatus],
        now: float,
    ) -> tuple[PodView, list[float]]:
        """Take the next step for each container; returns the pod as it now stands and when to look again."""
        spec = pod.get("spec") or {}
        policy = spec.get("restartPolicy") or "Always"
        by_name: dict[str, list[ContainerStatus]] = {}
        for status in sorted(statuses, key=lambda s: s.metadata.attempt):
            by_name.setdefault(status.metadata.name, []).append(status)
        wake: list[float] = []
        blocked = False
        init_views = []
        for container in spec.get("initContainers") or []:
            view = _view(container, by_name)
            init_views.append(view)
            if blocked:
                view.waiting = view.waiting or (("PodInitializing", "") if view.current is None else None)
            elif not view.succeeded():
                blocked = True
                if not view.running():
                    # Init containers of an Always pod are retried like OnFailure.
                    init_policy = "OnFailure" if policy == "Always" else policy
                    await self._ensure(pod, key, sandbox_id, view, init_policy, can_start, wake, now)
                    blocked = not view.succeeded()
        app_views = []
        for container in spec.get("containers") or []:
            view = _view(container, by_name)
            app_views.append(view)
            if blocked:
                if view.current is None:
                    view.waiting = ("PodInitializing", "")
                continue
            if view.running():
                await self._probe(pod, key, view, wake, now)
            else:
                await self._ensure(pod, key, sandbox_id, view, policy, can_start, wake, now)
        return PodView(pod, self.host_ip(), pod_ip, True, init_views, app_views), wake

    async def _probe(self, pod: dict[str, Any], key: str, view: ContainerView, wake: list[float], now: float) -> None:
        assert view.current is not None
        outcome = await self.probes.run(pod, view.spec, view.current, now)
        view.ready, view.started = outcome.ready, outcome.started
        if outcome.next_due is not None:
            wake.append(outcome.next_due)
        if outcome.kill_message:
            self._kill(pod, key, view.current, outcome.kill_message, _grace(pod))

    async def _ensure(
        self,
        pod: dict[str, Any],
        key: str,
        sandbox_id: str,
        view: ContainerView,
        policy: str,
        can_start: bool,
        wake: list[float],
        now: float,
    ) -> None:
        """Start (or restart, after its backoff) a container that is not running."""
        current, name, uid = view.current, view.name, pod["metadata"]["uid"]
        if current is not None and current.state is ContainerState.CREATED and can_start:
            await self._start(pod, current.id, name)
            view.current = await self.runtime.container_status(current.id)
            return
        if current is not None and current.state is ContainerState.EXITED:
            if not can_start or not should_restart(policy, current.exit_code):
                return
            remaining = self.crash_backoff.remaining((uid, name), current.finished_at)
            if remaining > 0:
                delay = go_duration(self.crash_backoff.delay((uid, name)))
                full = pod_full_name(pod)
                view.waiting = ("CrashLoopBackOff", f"back-off {delay} restarting failed container={name} pod={full}")
                self.recorder.event(
                    pod, WARNING, "BackOff", f"Back-off restarting failed container {name} in pod {full}"
                )
                wake.append(now + remaining)
                return
        elif current is None and not can_start:
            view.waiting = ("ContainerCreating", "")
            return
        elif current is not None:
            return
        wait = await self.images.ensure(pod, key, view.spec)
        if wait is not None:
            view.waiting = (wait.reason, wait.message)
            if wait.retry_in is not None:
                wake.append(now + wait.retry_in)
            return
        if current is not None:
            self.crash_backoff.next((uid, name), at=current.finished_at)
        attempt = current.metadata.attempt + 1 if current is not None else 0
        created = await self._create(pod, sandbox_id, view, attempt)
        if created is None:
            return
        for old in (view.previous,):
            if old is not None:
                # Keep only the last dead container (for lastState and `logs --previous`), as kube's GC does.
                await self.runtime.remove_container(old.id)
        view.previous, view.current, view.waiting = current, await self.runtime.container_status(created), None
        if view.running():
            await self._probe(pod, key, view, wake, now)

    async def _create(self, pod: dict[str, Any], sandbox_id: str, view: ContainerView, attempt: int) -> str | None:
        name = view.name
        annotations = container_annotations((pod["metadata"].get("annotations") or {}), name)
        try:
            Behaviour.from_annotations(annotations)
        except ValueError as error:
            view.waiting = ("CreateContainerConfigError", str(error))
            self.recorder.event(pod, WARNING, "Failed", f"Error: {error}")
            return None
        config = ContainerConfig(
            metadata=ContainerMetadata(name, attempt),
            image=view.spec.get("image") or "",
            command=list(view.spec.get("command") or []),
            args=list(view.spec.get("args") or []),
            log_path=f"{name}/{attempt}.log",
            annotations=annotations,
        )
        container_id = await self.runtime.create_container(sandbox_id, config, self._sandbox_config(pod))
        self.recorder.event(pod, NORMAL, "Created", f"Created container: {name}")
        await self._start(pod, container_id, name)
        return container_id

    async def _start(self, pod: dict[str, Any], container_id: str, name: str) -> None:
        await self.runtime.start_container(container_id)
        self.recorder.event(pod, NORMAL, "Started", f"Started container {name}")

    def _kill(self, pod: dict[str, Any], key: str, status: ContainerStatus, message: str, grace: float) -> None:
        if status.id in self._stopping:
            return
        self._stopping.add(status.id)
        self.recorder.event(pod, NORMAL, "Killing", message)

        async def stop() -> None:
            try:
                await self.runtime.stop_container(status.id, grace)
            except Exception:
                log.exception("stopping container %s of %s failed", status.metadata.name, key)
            finally:
                self._stopping.discard(status.id)
                self.enqueue(key)

        self._spawn(stop())

    # -- status -------------------------------------------------------------------------------------------

    async def _write_status(self, pod: dict[str, Any], view: PodView) -> dict[str, Any]:
        uid = pod["metadata"]["uid"]
        previous = self._written.get(uid)
        status = build_status(view, time.time(), previous)
        if status == previous:
            return status
        if not differs(status, pod.get("status") or {}):
            self._written[uid] = status
            return status
        metadata = pod["metadata"]
        try:
            await self.client.patch(
                PODS, metadata["name"], {"status": status}, metadata["namespace"], subresource="status"
            )
        except ApiError as error:
            if error.code != 404:
                raise
            return status
        self._written[uid] = status
        return status

    def reported_status(self, pod: dict[str, Any]) -> dict[str, Any]:
        return self._written.get(pod["metadata"]["uid"]) or pod.get("status") or {}

    # -- termination and cleanup --------------------------------------------------------------------------

    async def _terminate(self, pod: dict[str, Any], key: str) -> float | None:
        metadata = pod["metadata"]
        uid = metadata["uid"]
        entry = self._sandboxes.get(uid)
        if entry is not None:
            sandbox_id = entry[0]
            statuses = await self.runtime.list_containers(sandbox_id)
            running = [s for s in statuses if s.state is ContainerState.RUNNING]
            grace = float(metadata.get("deletionGracePeriodSeconds") or _grace(pod))
            for status in running:
                self._kill(pod, key, status, f"Stopping container {status.metadata.name}", grace)
            if running:
                return None  # each finished kill syncs the pod again
            sandbox = await self.runtime.pod_sandbox_status(sandbox_id)
            view, _ = await self._drive(pod, key, sandbox_id, sandbox.ip, False, statuses, time.time())
            await self._write_status(pod, view)
            if sandbox.state is SandboxState.READY:
                await self.runtime.stop_pod_sandbox(sandbox_id)
        try:
            await self.client.delete(
                PODS, metadata["name"], metadata["namespace"], grace_period_seconds=0, preconditions={"uid": uid}
            )
        except ApiError as error:
            if error.code not in (404, 409):
                raise
        return None

    async def _teardown(self, uid: str) -> None:
        """The pod is gone from the API: remove what is left of it on the node."""
        entry = self._sandboxes.pop(uid, None)
        if entry is not None:
            sandbox_id = entry[0]
            with contextlib.suppress(KeyError):
                for status in await self.runtime.list_containers(sandbox_id):
                    if status.state is ContainerState.RUNNING:
                        await self.runtime.stop_container(status.id, 0)
                await self.runtime.stop_pod_sandbox(sandbox_id)
                await self.runtime.remove_pod_sandbox(sandbox_id)
        self.volumes.remove_pod_dir(uid)
        self.images.forget_pod(uid)
        self.probes.forget(uid)
        self._written.pop(uid, None)
        self._mount_failures.pop(uid, None)

    # -- logs -----------------------------------------------------------------------------------------------

    async def log_target(self, namespace: str, name: str, container: str, previous: bool) -> LogTarget:
        """The log file `kubectl logs` asks for, or the error the kubelet answers with."""
        pod = self.pods.get(namespace, name)
        if pod is None or (pod.get("spec") or {}).get("nodeName") != self.node_name:
            raise LogError(404, f'pod "{name}" not found')
        spec = pod.get("spec") or {}
        names = [c.get("name") for key in ("initContainers", "containers") for c in spec.get(key) or []]
        if container not in names:
            raise LogError(400, f"container {container} is not valid for pod {name}")
        status = self.reported_status(pod)
        listed = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        entry = next((c for c in listed if c.get("name") == container), {})
        state, last = entry.get("state") or {}, (entry.get("lastState") or {}).get("terminated")
        if previous:
            if not last:
                raise LogError(400, f'previous terminated container "{container}" in pod "{name}" not found')
            container_id = last.get("containerID", "")
        elif state.get("running") or state.get("terminated"):
            container_id = entry.get("containerID", "")
        elif last:
            container_id = last.get("containerID", "")
        else:
            reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            raise LogError(400, f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        container_id = container_id.partition("://")[2] or container_id
        try:
            found = await self.runtime.container_status(container_id)
        except KeyError:
            raise LogError(400, f'container "{container}" in pod "{name}" is not available') from None
        return LogTarget(self.volumes.pod_dir(pod["metadata"]["uid"]) / "logs" / found.log_path, container_id)


def _view(spec: dict[str, Any], by_name: dict[str, list[ContainerStatus]]) -> ContainerView:
    attempts = by_name.get(spec.get("name") or "", [])
    return ContainerView(
        spec,
        current=attempts[-1] if attempts else None,
        previous=attempts[-2] if len(attempts) > 1 else None,
    )


def _grace(pod: dict[str, Any]) -> float:
    value = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    return float(30 if value is None else value)
