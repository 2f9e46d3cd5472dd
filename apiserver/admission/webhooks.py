"""Dynamic admission control: calling MutatingWebhookConfiguration and ValidatingWebhookConfiguration
webhooks with `admission.k8s.io/v1` AdmissionReviews over HTTPS.

Runs after the built-in admission plugins (which in Skiff run after object validation): mutating
webhooks first — configurations in name order, webhooks in their listed order, JSON patches applied
one after another, `IfNeeded` webhooks called once more when a later one changed the object — then the
mutated object is pruned, defaulted and validated again, and last the validating webhooks run in
parallel. Configurations are cached from the change stream.

Reaching a webhook: `clientConfig.url` as given; `clientConfig.service` resolves, in this order, to the
address in the Service's `webhook.skiff.dev/address` annotation (`host:port`, for a webhook running
outside the simulated pod network), the ready endpoints of the Service's EndpointSlices, or its
Endpoints object. The serving certificate is verified against `caBundle` (else the system roots) for
the name `<service>.<namespace>.svc`, as kube-apiserver verifies it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import orjson

from apiserver.storage.records import Change
from skiff.api import validation
from skiff.api.errors import ApiError, invalid
from skiff.api.kinds import ResourceType
from skiff.api.patch import apply_json_patch

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext
    from apiserver.http.server_state import ServerState

log = logging.getLogger("skiff.apiserver.webhooks")

GROUP = "admissionregistration.k8s.io"
MUTATING_KEY = f"{GROUP}/mutatingwebhookconfigurations"
VALIDATING_KEY = f"{GROUP}/validatingwebhookconfigurations"
ADDRESS_ANNOTATION = "webhook.skiff.dev/address"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Requests on these kinds never go to webhooks, so a broken webhook cannot lock itself in.
EXEMPT_KINDS = frozenset(
    {
        (GROUP, "MutatingWebhookConfiguration"),
        (GROUP, "ValidatingWebhookConfiguration"),
        (GROUP, "ValidatingAdmissionPolicy"),
        (GROUP, "ValidatingAdmissionPolicyBinding"),
    }
)
# What a webhook may not change in the object it mutates.
KEPT_METADATA = ("name", "namespace", "uid", "creationTimestamp", "resourceVersion", "generation", "deletionTimestamp")
Obj = dict[str, Any]


class WebhookCallError(Exception):
    """A webhook could not be called or answered nonsense; failurePolicy decides what happens."""


@dataclass(frozen=True)
class Webhook:
    configuration: str
    spec: Obj
    mutating: bool

    @property
    def name(self) -> str:
        return self.spec.get("name", "")

    @property
    def failure_policy(self) -> str:
        return self.spec.get("failurePolicy") or "Fail"


@dataclass
class Attributes:
    operation: str
    resource: ResourceType
    subresource: str
    namespace: str
    name: str
    dry_run: bool


class WebhookAdmission:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.configurations: dict[str, dict[str, Obj]] = {MUTATING_KEY: {}, VALIDATING_KEY: {}}
        self.mutating: list[Webhook] = []
        self.validating: list[Webhook] = []
        self._clients: dict[str, httpx.AsyncClient] = {}

    # -- the cache ---------------------------------------------------------------------------------
    def observe(self, changes: list[Change]) -> None:
        changed = False
        for change in changes:
            cache = self.configurations.get(change.resource)
            if cache is None:
                continue
            changed = True
            if change.event == "DELETED":
                cache.pop(change.name, None)
            else:
                cache[change.name] = change.obj()
        if changed:
            self._rebuild()

    async def start(self) -> None:
        for key, cache in self.configurations.items():
            page = await self.state.store.list(key, None)
            for _namespace, name, data in page.rows:
                cache[name] = orjson.loads(data)
        self._rebuild()

    def _rebuild(self) -> None:
        self.mutating = list(_webhooks(self.configurations[MUTATING_KEY], True))
        self.validating = list(_webhooks(self.configurations[VALIDATING_KEY], False))

    # -- admission ---------------------------------------------------------------------------------
    async def admit(self, ctx: RequestContext, operation: str, new: Obj | None, old: Obj | None) -> None:
        if not self.mutating and not self.validating:
            return
        resource = ctx.resource
        if (resource.group, resource.kind) in EXEMPT_KINDS:
            return
        obj = new if new is not None else old or {}
        attributes = Attributes(
            operation=operation,
            resource=resource,
            subresource=ctx.info.subresource,
            namespace=obj.get("metadata", {}).get("namespace", "") or ctx.namespace,
            name=obj.get("metadata", {}).get("name", "") or ctx.info.name,
            dry_run=ctx.dry_run,
        )
        if self.mutating and new is not None:
            await self._mutate(ctx, attributes, new, old)
        if self.validating:
            await self._validate(ctx, attributes, new, old)

    async def _mutate(self, ctx: RequestContext, attributes: Attributes, new: Obj, old: Obj | None) -> None:
        current = new
        changed = False
        reinvoke: list[tuple[Webhook, ResourceType, bytes]] = []
        for webhook in self.mutating:
            target = await self._matching_resource(webhook, attributes, current, old)
            if target is None:
                continue
            patched = await self._call(ctx, webhook, attributes, target, current, old)
            if patched is not None:
                current, changed = patched, True
            if webhook.spec.get("reinvocationPolicy") == "IfNeeded":
                reinvoke.append((webhook, target, orjson.dumps(current)))
        for webhook, target, seen in reinvoke:
            if orjson.dumps(current) != seen:
                patched = await self._call(ctx, webhook, attributes, target, current, old)
                if patched is not None:
                    current = patched
        if not changed:
            return
        _replace_in_place(new, current)
        strategy = ctx.strategy
        strategy.prune_unknown_fields(new, None)
        strategy.default(new)
        causes = strategy.validate_metadata(new) + strategy.validate(new)
        if old is not None:
            causes += strategy.validate_update(new, old)
        if causes:
            raise invalid(ctx.resource.kind, attributes.name, ctx.resource.group, causes)

    async def _validate(self, ctx: RequestContext, attributes: Attributes, new: Obj | None, old: Obj | None) -> None:
        calls = []
        for webhook in self.validating:
            target = await self._matching_resource(webhook, attributes, new, old)
            if target is not None:
                calls.append(self._call(ctx, webhook, attributes, target, new, old))
        if not calls:
            return
        results = await asyncio.gather(*calls, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # -- matching ------------------------------------------------------------------------------------
    async def _matching_resource(
        self, webhook: Webhook, attributes: Attributes, new: Obj | None, old: Obj | None
    ) -> ResourceType | None:
        """The resource (the requested one, or an equivalent version) the webhook's rules match."""
        spec = webhook.spec
        resource = attributes.resource
        target: ResourceType | None = None
        if _rules_match(spec.get("rules") or [], attributes.operation, resource, attributes.subresource):
            target = resource
        elif spec.get("matchPolicy", "Equivalent") == "Equivalent":
            for other in _equivalents(self.state.resources, resource):
                if _rules_match(spec.get("rules") or [], attributes.operation, other, attributes.subresource):
                    target = other
                    break
        if target is None:
            return None
        if not _object_selector_matches(spec.get("objectSelector"), new, old):
            return None
        if not await self._namespace_selector_matches(spec.get("namespaceSelector"), attributes, new, old):
            return None
        return target

    async def _namespace_selector_matches(
        self, selector: Obj | None, attributes: Attributes, new: Obj | None, old: Obj | None
    ) -> bool:
        if not selector or validation.selector_is_empty(selector):
            return True
        resource = attributes.resource
        if resource.group == "" and resource.kind == "Namespace":
            labels = ((new or old or {}).get("metadata") or {}).get("labels") or {}
        elif not resource.namespaced:
            return True
        else:
            stored = await self.state.store.get("core/namespaces", "", attributes.namespace)
            labels = (stored.obj().get("metadata", {}).get("labels") or {}) if stored is not None else {}
        return validation.selector_matches(selector, labels)

    # -- calling -------------------------------------------------------------------------------------
    async def _call(
        self,
        ctx: RequestContext,
        webhook: Webhook,
        attributes: Attributes,
        target: ResourceType,
        new: Obj | None,
        old: Obj | None,
    ) -> Obj | None:
        """Call one webhook; returns the patched object for a mutation, None when nothing changed.
        Raises the ApiError the client sees for a denial, or for a failure under failurePolicy Fail."""
        if attributes.dry_run and webhook.spec.get("sideEffects") not in ("None", "NoneOnDryRun"):
            raise ApiError(400, "BadRequest", f'admission webhook "{webhook.name}" does not support dry run')
        review = _review_request(ctx, attributes, target, new, old)
        uid = review["request"]["uid"]
        try:
            response = await self._post(webhook, review)
            answer = _parse_response(response, uid)
        except WebhookCallError as error:
            message = f'failed calling webhook "{webhook.name}": {error}'
            if webhook.failure_policy == "Ignore":
                log.warning("%s (failurePolicy Ignore)", message)
                return None
            raise ApiError(500, "InternalError", f"Internal error occurred: {message}") from None
        for warning in answer.get("warnings") or []:
            if isinstance(warning, str) and warning not in ctx.warnings:
                ctx.warnings.append(warning)
        if not answer.get("allowed"):
            raise _denied(webhook.name, answer.get("status") or {})
        patch = answer.get("patch")
        if not patch or not webhook.mutating or new is None:
            return None
        if answer.get("patchType") != "JSONPatch":
            raise ApiError(
                500,
                "InternalError",
                f'Internal error occurred: failed calling webhook "{webhook.name}": '
                f'unsupported patch type "{answer.get("patchType")}"',
            )
        try:
            operations = orjson.loads(base64.b64decode(patch))
        except (binascii.Error, ValueError):
            raise ApiError(
                500,
                "InternalError",
                f'Internal error occurred: failed calling webhook "{webhook.name}": the patch is not valid',
            ) from None
        sent = review["request"]["object"]
        try:
            patched = apply_json_patch(sent, operations)
        except ApiError as error:
            raise ApiError(
                500,
                "InternalError",
                f'Internal error occurred: admission webhook "{webhook.name}" returned an invalid patch: {error}',
            ) from None
        patched["apiVersion"] = new.get("apiVersion")
        for key in KEPT_METADATA:
            if key in new.get("metadata", {}):
                patched.setdefault("metadata", {})[key] = new["metadata"][key]
        return patched

    async def _post(self, webhook: Webhook, review: Obj) -> httpx.Response:
        config = webhook.spec.get("clientConfig") or {}
        timeout = float(webhook.spec.get("timeoutSeconds") or 10)
        extensions: dict[str, Any] = {}
        if config.get("url"):
            url = config["url"]
        else:
            service = config.get("service") or {}
            host, port = await self._resolve_service(service)
            path = service.get("path") or ""
            url = f"https://{_host_for_url(host)}:{port}{path}"
            extensions["sni_hostname"] = f"{service.get('name')}.{service.get('namespace')}.svc"
        timed_url = f"{url}{'&' if '?' in url else '?'}timeout={int(timeout)}s"
        client = self._client(config.get("caBundle") or "")
        try:
            return await client.post(
                timed_url,
                content=orjson.dumps(review),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=timeout,
                extensions=extensions,
            )
        except httpx.TimeoutException:
            raise WebhookCallError(f'failed to call webhook: Post "{timed_url}": context deadline exceeded') from None
        except (httpx.HTTPError, ssl.SSLError, OSError) as error:
            raise WebhookCallError(f'failed to call webhook: Post "{timed_url}": {_describe(error)}') from None

    def _client(self, bundle: str) -> httpx.AsyncClient:
        client = self._clients.get(bundle)
        if client is None:
            if bundle:
                try:
                    pem = base64.b64decode(bundle).decode()
                    context = ssl.create_default_context(cadata=pem)
                except (binascii.Error, ValueError, ssl.SSLError) as error:
                    raise WebhookCallError(f"could not use caBundle: {error}") from None
            else:
                context = ssl.create_default_context()
            client = self._clients[bundle] = httpx.AsyncClient(verify=context)
        return client

    async def _resolve_service(self, service: Obj) -> tuple[str, int]:
        namespace, name = service.get("namespace", ""), service.get("name", "")
        port = int(service.get("port") or 443)
        store = self.state.store
        stored = await store.get("core/services", namespace, name)
        if stored is None:
            raise WebhookCallError(f'failed to call webhook: service "{namespace}/{name}" not found')
        svc = stored.obj()
        address = (svc.get("metadata", {}).get("annotations") or {}).get(ADDRESS_ANNOTATION)
        if address:
            host, _, text = address.rpartition(":")
            if host and text.isdigit():
                return host.strip("[]"), int(text)
        port_spec = next((p for p in svc.get("spec", {}).get("ports") or [] if p.get("port") == port), None)
        if port_spec is None:
            raise WebhookCallError(f'failed to call webhook: service "{namespace}/{name}" has no port {port}')
        port_name = port_spec.get("name", "")
        target = port_spec.get("targetPort", port)
        page = await store.list("discovery.k8s.io/endpointslices", namespace)
        for _ns, _name, data in page.rows:
            slice_obj = orjson.loads(data)
            if (slice_obj.get("metadata", {}).get("labels") or {}).get(SERVICE_NAME_LABEL) != name:
                continue
            slice_port = _slice_port(slice_obj.get("ports") or [], port_name, target)
            if slice_port is None:
                continue
            for endpoint in slice_obj.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                for ip in endpoint.get("addresses") or []:
                    return ip, slice_port
        endpoints = await store.get("core/endpoints", namespace, name)
        if endpoints is not None:
            for subset in endpoints.obj().get("subsets") or []:
                subset_port = _slice_port(subset.get("ports") or [], port_name, target)
                for address_obj in subset.get("addresses") or []:
                    if subset_port is not None and address_obj.get("ip"):
                        return address_obj["ip"], subset_port
        raise WebhookCallError(f'failed to call webhook: no endpoints available for service "{namespace}/{name}"')


