"""One SMTP transaction to one destination server, with every wait bounded.

The answer is a `Result`: delivered (2xx after DATA), temporary (4xx, timeouts, refused
connections, a TLS policy the server cannot meet) or permanent (5xx). `unreachable` marks
failures of the server itself rather than of this message, which count towards pausing the
destination. An LMTP target (RFC 2033) differs only in its greeting, LHLO instead of EHLO:
with one recipient per delivery the one reply after DATA is that recipient's.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

from gateway.delivery import pipelining
from gateway.delivery.wire import Data, send_data

Outcome = Literal["delivered", "temporary", "permanent"]
TLS_REQUIRED = ("verify", "encrypt")
_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")
_SESSION_STAGES = ("the greeting", "EHLO", "LHLO", "STARTTLS")


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    tls: str  # verify | encrypt | may | none
    lmtp: bool = False  # speak LMTP (LHLO) to a final mail store

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    code: int | None
    reply: str
    host: str = ""
    tls: bool = False
    unreachable: bool = False
    status: str = ""
    text: str = ""  # the server's own reply text (for a DSN's Diagnostic-Code)
    extra: tuple[tuple[str, str], ...] = ()  # more for the delivery's events (an invitation's UID)

    @property
    def diagnostic(self) -> str:
        return f"{self.code} {self.text}" if self.code and self.text else self.reply

    def __post_init__(self) -> None:
        if not self.status:
            default = {"delivered": "2.0.0", "temporary": "4.0.0", "permanent": "5.0.0"}
            object.__setattr__(self, "status", default[self.outcome])


@dataclass(frozen=True)
class Timeouts:
    connect: float
    command: float


class TlsContexts:
    """SSL contexts built once (loading the system CA store is slow and blocking)."""

    def __init__(self, ca_file: str = "") -> None:
        self.verify = ssl.create_default_context()
        if ca_file:
            self.verify.load_verify_locations(ca_file)
        self.noverify = ssl.create_default_context()
        self.noverify.check_hostname = False
        self.noverify.verify_mode = ssl.CERT_NONE

    def for_policy(self, policy: str) -> ssl.SSLContext:
        return self.verify if policy == "verify" else self.noverify


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]


def _from_response(code: int, text: str, target: Target, stage: str, tls: bool) -> Result:
    one = _one_line(text)
    reply = f"{target.name} said: {code} {one} (in reply to {stage})"
    m = _ENHANCED.match(text.strip())
    status = m.group(0) if m and m.group(1) == str(code)[0] else ""
    if 200 <= code < 300:
        return Result("delivered", code, reply, target.name, tls, status=status, text=one)
    if 400 <= code < 500 or stage in _SESSION_STAGES:
        # A 5xx before MAIL FROM is about the session, not this message: try again later.
        return Result(
            "temporary",
            code,
            reply,
            target.name,
            tls,
            unreachable=code == 421 or stage in _SESSION_STAGES,
            status=status if code < 500 else "4.4.0",
            text=one,
        )
    return Result("permanent", code, reply, target.name, tls, status=status, text=one)


def _temporary(target: Target, text: str, tls: bool = False, status: str = "4.4.1") -> Result:
    return Result(
        "temporary",
        None,
        f"{target.name}: {text}",
        target.name,
        tls,
        unreachable=True,
        status=status,
    )


def _needs_utf8(*addresses: str) -> bool:
    return any(not a.isascii() for a in addresses)


async def send(
    target: Target,
    *,
    mail_from: str,
    recipient: str,
    data: Data,
    helo: str,
    timeouts: Timeouts,
    contexts: TlsContexts,
) -> Result:
    """Deliver `data` to `recipient` at `target` on a connection of its own; never raises
    (except cancellation)."""
    opened = await open_session(target, helo=helo, timeouts=timeouts, contexts=contexts)
    if isinstance(opened, Result):
        return opened
    try:
        result, reusable = await transact(
            opened, mail_from=mail_from, recipient=recipient, data=data, timeouts=timeouts
        )
        if reusable:
            await _quit(opened.client, timeouts.command)
        return result
    finally:
        opened.client.close()


@dataclass
class Session:
    """An open SMTP/LMTP session, greeted (and under TLS when the policy asks for it)."""

    client: aiosmtplib.SMTP
    target: Target
    tls: bool
    uses: int = 0  # transactions started on it
    stage: str = ""  # where the last transaction stopped
    clean: bool = True  # no transaction left open (the last one reached its end of DATA)


async def open_session(
    target: Target, *, helo: str, timeouts: Timeouts, contexts: TlsContexts
) -> Session | Result:
    """Connect, greet and STARTTLS per `target.tls`; a failure is a `Result` (the client is
    closed then). Never raises (except cancellation)."""
    client = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        local_hostname=helo,
        timeout=timeouts.command,
        start_tls=False,
    )
    stage = "connect"
    tls = False
    t = timeouts.command
    ok = False
    try:
        try:
            await asyncio.wait_for(client.connect(timeout=timeouts.connect), timeouts.connect)
        except (TimeoutError, aiosmtplib.SMTPConnectTimeoutError):
            return _temporary(
                target, f"connect timed out after {timeouts.connect:g}s", status="4.4.2"
            )
        except aiosmtplib.SMTPConnectResponseError as e:
            return _from_response(e.code, e.message, target, "the greeting", False)
        except (aiosmtplib.SMTPConnectError, OSError) as e:
            return _temporary(target, f"connect failed: {_one_line(str(e)) or type(e).__name__}")
        stage = "LHLO" if target.lmtp else "EHLO"
        await _hello(client, t, target.lmtp)
        if client.supports_extension("starttls") and target.tls != "none":
            stage = "STARTTLS"
            try:
                await client.starttls(
                    tls_context=contexts.for_policy(target.tls),
                    server_hostname=target.host,
                    timeout=t,
                )
            except ssl.SSLCertVerificationError as e:
                return _temporary(
                    target,
                    f"TLS certificate verification failed ({_one_line(e.verify_message or str(e))})",
                    status="4.7.5",
                )
            except ssl.SSLError as e:
                return _temporary(
                    target, f"TLS handshake failed ({_one_line(str(e))})", status="4.7.5"
                )
            tls = True
            stage = "LHLO" if target.lmtp else "EHLO"
            await _hello(client, t, target.lmtp)
        elif target.tls in TLS_REQUIRED:
            return _temporary(
                target,
                f"STARTTLS is required by TLS policy '{target.tls}' but the server does not "
                "offer it; not sent in clear text",
                status="4.7.4",
            )
        ok = True
        return Session(client, target, tls)
    except aiosmtplib.SMTPResponseException as e:
        await _quit(client, t)
        return _from_response(e.code, e.message, target, stage, tls)
    except (TimeoutError, aiosmtplib.SMTPTimeoutError):
        return _temporary(
            target, f"timed out after {t:g}s waiting for the reply to {stage}", tls, "4.4.2"
        )
    except (aiosmtplib.SMTPServerDisconnected, ConnectionError, OSError) as e:
        return _temporary(
            target, f"connection lost during {stage} ({_one_line(str(e))})", tls, "4.4.2"
        )
    except aiosmtplib.SMTPException as e:
        return _temporary(target, f"SMTP error during {stage}: {_one_line(str(e))}", tls, "4.0.0")
    finally:
        if not ok:
            client.close()


async def transact(
    session: Session, *, mail_from: str, recipient: str, data: Data, timeouts: Timeouts
) -> tuple[Result, bool]:
    """One mail transaction (MAIL, RCPT, DATA) on an open session. Returns the result and
    whether the session is still in step with the server (it answered every command, and
    not with 421), so it may carry another transaction after RSET or be closed with QUIT.
    Never raises (except cancellation); never closes the client."""
    client, target, tls = session.client, session.target, session.tls
    session.uses += 1
    session.clean = False
    stage = session.stage = "MAIL FROM"
    t = timeouts.command
    try:
        options = []
        if client.supports_extension("size"):
            options.append(f"SIZE={len(data)}")
        if not data.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        encoding = "ascii"
        if _needs_utf8(mail_from, recipient):
            if not client.supports_extension("smtputf8"):
                return Result(
                    "permanent",
                    None,
                    f"{target.name}: an internationalised address needs SMTPUTF8, "
                    "which the server does not offer",
                    target.name,
                    tls,
                    status="5.6.7",
                ), True
            options.append("SMTPUTF8")
            encoding = "utf-8"
        if pipelining.can_pipeline(client):
            mail = pipelining.command("MAIL FROM", mail_from, options, encoding)
            rcpt = pipelining.command("RCPT TO", recipient, [], encoding)
            progress = [stage]
            try:
                stop = await pipelining.transaction(client, mail, rcpt, data, t, progress)
            finally:
                stage = session.stage = progress[0]
            session.stage, session.clean = stop.stage, stop.clean
            reply = stop.reply
            return _from_response(reply.code, reply.message, target, stop.stage, tls), (
                reply.code != 421
            )
        await client.mail(mail_from, options=options, encoding=encoding, timeout=t)
        stage = session.stage = "RCPT TO"
        await client.rcpt(recipient, encoding=encoding, timeout=t)
        stage = session.stage = "end of DATA"
        resp = await send_data(client, data, t)
        session.clean = True
        return _from_response(resp.code, resp.message, target, stage, tls), True
    except aiosmtplib.SMTPResponseException as e:
        session.clean = stage == "end of DATA"
        # 421: the server is closing; -1: a reply that could not be read (out of step)
        return _from_response(e.code, e.message, target, stage, tls), e.code not in (421, -1)
    except (TimeoutError, aiosmtplib.SMTPTimeoutError):
        return _temporary(
            target, f"timed out after {t:g}s waiting for the reply to {stage}", tls, "4.4.2"
        ), False
    except (aiosmtplib.SMTPServerDisconnected, ConnectionError, OSError) as e:
        return _temporary(
            target, f"connection lost during {stage} ({_one_line(str(e))})", tls, "4.4.2"
        ), False
    except aiosmtplib.SMTPException as e:
        return _temporary(
            target, f"SMTP error during {stage}: {_one_line(str(e))}", tls, "4.0.0"
        ), False
    except ValueError as e:  # an address that cannot go on an SMTP command line
        return Result(
            "permanent", None, f"bad address: {_one_line(str(e))}", target.name, tls, status="5.1.3"
        ), True


async def _hello(client: aiosmtplib.SMTP, seconds: float, lmtp: bool = False) -> None:
    if lmtp:  # LMTP has no HELO fallback; a refused LHLO is an SMTPResponseException
        assert client.local_hostname is not None
        resp = await client.execute_command(
            b"LHLO", client.local_hostname.encode("ascii"), timeout=seconds
        )
        if resp.code != 250:
            raise aiosmtplib.SMTPHeloError(resp.code, resp.message)
        client.last_ehlo_response = resp  # parses the extensions (STARTTLS, SIZE, 8BITMIME)
        return
    try:
        await client.ehlo(timeout=seconds)
    except aiosmtplib.SMTPHeloError:
        await client.helo(timeout=seconds)


async def _quit(client: aiosmtplib.SMTP, seconds: float) -> None:
    try:
        await client.quit(timeout=min(seconds, 10))
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        pass
