"""Holders: which slots belong to dead processes (no Prefect, no HTTP)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from georep.holders import Holders


def test_a_live_holder_is_never_dead(tmp_path: Path) -> None:
    holders = Holders(tmp_path / "h.db")
    holders.add(["georep-lock-x"], 1, "rollout")
    assert holders.dead(["georep-lock-x"]) == []


def test_a_killed_process_on_this_host_is_dead(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    code = (
        f"from georep.holders import Holders; from pathlib import Path; Holders(Path({str(db)!r})).add(['a', 'b'], 3)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # the child exits: its pid is gone
    holders = Holders(db)
    dead = holders.dead(["b"])
    assert [(d.names, d.slots) for d in dead] == [(("a", "b"), 3)]
    assert holders.dead(["c"]) == []
    holders.forget([d.token for d in dead])
    assert holders.all() == []


def test_another_host_is_dead_only_when_its_heartbeat_is_stale(tmp_path: Path) -> None:
    holders = Holders(tmp_path / "h.db", stale_seconds=0.2)
    token = holders.add(["a"], 1)
    with holders._lock:  # pretend the holding came from another machine
        holders._conn.execute("UPDATE holdings SET host = 'elsewhere' WHERE token = ?", (token,))
    assert holders.dead(["a"]) == []
    time.sleep(0.3)
    assert [d.token for d in holders.dead(["a"])] == [token]
    holders.beat(token)
    assert holders.dead(["a"]) == []
