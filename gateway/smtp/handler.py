"""The aiosmtpd handler: sender and recipient checks, AUTH, and the durable DATA answer.

One handler per listener (relay, submission); they share the directory, the committer and the
rate limiters. The 250 after DATA is sent only once the message's row is committed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass
from ipaddress import ip_network
from typing import Any

from aiosmtpd.smtp import MISSING, AuthResult, Envelope, Session

from config import Settings
from gateway import metrics
from gateway.delivery.route import MxResolver
from gateway.senderauth import policy as auth_policy
from gateway.senderauth.check import check_sender as check_sender_auth
from gateway.senderauth.results import AuthResults
from gateway.smtp.auth import SubmitAuthenticator
from gateway.smtp.authlimit import AuthFailures
from gateway.smtp.commit import CommitError, Committer
from gateway.smtp.directory import Directory
from gateway.smtp.headers import header_facts
from gateway.smtp.inflow import InFlow
from gateway.smtp.protocol import peer_ip
from gateway.smtp.relay import check_recipient, check_sender, client_may_relay
from store.messages import NewMessage

log = logging.getLogger("edocgw.smtp")

MAX_RECIPIENTS = 1000


@dataclass
class Shared:
    """What both listeners' handlers use."""

    settings: Settings
    directory: Directory
    committer: Committer
    authenticator: SubmitAuthenticator
    auth_failures: AuthFailures
    resolver: MxResolver | None = None  # the gateway's DNS resolver, for sender checks
    inflow: InFlow | None = None  # paces new transactions while the pipeline is behind


