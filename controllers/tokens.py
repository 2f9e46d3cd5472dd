"""Token controller (`serviceaccount-token`): fills and cleans up legacy service-account token Secrets.

A Secret of type `kubernetes.io/service-account-token` names its ServiceAccount in the annotation
`kubernetes.io/service-account.name` (and optionally its uid in `kubernetes.io/service-account.uid`).
As kube-controller-manager's token controller does, this controller

- fills such a Secret with `token` (a non-expiring legacy JWT for the account, signed with
  `--service-account-private-key-file`), `ca.crt` (the cluster CA) and `namespace`, and records the
  account's uid in the annotation;
- deletes the Secret when its ServiceAccount is gone (or was recreated with another uid), and deletes
  an account's token Secrets when the account is deleted.

Since Kubernetes 1.24 such Secrets are only made when someone asks for one by creating the Secret; the
controller never creates them for every ServiceAccount.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

from controllers.base import ControllerContext
from skiff.api.errors import ApiError
from skiff.pki.tokens import ServiceAccountKeys, issue_legacy_token
from skiff.runtime import Controller, Informer, final_state, make_key, split_key

log = logging.getLogger("skiff.controller.serviceaccount-token")

SECRETS = ("v1", "Secret")
SERVICE_ACCOUNTS = ("v1", "ServiceAccount")
TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME_ANNOTATION = "kubernetes.io/service-account.name"
UID_ANNOTATION = "kubernetes.io/service-account.uid"
ACCOUNT_INDEX = "service-account"
Obj = dict[str, Any]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def account_of(secret: Obj) -> tuple[str, str]:
    """(account name, account uid) that a token Secret names; the uid may be ""."""
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    return annotations.get(NAME_ANNOTATION) or "", annotations.get(UID_ANNOTATION) or ""


def index_by_account(secret: Obj) -> list[str]:
    name, _uid = account_of(secret)
    namespace = (secret.get("metadata") or {}).get("namespace") or ""
    return [make_key(namespace, name)] if name else []


def needs_data(secret: Obj, ca_pem: str, namespace: str, account_uid: str) -> bool:
    data = secret.get("data") or {}
    if not data.get("token") or data.get("namespace") != b64(namespace):
        return True
    if ca_pem and data.get("ca.crt") != b64(ca_pem):
        return True
    return account_of(secret)[1] != account_uid


class TokensController:
    def __init__(self, ctx: ControllerContext, keys: ServiceAccountKeys) -> None:
        self.ctx = ctx
        self.keys = keys
        self.secrets: Informer = ctx.informers.informer(SECRETS, field_selector=f"type={TOKEN_TYPE}")
        self.accounts: Informer = ctx.informers.informer(SERVICE_ACCOUNTS)
        if not self.secrets.cache.has_indexer(ACCOUNT_INDEX):
            self.secrets.add_indexer(ACCOUNT_INDEX, index_by_account)
        self.controller: Controller[str] = Controller(
            "serviceaccount-token", self.reconcile, workers=ctx.options.concurrent_syncs,
            wait_for=[self.secrets, self.accounts],
        )  # fmt: skip
        self.secrets.add_event_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))
        self.accounts.add_event_handler(
            on_add=self._enqueue_tokens_of,
            on_update=lambda _old, new: self._enqueue_tokens_of(new),
            on_delete=lambda gone: self._enqueue_tokens_of(final_state(gone)),
        )

    def _enqueue(self, secret: Obj) -> None:
        metadata = secret.get("metadata") or {}
        self.controller.enqueue(make_key(metadata.get("namespace"), metadata.get("name") or ""))

    def _enqueue_tokens_of(self, account: Obj) -> None:
        metadata = account.get("metadata") or {}
        for secret in self.secrets.by_index(ACCOUNT_INDEX, make_key(metadata.get("namespace"), metadata.get("name"))):
            self._enqueue(secret)

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        secret = self.secrets.get(namespace, name)
        if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
            return
        account_name, wanted_uid = account_of(secret)
        account = await self._live_account(namespace, account_name, wanted_uid)
        if account is None:
            await self._delete(secret, f"service account {namespace}/{account_name} does not exist")
            return
        uid = account["metadata"].get("uid") or ""
        ca_pem = self.ctx.options.root_ca_pem
        if not needs_data(secret, ca_pem, namespace, uid):
            return
        token = issue_legacy_token(self.keys, namespace, account_name, uid, name)
        data = {**(secret.get("data") or {}), "token": b64(token), "namespace": b64(namespace)}
        if ca_pem:
            data["ca.crt"] = b64(ca_pem)
        metadata = dict(secret["metadata"])
        metadata["annotations"] = {**(metadata.get("annotations") or {}), UID_ANNOTATION: uid}
        try:
            # The cached resourceVersion is the precondition: a stale cache gets 409 and a retry.
            await self.ctx.client.update({**secret, "metadata": metadata, "data": data}, namespace)
        except ApiError as error:
            if error.code != 404:
                raise
            return
        log.info("filled token secret %s/%s for service account %s", namespace, name, account_name)

    async def _live_account(self, namespace: str, name: str, uid: str) -> Obj | None:
        """The account, read from the cache and confirmed with a live GET before anything is deleted."""
        cached = self.accounts.get(namespace, name) if name else None
        if cached is not None and (not uid or cached["metadata"].get("uid") == uid):
            return cached
        if not name:
            return None
        try:
            live = await self.ctx.client.get(SERVICE_ACCOUNTS, name, namespace)
        except ApiError as error:
            if error.code == 404:
                return None
            raise
        return live if not uid or live["metadata"].get("uid") == uid else None

    async def _delete(self, secret: Obj, why: str) -> None:
        metadata = secret["metadata"]
        log.info("deleting token secret %s/%s: %s", metadata["namespace"], metadata["name"], why)
        try:
            await self.ctx.client.delete(
                SECRETS, metadata["name"], metadata["namespace"], preconditions={"uid": metadata.get("uid", "")}
            )
        except ApiError as error:
            if error.code not in (404, 409):
                raise


async def start(ctx: ControllerContext) -> None:
    key_file = ctx.options.service_account_key_file
    if not key_file:
        log.warning("no --service-account-private-key-file: token secrets will not be filled")
        return
    if not Path(key_file).is_file():
        raise SystemExit(f"serviceaccount-token: {key_file} does not exist")
    keys = ServiceAccountKeys.from_files(Path(key_file))
    await TokensController(ctx, keys).controller.run()
