"""Retention trims the oldest events and leaves a chain that still verifies."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, text

from gateway.eventlog.retention import trim_events
from store.events import append_event, seal_events, verify_chain
from store.models import Event


async def test_retention_trims_old_events_and_the_chain_still_verifies(db):
    async with db.transaction() as s:
        for i in range(30):
            await append_event(s, "attempt", message_id=i, detail={"n": i})
    async with db.transaction() as s:
        await seal_events(s)
        # the first 20 events are two years old
        await s.execute(
            text("UPDATE events SET at = now() - interval '730 days' WHERE chain_seq <= 20")
        )
    # (editing `at` changed their content: re-seal them as they would have been sealed)
    async with db.transaction() as s:
        await s.execute(text("UPDATE events SET chain_seq = NULL, prev_hash = NULL, hash = NULL"))
    async with db.transaction() as s:
        await seal_events(s)

    assert await trim_events(db, dt.timedelta(days=365), batch=7) == 20
    async with db.transaction() as s:
        left = (await s.execute(select(func.min(Event.chain_seq), func.count()))).one()
        report = await verify_chain(s)
    assert tuple(left) == (21, 10)
    assert report.ok and report.checked == 10
    assert await trim_events(db, dt.timedelta(days=365)) == 0  # nothing more is old enough
