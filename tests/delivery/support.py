"""Real SMTP servers for delivery tests, and rows put straight into the database.

A `Sink` is an aiosmtpd server on 127.0.0.1 (OS-picked port) in the test's own event loop.
It answers from a script ("451 ..." three times, then the default "250 ..."), can require a
delay or offer STARTTLS with a certificate from a throwaway CA, and records every DATA it saw.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import hashlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.smtp import SMTP
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import insert, select

from gateway.delivery.connections import Connections
from gateway.delivery.smtp import Result, Target, Timeouts, TlsContexts
from store.agencies import AgencyIn, upsert_agency
from store.db import Database
from store.models import Delivery, Event, Message


@dataclass
class Got:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    at: float
    reply: str

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.content, policy=email.policy.default)  # type: ignore[return-value]

    def header(self, name: str) -> str | None:
        v = self.message.get(name)
        return None if v is None else str(v)


@dataclass
class Recorder:
    """aiosmtpd handler: answers DATA from `script`, then `default`; records everything."""

    script: list[str] = field(default_factory=list)
    default: str = "250 2.0.0 Ok: queued"
    delay: float = 0.0
    got: list[Got] = field(default_factory=list)
    event: asyncio.Event = field(default_factory=asyncio.Event)
    peers: list[object] = field(default_factory=list)  # the client's (host, port) per DATA
    pipelining: bool = False  # offer PIPELINING in the EHLO reply, as Postfix does
    mail_script: list[str] = field(default_factory=list)  # replies to MAIL, then accept
    rcpt_script: list[str] = field(default_factory=list)  # replies to RCPT, then accept

    async def handle_EHLO(
        self, server: SMTP, session: object, envelope: object, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname  # type: ignore[attr-defined]
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: object, envelope: object, address: str, options: list[str]
    ) -> str:
        if self.mail_script:
            return self.mail_script.pop(0)
        envelope.mail_from = address  # type: ignore[attr-defined]
        envelope.mail_options.extend(options)  # type: ignore[attr-defined]
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: object, envelope: object, address: str, options: list[str]
    ) -> str:
        if self.rcpt_script:
            return self.rcpt_script.pop(0)
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
        envelope.rcpt_options.extend(options)  # type: ignore[attr-defined]
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
        self.peers.append(session.peer)  # type: ignore[attr-defined]
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.script.pop(0) if self.script else self.default
        self.got.append(
            Got(
                envelope.mail_from,  # type: ignore[attr-defined]
                list(envelope.rcpt_tos),  # type: ignore[attr-defined]
                envelope.content,  # type: ignore[attr-defined]
                time.monotonic(),
                reply,
            )
        )
        self.event.set()
        return reply

    def accepted(self) -> list[Got]:
        return [g for g in self.got if g.reply.startswith("2")]


class Sink:
    def __init__(self, recorder: Recorder, server: asyncio.Server) -> None:
        self.recorder = recorder
        self.server = server
        self.port: int = server.sockets[0].getsockname()[1]

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def route(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def got(self) -> list[Got]:
        return self.recorder.got

    async def close(self) -> None:
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), 5)


async def start_sink(
    recorder: Recorder | None = None,
    *,
    tls_context: ssl.SSLContext | None = None,
    idle_timeout: float = 300,
) -> Sink:
    rec = recorder or Recorder()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            rec,
            decode_data=False,
            hostname="sink.test",
            tls_context=tls_context,
            require_starttls=False,
            enable_SMTPUTF8=True,
            timeout=idle_timeout,  # the server closes a connection idle this long
        ),
        "127.0.0.1",
        0,
    )
    return Sink(rec, server)


async def send_kept(
    pool: Connections,
    target: Target,
    contexts: TlsContexts,
    timeouts: Timeouts,
    *,
    sender: str,
    recipient: str,
    subject: str,
) -> Result:
    """One letter through `pool`, whose callers count their deliveries under the key "k"."""
    return await pool.send(
        target,
        mail_from=sender,
        recipient=recipient,
        data=make_raw(subject=subject),
        helo="gw.test.gov.vn",
        timeouts=timeouts,
        contexts=contexts,
        destination="k",
    )


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """(ca.pem, cert.pem, key.pem): a throwaway CA and a server certificate for 127.0.0.1."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edocgw test sink CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


# -- database rows -------------------------------------------------------------------------


def make_raw(
    subject: str = "Công văn số 15/UBND-VP về việc kiểm thử chuyển văn bản",
    body: str = "Kính gửi: Sở Thông tin và Truyền thông\r\nNội dung kiểm thử.\r\n",
    *,
    sender: str = "vanthu@tayninh.gov.vn",
    to: str = "vanban@stttt.gov.vn",
    message_id: str | None = None,
    extra_headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = message_id or email.utils.make_msgid(domain="tayninh.gov.vn")
    for k, v in extra_headers:
        m[k] = v
    m.set_content(body)
    return m.as_bytes()


async def add_agency(
    db: Database, code: str, address: str, route: str = "mx", tls: str = "none"
) -> None:
    async with db.transaction() as s:
        await upsert_agency(
            s,
            AgencyIn(
                code=code,
                name=f"Cơ quan {code}",
                address=address,
                domains=[address.rpartition("@")[2]],
                route=route,
                tls=tls,
            ),
        )


async def put_message(
    db: Database,
    raw: bytes,
    deliveries: Iterable[tuple[str, str | None, int]],
    *,
    mail_from: str = "vanthu@tayninh.gov.vn",
    source: str = "smtp",
    subject: str | None = "Công văn số 15/UBND-VP",
    verdict: str | None = "valid",
) -> tuple[int, list[int]]:
    """A processed message with (recipient, agency_code, priority) deliveries, as routing makes."""
    async with db.transaction() as s:
        msg_id = (
            await s.execute(
                insert(Message)
                .values(
                    source=source,
                    peer="mail.tayninh.gov.vn [127.0.0.1]",
                    mail_from=mail_from,
                    rcpt_to=[r for r, _, _ in deliveries],
                    header_message_id=email.message_from_bytes(raw).get("Message-ID"),
                    header_from=mail_from,
                    subject=subject,
                    size=len(raw),
                    sha256=hashlib.sha256(raw).hexdigest(),
                    raw=raw,
                    state="processed",
                    verdict=verdict,
                )
                .returning(Message.id)
            )
        ).scalar_one()
        ids = []
        for rcpt, agency, priority in deliveries:
            ids.append(
                (
                    await s.execute(
                        insert(Delivery)
                        .values(
                            message_id=msg_id, recipient=rcpt, agency_code=agency, priority=priority
                        )
                        .returning(Delivery.id)
                    )
                ).scalar_one()
            )
    return msg_id, ids


async def delivery(db: Database, delivery_id: int) -> Delivery:
    async with db.transaction() as s:
        return (await s.execute(select(Delivery).where(Delivery.id == delivery_id))).scalar_one()


async def events(db: Database, **where: object) -> list[Event]:
    async with db.transaction() as s:
        q = select(Event).order_by(Event.id)
        for k, v in where.items():
            q = q.where(getattr(Event, k) == v)
        return list((await s.execute(q)).scalars())


async def internal_messages(db: Database) -> list[Message]:
    async with db.transaction() as s:
        q = select(Message).where(Message.source == "internal").order_by(Message.id)
        return list((await s.execute(q)).scalars())


async def wait_until(
    check: Callable[[], Awaitable[bool]], within: float, what: str, step: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(step)


async def state_is(db: Database, delivery_id: int, *states: str) -> bool:
    return (await delivery(db, delivery_id)).state in states
