"""`POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`: authentication.k8s.io/v1 TokenRequest."""

from __future__ import annotations

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from starlette.responses import Response

from apiserver.auth.discovery import discovery_handlers
from apiserver.auth.oidc import OidcAuthenticator, OidcSettings
from apiserver.auth.tokens import (
    NODES,
    PODS,
    SECRETS,
    SERVICE_ACCOUNTS,
    ServiceAccountTokenAuthenticator,
    audiences_or_default,
)
from apiserver.http.codec import decode_object
from apiserver.http.context import RequestContext
from apiserver.http.responses import value_response
from skiff.api.errors import ApiError, Cause, bad_request, conflict, invalid, method_not_allowed, not_found
from skiff.pki.cluster import ClusterPki
from skiff.pki.tokens import (
    DEFAULT_EXPIRATION_SECONDS,
    DEFAULT_ISSUER,
    EXTENDED_EXPIRATION_SECONDS,
    MAX_EXPIRATION_SECONDS,
    MIN_EXPIRATION_SECONDS,
    WARN_ONLY_EXPIRATION_SECONDS,
    BoundObject,
    ServiceAccountKeys,
    issue_bound_token,
    rfc3339,
)

if TYPE_CHECKING:
    from apiserver.http.server_state import ServerState

log = logging.getLogger("skiff.apiserver")

GROUP = "authentication.k8s.io"
API_VERSION = f"{GROUP}/v1"
KIND = "TokenRequest"
Obj = dict[str, Any]


@dataclass
class TokenRequestHandler:
    """Issues bound service-account tokens; registered as the ServiceAccount `token` subresource."""

    keys: ServiceAccountKeys
    issuer: str
    audiences: Sequence[str]
    max_expiration_seconds: int = 0
    extend_expiration: bool = True

    async def __call__(self, ctx: RequestContext) -> Response:
        if ctx.info.verb != "create":
            raise method_not_allowed()
        namespace, name = ctx.namespace, ctx.info.name
        request = decode_object(await ctx.body(), ctx.request.headers.get("content-type"))
        _check_type(request)
        metadata = request.get("metadata") or {}
        spec = request.get("spec") or {}
        if not isinstance(metadata, dict) or not isinstance(spec, dict):
            raise bad_request("the request body is not a TokenRequest")
        if metadata.get("name") and metadata["name"] != name:
            raise _invalid(name, "metadata.name", metadata["name"], "must match the service account name if specified")
        if metadata.get("namespace") and metadata["namespace"] != namespace:
            message = "must match the service account namespace if specified"
            raise _invalid(name, "metadata.namespace", metadata["namespace"], message)

        stored = await ctx.state.store.get(SERVICE_ACCOUNTS, namespace, name)
        if stored is None:
            raise not_found("serviceaccounts", name)
        account = stored.obj()

        audiences = _audiences(spec.get("audiences")) or list(self.audiences)
        expiration = _expiration(spec.get("expirationSeconds"))
        bound, node = await self._bound_object(ctx, name, spec.get("boundObjectRef"))

        if self.max_expiration_seconds and expiration > self.max_expiration_seconds:
            ctx.warnings.append(
                f"requested expiration of {expiration} seconds shortened to {self.max_expiration_seconds} seconds"
            )
            expiration = self.max_expiration_seconds
        token_seconds, warn_after = expiration, 0
        if (
            self.extend_expiration
            and bound is not None
            and bound.kind == "Pod"
            and expiration == WARN_ONLY_EXPIRATION_SECONDS
            and set(audiences) <= set(self.audiences)
        ):
            token_seconds, warn_after = EXTENDED_EXPIRATION_SECONDS, expiration

        issued = issue_bound_token(
            self.keys, self.issuer, account, audiences, token_seconds, bound, node, warn_after_seconds=warn_after
        )
        spec_out: Obj = {"audiences": audiences, "expirationSeconds": expiration}
        if bound is not None:
            spec_out["boundObjectRef"] = {"kind": bound.kind, "apiVersion": "v1", "name": bound.name, "uid": bound.uid}
        body = {
            "kind": KIND,
            "apiVersion": API_VERSION,
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": rfc3339(issued.issued_at)},
            "spec": spec_out,
            "status": {
                "token": issued.token,
                # As kube-apiserver: the requested lifetime, even when a pod token's `exp` was extended.
                "expirationTimestamp": rfc3339(issued.issued_at + datetime.timedelta(seconds=expiration)),
            },
        }
        return value_response(ctx, body, 201)

    async def _bound_object(
        self, ctx: RequestContext, account: str, ref: Any
    ) -> tuple[BoundObject | None, tuple[str, str] | None]:
        if not ref:
            return None, None
        if not isinstance(ref, dict):
            raise bad_request("spec.boundObjectRef must be an object")
        kind, api_version = ref.get("kind", ""), ref.get("apiVersion", "")
        name, uid = ref.get("name", ""), ref.get("uid", "")
        group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
        if group or kind not in ("Pod", "Secret"):
            gvk = f"{api_version or '/'}, Kind={kind}" if api_version else f"/, Kind={kind}"
            raise bad_request(f"cannot bind token to object of type {gvk}")
        resource = PODS if kind == "Pod" else SECRETS
        plural = resource.split("/", 1)[1]
        stored = await ctx.state.store.get(resource, ctx.namespace, name)
        if stored is None:
            raise not_found(plural, name)
        obj = stored.obj()
        actual_uid = obj.get("metadata", {}).get("uid", "")
        node: tuple[str, str] | None = None
        if kind == "Pod":
            spec = obj.get("spec", {})
            if spec.get("serviceAccountName", "default") != account:
                raise bad_request(
                    f'cannot bind token for serviceaccount "{account}" to pod running with different '
                    "serviceaccount name."
                )
            node_name = spec.get("nodeName")
            if node_name:
                node_obj = await ctx.state.store.get(NODES, "", node_name)
                node = (node_name, node_obj.obj().get("metadata", {}).get("uid", "") if node_obj else "")
        if uid and uid != actual_uid:
            raise conflict(
                kind,
                name,
                "",
                f"the UID in the bound object reference ({uid}) does not match the UID in record. "
                "The object might have been deleted and then recreated",
            )
        return BoundObject(kind, name, actual_uid), node


