"""Limits: message size (552 5.3.4), connections in total and per IP (421), timeouts (421)."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import ssl
import time
from datetime import timedelta

from config import Settings
from store.db import Database
from tests.smtp.clients import HOST, RawClient, Reply, raw_session, send, stored, stored_raw
from tests.smtp.conftest import PASSWORD, StartGateway

LIMIT = 4096


async def test_size_is_advertised_and_enforced(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    settings.smtp.max_message_size = LIMIT
    gw = await start_gateway()
    big = b"Subject: big\r\n\r\n" + b"y" * 78 + b"\r\n"
    big = big * (LIMIT // len(big) + 1)
    small = b"Subject: small\r\n\r\nfits\r\n"
    replies = await asyncio.to_thread(
        raw_session,
        gw.relay_port,
        [
            b"EHLO client.test\r\n",
            b"MAIL FROM:<a@a.test> SIZE=5000\r\n",  # declared too big: refused up front
            b"MAIL FROM:<a@a.test>\r\n",
            b"RCPT TO:<vanban@localhost>\r\n",
            b"DATA\r\n",
            big + b".\r\n",  # undeclared and too big: read to the end, then refused
            b"MAIL FROM:<a@a.test> SIZE=100\r\n",  # the session goes on
            b"RCPT TO:<vanban@localhost>\r\n",
            b"DATA\r\n",
            small + b".\r\n",
        ],
    )
    ehlo = replies[1]
    assert f"SIZE {LIMIT}" in ehlo.text and "8BITMIME" in ehlo.text and "SMTPUTF8" in ehlo.text
    assert (replies[2].code, replies[2].text[:5]) == (552, "5.3.4")
    assert [r.code for r in replies[3:6]] == [250, 250, 354]
    assert (replies[6].code, replies[6].text[:5]) == (552, "5.3.4")
    assert [r.code for r in replies[7:]] == [250, 250, 354, 250]
    assert await stored_raw(db) == [small]


async def test_huge_body_is_discarded_while_reading(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    """20 MB against a 4 KB limit: refused with 552 and never held in memory or stored."""
    settings.smtp.max_message_size = LIMIT
    gw = await start_gateway()
    chunk = (b"z" * 998 + b"\r\n") * 1000

    def run() -> Reply:
        c = RawClient(gw.relay_port)
        try:
            c.reply()
            for cmd in (b"HELO c", b"MAIL FROM:<a@a.test>", b"RCPT TO:<vanban@localhost>"):
                assert c.cmd(cmd).code == 250
            assert c.cmd(b"DATA").code == 354
            for _ in range(20):
                c.send(chunk)
            c.send(b".\r\n")
            return c.reply()
        finally:
            c.close()

    reply = await asyncio.to_thread(run)
    assert (reply.code, reply.text[:5]) == (552, "5.3.4")
    assert await stored(db) == []


def _greeting(port: int) -> tuple[socket.socket, bytes]:
    s = socket.create_connection((HOST, port), timeout=10)
    return s, s.recv(512)


async def _hold(port: int, n: int, held: list[socket.socket]) -> list[bytes]:
    greetings = []
    for _ in range(n):
        s, greet = await asyncio.to_thread(_greeting, port)
        held.append(s)
        greetings.append(greet)
    return greetings


async def test_connections_per_ip_and_in_total_are_limited_per_listener(
    settings: Settings, start_gateway: StartGateway
) -> None:
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]  # untrusted
    settings.smtp.max_connections_per_ip = 2
    settings.smtp.max_connections = 3
    gw = await start_gateway()
    held: list[socket.socket] = []
    try:
        assert all(g.startswith(b"220 ") for g in await _hold(gw.relay_port, 2, held))
        (greet,) = await _hold(gw.relay_port, 1, held)
        assert greet.startswith(b"421 4.7.0") and b"from your address" in greet
        # idle relay connections never lock staff out of submission
        assert all(g.startswith(b"220 ") for g in await _hold(gw.submission_port, 2, held))
        held.pop(0).close()
        held.pop(0).close()  # relay slots free again
        assert (await _hold(gw.relay_port, 1, held))[0].startswith(b"220 ")
    finally:
        for s in held:
            s.close()

    settings.smtp.max_connections_per_ip = 10
    gw = await start_gateway()
    held = []
    try:
        assert all(g.startswith(b"220 ") for g in await _hold(gw.relay_port, 3, held))
        (greet,) = await _hold(gw.relay_port, 1, held)
        assert greet.startswith(b"421 4.7.0 Too many connections")
        assert (await _hold(gw.submission_port, 1, held))[0].startswith(b"220 ")
    finally:
        for s in held:
            s.close()


async def test_clients_in_relay_networks_are_not_limited_per_address(
    settings: Settings, start_gateway: StartGateway
) -> None:
    """An agency's mail server (here 127.0.0.1, in the default relay_networks) opens many
    sessions at once: only the listener's total applies to it."""
    settings.smtp.max_connections_per_ip = 2
    settings.smtp.max_connections = 30
    gw = await start_gateway()
    held: list[socket.socket] = []
    try:
        greetings = await _hold(gw.relay_port, 25, held)
        assert all(g.startswith(b"220 ") for g in greetings), greetings
    finally:
        for s in held:
            s.close()


