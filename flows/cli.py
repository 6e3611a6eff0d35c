"""``georep``: the command line. It only wires parts together; every decision lives in georep/ or the flows.

Exit codes scripts can rely on:
  0  success (or nothing to do)
  1  the run finished and at least one region failed
  2  invalid input: the plan, the options or the configuration (nothing was written)
  3  Azure/ARM refused or could not be reached (authentication, missing registry, network)

``plan``, ``status`` and ``emulator`` never import Prefect; ``apply`` and ``demo`` run the Prefect flow in this
process: against PREFECT_API_URL when one is configured, else against a temporary Prefect server that the command
starts first thing (``_TemporaryServer``) and stops when it ends.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import cyclopts
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from georep import report
from georep.model import RegionOutcome

app = cyclopts.App(name="georep", help="Roll out, check and drill Azure Container Registry geo-replication.")
emulator_app = cyclopts.App(name="emulator", help="The local ARM emulator of ACR registries and replications.")
app.command(emulator_app)

# a pipe or a CI log is not 80 columns wide: keep the result table readable there too
console = Console() if sys.stdout.isatty() else Console(width=160)
err = Console(stderr=True)

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_ARM = 0, 1, 2, 3
PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_STATE = Path(".georep")


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------------------------------------- helpers


@contextmanager
def _target(embedded: bool, state_dir: Path) -> Iterator[None]:
    """Use the emulator embedded in this process, or whatever GEOREP_* points at (real Azure or an emulator)."""
    if not embedded:
        yield
        return
    from georep.emulator.embedded import start_embedded

    os.environ.setdefault("GEOREP_STATE_DIR", str(state_dir))
    server = start_embedded(state_dir / "emulator")
    err.print(f"[dim]embedded emulator at {server.base_url} (state in {server.state_dir})[/dim]")
    try:
        yield
    finally:
        server.stop()


def _settings() -> Any:
    from pydantic import ValidationError

    from georep.config import Settings

    try:
        return Settings()
    except ValidationError as exc:
        raise CliError(
            "configuration: "
            + "; ".join(str(e["msg"]) for e in exc.errors())
            + '\nhint: run with --embedded, or `eval "$(georep emulator env)"` against a running emulator',
            EXIT_INVALID,
        ) from None


def _observe(plan_path: str) -> tuple[Any, Any, Any, list[Any]]:
    from azure.core.exceptions import AzureError

    from georep import inventory
    from georep.arm import build_client
    from georep.plan import load_plan
    from georep.retry import RetryPolicy
    from georep.validation import check_registry, raise_for

    plan = load_plan(Path(plan_path))
    settings = _settings()
    try:
        with build_client(settings, plan.ref.subscription_id) as client:
            info, observed = inventory.observe(client, plan.ref, RetryPolicy())
    except inventory.RegistryNotFound:
        raise_for(check_registry(plan, None))
        raise
    except AzureError as exc:
        raise CliError(f"ARM: {exc}", EXIT_ARM) from None
    raise_for(check_registry(plan, info, observed))
    return plan, settings, info, observed


def _run(fn: Any) -> int:
    from georep.validation import PlanError

    try:
        result = fn()
        return int(result or 0)
    except PlanError as exc:
        err.print(f"[red]invalid input, nothing was written:[/red]\n{exc}")
        return EXIT_INVALID
    except CliError as exc:
        err.print(f"[red]{exc}[/red]")
        return exc.code


class _LiveProgress:
    """georep.progress listener: a rich progress bar while the flow runs, and the outcomes for the final table."""

    def __init__(self) -> None:
        self.outcomes: list[RegionOutcome] = []
        self._bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        )
        self._task: TaskID | None = None

    def start(self, total: int, title: str) -> None:
        self._bar.start()
        self._task = self._bar.add_task(title, total=total)

    def advance(self, outcome: RegionOutcome) -> None:
        self.outcomes.append(outcome)
        if self._task is not None:
            self._bar.update(self._task, advance=1, description=f"{outcome.region}: {outcome.result.value}")

    def finish(self, summary: str) -> None:
        self._bar.stop()


def _prefect_env() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


class _TemporaryServer:
    """Prefect's temporary ("ephemeral") API server for this command, started by georep before Prefect is imported.

    Left to itself, Prefect starts that server at the first API call, from ``get_client``, which first imports
    ``prefect.server.api.server`` (the whole FastAPI app and its models, ~3.5 s of CPU) into this process too, and
    only then spawns the server, which imports the same again. Started here, the server boots in its own process
    while this one imports the flows and the SDK, and this process never imports the server code: the flow runs
    with ``PREFECT_API_URL`` pointing at it. Same command, environment and database as Prefect's
    ``SubprocessASGIServer`` (``$PREFECT_HOME/prefect.db``, UI off), so artifacts stay readable by a later
    ``prefect server start``; stopped (SIGTERM, then SIGKILL after 5 s) when the command ends."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._spawn()

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def _spawn(self) -> None:
        spec = importlib.util.find_spec("prefect")  # locates the package without importing it
        assert spec is not None and spec.submodule_search_locations, "prefect is not installed"
        package_parent = str(Path(next(iter(spec.submodule_search_locations))).parent)
        self.port = self._free_port()
        # the server's SQLite file is $PREFECT_HOME/prefect.db, and nothing has imported Prefect yet (which would
        # have created the directory): on a machine where Prefect never ran, the server could not open it
        Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser().mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        env.pop("PREFECT_API_URL", None)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                package_parent,
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
        )

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait_ready(self, timeout: float) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        respawns = 0
        while time.monotonic() < deadline:
            assert self.process is not None
            code = self.process.poll()
            if code == 3 and respawns < 2:  # uvicorn's startup failure: the port may have been taken meanwhile
                respawns += 1
                self._spawn()
                continue
            if code is not None:
                raise CliError(
                    f"Prefect's temporary server exited with code {code} while starting (its errors are above)",
                    EXIT_ARM,
                )
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.05)
        raise CliError(f"Prefect's temporary server did not answer within {timeout:g} s", EXIT_ARM)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _api_configured_elsewhere() -> bool:
    """True when Prefect may find an API URL somewhere else than the environment (a profile, prefect.toml,
    pyproject.toml, .env) or must not start a temporary server: then Prefect decides, as it always did. A cheap
    look at the files, without importing Prefect; ``_started_server_fits`` double-checks after the import."""
    if os.environ.get("GEOREP_EARLY_PREFECT_SERVER") == "0" or os.environ.get("PREFECT_API_URL"):
        return True
    if os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "").lower() in ("0", "false"):
        return True
    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    for path, needles in (
        (profiles, ("PREFECT_API_URL", "EPHEMERAL")),
        (Path(".env"), ("PREFECT_API_URL", "EPHEMERAL")),
        (Path("prefect.toml"), ("[api", "api.", "url", "ephemeral")),
        (Path("pyproject.toml"), ("tool.prefect",)),
    ):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        if any(needle.lower() in text.lower() for needle in needles):
            return True
    return False