def _check_type(request: Obj) -> None:
    api_version, kind = request.get("apiVersion"), request.get("kind")
    if (api_version and api_version != API_VERSION) or (kind and kind != KIND):
        raise bad_request(f"the request body must be a {API_VERSION} {KIND}, not {api_version} {kind}")


def _audiences(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise bad_request("spec.audiences must be a list of strings")
    return [a for a in value if a]


def _expiration(value: Any) -> int:
    if value is None or value == 0:
        return DEFAULT_EXPIRATION_SECONDS
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad_request("spec.expirationSeconds must be an integer")
    try:
        seconds = int(value)
    except ValueError:
        raise bad_request("spec.expirationSeconds must be an integer") from None
    if seconds < MIN_EXPIRATION_SECONDS:
        raise _invalid("", "spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes")
    if seconds > MAX_EXPIRATION_SECONDS:
        raise _invalid("", "spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds")
    return seconds


def _invalid(name: str, path: str, value: Any, message: str) -> ApiError:
    shown = f'"{value}"' if isinstance(value, str) else orjson.dumps(value).decode()
    return invalid(KIND, name, GROUP, [Cause("FieldValueInvalid", f"Invalid value: {shown}: {message}", path)])


def install_identity(state: ServerState) -> None:
    """Plug service-account tokens, issuer discovery and OIDC into the server: authenticators after the
    client-certificate one, the TokenRequest subresource and the two public discovery documents."""
    config = state.config
    issuers = [i for i in config.service_account_issuers if i] or [DEFAULT_ISSUER]
    audiences = audiences_or_default(config.api_audiences, issuers)
    signing_key = config.service_account_signing_key_file or ClusterPki.under(config.data_dir).service_account_key
    if signing_key.exists():
        keys = ServiceAccountKeys.from_files(signing_key, config.service_account_key_files)
        state.authn.authenticators.append(ServiceAccountTokenAuthenticator(keys, issuers, audiences, state.store))
        state.extra_subresources[("ServiceAccount", "token")] = TokenRequestHandler(
            keys,
            issuers[0],
            audiences,
            config.service_account_max_token_expiration,
            config.service_account_extend_token_expiration,
        )
        state.extra_paths.update(discovery_handlers(issuers[0], config.service_account_jwks_uri, keys))
    else:
        log.warning("no service-account signing key at %s: service-account tokens are disabled", signing_key)
    if config.oidc_issuer_url:
        settings = OidcSettings(
            issuer_url=config.oidc_issuer_url,
            client_id=config.oidc_client_id,
            username_claim=config.oidc_username_claim,
            username_prefix=config.oidc_username_prefix,
            groups_claim=config.oidc_groups_claim,
            groups_prefix=config.oidc_groups_prefix,
            ca_file=config.oidc_ca_file,
        )
        state.authn.authenticators.append(OidcAuthenticator(settings))