def _auth_and_hold(port: int) -> smtplib.SMTP:
    c = smtplib.SMTP(HOST, port, timeout=30)
    c.ehlo("client.test")
    c.starttls(context=ssl._create_unverified_context())
    c.ehlo("client.test")
    c.login("staff", PASSWORD)
    return c


async def test_authenticated_sessions_do_not_count_against_their_address(
    settings: Settings, users: None, start_gateway: StartGateway
) -> None:
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]  # untrusted
    settings.smtp.max_connections_per_ip = 1
    gw = await start_gateway()
    first = await asyncio.to_thread(_auth_and_hold, gw.submission_port)
    held: list[socket.socket] = []
    try:
        (greet,) = await _hold(gw.submission_port, 1, held)
        assert greet.startswith(b"220 "), greet
        (greet,) = await _hold(gw.submission_port, 1, held)  # the one unauthenticated slot is taken
        assert greet.startswith(b"421 4.7.0") and b"from your address" in greet
    finally:
        for s in held:
            s.close()
        await asyncio.to_thread(first.quit)


def _half_close_after(port: int, script: list[bytes]) -> bytes:
    """Send the script, shut down our side (FIN, no QUIT), read until the server closes."""
    s = socket.create_connection((HOST, port), timeout=15)
    try:
        s.recv(512)  # banner
        for line in script:
            s.sendall(line)
            time.sleep(0.2)
        s.shutdown(socket.SHUT_WR)
        rest = b""
        while chunk := s.recv(4096):
            rest += chunk
        return rest
    finally:
        s.close()


async def test_a_half_closed_connection_stops_counting_at_once(
    settings: Settings, start_gateway: StartGateway
) -> None:
    """A client that shuts down its side without QUIT frees its slot when its FIN arrives (the
    server closes too), not when the command timeout ends a socket left in CLOSE-WAIT."""
    settings.smtp.relay_networks = ["10.99.0.0/16"]  # type: ignore[list-item]  # untrusted
    settings.smtp.max_connections_per_ip = 1
    gw = await start_gateway()
    scripts = [
        [],  # idle after the banner
        [b"EHLO c\r\n"],
        [b"EHLO c\r\nMAIL FROM:<a@a.test>\r\nRCPT TO:<vanban@localhost>\r\nDATA\r\n", b"Subj"],
        [b"EHLO c\r\nSTARTTLS\r\n"],  # gone before the TLS handshake
    ]
    for script in scripts:
        await asyncio.to_thread(_half_close_after, gw.relay_port, script)
        s, greet = await asyncio.to_thread(_greeting, gw.relay_port)
        s.close()
        assert greet.startswith(b"220 "), (script, greet)


def _wait_for_close(port: int, script: list[bytes]) -> tuple[list[bytes], float]:
    """Send the script, then read everything until the server closes; returns lines, seconds.
    The read waits up to 120 s: a hang detector, far above what a loaded machine adds to a
    1 s timeout."""
    s = socket.create_connection((HOST, port), timeout=120)
    try:
        t0 = time.monotonic()
        for line in script:
            s.sendall(line)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data.split(b"\r\n"), time.monotonic() - t0
    finally:
        s.close()


async def test_idle_session_gets_421_and_is_closed(
    settings: Settings, start_gateway: StartGateway
) -> None:
    settings.smtp.command_timeout = timedelta(seconds=1)
    gw = await start_gateway()
    lines, took = await asyncio.to_thread(_wait_for_close, gw.relay_port, [b"EHLO c\r\n"])
    assert any(x.startswith(b"421 4.4.2") for x in lines), lines
    assert took > 0.9, "not before the command timeout"


