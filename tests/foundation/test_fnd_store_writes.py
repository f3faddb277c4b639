"""The store's single write paths: events (`append_events`) and deliveries (`insert_deliveries`)."""

from __future__ import annotations

from sqlalchemy import select

from store.db import Database
from store.deliveries import NewDelivery, insert_deliveries
from store.events import NewEvent, append_events, seal_events, verify_chain
from store.messages import NewMessage, insert_message
from store.models import Delivery, Event


async def _message(db: Database) -> int:
    async with db.transaction() as s:
        return await insert_message(
            s, NewMessage(source="smtp", peer="127.0.0.1", raw=b"Subject: x\r\n\r\nbody\r\n")
        )


async def test_events_keep_their_order_and_any_text_and_chain(db):
    mid = await _message(db)
    shapes = [
        NewEvent("attempt", mid, 7, {"reply": "250 ok", "vi": "Đã gửi"}),
        NewEvent("deferred", mid, 7, {"reply": "451 try\x00later", "list": ["a\x00", 1]}),
        NewEvent("warned", mid, None, {}),
        NewEvent("retried", None, 8, {"nested": {"k\x00": None}}),
    ]
    async with db.transaction() as s:
        await append_events(s, shapes)
        await append_events(s, [])  # nothing to write is no statement and no error
    async with db.transaction() as s:
        rows = (
            await s.execute(
                select(Event.kind, Event.message_id, Event.delivery_id, Event.detail)
                .where(Event.kind != "received")
                .order_by(Event.id)
            )
        ).all()
    assert [tuple(r) for r in rows] == [
        ("attempt", mid, 7, {"reply": "250 ok", "vi": "Đã gửi"}),
        ("deferred", mid, 7, {"reply": "451 try\ufffdlater", "list": ["a\ufffd", 1]}),
        ("warned", mid, None, {}),
        ("retried", None, 8, {"nested": {"k\ufffd": None}}),
    ]
    async with db.transaction() as s:
        assert await seal_events(s) == 5  # the message's `received` event and these four
    async with db.transaction() as s:
        report = await verify_chain(s)
    assert report.ok and report.checked == 5 and report.unsealed == 0


async def test_one_delivery_per_recipient_and_ids_in_given_order(db):
    mid = await _message(db)
    other = await _message(db)
    rows = [
        NewDelivery(mid, "a@x.gov.vn", "000.00.01.H01", priority=2),
        NewDelivery(mid, "b@y.gov.vn", None, state="held"),
        NewDelivery(other, "a@x.gov.vn", None),
    ]
    async with db.transaction() as s:
        first = await insert_deliveries(s, rows)
    assert None not in first and first == sorted(first)
    again = [NewDelivery(mid, "b@y.gov.vn", "ignored"), NewDelivery(mid, "c@z.gov.vn", None)]
    async with db.transaction() as s:
        second = await insert_deliveries(s, again)
        assert await insert_deliveries(s, []) == []
    assert second[0] is None and second[1] is not None and second[1] > max(first)
    async with db.transaction() as s:
        stored = (
            await s.execute(
                select(
                    Delivery.id,
                    Delivery.message_id,
                    Delivery.recipient,
                    Delivery.agency_code,
                    Delivery.priority,
                    Delivery.state,
                ).order_by(Delivery.id)
            )
        ).all()
    assert [tuple(r) for r in stored] == [
        (first[0], mid, "a@x.gov.vn", "000.00.01.H01", 2, "queued"),
        (first[1], mid, "b@y.gov.vn", None, 0, "held"),
        (first[2], other, "a@x.gov.vn", None, 0, "queued"),
        (second[1], mid, "c@z.gov.vn", None, 0, "queued"),
    ]
