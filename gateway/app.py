"""Wiring: `edocgw serve` opens the store and runs every component until SIGINT/SIGTERM.

A component is any object with a `name` and async `start()`/`stop()`. Components start in
order and stop in reverse, so listeners stop accepting before the workers and the database
behind them go away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from config import Settings
from store.db import Database, open_database

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.handoff import Handed

log = logging.getLogger("edocgw")

STOP_TIMEOUT = 20.0


class Component(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def build_components(
    settings: Settings, db: Database, handed: Handed | None = None
) -> list[Component]:
    """Everything `serve` runs, in start order: workers first, intake last (so it stops first
    and nothing new arrives while the workers finish or release what they hold).

    With `[gateway] worker_processes`, a process that runs intake runs its pipeline and
    delivery in child processes instead (gateway/processes/supervisor.py), and with them the event sealer
    and the retention sweeper: background work that need not share the listeners' core.
    The intake hands the pipeline the bytes it stores (gateway/handoff.py): through the
    child's stdin, or in memory when both run here; *handed* is what a child received."""
    from gateway.admin.server import AdminServer
    from gateway.delivery.service import DeliveryService
    from gateway.eventlog.chainkey import load_chain_key, witness_path
    from gateway.eventlog.retention import RetentionSweeper
    from gateway.eventlog.sealer import EventSealer
    from gateway.handoff import Handed
    from gateway.imap import ImapFetcher
    from gateway.pipeline import Pipeline
    from gateway.processes.supervisor import WORKER_ROLES, WorkerProcesses
    from gateway.recentraw import RecentRaw
    from gateway.smtp import SmtpListener

    roles = set(settings.gateway.roles)
    # Worker processes only make sense beside intake: they keep its core free.
    delegated = [r for r in WORKER_ROLES if r in roles]
    if not settings.gateway.worker_processes or "intake" not in roles:
        delegated = []
    components: list[Component] = []
    workers: WorkerProcesses | None = None
    if delegated:
        workers = WorkerProcesses(settings, db.url, delegated)
        components.append(workers)
    else:  # cheap, and safe to run in every serve process on the database
        chain_key = load_chain_key(settings, create=True)
        components += [
            EventSealer(db, chain_key=chain_key, witness=witness_path(settings)),
            RetentionSweeper(db, settings.logging.retention),
        ]
    recent = RecentRaw()  # what the pipeline read, for the delivery beside it
    handoff: Callable[[str, bytes], object] | None = workers.hand if workers is not None else None
    if "pipeline" in roles and "pipeline" not in delegated:
        if handed is None and "intake" in roles:  # intake beside it: handed over in memory
            handed = Handed()
            handoff = handed.put
        components.append(Pipeline(settings, db, recent_raw=recent, handed=handed))
    if "delivery" in roles and "delivery" not in delegated:
        components.append(DeliveryService(settings, db, recent_raw=recent))
    if "admin" in roles and settings.admin.enabled:
        components.append(AdminServer(settings, db, components))  # /healthz sees the list
    if "intake" in roles:
        components.append(SmtpListener(settings, db, handoff=handoff))
        if settings.imap:
            components.append(ImapFetcher(settings, db))  # one task per account
    return components


class Service:
    def __init__(self, settings: Settings, config_file: str | None = None) -> None:
        self.settings = settings
        self.config_file = config_file
        self.db: Database | None = None
        self.components: list[Component] = []
        self.stopping = asyncio.Event()

    async def start(self) -> None:
        s = self.settings
        if self.config_file is None:
            log.info(
                "no config file: listening on loopback only, embedded PostgreSQL under "
                f"{s.gateway.data_dir}/pg, a self-signed TLS certificate in {s.gateway.data_dir}/tls, "
                f"processing address {', '.join(s.gateway.processing_addresses)}"
            )
        else:
            log.info(f"config file {self.config_file}")
        self.db = await open_database(s)
        applied = await self.db.upgrade()
        where = (
            f"embedded PostgreSQL, data in {self.db.embedded.pgdata.resolve()}"
            if self.db.embedded
            else "PostgreSQL at " + _redact(s.database.url or "(url_file)")
        )
        log.info(
            f"edocgw starting (pid {os.getpid()}): database {where}",
            extra={"schema_upgrades": ",".join(applied) or "none"},
        )
        self.components = build_components(s, self.db)
        for c in self.components:
            await c.start()
            log.info(f"started {c.name}")

    async def stop(self) -> None:
        for c in reversed(self.components):
            try:
                await asyncio.wait_for(c.stop(), STOP_TIMEOUT)
            except Exception as e:
                log.warning(f"stopping {c.name} failed", extra={"error": repr(e)})
        self.components = []
        if self.db is not None:
            await self.db.close()
            self.db = None
        log.info("edocgw stopped")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stopping.set)
        try:
            await self.start()
            log.info("edocgw ready")
            await self.stopping.wait()
            log.info("shutting down")
        finally:
            await self.stop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)


def _redact(url: str) -> str:
    head, sep, tail = url.partition("@")
    if not sep:
        return url
    scheme, _, creds = head.partition("://")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


def use_multiprocess_metrics(settings: Settings) -> None:
    """Let worker processes' metrics reach /metrics (prometheus-client multiprocess mode).

    Must run before prometheus-client is first imported: it picks its value store then. An
    embedding program that imported it already keeps per-process metrics."""
    if not settings.gateway.worker_processes or "prometheus_client" in sys.modules:
        return
    path = Path(settings.gateway.data_dir).resolve() / "metrics"
    try:
        path.mkdir(parents=True, exist_ok=True)
        for old in stale_metric_files(path):  # counts of an earlier run: its processes are gone
            old.unlink(missing_ok=True)
    except OSError:
        return  # per-process metrics; the data_dir problem is reported where it matters
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)


def stale_metric_files(path: Path) -> list[Path]:
    """prometheus-client's files of processes that no longer run (`counter_<pid>.db`, …). A
    second `serve` sharing the data folder must not wipe the counts of one that runs."""
    import psutil

    out = []
    for f in path.glob("*.db"):
        pid = f.stem.rpartition("_")[2]
        if not (pid.isdigit() and psutil.pid_exists(int(pid))):
            out.append(f)
    return out


def serve(settings: Settings, config_file: str | None = None) -> int:
    from gateway.preflight import preflight

    preflight(settings)  # raises ConfigError before anything starts or is touched
    use_multiprocess_metrics(settings)
    service = Service(settings, config_file)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        run = asyncio.run
    else:
        run = uvloop.run
    run(service.run())
    return 0
