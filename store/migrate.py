"""Alembic, configured in code so the package needs no alembic.ini next to it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_connection(connection: Connection) -> list[str]:
    """Upgrade to head on a sync connection; return the revisions that were applied."""
    cfg = alembic_config(connection)
    before = current_revision(connection)
    script = ScriptDirectory.from_config(cfg)
    pending = [
        s.revision
        for s in script.iterate_revisions("head", before or "base")
        if s.revision != before
    ]
    command.upgrade(cfg, "head")
    return list(reversed(pending))
