"""`edocgw log/show/queue/retry/release/cancel` against a seeded real database: the JSON
contract through the installed entry point, the rest in-process (same parser, same code)."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, text

from config import Settings
from gateway.cli import main as cli
from store.db import Database
from store.models import Delivery, Event, Message
from tests.admin.seed import G22, H53, Seeded

EDOCGW = str(Path(sys.executable).with_name("edocgw"))
LOG_KEYS = {
    "id", "received_at", "source", "message_id", "mail_from", "rcpt_to", "subject", "state",
    "verdict", "documents", "deliveries", "sender_auth", "flags",
}  # fmt: skip


@pytest.fixture
def config_file(tmp_path: Path, settings: Settings) -> Path:
    p = tmp_path / "edocgw.toml"
    p.write_text(
        f'[gateway]\ndata_dir = "{tmp_path / "var"}"\n'
        f'[database]\nurl = "{settings.database.url}"\n'
        '[logging]\nformat = "text"\nlevel = "WARNING"\n',
        encoding="utf-8",
    )
    return p


async def run(config: Path, *args: str, tty: bool = False) -> tuple[int, str, str]:
    """The real `edocgw` executable; with `tty`, stdout is a pseudo-terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDOCGW_")}
    master = slave = None
    if tty:
        master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        EDOCGW, *args, "--config", str(config),
        stdout=slave if tty else asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    if tty:
        assert master is not None and slave is not None
        os.close(slave)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(master)
        return proc.returncode or 0, b"".join(chunks).decode(), err.decode()
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def inproc(
    capsys: pytest.CaptureFixture[str], config: Path, *args: str
) -> tuple[int, str, str]:
    """The same CLI in a worker thread (it runs its own event loop), output captured."""
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, [*args, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


async def test_log_json_matches_the_contract(config_file: Path, seeded: Seeded) -> None:
    code, out, err = await run(config_file, "log", "--json")
    assert code == 0, err
    doc = json.loads(out)  # exactly one JSON document, nothing else on stdout
    assert set(doc) == {"messages"}
    assert [m["id"] for m in doc["messages"]] == [
        seeded.ids[n] for n in ("mat", "giaymoi", "congvan", "chithi", "thongbao")
    ]
    for m in doc["messages"]:
        assert set(m) == LOG_KEYS | {"urgency", "reason"}  # DESIGN §7, plus two added fields
        assert all(
            set(d) == {"filename", "kind", "number", "notation", "verdict"} for d in m["documents"]
        )
        assert all(
            set(d)
            == {"id", "recipient", "agency", "state", "attempts", "last_reply", "delivered_at"}
            for d in m["deliveries"]
        )
    congvan = next(m for m in doc["messages"] if m["id"] == seeded.ids["congvan"])
    assert congvan["rcpt_to"] == ["vanban@localhost"]
    assert congvan["deliveries"][0]["last_reply"] == "421 4.7.0 Try again later"
    assert congvan["deliveries"][0]["attempts"] == 2
    assert congvan["verdict"] == "invalid"

    code, out, _ = await run(
        config_file, "log", "--json", "--agency", H53, "--state", "queued", "--limit", "5"
    )
    assert code == 0 and [m["id"] for m in json.loads(out)["messages"]] == [seeded.ids["thongbao"]]


async def test_log_table_colours_only_on_a_terminal(
    config_file: Path, seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await inproc(capsys, config_file, "log", "--sender", "chinhphu")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split("  ")[0] == "MÃ / ID"
    for header in ("NHẬN LÚC / RECEIVED", "ĐỘ KHẨN / URGENCY", "TRẠNG THÁI / STATE"):
        assert header in lines[0]
    assert "LÝ DO / REASON" in lines[0] and "CHUYỂN PHÁT / DELIVERIES" in lines[0]
    assert "XÁC THỰC / SENDER" in lines[0]
    assert len(lines) == 3 and "\x1b[" not in out
    assert "Chỉ thị 15/CT-TTg" in lines[1] and f"{G22}:delivered" in lines[1]
    code, out, _ = await run(config_file, "log", "--sender", "chinhphu", tty=True)
    assert code == 0 and "\x1b[32mprocessed" in out and "\x1b[0m" in out


async def test_log_verify_names_an_edited_and_a_deleted_event(
    config_file: Path, db: Database, seeded: Seeded
) -> None:
    code, out, _ = await run(config_file, "log", "--verify")
    assert code == 0 and "intact" in out, out
    async with db.transaction() as s:
        victim = (
            await s.execute(
                text("SELECT id, detail FROM events WHERE kind = 'attempt' ORDER BY id LIMIT 1")
            )
        ).one()
        await s.execute(
            text(
                "UPDATE events SET detail = jsonb_set(detail, '{reply_code}', '599') WHERE id = :i"
            ),
            {"i": victim.id},
        )
    code, out, _ = await run(config_file, "log", "--verify", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False, report
    assert report["broken_event_id"] == victim.id and "content changed" in report["reason"]
    code, out, _ = await run(config_file, "log", "--verify")
    assert code == 1 and f"BROKEN at event {victim.id}" in out

    async with db.transaction() as s:  # put it back as it was, then delete a later event
        await s.execute(
            text("UPDATE events SET detail = CAST(:d AS jsonb) WHERE id = :i"),
            {"d": json.dumps(victim.detail), "i": victim.id},
        )
        gone, after = (
            (await s.execute(text("SELECT id FROM events ORDER BY chain_seq OFFSET 5 LIMIT 2")))
            .scalars()
            .all()
        )
    assert (await run(config_file, "log", "--verify"))[0] == 0
    async with db.transaction() as s:
        await s.execute(text("DELETE FROM events WHERE id = :i"), {"i": gone})
    code, out, _ = await run(config_file, "log", "--verify", "--json")
    report = json.loads(out)
    assert code == 1 and report["broken_event_id"] == after and "missing" in report["reason"]


async def test_show_and_queue(
    config_file: Path, seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await inproc(capsys, config_file, "show", str(seeded.ids["congvan"]))
    assert code == 0
    for expected in (
        "V/v triển khai phần mềm quản lý văn bản",
        "Công văn",
        "123/UBND-VP",
        "pades: invalid Nguyễn Văn An",
        "digest_mismatch",
        "E-document:   NOT conformant: signature_not_valid, no_organisation_signature"
        " (person Nguyễn Văn An)",
        f"Delivery {seeded.deliveries['congvan-h53']} to vanthu@tayninh.gov.vn ({H53}): deferred, 2 attempt(s)",
        "last reply: 421 4.7.0 Try again later",
        "reply code: 421",
    ):
        assert expected in out, expected
    code, out, _ = await inproc(capsys, config_file, "show", str(seeded.ids["chithi"]), "--json")
    detail = json.loads(out)
    assert detail["documents"][0]["facts"]["signer"] == "Phạm Minh Chính"
    assert detail["documents"][0]["facts"]["date"] == "2024-05-22"
    assert detail["documents"][0]["e_document"] is None  # stored before the check: not made up
    assert [r["kind"] for r in detail["receipts"]] == ["receipt_sent"]
    code, _, err = await inproc(capsys, config_file, "show", "987654")
    assert code == 1 and err.strip() == "edocgw: no message 987654"

    code, out, _ = await inproc(capsys, config_file, "queue")
    lines = out.splitlines()
    assert (
        lines[0].split()
        == ("CƠ QUAN / AGENCY TỔNG / TOTAL ≤5 ≤10 ≤20 ≤40 ≤80 ≤160 ≤320 ≤640 ≤1280 1280+").split()
    )
    assert lines[1].split() == "TẤT CẢ / ALL 2 0 0 0 0 1 0 0 0 0 1".split()
    assert any(line.startswith("TỔNG / TOTAL: deliveries waiting per agency") for line in lines)
    assert lines[2].split()[:2] == [H53, "2"]
    code, out, _ = await inproc(capsys, config_file, "queue", "--json")
    q = json.loads(out)
    assert q["shape"]["total"] == 2 and {d["state"] for d in q["deliveries"]} == {
        "queued",
        "deferred",
    }


async def test_retry_release_cancel(
    config_file: Path, db: Database, seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    did = seeded.deliveries["congvan-h53"]
    code, out, _ = await inproc(capsys, config_file, "retry", str(did))
    assert code == 0 and out.strip() == f"delivery {did} queued for retry"
    code, _, err = await inproc(capsys, config_file, "retry", str(seeded.deliveries["chithi-g22"]))
    assert code == 1 and "delivered" in err and len(err.strip().splitlines()) == 1
    code, out, _ = await inproc(capsys, config_file, "retry", "--all-deferred")
    assert code == 0 and out.startswith("0 deferred")  # the only one was retried already

    held = seeded.ids["giaymoi"]
    code, _, err = await inproc(capsys, config_file, "release", str(held))
    assert code == 1 and "--to CODE" in err and len(err.strip().splitlines()) == 1
    code, out, _ = await inproc(capsys, config_file, "release", str(held), "--to", G22)
    assert code == 0 and "released (to)" in out
    code, _, err = await inproc(capsys, config_file, "release", str(held), "--to", G22)
    assert code == 1 and "processed, not held" in err
    code, _, err = await inproc(capsys, config_file, "release", str(seeded.ids["mat"]))
    assert code == 1 and "--force" in err
    code, out, _ = await inproc(
        capsys, config_file, "cancel", str(seeded.ids["thongbao"]), "--reason", "gửi nhầm"
    )
    assert code == 0 and "1 deliveries cancelled" in out

    async with db.transaction() as s:
        assert (await s.get(Delivery, did)).state == "queued"  # type: ignore[union-attr]
        new = (await s.scalars(select(Delivery).where(Delivery.message_id == held))).one()
        assert (new.agency_code, new.state) == (G22, "queued")
        assert (await s.get(Message, held)).state == "processed"  # type: ignore[union-attr]
        q = await s.get(Delivery, seeded.deliveries["thongbao-h53"])
        assert q is not None and q.state == "cancelled"
        events = (
            await s.scalars(
                select(Event).where(Event.kind.in_(["retried", "released", "cancelled"]))
            )
        ).all()
    kinds = sorted(e.kind for e in events)
    assert kinds == ["cancelled", "cancelled", "released", "retried"]
    assert all(e.detail["by"].startswith("cli:") for e in events)


async def test_bad_filters_are_one_line(
    config_file: Path, seeded: Seeded, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, needle in (
        (("log", "--state", "lost"), "unknown state 'lost'"),
        (("log", "--since", "hôm qua"), "expected a duration"),
        (("log", "--limit", "0"), "limit must be between"),
    ):
        code, out, err = await inproc(capsys, config_file, *args)
        assert code == 1 and out == "" and needle in err and len(err.strip().splitlines()) == 1
