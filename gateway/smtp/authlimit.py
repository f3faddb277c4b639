"""Per-client limits: concurrent connections (total, per IP) and failed AUTH attempts per IP.

Both are in-process counters: each receiving process enforces its own share, which is what
protects that process's event loop and memory.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class ConnectionLimiter:
    """Concurrent sessions of one listener: in total, and per client address.

    One per listener, so that idle connections to the relay port cannot lock staff out of
    submission. Like Postfix's exemption of `mynetworks`, clients in `relay_networks` (the
    agencies' own mail servers, which open many sessions at once) are not held to the
    per-address limit, and a session stops counting against its address once it has
    authenticated; both still count in the listener's total."""

    max_total: int
    max_per_ip: int
    exempt: Callable[[str], bool] = lambda ip: False
    total: int = 0
    per_ip: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def admit(self, ip: str) -> tuple[str | None, bool]:
        """Count the connection in: (None, counted per address) or (the 421 reply, False)."""
        if self.total >= self.max_total:
            return "421 4.7.0 Too many connections, try again later", False
        per_ip = not self.exempt(ip)
        if per_ip and self.per_ip[ip] >= self.max_per_ip:
            return "421 4.7.0 Too many connections from your address, try again later", False
        self.total += 1
        if per_ip:
            self.per_ip[ip] += 1
        return None, per_ip

    def forgive(self, ip: str) -> None:
        """The session authenticated: it no longer counts against its address."""
        n = self.per_ip.get(ip, 0) - 1
        if n > 0:
            self.per_ip[ip] = n
        else:
            self.per_ip.pop(ip, None)

    def release(self, ip: str, per_ip: bool) -> None:
        self.total = max(0, self.total - 1)
        if per_ip:
            self.forgive(ip)


@dataclass
class AuthFailures:
    """A sliding one-minute window of failed AUTH attempts per client IP."""

    per_minute: int
    window: float = 60.0
    clock: object = time.monotonic
    _seen: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, ip: str) -> deque[float]:
        q = self._seen.get(ip)
        if q is None:
            return deque()
        now = self.clock()  # type: ignore[operator]
        while q and now - q[0] > self.window:
            q.popleft()
        if not q:
            del self._seen[ip]
        return q

    def blocked(self, ip: str) -> bool:
        return len(self._recent(ip)) >= self.per_minute

    def failed(self, ip: str) -> None:
        self._recent(ip)
        if len(self._seen) > 100_000:  # a flood of distinct addresses: forget the oldest
            self._seen.pop(next(iter(self._seen)))
        self._seen.setdefault(ip, deque()).append(self.clock())  # type: ignore[operator]