async def test_stalled_data_gets_421_and_nothing_is_stored(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    # The command timeout (1 h) cannot end this session while the test waits: the 421 can
    # only come from the 1 s data timeout.
    settings.smtp.command_timeout = timedelta(hours=1)
    settings.smtp.data_timeout = timedelta(seconds=1)
    gw = await start_gateway()
    script = [b"HELO c\r\nMAIL FROM:<a@a.test>\r\nRCPT TO:<vanban@localhost>\r\nDATA\r\n"]
    script.append(b"Subject: never finished\r\n\r\nhalf a body")  # and then nothing
    lines, _ = await asyncio.to_thread(_wait_for_close, gw.relay_port, script)
    assert any(x.startswith(b"354") for x in lines)
    assert any(x.startswith(b"421 4.4.2") for x in lines), lines
    assert await stored(db) == []


async def test_a_slow_but_steady_upload_is_not_cut_by_the_command_timeout(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    settings.smtp.command_timeout = timedelta(seconds=1)  # DATA has its own, longer timeout
    gw = await start_gateway()

    def run() -> Reply:
        c = RawClient(gw.relay_port)
        try:
            c.reply()
            for cmd in (b"HELO c", b"MAIL FROM:<a@a.test>", b"RCPT TO:<vanban@localhost>"):
                c.cmd(cmd)
            assert c.cmd(b"DATA").code == 354
            c.send(b"Subject: slow\r\n\r\n")
            for _ in range(6):
                time.sleep(0.3)
                c.send(b"a line\r\n")
            c.send(b".\r\n")
            return c.reply()
        finally:
            c.close()

    assert (await asyncio.to_thread(run)).code == 250
    assert len(await stored(db)) == 1


async def test_unknown_and_bad_commands_get_clear_answers(
    settings: Settings, start_gateway: StartGateway
) -> None:
    gw = await start_gateway()
    replies = await asyncio.to_thread(
        raw_session,
        gw.relay_port,
        [
            b"EHLO c\r\n",
            b"XYZZY\r\n",
            b"MAIL FROM:<a\x01b@a.test>\r\n",
            b"MAIL FROM:<a@a.test>\r\n",
            b"RCPT TO:<not an address>\r\n",
            b"DATA\r\n",
            b"MAIL FROM:<" + b"a" * 600 + b"@a.test>\r\n",
        ],
    )
    assert [r.code for r in replies] == [220, 250, 500, 553, 250, 553, 503, 500]
    _ = await send(gw.relay_port, ["vanban@localhost"])  # still serving


async def test_memory_budget_across_sessions_answers_452_then_recovers(
    settings: Settings, db: Database, start_gateway: StartGateway
) -> None:
    """Sessions share one budget of DATA bytes in memory: past it, 452 (try later), not OOM."""
    settings.smtp.max_message_size = 64 * 1024
    settings.smtp.data_memory_budget = 100 * 1024
    gw = await start_gateway()
    line = b"x" * 998 + b"\r\n"

    def open_data(c: RawClient) -> None:
        c.reply()
        for cmd in (b"HELO c", b"MAIL FROM:<a@a.test>", b"RCPT TO:<vanban@localhost>"):
            assert c.cmd(cmd).code == 250
        assert c.cmd(b"DATA").code == 354

    def run() -> tuple[Reply, Reply, Reply, int]:
        a, b = RawClient(gw.relay_port), RawClient(gw.relay_port)
        try:
            open_data(a)
            a.send(b"Subject: a\r\n\r\n" + line * 60)  # ~60 KB held, not finished
            time.sleep(0.5)
            open_data(b)
            b.send(b"Subject: b\r\n\r\n" + line * 50 + b".\r\n")  # would pass 100 KB in all
            refused = b.reply()
            a.send(b".\r\n")
            accepted = a.reply()
            assert b.cmd(b"MAIL FROM:<a@a.test>").code == 250  # the client retries
            assert b.cmd(b"RCPT TO:<vanban@localhost>").code == 250
            assert b.cmd(b"DATA").code == 354
            b.send(b"Subject: b\r\n\r\n" + line * 50 + b".\r\n")
            retried = b.reply()
            return refused, accepted, retried, gw.budget.used
        finally:
            a.close()
            b.close()

    refused, accepted, retried, used_after = await asyncio.to_thread(run)
    assert (refused.code, refused.text[:5]) == (452, "4.3.1")
    assert (accepted.code, retried.code) == (250, 250)
    assert used_after == 0
    assert sorted(m.subject for m in await stored(db)) == ["a", "b"]
