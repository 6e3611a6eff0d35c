"""The one way georep opens its own SQLite files (checkpoints, drill journal, slot holders).

WAL with synchronous=FULL: a row committed before ``kill -9`` (or a power cut) is there afterwards, and readers in
other processes (a rerun, a restore hook) never block the writer. ``None`` gives an in-memory database for tests.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: Path | None, schema: str) -> sqlite3.Connection:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False, isolation_level=None, timeout=30)
    if path is not None:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(schema)
    return conn
