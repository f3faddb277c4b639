"""A real `edocgw serve` for end-to-end tests, plus the mail the tests send and read back.

`GatewayProcess` writes an `edocgw.toml` (the test's database, loopback listeners on ports the
OS picks, short delivery timings), starts `edocgw serve --config` as a subprocess with JSON
logs in a file, learns its relay and submission ports from the log, and stops it with SIGTERM
(a clean stop exits 0). Everything it talks to is real: PostgreSQL, aiosmtpd sinks, swaks,
Postfix and Dovecot.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib
from sqlalchemy import select
from sqlalchemy.orm import undefer

from store.agencies import AgencyIn, upsert_agency
from store.db import Database
from store.models import Delivery, Document, Message, Signature

EDOCGW = Path(sys.executable).parent / "edocgw"
REPO = Path(__file__).resolve().parents[2]
HOSTNAME = "gw.test.gov.vn"
PROCESSING = "vanban@gw.test.gov.vn"
SENDER = "vanthu@tayninh.gov.vn"
START_TIMEOUT = 180.0  # a hang detector, not a speed limit: a loaded 2-core CI machine took 53 s
TRACE_HEADERS = ["Received", "X-Edocgw-Id", "Authentication-Results"]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, str | Path):
        return json.dumps(str(v))  # a JSON string is a valid TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def render_toml(sections: dict[str, dict[str, Any]]) -> str:
    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        out += [f"{k} = {_toml_value(v)}" for k, v in keys.items()]
    return "\n".join(out) + "\n"


def base_config(tmp: Path, db_url: str, smarthost: str) -> dict[str, dict[str, Any]]:
    """A gateway on loopback with short timings; `smarthost` plays the senders' mail server."""
    return {
        "gateway": {
            "hostname": HOSTNAME,
            "data_dir": tmp / "var",
            "processing_addresses": [PROCESSING],
            "local_domains": [HOSTNAME],
            "verify_processes": 1,
            "pipeline_workers": 2,
            "claim_timeout": "10s",
        },
        "database": {"url": db_url, "pool_size": 5},
        "smtp": {"relay_listen": "127.0.0.1:0", "submission_listen": "127.0.0.1:0"},
        "trust": {},
        "policy": {"invalid_signature": "hold", "unsigned": "forward"},
        "delivery": {
            "smarthost": smarthost,
            "require_tls": False,
            "retry_schedule": ["1s"],
            "poll_interval": "1s",
            "connect_timeout": "5s",
            "command_timeout": "15s",
        },
        "receipts": {"enabled": True},
        "admin": {"listen": "127.0.0.1:0", "enabled": False},
        "logging": {"format": "json", "level": "INFO"},
    }


@dataclass
class GatewayProcess:
    """`edocgw serve` in a subprocess; its JSON log in `log_path`."""

    tmp: Path
    config: dict[str, dict[str, Any]]
    proc: asyncio.subprocess.Process | None = None
    ports: dict[str, int] = field(default_factory=dict)
    listens: bool = True  # False for a process without the intake role (no SMTP ports)

    @property
    def log_path(self) -> Path:
        return self.tmp / "edocgw.log"

    @property
    def relay_port(self) -> int:
        return self.ports["relay"]

    @property
    def submission_port(self) -> int:
        return self.ports["submission"]

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    async def start(self) -> GatewayProcess:
        cfg = self.tmp / "edocgw.toml"
        cfg.write_text(render_toml(self.config), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDOCGW_")}
        env["PYTHONUNBUFFERED"] = "1"
        with self.log_path.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                str(EDOCGW), "serve", "--config", str(cfg),
                stdout=out, stderr=out, cwd=self.tmp, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            ready = self._scan()
            if ready and (not self.listens or {"relay", "submission"} <= self.ports.keys()):
                return self
            if self.proc.returncode is not None or time.monotonic() > deadline:
                await self.stop()
                raise AssertionError(f"edocgw serve did not start:\n{self.log_tail()}")
            await asyncio.sleep(0.1)

    def _scan(self) -> bool:
        ready = False
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("listener") in ("relay", "submission") and rec.get("port"):
                self.ports[rec["listener"]] = int(rec["port"])
            ready |= rec.get("msg") == "edocgw ready"
        return ready

    def errors(self) -> list[str]:
        """Log lines at level warning or worse: a healthy run of these scenarios logs none,
        so any is a test failure (it caught a logging call that failed after each delivery)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                if json.loads(line).get("level") in ("warning", "error", "critical"):
                    out.append(line)
            except ValueError:
                out.append(line)  # not JSON: a raw traceback on stderr
        return out

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError("edocgw serve did not stop on SIGTERM within 30 s") from None


# -- mail ----------------------------------------------------------------------------------------


def document_mail(
    subject: str,
    pdf: bytes,
    filename: str,
    *,
    sender: str = SENDER,
    to: str = PROCESSING,
    body: str = "Kính gửi quý cơ quan văn bản điện tử đính kèm.",
) -> bytes:
    """A complete mail with one PDF, CRLF line ends, as a mail client would send it."""
    m = EmailMessage(policy=email.policy.SMTP)
    m["From"] = sender
    m["To"] = to
    m["Subject"] = subject
    m["Date"] = format_datetime(email.utils.localtime())
    m["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
    m.set_content(body)
    m.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    return m.as_bytes()


def split_trace(forwarded: bytes, original: bytes) -> list[str]:
    """The names of the headers the gateway put in front of `original` (asserts it is intact)."""
    assert forwarded.endswith(original), "the original bytes arrive unchanged after the trace"
    head = forwarded[: len(forwarded) - len(original)].decode("ascii")
    return re.findall(r"^([A-Za-z-]+):", head, flags=re.M)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


async def relay_send(port: int, raw: bytes, rcpt: str = PROCESSING, sender: str = SENDER) -> str:
    """Send over the relay listener (loopback is in relay_networks); returns the 250 text."""
    _, reply = await aiosmtplib.send(
        raw, sender=sender, recipients=[rcpt], hostname="127.0.0.1", port=port,
        start_tls=False, timeout=30,
    )  # fmt: skip
    return reply


def dot_stuffed(raw: bytes) -> bytes:
    """`raw` as DATA on the wire (for `swaks --no-data-fixup`): leading dots doubled, final dot."""
    assert raw.endswith(b"\r\n")
    return re.sub(rb"(?m)^\.", b"..", raw) + b"."


# -- database reads --------------------------------------------------------------------------------


async def add_agency(db: Database, agency: AgencyIn) -> None:
    async with db.transaction() as s:
        await upsert_agency(s, agency)


async def messages(db: Database, source: str = "smtp") -> list[Message]:
    async with db.transaction() as s:
        q = (
            select(Message)
            .where(Message.source == source)
            .order_by(Message.id)
            .options(undefer(Message.raw))
        )
        return list((await s.execute(q)).scalars())


async def deliveries(db: Database, message_id: int) -> list[Delivery]:
    async with db.transaction() as s:
        q = select(Delivery).where(Delivery.message_id == message_id).order_by(Delivery.id)
        return list((await s.execute(q)).scalars())


async def message_documents(db: Database, message_id: int) -> list[Document]:
    async with db.transaction() as s:
        q = select(Document).where(Document.message_id == message_id).order_by(Document.id)
        return list((await s.execute(q)).scalars())


async def message_signatures(db: Database, message_id: int) -> list[Signature]:
    async with db.transaction() as s:
        q = select(Signature).where(Signature.message_id == message_id)
        return list((await s.execute(q)).scalars())
