"""The web admin as a `serve` component: uvicorn inside the service's own event loop.

The socket is bound here (so a busy port fails start-up with one clear line, and port 0 gives
the tests a free port, exposed as `.port`); uvicorn's own signal capture is switched off
because the service already handles SIGINT/SIGTERM and stops components in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn

from config import Settings, split_listen
from gateway.admin.app import AdminServerName, build_app
from gateway.admin.auth import load_session_key
from store.db import Database

log = logging.getLogger("edocgw.admin")
START_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class AdminServer:
    name = AdminServerName

    def __init__(self, settings: Settings, db: Database, components: Sequence[Any] = ()) -> None:
        self.settings = settings
        self.db = db
        self.components = components
        self.port: int | None = None
        self.host: str = ""
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        host, port = split_listen(self.settings.admin.listen)
        key = await asyncio.to_thread(load_session_key, self.settings)
        app = build_app(self.settings, self.db, key, self.components)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when the
        # listening socket says TCP (proto 0 here meant 40 ms Nagle stalls on keep-alive).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as e:
            sock.close()
            raise RuntimeError(f"admin.listen {self.settings.admin.listen}: {e.strerror}") from None
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.host, self.port = host, sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=5,
            limit_concurrency=200,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name=self.name)
        async with asyncio.timeout(START_TIMEOUT):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises what stopped it
                    raise RuntimeError("the admin web server stopped during start-up")
                await asyncio.sleep(0.01)
        log.info(f"web admin on {self.url}")

    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 8)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            except Exception as e:
                log.warning("admin web server ended with an error", extra={"error": repr(e)})
        if self._sock is not None:
            self._sock.close()
            self._sock = None
