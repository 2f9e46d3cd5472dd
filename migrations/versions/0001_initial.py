"""The object table, the change log and the counters.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "objects",
        sa.Column("resource", sa.String(255), primary_key=True),
        sa.Column("namespace", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("uid", sa.String(64), nullable=False),
        sa.Column("rv", sa.BigInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "changes",
        sa.Column("rv", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("event", sa.SmallInteger, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    op.create_index("changes_ts", "changes", ["ts"])
    op.create_table(
        "counters",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table("counters", sa.column("key", sa.String), sa.column("value", sa.BigInteger)),
        [{"key": "rv", "value": 0}, {"key": "compacted", "value": 0}],
    )


def downgrade() -> None:
    op.drop_table("counters")
    op.drop_index("changes_ts", "changes")
    op.drop_table("changes")
    op.drop_table("objects")
