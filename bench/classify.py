"""Documents per second for ``mailparse.classify`` on generated PDF and DOCX documents.

Bounded: at most ``--rounds`` passes over the corpus and ``--seconds`` per format.
Run: ``python bench/classify.py`` (from the repository root)."""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mailparse import ClassifyContext, classify  # noqa: E402
from mailparse.containers import make_attachment  # noqa: E402
from tests.support.corpus import CORPUS, docx_bytes, pdf_bytes  # noqa: E402


def bench(name: str, docs: list[bytes], rounds: int, seconds: float) -> tuple[int, float]:
    ctx = ClassifyContext()
    done = 0
    start = time.perf_counter()
    for _ in range(rounds):
        for data in docs:
            classify(make_attachment("1", None, None, data), ctx)
            done += 1
        if time.perf_counter() - start > seconds:
            break
    return done, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"corpus: {len(CORPUS)} documents; generating …", file=sys.stderr)
    sets = {
        "pdf": [pdf_bytes(d.key) for d in CORPUS],
        "docx": [docx_bytes(d.key) for d in CORPUS],
    }
    for name, docs in sets.items():
        avg = sum(map(len, docs)) / len(docs) / 1024
        classify(make_attachment("1", None, None, docs[0]))  # warm imports
        done, elapsed = bench(name, docs, args.rounds, args.seconds)
        print(
            f"{name:5} {done / elapsed:8.1f} documents/s  ({done} docs in {elapsed:.2f} s, avg {avg:.0f} KB, 1 core)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
