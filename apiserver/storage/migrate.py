"""Bring the database schema up to date with Alembic at API server start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import migrations

MIGRATIONS_DIR = Path(migrations.__file__).parent


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade_sync(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Several API servers may start at once against one database: let one migrate at a time.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7417001)")
    command.upgrade(_alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_sync)
