"""Pod volumes as files: `DATA/kubelet/<node>/pods/<uid>/volumes/<plugin>/<volume>/`.

configMap, secret, projected and downwardAPI volumes are written with the atomic writer and rewritten
when their sources change (the kubelet re-reads them every `--volume-refresh-period`; the Node
authorizer lets a kubelet `get` only the objects its pods use, so it polls rather than watches).
serviceAccountToken sources come from the TokenRequest API, bound to the pod, and are renewed at 80 %
of their lifetime. emptyDir is a directory. hostPath and hostPath/local persistent volumes point into
the node's simulated host filesystem, `DATA/kubelet/<node>/host/` — the real host's paths are never
touched. A missing source leaves the pod in ContainerCreating with a `FailedMount` event and is
retried until it appears.
"""

from __future__ import annotations

import asyncio
import base64
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelet_sim import atomicwriter
from kubelet_sim.atomicwriter import Payload
from skiff.api.errors import ApiError
from skiff.api.kinds import BUILTINS, ResourceType
from skiff.api.quantity import QuantityError, parse_quantity
from skiff.client.rest import AsyncClient


def _kind(kind: str) -> ResourceType:
    found = BUILTINS.by_kind("", "v1", kind)
    assert found is not None
    return found


CONFIGMAPS, SECRETS = _kind("ConfigMap"), _kind("Secret")
CLAIMS, VOLUMES, SERVICE_ACCOUNTS = _kind("PersistentVolumeClaim"), _kind("PersistentVolume"), _kind("ServiceAccount")
PLUGIN_DIRS = {
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "projected": "kubernetes.io~projected",
    "downwardAPI": "kubernetes.io~downward-api",
    "emptyDir": "kubernetes.io~empty-dir",
    "hostPath": "kubernetes.io~host-path",
    "persistentVolumeClaim": "kubernetes.io~pvc",
}
# Plugins whose contents come from API objects and are refreshed while the pod runs.
REFRESHED = ("configMap", "secret", "projected", "downwardAPI")
DEFAULT_MODE = 0o644
TOKEN_DEFAULT_EXPIRATION = 3600
TOKEN_REFRESH_FRACTION = 0.8


class MountError(Exception):
    """A volume cannot be set up yet; the message is what follows `MountVolume.SetUp failed ... : `."""


def volume_plugin(volume: dict[str, Any]) -> str:
    for plugin in PLUGIN_DIRS:
        if volume.get(plugin) is not None:
            return plugin
    return next((key for key in volume if key != "name"), "emptyDir")


