"""`GET pods/{name}/log`: the API server's half of `kubectl logs`, streamed from the pod's kubelet.

As kube-apiserver does, the handler picks the container (the only one, or the one named), finds the
node the pod runs on, and opens `https://<InternalIP>:<daemonEndpoints.kubeletEndpoint.Port>
/containerLogs/<ns>/<pod>/<container>` with the log options, relaying the kubelet's text as it comes.
It authenticates to kubelets with its own client certificate, `pki/apiserver-kubelet-client.crt`
(CN `system:kube-apiserver-kubelet-client`), issued from the cluster CA at first start. It does not
verify kubelets' serving certificates — kube-apiserver's behaviour without
`--kubelet-certificate-authority`. Errors the kubelet gives ("is waiting to start") come back as a
Status with the kubelet's code and words.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from starlette.responses import Response, StreamingResponse

from apiserver.http.context import RequestContext
from apiserver.http.reads import read_object
from apiserver.http.server_state import ServerState
from skiff.api.errors import ApiError, bad_request, method_not_allowed, not_found
from skiff.pki.cluster import ClusterPki, issue_client_certificate
from skiff.pki.files import write_file_atomically

log = logging.getLogger("skiff.apiserver.podlogs")

KUBELET_CLIENT_USER = "system:kube-apiserver-kubelet-client"
CERT_NAME, KEY_NAME = "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key"
# PodLogOptions passed through to the kubelet.
FORWARDED = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes")
MAX_ERROR_BYTES = 4096
_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 500: "InternalError"}


def ensure_kubelet_client_cert(pki: ClusterPki) -> tuple[Path, Path]:
    cert, key = pki.directory / CERT_NAME, pki.directory / KEY_NAME
    if not (cert.exists() and key.exists()):
        cert_pem, key_pem = issue_client_certificate(pki, KUBELET_CLIENT_USER, [])
        write_file_atomically(key, key_pem)
        write_file_atomically(cert, cert_pem, 0o644)
    return cert, key


def choose_container(pod: dict[str, Any], wanted: str | None) -> str:
    """The container to read, in kube's words when the request does not say which one."""
    name = pod["metadata"]["name"]
    spec = pod.get("spec") or {}
    containers = [c.get("name", "") for c in spec.get("containers") or []]
    init = [c.get("name", "") for c in spec.get("initContainers") or []]
    ephemeral = [c.get("name", "") for c in spec.get("ephemeralContainers") or []]
    if not wanted:
        if len(containers) == 1:
            return containers[0]
        if not containers:
            raise bad_request(f"a container name must be specified for pod {name}")
        message = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise bad_request(message)
    if wanted not in (*containers, *init, *ephemeral):
        raise bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def kubelet_location(node: dict[str, Any]) -> tuple[str, int]:
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("ExternalIP") or addresses.get("Hostname")
    endpoint = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
    port = endpoint.get("Port") or endpoint.get("port") or 10250
    if not host:
        raise ApiError(500, "InternalError", f"node {node['metadata']['name']} has no address")
    return str(host), int(port)


class PodLogs:
    def __init__(self, cert: Path, key: Path) -> None:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(str(cert), str(key))
        self._http = httpx.AsyncClient(verify=context, timeout=httpx.Timeout(10.0, read=None))

    async def __call__(self, ctx: RequestContext) -> Response:
        if ctx.info.verb != "get":
            raise method_not_allowed()
        pod = (await read_object(ctx)).obj()
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        container = choose_container(pod, ctx.query.get("container"))
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise bad_request(f"pod {name} does not have a host assigned")
        nodes = ctx.state.resources.by_kind("", "v1", "Node")
        assert nodes is not None
        stored = await ctx.state.store.get(nodes.storage_key, "", node_name)
        if stored is None:
            raise not_found("nodes", node_name)
        host, port = kubelet_location(stored.obj())
        path = "/".join(quote(part, safe="") for part in ("containerLogs", namespace, name, container))
        url = f"https://{_url_host(host)}:{port}/{path}"
        params = [(key, value) for key in FORWARDED for value in ctx.query.getlist(key)]
        return await self._relay(url, params, name)

    async def _relay(self, url: str, params: list[tuple[str, str]], name: str) -> Response:
        request = self._http.build_request("GET", url, params=params)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as error:
            raise ApiError(500, "InternalError", f'Get "{url}": {error or type(error).__name__}') from None
        if response.status_code != 200:
            body = (await response.aread())[:MAX_ERROR_BYTES].decode("utf-8", "replace").strip()
            await response.aclose()
            code = response.status_code
            reason = _REASONS.get(code, "InternalError")
            raise ApiError(
                code, reason, body or f"the server responded with the status code {code}", name, "", "pods/log"
            )
        return StreamingResponse(_chunks(response), media_type="text/plain")


async def _chunks(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def install_pod_logs(state: ServerState) -> None:
    """Plug `pods/log` into the server (issuing the kubelet client certificate on first start)."""
    pki = ClusterPki.under(state.config.data_dir)
    if not pki.ca_key.exists():
        log.warning("no cluster CA key under %s: pods/log is unavailable", pki.directory)
        return
    cert, key = ensure_kubelet_client_cert(pki)
    state.extra_subresources[("Pod", "log")] = PodLogs(cert, key)
