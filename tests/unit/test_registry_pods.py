"""Pods: defaults, validation messages, update rules, kubectl's columns and field selectors."""

from __future__ import annotations

import copy
from datetime import timedelta

from apiserver.registry import strategy_for
from skiff.api.kinds import BUILTINS
from skiff.api.timefmt import format_time, now

PODS = strategy_for(BUILTINS.by_kind("", "v1", "Pod"))


def _ago(**delta: float) -> str:
    return format_time(now() - timedelta(**delta))


def make_pod(**spec: object) -> dict:
    containers = spec.pop("containers", [{"name": "web", "image": "nginx:1.25"}])
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": _ago(minutes=5)},
        "spec": {"containers": containers, **spec},
    }


def created(pod: dict) -> dict:
    PODS.default(pod)
    PODS.prepare_for_create(pod)
    return pod


def fields(causes: list) -> list[tuple[str, str]]:
    return [(c.field, c.message) for c in causes]


def test_pod_spec_defaults() -> None:
    pod = created(make_pod())
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert spec["priority"] == 0
    assert spec["preemptionPolicy"] == "PreemptLowerPriority"
    container = spec["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["resources"] == {}


def test_image_pull_policy_depends_on_the_tag() -> None:
    images = ["nginx", "nginx:latest", "nginx:1.25", "registry:5000/app", "app@sha256:abc"]
    pod = created(make_pod(containers=[{"name": f"c{i}", "image": image} for i, image in enumerate(images)]))
    policies = [c["imagePullPolicy"] for c in pod["spec"]["containers"]]
    assert policies == ["Always", "Always", "IfNotPresent", "Always", "IfNotPresent"]


def test_ports_and_probes_get_defaults() -> None:
    container = {
        "name": "web",
        "image": "nginx:1.25",
        "ports": [{"containerPort": 80}],
        "livenessProbe": {"httpGet": {"port": 80}},
    }
    pod = created(make_pod(containers=[container]))
    container = pod["spec"]["containers"][0]
    assert container["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert container["livenessProbe"] == {
        "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1,
        "periodSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }


def test_new_pods_start_pending_with_a_qos_class() -> None:
    pod = make_pod()
    pod["status"] = {"phase": "Running"}
    assert created(pod)["status"] == {"phase": "Pending", "qosClass": "BestEffort"}
    exact = {"limits": {"cpu": "1", "memory": "1Gi"}}
    guaranteed = created(make_pod(containers=[{"name": "a", "image": "x", "resources": exact}]))
    assert guaranteed["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert guaranteed["status"]["qosClass"] == "Guaranteed"
    some = {"requests": {"cpu": "100m"}}
    assert created(make_pod(containers=[{"name": "a", "image": "x", "resources": some}]))["status"]["qosClass"] == (
        "Burstable"
    )


def test_a_pod_needs_containers() -> None:
    pod = created(make_pod(containers=[]))
    assert fields(PODS.validate(pod)) == [("spec.containers", "Required value")]


def test_container_names_are_labels_and_unique_across_init_containers() -> None:
    pod = created(
        make_pod(
            containers=[{"name": "web", "image": "nginx"}, {"name": "Web_1", "image": "nginx"}],
            initContainers=[{"name": "web", "image": "busybox"}],
        )
    )
    causes = fields(PODS.validate(pod))
    assert ("spec.containers[0].name", 'Duplicate value: "web"') in causes
    assert any(f == "spec.containers[1].name" and "RFC 1123 label" in m for f, m in causes)


def test_image_is_required_and_ports_are_in_range() -> None:
    container = {
        "name": "web",
        "ports": [{"containerPort": 70000, "name": "http"}, {"containerPort": 81, "name": "http"}],
    }
    causes = fields(PODS.validate(created(make_pod(containers=[container]))))
    assert ("spec.containers[0].image", "Required value") in causes
    assert (
        "spec.containers[0].ports[0].containerPort",
        "Invalid value: 70000: must be between 1 and 65535, inclusive",
    ) in causes
    assert ("spec.containers[0].ports[1].name", 'Duplicate value: "http"') in causes


def test_restart_policy_values() -> None:
    causes = fields(PODS.validate(created(make_pod(restartPolicy="Sometimes"))))
    assert causes == [
        (
            "spec.restartPolicy",
            'Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure"',
        )
    ]


def test_requests_may_not_exceed_limits() -> None:
    resources = {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}
    causes = fields(PODS.validate(created(make_pod(containers=[{"name": "a", "image": "x", "resources": resources}]))))
    assert causes == [
        (
            "spec.containers[0].resources.requests",
            'Invalid value: "2": must be less than or equal to cpu limit of 1',
        )
    ]


def test_malformed_quantities_are_reported_with_their_key() -> None:
    resources = {"limits": {"memory": "lots"}}
    causes = PODS.validate(created(make_pod(containers=[{"name": "a", "image": "x", "resources": resources}])))
    assert causes[0].field == "spec.containers[0].resources.limits[memory]"
    assert "quantities must match the regular expression" in causes[0].message


def test_volume_mounts_must_name_a_declared_volume() -> None:
    container = {"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    pod = created(make_pod(containers=[container], volumes=[{"name": "cache"}, {"name": "cache"}]))
    assert pod["spec"]["volumes"][0] == {"name": "cache", "emptyDir": {}}
    causes = fields(PODS.validate(pod))
    assert ("spec.containers[0].volumeMounts[0].name", 'Not found: "data"') in causes
    assert ("spec.volumes[1].name", 'Duplicate value: "cache"') in causes


def test_env_names_are_checked() -> None:
    container = {"name": "a", "image": "x", "env": [{"name": "A=B", "value": "1"}, {"value": "2"}]}
    causes = fields(PODS.validate(created(make_pod(containers=[container]))))
    assert [f for f, _ in causes] == ["spec.containers[0].env[0].name", "spec.containers[0].env[1].name"]


def test_pod_updates_may_only_change_images_and_a_few_fields() -> None:
    old = created(make_pod(tolerations=[{"key": "a", "operator": "Exists"}]))
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.26"
    new["spec"]["activeDeadlineSeconds"] = 60
    new["spec"]["tolerations"].append({"key": "b", "operator": "Exists"})
    assert PODS.validate_update(new, old) == []
    new["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    (cause,) = PODS.validate_update(new, old)
    assert cause.field == "spec"
    assert cause.message.startswith(
        "Forbidden: pod updates may not change fields other than `spec.containers[*].image`"
    )


def test_status_updates_keep_the_spec_and_owner_references() -> None:
    old = created(make_pod())
    old["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "1"}]
    new = copy.deepcopy(old)
    new["spec"]["nodeName"] = "elsewhere"
    new["metadata"]["ownerReferences"] = []
    new["status"] = {"phase": "Running", "qosClass": "Guaranteed"}
    PODS.prepare_for_status_update(new, old)
    assert "nodeName" not in new["spec"]
    assert new["metadata"]["ownerReferences"] == old["metadata"]["ownerReferences"]
    assert new["status"] == {"phase": "Running", "qosClass": "BestEffort"}


def _running_pod(container_status: dict, **status: object) -> dict:
    pod = created(make_pod())
    pod["spec"]["nodeName"] = "node-1"
    pod["status"] = {
        "phase": "Running",
        "podIP": "10.0.0.7",
        "containerStatuses": [container_status],
        **status,
    }
    return pod


def test_crash_looping_pod_prints_crashloopbackoff_and_last_restart() -> None:
    status = {
        "name": "web",
        "ready": False,
        "restartCount": 5,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": _ago(minutes=2)}},
    }
    row = PODS.table_row(_running_pod(status))
    assert row[:5] == ["web", "0/1", "CrashLoopBackOff", "5 (2m ago)", "5m"]
    assert row[5:] == ["10.0.0.7", "node-1", "<none>", "<none>"]


def test_running_ready_pod_and_terminating_pod() -> None:
    status = {"name": "web", "ready": True, "restartCount": 0, "state": {"running": {}}}
    pod = _running_pod(status)
    assert PODS.table_row(pod)[1:4] == ["1/1", "Running", "0"]
    pod["metadata"]["deletionTimestamp"] = _ago(seconds=1)
    assert PODS.table_row(pod)[2] == "Terminating"


def test_init_container_progress_and_failures() -> None:
    pod = created(make_pod(initContainers=[{"name": "setup", "image": "busybox"}]))
    pod["status"] = {
        "phase": "Pending",
        "initContainerStatuses": [{"name": "setup", "state": {"running": {}}, "restartCount": 0}],
    }
    assert PODS.table_row(pod)[2] == "Init:0/1"
    pod["status"]["initContainerStatuses"][0]["state"] = {"terminated": {"exitCode": 2}}
    assert PODS.table_row(pod)[2] == "Init:ExitCode:2"


def test_completed_pod_prints_completed() -> None:
    status = {"name": "web", "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
    assert PODS.table_row(_running_pod(status, phase="Succeeded"))[2] == "Completed"


def test_pod_columns_as_kubectl_expects_them() -> None:
    columns = PODS.table_columns()
    assert [c.name for c in columns] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
        "IP",
        "Node",
        "Nominated Node",
        "Readiness Gates",
    ]
    assert columns[0].format == "name"
    assert [c.priority for c in columns] == [0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_pod_field_selectors() -> None:
    pod = _running_pod({"name": "web", "state": {"running": {}}})
    selectors = PODS.selectable_fields()
    values = {name: selectors[name](pod) for name in selectors}
    assert values["spec.nodeName"] == "node-1"
    assert values["status.phase"] == "Running"
    assert values["status.podIP"] == "10.0.0.7"
    assert values["spec.hostNetwork"] == "false"
    assert values["spec.restartPolicy"] == "Always"
    assert values["metadata.namespace"] == "default"
    assert {"spec.schedulerName", "spec.serviceAccountName", "status.nominatedNodeName"} <= set(values)
