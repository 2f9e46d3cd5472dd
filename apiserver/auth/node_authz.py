"""The Node authorizer: what a kubelet (`system:node:<name>` in `system:nodes`) may read and write.

As in Kubernetes, a kubelet may read a secret, config map, persistent volume claim or persistent volume,
and request a token for a service account, only when a pod bound to its node refers to it. A small
graph built from pods (and claims, for their volumes) answers that; it is loaded at start and kept
current from the committed change stream. Leases are limited to the node's own lease in
kube-node-lease. Everything else a kubelet does is checked against the `system:node` rules here, and
the NodeRestriction admission plugin then limits writes to the node's own Node and pods.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import orjson

from apiserver.auth.authn import UserInfo
from apiserver.auth.authz import Decision
from apiserver.auth.bootstrap_policy import NODE_RULES
from apiserver.auth.rbac_rules import rule_allows
from apiserver.http.requestinfo import RequestInfo
from apiserver.storage.records import Change

if TYPE_CHECKING:
    from apiserver.storage.store import Store

NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
NODE_LEASE_NAMESPACE = "kube-node-lease"
PODS_KEY = "core/pods"
PVCS_KEY = "core/persistentvolumeclaims"

# Kinds of graph vertices a pod refers to.
SECRET, CONFIGMAP, PVC, SERVICE_ACCOUNT = "secret", "configmap", "pvc", "serviceaccount"
_GRAPH_RESOURCES = {
    "secrets": SECRET,
    "configmaps": CONFIGMAP,
    "persistentvolumeclaims": PVC,
}
_SECRET_REF_VOLUMES = ("azureFile", "cephfs", "cinder", "flexVolume", "iscsi", "rbd", "scaleIO", "storageos")

Ref = tuple[str, str, str]  # (kind, namespace, name)


def node_name_of(user: UserInfo) -> str | None:
    """The node a kubelet identity speaks for, or None for any other user."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_USER_PREFIX):
        return user.name[len(NODE_USER_PREFIX) :] or None
    return None


