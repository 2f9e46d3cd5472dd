"""Jobs and CronJobs."""

from __future__ import annotations

import uuid
import zoneinfo
from typing import Any

from apiserver.registry import printing as p
from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Obj, Strategy, age_of
from apiserver.registry.cron import CronError, parse_schedule
from apiserver.registry.podspec import default_pod_template, validate_pod_template
from apiserver.registry.workloads import SELECTOR_MISMATCH, WorkloadStrategy, selector_update_causes
from skiff.api import validation as v
from skiff.api.errors import Cause
from skiff.api.timefmt import human_duration, now, try_parse_time

JOB_RESTART_POLICIES = ("OnFailure", "Never")
CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
# A CronJob's name becomes part of its Jobs' names with an 11-character suffix; Job names end up in
# pod labels, which are limited to 63 characters.
CRONJOB_NAME_MAX = 52


def validate_job_spec(spec: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for field_name in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
        causes += v.non_negative(v.child(path, field_name), spec.get(field_name))
    causes += v.positive(v.child(path, "activeDeadlineSeconds"), spec.get("activeDeadlineSeconds"))
    mode = spec.get("completionMode")
    causes += v.one_of(v.child(path, "completionMode"), mode, ("NonIndexed", "Indexed"))
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(v.required(v.child(path, "completions"), "when completion mode is Indexed"))
    replacement = spec.get("podReplacementPolicy")
    causes += v.one_of(v.child(path, "podReplacementPolicy"), replacement, ("Failed", "TerminatingOrFailed"))
    template_path = v.child(path, "template")
    causes += validate_pod_template(spec.get("template"), template_path, restart_policies=JOB_RESTART_POLICIES)
    return causes


def default_job_spec(spec: Obj) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    default_pod_template(spec.get("template"))


class JobStrategy(WorkloadStrategy):
    status_subresource = True

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        default_job_spec(spec)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels")
        metadata = obj.setdefault("metadata", {})
        if template_labels and not metadata.get("labels"):
            metadata["labels"] = dict(template_labels)

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        if not p.spec(obj).get("manualSelector"):
            self._generate_selector(obj)

    def _generate_selector(self, obj: Obj) -> None:
        # Pods are selected by the Job's UID, so two Jobs never adopt each other's pods.
        metadata = obj.setdefault("metadata", {})
        uid = metadata.setdefault("uid", str(uuid.uuid4()))
        spec = obj.setdefault("spec", {})
        template = spec.setdefault("template", {})
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        for label in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
            labels.setdefault(label, metadata.get("name", ""))
        for label in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
            labels.setdefault(label, uid)
        selector = spec.get("selector") or {}
        selector.setdefault("matchLabels", {}).setdefault(CONTROLLER_UID_LABEL, uid)
        spec["selector"] = selector

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = self._validate_selector(obj, spec)
        return causes + validate_job_spec(spec, "spec")

    def _validate_selector(self, obj: Obj, spec: Obj) -> list[Cause]:
        selector = spec.get("selector")
        if selector is None:
            return [v.required("spec.selector")]
        causes = v.validate_label_selector(selector, "spec.selector")
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not v.selector_matches(selector, labels):
            causes.append(v.invalid("spec.template.metadata.labels", labels, SELECTOR_MISMATCH))
        if not spec.get("manualSelector"):
            causes += _generated_selector_causes(obj, selector, labels)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> list[Cause]:
        causes = selector_update_causes(new, old)
        new_spec, old_spec = p.spec(new), p.spec(old)
        for field_name in ("template", "completionMode", "podFailurePolicy"):
            if new_spec.get(field_name) != old_spec.get(field_name):
                causes.append(v.immutable(f"spec.{field_name}", new_spec.get(field_name)))
        if new_spec.get("completions") != old_spec.get("completions") and not _elastic(new_spec, old_spec):
            causes.append(v.immutable("spec.completions", new_spec.get("completions")))
        return causes

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Status", description="Status of the job."),
            p.column(
                "Completions",
                description="The desired number of successfully finished pods the job should be run with.",
            ),
            p.column("Duration", description="Time required to complete the job."),
            AGE_COLUMN,
            p.CONTAINERS_COLUMN,
            p.IMAGES_COLUMN,
            p.column("Selector", description="A label query over pods that should match the pod count.", wide=True),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        containers, images = p.containers_and_images(p.template_spec(obj))
        selector = p.format_label_selector(p.spec(obj).get("selector"))
        return [
            p.name(obj),
            job_status(obj),
            _completions(obj),
            _duration(obj),
            age_of(obj),
            containers,
            images,
            selector,
        ]

    def field_selectors(self) -> dict[str, Any]:
        return {"status.successful": lambda o: str(p.count(p.status(o).get("succeeded")))}


def _generated_selector_causes(obj: Obj, selector: Obj, labels: dict[str, str]) -> list[Cause]:
    uid = p.meta(obj).get("uid")
    if not uid:
        return [v.required("metadata.uid")]
    causes: list[Cause] = []
    if labels.get(CONTROLLER_UID_LABEL) != uid:
        causes.append(v.invalid("spec.template.metadata.labels", labels, f"must be '{CONTROLLER_UID_LABEL}={uid}'"))
    if (selector.get("matchLabels") or {}).get(CONTROLLER_UID_LABEL) != uid:
        causes.append(
            v.invalid("spec.selector.matchLabels", selector.get("matchLabels"), "`selector` not auto-generated")
        )
    return causes


def _elastic(new_spec: Obj, old_spec: Obj) -> bool:
    # Indexed Jobs may be scaled by changing completions and parallelism together.
    return new_spec.get("completionMode") == "Indexed" and new_spec.get("completions") == new_spec.get("parallelism")


def _has_condition(obj: Obj, condition_type: str) -> bool:
    return any(
        c.get("type") == condition_type and c.get("status") == "True" for c in p.status(obj).get("conditions") or []
    )


def job_status(obj: Obj) -> str:
    """The STATUS kubectl shows for a Job, from its conditions."""
    if _has_condition(obj, "Complete"):
        return "Complete"
    if _has_condition(obj, "Failed"):
        return "Failed"
    if p.meta(obj).get("deletionTimestamp"):
        return "Terminating"
    for condition_type in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has_condition(obj, condition_type):
            return condition_type
    return "Running"


def _completions(obj: Obj) -> str:
    spec, succeeded = p.spec(obj), p.count(p.status(obj).get("succeeded"))
    completions = spec.get("completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = spec.get("parallelism") or 0
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def _duration(obj: Obj) -> str:
    started = try_parse_time(p.status(obj).get("startTime"))
    if started is None:
        return ""
    finished = try_parse_time(p.status(obj).get("completionTime")) or now()
    return human_duration(finished - started)


class CronJobStrategy(Strategy):
    status_subresource = True
    status_update_keeps_metadata = ("labels",)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        job_spec = (spec.get("jobTemplate") or {}).get("spec")
        if isinstance(job_spec, dict):
            default_pod_template(job_spec.get("template"))

    def validate(self, obj: Obj) -> list[Cause]:
        spec = p.spec(obj)
        causes = _validate_cronjob_name(p.name(obj))
        causes += validate_schedule(spec.get("schedule"), "spec.schedule")
        causes += _validate_time_zone(spec.get("timeZone"))
        policy = spec.get("concurrencyPolicy")
        causes += v.one_of("spec.concurrencyPolicy", policy, ("Allow", "Forbid", "Replace"), allow_empty=False)
        for field_name in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            causes += v.non_negative(f"spec.{field_name}", spec.get(field_name))
        job_spec = (spec.get("jobTemplate") or {}).get("spec")
        if not isinstance(job_spec, dict):
            return [*causes, v.required("spec.jobTemplate.spec")]
        return causes + validate_job_spec(job_spec, "spec.jobTemplate.spec")

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("spec") != old.get("spec")

    def table_columns(self) -> list[Column]:
        return [
            NAME_COLUMN,
            p.column("Schedule", description="The schedule in Cron format."),
            p.column("Timezone", description="The time zone name for the given schedule."),
            p.column("Suspend", "boolean", "Whether the controller suspends subsequent executions."),
            p.column("Active", "integer", "A list of pointers to currently running jobs."),
            p.column("Last Schedule", description="When the job was last successfully scheduled."),
            AGE_COLUMN,
            p.CONTAINERS_COLUMN,
            p.IMAGES_COLUMN,
            p.column("Selector", description="A label query over pods that should match the pod count.", wide=True),
        ]

    def table_row(self, obj: Obj) -> list[Any]:
        spec, status = p.spec(obj), p.status(obj)
        job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
        containers, images = p.containers_and_images((job_spec.get("template") or {}).get("spec") or {})
        last = status.get("lastScheduleTime")
        return [
            p.name(obj),
            spec.get("schedule", ""),
            spec.get("timeZone") or p.NONE,
            bool(spec.get("suspend")),
            len(status.get("active") or []),
            age_of({"metadata": {"creationTimestamp": last}}) if last else p.NONE,
            age_of(obj),
            containers,
            images,
            p.format_label_selector(job_spec.get("selector")),
        ]


def validate_schedule(schedule: object, path: str) -> list[Cause]:
    if not schedule:
        return [v.required(path)]
    if not isinstance(schedule, str):
        return [v.invalid(path, schedule, "must be a string")]
    if "TZ" in schedule:
        return [v.invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    try:
        parse_schedule(schedule)
    except CronError as error:
        return [v.invalid(path, schedule, str(error))]
    return []


def _validate_time_zone(zone: object) -> list[Cause]:
    if zone is None:
        return []
    if not isinstance(zone, str) or not zone:
        return [v.invalid("spec.timeZone", zone, "unknown time zone ")]
    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [v.invalid("spec.timeZone", zone, f"unknown time zone {zone}")]
    return []


def _validate_cronjob_name(name: str) -> list[Cause]:
    if len(name) > CRONJOB_NAME_MAX:
        return [v.invalid("metadata.name", name, f"must be no more than {CRONJOB_NAME_MAX} characters")]
    return []