def _slice_port(ports: list[Obj], name: str, target: Any) -> int | None:
    for port in ports:
        if port.get("name", "") == name or (isinstance(target, int) and port.get("port") == target):
            value = port.get("port")
            return int(value) if isinstance(value, int) else None
    if len(ports) == 1 and isinstance(ports[0].get("port"), int):
        return int(ports[0]["port"])
    return None


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if "Connection refused" in text or "Connect call failed" in text or "All connection attempts failed" in text:
        return "connect: connection refused"
    return text


def _webhooks(configurations: dict[str, Obj], mutating: bool) -> Iterable[Webhook]:
    for name in sorted(configurations):
        config = configurations[name]
        if config.get("metadata", {}).get("deletionTimestamp"):
            continue
        for spec in config.get("webhooks") or []:
            yield Webhook(name, spec, mutating)


def _rules_match(rules: list[Obj], operation: str, resource: ResourceType, subresource: str) -> bool:
    return any(_rule_matches(rule, operation, resource, subresource) for rule in rules)


def _rule_matches(rule: Obj, operation: str, resource: ResourceType, subresource: str) -> bool:
    operations = rule.get("operations") or []
    if "*" not in operations and operation not in operations:
        return False
    groups = rule.get("apiGroups") or []
    if "*" not in groups and resource.group not in groups:
        return False
    versions = rule.get("apiVersions") or []
    if "*" not in versions and resource.version not in versions:
        return False
    scope = rule.get("scope") or "*"
    if (scope == "Cluster" and resource.namespaced) or (scope == "Namespaced" and not resource.namespaced):
        return False
    for pattern in rule.get("resources") or []:
        name, _, sub = pattern.partition("/")
        if not sub:
            if not subresource and name in ("*", resource.plural):
                return True
        elif name in ("*", resource.plural) and (sub == "*" or sub == subresource):
            return True
    return False


