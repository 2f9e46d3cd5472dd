"""Golden tests: each proxy mode's tables for a fixed cluster (tests/unit/golden/cluster.yaml), before and
after the web Service's endpoints change. Any difference fails; SKIFF_UPDATE_GOLDEN=1 rewrites the files."""

from __future__ import annotations

import copy
import difflib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.proxier import NodeProxier
from skiff.net.modes import MODES, renderer_for
from skiff.net.state import ClusterState

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SKIFF_UPDATE_GOLDEN") == "1"


def cluster_objects() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((GOLDEN / "cluster.yaml").read_text()) if doc]


def cluster_state() -> ClusterState:
    state = ClusterState()
    for obj in cluster_objects():
        state.upsert(obj["kind"], obj)
    return state


def changed_web_slice(state: ClusterState) -> dict[str, Any]:
    """web-3 starts terminating (not ready, still serving) and web-4 joins on n1."""
    web = copy.deepcopy(state.objects["EndpointSlice"]["default/web-abc12"])
    web["endpoints"][2]["conditions"] = {"ready": False, "serving": True, "terminating": True}
    web["endpoints"].append(
        {
            "addresses": ["10.244.1.11"],
            "conditions": {"ready": True},
            "nodeName": "n1",
            "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-4"},
        }
    )
    return web


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"{path} is missing; run with SKIFF_UPDATE_GOLDEN=1 to create it")
    expected = path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), name, "rendered"))
        pytest.fail(f"{name} differs from the golden file:\n{diff}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("node", ["n1", "n2"])
def test_tables_match_golden_before_and_after_an_endpoint_change(mode: str, node: str) -> None:
    state = cluster_state()
    proxier = NodeProxier(node, renderer_for(mode))
    check_golden(f"{mode}-{node}.txt", proxier.sync(state).tables.combined())

    changed = state.upsert("EndpointSlice", changed_web_slice(state))
    assert changed == {"service:default/web"}
    result = proxier.sync(state, ["default/web"])
    assert result.rendered_services == 1
    check_golden(f"{mode}-{node}-after.txt", result.tables.combined())

    # The incremental result is exactly what a full render of the new state gives.
    fresh = NodeProxier(node, renderer_for(mode)).sync(state).tables.combined()
    assert result.tables.combined() == fresh
