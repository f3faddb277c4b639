"""A send that outlives the claim's lease: the running delivery keeps its claim renewed, so a
second delivery service on the same database never sends the same row again."""

from __future__ import annotations

from sqlalchemy import select

from store.models import Delivery
from tests.delivery.support import (
    Recorder,
    add_agency,
    make_raw,
    put_message,
    start_sink,
    state_is,
    wait_until,
)

AGENCY = "000.00.00.H53"
INBOX = "vanban@stttt.tayninh.gov.vn"


async def test_a_send_longer_than_the_lease_is_not_taken_by_another_service(
    db, dsettings, run_service
):
    dsettings.gateway.claim_timeout = "1s"  # type: ignore[assignment]
    dest = await start_sink(Recorder(delay=3.0))  # the server answers DATA after 3 leases
    await add_agency(db, AGENCY, INBOX, dest.route)
    _, (d_id,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])

    await run_service(dsettings)
    await wait_until(lambda: _sending(db, d_id), 15, "the first service sending")
    await run_service(dsettings)  # polls every second while the first one waits for DATA
    await wait_until(lambda: state_is(db, d_id, "delivered"), 20, "delivered")

    assert len(dest.got) == 1
    async with db.sessions() as s:
        row = (await s.execute(select(Delivery).where(Delivery.id == d_id))).scalar_one()
    assert (row.state, row.attempts, row.claimed_by) == ("delivered", 1, None)
    await dest.close()


async def _sending(db, d_id: int) -> bool:
    async with db.sessions() as s:
        row = (await s.execute(select(Delivery).where(Delivery.id == d_id))).scalar_one()
    return row.claimed_by is not None
