"""ServiceAccount admission: every new pod runs as a service account and gets its API credentials mounted.

On pod CREATE (as kube-apiserver's ServiceAccount plugin): `spec.serviceAccountName` defaults to `default`;
the named account must exist; unless `automountServiceAccountToken` says otherwise (the pod's setting wins
over the account's), a projected `kube-api-access-<suffix>` volume (token, cluster CA, namespace) is added and
mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount in every container and init container;
the account's imagePullSecrets are copied when the pod names none. Mirror pods are left alone.

Until the service-account controller creates the `default` account of each namespace, a missing `default`
account is tolerated (the pod is admitted and mounted as if it existed); any other missing account refuses
the pod.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apiserver.http.objects import random_suffix
from skiff.api.errors import ApiError

if TYPE_CHECKING:
    from apiserver.http.context import RequestContext

DEFAULT_SERVICE_ACCOUNT = "default"
TOKEN_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
VOLUME_PREFIX = "kube-api-access-"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
TOKEN_EXPIRATION_SECONDS = 3607
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
PROJECTED_DEFAULT_MODE = 420
Obj = dict[str, Any]


def token_volume_source() -> Obj:
    return {
        "sources": [
            {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
            {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {
                "downwardAPI": {
                    "items": [
                        {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
                    ]
                }
            },
        ],
        "defaultMode": PROJECTED_DEFAULT_MODE,
    }


def should_automount(account: Obj | None, pod_spec: Obj) -> bool:
    if pod_spec.get("automountServiceAccountToken") is not None:
        return bool(pod_spec["automountServiceAccountToken"])
    if account is not None and account.get("automountServiceAccountToken") is not None:
        return bool(account["automountServiceAccountToken"])
    return True


def mount_token(spec: Obj) -> None:
    volumes: list[Obj] = spec.get("volumes") or []
    existing = next((v.get("name") for v in volumes if str(v.get("name", "")).startswith(VOLUME_PREFIX)), None)
    name = existing or f"{VOLUME_PREFIX}{random_suffix()}"
    needs_volume = False
    for list_name in ("initContainers", "containers"):
        for container in spec.get(list_name) or []:
            mounts = container.get("volumeMounts") or []
            if any(m.get("mountPath") == TOKEN_MOUNT_PATH for m in mounts):
                continue
            container["volumeMounts"] = [*mounts, {"name": name, "readOnly": True, "mountPath": TOKEN_MOUNT_PATH}]
            needs_volume = True
    if needs_volume and existing is None:
        spec["volumes"] = [*volumes, {"name": name, "projected": token_volume_source()}]


class ServiceAccountAdmission:
    async def admit(
        self, ctx: RequestContext, operation: str, new: dict[str, Any] | None, old: dict[str, Any] | None
    ) -> None:
        resource = ctx.resource
        if operation != "CREATE" or resource.group or resource.kind != "Pod" or ctx.info.subresource or new is None:
            return
        metadata = new.get("metadata") or {}
        if MIRROR_POD_ANNOTATION in (metadata.get("annotations") or {}):
            return
        spec = new.setdefault("spec", {})
        account_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or DEFAULT_SERVICE_ACCOUNT
        spec["serviceAccountName"] = account_name
        spec["serviceAccount"] = account_name  # the deprecated alias follows, as kube-apiserver keeps it
        stored = await ctx.state.store.get("core/serviceaccounts", ctx.namespace, account_name)
        account = stored.obj() if stored is not None else None
        if account is None and account_name != DEFAULT_SERVICE_ACCOUNT:
            name = metadata.get("name", "")
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{name}" is forbidden: error looking up service account {ctx.namespace}/{account_name}: '
                f'serviceaccount "{account_name}" not found',
                name,
                "",
                "pods",
            )
        if should_automount(account, spec):
            mount_token(spec)
        if not spec.get("imagePullSecrets") and account is not None and account.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name", "")} for s in account["imagePullSecrets"]]
