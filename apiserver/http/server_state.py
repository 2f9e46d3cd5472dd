"""What every request handler shares: storage, the watch hub, the resource table, the auth chain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from apiserver.auth.authn import AuthenticatorChain
from apiserver.auth.authz import Authorizer
from apiserver.config import ServerConfig
from apiserver.metrics import Metrics
from apiserver.registry import strategy_for
from apiserver.registry.base import Strategy
from apiserver.storage.records import Change
from apiserver.storage.store import Store
from apiserver.watch.hub import WatchHub
from skiff.api.kinds import ResourceTable, ResourceType

NAMESPACES_KEY = "core/namespaces"


@dataclass
class NamespacePhases:
    """Namespace phases as last seen in the change stream; the store is asked on a miss."""

    phases: dict[str, str] = field(default_factory=dict)

    def observe(self, changes: Iterable[Change]) -> None:
        for change in changes:
            if change.resource != NAMESPACES_KEY:
                continue
            if change.event == "DELETED":
                self.phases.pop(change.name, None)
            else:
                obj = change.obj()
                terminating = obj.get("metadata", {}).get("deletionTimestamp") is not None
                self.phases[change.name] = "Terminating" if terminating else "Active"


@dataclass
class ServerState:
    config: ServerConfig
    store: Store
    hub: WatchHub
    resources: ResourceTable
    authn: AuthenticatorChain
    authz: Authorizer
    metrics: Metrics
    namespaces: NamespacePhases = field(default_factory=NamespacePhases)
    # Handlers that other features plug in: (kind, subresource) → handler, and non-resource paths.
    extra_subresources: dict[tuple[str, str], Callable[[Any], Awaitable[Response]]] = field(default_factory=dict)
    extra_paths: dict[str, Callable[[Request], Awaitable[Response]]] = field(default_factory=dict)
    openapi: Callable[[Request], Awaitable[Response]] = field(default=None)  # type: ignore[assignment]
    # The audit log (apiserver.audit.AuditLog) when --audit-log-path is set.
    audit: Any = None
    # Whole resources served by a handler instead of storage (the review APIs): (group, plural) → handler.
    extra_resources: dict[tuple[str, str], Callable[[Any], Awaitable[Response]]] = field(default_factory=dict)
    # Called with every committed batch of changes, in order (in-memory indexes such as RBAC's).
    change_observers: list[Callable[[list[Change]], None]] = field(default_factory=list)
    # The RBAC policy index (apiserver.auth.rbac.RbacPolicy) when RBAC is in the authorization chain.
    rbac_policy: Any = None
    # Admission webhooks (apiserver.admission.webhooks.WebhookAdmission), called after the built-in plugins.
    admission_webhooks: Any = None
    _strategies: dict[ResourceType, Strategy] = field(default_factory=dict)

    def strategy(self, resource: ResourceType) -> Strategy:
        strategy = self._strategies.get(resource)
        if strategy is None:
            strategy = self._strategies[resource] = strategy_for(resource)
        return strategy

    def install_strategy(self, resource: ResourceType, strategy: Strategy | None) -> None:
        """Serve `resource` with `strategy` (resources added at run time, e.g. custom resources);
        None forgets it."""
        if strategy is None:
            self._strategies.pop(resource, None)
        else:
            self._strategies[resource] = strategy

    def publish(self, changes: list[Change]) -> None:
        self.namespaces.observe(changes)
        for observer in self.change_observers:
            observer(changes)
        self.hub.publish(changes)
