"""One LRO engine per worker process, built from the environment (GEOREP_* settings).

Tasks never receive clients, credentials or the engine as arguments (they would be hashed for cache keys and
cannot be pickled); they ask for the process's engine here. Sharing it is the point: one credential and token
cache, one client per subscription, one ARM read/write budget per subscription (itself backed by the budget all
processes share, tasks/budget.py) and one registry watcher for every task of the process.
"""

from __future__ import annotations

import threading

from georep.checkpoint import CheckpointStore
from georep.config import Settings
from georep.lro import Engine, EngineConfig
from tasks.budget import PrefectBudget

_lock = threading.Lock()
_engines: dict[str, Engine] = {}


def current_settings() -> Settings:
    return Settings()


def get_engine(settings: Settings | None = None) -> Engine:
    settings = settings or current_settings()
    key = settings.model_dump_json()
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            store = CheckpointStore(settings.state_dir / "checkpoints.db")
            source = PrefectBudget() if settings.shared_arm_budget else None
            engine = Engine(settings, store, EngineConfig.from_settings(settings), budget_source=source)
            _engines[key] = engine
        return engine


def reset_engines() -> None:
    """Forget cached engines (tests that change the environment between runs)."""
    with _lock:
        for engine in _engines.values():
            engine.close()
            engine.store.close()
        _engines.clear()
