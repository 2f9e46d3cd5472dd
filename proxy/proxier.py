"""Incremental syncing: per-Service fragments for each node, re-rendered only for what changed.

`NodeProxier` keeps, for one node and mode, every Service's rendered sections as columns in key order,
with running rule counts, plus the node's NetworkPolicy rules. `sync` re-renders the Services it is told
about (or all of them), re-compiles policies when asked, and assembles the tables — assembly only
concatenates already-rendered strings, so a change to one Service costs that Service's rendering plus
a concatenation.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from skiff.net.model import NodeContext
from skiff.net.netpol import PolicyEngine
from skiff.net.render import EMPTY, Fragment, Renderer, Tables
from skiff.net.state import ClusterState


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
        self.order: list[str] = []  # Service keys, sorted
        self.columns: dict[str, list[Any]] = {}
        self.counts: dict[str, dict[str, int]] = {}  # Service key → its rule counts
        self.totals: dict[str, int] = {}
        self.policies: Fragment = EMPTY
        self.tables: Tables | None = None

    def context(self, state: ClusterState) -> NodeContext:
        return state.node_context(self.node, **self.options)  # type: ignore[arg-type]

    def _count(self, counts: dict[str, int], sign: int) -> None:
        for table, count in counts.items():
            self.totals[table] = self.totals.get(table, 0) + sign * count

    def _put(self, key: str, fragment: Fragment | None) -> None:
        position = bisect.bisect_left(self.order, key)
        present = position < len(self.order) and self.order[position] == key
        if present:
            self._count(self.counts.pop(key), -1)
        if fragment is None:
            if present:
                del self.order[position]
                for column in self.columns.values():
                    del column[position]
            return
        if not present:
            self.order.insert(position, key)
            for column in self.columns.values():
                column.insert(position, "")
        for name, value in fragment.sections.items():
            column = self.columns.get(name)
            if column is None:
                column = self.columns[name] = [""] * len(self.order)
            column[position] = value
        for name, column in self.columns.items():
            if name not in fragment.sections:
                column[position] = ""
        self.counts[key] = fragment.counts
        self._count(fragment.counts, 1)

    def sync(self, state: ClusterState, services: Iterable[str] | None = None, policies: bool = False) -> SyncResult:
        """Re-render `services` (keys `namespace/name`; None: every Service) and, if asked, the policies."""
        started = time.perf_counter()
        ctx = self.context(state)
        count = 0
        if services is None:
            self.order, self.columns, self.counts, self.totals = [], {}, {}, {}
            policies = True
            for key in sorted(state.services):
                count += 1
                ports = state.service_ports(key)
                if ports:
                    self._append(key, self.renderer.render_service(ports, ctx))
        else:
            for key in services:
                count += 1
                ports = state.service_ports(key)
                self._put(key, self.renderer.render_service(ports, ctx) if ports else None)
        if policies:
            engine = PolicyEngine(state)
            self.policies = self.renderer.render_policies(engine.node_rules(self.node), ctx)
        self.tables = self.renderer.assemble(self.columns, self.totals, self.policies, ctx)
        return SyncResult(self.tables, count, time.perf_counter() - started)

    def _append(self, key: str, fragment: Fragment) -> None:
        """Add a Service after every other (a full sync goes in key order)."""
        length = len(self.order)
        self.order.append(key)
        for name in fragment.sections:
            if name not in self.columns:
                self.columns[name] = [""] * length
        for name, column in self.columns.items():
            column.append(fragment.sections.get(name, ""))
        self.counts[key] = fragment.counts
        self._count(fragment.counts, 1)
