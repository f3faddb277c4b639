"""Signed-PDF verification throughput with 1 and 2 pool workers, and the event loop's
longest stall meanwhile (target < 10 ms: verification must not run on the loop).

    .venv/bin/python bench/verify.py [--count 300] [--seconds 20]
    .venv/bin/python bench/verify.py --corpus ../shared/corpus/dss-pades   # verdicts of real PDFs

Bounded: each measurement stops after --count PDFs or --seconds, whichever comes first.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.processes.verify import VerifyPool  # noqa: E402
from signing import TrustStore, aggregate, verify_document  # noqa: E402
from tests.support.pki import make_pdf, make_pki, sign_pdf  # noqa: E402


class StallMonitor:
    """Wakes every millisecond and records how late it woke: the loop's longest stall."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, loop.time() - before - 0.001)

    def __enter__(self) -> StallMonitor:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def measure(
    workers: int, pdf: str, pki, count: int, seconds: float
) -> tuple[float, float, int]:
    async with VerifyPool(workers, pki.anchors, pki.crls, timeout=30) as pool:
        for _ in range(workers * 2):  # warm-up: imports, first-use caches
            await pool.verify_path(pdf, "pdf", "bench.pdf")
        done = 0
        deadline = time.monotonic() + seconds
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(count):
            queue.put_nowait(i)

        async def client() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                [rep] = await pool.verify_path(pdf, "pdf", "bench.pdf")
                assert rep.verdict == "valid", rep
                done += 1

        with StallMonitor() as monitor:
            start = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(workers * 2)))
            elapsed = time.perf_counter() - start
        return done / elapsed, monitor.worst * 1000, done


def inline_rate(data: bytes, trust: TrustStore, count: int, seconds: float) -> float:
    start, done = time.perf_counter(), 0
    while done < count and time.perf_counter() - start < seconds:
        verify_document(data, "pdf", None, trust)
        done += 1
    return done / (time.perf_counter() - start)


async def corpus(files: list[Path], pki, job_timeout: float) -> None:
    """Every PDF of *files* through a pool with an empty-ish trust store (our test root):
    the point is robustness (a report for each, no crash, no hang), not trust."""
    verdicts: collections.Counter[str] = collections.Counter()
    per_doc: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    formats: collections.Counter[str] = collections.Counter()
    start = time.perf_counter()
    async with VerifyPool(2, pki.anchors, pki.crls, timeout=job_timeout) as pool:
        results = await asyncio.gather(*(pool.verify_path(str(p), "pdf", p.name) for p in files))
    for reps in results:
        per_doc[aggregate(r.verdict for r in reps)] += 1
        for rep in reps:
            verdicts[rep.verdict] += 1
            formats[rep.format] += 1
            reasons[f"{rep.verdict}/{rep.reason}"] += 1
    print(
        f"{len(files)} PDFs in {time.perf_counter() - start:.1f} s, "
        f"{sum(verdicts.values())} signatures/timestamps"
    )
    print("per document:", dict(per_doc.most_common()))
    print("per signature:", dict(verdicts.most_common()))
    print("formats:", dict(formats.most_common()))
    print("verdict/reason:", dict(reasons.most_common()))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="PDFs per measurement (max)")
    parser.add_argument("--seconds", type=float, default=20.0, help="time per measurement (max)")
    parser.add_argument("--corpus", type=Path, help="verify every PDF in this folder instead")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-file timeout (corpus)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edocgw-bench-") as tmp:
        pki = make_pki(tmp)
        if args.corpus:
            files = sorted(p for p in args.corpus.rglob("*") if p.suffix.lower() == ".pdf")
            await corpus(files, pki, args.timeout)
            return
        signed = sign_pdf(make_pdf("Công văn kiểm thử hiệu năng"), pki.signer("person"))
        pdf = Path(tmp) / "bench.pdf"
        pdf.write_bytes(signed)
        trust = TrustStore.load(pki.anchors, pki.crls)
        rate = inline_rate(signed, trust, min(args.count, 100), args.seconds)
        print(
            f"inline (no pool, on the loop's thread): {rate:7.1f} PDFs/s  ({1000 / rate:.1f} ms each)"
        )
        for workers in (1, 2):
            rate, stall, done = await measure(workers, str(pdf), pki, args.count, args.seconds)
            print(
                f"pool, {workers} worker(s): {rate:7.1f} PDFs/s over {done} PDFs; "
                f"longest event-loop stall {stall:.1f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
