"""RFC 2920 PIPELINING: to a server that offers it, MAIL, RCPT and DATA go in one write, and
every failure among them is read and reported at its own stage; the session stays in step."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.delivery.connections import Connections
from gateway.delivery.smtp import Result, Target, Timeouts, TlsContexts, send
from tests.delivery.support import (
    Recorder,
    add_agency,
    events,
    make_raw,
    put_message,
    send_kept,
    server_tls_context,
    start_sink,
    state_is,
    tls_files,
    wait_until,
)

AGENCY = "000.00.00.H53"
INBOX = "vanthu@stttt.tayninh.gov.vn"
SENDER = "vanthu@tayninh.gov.vn"
TIMEOUTS = Timeouts(2, 5)


async def _send(port: int, subject: str = "Thư", recipient: str = INBOX) -> Result:
    return await send(
        Target("127.0.0.1", port, "none"),
        mail_from=SENDER,
        recipient=recipient,
        data=make_raw(subject=subject),
        helo="gw.test.gov.vn",
        timeouts=TIMEOUTS,
        contexts=await asyncio.to_thread(TlsContexts),
    )


class _StrictServer:
    """A loopback SMTP server that offers PIPELINING and answers MAIL only once RCPT and
    DATA have arrived too (a client that waits for each reply gets 451 after a second)."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []
        self.messages: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 strict.test ESMTP\r\n")
        try:
            while line := await asyncio.wait_for(reader.readline(), 10):
                self.seen.append(line)
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(
                        b"250-strict.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"
                    )
                elif verb == b"MAIL":
                    try:  # the rest of the group must already be on its way
                        rest = [await asyncio.wait_for(reader.readline(), 1) for _ in range(2)]
                    except TimeoutError:
                        writer.write(b"451 4.5.0 send RCPT and DATA without waiting\r\n")
                        continue
                    self.seen += rest
                    writer.write(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n")
                    await writer.drain()
                    body = await asyncio.wait_for(reader.readuntil(b"\r\n.\r\n"), 10)
                    self.messages.append(body)
                    writer.write(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def test_mail_rcpt_and_data_go_in_one_group():
    strict = _StrictServer()
    port = await strict.start()
    result = await _send(port, "Công văn pipelined")
    await strict.close()
    assert result.outcome == "delivered", result.reply
    assert result.reply.endswith("250 2.0.0 Ok: queued (in reply to end of DATA)")
    verbs = [x[:4] for x in strict.seen]
    assert verbs[1:4] == [b"MAIL", b"RCPT", b"DATA"]
    assert strict.seen[1].startswith(f"MAIL FROM:<{SENDER}> SIZE=".encode())
    assert strict.seen[2] == f"RCPT TO:<{INBOX}>\r\n".encode()
    assert len(strict.messages) == 1 and b"Subject:" in strict.messages[0]


async def test_each_refusal_is_reported_at_its_own_stage():
    rec = Recorder(
        pipelining=True,
        mail_script=["550 5.7.1 sender refused"],
        rcpt_script=["451 4.2.0 mailbox busy", "550 5.1.1 no such mailbox"],
        script=["554 5.6.0 content refused"],
    )
    sink = await start_sink(rec)
    mail = await _send(sink.port)
    busy = await _send(sink.port)
    unknown = await _send(sink.port)
    content = await _send(sink.port)
    ok = await _send(sink.port)
    await sink.close()
    assert (mail.outcome, mail.code) == ("permanent", 550)
    assert mail.reply.endswith("(in reply to MAIL FROM)")
    assert (busy.outcome, busy.code, busy.status) == ("temporary", 451, "4.2.0")
    assert busy.reply.endswith("(in reply to RCPT TO)")
    assert (unknown.outcome, unknown.code, unknown.status) == ("permanent", 550, "5.1.1")
    assert (content.outcome, content.code) == ("permanent", 554)
    assert content.reply.endswith("(in reply to end of DATA)")
    assert ok.outcome == "delivered"
    assert [g.reply[:3] for g in rec.got] == ["554", "250"], "only two messages reached DATA"


async def test_a_kept_session_stays_in_step_after_a_refused_recipient():
    """MAIL accepted, RCPT refused, DATA answered 503: the next delivery on the same session
    goes after RSET, and every message is sent once."""
    rec = Recorder(pipelining=True)
    sink = await start_sink(rec)
    pool = Connections(idle=30)
    target = Target("127.0.0.1", sink.port, "none")
    contexts = await asyncio.to_thread(TlsContexts)
    pool.want("k")
    pool.want("k")

    async def deliver(n: int, recipient: str = INBOX) -> Result:
        return await send_kept(
            pool, target, contexts, TIMEOUTS, sender=SENDER, recipient=recipient, subject=f"Thư {n}"
        )

    first = await deliver(1)
    rec.rcpt_script.append("550 5.1.1 no such mailbox")
    refused = await deliver(2, "khongco@stttt.tayninh.gov.vn")
    third = await deliver(3)
    pool.unwant("k")
    pool.unwant("k")
    await pool.close(TIMEOUTS)
    await sink.close()
    assert (first.outcome, refused.outcome, third.outcome) == (
        "delivered",
        "permanent",
        "delivered",
    )
    assert refused.reply.endswith("(in reply to RCPT TO)")
    assert (pool.opened, pool.reused) == (1, 2), "one session carried all three"
    assert [g.message["Subject"] for g in rec.got] == ["Thư 1", "Thư 3"]


async def test_a_server_closing_with_421_mid_group_is_tried_again_later():
    rec = Recorder(pipelining=True, rcpt_script=["421 4.3.2 shutting down"])
    sink = await start_sink(rec)
    result = await _send(sink.port)
    await sink.close()
    assert (result.outcome, result.code) == ("temporary", 421)
    assert result.reply.endswith("(in reply to RCPT TO)")
    assert rec.got == []


async def test_pipelined_delivery_through_the_service(db, dsettings, run_service):
    """The gateway's own delivery to an agency whose server pipelines: letters delivered and
    logged, a refused recipient bounced, nothing sent twice."""
    rec = Recorder(pipelining=True)
    dest = await start_sink(rec)
    await add_agency(db, AGENCY, INBOX, dest.route)
    ids = [
        (await put_message(db, make_raw(subject=f"Lô {i}"), [(INBOX, AGENCY, 0)]))[1][0]
        for i in range(6)
    ]
    _, (refused,) = await put_message(
        db, make_raw(subject="Sai địa chỉ"), [("khongco@stttt.tayninh.gov.vn", AGENCY, 0)]
    )

    async def refuse_unknown(server, session, envelope, address, options):  # noqa: ANN001
        if address.startswith("khongco@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    rec.handle_RCPT = refuse_unknown  # type: ignore[method-assign]
    svc = await run_service(dsettings)

    async def done() -> bool:
        return all([await state_is(db, d, "delivered") for d in ids]) and await state_is(
            db, refused, "bounced"
        )

    await wait_until(done, 20, "the letters delivered and the unknown recipient bounced")
    await svc.stop()
    await dest.close()
    subjects = sorted(str(g.message["Subject"]) for g in rec.got if g.rcpt_tos == [INBOX])
    assert subjects == sorted(f"Lô {i}" for i in range(6)), "each delivered exactly once"
    kinds = [e.kind for e in await events(db, delivery_id=refused)]
    assert "bounced" in kinds


def test_pipelining_under_tls_on_both_event_loops(tmp_path):
    """Production runs on uvloop and the tests on asyncio's own loop: the transport handed
    over for a pipelined transaction (plain, then under STARTTLS) must work on both."""
    import uvloop

    ca, cert, key = tls_files(tmp_path / "tls")

    async def scenario() -> tuple[list[str], list[bool], list[str]]:
        rec = Recorder(pipelining=True, rcpt_script=["550 5.1.1 no such mailbox"])
        sink = await start_sink(rec, tls_context=server_tls_context(cert, key))
        contexts = await asyncio.to_thread(TlsContexts, str(ca))
        pool = Connections(idle=30)
        target = Target("127.0.0.1", sink.port, "verify")
        pool.want("k")
        pool.want("k")
        results = [
            await send_kept(
                pool, target, contexts, TIMEOUTS, sender=SENDER, recipient=INBOX, subject=f"Thư {n}"
            )
            for n in range(3)
        ]
        pool.unwant("k")
        pool.unwant("k")
        await pool.close(TIMEOUTS)
        await sink.close()
        subjects = [str(g.message["Subject"]) for g in rec.got]
        return [r.outcome for r in results], [r.tls for r in results], subjects

    for run in (asyncio.run, uvloop.run):
        outcomes, tls, subjects = run(scenario())
        assert outcomes == ["permanent", "delivered", "delivered"], run
        assert tls == [True, True, True]
        assert subjects == ["Thư 1", "Thư 2"]


async def test_an_address_that_cannot_go_on_a_command_line_is_refused_before_sending():
    rec = Recorder(pipelining=True)
    sink = await start_sink(rec)
    bad = await _send(sink.port, recipient="van thu@stttt.tayninh.gov.vn")
    again = await _send(sink.port, recipient="van thu@stttt.tayninh.gov.vn")
    good = await _send(sink.port)
    await sink.close()
    assert (bad.outcome, bad.status) == ("permanent", "5.1.3")
    assert bad.reply.startswith("bad address")
    assert again.outcome == "permanent", "a refused address is refused every time"
    assert good.outcome == "delivered"
    assert [g.rcpt_tos for g in rec.got] == [[INBOX]]
