"""The bytes the SMTP intake hands its worker process (gateway/handoff.py): frames arrive whole
however the pipe cuts them, the copies stay within bounds, the intake never waits on a child
that does not read, and the pipeline's claim leaves out the bytes the process holds."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random

from gateway.handoff import BACKLOG, HEADER, MAX_SIZE, MIN_SIZE, FrameReader, Handed, offer
from store.db import Database
from store.results import claim_received
from tests.pipeline.pipe_support import make_mail, submit


def _frame(raw: bytes) -> bytes:
    return HEADER.pack(hashlib.sha256(raw).digest(), len(raw)) + raw


async def test_frames_cut_anywhere_arrive_whole():
    raws = [bytes([n]) * size for n, size in enumerate((MIN_SIZE, 70_000, MAX_SIZE), start=1)]
    stream = b"".join(_frame(r) for r in raws)
    rng = random.Random(17)
    for _ in range(20):
        handed, closed = Handed(), asyncio.Event()
        reader = FrameReader(handed, closed)
        at = 0
        while at < len(stream):  # pieces of 1 byte to 100 KB, as a pipe may deliver them
            step = rng.choice((1, 7, 36, 4096, 65_536, 100_000))
            reader.data_received(stream[at : at + step])
            at += step
        assert [handed.pop(hashlib.sha256(r).hexdigest()) for r in raws] == raws
        assert not closed.is_set()
        reader.connection_lost(None)
        assert closed.is_set(), "the parent's end closed: the child stops"


async def test_a_length_no_intake_writes_ends_the_frames():
    handed, closed = Handed(), asyncio.Event()
    reader = FrameReader(handed, closed)
    reader.data_received(HEADER.pack(b"\x01" * 32, MAX_SIZE + 1) + b"x" * 100)
    for _ in range(3):  # not read as frames any more, nor kept
        reader.data_received(_frame(b"y" * MIN_SIZE))
    assert len(handed) == 0 and not reader._buf and not closed.is_set()


def test_kept_within_bounds_oldest_out_first():
    h = Handed(max_bytes=2 * MAX_SIZE, max_items=3)
    h.put("small", b"x" * (MIN_SIZE - 1))  # the claim reads it cheaply: not kept
    h.put("big", b"x" * (MAX_SIZE + 1))  # read alone, a slice at a time: not kept
    assert len(h) == 0
    for n in range(1, 4):
        h.put(str(n), bytes([n]) * MAX_SIZE)
    assert h.keys() == ["2", "3"], "two letters' worth of bytes: the oldest went"
    for n in range(4, 8):
        h.put(str(n), b"y" * MIN_SIZE)
    assert h.keys() == ["5", "6", "7"], "three at most"
    assert h.pop("6") == b"y" * MIN_SIZE and h.pop("6") is None and h.hits == 1
    assert h.keys() == ["5", "7"], "taken: the pipeline keeps it from now on"


async def test_offer_never_waits_for_a_child_that_does_not_read():
    proc = await asyncio.create_subprocess_exec(
        "sleep", "60", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL
    )
    assert proc.stdin is not None
    try:
        raw = b"z" * 200_000
        sha = hashlib.sha256(raw).hexdigest()
        assert not offer(proc.stdin, sha, b"z" * (MIN_SIZE - 1)), "small: not worth it"
        assert not offer(proc.stdin, sha, b"z" * (MAX_SIZE + 1)), "big: read a slice at a time"
        taken = [offer(proc.stdin, sha, raw) for _ in range(40)]  # 8 MB, nobody reading
        assert taken[0] and not taken[-1]
        assert taken == sorted(taken, reverse=True), "written until the backlog, then dropped"
        waiting = proc.stdin.transport.get_write_buffer_size()
        assert BACKLOG < waiting <= BACKLOG + HEADER.size + len(raw)
    finally:
        proc.kill()
        await proc.wait()


async def test_the_claim_leaves_out_the_bytes_the_process_holds(db: Database):
    held_raw = make_mail("Công văn 17/UBND-VP", body="x" * 20_000)
    read_raw = make_mail("Công văn 18/UBND-VP", body="y" * 20_000)
    held_id = await submit(db, held_raw)
    read_id = await submit(db, read_raw)
    held_sha = hashlib.sha256(held_raw).hexdigest()
    claimed = await claim_received(
        await db.direct(),
        worker="w",
        lease=dt.timedelta(minutes=1),
        limit=5,
        inline_max=MAX_SIZE,
        held=[held_sha, "0" * 64],
    )
    by_id = {c.id: c for c in claimed}
    assert by_id[held_id].raw is None and by_id[held_id].sha256 == held_sha
    assert by_id[read_id].raw == read_raw
    assert by_id[read_id].sha256 == hashlib.sha256(read_raw).hexdigest()
