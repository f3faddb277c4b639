"""The raw bytes of messages this process's pipeline just read, for its delivery to reuse.

A message is read from the database by the pipeline's claim and, moments later, by the
delivery's claim of each of its deliveries: the same bytes, de-TOASTed and sent over the
socket twice. When pipeline and delivery run in one process (the default), the delivery
takes them from here instead (issue 17: a second read of a 200 KB message costs PostgreSQL
about 0.45 ms of CPU and the worker 0.05 ms). Stored mail never changes, so a copy kept here
is always right; one not here is read from the database as before.

Bounded by count and bytes; only messages worth a second read (from `min_size`) are kept,
since the claim sends the kept ids to PostgreSQL.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

MIN_SIZE = 8 * 1024
MAX_ITEM = 256 * 1024  # the delivery claim's own inline limit (store.deliveries.INLINE_RAW)
MAX_BYTES = 16 * 1024 * 1024
MAX_ITEMS = 256

K = TypeVar("K", int, str)


class BytesLRU(Generic[K]):
    """A small LRU of key → raw bytes, bounded by count and bytes, keeping only items of
    `min_size` to `max_item` bytes. Also the intake's hand-off (gateway/handoff.py)."""

    def __init__(
        self,
        *,
        min_size: int = MIN_SIZE,
        max_item: int = MAX_ITEM,
        max_bytes: int = MAX_BYTES,
        max_items: int = MAX_ITEMS,
    ) -> None:
        self.min_size, self.max_item = min_size, max_item
        self.max_bytes, self.max_items = max_bytes, max_items
        self._items: OrderedDict[K, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0  # reads served from here (for tests)

    def put(self, key: K, raw: bytes) -> None:
        if not self.min_size <= len(raw) <= self.max_item or key in self._items:
            return
        self._items[key] = raw
        self._bytes += len(raw)
        while self._bytes > self.max_bytes or len(self._items) > self.max_items:
            _, old = self._items.popitem(last=False)
            self._bytes -= len(old)

    def get(self, key: K) -> bytes | None:
        raw = self._items.get(key)
        if raw is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return raw

    def pop(self, key: K) -> bytes | None:
        """The bytes, no longer kept here."""
        raw = self._items.pop(key, None)
        if raw is not None:
            self._bytes -= len(raw)
            self.hits += 1
        return raw

    def keys(self) -> list[K]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)


class RecentRaw(BytesLRU[int]):
    """Message id → the raw bytes the pipeline read."""
