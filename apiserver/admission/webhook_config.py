"""MutatingWebhookConfiguration and ValidatingWebhookConfiguration (admissionregistration.k8s.io/v1):
defaults and validation, as kube-apiserver applies them."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlsplit

from apiserver.registry.base import AGE_COLUMN, NAME_COLUMN, Column, Strategy, age_of
from skiff.api import validation as v
from skiff.api.errors import Cause

Obj = dict[str, Any]

OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
FAILURE_POLICIES = ("Fail", "Ignore")
MATCH_POLICIES = ("Equivalent", "Exact")
SIDE_EFFECTS = ("None", "NoneOnDryRun")
REINVOCATION_POLICIES = ("IfNeeded", "Never")
SCOPES = ("*", "Cluster", "Namespaced")
REVIEW_VERSIONS = ("v1", "v1beta1")
DEFAULT_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 30


def default_webhook(webhook: Obj, mutating: bool) -> None:
    webhook.setdefault("failurePolicy", "Fail")
    webhook.setdefault("matchPolicy", "Equivalent")
    webhook.setdefault("namespaceSelector", {})
    webhook.setdefault("objectSelector", {})
    webhook.setdefault("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
    if mutating:
        webhook.setdefault("reinvocationPolicy", "Never")
    for rule in webhook.get("rules") or []:
        if isinstance(rule, dict):
            rule.setdefault("scope", "*")
    service = (webhook.get("clientConfig") or {}).get("service")
    if isinstance(service, dict):
        service.setdefault("port", 443)


def validate_webhooks(obj: Obj, mutating: bool) -> list[Cause]:
    causes: list[Cause] = []
    webhooks = obj.get("webhooks") or []
    if not isinstance(webhooks, list):
        return [v.invalid("webhooks", webhooks, "must be a list")]
    seen: set[str] = set()
    for position, webhook in enumerate(webhooks):
        path = f"webhooks[{position}]"
        if not isinstance(webhook, dict):
            causes.append(v.invalid(path, webhook, "must be an object"))
            continue
        name = webhook.get("name") or ""
        if not name:
            causes.append(v.required(f"{path}.name"))
        else:
            causes += v.invalid_each(f"{path}.name", name, v.dns1123_subdomain(name))
            if len(name.split(".")) < 3:
                causes.append(
                    v.invalid(f"{path}.name", name, "should be a domain with at least three segments separated by dots")
                )
            if name in seen:
                causes.append(v.duplicate(f"{path}.name", name))
            seen.add(name)
        causes += _validate_review_versions(webhook.get("admissionReviewVersions"), f"{path}.admissionReviewVersions")
        causes += _one_of(webhook, "failurePolicy", FAILURE_POLICIES, path)
        causes += _one_of(webhook, "matchPolicy", MATCH_POLICIES, path)
        side_effects = webhook.get("sideEffects")
        if not side_effects:
            causes.append(v.required(f"{path}.sideEffects", "must specify one of None, NoneOnDryRun"))
        else:
            causes += _one_of(webhook, "sideEffects", SIDE_EFFECTS, path)
        if mutating:
            causes += _one_of(webhook, "reinvocationPolicy", REINVOCATION_POLICIES, path)
        timeout = webhook.get("timeoutSeconds")
        if timeout is not None and (
            not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= MAX_TIMEOUT_SECONDS
        ):
            causes.append(
                v.invalid(f"{path}.timeoutSeconds", timeout, "the timeout value must be between 1 and 30 seconds")
            )
        for key in ("namespaceSelector", "objectSelector"):
            causes += v.validate_label_selector(webhook.get(key), f"{path}.{key}")
        causes += _validate_client_config(webhook.get("clientConfig"), f"{path}.clientConfig")
        for index, rule in enumerate(webhook.get("rules") or []):
            causes += _validate_rule(rule, f"{path}.rules[{index}]")
    return causes


def _one_of(webhook: Obj, key: str, supported: tuple[str, ...], path: str) -> list[Cause]:
    value = webhook.get(key)
    if value is not None and value not in supported:
        return [v.not_supported(f"{path}.{key}", value, supported)]
    return []


def _validate_review_versions(versions: Any, path: str) -> list[Cause]:
    if not versions:
        return [v.required(path, "must specify one of v1, v1beta1")]
    if not isinstance(versions, list) or not any(item in REVIEW_VERSIONS for item in versions):
        return [v.invalid(path, versions, "must include at least one of v1, v1beta1")]
    return []


def _validate_client_config(config: Any, path: str) -> list[Cause]:
    if not isinstance(config, dict):
        return [v.required(path, "exactly one of url or service is required")]
    url, service = config.get("url"), config.get("service")
    if bool(url) == bool(service):
        return [v.required(path, "exactly one of url or service is required")]
    causes: list[Cause] = []
    bundle = config.get("caBundle")
    if bundle:
        try:
            base64.b64decode(bundle, validate=True)
        except (binascii.Error, ValueError, TypeError):
            causes.append(v.invalid(f"{path}.caBundle", "<bytes>", "must be base64-encoded PEM certificates"))
    if url:
        parts = urlsplit(url)
        if parts.scheme != "https":
            causes.append(v.not_supported(f"{path}.url", parts.scheme, ["https"]))
        if not parts.hostname:
            causes.append(v.invalid(f"{path}.url", url, "host must be specified"))
        if parts.username or parts.password:
            causes.append(v.invalid(f"{path}.url", url, "user information is not permitted in the URL"))
        if parts.fragment:
            causes.append(v.invalid(f"{path}.url", url, "fragments are not permitted in the URL"))
        if parts.query:
            causes.append(v.invalid(f"{path}.url", url, "query parameters are not permitted in the URL"))
        return causes
    if not isinstance(service, dict):
        return [*causes, v.invalid(f"{path}.service", service, "must be an object")]
    for key in ("name", "namespace"):
        if not service.get(key):
            causes.append(v.required(f"{path}.service.{key}", f"service {key} is required"))
    service_path = service.get("path")
    if service_path is not None and not str(service_path).startswith("/"):
        causes.append(v.invalid(f"{path}.service.path", service_path, "must start with a '/'"))
    port = service.get("port", 443)
    if not isinstance(port, int) or not 1 <= port <= 65535:
        causes.append(v.invalid(f"{path}.service.port", port, "port is not valid: must be between 1 and 65535"))
    return causes


def _validate_rule(rule: Any, path: str) -> list[Cause]:
    if not isinstance(rule, dict):
        return [v.invalid(path, rule, "must be an object")]
    causes: list[Cause] = []
    operations = rule.get("operations") or []
    if not operations:
        causes.append(v.required(f"{path}.operations"))
    for index, operation in enumerate(operations):
        if operation not in OPERATIONS:
            causes.append(v.not_supported(f"{path}.operations[{index}]", operation, OPERATIONS))
    if "*" in operations and len(operations) > 1:
        causes.append(
            v.invalid(f"{path}.operations", operations, "if '*' is present, must not specify other operations")
        )
    for key in ("apiGroups", "apiVersions", "resources"):
        values = rule.get(key) or []
        if not values:
            causes.append(v.required(f"{path}.{key}"))
        if "*" in values and len(values) > 1 and key != "resources":
            causes.append(v.invalid(f"{path}.{key}", values, "if '*' is present, must not specify other values"))
    for index, resource in enumerate(rule.get("resources") or []):
        if not resource or resource.count("/") > 1:
            causes.append(
                v.invalid(f"{path}.resources[{index}]", resource, "must be a resource or resource/subresource")
            )
    scope = rule.get("scope")
    if scope is not None and scope not in SCOPES:
        causes.append(v.not_supported(f"{path}.scope", scope, SCOPES))
    return causes


WEBHOOKS_COLUMN = Column("Webhooks", "integer", description="How many webhooks the configuration holds.")


class _WebhookConfigurationStrategy(Strategy):
    mutating = False
    tracks_generation = True

    def default(self, obj: Obj) -> None:
        for webhook in obj.get("webhooks") or []:
            if isinstance(webhook, dict):
                default_webhook(webhook, self.mutating)

    def validate(self, obj: Obj) -> list[Cause]:
        return validate_webhooks(obj, self.mutating)

    def table_columns(self) -> list[Column]:
        return [NAME_COLUMN, WEBHOOKS_COLUMN, AGE_COLUMN]

    def table_row(self, obj: Obj) -> list[Any]:
        return [obj.get("metadata", {}).get("name", ""), len(obj.get("webhooks") or []), age_of(obj)]


class MutatingWebhookConfigurationStrategy(_WebhookConfigurationStrategy):
    mutating = True


class ValidatingWebhookConfigurationStrategy(_WebhookConfigurationStrategy):
    mutating = False
