"""Prometheus metrics (served at `/metrics` by the web admin).

Two kinds:
- store-wide numbers read from PostgreSQL at scrape time (messages and deliveries by state,
  the pending queue's age), so they are right however many gateway processes share the
  database and survive restarts;
- process-local instruments that other components feed: `message_received`,
  `message_processed`, `VERIFY_SECONDS.labels(format).observe(s)` (or `observe_verification`),
  and `connection_opened/closed(listener)` for the connections-per-listener gauge.

Everything lives in prometheus-client's default registry, so metrics other modules define
with prometheus-client directly are exported too. Under `serve` with worker processes the
process-local instruments are shared through prometheus-client's multiprocess mode (files in
`data_dir/metrics`, set up by `gateway.app.use_multiprocess_metrics` before prometheus-client is imported), so
/metrics adds up the listener's and the workers' counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from store.queries import AGE_BUCKETS_MIN, StoreCounts

MESSAGES_RECEIVED = Counter(
    "edocgw_messages_received", "Messages accepted and committed by this process.", ["source"]
)
MESSAGES_PROCESSED = Counter(
    "edocgw_messages_processed",
    "Messages the pipeline of this process finished, by outcome "
    "(processed, quarantined, held, failed).",
    ["outcome"],
)
VERIFY_SECONDS = Histogram(
    "edocgw_verify_seconds",
    "Time to verify the signatures of one document or message, by format.",
    ["format"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RAW_HANDED = Counter(
    "edocgw_pipeline_raw_handed",
    "Messages the pipeline of this process claimed with the bytes the SMTP intake handed it, "
    "instead of reading them from the database (gateway/handoff.py).",
)
INFLOW_HELD = Counter(
    "edocgw_smtp_inflow_held",
    "SMTP transactions whose MAIL FROM answer was held because the pipeline was behind "
    "([smtp] in_flow_delay).",
)
INFLOW_HELD_SECONDS = Counter(
    "edocgw_smtp_inflow_held_seconds",
    "Seconds SMTP transactions were held, in all, because the pipeline was behind.",
)
CONNECTIONS = Gauge(
    "edocgw_connections",
    "Open client connections per listener.",
    ["listener"],
    multiprocess_mode="livesum",
)


def message_received(source: str) -> None:
    MESSAGES_RECEIVED.labels(source).inc()


def message_processed(outcome: str) -> None:
    MESSAGES_PROCESSED.labels(outcome).inc()


def raw_handed() -> None:
    RAW_HANDED.inc()


def observe_verification(seconds: float, fmt: str) -> None:
    VERIFY_SECONDS.labels(fmt).observe(seconds)


def inflow_held(seconds: float) -> None:
    INFLOW_HELD.inc()
    INFLOW_HELD_SECONDS.inc(seconds)


def connection_opened(listener: str) -> None:
    CONNECTIONS.labels(listener).inc()


def connection_closed(listener: str) -> None:
    CONNECTIONS.labels(listener).dec()


class StoreCollector(Collector):
    """Exports the last `StoreCounts` snapshot; the /metrics handler refreshes it per scrape
    (asynchronously, before the synchronous exposition runs)."""

    def __init__(self) -> None:
        self.snapshot: StoreCounts | None = None

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        if s is None:
            return
        msgs = GaugeMetricFamily(
            "edocgw_store_messages", "Messages in the store by state.", labels=["state"]
        )
        for state, n in s.messages_by_state.items():
            msgs.add_metric([state], n)
        yield msgs
        dels = GaugeMetricFamily(
            "edocgw_store_deliveries", "Deliveries in the store by state.", labels=["state"]
        )
        for state, n in s.deliveries_by_state.items():
            dels.add_metric([state], n)
        yield dels
        buckets: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip(AGE_BUCKETS_MIN, s.queue_age_counts, strict=False):
            running += n
            buckets.append((str(bound * 60), running))
        buckets.append(("+Inf", sum(s.queue_age_counts)))
        yield GaugeHistogramMetricFamily(
            "edocgw_queue_age_seconds",
            "Pending deliveries (queued, sending, deferred, held) by the age of their message.",
            buckets=buckets,
            gsum_value=s.queue_age_sum_seconds,
        )
        yield GaugeMetricFamily(
            "edocgw_queue_oldest_age_seconds",
            "Age of the oldest message with a pending delivery (0 when the queue is empty).",
            value=s.oldest_pending_seconds,
        )


MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
STORE = StoreCollector()
REGISTRY.register(STORE)


def registry() -> CollectorRegistry:
    """What /metrics exports: this process's registry, or every process's files."""
    if not os.environ.get(MULTIPROC_ENV):
        return REGISTRY
    r = CollectorRegistry()
    multiprocess.MultiProcessCollector(r)
    r.register(STORE)
    return r


def process_gone(pid: int) -> None:
    """Drop a dead process's live gauges (its counters stay in the sums)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)
