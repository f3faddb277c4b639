"""What counts as local for the relay rules, with the agency part cached briefly.

Agencies change rarely (an admin edits the registry) while RCPT comes thousands of times a
second, so the active agencies' domains and addresses are read at most every `ttl` seconds.
If the database is briefly unreachable the last snapshot keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time

from config import Settings
from gateway.smtp.relay import LocalDirectory
from store.agencies import local_addresses
from store.db import Database

log = logging.getLogger("edocgw.smtp")


class Directory:
    def __init__(self, db: Database, settings: Settings, ttl: float = 30.0) -> None:
        self.db = db
        self.settings = settings
        self.ttl = ttl
        self._snapshot: LocalDirectory | None = None
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> LocalDirectory:
        """The current snapshot; raises only when none could ever be loaded."""
        if self._snapshot is not None and time.monotonic() - self._loaded_at < self.ttl:
            return self._snapshot
        async with self._lock:
            if self._snapshot is not None and time.monotonic() - self._loaded_at < self.ttl:
                return self._snapshot
            try:
                self._snapshot = await asyncio.wait_for(self._load(), 10)
                self._loaded_at = time.monotonic()
            except Exception as e:
                if self._snapshot is None:
                    raise
                log.warning("agency look-up failed, using the last list", extra={"error": repr(e)})
                self._loaded_at = time.monotonic() - self.ttl + 5  # retry in 5 s
            return self._snapshot

    async def _load(self) -> LocalDirectory:
        async with self.db.transaction() as tx:
            found = await local_addresses(tx)
        g = self.settings.gateway
        return LocalDirectory.build(
            processing=g.processing_addresses,
            local_domains=g.local_domains,
            agency_domains=found.domains,
            agency_addresses=found.addresses,
        )
