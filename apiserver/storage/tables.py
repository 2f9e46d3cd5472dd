"""SQLAlchemy Core tables: the current objects, the change log, and a few counters.

The change log's sequence is the resourceVersion. It is allocated from the `rv` counter row inside the
writing transaction, so commits happen in resourceVersion order and a reader never sees a gap — the
property that lets several API servers tail one PostgreSQL database without losing events.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
)

metadata = MetaData()

objects = Table(
    "objects",
    metadata,
    Column("resource", String(255), primary_key=True),
    Column("namespace", String(255), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("uid", String(64), nullable=False),
    Column("rv", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

changes = Table(
    "changes",
    metadata,
    Column("rv", BigInteger, primary_key=True, autoincrement=False),
    Column("resource", String(255), nullable=False),
    Column("namespace", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("event", SmallInteger, nullable=False),
    Column("ts", Float, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

Index("changes_ts", changes.c.ts)

counters = Table(
    "counters",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# Counter keys.
RESOURCE_VERSION = "rv"
COMPACTED = "compacted"

# Change-log event codes (a small int keeps the log compact).
ADDED, MODIFIED, DELETED = 1, 2, 3
EVENT_NAMES = {ADDED: "ADDED", MODIFIED: "MODIFIED", DELETED: "DELETED"}
