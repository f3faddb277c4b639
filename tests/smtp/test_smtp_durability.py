"""Nothing acknowledged is lost: 451 when the commit fails, and a SIGKILL mid-load loses no 250."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import sys
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from gateway.smtp import SmtpListener
from store.db import Database
from store.models import Message
from tests.smtp.clients import HOST, plain_message, send, stored

EDOCGW = str(Path(sys.executable).parent / "edocgw")


async def test_failed_commit_answers_451_and_a_retry_succeeds(
    gw: SmtpListener, db: Database
) -> None:
    async with db.engine.begin() as conn:  # a real refusal by PostgreSQL, not a mock
        await conn.execute(
            text("ALTER TABLE messages ADD CONSTRAINT refuse_all CHECK (false) NOT VALID")
        )
    data = plain_message(msgid="retry-1@a.test")
    results = await asyncio.gather(
        *(send(gw.relay_port, ["vanban@localhost"], data) for _ in range(5))
    )
    for _, reply in results:
        assert (reply.code, reply.text[:5]) == (451, "4.3.0")
    async with db.engine.begin() as conn:
        assert (await conn.execute(select(func.count()).select_from(Message))).scalar() == 0
        await conn.execute(text("ALTER TABLE messages DROP CONSTRAINT refuse_all"))
    _, reply = await send(gw.relay_port, ["vanban@localhost"], data)  # the client's retry
    assert reply.code == 250
    assert [m.raw for m in await stored(db)] == [data]


async def test_missing_table_answers_451_until_restored(gw: SmtpListener, db: Database) -> None:
    async with db.engine.begin() as conn:  # every INSERT now fails in PostgreSQL
        await conn.execute(text("ALTER TABLE messages RENAME TO messages_away"))
    _, reply = await send(gw.relay_port, ["vanban@localhost"])
    assert reply.code == 451
    async with db.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE messages_away RENAME TO messages"))
    _, reply = await send(gw.relay_port, ["vanban@localhost"])
    assert reply.code == 250


# -- crash test --------------------------------------------------------------------------------

TOTAL = 500
CLIENTS = 5
KILL_AFTER = 120  # acknowledged messages before the SIGKILL


class Serve:
    """`edocgw serve` as a subprocess on the test database, ports picked by the OS."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.lines: list[str] = []

    async def start(self) -> int:
        self.proc = await asyncio.create_subprocess_exec(
            EDOCGW, "serve", "--config", str(self.config),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stderr is not None
        try:
            async with asyncio.timeout(60):
                while not self.port:
                    raw = await self.proc.stderr.readline()
                    if not raw:
                        break
                    line = raw.decode("utf-8", "replace")
                    self.lines.append(line)
                    try:
                        rec = json.loads(line)
                    except ValueError:
                        continue
                    if rec.get("listener") == "relay" and rec.get("port"):
                        self.port = int(rec["port"])
        except TimeoutError:
            pass
        assert self.port, "edocgw serve did not start:\n" + "".join(self.lines[-20:])
        asyncio.get_running_loop().create_task(self._drain())
        return self.port

    async def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@pytest.fixture
async def serve_config(tmp_path: Path, db_url: str) -> AsyncIterator[Path]:
    cfg = tmp_path / "edocgw.toml"
    cfg.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "var"}"\nhostname = "gw.test.gov.vn"\n'
        f'[database]\nurl = "{db_url}"\n'
        '[smtp]\nrelay_listen = "127.0.0.1:0"\nsubmission_listen = "127.0.0.1:0"\n'
        '[admin]\nlisten = "127.0.0.1:0"\n'
        '[logging]\nlevel = "INFO"\nformat = "json"\n',
        encoding="utf-8",
    )
    yield cfg


def _message(n: int) -> bytes:
    return plain_message(subject=f"crash {n}", msgid=f"crash-{n}@a.test", body=f"số {n}\r\n")


def _client(
    port: int, numbers: list[int], acked: dict[int, int], dead: threading.Event
) -> list[int]:
    """Send in one session after another; returns the numbers that got no 250."""
    left = list(numbers)
    while left and not dead.is_set():
        try:
            with smtplib.SMTP(HOST, port, timeout=15) as c:
                c.ehlo("client.test")
                while left:
                    n = left[0]
                    c.mail("sender@a.test")
                    c.rcpt("vanban@localhost")
                    code, msg = c.data(_message(n))
                    if code == 250:
                        acked[n] = int(msg.decode().rsplit(" ", 1)[1])
                        left.pop(0)
        except (OSError, smtplib.SMTPException):
            if not dead.is_set():
                raise
    return left


async def test_sigkill_mid_load_loses_no_acknowledged_message(
    serve_config: Path, db: Database
) -> None:
    serve = Serve(serve_config)
    port = await serve.start()
    acked: dict[int, int] = {}
    dead = threading.Event()
    shares = [list(range(i, TOTAL, CLIENTS)) for i in range(CLIENTS)]
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(CLIENTS) as pool:
        futures = [loop.run_in_executor(pool, _client, port, s, acked, dead) for s in shares]
        async with asyncio.timeout(60):
            while len(acked) < KILL_AFTER:  # noqa: ASYNC110 - the count grows in other threads
                await asyncio.sleep(0.005)
        dead.set()
        serve.kill()  # SIGKILL: no shutdown code runs
        unacked = sorted(n for left in await asyncio.gather(*futures) for n in left)
    await serve.proc.wait()  # type: ignore[union-attr]
    first_acked = dict(acked)
    assert KILL_AFTER <= len(first_acked) < TOTAL, "the kill did not land mid-load"

    async def count_by_msgid() -> dict[str, list[int]]:
        async with db.sessions() as s:
            rows = (
                await s.execute(
                    select(Message.header_message_id, Message.id).where(Message.source == "smtp")
                )
            ).all()
        out: dict[str, list[int]] = {}
        for mid, msg_id in rows:
            out.setdefault(mid, []).append(msg_id)
        return out

    serve2 = Serve(serve_config)
    try:
        port2 = await serve2.start()
        rows = await count_by_msgid()
        for n, msg_id in first_acked.items():  # every 250 survived the kill, once
            assert rows.get(f"<crash-{n}@a.test>") == [msg_id], n
        # the clients retry what got no 250; everything is there afterwards
        dead.clear()
        with ThreadPoolExecutor(CLIENTS) as pool:
            shares = [unacked[i::CLIENTS] for i in range(CLIENTS)]
            futures = [loop.run_in_executor(pool, _client, port2, s, acked, dead) for s in shares]
            assert await asyncio.wait_for(asyncio.gather(*futures), 60) == [[]] * CLIENTS
    finally:
        await serve2.stop()
    rows = await count_by_msgid()
    assert len(acked) == TOTAL
    for n in range(TOTAL):
        ids = rows.get(f"<crash-{n}@a.test>", [])
        assert acked[n] in ids
        if n in first_acked:
            assert ids == [first_acked[n]]  # acknowledged once, stored once
        else:
            assert 1 <= len(ids) <= 2  # committed but unacknowledged may come again
