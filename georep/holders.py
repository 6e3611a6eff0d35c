"""Who holds which concurrency slots, so that slots leaked by a killed run are given back automatically.

Prefect's global concurrency limits count slots, not holders: a process killed with SIGKILL never releases its
slots, and without the server's lease reaper (ephemeral mode, or until the lease expires) the next run would
wait for nothing. georep records every holding here (host, pid, a heartbeat) next to its checkpoints; a run
that cannot get its slots asks which holders are dead (same host and no such process, or a heartbeat older than
``stale_seconds`` from another host) and returns exactly their slots. A live holder is never touched.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from georep import durable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS holdings (
    token TEXT PRIMARY KEY,
    names TEXT NOT NULL,
    slots INTEGER NOT NULL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    purpose TEXT
);
"""


@dataclass(frozen=True)
class Holding:
    token: str
    names: tuple[str, ...]
    slots: int
    host: str
    pid: int
    heartbeat: float
    purpose: str | None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Holders:
    def __init__(self, path: Path, stale_seconds: float = 600.0) -> None:
        self.stale_seconds = stale_seconds
        self._lock = threading.Lock()
        self._conn = durable.connect(path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def add(self, names: list[str], slots: int, purpose: str | None = None) -> str:
        token = uuid.uuid4().hex
        now = time.time()
        with self._lock:
            self._conn.execute(
                "INSERT INTO holdings VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (token, json.dumps(sorted(names)), slots, socket.gethostname(), os.getpid(), now, now, purpose),
            )
        return token

    def beat(self, token: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE holdings SET heartbeat = ? WHERE token = ?", (time.time(), token))

    def remove(self, token: str) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM holdings WHERE token = ?", (token,))

    def all(self) -> list[Holding]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT token, names, slots, host, pid, heartbeat, purpose FROM holdings"
            ).fetchall()
        return [Holding(r[0], tuple(json.loads(r[1])), r[2], r[3], r[4], r[5], r[6]) for r in rows]

    def dead(self, names: list[str]) -> list[Holding]:
        """Holdings on any of ``names`` whose process is gone."""
        here, now = socket.gethostname(), time.time()
        wanted = set(names)
        out = []
        for h in self.all():
            if not wanted.intersection(h.names):
                continue
            gone = not _alive(h.pid) if h.host == here else now - h.heartbeat > self.stale_seconds
            if gone:
                out.append(h)
        return out

    def forget(self, tokens: list[str]) -> None:
        with self._lock:
            self._conn.executemany("DELETE FROM holdings WHERE token = ?", [(t,) for t in tokens])
