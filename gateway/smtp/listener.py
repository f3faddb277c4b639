"""The SMTP component of `edocgw serve`: relay and submission listeners in the service's loop.

Both listeners are plain `loop.create_server` servers with the gateway's aiosmtpd protocol (no
threaded Controller), so sessions, the commit writers and the rest of the service share one
event loop and one database pool. Ports may be 0 in tests; `relay_port` and `submission_port`
tell what the OS picked.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from ipaddress import ip_network
from typing import Any

from config import Settings, split_listen
from gateway.delivery.route import shared_resolver
from gateway.smtp.auth import SubmitAuthenticator
from gateway.smtp.authlimit import AuthFailures, ConnectionLimiter
from gateway.smtp.commit import Committer
from gateway.smtp.directory import Directory
from gateway.smtp.fastdata import MemoryBudget
from gateway.smtp.handler import Handler, Shared
from gateway.smtp.inflow import InFlow
from gateway.smtp.protocol import GatewaySMTP
from gateway.smtp.relay import client_may_relay
from gateway.tls import cert_pair, server_context
from store.db import Database

log = logging.getLogger("edocgw.smtp")


class _DropOwnDeprecation(logging.Filter):
    """aiosmtpd 1.4 sets its own deprecated Session.login_data on every successful AUTH and
    then warns about it; nothing of ours reads it, so the warning is noise in our log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_DropOwnDeprecation())

IDENT = "ESMTP edocgw"
DRAIN_SECONDS = 10.0  # how long sessions in DATA may finish when the service stops


class SmtpListener:
    name = "smtp"

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        reuse_port: bool = False,
        handoff: Callable[[str, bytes], object] | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.handoff = handoff  # accepted bytes to the pipeline (gateway/handoff.py)
        self.reuse_port = reuse_port  # several processes sharing the listening sockets
        self.sessions: set[GatewaySMTP] = set()
        self.servers: dict[str, asyncio.Server] = {}
        self.committer: Committer | None = None
        self.inflow: InFlow | None = None
        self._shared: Shared | None = None
        self.budget = MemoryBudget(
            max(settings.smtp.data_memory_budget, settings.smtp.max_message_size)
        )

    @property
    def relay_port(self) -> int:
        return self._port("relay")

    @property
    def submission_port(self) -> int:
        return self._port("submission")

    def _port(self, name: str) -> int:
        return int(self.servers[name].sockets[0].getsockname()[1])

    async def start(self) -> None:
        s = self.settings
        pair = await asyncio.to_thread(cert_pair, s)
        tls = await asyncio.to_thread(server_context, pair)
        self.committer = Committer(
            self.db, duplicate_window=s.gateway.duplicate_window, handoff=self.handoff
        )
        await self.committer.start()
        self.inflow = InFlow(s, self.db)
        directory = Directory(self.db, s)
        try:
            await directory.get()  # warm the cache; a failure here only delays it
        except Exception as e:
            log.warning("agency list not loaded yet", extra={"error": repr(e)[:300]})
        self._shared = Shared(
            settings=s,
            directory=directory,
            committer=self.committer,
            inflow=self.inflow,
            authenticator=SubmitAuthenticator(self.db),
            auth_failures=AuthFailures(s.smtp.auth_failures_per_minute),
            resolver=shared_resolver(s.delivery.dns_servers),
        )
        networks = [ip_network(str(n), strict=False) for n in s.smtp.relay_networks]

        def trusted(ip: str) -> bool:
            return client_may_relay(ip, networks, authenticated=False)

        for name, listen, submission in (
            ("relay", s.smtp.relay_listen, False),
            ("submission", s.smtp.submission_listen, True),
        ):
            limiter = ConnectionLimiter(
                s.smtp.max_connections, s.smtp.max_connections_per_ip, exempt=trusted
            )
            handler = Handler(name, self._shared)
            host, port = split_listen(listen)
            self.servers[name] = await asyncio.get_running_loop().create_server(
                self._factory(handler, limiter, tls, submission),
                host,
                port,
                reuse_address=True,
                reuse_port=self.reuse_port or None,
                backlog=512,
            )
            log.info(
                f"SMTP {name} listening on {host}:{self._port(name)}",
                extra={"listener": name, "host": host, "port": self._port(name)},
            )

    def _factory(
        self, handler: Handler, limiter: ConnectionLimiter, tls: Any, submission: bool
    ) -> Any:
        s = self.settings
        loop = asyncio.get_running_loop()
        common = {
            "limiter": limiter,
            "sessions": self.sessions,
            "data_timeout": s.smtp.data_timeout.total_seconds(),
            "budget": self.budget,
            "data_size_limit": s.smtp.max_message_size,
            "enable_SMTPUTF8": True,
            "decode_data": False,
            "hostname": s.gateway.hostname,
            "ident": IDENT,
            "tls_context": tls,
            "require_starttls": submission,
            "timeout": s.smtp.command_timeout.total_seconds(),
            "auth_required": submission,
            "auth_require_tls": True,
            "loop": loop,
        }
        return lambda: GatewaySMTP(handler, **common)

    async def stop(self) -> None:
        for srv in self.servers.values():
            srv.close()  # stop accepting
        for sess in list(self.sessions):
            sess.stopping = True
        deadline = time.monotonic() + DRAIN_SECONDS
        while any(x.busy for x in self.sessions) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # a bounded drain; sessions have no "done" event to await
        for sess in list(self.sessions):
            sess.shutdown()
        if self.committer is not None:
            await self.committer.close()
        if self.inflow is not None:
            await self.inflow.close()
        self.servers.clear()
