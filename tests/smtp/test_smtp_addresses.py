"""The listener's shortcuts must change no answer: `<plain@address>` parsed as the RFC 5322
parser parses it, and session set-up finding the same AUTH mechanisms as stock aiosmtpd.

The relay matrix (test_smtp_relay.py) checks what those answers mean on a real listener; this
checks, over many generated MAIL/RCPT arguments, that the shortcut never changes an answer.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.smtp import SmtpListener
from gateway.smtp.authlimit import ConnectionLimiter
from gateway.smtp.handler import Handler
from gateway.smtp.protocol import _PLAIN_ANGLE, GatewaySMTP
from tests.smtp.clients import raw_session

ATOMS = st.text("abcXYZ019_+=-%!đ", min_size=1, max_size=6)
PIECES = st.sampled_from(["<", ">", "@", ".", " ", "\t", "(c)", '"', ":", ",", "[1.2.3.4]"])


def _listener(limit: int) -> GatewaySMTP:
    smtp = object.__new__(GatewaySMTP)  # only _getaddr's state: no server behind it
    smtp.local_part_limit = limit
    return smtp


def _reference(smtp: GatewaySMTP, arg: str) -> tuple[str | None, str | None]:
    """The answer without the shortcut: aiosmtpd's parser (the trailing-dot repair only runs
    when that parser fails, which it never does for what the shortcut accepts)."""
    return SMTP._getaddr(smtp, arg)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(ATOMS, PIECES), max_size=12).map("".join), st.sampled_from([0, 3, 64]))
@example("<a@b> SIZE=5", 0)
@example("<a.b-c+d=e@x-y.gov.vn>  BODY=8BITMIME", 0)
@example("<a@b> (comment) SIZE=5", 0)
@example("<abcd@b>", 3)
@example("<a..b@c>", 0)
@example("<a@b-.c>", 0)
def test_plain_address_shortcut_agrees_with_the_parser(arg: str, limit: int) -> None:
    smtp = _listener(limit)
    got = smtp._getaddr(arg)  # never raises, whatever the client sends
    if _PLAIN_ANGLE.match(arg):
        assert got == _reference(smtp, arg)


def test_the_shortcut_takes_the_common_shapes() -> None:
    """Not vacuous: the usual envelope addresses do take the fast path."""
    for arg in ("<vanthu@tayninh.gov.vn>", "<a.b+c@x-y.example> SIZE=1024 BODY=8BITMIME"):
        assert _PLAIN_ANGLE.match(arg)
        assert _listener(64)._getaddr(arg) == _reference(_listener(64), arg)


@pytest.mark.parametrize("arg", ["<", "<a@", "<@", '"', '<"'])
async def test_truncated_addresses_are_malformed_not_a_server_error(
    gw: SmtpListener, arg: str
) -> None:
    """aiosmtpd's parser raises IndexError on these; the client must get 553, not 451."""
    replies = await asyncio.to_thread(
        raw_session,
        gw.relay_port,
        [
            b"EHLO client.test\r\n",
            b"MAIL FROM:" + arg.encode() + b"\r\n",
            b"MAIL FROM:<vanthu@a.test>\r\n",
            b"RCPT TO:" + arg.encode() + b"\r\n",
        ],
    )
    assert [r.code for r in replies] == [220, 250, 553, 250, 553]


async def test_session_setup_finds_the_same_auth_mechanisms(gw: SmtpListener) -> None:
    """GatewaySMTP swaps aiosmtpd's per-session inspect.getmembers() for a cached lookup of
    the auth_* names; the mechanism table must be what the full listing gives."""
    assert gw._shared is not None
    handler = Handler("submission", gw._shared)
    smtp = GatewaySMTP(
        handler,
        limiter=ConnectionLimiter(10, 10),
        sessions=set(),
        data_timeout=60,
        hostname="gw.test",
        auth_required=True,
        auth_require_tls=True,
        loop=asyncio.get_running_loop(),
    )
    expected = {
        getattr(f, "__auth_mechanism_name__", n.replace("auth_", "").replace("__", "-")): (
            f,
            obj is smtp,
        )
        for obj in (smtp, handler)
        for n, f in inspect.getmembers(obj)  # the real module: the full listing
        if n.startswith("auth_")
    }
    got = {name: (m.method, m.is_builtin) for name, m in smtp._auth_methods.items()}
    assert got == expected
    assert {"PLAIN", "LOGIN"} <= got.keys() and not got["PLAIN"][1]  # the handler's own
