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
    access_log: bool = True
    service_cidr: str = "10.96.0.0/12"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "skiff.db"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.sqlite_path}"

    @property
    def uses_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
