"""A message the pipeline just read is delivered from memory by the delivery beside it, byte
for byte what was stored; one no longer kept is read from the database as before."""

from __future__ import annotations

import datetime as dt

from config import Settings
from gateway.delivery.service import DeliveryService
from gateway.recentraw import RecentRaw
from store import deliveries as repo
from store.db import Database
from tests.delivery.support import add_agency, put_message, start_sink, state_is, wait_until
from tests.pipeline.pipe_support import make_mail, running, submit, wait_for

AGENCY = "000.00.00.H53"
INBOX = "vanthu@stttt.tayninh.gov.vn"


def test_kept_within_bounds_oldest_out_first():
    r = RecentRaw(min_size=10, max_item=100, max_bytes=250, max_items=3)
    r.put(1, b"x" * 9)  # too small to be worth a second read
    r.put(2, b"x" * 101)  # bigger than the claim reads inline
    assert len(r) == 0
    for i in range(3, 6):
        r.put(i, bytes([i]) * 100)
    assert r.keys() == [4, 5], "250 bytes: the oldest went"
    assert r.get(4) == b"\x04" * 100 and r.keys() == [5, 4], "a use makes it the newest"
    for i in range(6, 9):
        r.put(i, b"y" * 10)
    assert r.keys() == [6, 7, 8], "three at most"
    assert r.get(3) is None and r.get(4) is None and r.hits == 1


async def test_the_claim_leaves_out_the_bytes_the_caller_has(db: Database):
    raw = make_mail("Công văn 15/UBND-VP", body="x" * 20_000, to=INBOX)
    kept, (d_kept,) = await put_message(db, raw, [(INBOX, None, 0)])
    _, (d_read,) = await put_message(db, raw, [(INBOX, None, 0)])
    async with db.transaction() as s:
        claimed = await repo.claim_due(
            s, worker="w", lease=dt.timedelta(minutes=1), limit=5, cached=[kept]
        )
    by_id = {c.id: c for c in claimed}
    assert by_id[d_kept].raw is None
    assert by_id[d_read].raw == raw


async def test_delivered_from_what_the_pipeline_read(pipe_settings: Settings, db: Database):
    sink = await start_sink()
    await add_agency(db, AGENCY, INBOX, sink.route)
    raws = [
        make_mail(f"Công văn số {n}/UBND-VP", body=f"Kính gửi: Sở {n}.\n" + "x" * 20_000, to=INBOX)
        for n in range(3)
    ]
    ids = [await submit(db, raw, [INBOX]) for raw in raws]
    recent = RecentRaw()
    pipe_settings.delivery.require_tls = False
    delivery = DeliveryService(pipe_settings, db, recent_raw=recent)
    await delivery.start()
    try:
        async with running(pipe_settings, db, notice=False, recent_raw=recent):
            await wait_for(db, ids, {"processed"}, within=30)
            await wait_until(lambda: _all_sent(sink, len(raws)), 20, "three delivered")
    finally:
        await delivery.stop()
        await sink.close()
    assert recent.hits == len(raws), "each came from memory"
    for got in sink.recorder.got:  # the trace headers, then exactly the stored bytes
        assert any(got.content.endswith(raw.replace(b"\n", b"\r\n")) for raw in raws)


async def test_not_kept_any_more_read_from_the_database(db: Database, pipe_settings: Settings):
    sink = await start_sink()
    await add_agency(db, AGENCY, INBOX, sink.route)
    raw = make_mail("Công văn 16/UBND-VP", body="y" * 20_000, to=INBOX)
    _, (d_id,) = await put_message(db, raw, [(INBOX, AGENCY, 0)])
    recent = RecentRaw(max_items=0)  # whatever the pipeline put is gone again
    pipe_settings.delivery.require_tls = False
    svc = DeliveryService(pipe_settings, db, recent_raw=recent)
    await svc.start()
    try:
        await wait_until(lambda: state_is(db, d_id, "delivered"), 15, "delivered")
    finally:
        await svc.stop()
        await sink.close()
    assert recent.hits == 0
    assert sink.recorder.got[0].content.endswith(raw.replace(b"\n", b"\r\n"))


async def _all_sent(sink, n: int) -> bool:  # noqa: ANN001
    return len(sink.recorder.got) >= n