def _equivalents(resources: Iterable[ResourceType], resource: ResourceType) -> list[ResourceType]:
    """Other versions of the same stored resource (matchPolicy Equivalent)."""
    return [
        other
        for other in resources
        if other != resource
        and other.group == resource.group
        and other.kind == resource.kind
        and other.storage_key == resource.storage_key
    ]


def _object_selector_matches(selector: Obj | None, new: Obj | None, old: Obj | None) -> bool:
    if not selector or validation.selector_is_empty(selector):
        return True
    for obj in (new, old):
        if obj is not None and validation.selector_matches(selector, obj.get("metadata", {}).get("labels") or {}):
            return True
    return False


def _as_version(obj: Obj | None, resource: ResourceType) -> Obj | None:
    if obj is None:
        return None
    copied = orjson.loads(orjson.dumps(obj))
    copied["apiVersion"] = resource.api_version
    return copied


def _review_request(
    ctx: RequestContext, attributes: Attributes, target: ResourceType, new: Obj | None, old: Obj | None
) -> Obj:
    requested = attributes.resource
    options_kind = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}.get(
        attributes.operation
    )
    request: Obj = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": target.group, "version": target.version, "kind": target.kind},
        "resource": {"group": target.group, "version": target.version, "resource": target.plural},
        "requestKind": {"group": requested.group, "version": requested.version, "kind": requested.kind},
        "requestResource": {"group": requested.group, "version": requested.version, "resource": requested.plural},
        "name": attributes.name,
        "operation": attributes.operation,
        "userInfo": ctx.user.to_dict(),
        "object": _as_version(new, target),
        "oldObject": _as_version(old, target),
        "dryRun": attributes.dry_run,
    }
    if attributes.subresource:
        request["subResource"] = attributes.subresource
        request["requestSubResource"] = attributes.subresource
    if attributes.namespace:
        request["namespace"] = attributes.namespace
    if options_kind is not None:
        options: Obj = {"kind": options_kind, "apiVersion": "meta.k8s.io/v1"}
        if attributes.operation != "DELETE" and ctx.query.get("fieldManager"):
            options["fieldManager"] = ctx.query.get("fieldManager")
        request["options"] = options
    return {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": request}


def _parse_response(response: httpx.Response, uid: str) -> Obj:
    if response.status_code != 200:
        raise WebhookCallError(f"failed to call webhook: the server responded with status {response.status_code}")
    try:
        review = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise WebhookCallError("received invalid webhook response: the body is not JSON") from None
    answer = review.get("response") if isinstance(review, dict) else None
    if not isinstance(answer, dict):
        raise WebhookCallError("received invalid webhook response: response is missing")
    if review.get("apiVersion") not in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1"):
        raise WebhookCallError(f'received invalid webhook response: unexpected apiVersion "{review.get("apiVersion")}"')
    if answer.get("uid") != uid:
        raise WebhookCallError(
            f"received invalid webhook response: expected response.uid={uid!r}, got {answer.get('uid')!r}"
        )
    return answer


def _denied(name: str, status: Obj) -> ApiError:
    code = status.get("code")
    code = code if isinstance(code, int) and code >= 400 else 400
    denied_by = f'admission webhook "{name}" denied the request'
    if status.get("message"):
        message = f"{denied_by}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied_by}: {status['reason']}"
    else:
        message = f"{denied_by} without explanation"
    return ApiError(code, str(status.get("reason") or ""), message)


def _replace_in_place(target: Obj, source: Obj) -> None:
    """Make target equal source, keeping the identity of target and of its metadata dict (callers hold
    references to both)."""
    metadata = target.get("metadata")
    target.clear()
    target.update(source)
    if isinstance(metadata, dict) and isinstance(source.get("metadata"), dict):
        new_metadata = source["metadata"]
        metadata.clear()
        metadata.update(new_metadata)
        target["metadata"] = metadata


async def install_webhooks(state: ServerState) -> WebhookAdmission:
    """Cache webhook configurations from the store and the change stream; call before the stream starts."""
    admission = WebhookAdmission(state)
    state.change_observers.append(admission.observe)
    await admission.start()
    state.admission_webhooks = admission
    return admission
