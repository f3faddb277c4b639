"""The delivery's DATA in slices: the same bytes on the wire as aiosmtplib's `data()`, to a
real server, without copying the whole message several times over."""

from __future__ import annotations

import asyncio
import shutil
import tracemalloc

import aiosmtplib
import pytest
from aiosmtpd.controller import Controller
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.delivery.wire import Outgoing, send_data, wire_slices
from tests.support.postfix import free_port, wait_port

PIECES = [b"a", b"b c", b".", b"..", b"\r", b"\n", b"\r\n", b"\x00", b"\xff", b"\r\n.\r\n"]


def aiosmtplib_wire(data: bytes) -> bytes:
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(data)) + b".\r\n"


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=60), st.integers(1, 12))
def test_slices_join_to_what_aiosmtplib_sends(pieces: list[bytes], size: int) -> None:
    data = b"".join(pieces)
    assert b"".join(wire_slices(data, size)) == aiosmtplib_wire(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(PIECES), max_size=20), max_size=4), st.integers(1, 12))
def test_a_message_in_pieces_goes_out_as_the_joined_bytes(parts: list[list[bytes]], size: int):
    """Each piece starts a line (trace headers, the signature, the stored message)."""
    lines = [b"".join(p) + b"\r\n" for p in parts]
    assert b"".join(wire_slices(Outgoing(*lines), size)) == aiosmtplib_wire(b"".join(lines))


class Recorder:
    def __init__(self) -> None:
        self.got: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: ANN001
        self.got.append(envelope.original_content)
        return "250 2.0.0 Ok"


@pytest.fixture
def sink():  # noqa: ANN201
    rec = Recorder()
    ctl = Controller(rec, hostname="127.0.0.1", port=free_port(), decode_data=False)
    ctl.start()
    yield ctl, rec
    ctl.stop()


async def _ours_then_data(port: int, data: Outgoing | bytes) -> None:
    """*data* sent with `send_data`, then with aiosmtplib's own `data()`, on one session."""
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
    await client.connect()
    try:
        for ours in (True, False):
            await client.mail("a@tayninh.gov.vn")
            await client.rcpt("b@dich.gov.vn")
            resp = await (send_data(client, data, 30) if ours else client.data(bytes(data)))
            assert resp.code == 250
    finally:
        await client.quit()


async def test_a_server_receives_what_data_would_deliver(sink) -> None:  # noqa: ANN001
    ctl, rec = sink
    body = b"".join(
        b".leading dot %d\r\nbare LF %d\nlone CR %d\r" % (i, i, i) for i in range(60_000)
    )
    raw = b"Subject: big\r\n\r\n" + body + b"no final newline"
    await _ours_then_data(ctl.port, raw)
    assert len(rec.got) == 2 and rec.got[0] == rec.got[1]
    assert rec.got[0].startswith(b"Subject: big\r\n\r\n.leading dot 0\r\nbare LF 0\r\n")


async def test_pieces_of_every_size_arrive_as_one_message(sink) -> None:  # noqa: ANN001
    """Signature and trace headers, a body longer than one write and a short tail: sent in
    grouped writes, the server gets what `data()` of the joined message gives it."""
    ctl, rec = sink
    body = b"".join(b".line %d of the body\r\n" % i for i in range(120_000))
    msg = Outgoing(
        b"DKIM-Signature: v=1\r\n", b"Received: by x\r\n", b"Subject: s\r\n\r\n", body, b"tail"
    )
    await _ours_then_data(ctl.port, msg)
    assert len(rec.got) == 2 and rec.got[0] == rec.got[1]
    assert rec.got[0].endswith(b".line 119999 of the body\r\ntail\r\n")


async def test_a_refused_message_raises_as_data_does(sink) -> None:  # noqa: ANN001
    ctl, rec = sink

    async def refuse(server, session, envelope) -> str:  # noqa: ANN001
        return "554 5.6.0 refused"

    ctl.handler.handle_DATA = refuse
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=ctl.port, timeout=30, start_tls=False)
    await client.connect()
    try:
        await client.mail("a@tayninh.gov.vn")
        await client.rcpt("b@dich.gov.vn")
        with pytest.raises(aiosmtplib.SMTPDataError) as e:
            await send_data(client, b"Subject: x\r\n\r\nx\r\n", 30)
        assert e.value.code == 554
    finally:
        await client.quit()


async def test_sending_holds_slices_not_copies_of_the_message() -> None:
    """aiosmtplib's data() peaks near 4-5x the message; slices keep it a small fraction.
    The server is Postfix's smtp-sink, another process, so only the sending is traced."""
    port = free_port()
    sink = await asyncio.create_subprocess_exec(
        shutil.which("smtp-sink") or "/usr/sbin/smtp-sink",
        "-u",
        "nobody",
        f"127.0.0.1:{port}",
        "50",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert await asyncio.to_thread(wait_port, port, 10), "smtp-sink did not start"
        raw = b"Subject: big\r\n\r\n" + b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n" * 800_000
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
        await client.connect()
        try:
            await client.mail("a@tayninh.gov.vn")
            await client.rcpt("b@dich.gov.vn")
            tracemalloc.start()
            try:
                base = tracemalloc.get_traced_memory()[0]
                resp = await send_data(client, raw, 30)
                peak = tracemalloc.get_traced_memory()[1] - base
            finally:
                tracemalloc.stop()
            assert resp.code == 250
        finally:
            await client.quit()
    finally:
        sink.terminate()
        await asyncio.wait_for(sink.wait(), 10)
    # measured about 10 MB whatever the size (1 MiB slices, their regex work, the transport's
    # buffer); aiosmtplib's data() takes 4-5 copies of the 30 MB message
    assert peak < len(raw) / 2, f"sending peaked at {peak / len(raw):.2f}x the message"
