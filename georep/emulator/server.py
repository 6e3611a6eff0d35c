"""Run the emulator: HTTPS ARM front door + plain-HTTP identity endpoint, in a background thread (tests, the
embedded main job) or in the foreground (``georep emulator serve``).

Like moto's ThreadedMotoServer: ``port=0`` picks a free port that ``base_url`` then reports. For crash-resume the
port must be stable (continuation tokens hold absolute URLs), so a restart on the same state directory reuses
the port it had unless told otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import uvicorn

from georep.emulator.app import ArmApp, IdentityApp
from georep.emulator.identity import TokenAuthority
from georep.emulator.models import Backend
from georep.emulator.settings import EmulatorSettings
from georep.emulator.store import Store
from georep.emulator.tls import Secrets, TlsFiles, ensure_secrets, ensure_tls

DEMO_SUBSCRIPTION = "6e0b9f5c-3d2a-4c1b-9a8e-7f6d5c4b3a21"


class EmulatorBusy(RuntimeError):
    pass


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when the proto says TCP.
    # Without it Nagle + delayed ACK add ~40 ms to every response (headers and body are separate writes).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


class _ShutdownTimeoutFilter(logging.Filter):
    """Drops uvicorn's "timeout graceful shutdown exceeded" while the emulator is being stopped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "timeout graceful shutdown exceeded" not in record.getMessage()


class EmulatorServer:
    def __init__(
        self,
        state_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        identity_port: int | None = None,
        settings: EmulatorSettings | None = None,
        registries: Iterable[dict[str, Any]] = (),
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        previous = self._read_endpoint()
        self._port = port if port is not None else previous.get("port", 0)
        self._identity_port = identity_port if identity_port is not None else previous.get("identity_port", 0)
        self.settings = settings or EmulatorSettings()
        self.tls: TlsFiles = ensure_tls(self.state_dir)
        self.secrets: Secrets = ensure_secrets(self.state_dir)
        self._initial_registries = list(registries)
        self._lock_file: IO[str] | None = None
        self._thread: threading.Thread | None = None
        self._servers: list[uvicorn.Server] = []
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.backend: Backend | None = None

    # ----------------------------------------------------------------- helpers
    def _read_endpoint(self) -> dict[str, Any]:
        path = self.state_dir / "endpoint.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            return data
        except (OSError, ValueError):
            return {}

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self._port}"

    @property
    def identity_endpoint(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._identity_port}/msi/token"

    def env(self, subscription: str = DEMO_SUBSCRIPTION) -> dict[str, str]:
        """The environment a shell, a test or a Prefect worker needs to reach this emulator."""
        return {
            "GEOREP_TARGET": "emulator",
            "GEOREP_ENDPOINT": self.base_url,
            "GEOREP_CA_BUNDLE": str(self.tls.ca),
            "GEOREP_SUBSCRIPTION_ID": subscription,
            "GEOREP_CREDENTIAL_SCOPE": self.settings.audience.rstrip("/") + "/.default",
            "GEOREP_EMULATOR_STATE_DIR": str(self.state_dir),
            "GEOREP_EMULATOR_ADMIN_KEY": self.secrets.admin_key,
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.secrets.identity_header,
            "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
        }

    # --------------------------------------------------------------- lifecycle
    def _acquire_lock(self) -> None:
        fh = open(self.state_dir / "emulator.lock", "a+")  # noqa: SIM115 - held for the server's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise EmulatorBusy(
                f"another emulator is already running on state directory {self.state_dir}; stop it first "
                "(its PID is in endpoint.json)"
            ) from None
        self._lock_file = fh

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _prepare(self) -> tuple[socket.socket, socket.socket]:
        self._acquire_lock()
        try:
            arm_sock = _bind(self.host, self._port)
            id_sock = _bind(self.host, self._identity_port)
        except OSError:
            self._release_lock()
            raise
        self._port = arm_sock.getsockname()[1]
        self._identity_port = id_sock.getsockname()[1]
        backend = Backend(self.settings, Store(self.state_dir / "emulator.db"))
        for spec in self._initial_registries:
            backend.declare_registry(**spec)
        authority = TokenAuthority(self.secrets.token_key, self.settings.audience, self.settings.token_ttl_seconds)
        self.backend = backend
        # a client that keeps an idle TLS connection open (e.g. one held by an SDK exception) would otherwise hold
        # shutdown until asyncio's 30 s SSL close timeout, past stop()'s join: bound the graceful wait
        common = {
            "log_level": "warning",
            "access_log": False,
            "lifespan": "off",
            "timeout_keep_alive": 75,
            "timeout_graceful_shutdown": 1,
        }
        self._servers = [
            uvicorn.Server(
                uvicorn.Config(
                    ArmApp(backend, authority, self.secrets.admin_key),
                    ssl_certfile=str(self.tls.cert_chain),
                    ssl_keyfile=str(self.tls.key),
                    **common,  # type: ignore[arg-type]
                )
            ),
            uvicorn.Server(uvicorn.Config(IdentityApp(authority, self.secrets.identity_header, backend), **common)),  # type: ignore[arg-type]
        ]
        (self.state_dir / "endpoint.json").write_text(
            json.dumps(
                {
                    "base_url": self.base_url,
                    "identity_endpoint": self.identity_endpoint,
                    "port": self._port,
                    "identity_port": self._identity_port,
                    "pid": os.getpid(),
                }
            )
        )
        return arm_sock, id_sock

    async def _serve(self, arm_sock: socket.socket, id_sock: socket.socket) -> None:
        arm, ident = self._servers
        tasks = [
            asyncio.create_task(arm.serve(sockets=[arm_sock])),
            asyncio.create_task(ident.serve(sockets=[id_sock])),
        ]
        while not (arm.started and ident.started):
            if any(t.done() for t in tasks):
                break
            await asyncio.sleep(0.01)
        self._ready.set()
        await asyncio.gather(*tasks)

    def start(self, timeout: float = 15.0) -> EmulatorServer:
        socks = self._prepare()

        def run() -> None:
            try:
                asyncio.run(self._serve(*socks))
            except BaseException as exc:  # surfaced to start()
                self._error = exc
                self._ready.set()

        self._thread = threading.Thread(target=run, name="georep-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error:
            self.stop()
            raise RuntimeError(f"emulator did not start: {self._error!r}")
        return self

    def serve_forever(self) -> None:
        """Foreground mode for the CLI: SIGINT/SIGTERM stop it (uvicorn handles signals in the main thread)."""
        socks = self._prepare()
        self._ready.set()
        try:
            asyncio.run(self._serve(*socks))
        finally:
            self._close()

    def stop(self) -> None:
        """Stop serving now. force_exit: the SDK clients of the process keep idle keep-alive TLS connections
        that would hold a graceful shutdown for its whole timeout, ending in an ERROR log ("timeout graceful
        shutdown exceeded") after every successful run; stopping the emulator drops them as a crash would."""
        quiet = _ShutdownTimeoutFilter()  # Python 3.12+: Server.wait_closed() can still wait out the timeout
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(quiet)
        try:
            for server in self._servers:
                server.should_exit = True
                server.force_exit = True
            if self._thread is not None:
                self._thread.join(timeout=10)
                self._thread = None
        finally:
            uvicorn_log.removeFilter(quiet)
        self._close()

    def _close(self) -> None:
        if self.backend is not None:
            self.backend.store.close()
            self.backend = None
        self._release_lock()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(state_dir: Path, **kwargs: Any) -> Iterator[EmulatorServer]:
    server = EmulatorServer(state_dir, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
