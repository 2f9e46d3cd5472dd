"""Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and CronJobs."""

from __future__ import annotations

import copy

from apiserver.registry import strategy_for
from skiff.api.kinds import BUILTINS


def strategy(group: str, kind: str):
    version = "v1"
    return strategy_for(BUILTINS.by_kind(group, version, kind))


DEPLOYMENTS = strategy("apps", "Deployment")
REPLICASETS = strategy("apps", "ReplicaSet")
STATEFULSETS = strategy("apps", "StatefulSet")
DAEMONSETS = strategy("apps", "DaemonSet")
JOBS = strategy("batch", "Job")
CRONJOBS = strategy("batch", "CronJob")


def workload(kind: str = "Deployment", labels: dict | None = None, **spec: object) -> dict:
    template_labels = {"app": "web"} if labels is None else labels
    return {
        "kind": kind,
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": template_labels},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
            },
            **spec,
        },
    }


def fields(causes: list) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


def test_deployment_defaults() -> None:
    deployment = workload()
    DEPLOYMENTS.default(deployment)
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert spec["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"
    assert DEPLOYMENTS.validate(deployment) == []


def test_selector_must_match_template_labels() -> None:
    deployment = workload(labels={"app": "other"})
    DEPLOYMENTS.default(deployment)
    (cause,) = DEPLOYMENTS.validate(deployment)
    assert cause.field == "spec.template.metadata.labels"
    assert cause.message.endswith("`selector` does not match template `labels`")


def test_selector_is_required_and_not_empty() -> None:
    deployment = workload()
    del deployment["spec"]["selector"]
    DEPLOYMENTS.default(deployment)
    assert ("spec.selector", "Required value") in fields(DEPLOYMENTS.validate(deployment))
    deployment["spec"]["selector"] = {}
    assert any("empty selector is invalid for deployment" in m for _, m in fields(DEPLOYMENTS.validate(deployment)))


def test_rolling_update_cannot_stall_and_recreate_has_no_rolling_parameters() -> None:
    deployment = workload(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}})
    DEPLOYMENTS.default(deployment)
    assert fields(DEPLOYMENTS.validate(deployment)) == [
        ("spec.strategy.rollingUpdate.maxUnavailable", "Invalid value: 0: may not be 0 when `maxSurge` is 0")
    ]
    deployment["spec"]["strategy"] = {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}
    assert fields(DEPLOYMENTS.validate(deployment)) == [
        ("spec.strategy.rollingUpdate", "Forbidden: may not be specified when strategy `type` is 'Recreate'")
    ]


def test_negative_replicas_and_wrong_restart_policy() -> None:
    deployment = workload(replicas=-1)
    DEPLOYMENTS.default(deployment)
    deployment["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    assert fields(DEPLOYMENTS.validate(deployment)) == [
        ("spec.template.spec.restartPolicy", 'Unsupported value: "Never": supported values: "Always"'),
        ("spec.replicas", "Invalid value: -1: must be greater than or equal to 0"),
    ]


def test_selectors_are_immutable() -> None:
    for workloads in (DEPLOYMENTS, REPLICASETS, DAEMONSETS, JOBS):
        old = workload()
        new = copy.deepcopy(old)
        new["spec"]["selector"] = {"matchLabels": {"app": "new"}}
        causes = workloads.validate_update(new, old)
        assert causes[0].field == "spec.selector"
        assert causes[0].message.endswith("field is immutable")


def test_deployment_generation_follows_spec_and_annotations_not_status() -> None:
    old = workload()
    new = copy.deepcopy(old)
    new["status"] = {"replicas": 3}
    assert not DEPLOYMENTS.generation_changed(new, old)
    new["metadata"]["annotations"] = {"kubernetes.io/change-cause": "x"}
    assert DEPLOYMENTS.generation_changed(new, old)


def test_deployment_row() -> None:
    deployment = workload(replicas=3)
    deployment["status"] = {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    row = DEPLOYMENTS.table_row(deployment)
    assert row[:4] == ["web", "2/3", 3, 2]
    assert row[5:] == ["web", "nginx", "app=web"]
    assert [c.name for c in DEPLOYMENTS.table_columns()][:5] == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Age",
    ]
    assert DEPLOYMENTS.table_columns()[2].type == "integer"


