"""The routing index of active agencies and the per-sender rules, rebuilt from the store at
most every `ttl` seconds (an agency or rule an admin adds applies within that time, without a
query per message)."""

from __future__ import annotations

import asyncio
import time

from gateway.pipeline.routing import AgencyIndex, AgencyRef
from store.agencies import list_agencies
from store.db import Database
from store.senders import Rule, list_rules


class AgencyCache:
    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._index: AgencyIndex | None = None
        self.sender_rules: list[Rule] = []  # read with the agencies
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def index(self) -> AgencyIndex:
        async with self._lock:
            now = time.monotonic()
            if self._index is None or now - self._at >= self.ttl:
                async with self.db.sessions() as s:
                    rows = await list_agencies(s, active_only=True)
                    self.sender_rules = await list_rules(s)
                refs = [
                    AgencyRef(
                        code=a.code,
                        name=a.name,
                        address=a.address,
                        aliases=tuple(a.aliases or ()),
                        domains=tuple(a.domains or ()),
                    )
                    for a in rows
                ]
                self._index = await asyncio.to_thread(AgencyIndex.build, refs)
                self._at = now
            return self._index
