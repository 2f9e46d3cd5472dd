"""`skiff apiserver`: start the API server (HTTPS, storage, watch, compaction) and serve until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import ssl
import sys
from pathlib import Path
from typing import IO, Any

import uvicorn

from apiserver.admission.webhooks import install_webhooks
from apiserver.allocators import repair_forever, service_ranges
from apiserver.audit import AuditLog
from apiserver.auth.authn import AuthenticatorChain, ClientCertificateAuthenticator
from apiserver.auth.authz import AlwaysAllow
from apiserver.auth.rbac import install_authorization, parse_authorization_modes, reconcile_bootstrap_policy
from apiserver.bootstrap import ensure_system_namespaces
from apiserver.config import ServerConfig
from apiserver.crd.serving import install_custom_resources
from apiserver.http.app import ApiServerApp
from apiserver.http.certificates import register_certificate_handlers
from apiserver.http.openapi_routes import serve_openapi
from apiserver.http.podlogs import install_pod_logs
from apiserver.http.reviews import install_reviews
from apiserver.http.server_state import ServerState
from apiserver.http.subresources import handle_legacy_binding
from apiserver.http.tls import CertificateHttpProtocol
from apiserver.http.tokenrequest import install_identity
from apiserver.kubernetes_service import ApiServerEndpoints, ensure_kubernetes_service
from apiserver.metrics import Metrics
from apiserver.storage.encryption import EncryptionConfigError, load_encryption_config
from apiserver.storage.store import Store
from apiserver.watch.hub import WatchHub
from apiserver.watch.tailer import ChangeTailer
from skiff.api.kinds import BUILTINS, ResourceTable
from skiff.pki.cluster import ClusterPki, ensure_cluster_pki

log = logging.getLogger("skiff.apiserver")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def parse_args(argv: list[str] | None = None) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="skiff apiserver", description="Run the Skiff API server.")
    parser.add_argument("--data-dir", required=True, type=Path, help="PKI, SQLite database and kubeconfigs")
    parser.add_argument("--database", default="", help="SQLAlchemy URL; default: SQLite in the data dir")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--tls-san", action="append", default=[], help="extra serving-certificate name or IP")
    parser.add_argument("--compaction-window", type=float, default=300.0, help="seconds of watch history")
    parser.add_argument("--compaction-interval", type=float, default=60.0)
    parser.add_argument("--watch-bookmark-interval", type=float, default=10.0)
    parser.add_argument(
        "--watch-cache-size",
        type=_positive_int,
        default=ServerConfig.watch_cache_size,
        help="recent changes kept in memory for watches; older ones are read from the database",
    )
    parser.add_argument("--no-access-log", action="store_true")
    parser.add_argument(
        "--authorization-mode",
        default=ServerConfig.authorization_mode,
        help="comma-separated authorizers in order: Node, RBAC, AlwaysAllow (default: Node,RBAC)",
    )
    parser.add_argument("--audit-log-path", default="", help="write an audit event per request here ('-': stdout)")
    parser.add_argument("--audit-log-maxsize", type=float, default=100.0, help="MB before the log rotates (0: never)")
    parser.add_argument("--audit-log-maxbackup", type=int, default=0, help="rotated files to keep (0: all)")
    parser.add_argument(
        "--encryption-provider-config", type=Path, default=None, help="EncryptionConfiguration for data at rest"
    )
    identity = parser.add_argument_group("service-account tokens and OIDC")
    identity.add_argument(
        "--service-account-issuer", action="append", default=[], help="token issuer (repeatable; the first signs)"
    )
    identity.add_argument("--service-account-jwks-uri", default="", help="jwks_uri in the issuer discovery document")
    identity.add_argument("--service-account-signing-key-file", type=Path, default=None, help="default: pki/sa.key")
    identity.add_argument("--service-account-key-file", type=Path, action="append", default=[])
    identity.add_argument("--service-account-max-token-expiration", type=int, default=0, help="seconds; 0: no cap")
    identity.add_argument("--service-account-extend-token-expiration", default="true", choices=["true", "false"])
    identity.add_argument("--api-audiences", default="", help="comma-separated; default: the issuers")
    identity.add_argument("--oidc-issuer-url", default="")
    identity.add_argument("--oidc-client-id", default="")
    identity.add_argument("--oidc-username-claim", default="sub")
    identity.add_argument("--oidc-username-prefix", default=None)
    identity.add_argument("--oidc-groups-claim", default="")
    identity.add_argument("--oidc-groups-prefix", default="")
    identity.add_argument("--oidc-ca-file", default="")
    services = parser.add_argument_group("service networking")
    services.add_argument("--service-cluster-ip-range", default=ServerConfig.service_cidr, help="CIDR of ClusterIPs")
    services.add_argument("--service-node-port-range", default=ServerConfig.service_node_port_range)
    services.add_argument("--advertise-address", default="", help="this server's address in the kubernetes Service")
    parser.add_argument("--default-not-ready-toleration-seconds", type=int, default=300,
                        help="tolerationSeconds of the not-ready:NoExecute toleration of every pod")  # fmt: skip
    parser.add_argument("--default-unreachable-toleration-seconds", type=int, default=300,
                        help="tolerationSeconds of the unreachable:NoExecute toleration of every pod")  # fmt: skip
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    try:
        service_ranges(args.service_cluster_ip_range, args.service_node_port_range)
    except ValueError as error:
        parser.error(f"--service-cluster-ip-range/--service-node-port-range: {error}")
    try:
        parse_authorization_modes(args.authorization_mode)
    except ValueError as error:
        parser.error(f"--authorization-mode: {error}")
    if args.encryption_provider_config is not None:
        try:
            load_encryption_config(args.encryption_provider_config)
        except EncryptionConfigError as error:
            parser.error(f"--encryption-provider-config: {error}")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return ServerConfig(
        data_dir=args.data_dir,
        database_url=args.database,
        bind=args.bind,
        port=args.port,
        extra_sans=args.tls_san,
        compaction_window_seconds=args.compaction_window,
        compaction_interval_seconds=args.compaction_interval,
        watch_bookmark_seconds=args.watch_bookmark_interval,
        watch_cache_size=args.watch_cache_size,
        access_log=not args.no_access_log,
        authorization_mode=args.authorization_mode,
        audit_log_path=args.audit_log_path,
        audit_log_maxsize_mb=args.audit_log_maxsize,
        audit_log_maxbackup=args.audit_log_maxbackup,
        encryption_provider_config=args.encryption_provider_config,
        service_cidr=args.service_cluster_ip_range,
        service_node_port_range=args.service_node_port_range,
        advertise_address=args.advertise_address,
        service_account_issuers=args.service_account_issuer or ["https://kubernetes.default.svc.cluster.local"],
        service_account_jwks_uri=args.service_account_jwks_uri,
        service_account_signing_key_file=args.service_account_signing_key_file,
        service_account_key_files=args.service_account_key_file,
        service_account_max_token_expiration=args.service_account_max_token_expiration,
        service_account_extend_token_expiration=args.service_account_extend_token_expiration == "true",
        api_audiences=[a.strip() for a in args.api_audiences.split(",") if a.strip()],
        oidc_issuer_url=args.oidc_issuer_url,
        oidc_client_id=args.oidc_client_id,
        oidc_username_claim=args.oidc_username_claim,
        oidc_username_prefix=args.oidc_username_prefix,
        oidc_groups_claim=args.oidc_groups_claim,
        oidc_groups_prefix=args.oidc_groups_prefix,
        default_not_ready_toleration_seconds=args.default_not_ready_toleration_seconds,
        default_unreachable_toleration_seconds=args.default_unreachable_toleration_seconds,
        oidc_ca_file=args.oidc_ca_file,
    )


def lock_sqlite(config: ServerConfig) -> IO[str] | None:
    """One process owns a SQLite database; a second one stops with a clear message."""
    if not config.uses_sqlite:
        return None
    config.data_dir.mkdir(parents=True, exist_ok=True)
    handle = open(config.data_dir / "skiff.db.lock", "w")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        sys.exit(
            f"skiff apiserver: {config.sqlite_path} is in use by another API server process. SQLite serves "
            "one process; run several API servers on PostgreSQL with --database postgresql+asyncpg://..."
        )
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def server_url(config: ServerConfig) -> str:
    host = "127.0.0.1" if config.bind in ("0.0.0.0", "::", "") else config.bind
    return f"https://{host}:{config.port}"


class ApiHttpServer(uvicorn.Server):
    """uvicorn, plus ending open watches at shutdown so that streaming clients get a clean end."""

    def __init__(self, config: uvicorn.Config, hub: WatchHub) -> None:
        super().__init__(config)
        self.hub = hub

    def handle_exit(self, sig: int, frame: Any) -> None:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_soon_threadsafe(self.hub.close_all)
        super().handle_exit(sig, frame)
        # uvicorn would re-raise the signal once it has stopped serving, killing the process before `run`
        # closes storage and leaves the `kubernetes` endpoints; the stop is handled here instead, so the
        # process finishes its shutdown and exits with status 0.
        self._captured_signals.clear()


async def build_state(config: ServerConfig, resources: ResourceTable = BUILTINS) -> tuple[ServerState, Any]:
    metrics = Metrics()
    store = Store(config.resolved_database_url())
    await store.open()
    hub = WatchHub(head_rv=await store.current_rv(), window=config.watch_cache_size)
    state = ServerState(
        config=config,
        store=store,
        hub=hub,
        resources=resources,
        authn=AuthenticatorChain([ClientCertificateAuthenticator()]),
        authz=AlwaysAllow(),  # replaced below by the --authorization-mode chain
        metrics=metrics,
    )
    state.openapi = lambda request: serve_openapi(state, request)
    if config.encryption_provider_config is not None:
        store.encryption = load_encryption_config(config.encryption_provider_config)
        log.info("encryption at rest configured from %s", config.encryption_provider_config)
    if config.audit_log_path:
        state.audit = AuditLog(config.audit_log_path, config.audit_log_maxsize_mb, config.audit_log_maxbackup).start()
    register_certificate_handlers(state)
    install_identity(state)
    install_reviews(state)
    install_pod_logs(state)
    state.extra_resources[("", "bindings")] = handle_legacy_binding
    await install_authorization(state)
    await install_custom_resources(state)
    await install_webhooks(state)
    store.write_latency = metrics.storage_write.observe
    tailer = None
    if store.is_postgres:
        tailer = ChangeTailer(store, hub, state.publish)
        store.on_commit = lambda _changes: tailer.poke()
        await tailer.start()
    else:
        store.on_commit = state.publish
    await ensure_system_namespaces(state)
    await reconcile_bootstrap_policy(state)
    await ensure_kubernetes_service(state)
    return state, tailer


async def compact_forever(state: ServerState) -> None:
    config = state.config
    while True:
        await asyncio.sleep(config.compaction_interval_seconds)
        try:
            compacted = await state.store.compact(config.compaction_window_seconds)
            state.hub.compacted(compacted)
            state.metrics.compacted_rv.set(compacted)
            state.metrics.log_rows.set(await state.store.log_size())
            state.metrics.head_rv.set(state.hub.head_rv)
        except Exception:
            log.exception("compaction failed; will retry")


def http_config(app: Any, bind: str, port: int, pki: ClusterPki) -> uvicorn.Config:
    """uvicorn as the API server runs it: HTTPS with optional, CA-verified client certificates handed to
    the app. The benchmark's bare ASGI baseline uses the same settings, so the two compare fairly."""
    return uvicorn.Config(
        app,
        host=bind,
        port=port,
        ssl_certfile=str(pki.serving_cert),
        ssl_keyfile=str(pki.serving_key),
        ssl_ca_certs=str(pki.ca_cert),
        ssl_cert_reqs=ssl.CERT_OPTIONAL,
        http=CertificateHttpProtocol,
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=75,
        # Clients connect directly; an address or scheme from X-Forwarded-* headers would be a claim
        # the client makes itself (audit reports those headers separately, as kube does).
        proxy_headers=False,
    )


async def run(config: ServerConfig) -> None:
    lock = lock_sqlite(config)
    pki = ensure_cluster_pki(config.data_dir, server_url(config), [socket.gethostname(), *config.extra_sans])
    state, tailer = await build_state(config)
    app = ApiServerApp(state)
    uv_config = http_config(app, config.bind, config.port, pki)
    server = ApiHttpServer(uv_config, state.hub)
    compactor = asyncio.create_task(compact_forever(state), name="compactor")
    endpoints = ApiServerEndpoints(state)
    background = [
        asyncio.create_task(endpoints.run_forever(), name="kubernetes-endpoints"),
        asyncio.create_task(repair_forever(state.store), name="service-allocation-repair"),
    ]
    log.info(
        "serving on %s (storage: %s)",
        server_url(config),
        "PostgreSQL" if state.store.is_postgres else "SQLite",
    )
    try:
        await server.serve()
    finally:
        compactor.cancel()
        for task in background:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(endpoints.remove(), 5)
        state.hub.close_all()
        if tailer is not None:
            await tailer.stop()
        await state.store.close()
        if state.audit is not None:
            state.audit.close()
        if lock is not None:
            lock.close()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(run(config))
    else:
        uvloop.run(run(config))


if __name__ == "__main__":
    main()