class ObjectCache:
    """API objects a node's volumes use, re-read at most once per `ttl` however many pods share them."""

    def __init__(self, client: AsyncClient, ttl: float) -> None:
        self.client = client
        self.ttl = ttl
        self._entries: dict[tuple[str, str, str], tuple[float, dict[str, Any] | None]] = {}
        self._inflight: dict[tuple[str, str, str], asyncio.Future[dict[str, Any] | None]] = {}

    async def get(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        key = (resource.plural, namespace, name)
        cached = self._entries.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await self._fetch(resource, namespace, name)
            future.set_result(value)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved here, so an unawaited failure is not reported as lost
            raise
        finally:
            del self._inflight[key]
        self._entries[key] = (time.monotonic(), value)
        return value

    async def _fetch(self, resource: ResourceType, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.client.get(resource, name, namespace or None)
        except ApiError as error:
            if error.code == 404:
                return None
            if error.code == 403:
                # The Node authorizer answers 403 until the pod that links node and object is in its
                # graph; to the pod that is "not there yet".
                raise MountError(f'{resource.kind.lower()} "{name}" is not accessible yet: {error.message}') from None
            raise

    def invalidate(self, resource: ResourceType, namespace: str, name: str) -> None:
        self._entries.pop((resource.plural, namespace, name), None)


@dataclass
class _Token:
    token: str
    refresh_at: float


class VolumeManager:
    def __init__(
        self,
        node_dir: Path,
        client: AsyncClient,
        refresh_period: float,
        allocatable: Callable[[], dict[str, str]],
    ) -> None:
        self.node_dir = node_dir
        self.host_root = node_dir / "host"
        self.client = client
        self.objects = ObjectCache(client, refresh_period)
        self.allocatable = allocatable
        self._tokens: dict[tuple[str, str, int], _Token] = {}

    def pod_dir(self, uid: str) -> Path:
        return self.node_dir / "pods" / uid

    def volume_dir(self, uid: str, volume: dict[str, Any]) -> Path:
        plugin = volume_plugin(volume)
        return (
            self.pod_dir(uid) / "volumes" / PLUGIN_DIRS.get(plugin, f"kubernetes.io~{plugin.lower()}") / volume["name"]
        )

    def host_path(self, path: str) -> Path:
        """Where a host path lives in the node's simulated host filesystem."""
        return self.host_root / path.lstrip("/")

    @staticmethod
    def refreshed(pod: dict[str, Any]) -> bool:
        volumes = (pod.get("spec") or {}).get("volumes") or []
        return any(volume_plugin(v) in REFRESHED for v in volumes)

    async def mount_all(self, pod: dict[str, Any]) -> list[str]:
        """Set up (or refresh) every volume; returns a FailedMount message per volume that failed."""
        failures = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            try:
                await self._mount(pod, volume)
            except MountError as error:
                failures.append(f'MountVolume.SetUp failed for volume "{volume["name"]}" : {error}')
        return failures

    async def _mount(self, pod: dict[str, Any], volume: dict[str, Any]) -> None:
        plugin = volume_plugin(volume)
        target = self.volume_dir(pod["metadata"]["uid"], volume)
        source = volume.get(plugin) or {}
        if plugin == "configMap":
            atomicwriter.write(target, await self._configmap_payload(pod, source, source.get("defaultMode")))
        elif plugin == "secret":
            atomicwriter.write(target, await self._secret_payload(pod, source, source.get("defaultMode")))
        elif plugin == "downwardAPI":
            atomicwriter.write(target, self._downward_payload(pod, source, source.get("defaultMode")))
        elif plugin == "projected":
            atomicwriter.write(target, await self._projected_payload(pod, volume["name"], source))
        elif plugin == "hostPath":
            self._link(target, self._host_path(source))
        elif plugin == "persistentVolumeClaim":
            self._link(target, await self._claim_path(pod, source))
        else:
            target.mkdir(parents=True, exist_ok=True)
            if plugin == "emptyDir" and source.get("medium") == "Memory":
                # Kept beside the volume (not in it): the container sees a plain directory.
                (target.parent / f".{volume['name']}.medium").write_text("Memory\n")

    # -- configMap and secret -----------------------------------------------------------------------------

    async def _configmap_payload(self, pod: dict[str, Any], source: dict[str, Any], default_mode: Any) -> Payload:
        namespace = pod["metadata"]["namespace"]
        name = source.get("name") or ""
        found = await self.objects.get(CONFIGMAPS, namespace, name)
        if found is None:
            if source.get("optional"):
                return {}
            raise MountError(f'configmap "{name}" not found')
        data = {k: v.encode() for k, v in (found.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (found.get("binaryData") or {}).items()})
        return _select(data, source, default_mode, "configmap")

    async def _secret_payload(self, pod: dict[str, Any], source: dict[str, Any], default_mode: Any) -> Payload:
        namespace = pod["metadata"]["namespace"]
        name = source.get("secretName") or source.get("name") or ""
        found = await self.objects.get(SECRETS, namespace, name)
        if found is None:
            if source.get("optional"):
                return {}
            raise MountError(f'secret "{name}" not found')
        data = {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (found.get("stringData") or {}).items()})
        return _select(data, source, default_mode, "secret")

    # -- downward API ---------------------------------------------------------------------------------

    def _downward_payload(self, pod: dict[str, Any], source: dict[str, Any], default_mode: Any) -> Payload:
        mode = _mode(default_mode)
        payload: Payload = {}
        for item in source.get("items") or []:
            if item.get("fieldRef"):
                value = field_value(pod, item["fieldRef"].get("fieldPath") or "")
            elif item.get("resourceFieldRef"):
                value = self._resource_value(pod, item["resourceFieldRef"])
            else:
                continue
            payload[item["path"]] = (value.encode(), _mode(item.get("mode"), mode))
        return payload

    def _resource_value(self, pod: dict[str, Any], ref: dict[str, Any]) -> str:
        spec = pod.get("spec") or {}
        containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        container = next((c for c in containers if c.get("name") == ref.get("containerName")), None)
        if container is None:
            container = (spec.get("containers") or [{}])[0]
        kind, _, resource = (ref.get("resource") or "").partition(".")
        raw = ((container.get("resources") or {}).get(kind) or {}).get(resource)
        if raw is None:
            # Without a limit the downward API reports the node's allocatable amount, as kube does.
            raw = self.allocatable().get(resource, "0") if kind == "limits" else "0"
        try:
            value = parse_quantity(raw).value / parse_quantity(ref.get("divisor") or "1").value
        except (QuantityError, ZeroDivisionError):
            raise MountError(f"invalid resourceFieldRef for resource {ref.get('resource')!r}") from None
        return str(math.ceil(value))

    # -- projected --------------------------------------------------------------------------------------

    async def _projected_payload(self, pod: dict[str, Any], volume_name: str, source: dict[str, Any]) -> Payload:
        payload: Payload = {}
        default_mode = source.get("defaultMode")
        for position, item in enumerate(source.get("sources") or []):
            if item.get("configMap") is not None:
                payload.update(await self._configmap_payload(pod, item["configMap"], default_mode))
            elif item.get("secret") is not None:
                payload.update(await self._secret_payload(pod, item["secret"], default_mode))
            elif item.get("downwardAPI") is not None:
                payload.update(self._downward_payload(pod, item["downwardAPI"], default_mode))
            elif item.get("serviceAccountToken") is not None:
                token_source = item["serviceAccountToken"]
                token = await self._token(pod, volume_name, position, token_source)
                payload[token_source.get("path") or "token"] = (token.encode(), _mode(None, _mode(default_mode)))
        return payload

    async def _token(self, pod: dict[str, Any], volume_name: str, position: int, source: dict[str, Any]) -> str:
        metadata = pod["metadata"]
        key = (metadata["uid"], volume_name, position)
        cached = self._tokens.get(key)
        if cached is not None and time.time() < cached.refresh_at:
            return cached.token
        account = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        expiration = int(source.get("expirationSeconds") or TOKEN_DEFAULT_EXPIRATION)
        request = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "audiences": [source["audience"]] if source.get("audience") else [],
                "expirationSeconds": expiration,
                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": metadata["name"], "uid": metadata["uid"]},
            },
        }
        try:
            answer = await self.client.create(
                request, metadata["namespace"], resource=SERVICE_ACCOUNTS, name=account, subresource="token"
            )
        except ApiError as error:
            raise MountError(f"failed to fetch token: {error.message}") from None
        token = (answer.get("status") or {}).get("token") or ""
        if not token:
            raise MountError("failed to fetch token: the TokenRequest answer holds no token")
        self._tokens[key] = _Token(token, time.time() + expiration * TOKEN_REFRESH_FRACTION)
        return token

    # -- hostPath and claims ----------------------------------------------------------------------------

    def _host_path(self, source: dict[str, Any]) -> Path:
        path = source.get("path") or "/"
        kind = source.get("type") or ""
        where = self.host_path(path)
        if kind in ("", "DirectoryOrCreate"):
            where.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate":
            where.parent.mkdir(parents=True, exist_ok=True)
            where.touch(exist_ok=True)
        elif kind == "Directory" and not where.is_dir():
            raise MountError(f"hostPath type check failed: {path} is not a directory")
        elif kind == "File" and not where.is_file():
            raise MountError(f"hostPath type check failed: {path} is not a file")
        elif kind in ("Socket", "CharDevice", "BlockDevice") and not where.exists():
            raise MountError(f"hostPath type check failed: {path} is not a {kind}")
        return where

    async def _claim_path(self, pod: dict[str, Any], source: dict[str, Any]) -> Path | None:
        namespace, name = pod["metadata"]["namespace"], source.get("claimName") or ""
        claim = await self.objects.get(CLAIMS, namespace, name)
        if claim is None:
            raise MountError(f'persistentvolumeclaim "{name}" not found')
        volume_name = (claim.get("spec") or {}).get("volumeName") or ""
        if (claim.get("status") or {}).get("phase") != "Bound" or not volume_name:
            self.objects.invalidate(CLAIMS, namespace, name)
            raise MountError(f"error processing PVC {namespace}/{name}: PVC is not bound")
        volume = await self.objects.get(VOLUMES, "", volume_name)
        if volume is None:
            raise MountError(f'persistentvolume "{volume_name}" not found')
        spec = volume.get("spec") or {}
        local = spec.get("hostPath") or spec.get("local")
        if local and local.get("path"):
            where = self.host_path(local["path"])
            where.mkdir(parents=True, exist_ok=True)
            return where
        return None  # any other volume source: an empty directory stands in for it

    @staticmethod
    def _link(target: Path, where: Path | None) -> None:
        if where is None:
            target.mkdir(parents=True, exist_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() and target.resolve() == where.resolve():
            return
        if target.is_symlink():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        target.symlink_to(where, target_is_directory=True)

    # -- cleanup ----------------------------------------------------------------------------------------

    def forget(self, uid: str) -> None:
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]

    def remove_pod_dir(self, uid: str) -> None:
        self.forget(uid)
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)


