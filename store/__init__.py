"""edocgw's PostgreSQL store: models, repositories, migrations and the embedded server."""

from store.db import CHANNEL_DELIVERIES, CHANNEL_RECEIVED, Database, asyncpg_dsn, open_database

__all__ = ["CHANNEL_DELIVERIES", "CHANNEL_RECEIVED", "Database", "asyncpg_dsn", "open_database"]