def test_replicaset_row_and_field_selector() -> None:
    replicaset = workload("ReplicaSet", replicas=2)
    replicaset["status"] = {"replicas": 2, "readyReplicas": 1}
    assert REPLICASETS.table_row(replicaset)[:4] == ["web", 2, 2, 1]
    assert REPLICASETS.selectable_fields()["status.replicas"](replicaset) == "2"


def test_statefulset_and_daemonset_defaults() -> None:
    statefulset = workload("StatefulSet")
    STATEFULSETS.default(statefulset)
    spec = statefulset["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    daemonset = workload("DaemonSet")
    DAEMONSETS.default(daemonset)
    assert daemonset["spec"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0},
    }
    assert daemonset["spec"]["revisionHistoryLimit"] == 10


def test_statefulset_updates_limited_to_some_fields() -> None:
    old = workload("StatefulSet", serviceName="web")
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    assert STATEFULSETS.validate_update(new, old) == []
    new["spec"]["serviceName"] = "other"
    assert STATEFULSETS.validate_update(new, old)[0].message.startswith(
        "Forbidden: updates to statefulset spec for fields other than 'replicas'"
    )


def _job(**spec: object) -> dict:
    job = workload("Job", **spec)
    del job["spec"]["selector"]
    return job


def test_job_defaults_and_generated_selector() -> None:
    job = _job()
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    JOBS.default(job)
    JOBS.prepare_for_create(job)
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    labels = spec["template"]["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "web"
    assert labels["controller-uid"] == "u-1"
    assert JOBS.validate(job) == []


def test_job_pods_may_not_restart_always() -> None:
    job = _job()
    JOBS.default(job)
    JOBS.prepare_for_create(job)
    assert fields(JOBS.validate(job)) == [
        (
            "spec.template.spec.restartPolicy",
            'Unsupported value: "Always": supported values: "OnFailure", "Never"',
        )
    ]


def test_job_template_is_immutable_and_row_shows_status() -> None:
    old = _job()
    old["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    JOBS.default(old)
    JOBS.prepare_for_create(old)
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert [c.field for c in JOBS.validate_update(new, old)] == ["spec.template"]
    old["status"] = {
        "succeeded": 1,
        "startTime": "2024-01-01T00:00:00Z",
        "completionTime": "2024-01-01T00:00:42Z",
        "conditions": [{"type": "Complete", "status": "True"}],
    }
    assert JOBS.table_row(old)[1:4] == ["Complete", "1/1", "42s"]
    assert JOBS.selectable_fields()["status.successful"](old) == "1"


def _cronjob(schedule: str) -> dict:
    job_template = _job()["spec"]
    job_template["template"]["spec"]["restartPolicy"] = "OnFailure"
    spec = {"schedule": schedule, "jobTemplate": {"spec": job_template}}
    cronjob = {"metadata": {"name": "nightly", "namespace": "default"}, "spec": spec}
    CRONJOBS.default(cronjob)
    return cronjob


def test_cronjob_defaults_and_schedule_validation() -> None:
    cronjob = _cronjob("*/5 * * * *")
    CRONJOBS.default(cronjob)
    spec = cronjob["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"]) == ("Allow", False)
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    assert CRONJOBS.validate(cronjob) == []
    for schedule in ("@hourly", "0 9 * * mon-fri", "15 2 1 jan,jul *"):
        assert CRONJOBS.validate(_cronjob(schedule)) == []
    assert fields(CRONJOBS.validate(_cronjob("every minute"))) == [
        ("spec.schedule", 'Invalid value: "every minute": expected exactly 5 fields, found 2: [every minute]')
    ]
    assert fields(CRONJOBS.validate(_cronjob("61 * * * *"))) == [
        ("spec.schedule", 'Invalid value: "61 * * * *": end of range (61) above maximum (59): 61')
    ]


def test_cronjob_row() -> None:
    cronjob = _cronjob("0 * * * *")
    CRONJOBS.default(cronjob)
    row = CRONJOBS.table_row(cronjob)
    assert row[:6] == ["nightly", "0 * * * *", "<none>", False, 0, "<none>"]
