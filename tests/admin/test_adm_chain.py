"""Signed checkpoints of the event chain's head: `edocgw log --verify` (the real executable)
finds the newest events cut, a rewritten head and a forged checkpoint, not only an edited
row; an untouched log verifies."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import text

from config import Settings
from gateway.eventlog.chainkey import chain_key_path, load_chain_key, witness_path
from gateway.eventlog.sealer import EventSealer
from store.db import Database
from store.events import append_event
from tests.admin.seed import Seeded
from tests.admin.test_adm_cli import config_file, run  # noqa: F401  (fixture)


async def add_events(db: Database, n: int, tag: str) -> None:
    async with db.transaction() as s:
        for i in range(n):
            await append_event(s, "warned", detail={"note": f"{tag} {i}"})


async def head(db: Database) -> tuple[int, int]:
    async with db.transaction() as s:
        row = (
            await s.execute(
                text("SELECT chain_seq, id FROM events ORDER BY chain_seq DESC NULLS LAST LIMIT 1")
            )
        ).one()
    return row.chain_seq, row.id


async def test_a_cut_tail_is_found(
    config_file: Path,  # noqa: F811
    settings: Settings,
    db: Database,
    seeded: Seeded,
) -> None:
    key = load_chain_key(settings, create=True)
    assert key is not None and chain_key_path(settings).stat().st_mode & 0o077 == 0
    sealer = EventSealer(db, chain_key=key)
    await sealer.seal_now(checkpoint_interval=0)
    await add_events(db, 4, "round two")
    await sealer.seal_now(checkpoint_interval=0)
    signed_seq, signed_id = await head(db)

    code, out, _ = await run(config_file, "log", "--verify")
    assert code == 0 and "intact" in out and "2 signed checkpoint(s) match" in out, out
    code, out, _ = await run(config_file, "log", "--verify", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["checkpoints"] == 2
    assert report["last_checkpoint_seq"] == signed_seq

    # Events written after the last checkpoint are not yet covered: still intact.
    await add_events(db, 2, "after the checkpoint")
    assert (await run(config_file, "log", "--verify"))[0] == 0

    # Someone deletes the newest events with SQL: the chain left is consistent, but shorter
    # than the signed head.
    async with db.transaction() as s:
        await s.execute(text("DELETE FROM events WHERE chain_seq > :k"), {"k": signed_seq - 3})
    code, out, _ = await run(config_file, "log", "--verify", "--json")
    report = json.loads(out)
    assert code == 1 and report["ok"] is False, report
    assert "newest events cut" in report["reason"]
    assert report["broken_seq"] == signed_seq - 2 and report["broken_event_id"] == signed_id
    assert f"signed chain position {signed_seq}" in report["reason"]
    code, out, _ = await run(config_file, "log", "--verify")
    assert code == 1 and "newest events cut" in out and f"chain position {signed_seq - 2}" in out

    # ... and writes new events in their place, sealed without the key: the chain reaches the
    # signed position again, but its head is not the one that was signed.
    await add_events(db, 5, "forged")
    await EventSealer(db).seal_now()
    code, out, _ = await run(config_file, "log", "--verify", "--json")
    report = json.loads(out)
    assert code == 1 and "does not match the checkpoint" in report["reason"], report
    assert report["broken_seq"] == signed_seq


async def test_forged_checkpoints_and_a_lost_key(
    config_file: Path,  # noqa: F811
    settings: Settings,
    db: Database,
    seeded: Seeded,
) -> None:
    key = load_chain_key(settings, create=True)
    assert key is not None and load_chain_key(settings, create=True) == key  # made once
    await EventSealer(db, chain_key=key).seal_now(checkpoint_interval=0)
    seq, eid = await head(db)
    # A checkpoint signed with another key (someone covering a cut with his own) is refused.
    async with db.transaction() as s:
        await s.execute(
            text(
                "INSERT INTO event_checkpoints (chain_seq, event_id, head_hash, mac) "
                "VALUES (:s, :e, (SELECT hash FROM events WHERE id = :e), :m)"
            ),
            {"s": seq, "e": eid, "m": "00" * 32},
        )
    code, out, _ = await run(config_file, "log", "--verify")
    assert code == 1 and "not signed with this gateway's chain key" in out, out
    async with db.transaction() as s:
        await s.execute(text("DELETE FROM event_checkpoints WHERE mac = :m"), {"m": "00" * 32})
    assert (await run(config_file, "log", "--verify"))[0] == 0
    # Without the key the checkpoints cannot be checked: say so, exit 1, make no new key.
    chain_key_path(settings).rename(chain_key_path(settings).with_suffix(".moved"))
    code, out, _ = await run(config_file, "log", "--verify")
    assert code == 1 and "no chain key" in out, out
    assert not chain_key_path(settings).exists()


async def test_the_witness_file_finds_a_cut_with_its_checkpoints_deleted(
    config_file: Path,  # noqa: F811
    settings: Settings,
    db: Database,
    seeded: Seeded,
) -> None:
    key = load_chain_key(settings, create=True)
    sealer = EventSealer(db, chain_key=key, witness=witness_path(settings))
    await sealer.seal_now(checkpoint_interval=0)
    await add_events(db, 3, "newest")
    await sealer.seal_now(checkpoint_interval=0)
    signed_seq, _ = await head(db)
    assert json.loads(witness_path(settings).read_text())["chain_seq"] == signed_seq
    assert (await run(config_file, "log", "--verify"))[0] == 0
    # The newest events go, and with them every checkpoint row in the database.
    async with db.transaction() as s:
        await s.execute(text("DELETE FROM events WHERE chain_seq > :k"), {"k": signed_seq - 2})
        await s.execute(text("DELETE FROM event_checkpoints"))
    code, out, _ = await run(config_file, "log", "--verify")
    assert code == 1 and "newest events cut" in out and "witness file" in out, out
    # A damaged witness file is named, not a traceback.
    witness_path(settings).write_text("{not json", encoding="utf-8")
    code, out, err = await run(config_file, "log", "--verify")
    assert code == 1 and "event chain witness" in err and "Traceback" not in err


async def test_a_burst_is_checkpointed_once_the_interval_has_passed(
    settings: Settings, db: Database, seeded: Seeded
) -> None:
    """The sealer asks for no checkpoint the database would call too young, but one that was
    too young is still written a round later, when nothing new has been sealed meanwhile."""
    key = load_chain_key(settings, create=True)
    assert key is not None
    sealer = EventSealer(db, chain_key=key)

    async def checkpoints() -> list[int]:
        async with db.transaction() as s:
            rows = await s.execute(text("SELECT chain_seq FROM event_checkpoints ORDER BY id"))
            return [r.chain_seq for r in rows]

    await sealer.seal_now(checkpoint_interval=1.0)
    first = await checkpoints()
    assert first == [(await head(db))[0]]
    await add_events(db, 3, "burst")
    assert await sealer.seal_now(checkpoint_interval=1.0) == 3
    assert await checkpoints() == first  # too young: not asked for
    await asyncio.sleep(1.1)
    assert await sealer.seal_now(checkpoint_interval=1.0) == 0
    assert await checkpoints() == [*first, (await head(db))[0]]
    await asyncio.sleep(1.1)
    await sealer.seal_now(checkpoint_interval=1.0)  # nothing new: nothing to sign
    assert len(await checkpoints()) == 2
