"""Alembic environment: runs on the connection handed over by store.migrate (no alembic.ini)."""

from alembic import context

from store.models import Base

config = context.config
target_metadata = Base.metadata

connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `edocgw db upgrade` (store.migrate)")

context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
