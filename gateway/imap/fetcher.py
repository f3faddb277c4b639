"""The `imap` component of `edocgw serve`: one independent runner per `[[imap]]` account."""

from __future__ import annotations

import asyncio
import logging

from config import Settings
from gateway.imap.account import IDLE_RENEW, AccountFetcher
from store.db import Database

log = logging.getLogger("edocgw.imap")


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
                duplicate_window=settings.gateway.duplicate_window,
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
        """For /healthz: every account is running (a failing account still retries)."""
        return all(acc.alive() for acc in self.accounts.values())

    async def start(self) -> None:
        for acc in self.accounts.values():
            await acc.start()

    async def stop(self) -> None:
        await asyncio.gather(*(acc.stop() for acc in self.accounts.values()))
