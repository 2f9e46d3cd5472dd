"""Incremental syncing: per-Service fragments for each node, re-rendered only for what changed.

`NodeProxier` keeps, for one node and mode, the rendered fragment of every Service (in key order) and
of the node's NetworkPolicies. `sync` re-renders the Services it is told about (or all of them),
re-compiles policies when asked, and assembles the tables — assembly only joins already-rendered
strings, so a change to one Service costs that Service's rendering plus a join.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from dataclasses import dataclass

from proxy.model import NodeContext
from proxy.netpol import PolicyEngine
from proxy.render import EMPTY, Fragment, Renderer, Tables
from proxy.state import ClusterState


@dataclass
class SyncResult:
    tables: Tables
    rendered_services: int
    seconds: float


class NodeProxier:
    def __init__(self, node: str, renderer: Renderer, options: dict[str, object] | None = None) -> None:
        self.node = node
        self.renderer = renderer
        self.options = options or {}
        self.fragments: dict[str, Fragment] = {}
        self.order: list[str] = []
        self.policies: Fragment = EMPTY
        self.tables: Tables | None = None

    def context(self, state: ClusterState) -> NodeContext:
        return state.node_context(self.node, **self.options)  # type: ignore[arg-type]

    def sync(self, state: ClusterState, services: Iterable[str] | None = None, policies: bool = False) -> SyncResult:
        """Re-render `services` (keys `namespace/name`; None: every Service) and, if asked, the policies."""
        started = time.perf_counter()
        ctx = self.context(state)
        if services is None:
            self.fragments, self.order = {}, []
            keys: Iterable[str] = sorted(state.services)
            policies = True
        else:
            keys = services
        count = 0
        for key in keys:
            count += 1
            ports = state.service_ports(key)
            if not ports:
                if key in self.fragments:
                    del self.fragments[key]
                    self.order.pop(bisect.bisect_left(self.order, key))
                continue
            if key not in self.fragments:
                bisect.insort(self.order, key)
            self.fragments[key] = self.renderer.render_service(ports, ctx)
        if policies:
            engine = PolicyEngine(state)
            self.policies = self.renderer.render_policies(engine.node_rules(self.node), ctx)
        fragments = [self.fragments[key] for key in self.order]
        self.tables = self.renderer.assemble(fragments, self.policies, ctx)
        return SyncResult(self.tables, count, time.perf_counter() - started)