def _started_server_fits() -> bool:
    """After Prefect is imported (with PREFECT_API_URL pointing at georep's temporary server): does any other
    settings source name an API URL? Then that server is the one to use."""
    from prefect.settings import Settings

    ours = os.environ.pop("PREFECT_API_URL", None)
    try:
        return Settings().api.url is None
    finally:
        if ours is not None:
            os.environ["PREFECT_API_URL"] = ours


def _restart_without_temporary_server(server: _TemporaryServer) -> None:
    """A settings source the file check missed names an API URL, but this process already imported Prefect with
    PREFECT_API_URL pointing at georep's temporary server: run the same command again, leaving it to Prefect."""
    server.stop()
    os.environ.pop("PREFECT_API_URL", None)
    os.environ["GEOREP_EARLY_PREFECT_SERVER"] = "0"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.argv])


def _start_prefect_early() -> _TemporaryServer | None:
    """Without PREFECT_API_URL, start Prefect's temporary server now, before Prefect is even imported, so that it
    boots while this process imports the flows, starts the embedded emulator and loads the plan."""
    _prefect_env()
    if _api_configured_elsewhere():
        return None
    server = _TemporaryServer()
    atexit.register(server.stop)
    os.environ["PREFECT_API_URL"] = server.api_url
    return server


