"""Progress as a protocol, so the core imports neither Prefect nor rich.

A flow reports to every listener registered in its process: the Prefect progress artifact is one, the CLI's
rich progress bar another. Listeners are process-local on purpose: flow parameters must stay serialisable.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Protocol

from georep.model import RegionOutcome


class Progress(Protocol):
    def start(self, total: int, title: str) -> None: ...

    def advance(self, outcome: RegionOutcome) -> None: ...

    def finish(self, summary: str) -> None: ...


class Broadcast:
    """Fans progress out to every listener; a failing listener (a view) never breaks the rollout."""

    def __init__(self, *listeners: Progress) -> None:
        self._listeners = [*listeners, *_registered]
        self._lock = threading.Lock()

    def start(self, total: int, title: str) -> None:
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener.start(total, title)

    def advance(self, outcome: RegionOutcome) -> None:
        with self._lock:
            for listener in self._listeners:
                with contextlib.suppress(Exception):
                    listener.advance(outcome)

    def finish(self, summary: str) -> None:
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener.finish(summary)


_registered: list[Progress] = []


def register(listener: Progress) -> None:
    _registered.append(listener)


def unregister(listener: Progress) -> None:
    if listener in _registered:
        _registered.remove(listener)
