"""Pod-template hashes, revision numbers, annotations passed to ReplicaSets, and history clean-up."""

from __future__ import annotations

import copy
from typing import Any

from controllers.deployment import history
from controllers.podutil import POD_TEMPLATE_HASH, compute_hash, equal_ignore_hash, fnv32a, safe_encode

Obj = dict[str, Any]

TEMPLATE: Obj = {
    "metadata": {"labels": {"app": "web"}},
    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]},
}


def rs(name: str, revision: int | None, template: Obj | None = None, replicas: int = 0, **extra: Any) -> Obj:
    annotations = {history.REVISION: str(revision)} if revision is not None else {}
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": extra.get("created", "2024-01-01T00:00:00Z"),
            "annotations": annotations,
        },
        "spec": {"replicas": replicas, "template": template or TEMPLATE},
        "status": {"replicas": replicas, "observedGeneration": 1},
    }


def test_fnv32a_matches_the_reference_vectors() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_hash_is_stable_safe_and_changes_with_the_template_and_collision_count() -> None:
    first = compute_hash(TEMPLATE)
    assert first == compute_hash(copy.deepcopy(TEMPLATE))
    assert set(first) <= set("456789bcdf")
    assert 1 <= len(first) <= 10
    changed = copy.deepcopy(TEMPLATE)
    changed["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert compute_hash(changed) != first
    assert compute_hash(TEMPLATE, 1) != first
    assert compute_hash(TEMPLATE, 1) != compute_hash(TEMPLATE, 2)
    # key order does not matter: the same template is the same hash
    reordered = {"spec": TEMPLATE["spec"], "metadata": TEMPLATE["metadata"]}
    assert compute_hash(reordered) == first


def test_safe_encoding_maps_each_digit_as_kube_does() -> None:
    # The decimal hash's bytes ('0' is 48) index the 27-letter alphabet, so hashes look like "7c5ddbdf54".
    assert safe_encode("0123456789") == "456789bcdf"


def test_templates_compare_equal_without_the_hash_label() -> None:
    labelled = copy.deepcopy(TEMPLATE)
    labelled["metadata"]["labels"][POD_TEMPLATE_HASH] = "abc"
    assert equal_ignore_hash(labelled, TEMPLATE)
    assert POD_TEMPLATE_HASH in labelled["metadata"]["labels"]  # the original is left alone
    other = copy.deepcopy(labelled)
    other["spec"]["containers"][0]["image"] = "nginx:2"
    assert not equal_ignore_hash(other, TEMPLATE)


def test_the_oldest_matching_replica_set_is_the_new_one() -> None:
    deployment = {"spec": {"template": TEMPLATE}}
    newer = rs("b", 3, created="2024-01-02T00:00:00Z")
    older = rs("a", 1, created="2024-01-01T00:00:00Z")
    different = copy.deepcopy(TEMPLATE)
    different["spec"]["containers"][0]["image"] = "other"
    assert history.find_new_rs(deployment, [newer, rs("c", 2, different), older]) is older
    assert history.old_rss([newer, older], older) == [newer]


def test_new_replica_set_gets_the_next_revision_and_the_deployments_annotations() -> None:
    deployment = {
        "metadata": {
            "annotations": {
                history.CHANGE_CAUSE: "kubectl set image",
                history.REVISION: "4",
                history.LAST_APPLIED: "{}",
                "team": "a",
            }
        },
        "spec": {"replicas": 3},
    }
    annotations: dict[str, str] = {}
    assert history.set_new_rs_annotations(deployment, annotations, 5, False, 4)
    assert annotations == {
        history.CHANGE_CAUSE: "kubectl set image",
        "team": "a",
        history.REVISION: "5",
        "deployment.kubernetes.io/desired-replicas": "3",
        "deployment.kubernetes.io/max-replicas": "4",
    }
    assert not history.set_new_rs_annotations(deployment, annotations, 5, True, 4)


def test_a_replica_set_brought_back_by_rollback_gets_a_new_revision_and_keeps_its_history() -> None:
    deployment: Obj = {"metadata": {}, "spec": {"replicas": 1}}
    annotations = {history.REVISION: "1"}
    old = [rs("b", 2), rs("c", 3)]
    assert history.set_new_rs_annotations(deployment, annotations, history.max_revision(old) + 1, True, 0)
    assert annotations[history.REVISION] == "4"
    assert annotations[history.REVISION_HISTORY] == "1"
    history.set_new_rs_annotations(deployment, annotations, 6, True, 0)
    assert annotations[history.REVISION_HISTORY] == "1,4"
    # a revision is never lowered
    assert not history.set_new_rs_annotations(deployment, annotations, 2, True, 0)
    assert annotations[history.REVISION] == "6"


def test_history_limit_deletes_the_lowest_revisions_without_pods() -> None:
    deployment = {"spec": {"revisionHistoryLimit": 2}}
    old = [rs("r1", 1), rs("r2", 2), rs("r3", 3), rs("r4", 4)]
    assert [r["metadata"]["name"] for r in history.history_to_clean(deployment, old)] == ["r1", "r2"]
    busy = [rs("r1", 1, replicas=1), rs("r2", 2), rs("r3", 3)]
    assert [r["metadata"]["name"] for r in history.history_to_clean(deployment, busy)] == []
    assert history.history_to_clean({"spec": {}}, old) == []
    assert [r["metadata"]["name"] for r in history.history_to_clean({"spec": {"revisionHistoryLimit": 0}}, old)] == [
        "r1",
        "r2",
        "r3",
        "r4",
    ]
