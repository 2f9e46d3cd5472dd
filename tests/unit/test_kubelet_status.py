"""Pod status as the kubelet computes it: phase, conditions and container states."""

from __future__ import annotations

from typing import Any

from kubelet_sim.podstatus import ContainerView, PodView, build_status
from kubelet_sim.runtime import ContainerMetadata, ContainerState, ContainerStatus

NOW = 1_700_000_000.0


def pod(restart_policy: str = "Always", init: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "web", "image": "nginx:1"}], "restartPolicy": restart_policy}
    if init:
        spec["initContainers"] = [{"name": "setup", "image": "busybox:1"}]
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": spec, "status": {}}


def container(state: ContainerState, attempt: int = 0, exit_code: int = 0) -> ContainerStatus:
    finished = NOW - 1 if state is ContainerState.EXITED else 0.0
    reason = "" if state is not ContainerState.EXITED else ("Completed" if exit_code == 0 else "Error")
    return ContainerStatus(
        f"id{attempt}", "sb", ContainerMetadata("web", attempt), state, "nginx:1", "ref", NOW - 5, NOW - 4,
        finished, exit_code, reason,
    )  # fmt: skip


def status_of(body: dict[str, Any], views: list[ContainerView], init: list[ContainerView] | None = None) -> dict:
    return build_status(PodView(body, "127.0.10.1", "10.244.1.2", True, init or [], views), NOW)


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_a_ready_running_container_makes_a_ready_running_pod() -> None:
    body = pod()
    status = status_of(
        body,
        [ContainerView(body["spec"]["containers"][0], container(ContainerState.RUNNING), ready=True, started=True)],
    )
    assert status["phase"] == "Running"
    assert conditions(status) == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
        "ContainersReady": "True", "PodScheduled": "True",
    }  # fmt: skip
    web = status["containerStatuses"][0]
    assert web["state"]["running"]["startedAt"] and web["ready"] and web["containerID"] == "skiff-sim://id0"
    assert status["podIPs"] == [{"ip": "10.244.1.2"}]


def test_a_crash_looping_container_waits_with_its_last_run_in_last_state() -> None:
    body = pod()
    view = ContainerView(
        body["spec"]["containers"][0],
        container(ContainerState.EXITED, attempt=3, exit_code=1),
        waiting=("CrashLoopBackOff", "back-off 40s restarting failed container=web pod=p_ns(u)"),
    )
    status = status_of(body, [view])
    web = status["containerStatuses"][0]
    assert status["phase"] == "Running"
    assert web["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert web["lastState"]["terminated"]["exitCode"] == 1 and web["restartCount"] == 3
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady" and ready["message"] == "containers with unready status: [web]"


def test_finished_containers_give_succeeded_or_failed_by_restart_policy() -> None:
    for policy, code, phase in (("Never", 0, "Succeeded"), ("Never", 2, "Failed"), ("OnFailure", 0, "Succeeded")):
        body = pod(policy)
        status = status_of(
            body, [ContainerView(body["spec"]["containers"][0], container(ContainerState.EXITED, exit_code=code))]
        )
        assert status["phase"] == phase
    completed = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert completed["reason"] == "PodCompleted"


def test_app_containers_wait_for_init_containers() -> None:
    body = pod(init=True)
    init = ContainerView(body["spec"]["initContainers"][0], waiting=("ContainerCreating", ""))
    app = ContainerView(body["spec"]["containers"][0], waiting=("PodInitializing", ""))
    status = status_of(body, [app], [init])
    assert status["phase"] == "Pending"
    initialized = next(c for c in status["conditions"] if c["type"] == "Initialized")
    assert initialized["status"] == "False" and initialized["message"] == "containers with incomplete status: [setup]"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"


def test_transition_times_stay_put_while_nothing_changes() -> None:
    body = pod()
    view = ContainerView(body["spec"]["containers"][0], container(ContainerState.RUNNING), ready=True, started=True)
    first = build_status(PodView(body, "h", "i", True, [], [view]), NOW)
    later = build_status(PodView(body, "h", "i", True, [], [view]), NOW + 60, first)
    assert later == first
