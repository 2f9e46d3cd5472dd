"""Alembic environment: migrations run on a connection the API server hands over at start."""

from __future__ import annotations

from alembic import context

from apiserver.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through apiserver.storage.migrate.upgrade(), which passes a connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
