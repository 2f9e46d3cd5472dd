"""Per-namespace defaults: the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap."""

from __future__ import annotations

from typing import Any

from controllers.base import ControllerContext
from skiff.api.errors import ApiError
from skiff.runtime import Controller, final_state, object_key

NAMESPACES = ("v1", "Namespace")
SERVICE_ACCOUNTS = ("v1", "ServiceAccount")
CONFIG_MAPS = ("v1", "ConfigMap")
ROOT_CA = "kube-root-ca.crt"


class NamespaceDefaultsController:
    def __init__(self, ctx: ControllerContext) -> None:
        self.ctx = ctx
        self.namespaces = ctx.informers.informer(NAMESPACES)
        self.accounts = ctx.informers.informer(SERVICE_ACCOUNTS, field_selector="metadata.name=default")
        self.root_cas = ctx.informers.informer(CONFIG_MAPS, field_selector=f"metadata.name={ROOT_CA}")
        self.controller: Controller[str] = Controller(
            "serviceaccount", self.reconcile, workers=2, wait_for=[self.namespaces, self.accounts, self.root_cas]
        )
        self.namespaces.add_event_handler(on_add=self._enqueue, on_update=lambda _o, n: self._enqueue(n))
        for informer in (self.accounts, self.root_cas):
            informer.add_event_handler(on_update=lambda _o, n: self._enqueue_namespace_of(n),
                                       on_delete=self._enqueue_namespace_of)  # fmt: skip

    def _enqueue(self, namespace: dict[str, Any]) -> None:
        self.controller.enqueue(object_key(namespace))

    def _enqueue_namespace_of(self, obj: Any) -> None:
        namespace = final_state(obj).get("metadata", {}).get("namespace")
        if namespace:
            self.controller.enqueue(namespace)

    async def reconcile(self, name: str) -> None:
        namespace = self.namespaces.get(None, name)
        if namespace is None or namespace.get("metadata", {}).get("deletionTimestamp"):
            return
        if self.accounts.get(name, "default") is None:
            await self._create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}, name)
        if self.ctx.options.root_ca_pem:
            await self._ensure_root_ca(name)

    async def _ensure_root_ca(self, namespace: str) -> None:
        data = {"ca.crt": self.ctx.options.root_ca_pem}
        current = self.root_cas.get(namespace, ROOT_CA)
        if current is None:
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": ROOT_CA}, "data": data}
            await self._create(body, namespace)
        elif current.get("data") != data:
            await self.ctx.client.patch(CONFIG_MAPS, ROOT_CA, {"data": data}, namespace)

    async def _create(self, body: dict[str, Any], namespace: str) -> None:
        try:
            await self.ctx.client.create(body, namespace)
        except ApiError as error:
            # Already there (the cache lags), or the namespace started terminating meanwhile.
            if error.code not in (403, 409):
                raise


async def start(ctx: ControllerContext) -> None:
    await NamespaceDefaultsController(ctx).controller.run()