def _apply(
    plan: str,
    dry_run: bool,
    confirm: bool,
    max_parallel: int,
    rollback_on_failure: bool,
    as_json: bool,
    warming: _TemporaryServer | None = None,
) -> int:
    _prefect_env()
    from flows.apply import local_run
    from flows.global_rollout import global_rollout
    from flows.params import RolloutParams
    from georep import progress
    from georep.validation import PlanError

    listener = _LiveProgress()
    progress.register(listener)
    started = time.monotonic()
    try:
        params = RolloutParams(
            plan_path=str(Path(plan).resolve()),
            dry_run=dry_run,
            confirm=confirm,
            max_parallel=max_parallel,
            rollback_on_failure=rollback_on_failure,
        )
        if warming is not None:
            if not _started_server_fits():
                _restart_without_temporary_server(warming)
            warming.wait_ready(float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")))
        with local_run(temporary_server=warming is not None):
            state = global_rollout(params, return_state=True)
    finally:
        progress.unregister(listener)
        listener.finish("")
    outcomes = sorted(listener.outcomes, key=lambda o: (o.region, o.action.value))
    if as_json:
        print(json.dumps([o.model_dump(mode="json") for o in outcomes], indent=2))
    elif outcomes:
        console.print(report.outcome_table(outcomes, title=f"georep apply {plan}"))
    elapsed = time.monotonic() - started
    if state.is_completed():
        err.print(f"[green]done[/green] in {elapsed:.1f} s")
        return EXIT_OK
    error = state.result(raise_on_failure=False)
    if isinstance(error, PlanError):
        raise error
    if isinstance(error, CliError):
        raise error
    if not outcomes or not any(o.failed for o in outcomes):
        raise CliError(f"the rollout did not run: {state.message}", EXIT_ARM)
    err.print(f"[red]{state.message}[/red] ({elapsed:.1f} s)")
    return EXIT_FAILED


# ---------------------------------------------------------------------------------------------- commands


@app.command
def plan(
    plan_file: Path,
    /,
    *,
    embedded: bool = False,
    state_dir: Path = DEFAULT_STATE,
    json_output: Annotated[bool, cyclopts.Parameter(name="--json")] = False,
) -> int:
    """Observe the registry and show what `apply` would do, region by region. Makes no ARM write."""

    def run() -> int:
        from georep.plan import diff

        with _target(embedded, state_dir):
            plan_, _, info, observed = _observe(str(plan_file))
            actions = diff(plan_, info, observed)
        if json_output:
            print(json.dumps([a.model_dump(mode="json") for a in actions], indent=2))
        else:
            console.print(report.plan_table(actions, title=f"Plan for {plan_.ref.name} (home {info.home})"))
            console.print(report.plan_summary(actions))
        return EXIT_OK

    return _run(run)


@app.command
def apply(
    plan_file: Path,
    /,
    *,
    dry_run: bool = False,
    confirm: bool = False,
    max_parallel: int = 8,
    rollback_on_failure: bool = False,
    embedded: bool = False,
    state_dir: Path = DEFAULT_STATE,
    json_output: Annotated[bool, cyclopts.Parameter(name="--json")] = False,
) -> int:
    """Run the global-rollout flow for PLAN_FILE and print the result table.

    Destructive actions (recreate, replace, delete) need --confirm. Exit 1 if any region failed.
    """

    def run() -> int:
        warming = _start_prefect_early()
        with _target(embedded, state_dir):
            return _apply(str(plan_file), dry_run, confirm, max_parallel, rollback_on_failure, json_output, warming)

    return _run(run)


@app.command
def status(
    plan_file: Path,
    /,
    *,
    embedded: bool = False,
    state_dir: Path = DEFAULT_STATE,
    json_output: Annotated[bool, cyclopts.Parameter(name="--json")] = False,
) -> int:
    """Health of every replica of the plan's registry (provisioningState, displayStatus, endpoint, tags)."""

    def run() -> int:
        from rich.table import Table

        with _target(embedded, state_dir):
            plan_, _s, info, observed = _observe(str(plan_file))
        if json_output:
            print(json.dumps([o.model_dump(mode="json") for o in observed], indent=2))
            return EXIT_OK
        table = Table(title=f"{plan_.ref.name} (home {info.home}, {info.sku})")
        for col in (
            "region",
            "replication",
            "provisioningState",
            "displayStatus",
            "endpoint",
            "zoneRedundancy",
            "tags",
        ):
            table.add_column(col)
        for o in observed:
            table.add_row(
                o.region + (" (home)" if o.is_home else ""),
                o.name,
                o.provisioning_state,
                o.display_status or "",
                "enabled" if o.region_endpoint_enabled else "disabled",
                "Enabled" if o.zone_redundancy else "Disabled",
                ", ".join(f"{k}={v}" for k, v in sorted(o.tags.items())),
            )
        console.print(table)
        return EXIT_OK

    return _run(run)


@app.command
def demo(
    *,
    state_dir: Path = DEFAULT_STATE,
    fresh: bool = False,
    plan_file: Path = PROJECT_DIR / "deployments/plans/global.yaml",
) -> int:
    """The main job: start the embedded emulator and roll deployments/plans/global.yaml out to it.

    --fresh forgets the emulator's state and the checkpoints first, so every region is created again.
    """
    if fresh:
        import shutil

        shutil.rmtree(state_dir / "emulator", ignore_errors=True)
        (state_dir / "checkpoints.db").unlink(missing_ok=True)
    return apply(plan_file, embedded=True, state_dir=state_dir)


# ---------------------------------------------------------------------------------------------- emulator


@emulator_app.command
def serve(
    *,
    state_dir: Path = DEFAULT_STATE / "emulator",
    port: int | None = None,
    identity_port: int | None = None,
    config: Path | None = None,
    profile: Annotated[str, cyclopts.Parameter(help="real | demo | fast")] = "demo",
) -> int:
    """Run the emulator in the foreground until Ctrl-C. Prints the environment clients need."""
    import yaml

    from georep.emulator.embedded import DEFAULT_IDENTITY_PORT, DEFAULT_PORT, DEMO_REGISTRIES, DEMO_SETTINGS
    from georep.emulator.server import EmulatorServer
    from georep.emulator.settings import EmulatorSettings

    profiles = {"real": EmulatorSettings(), "demo": DEMO_SETTINGS, "fast": EmulatorSettings.fast()}
    if profile not in profiles:
        err.print(f"[red]--profile must be one of {', '.join(profiles)}[/red]")
        return EXIT_INVALID
    settings, registries = profiles[profile], DEMO_REGISTRIES
    if config is not None:
        data = yaml.safe_load(config.read_text()) or {}
        settings = EmulatorSettings.model_validate({**settings.model_dump(), **data.get("settings", {})})
        registries = data.get("registries", registries)
    first = not (state_dir / "endpoint.json").exists()
    server = EmulatorServer(
        state_dir,
        port=port if port is not None else (DEFAULT_PORT if first else None),
        identity_port=identity_port if identity_port is not None else (DEFAULT_IDENTITY_PORT if first else None),
        settings=settings,
        registries=registries,
    )
    err.print(f"georep emulator on {server.base_url}, pid {os.getpid()}; state in {server.state_dir}")
    err.print(f'[dim]in another shell: eval "$(georep emulator env --state-dir {state_dir})"[/dim]')
    server.serve_forever()
    return EXIT_OK


@emulator_app.command
def env(
    *,
    state_dir: Path = DEFAULT_STATE / "emulator",
    json_output: Annotated[bool, cyclopts.Parameter(name="--json")] = False,
) -> int:
    """Print the environment (shell `export` lines, or JSON) for the emulator of STATE_DIR."""
    from georep.emulator.server import DEMO_SUBSCRIPTION
    from georep.emulator.tls import ensure_secrets

    endpoint = state_dir / "endpoint.json"
    if not endpoint.exists():
        err.print(
            f"[red]no emulator has run with state directory {state_dir}; start one with `georep emulator serve`[/red]"
        )
        return EXIT_INVALID
    info = json.loads(endpoint.read_text())
    secrets = ensure_secrets(state_dir.resolve())
    values = {
        "GEOREP_TARGET": "emulator",
        "GEOREP_ENDPOINT": info["base_url"],
        "GEOREP_CA_BUNDLE": str((state_dir / "tls" / "ca.pem").resolve()),
        "GEOREP_SUBSCRIPTION_ID": DEMO_SUBSCRIPTION,
        "GEOREP_EMULATOR_STATE_DIR": str(state_dir.resolve()),
        "GEOREP_EMULATOR_ADMIN_KEY": secrets.admin_key,
        "IDENTITY_ENDPOINT": info["identity_endpoint"],
        "IDENTITY_HEADER": secrets.identity_header,
        "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
    }
    if json_output:
        print(json.dumps(values, indent=2))
    else:
        for key, value in values.items():
            print(f"export {key}={json.dumps(value)}")
    return EXIT_OK


@emulator_app.command(name="registry-add")
def registry_add(
    name: str,
    /,
    *,
    resource_group: str,
    location: str,
    sku: str = "Premium",
    size_gb: float = 0.0,
    subscription: str | None = None,
    state_dir: Path = DEFAULT_STATE / "emulator",
) -> int:
    """Declare a registry (and its home replica) in a running emulator."""
    from georep.emulator.client import EmulatorControl
    from georep.emulator.server import DEMO_SUBSCRIPTION
    from georep.emulator.tls import ensure_secrets

    info = json.loads((state_dir / "endpoint.json").read_text())
    control = EmulatorControl(
        info["base_url"], ensure_secrets(state_dir.resolve()).admin_key, str(state_dir / "tls" / "ca.pem")
    )
    try:
        reg = control.declare_registry(subscription or DEMO_SUBSCRIPTION, resource_group, name, location, sku, size_gb)
    except RuntimeError as exc:
        err.print(f"[red]{exc}[/red]")
        return EXIT_INVALID
    console.print_json(json.dumps(reg))
    return EXIT_OK


def main() -> None:
    code = app()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
