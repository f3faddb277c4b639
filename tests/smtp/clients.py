"""Real SMTP clients for the tests (smtplib, a raw socket, swaks) and reading stored rows.

The listener runs in the test's event loop, so the blocking clients run in a worker thread.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import smtplib
import socket
import ssl
import subprocess
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import undefer

from store.db import Database
from store.models import Event, Message

HOST = "127.0.0.1"
TIMEOUT = 15


@dataclass
class Reply:
    code: int
    text: str


def plain_message(subject: str = "Test", body: str = "Nội dung.\r\n", msgid: str = "") -> bytes:
    head = f"From: a@a.test\r\nTo: vanban@localhost\r\nSubject: {subject}\r\n"
    if msgid:
        head += f"Message-ID: <{msgid}>\r\n"
    return (head + "\r\n" + body).encode("utf-8")


def _send(
    port: int,
    mail_from: str,
    rcpts: list[str],
    data: bytes,
    starttls: bool,
    login: tuple[str, str] | None,
    mail_options: list[str],
) -> tuple[dict[str, Reply], Reply]:
    """Returns the per-recipient refusals and the DATA reply (code 0 if DATA was not sent)."""
    with smtplib.SMTP(HOST, port, timeout=TIMEOUT) as c:
        c.ehlo("client.test")
        if starttls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c.starttls(context=ctx)
            c.ehlo("client.test")
        if login:
            c.login(*login)
        code, text = c.mail(mail_from, mail_options)
        if code != 250:
            return {}, Reply(code, text.decode())
        refused: dict[str, Reply] = {}
        for r in rcpts:
            code, text = c.rcpt(r)
            if code not in (250, 251):
                refused[r] = Reply(code, text.decode())
        if len(refused) == len(rcpts):
            return refused, Reply(0, "")
        code, text = c.data(data)
        return refused, Reply(code, text.decode())


async def send(
    port: int,
    rcpts: list[str],
    data: bytes | None = None,
    mail_from: str = "sender@a.test",
    starttls: bool = False,
    login: tuple[str, str] | None = None,
    mail_options: list[str] | None = None,
) -> tuple[dict[str, Reply], Reply]:
    return await asyncio.to_thread(
        _send,
        port,
        mail_from,
        rcpts,
        data if data is not None else plain_message(),
        starttls,
        login,
        mail_options or [],
    )


def _rcpt_reply(port: int, rcpt: str, mail_from: str) -> Reply:
    with smtplib.SMTP(HOST, port, timeout=TIMEOUT) as c:
        c.ehlo("client.test")
        code, text = c.mail(mail_from)
        assert code == 250, (code, text)
        code, text = c.docmd("RCPT", f"TO:{rcpt}")
        return Reply(code, text.decode())


async def rcpt_reply(port: int, rcpt: str, mail_from: str = "sender@a.test") -> Reply:
    """The reply to `RCPT TO:<rcpt>` sent verbatim (so odd syntax reaches the server as is)."""
    return await asyncio.to_thread(_rcpt_reply, port, rcpt, mail_from)


class RawClient:
    """A socket client that sends exactly the bytes given (for smuggling and byte-exact tests)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.buf = b""

    def reply(self) -> Reply:
        """One (possibly multi-line) reply."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed; got {lines!r} {self.buf!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return Reply(int(line[:3]), "\n".join(x[4:] for x in lines))

    def cmd(self, line: bytes) -> Reply:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()


def raw_session(port: int, script: list[bytes | tuple[bytes, int]]) -> list[Reply]:
    """Greeting, then each item: bytes sent as is and one reply read; (bytes, n) reads n."""
    c = RawClient(port)
    try:
        replies = [c.reply()]
        for item in script:
            data, n = item if isinstance(item, tuple) else (item, 1)
            c.send(data)
            replies.extend(c.reply() for _ in range(n))
        return replies
    finally:
        c.close()


@functools.cache
def swaks_can_tls(exe: str = "swaks") -> bool:
    """swaks does STARTTLS only with Net::SSLeay (Debian libnet-ssleay-perl, a mere Recommends
    of swaks): without it the TLS tests fail now and then with a misleading reply."""
    out = subprocess.run([exe, "--support"], capture_output=True, text=True, timeout=30)
    return "=== TLS supported" in out.stdout + out.stderr


async def swaks(*args: str, limit: float = 30) -> tuple[int, str]:
    exe = shutil.which("swaks")
    assert exe, "swaks is not installed (Debian package swaks)"
    if any(a.startswith(("--tls", "-tls")) for a in args):
        can = await asyncio.to_thread(swaks_can_tls, exe)
        assert can, "swaks cannot do TLS: install libnet-ssleay-perl (make debs does)"
    proc = await asyncio.create_subprocess_exec(
        exe,
        "--server",
        HOST,
        "--timeout",
        "15",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), limit)
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace")


async def stored(db: Database) -> list[Message]:
    async with db.sessions() as s:
        q = select(Message).options(undefer(Message.raw)).order_by(Message.id)
        return list((await s.scalars(q)).all())


async def stored_raw(db: Database) -> list[bytes]:
    async with db.sessions() as s:
        return list((await s.scalars(select(Message.raw).order_by(Message.id))).all())


async def events_for(db: Database, message_id: int) -> list[Event]:
    async with db.sessions() as s:
        q = select(Event).where(Event.message_id == message_id).order_by(Event.id)
        return list((await s.scalars(q)).all())
