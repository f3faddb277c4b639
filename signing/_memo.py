"""A per-process memo of pure results, emptied when full.

Verification re-reads the same few certificates in every document an agency signs; what is
derived from their bytes (a full parse, a name's preparation, report fields, a valid chain)
is remembered here. Emptied rather than evicted one by one when full: a flood of new
certificates costs a re-read, never unbounded memory.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._values: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._values.get(key)

    def put(self, key: K, value: V) -> V:
        if len(self._values) >= self.size:
            self._values.clear()
        self._values[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)
