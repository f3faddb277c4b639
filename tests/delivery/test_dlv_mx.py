"""MX routing against a real DNS server on loopback: targets in preference order, NXDOMAIN and
null MX as permanent failures, and answers (positive and negative) cached for their TTL, so a
queue of mail to one dead domain costs one look-up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from config import Settings
from gateway.delivery.route import MxResolver, mx_targets
from gateway.delivery.smtp import Result, Target
from store.db import Database
from tests.delivery.support import delivery, make_raw, put_message, wait_until
from tests.support.dns import LoopbackDns, start_dns

MX = {
    "mx.test": [(20, "backup.mx.test"), (10, "mail.mx.test")],
    "nullmx.test": [],
}


@pytest.fixture
async def dns_server() -> AsyncIterator[LoopbackDns]:
    server = await start_dns(MX)
    yield server
    server.close()


async def test_mx_targets_in_preference_order_and_cached(dns_server: LoopbackDns) -> None:
    mx = MxResolver([("127.0.0.1", dns_server.port)])
    for _ in range(3):
        got = await mx_targets(mx, "mx.test", "may", 5)
        assert got == [Target("mail.mx.test", 25, "may"), Target("backup.mx.test", 25, "may")]
    assert dns_server.asked["mx.test"] == 1


async def test_nxdomain_and_null_mx_are_permanent_and_nxdomain_is_cached(
    dns_server: LoopbackDns,
) -> None:
    mx = MxResolver([("127.0.0.1", dns_server.port)])
    for _ in range(5):
        got = await mx_targets(mx, "nx.test", "may", 5)
        assert isinstance(got, Result) and got.outcome == "permanent" and got.status == "5.1.2"
        assert "nx.test does not exist" in got.reply
    assert dns_server.asked["nx.test"] == 1
    null = await mx_targets(mx, "nullmx.test", "may", 5)
    assert isinstance(null, Result) and null.outcome == "permanent" and null.status == "5.1.10"


async def test_a_dead_dns_server_is_a_temporary_failure() -> None:
    server = await start_dns(MX)
    port = server.port
    server.close()  # nothing answers on that port now
    got = await mx_targets(MxResolver([("127.0.0.1", port)]), "mx.test", "may", 1)
    assert isinstance(got, Result) and got.outcome == "temporary" and got.status == "4.4.3"


async def test_queued_mail_to_a_dead_domain_costs_one_look_up(
    dsettings: Settings, db: Database, run_service, dns_server: LoopbackDns
) -> None:
    d = dsettings.delivery
    d.smarthost = ""  # route by MX, through the loopback DNS server
    d.dns_servers = [f"127.0.0.1:{dns_server.port}"]
    d.concurrency_per_destination = 1
    _, ids = await put_message(db, make_raw(), [(f"a{i}@nx.test", None, 0) for i in range(8)])
    await run_service(dsettings)

    async def all_bounced() -> bool:
        states = [(await delivery(db, i)).state for i in ids]
        return states == ["bounced"] * len(ids)

    await wait_until(all_bounced, 30, "every delivery to nx.test bounced")
    assert dns_server.asked["nx.test"] == 1
    assert "does not exist (DNS NXDOMAIN)" in (await delivery(db, ids[0])).last_reply