def _mode(raw: Any, fallback: int = DEFAULT_MODE) -> int:
    return int(raw) & 0o777 if isinstance(raw, int) and not isinstance(raw, bool) else fallback


def _select(data: dict[str, bytes], source: dict[str, Any], default_mode: Any, what: str) -> Payload:
    """Every key as a file, or only the listed items at their paths and modes."""
    mode = _mode(default_mode)
    items = source.get("items")
    if not items:
        return {key: (value, mode) for key, value in data.items()}
    payload: Payload = {}
    for item in items:
        key = item.get("key") or ""
        if key not in data:
            if source.get("optional"):
                continue
            raise MountError(f"{what} references non-existent config key: {key}")
        payload[item.get("path") or key] = (data[key], _mode(item.get("mode"), mode))
    return payload


def field_value(pod: dict[str, Any], path: str) -> str:
    """The downward API's rendering of one field of the pod."""
    metadata = pod.get("metadata") or {}
    for prefix, mapping in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        values = metadata.get(mapping) or {}
        if path == prefix:
            return "".join(f'{key}="{_escape(values[key])}"\n' for key in sorted(values)).rstrip("\n")
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str(values.get(path[len(prefix) + 2 : -2], ""))
    simple = {
        "metadata.name": metadata.get("name"),
        "metadata.namespace": metadata.get("namespace"),
        "metadata.uid": metadata.get("uid"),
        "spec.nodeName": (pod.get("spec") or {}).get("nodeName"),
        "spec.serviceAccountName": (pod.get("spec") or {}).get("serviceAccountName"),
        "status.hostIP": (pod.get("status") or {}).get("hostIP"),
        "status.podIP": (pod.get("status") or {}).get("podIP"),
    }
    if path not in simple:
        raise MountError(f"unsupported fieldPath: {path}")
    return str(simple[path] or "")


def _escape(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
