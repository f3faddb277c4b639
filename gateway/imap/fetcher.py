"""The `imap` component of `edocgw serve`: one independent task per `[[imap]]` account."""

from __future__ import annotations

import asyncio
import logging

from config import Settings
from gateway.imap.account import IDLE_RENEW, AccountFetcher
from store.db import Database

log = logging.getLogger("edocgw.imap")

STOP_GRACE = 5.0  # time for LOGOUT before the tasks are cancelled


class ImapFetcher:
    name = "imap"

    def __init__(
        self,
        settings: Settings,
        db: Database,
        *,
        idle_renew: float = IDLE_RENEW,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
    ) -> None:
        self.accounts: dict[str, AccountFetcher] = {
            a.name: AccountFetcher(
                a,
                db,
                max_message_size=settings.smtp.max_message_size,
                idle_renew=idle_renew,
                backoff_initial=backoff_initial,
                backoff_max=backoff_max,
            )
            for a in settings.imap
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}
        for a in settings.imap:
            if a.tls == "none" and a.host not in ("127.0.0.1", "::1", "localhost"):
                log.warning(f"imap {a.name}: tls = none sends the password to {a.host} in clear")
        # aioimaplib logs every unsolicited response at INFO: keep its chatter out of our logs.
        logging.getLogger("aioimaplib.aioimaplib").setLevel(logging.WARNING)

    def alive(self) -> bool:
        """For /healthz: every account task is running (a failing account still retries)."""
        return all(not t.done() for t in self._tasks.values())

    async def start(self) -> None:
        for name, acc in self.accounts.items():
            acc.stop_event.clear()
            self._tasks[name] = asyncio.create_task(acc.run(), name=f"imap:{name}")

    async def stop(self) -> None:
        for acc in self.accounts.values():
            acc.stop_event.set()
        tasks = list(self._tasks.values())
        self._tasks.clear()
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE)
        for t in pending:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
