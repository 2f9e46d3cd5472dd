"""API server settings, from command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ServerConfig:
    data_dir: Path
    database_url: str = ""
    bind: str = "127.0.0.1"
    port: int = 6443
    extra_sans: list[str] = field(default_factory=list)
    # How long the change log keeps history; older watch/list resourceVersions get 410 Gone.
    compaction_window_seconds: float = 300.0
    compaction_interval_seconds: float = 60.0
    watch_bookmark_seconds: float = 10.0
    # How many recent changes the watch cache keeps in memory; older watches read the change log.
    watch_cache_size: int = 50_000
    access_log: bool = True
    # Authorizers in order (Node, RBAC, AlwaysAllow); kube-apiserver's --authorization-mode.
    authorization_mode: str = "Node,RBAC"
    # Audit log (one audit.k8s.io/v1 Event per request, metadata level); "" disables it, "-" is stdout.
    audit_log_path: str = ""
    audit_log_maxsize_mb: float = 100.0
    audit_log_maxbackup: int = 0
    # EncryptionConfiguration file for encryption at rest; None stores every resource as plaintext.
    encryption_provider_config: Path | None = None
    service_cidr: str = "10.96.0.0/12"
    service_node_port_range: str = "30000-32767"
    # The address the `kubernetes` Service's endpoints list for this API server ("": the bind address).
    advertise_address: str = ""
    # Service-account tokens: the first issuer signs, all are accepted; audiences default to the issuers.
    service_account_issuers: list[str] = field(default_factory=lambda: ["https://kubernetes.default.svc.cluster.local"])
    service_account_jwks_uri: str = ""
    service_account_signing_key_file: Path | None = None  # default: DATA/pki/sa.key
    service_account_key_files: list[Path] = field(default_factory=list)  # extra verification keys
    service_account_max_token_expiration: int = 0  # seconds; 0: no cap
    service_account_extend_token_expiration: bool = True
    api_audiences: list[str] = field(default_factory=list)
    # OIDC ID tokens from an outside identity provider; disabled unless oidc_issuer_url is set.
    oidc_issuer_url: str = ""
    oidc_client_id: str = ""
    oidc_username_claim: str = "sub"
    oidc_username_prefix: str | None = None
    oidc_groups_claim: str = ""
    oidc_groups_prefix: str = ""
    oidc_ca_file: str = ""
    # DefaultTolerationSeconds admission: how long new pods tolerate a not-ready or unreachable node.
    default_not_ready_toleration_seconds: int = 300
    default_unreachable_toleration_seconds: int = 300

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "skiff.db"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.sqlite_path}"

    @property
    def uses_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
