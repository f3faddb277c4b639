"""A verification worker gives a big document's memory back once the job is done.

pyHanko leaves the file's bytes in reference cycles; before the worker collected them
itself, a worker kept about the size of the last big PDF it checked (bench/memory.py).
"""

from __future__ import annotations

from pathlib import Path

import psutil

from bench.memory import big_pdf
from gateway.processes.verify import VerifyPool
from tests.support.pki import make_pki

MB = 1 << 20


async def test_a_worker_does_not_keep_a_big_pdf(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    path = tmp_path / "ban-quet.pdf"
    path.write_bytes(big_pdf(24 * MB, pki))
    pool = VerifyPool(1, pki.anchors, pki.crls, timeout=60)
    try:
        await pool.start()
        (pid,) = pool.worker_pids()
        worker = psutil.Process(pid)
        small = tmp_path / "small.pdf"
        small.write_bytes(big_pdf(64 * 1024, pki))
        await pool.verify_path(str(small), "pdf", "small.pdf")  # pyHanko loaded and warm
        before = worker.memory_info().rss
        reports = await pool.verify_path(str(path), "pdf", path.name)
        assert [r.verdict for r in reports] == ["valid"]
        kept = worker.memory_info().rss - before
    finally:
        await pool.close()
    # before the fix: about the file's size (24 MB); after: a few MB of noise at most
    assert kept < 12 * MB, f"the worker kept {kept / MB:.0f} MB after a 24 MB PDF"
