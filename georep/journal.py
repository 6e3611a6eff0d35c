"""The DR drill journal: what a drill found before it touched anything, what it wrote, and whether it put things
back, stored durably *before* the first write.

A drill deliberately degrades a registry (an endpoint out of routing, a replica deleted). If the process dies,
is cancelled or hits its deadline, whoever cleans up (the flow's own ``finally``, a Prefect ``on_failure`` or
``on_cancellation`` hook running in another process, or a person with the CLI) must know the *original*
configuration without trusting the now-degraded registry. So the original replicas are written here first, each
write's intent is recorded before it is sent, and the restore records who did it, so a hook does not restore
twice what the flow already restored.

Same storage rules as ``georep.checkpoint``: SQLite, WAL, synchronous=FULL, in ``GEOREP_STATE_DIR``.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from georep import durable
from georep.model import ObservedReplica, RegistryRef

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drills (
    drill_id TEXT PRIMARY KEY,
    run_id TEXT,
    idempotency_key TEXT,
    registry TEXT NOT NULL,
    ref TEXT NOT NULL,
    home TEXT NOT NULL,
    targets TEXT NOT NULL,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    originals TEXT NOT NULL,
    writes TEXT NOT NULL DEFAULT '[]',
    restore TEXT NOT NULL DEFAULT 'not-needed',
    restore_by TEXT,
    restore_detail TEXT,
    restore_deadline REAL NOT NULL DEFAULT 1800,
    report TEXT,
    started REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS drills_run ON drills (run_id);
CREATE INDEX IF NOT EXISTS drills_key ON drills (registry, mode, targets, idempotency_key);
"""

_COLUMNS = (
    "drill_id", "run_id", "idempotency_key", "registry", "ref", "home", "targets", "mode", "status", "originals",
    "writes", "restore", "restore_by", "restore_detail", "restore_deadline", "report", "started", "updated",
)  # fmt: skip

#: restore states: nothing was degraded / degraded and not yet put back / put back / a restore attempt failed
RESTORE_NOT_NEEDED = "not-needed"
RESTORE_PENDING = "pending"
RESTORE_DONE = "restored"
RESTORE_FAILED = "failed"


@dataclass
class DrillEntry:
    drill_id: str
    registry: str
    ref: RegistryRef
    home: str
    targets: list[str]
    mode: str
    originals: list[ObservedReplica]
    run_id: str | None = None
    idempotency_key: str | None = None
    #: running → completed | failed
    status: str = "running"
    #: intents, recorded *before* each write: "disable:<region>", "delete:<region>", "create:<region>"
    writes: list[str] = field(default_factory=list)
    restore: str = RESTORE_NOT_NEEDED
    restore_by: str | None = None
    restore_detail: str | None = None
    restore_deadline: float = 1800.0
    #: the DrillReport as JSON once the drill ended (the answer an idempotent replay returns)
    report: str | None = None
    started: float = 0.0
    updated: float = 0.0

    def original(self, region: str) -> ObservedReplica | None:
        return next((o for o in self.originals if o.region == region), None)

    @property
    def needs_restore(self) -> bool:
        return bool(self.writes) and self.restore != RESTORE_DONE


class DrillJournal:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn = durable.connect(path, _SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def save(self, entry: DrillEntry) -> None:
        entry.updated = time.time()
        entry.started = entry.started or entry.updated
        values = {
            **{c: getattr(entry, c) for c in _COLUMNS if hasattr(entry, c)},
            "registry": entry.registry.lower(),
            "ref": entry.ref.model_dump_json(),
            "targets": json.dumps(sorted(entry.targets)),
            "originals": json.dumps([o.model_dump(mode="json") for o in entry.originals]),
            "writes": json.dumps(entry.writes),
        }
        with self._lock:
            self._conn.execute(
                f"INSERT OR REPLACE INTO drills ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                [values[c] for c in _COLUMNS],
            )

    def get(self, drill_id: str) -> DrillEntry | None:
        return self._one("drill_id=?", (drill_id,))

    def latest_for_run(self, run_id: str) -> DrillEntry | None:
        """The drill a flow run started (a hook knows only the flow run)."""
        return self._one("run_id=?", (run_id,))

    def completed(self, registry: str, targets: list[str], mode: str, idempotency_key: str) -> DrillEntry | None:
        """A finished drill with the same intent and key: an idempotent re-request returns its result."""
        return self._one(
            "registry=? AND targets=? AND mode=? AND idempotency_key=? AND report IS NOT NULL AND status != 'running'",
            (registry.lower(), json.dumps(sorted(targets)), mode, idempotency_key),
        )

    def _one(self, where: str, args: tuple[Any, ...]) -> DrillEntry | None:
        with self._lock:
            row = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM drills WHERE {where} ORDER BY started DESC, rowid DESC LIMIT 1",
                args,
            ).fetchone()
        if row is None:
            return None
        data = dict(zip(_COLUMNS, row, strict=True))
        data["ref"] = RegistryRef.model_validate_json(data["ref"])
        data["targets"] = json.loads(data["targets"])
        data["originals"] = [ObservedReplica.model_validate(o) for o in json.loads(data["originals"])]
        data["writes"] = json.loads(data["writes"])
        return DrillEntry(**data)
