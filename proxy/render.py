"""What every proxy mode's renderer shares: per-Service fragments, assembled tables, trace explanations.

A renderer turns one Service's ports (for one node) into a `Fragment` of named sections, and assembles
the fragments of all Services, in order, with the fixed parts of its tables into `Tables`. Because the
fragments are kept, a change to one Service re-renders only its fragment; assembly only joins strings.
`explain` answers, with the very lines `render` writes, what happens to a packet sent to one of a
Service's addresses — `skiff trace` shows that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from proxy.model import Endpoint, NodeContext, ServicePort
from proxy.netpol import PodRules

CLUSTER_IP, NODE_PORT, LOAD_BALANCER, EXTERNAL_IP = "cluster IP", "node port", "load balancer IP", "external IP"


@dataclass(slots=True)
class Fragment:
    sections: dict[str, str]
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

    def assemble(self, fragments: Sequence[Fragment], policies: Fragment, ctx: NodeContext) -> Tables: ...

    def explain(self, port: ServicePort, ctx: NodeContext, entry: Entry) -> Explanation: ...


def join_sections(fragments: Sequence[Fragment], name: str) -> list[str]:
    return [text for f in fragments if (text := f.sections.get(name))]


def sum_counts(fragments: Sequence[Fragment], table: str) -> int:
    return sum(f.counts.get(table, 0) for f in fragments)


def shares(count: int) -> list[float]:
    return [1.0 / count] * count if count else []
