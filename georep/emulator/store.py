"""SQLite persistence for the emulator: resources, operations and the request log survive a restart.

A continuation token holds absolute status URLs, so a resumed poller must find its operation even after the
emulator was killed. Writes go through at once (WAL, synchronous=NORMAL): durable against kill -9 of the process.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    tbl TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (tbl, key)
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    route TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    subscription TEXT,
    resource_group TEXT,
    registry TEXT,
    replication TEXT,
    principal TEXT,
    client_request_id TEXT,
    fault TEXT
);
"""

REQUEST_COLUMNS = (
    "id",
    "ts",
    "method",
    "path",
    "route",
    "status",
    "latency_ms",
    "subscription",
    "resource_group",
    "registry",
    "replication",
    "principal",
    "client_request_id",
    "fault",
)


class Store:
    def __init__(self, path: Path | None) -> None:
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False, isolation_level=None)
        if path:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def put(self, tbl: str, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO kv (tbl, key, value) VALUES (?, ?, ?)", (tbl, key, json.dumps(value))
            )

    def delete(self, tbl: str, key: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM kv WHERE tbl = ? AND key = ?", (tbl, key))

    def items(self, tbl: str) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._lock:
            rows = self._conn.execute("SELECT key, value FROM kv WHERE tbl = ? ORDER BY rowid", (tbl,)).fetchall()
        for key, value in rows:
            yield key, json.loads(value)

    def get(self, tbl: str, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM kv WHERE tbl = ? AND key = ?", (tbl, key)).fetchone()
        return json.loads(row[0]) if row else None

    def clear(self) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM kv")
            self._conn.execute("DELETE FROM requests")

    def log_request(self, entry: dict[str, Any]) -> None:
        cols = [c for c in REQUEST_COLUMNS if c != "id"]
        with self._lock:
            self._conn.execute(
                f"INSERT INTO requests ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
                tuple(entry.get(c) for c in cols),
            )

    def requests(self, filters: dict[str, Any], since_id: int = 0, limit: int = 100_000) -> list[dict[str, Any]]:
        where = ["id > ?"]
        args: list[Any] = [since_id]
        for col, value in filters.items():
            if col not in REQUEST_COLUMNS:
                raise ValueError(f"unknown request-log column {col!r}")
            where.append(f"{col} = ? COLLATE NOCASE" if isinstance(value, str) else f"{col} = ?")
            args.append(value)
        sql = f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        with self._lock:
            rows = self._conn.execute(sql, (*args, limit)).fetchall()
        return [dict(zip(REQUEST_COLUMNS, row, strict=True)) for row in rows]

    def counters(self) -> list[dict[str, Any]]:
        sql = (
            "SELECT method, route, status, registry, COUNT(*), AVG(latency_ms) FROM requests "
            "GROUP BY method, route, status, registry ORDER BY method, route, status"
        )
        with self._lock:
            rows = self._conn.execute(sql).fetchall()
        keys = ("method", "route", "status", "registry", "count", "avg_latency_ms")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def clear_requests(self) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM requests")
