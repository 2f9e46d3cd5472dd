"""What every proxy mode's renderer shares: per-Service fragments, assembled tables, trace explanations.

A renderer turns one Service's ports (for one node) into a `Fragment` of named sections. The proxier keeps
each section as a column (that section of every Service, in Service order) with running rule counts, and
the renderer assembles the columns with the fixed parts of its tables into `Tables`. A change to one
Service re-renders only its fragment and replaces its entries in the columns; assembly only concatenates.
`explain` answers, with the very lines `render` writes, what happens to a packet sent to one of a
Service's addresses — `skiff trace` shows that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from skiff.net.model import Endpoint, NodeContext, ServicePort
from skiff.net.netpol import PodRules

CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_IP = "cluster IP", "node port", "load balancer IP", "external IP"


@dataclass(slots=True)
class Fragment:
    sections: dict[str, Any]  # mostly text; a renderer may keep structured parts it merges on assembly
    counts: dict[str, int]


EMPTY = Fragment({}, {})


@dataclass
class Tables:
    """A node's rendered tables: file name → text chunks (joined on demand), and rule counts per table."""

    node: str
    mode: str
    files: dict[str, list[str]]
    counts: dict[str, int]
    titles: dict[str, str] = field(default_factory=dict)

    def text(self, name: str) -> str:
        return "".join(self.files[name])

    def combined(self) -> str:
        parts = []
        for name in self.files:
            parts.append(f"# {self.titles.get(name, name)}\n")
            parts.append(self.text(name))
        return "".join(parts)


@dataclass(frozen=True)
class Entry:
    """Where a packet is sent: one of a Service's addresses."""

    kind: str  # CLUSTER_IP, NODE_PORT, LOAD_BALANCER or EXTERNAL_IP
    ip: str
    port: int


@dataclass(frozen=True)
class Choice:
    endpoint: Endpoint
    how: str  # the rule or entry that picks it
    share: float  # the fraction of new connections it receives


@dataclass
class Explanation:
    rules: list[str]  # the rules that match, from the table's entry point to the endpoint choice
    method: str  # how an endpoint is chosen
    choices: list[Choice]
    dnat: dict[str, list[str]]  # endpoint address → the rules that rewrite the destination
    outcome: str = ""  # when no endpoint is chosen: what happens instead


class Renderer(Protocol):
    mode: str

    def render_service(self, ports: Sequence[ServicePort], ctx: NodeContext) -> Fragment: ...

    def render_policies(self, rules: Sequence[PodRules], ctx: NodeContext) -> Fragment: ...

    def assemble(self, columns: Columns, totals: Mapping[str, int], policies: Fragment, ctx: NodeContext) -> Tables: ...

    def explain(self, port: ServicePort, ctx: NodeContext, entry: Entry) -> Explanation: ...


Columns = Mapping[str, Sequence[Any]]  # section name → that section of every Service, in Service order


def join_sections(columns: Columns, name: str) -> Sequence[Any]:
    return columns.get(name) or ()


def shares(count: int) -> list[float]:
    return [1.0 / count] * count if count else []
