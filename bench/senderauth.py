"""Inbound sender checks per second (SPF + DKIM + DMARC) through the gateway's own code and
resolver, against the loopback DNS server of the tests, and the cost of the gateway's DKIM
signature on outgoing messages of several sizes.

Bounded: at most ``--count`` checks (``--concurrency`` at a time) and ``--seconds`` each.
Run: ``python bench/senderauth.py`` (from the repository root)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from gateway.delivery.dkimsign import DkimSigner, generate  # noqa: E402
from gateway.delivery.route import MxResolver  # noqa: E402
from gateway.senderauth.check import check_sender  # noqa: E402
from tests.support.dns import start_dns  # noqa: E402
from tests.support.senderauth import mail, make_key  # noqa: E402

GOV = "chinhphu.gov.vn"


async def _round(
    raw: bytes, port: int, fresh: bool, count: int, concurrency: int, seconds: float
) -> tuple[int, float]:
    shared = MxResolver([("127.0.0.1", port)])
    sem = asyncio.Semaphore(concurrency)
    done = 0
    start = time.perf_counter()

    async def one() -> None:
        nonlocal done
        async with sem:
            if time.perf_counter() - start > seconds:
                return
            r = MxResolver([("127.0.0.1", port)]) if fresh else shared
            res = await check_sender(
                raw, ip="127.0.0.1", mail_from=f"vanthu@{GOV}", helo=f"mx.{GOV}",
                resolver=r, timeout=10,
            )  # fmt: skip
            assert res.dmarc == "pass", res
            done += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return done, time.perf_counter() - start


async def checks(count: int, concurrency: int, seconds: float) -> None:
    key = make_key(GOV, "s1")
    txt = {
        GOV: ["v=spf1 ip4:127.0.0.1 -all"],
        f"_dmarc.{GOV}": ["v=DMARC1; p=reject"],
        key.record_name: [key.record],
    }
    server = await start_dns({}, txt)
    try:
        raw = key.sign(mail(f"vanthu@{GOV}", body="Nội dung.\r\n" * 2000))
        for label, fresh in (("cold cache (new resolver each)", True), ("warm cache", False)):
            done, took = await _round(raw, server.port, fresh, count, concurrency, seconds)
            print(f"sender checks, {label}: {done} in {took:.2f} s = {done / took:.0f}/s "
                  f"({len(raw)} byte message, {concurrency} at a time)")  # fmt: skip
    finally:
        server.close()


def signing(seconds: float) -> None:
    for kind in ("rsa", "ed25519"):
        pem, _ = generate(kind)
        signer = DkimSigner.from_pem("gw.test.gov.vn", "s", pem)
        for size in (10_000, 1_000_000, 20_000_000):
            data = mail("a@b.gov.vn", body=("x" * 76 + "\r\n") * (size // 78))
            n, start = 0, time.perf_counter()
            while n < 50 and time.perf_counter() - start < seconds:
                signer.sign(data)
                n += 1
            per = (time.perf_counter() - start) / n
            print(f"DKIM signing ({kind}), {len(data) / 1e6:.2f} MB: {per * 1000:.1f} ms each")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=15.0)
    a = ap.parse_args()
    asyncio.run(checks(a.count, a.concurrency, a.seconds))
    signing(a.seconds / 3)


if __name__ == "__main__":
    main()
