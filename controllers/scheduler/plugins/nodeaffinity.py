"""NodeAffinity: `nodeSelector` and required node affinity as a filter; preferred node affinity as a
score (the sum of the weights of the matching preferences, scaled so the best node gets 100)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controllers.scheduler.framework import SKIP, FilterPlugin, ScorePlugin, normalize_to_max
from controllers.scheduler.nodeinfo import NodeInfo
from controllers.scheduler.podinfo import PodInfo

ERR_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
NODE_NAME_FIELD = "metadata.name"


def _as_int(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def requirement_matches(requirement: Mapping[str, Any], values_by_key: Mapping[str, str]) -> bool:
    """One NodeSelectorRequirement: In, NotIn, Exists, DoesNotExist, Gt, Lt."""
    key, operator = requirement.get("key") or "", requirement.get("operator") or ""
    values = [str(v) for v in requirement.get("values") or []]
    present = key in values_by_key
    if operator == "In":
        return present and values_by_key[key] in values
    if operator == "NotIn":
        return not present or values_by_key[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        have, want = _as_int(values_by_key[key]), _as_int(values[0])
        if have is None or want is None:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def term_matches(term: Mapping[str, Any], node: NodeInfo) -> bool:
    """A NodeSelectorTerm: all its expressions (labels) and fields (`metadata.name`) hold. A term with
    neither matches no node."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node.labels
    if not all(requirement_matches(r, labels) for r in expressions):
        return False
    field_values = {NODE_NAME_FIELD: node.name}
    return all(f.get("key") == NODE_NAME_FIELD and requirement_matches(f, field_values) for f in fields)


def required_terms_match(node_affinity: Mapping[str, Any], node: NodeInfo) -> bool:
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return any(term_matches(term, node) for term in required.get("nodeSelectorTerms") or [])


def selector_matches(node_selector: Mapping[str, str], node: NodeInfo) -> bool:
    labels = node.labels
    return all(labels.get(key) == value for key, value in node_selector.items())


class NodeAffinityFilter(FilterPlugin):
    name = "NodeAffinity"

    def pre_filter(self, pod: PodInfo) -> Any:
        required = pod.node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
        return None if pod.node_selector or required is not None else SKIP

    def filter(self, pod: PodInfo, node: NodeInfo, state: Any) -> Sequence[str]:
        if selector_matches(pod.node_selector, node) and required_terms_match(pod.node_affinity, node):
            return ()
        return (ERR_NODE_AFFINITY,)


class NodeAffinityScore(ScorePlugin):
    name = "NodeAffinity"
    weight = 2

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> list[Mapping[str, Any]]:
        return list(pod.node_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or [])

    def score(self, pod: PodInfo, node: NodeInfo, state: list[Mapping[str, Any]]) -> float:
        total = 0
        for preference in state:
            weight = int(preference.get("weight") or 0)
            if weight and term_matches(preference.get("preference") or {}, node):
                total += weight
        return total

    def normalize(self, scores: dict[str, float]) -> dict[str, float]:
        return normalize_to_max(scores)
