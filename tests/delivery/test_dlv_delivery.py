"""Delivery against real aiosmtpd servers: success, retries, bounces, warnings, TLS, urgency."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json

from sqlalchemy import func, select

from gateway.delivery.trace import edocgw_id
from store.models import Delivery, Destination
from tests.delivery.support import (
    Recorder,
    add_agency,
    closed_port,
    delivery,
    events,
    internal_messages,
    make_raw,
    put_message,
    server_tls_context,
    start_sink,
    state_is,
    tls_files,
    wait_until,
)

SENDER = "vanthu@tayninh.gov.vn"
AGENCY = "000.00.00.H53"
INBOX = "vanban@stttt.tayninh.gov.vn"


def _split_trace(content: bytes, raw: bytes) -> bytes:
    assert content.endswith(raw), "the original bytes must follow the trace headers unchanged"
    return content[: len(content) - len(raw)]


async def test_delivered_with_trace_headers_and_receipt(db, dsettings, run_service, sender_sink):
    dest = await start_sink()
    await add_agency(db, AGENCY, INBOX, dest.route)
    raw = make_raw(message_id="<cv15@tayninh.gov.vn>")
    msg_id, (d_id,) = await put_message(db, raw, [(INBOX, AGENCY, 0)])

    await run_service(dsettings)
    await wait_until(lambda: state_is(db, d_id, "delivered"), 10, "delivery")
    await wait_until(lambda: _count(sender_sink, 1), 10, "the delivery receipt")

    (got,) = dest.got
    assert got.mail_from == SENDER and got.rcpt_tos == [INBOX]
    trace = _split_trace(got.content, raw).decode()
    xid = edocgw_id(msg_id, "gw.test.gov.vn")
    assert trace.startswith("Received: from mail.tayninh.gov.vn [127.0.0.1]\r\n\tby gw.test.gov.vn")
    assert f"X-Edocgw-Id: {xid}\r\n" in trace
    assert "Authentication-Results: gw.test.gov.vn;\r\n\tx-edocgw-signature=valid" in trace
    assert got.header("X-Edocgw-Id") == xid

    row = await delivery(db, d_id)
    assert (row.attempts, row.last_reply_code, row.claimed_by) == (1, 250, None)
    assert row.delivered_at is not None
    kinds = [e.kind for e in await events(db, delivery_id=d_id)]
    assert kinds == ["attempt", "delivered"]

    (receipt,) = sender_sink.got
    assert receipt.mail_from == "<>" and receipt.rcpt_tos == [SENDER]
    m = receipt.message
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["X-Edocgw-Notice"] == "delivered"
    assert m["In-Reply-To"] == "<cv15@tayninh.gov.vn>"
    text = m.get_body(("plain",)).get_content()
    assert "Văn bản đã được chuyển đến" in text and INBOX in text
    data = _json_part(m)
    assert data["kind"] == "delivered" and data["x_edocgw_id"] == xid
    assert data["destinations"] == [
        {
            "recipient": INBOX,
            "agency": AGENCY,
            "state": "delivered",
            "delivered_at": data["destinations"][0]["delivered_at"],
        }
    ]
    await dest.close()


async def test_451_three_times_then_250_backs_off(db, dsettings, run_service):
    dest = await start_sink(Recorder(script=["451 4.3.0 try again later"] * 3))
    await add_agency(db, AGENCY, INBOX, dest.route)
    raw = make_raw()
    msg_id, (d_id,) = await put_message(db, raw, [(INBOX, AGENCY, 0)])

    await run_service(dsettings)
    await wait_until(lambda: state_is(db, d_id, "delivered"), 15, "delivery after retries")

    assert len(dest.got) == 4
    assert len({g.content for g in dest.got}) == 1, "every retry sends the same bytes"
    assert dest.got[0].header("X-Edocgw-Id") == edocgw_id(msg_id, "gw.test.gov.vn")
    evs = await events(db, delivery_id=d_id)
    assert [e.kind for e in evs] == ["attempt", "deferred"] * 3 + ["attempt", "delivered"]
    attempts = [e for e in evs if e.kind == "attempt"]
    assert [e.detail["attempt"] for e in attempts] == [1, 2, 3, 4]
    assert [e.detail["code"] for e in attempts] == [451, 451, 451, 250]
    for e in evs:
        if e.kind == "deferred":
            wait = dt.datetime.fromisoformat(e.detail["next_attempt_at"]) - e.at
            assert dt.timedelta(seconds=0.85) <= wait <= dt.timedelta(seconds=1.15)
            assert "451 4.3.0 try again later" in e.detail["reply"]
    gaps = [(b.at - a.at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
    assert all(g >= 0.85 for g in gaps), gaps
    row = await delivery(db, d_id)
    assert (row.attempts, row.state, row.warned_at) == (4, "delivered", None)
    await dest.close()


async def test_550_bounces_with_dsn_and_never_a_dsn_of_a_dsn(
    db, dsettings, run_service, sender_sink
):
    dest = await start_sink(Recorder(default="550 5.7.1 <vanban@stttt.tayninh.gov.vn>: refused"))
    sender_sink.recorder.default = "550 5.1.1 mailbox unavailable"  # the DSN bounces too
    await add_agency(db, AGENCY, INBOX, dest.route)
    raw = make_raw(message_id="<bounce-me@tayninh.gov.vn>")
    msg_id, (d_id,) = await put_message(db, raw, [(INBOX, AGENCY, 0)])

    await run_service(dsettings)
    await wait_until(lambda: state_is(db, d_id, "bounced"), 10, "the bounce")
    # One notice for the one failure: the DSN is tried once, and bounces in turn.
    await wait_until(lambda: _count(sender_sink, 1), 10, "the DSN attempt")
    await wait_until(lambda: _internal_settled(db, 1), 10, "the DSN's delivery to bounce")

    assert len(dest.got) == 1
    row = await delivery(db, d_id)
    assert (row.last_reply_code, row.attempts) == (550, 1)
    notices = await internal_messages(db)
    assert [n.peer for n in notices] == ["edocgw/dsn/failed"]
    assert all(n.mail_from == "" and n.rcpt_to == [SENDER] for n in notices)

    dsn = next(g for g in sender_sink.got if "multipart/report" in g.header("Content-Type"))
    assert dsn.mail_from == "<>"
    m = dsn.message
    assert m.get_content_type() == "multipart/report"
    assert m.get_param("report-type") == "delivery-status"
    human, status, headers = m.get_payload()
    assert "Không chuyển được thư" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    status_text = status.as_bytes().decode()
    assert f"Final-Recipient: rfc822; {INBOX}" in status_text
    assert "Action: failed" in status_text and "Status: 5.7.1" in status_text
    assert "Diagnostic-Code: smtp; 550 5.7.1" in status_text
    assert "Reporting-MTA: dns; gw.test.gov.vn" in status_text
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Message-ID: <bounce-me@tayninh.gov.vn>" in headers.as_bytes().decode()

    # Let the poll run again: the bounced DSN made nothing new.
    await _sleep(1.5)
    assert len(await internal_messages(db)) == 1
    assert len(sender_sink.got) == 1
    await dest.close()


async def test_null_sender_and_internal_mail_get_no_dsn(db, dsettings, run_service, sender_sink):
    dest = await start_sink(Recorder(default="550 5.1.1 no such user"))
    await add_agency(db, AGENCY, INBOX, dest.route)
    _, (d1,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)], mail_from="")
    internal_id, (d2,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)], source="internal")
    await run_service(dsettings)
    await wait_until(lambda: _both_bounced(db, d1, d2), 10, "both bounces")
    await _sleep(1.0)
    assert [m.id for m in await internal_messages(db)] == [internal_id], "no DSN, no notice"
    assert sender_sink.got == []
    assert "bounced" in [e.kind for e in await events(db, delivery_id=d1)]
    await dest.close()


async def test_unreachable_warns_then_bounces_at_max_age(db, dsettings, run_service, sender_sink):
    d = dsettings.delivery
    d.delay_warning = "1s"  # type: ignore[assignment]
    d.max_age = "3s"  # type: ignore[assignment]
    d.dead_destination_after = 100  # pausing is tested on its own
    await add_agency(db, AGENCY, INBOX, f"smtp://127.0.0.1:{closed_port()}")
    _, (d_id,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])

    await run_service(dsettings)
    await wait_until(lambda: state_is(db, d_id, "bounced"), 12, "the bounce at max_age")
    await wait_until(lambda: _count(sender_sink, 2), 10, "warning and bounce DSNs")

    row = await delivery(db, d_id)
    assert row.warned_at is not None and row.attempts >= 3
    assert "delivery time expired" in row.last_reply and "connect failed" in row.last_reply
    kinds = [e.kind for e in await events(db, delivery_id=d_id)]
    assert kinds.count("warned") == 1 and kinds[-1] == "bounced"
    assert kinds.index("warned") < kinds.index("bounced")

    actions = []
    for g in sender_sink.got:
        m = g.message
        if m.get_content_type() == "multipart/report":
            status = m.get_payload()[1].as_bytes().decode()
            actions.append("delayed" if "Action: delayed" in status else "failed")
            if "Action: failed" in status:
                assert "Status: 4.4.7" in status
            else:
                assert "Will-Retry-Until:" in status
        else:
            actions.append("notice:" + m["X-Edocgw-Notice"])
    assert sorted(actions) == ["delayed", "failed"]  # one notice per event: the DSNs
    # The warning went out before the bounce.
    order = [a for a in actions if not a.startswith("notice")]
    assert order == ["delayed", "failed"]


async def test_starttls_required_but_not_offered_is_deferred(db, dsettings, run_service, tmp_path):
    plain = await start_sink()
    await add_agency(db, AGENCY, INBOX, plain.route, tls="verify")
    _, (d_id,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])

    await run_service(dsettings)
    await wait_until(lambda: state_is(db, d_id, "deferred"), 10, "the deferral")
    row = await delivery(db, d_id)
    assert row.last_reply_code is None
    assert "STARTTLS is required by TLS policy 'verify'" in row.last_reply
    assert "not sent in clear text" in row.last_reply
    assert plain.got == []
    await plain.close()


async def test_starttls_verified_against_configured_ca(db, dsettings, run_service, tmp_path):
    ca, cert, key = tls_files(tmp_path / "tls")
    tls_sink = await start_sink(tls_context=server_tls_context(cert, key))
    other_ca, _, _ = tls_files(tmp_path / "other")
    await add_agency(db, AGENCY, INBOX, tls_sink.route, tls="verify")
    _, (d_ok,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])

    dsettings.delivery.tls_ca_file = str(ca)
    svc = await run_service(dsettings)
    await wait_until(lambda: state_is(db, d_ok, "delivered"), 10, "TLS delivery")
    attempt = [e for e in await events(db, delivery_id=d_ok) if e.kind == "attempt"][0]
    assert attempt.detail["tls"] is True
    await svc.stop()

    # Trusting another CA: the certificate does not verify, so nothing is sent.
    dsettings.delivery.tls_ca_file = str(other_ca)
    _, (d_bad,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])
    await run_service(dsettings)
    await wait_until(lambda: state_is(db, d_bad, "deferred"), 10, "the deferral")
    assert "TLS certificate verification failed" in (await delivery(db, d_bad)).last_reply
    assert len(tls_sink.got) == 1
    await tls_sink.close()


async def test_hoa_toc_goes_out_before_200_ordinary(db, dsettings, run_service):
    dest = await start_sink()
    await add_agency(db, AGENCY, INBOX, dest.route)
    for i in range(200):
        await put_message(db, make_raw(subject=f"Thường {i}"), [(INBOX, AGENCY, 0)])
    urgent_id, (urgent,) = await put_message(db, make_raw(subject="HỎA TỐC"), [(INBOX, AGENCY, 3)])

    dsettings.delivery.concurrency_per_destination = 1
    svc = await run_service(dsettings)
    await wait_until(lambda: _count(dest, 5), 10, "the first deliveries")
    await svc.stop()

    assert dest.got[0].header("X-Edocgw-Id") == edocgw_id(urgent_id, "gw.test.gov.vn")
    assert (await delivery(db, urgent)).state == "delivered"
    async with db.transaction() as s:
        left = (
            await s.execute(
                select(Delivery.state, func.count())
                .where(Delivery.claimed_by.is_not(None))
                .group_by(Delivery.state)
            )
        ).all()
        sending = (
            await s.execute(select(func.count()).where(Delivery.state == "sending"))
        ).scalar_one()
    assert left == [] and sending == 0, "a clean stop releases every claimed row"
    await dest.close()


async def test_failing_destination_is_paused(db, dsettings, run_service):
    d = dsettings.delivery
    d.dead_destination_after = 2
    d.dead_destination_pause = "60s"  # type: ignore[assignment]
    route = f"smtp://127.0.0.1:{closed_port()}"
    await add_agency(db, AGENCY, INBOX, route)
    _, (d_id,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])

    await run_service(dsettings)
    await wait_until(lambda: _attempts(db, d_id, 2), 10, "two failed attempts")
    async with db.transaction() as s:
        dest = (await s.execute(select(Destination).where(Destination.key == route))).scalar_one()
    assert dest.consecutive_failures == 2
    assert dest.paused_until is not None
    assert dest.paused_until > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=50)

    # A new delivery to the paused destination waits: no connection is tried.
    _, (d_new,) = await put_message(db, make_raw(), [(INBOX, AGENCY, 0)])
    await _sleep(2.0)
    assert (await delivery(db, d_new)).attempts == 0
    assert (await delivery(db, d_id)).attempts == 2
    row = await delivery(db, d_id)
    assert row.next_attempt_at >= dest.paused_until - dt.timedelta(seconds=1)


# -- helpers -------------------------------------------------------------------------------


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def _count(sink, n: int) -> bool:
    return len(sink.got) >= n


async def _attempts(db, d_id: int, n: int) -> bool:
    return (await delivery(db, d_id)).attempts >= n


async def _both_bounced(db, *ids: int) -> bool:
    return all([await state_is(db, i, "bounced") for i in ids])


async def _internal_settled(db, n: int) -> bool:
    msgs = await internal_messages(db)
    if len(msgs) < n:
        return False
    async with db.transaction() as s:
        states = (
            (
                await s.execute(
                    select(Delivery.state).where(Delivery.message_id.in_([m.id for m in msgs]))
                )
            )
            .scalars()
            .all()
        )
    return all(st == "bounced" for st in states)


def _json_part(m: email.message.EmailMessage) -> dict:
    for part in m.walk():
        if part.get_content_type() == "application/json":
            return json.loads(part.get_payload(decode=True))
    raise AssertionError("no JSON part")