class Handler:
    def __init__(self, listener: str, shared: Shared) -> None:
        self.listener = listener
        self.shared = shared
        # defaults are not validated by pydantic, so a network may still be a string here
        self.networks = [
            ip_network(str(n), strict=False) for n in shared.settings.smtp.relay_networks
        ]

    # -- envelope ------------------------------------------------------------------------------

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = check_sender(address, bool(envelope.smtp_utf8))
        if refusal:
            return refusal
        if self.shared.inflow is not None:
            await self.shared.inflow.wait()
        envelope.mail_from = address  # "<>" for the null sender (kept truthy for aiosmtpd)
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        may_relay = client_may_relay(
            peer_ip(session.peer), self.networks, bool(session.authenticated)
        )
        try:
            local = await self.shared.directory.get()
        except Exception as e:
            log.warning("recipient look-up failed", extra={"error": repr(e)[:300]})
            return "451 4.3.0 Temporary recipient look-up failure, try again later"
        refusal = check_recipient(address, local, may_relay, bool(envelope.smtp_utf8))
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content
        assert isinstance(raw, bytes)
        facts = header_facts(raw)
        mail_from = envelope.mail_from or ""
        auth_user = session.auth_data if isinstance(session.auth_data, str) else None
        auth: AuthResults | None = None
        if self._checks_sender(session):
            auth = await self._check_sender(raw, session, mail_from)
            refusal = auth_policy.smtp_refusal(auth)
            if refusal:
                log.info(
                    "message refused after sender checks",
                    extra={"peer": peer_ip(session.peer), "reply": refusal, **auth.to_dict()},
                )
                return refusal
        detail: dict[str, Any] = {
            "listener": self.listener,
            "helo": (session.host_name or "")[:255],
            "tls": session.ssl is not None,
        }
        if auth is not None:
            detail["auth"] = {"spf": auth.spf, "dkim": auth.dkim_summary, "dmarc": auth.dmarc}
        message = NewMessage(
            source="smtp",
            peer=peer_ip(session.peer),
            raw=raw,
            mail_from="" if mail_from == "<>" else mail_from,
            rcpt_to=list(envelope.rcpt_tos),
            auth_user=auth_user,
            header_message_id=facts.message_id,
            header_from=facts.from_,
            subject=facts.subject,
            detail=detail,
            auth_results=None if auth is None else auth.to_dict(),
        )
        try:
            msg_id = await self.shared.committer.commit(message)
        except CommitError as e:
            log.warning(
                "message not stored, answered 451",
                extra={"peer": message.peer, "size": len(raw), "error": str(e)},
            )
            return "451 4.3.0 Temporary storage failure, try again later"
        metrics.message_received("smtp")
        return f"250 2.0.0 Ok: queued as {msg_id}"

    def _checks_sender(self, session: Session) -> bool:
        """DESIGN §3: outside clients that did not authenticate; agency relays and staff
        are trusted."""
        return (
            self.shared.settings.authentication.inbound
            and self.shared.resolver is not None
            and not client_may_relay(
                peer_ip(session.peer), self.networks, bool(session.authenticated)
            )
        )

    async def _check_sender(self, raw: bytes, session: Session, mail_from: str) -> AuthResults:
        assert self.shared.resolver is not None
        settings = self.shared.settings.authentication
        budget = settings.timeout.total_seconds()
        try:
            results = await asyncio.wait_for(
                check_sender_auth(
                    raw,
                    ip=peer_ip(session.peer),
                    mail_from="" if mail_from == "<>" else mail_from,
                    helo=session.host_name or "",
                    resolver=self.shared.resolver,
                    timeout=budget,
                ),
                budget + 5,  # each look-up keeps to the budget; this bounds the CPU work too
            )
        except TimeoutError:
            results = AuthResults(
                spf="temperror", spf_domain="", helo="temperror", helo_domain="",
                dmarc="temperror", reason=f"sender checks took longer than {budget + 5:g} s",
            )  # fmt: skip
        return auth_policy.decide(results, settings)

    async def handle_exception(self, error: Exception) -> str:
        """A bug must not show a Python error to the client, and a retry may succeed."""
        log.error("SMTP session error", exc_info=error, extra={"listener": self.listener})
        return "451 4.3.0 Internal error, try again later"

    # -- AUTH (aiosmtpd uses handler methods named auth_<MECHANISM> instead of its own) -----

    async def auth_PLAIN(self, server: Any, args: list[str]) -> AuthResult:
        ip = peer_ip(server.session.peer)
        if self.shared.auth_failures.blocked(ip):
            return await _too_many(server)
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            blob = _b64(args[1])
            if blob is None:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Can't split auth value")
            return AuthResult(success=False, handled=True)
        return await self._check(server, ip, parts[1], parts[2])

    async def auth_LOGIN(self, server: Any, args: list[str]) -> AuthResult:
        ip = peer_ip(server.session.peer)
        if self.shared.auth_failures.blocked(ip):
            return await _too_many(server)
        if len(args) == 1:
            login = await server.challenge_auth(server.AuthLoginUsernameChallenge)
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            login = _b64(args[1])
            if login is None:
                await server.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        password = await server.challenge_auth(server.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        return await self._check(server, ip, login, password)

    async def _check(self, server: Any, ip: str, login: bytes, password: bytes) -> AuthResult:
        try:
            name, secret = login.decode("utf-8"), password.decode("utf-8")
        except UnicodeDecodeError:
            name, secret = "", ""
        try:
            ok = bool(name) and await self.shared.authenticator.verify(name, secret)
        except Exception as e:
            log.warning("AUTH look-up failed", extra={"error": repr(e)[:300]})
            await server.push("454 4.7.0 Temporary authentication failure")
            return AuthResult(success=False, handled=True)
        if ok:
            return AuthResult(success=True, auth_data=name)
        self.shared.auth_failures.failed(ip)
        log.info("AUTH failed", extra={"peer": ip, "user": name[:64]})
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        return None


async def _too_many(server: Any) -> AuthResult:
    await server.push("421 4.7.0 Too many failed authentication attempts, try again later")
    if server.transport is not None:
        server.transport.close()
    return AuthResult(success=False, handled=True)
