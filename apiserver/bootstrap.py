"""Objects every cluster has from its first start: the system namespaces."""

from __future__ import annotations

import uuid

from apiserver.http.objects import now_rfc3339
from apiserver.http.server_state import NAMESPACES_KEY, ServerState
from apiserver.storage.records import KeyExists

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def namespace_object(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "uid": str(uuid.uuid4()),
            "creationTimestamp": now_rfc3339(),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


async def ensure_system_namespaces(state: ServerState) -> None:
    for name in SYSTEM_NAMESPACES:
        if await state.store.get(NAMESPACES_KEY, "", name) is not None:
            continue
        try:
            await state.store.create(NAMESPACES_KEY, "", name, namespace_object(name))
        except KeyExists:
            pass  # another API server on the same database created it first
