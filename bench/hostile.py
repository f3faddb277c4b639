"""Milliseconds mailparse spends on hostile messages (issue 16 item 1): very many empty MIME
parts (past `max_parts`) and a 1 MB Subject, through what the pipeline runs for every message
(`parse`, then `message_facts` and `classify` with the mail's subject as context).

Bounded: one message of each shape, each timed `--repeat` times (the best is printed).
Run: ``python bench/hostile.py`` (from the repository root)."""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mailparse import ClassifyContext, classify, message_facts, parse  # noqa: E402


def many_parts(n: int) -> bytes:
    head = (
        b"From: a@example.test\r\nTo: vanban@example.test\r\nSubject: parts\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    )
    return head + b"--b\r\n\r\n" * n + b"--b--\r\n"


def big_subject(size: int) -> bytes:
    # A subject built from what the fact patterns look for (numbers, dates, marks), so every
    # pattern has work to do on all of it.
    unit = "Công văn số 15/UBND-VP ngày 04/12/2026 KHẨN [000.00.00.H53] V/v "
    text = (unit * (size // len(unit.encode()) + 1)).encode()[:size].decode("utf-8", "ignore")
    return (
        "From: a@example.test\r\nTo: vanban@example.test\r\nMIME-Version: 1.0\r\n"
        f"Subject: {text}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNội dung.\r\n"
    ).encode()


def analyse(raw: bytes) -> tuple[str, int]:
    """What the pipeline does with a message's text, without files or signatures."""
    parsed = parse(raw)
    ctx = ClassifyContext(subject=parsed.subject, body_text=parsed.body_text)
    message_facts(ctx)
    for att in parsed.all_attachments():
        classify(att, ctx)
    too_many = [d for d in parsed.defects if d.startswith("too_many_parts")]
    return ("malformed " if parsed.malformed else "ok ") + ",".join(too_many), len(
        parsed.all_attachments()
    )


def timed(raw: bytes, repeat: int) -> tuple[float, str]:
    best = float("inf")
    outcome = ""
    for _ in range(repeat):
        start = time.perf_counter()
        verdict, attachments = analyse(raw)
        best = min(best, time.perf_counter() - start)
        outcome = f"{verdict} ({attachments} attachments)"
    return best * 1000, outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cases = [(f"{n:,} empty parts", many_parts(n)) for n in (10_000, 100_000, 400_000)]
    cases.append(("1 MB Subject", big_subject(1 << 20)))
    print(f"{'case':<22}{'bytes':>12}{'ms':>10}  outcome")
    for name, raw in cases:
        ms, outcome = timed(raw, args.repeat)
        print(f"{name:<22}{len(raw):>12,}{ms:>10.1f}  {outcome}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