def pod_references(pod: dict[str, Any]) -> set[Ref]:
    """The secrets, config maps, claims and service account a pod uses."""
    namespace = (pod.get("metadata") or {}).get("namespace", "")
    spec = pod.get("spec") or {}
    refs: set[Ref] = set()

    def add(kind: str, name: Any) -> None:
        if isinstance(name, str) and name:
            refs.add((kind, namespace, name))

    add(SERVICE_ACCOUNT, spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    for secret in spec.get("imagePullSecrets") or ():
        add(SECRET, (secret or {}).get("name"))
    for container in _containers(spec):
        for env in container.get("env") or ():
            source = (env or {}).get("valueFrom") or {}
            add(SECRET, (source.get("secretKeyRef") or {}).get("name"))
            add(CONFIGMAP, (source.get("configMapKeyRef") or {}).get("name"))
        for env_from in container.get("envFrom") or ():
            add(SECRET, ((env_from or {}).get("secretRef") or {}).get("name"))
            add(CONFIGMAP, ((env_from or {}).get("configMapRef") or {}).get("name"))
    pod_name = (pod.get("metadata") or {}).get("name", "")
    for volume in spec.get("volumes") or ():
        volume = volume or {}
        add(SECRET, (volume.get("secret") or {}).get("secretName"))
        add(CONFIGMAP, (volume.get("configMap") or {}).get("name"))
        add(PVC, (volume.get("persistentVolumeClaim") or {}).get("claimName"))
        if volume.get("ephemeral") is not None:
            add(PVC, f"{pod_name}-{volume.get('name', '')}")
        add(SECRET, ((volume.get("csi") or {}).get("nodePublishSecretRef") or {}).get("name"))
        for source in (volume.get("projected") or {}).get("sources") or ():
            source = source or {}
            add(SECRET, (source.get("secret") or {}).get("name"))
            add(CONFIGMAP, (source.get("configMap") or {}).get("name"))
        for kind in _SECRET_REF_VOLUMES:
            plugin = volume.get(kind) or {}
            add(SECRET, plugin.get("secretName") or (plugin.get("secretRef") or {}).get("name"))
    return refs


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(key) or ():
            if isinstance(container, dict):
                yield container


class NodeGraph:
    """Which nodes' pods refer to which objects, kept current from pod and claim changes."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], tuple[str, frozenset[Ref]]] = {}  # pod → (node, refs)
        self._nodes_of: dict[Ref, Counter[str]] = {}
        self._claim_volume: dict[tuple[str, str], str] = {}  # claim → bound volume
        self._claims_of_volume: dict[str, set[tuple[str, str]]] = {}
        self._loaded_rv: dict[str, int] = {}

    async def load(self, store: Store) -> None:
        for key in (PODS_KEY, PVCS_KEY):
            page = await store.list(key, None)
            self._loaded_rv[key] = page.rv
            for namespace, name, data in page.rows:
                self.apply(key, namespace, name, orjson.loads(data))

    def observe(self, changes: Iterable[Change]) -> None:
        for change in changes:
            if change.resource not in (PODS_KEY, PVCS_KEY):
                continue
            if change.rv <= self._loaded_rv.get(change.resource, 0):
                continue
            self.apply(
                change.resource, change.namespace, change.name, None if change.event == "DELETED" else change.obj()
            )

    def apply(self, resource: str, namespace: str, name: str, obj: dict[str, Any] | None) -> None:
        key = (namespace, name)
        if resource == PVCS_KEY:
            old_volume = self._claim_volume.pop(key, None)
            if old_volume is not None:
                self._claims_of_volume.get(old_volume, set()).discard(key)
            volume = ((obj or {}).get("spec") or {}).get("volumeName")
            if volume:
                self._claim_volume[key] = volume
                self._claims_of_volume.setdefault(volume, set()).add(key)
            return
        previous = self._pods.pop(key, None)
        if previous is not None:
            node, refs = previous
            for ref in refs:
                counter = self._nodes_of.get(ref)
                if counter is not None:
                    counter[node] -= 1
                    if counter[node] <= 0:
                        del counter[node]
                    if not counter:
                        del self._nodes_of[ref]
        node = ((obj or {}).get("spec") or {}).get("nodeName")
        if obj is None or not node:
            return
        refs = frozenset(pod_references(obj))
        self._pods[key] = (node, refs)
        for ref in refs:
            self._nodes_of.setdefault(ref, Counter())[node] += 1

    def related(self, node: str, kind: str, namespace: str, name: str) -> bool:
        return node in self._nodes_of.get((kind, namespace, name), ())

    def volume_related(self, node: str, volume: str) -> bool:
        return any(self.related(node, PVC, ns, claim) for ns, claim in self._claims_of_volume.get(volume, ()))


class NodeAuthorizer:
    """Allows kubelets what their node needs; says nothing about other users."""

    def __init__(self, graph: NodeGraph) -> None:
        self.graph = graph

    async def authorize(self, user: UserInfo, info: RequestInfo) -> Decision:
        node = node_name_of(user)
        if node is None:
            return Decision(False, "")
        if not info.is_resource:
            return Decision(any(rule_allows(rule, info) for rule in NODE_RULES), "")
        if info.group == "" and info.resource in _GRAPH_RESOURCES and not info.subresource:
            return self._graph_decision(node, info, _GRAPH_RESOURCES[info.resource])
        if info.group == "" and info.resource == "persistentvolumes" and not info.subresource:
            if info.verb == "get" and self.graph.volume_related(node, info.name):
                return Decision(True, "")
            return _no_relationship(node, info)
        if info.group == "" and info.resource == "serviceaccounts" and info.subresource == "token":
            if info.verb == "create" and self.graph.related(node, SERVICE_ACCOUNT, info.namespace, info.name):
                return Decision(True, "")
            return _no_relationship(node, info)
        if info.group == "coordination.k8s.io" and info.resource == "leases":
            return self._lease_decision(node, info)
        csinode = info.group == "storage.k8s.io" and info.resource == "csinodes"
        if csinode and info.verb != "create" and info.name != node:
            return Decision(False, f"can only access CSINode with the same name as the requesting node '{node}'")
        if any(rule_allows(rule, info) for rule in NODE_RULES):
            return Decision(True, "")
        return Decision(False, "")

    def _graph_decision(self, node: str, info: RequestInfo, kind: str) -> Decision:
        if info.verb != "get" or not info.name:
            return Decision(False, f"can only get individual resources of this type ({info.resource})")
        if self.graph.related(node, kind, info.namespace, info.name):
            return Decision(True, "")
        return _no_relationship(node, info)

    @staticmethod
    def _lease_decision(node: str, info: RequestInfo) -> Decision:
        if info.verb not in ("get", "create", "update", "patch", "delete"):
            return Decision(False, "can only get, create, update, patch, or delete a node lease")
        if info.namespace != NODE_LEASE_NAMESPACE:
            return Decision(False, f"can only access leases in the {NODE_LEASE_NAMESPACE} namespace")
        if info.verb != "create" and info.name != node:
            return Decision(False, "can only access node lease with the same name as the requesting node")
        return Decision(True, "")


def _no_relationship(node: str, info: RequestInfo) -> Decision:
    return Decision(False, f"no relationship found between node '{node}' and this object")
