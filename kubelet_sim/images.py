"""Making sure a container's image is on the node before it is created: pull policy, pulls, backoff.

Pulls run as background tasks (a pull can take a while and must not hold up a sync worker); the pod
is synced again when one finishes. A failed pull shows `ErrImagePull` once, then `ImagePullBackOff`
while the backoff (10 s doubling to 5 min) runs, with the events kube records for each step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubelet_sim.backoff import Backoff
from kubelet_sim.runtime import ImagePullError, ImageService
from skiff.runtime import NORMAL, WARNING, EventRecorder


@dataclass(frozen=True)
class ImageWait:
    """The image is not there yet: the container waits with this reason and message."""

    reason: str
    message: str = ""
    retry_in: float | None = None


@dataclass
class _Pull:
    started: float
    task: asyncio.Task[None] | None = None
    done: bool = False
    error: str = ""
    finished: float = 0.0
    reported: bool = False


def _format_seconds(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.3g}s"


class ImageManager:
    def __init__(
        self,
        images: ImageService,
        recorder: EventRecorder,
        backoff: Backoff,
        on_done: Callable[[str], None],
    ) -> None:
        self.images = images
        self.recorder = recorder
        self.backoff = backoff
        self.on_done = on_done  # told the pod key whose pull finished
        self._pulls: dict[tuple[str, str], _Pull] = {}

    async def ensure(self, pod: dict[str, Any], pod_key: str, container: dict[str, Any]) -> ImageWait | None:
        """None when the image is present (the container may be created), else why it must wait."""
        image = container.get("image") or ""
        policy = container.get("imagePullPolicy") or "IfNotPresent"
        uid = pod["metadata"]["uid"]
        pull = self._pulls.get((uid, image))
        if pull is not None:
            return self._follow_up(pod, (uid, image), pull, image)
        present = await self.images.image_status(image) is not None
        if policy == "Never":
            if present:
                return None
            message = f'Container image "{image}" is not present with pull policy of Never'
            self.recorder.event(pod, WARNING, "ErrImageNeverPull", message)
            return ImageWait("ErrImageNeverPull", message)
        if present and policy != "Always":
            self.recorder.event(pod, NORMAL, "Pulled", f'Container image "{image}" already present on machine')
            return None
        self._start(pod, pod_key, (uid, image), image)
        return ImageWait("ContainerCreating")

    def _follow_up(self, pod: dict[str, Any], key: tuple[str, str], pull: _Pull, image: str) -> ImageWait | None:
        if not pull.done:
            return ImageWait("ContainerCreating")
        if not pull.error:
            del self._pulls[key]
            return None
        remaining = self.backoff.remaining(key, pull.finished)
        if not pull.reported:
            pull.reported = True
            return ImageWait("ErrImagePull", pull.error, retry_in=remaining or None)
        if remaining > 0:
            self.recorder.event(pod, NORMAL, "BackOff", f'Back-off pulling image "{image}"')
            self.recorder.event(pod, WARNING, "Failed", "Error: ImagePullBackOff")
            message = f'Back-off pulling image "{image}": ErrImagePull: {pull.error}'
            return ImageWait("ImagePullBackOff", message, retry_in=remaining)
        # Backoff over: pull again.
        del self._pulls[key]
        return ImageWait("ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: {pull.error}', 0.0)

    def _start(self, pod: dict[str, Any], pod_key: str, key: tuple[str, str], image: str) -> None:
        self.recorder.event(pod, NORMAL, "Pulling", f'Pulling image "{image}"')
        pull = _Pull(started=time.monotonic())
        self._pulls[key] = pull
        pull.task = asyncio.create_task(self._pull(pod, pod_key, key, image, pull), name=f"pull {image}")

    async def _pull(self, pod: dict[str, Any], pod_key: str, key: tuple[str, str], image: str, pull: _Pull) -> None:
        try:
            pulled = await self.images.pull_image(image)
        except ImagePullError as error:
            pull.error = str(error)
            self.backoff.next(key)
            self.recorder.event(pod, WARNING, "Failed", f'Failed to pull image "{image}": {error}')
            self.recorder.event(pod, WARNING, "Failed", "Error: ErrImagePull")
        else:
            took = _format_seconds(time.monotonic() - pull.started)
            self.recorder.event(
                pod,
                NORMAL,
                "Pulled",
                f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
                f"Image size: {pulled.size} bytes.",
            )
        finally:
            pull.done, pull.finished = True, self.backoff.clock()
            self.on_done(pod_key)

    def forget_pod(self, uid: str) -> None:
        for key in [k for k in self._pulls if k[0] == uid]:
            pull = self._pulls.pop(key)
            if pull.task is not None and not pull.done:
                pull.task.cancel()
            self.backoff.forget(key)
