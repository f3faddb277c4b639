"""The most frequent single statements, run on an asyncpg pool of the process's own.

Around a statement that asyncpg runs in about 60 us of client CPU, SQLAlchemy's async
session spent about 370 us (an `autocommit()` session: the session, a pool checkout, an
isolation-level switch and six greenlet switches; measured on this project's embedded server,
one short statement, 2,000 times, uvloop). The pipeline's claim, the delivery's claim and its
next-due look-up each run once or more per batch: on the 200 KB load, with two letters a
claim, that overhead came to a tenth of the worker's CPU. The pipeline's result write and
the delivery's record of accepted mail, also once per batch, run here too when each is one
statement (receipts off), which also saves the BEGIN and COMMIT round trips a session adds
(gateway/pipeline/writer.py). The listener's pacing reads the backlog (store/backlog.py) on
the same pool, every 20 ms while senders are held.

The statements stay what they were, built once with SQLAlchemy where they live
(store/claims.py, store/results.py, store/deliveries.py); `rows` compiles each once for
asyncpg's dialect and sends the same SQL text with its values in order. Given a session
instead of the pool, it runs the statement through the session as before: one statement,
one text, whichever way it goes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg
from sqlalchemy import literal
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.compiler import SQLCompiler

# A session (inside a caller's transaction, or tests) or the process's own pool (autocommit).
Executor: TypeAlias = AsyncSession | asyncpg.Pool

_DIALECT = PGDialect_asyncpg()
# statement id -> (the statement, kept alive so its id stays its own; its compiled form).
# The statements passed are built once each; the bound only guards against one that is not.
_COMPILED: dict[int, tuple[Any, SQLCompiler]] = {}
_COMPILED_MAX = 256


async def rows(executor: Executor, statement: Any, params: Mapping[str, Any]) -> Sequence[Any]:
    """Every row of *statement* with *params*: tuples that index like SQLAlchemy's rows."""
    if isinstance(executor, AsyncSession):
        return (await executor.execute(statement, dict(params))).all()
    state = _compiled(statement).construct_expanded_state(dict(params))
    async with connection(executor) as conn:
        return await conn.fetch(state.statement, *state.positional_parameters)


@asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of *pool* for one statement; terminated, not handed out again, when its
    protocol is in a state it cannot leave. A terminated backend sends FATAL, then closes;
    when asyncpg reads the FATAL on an idle connection before the close, the connection looks
    open but every statement on it fails ("cannot switch to state 11; another operation (2)
    is in progress"). Terminated, the pool opens a fresh one, and the caller may try again
    there (store.db.connection_lost)."""
    async with pool.acquire() as conn:
        try:
            yield conn
        except asyncpg.InternalClientError:
            conn.terminate()
            raise


async def named_rows(
    executor: Executor, statement: Any, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """`rows` as dicts by column name."""
    found = await rows(executor, statement, params)
    if isinstance(executor, AsyncSession):
        return [r._asdict() for r in found]
    return [dict(r) for r in found]


def _compiled(statement: Any) -> SQLCompiler:
    entry = _COMPILED.get(id(statement))
    if entry is None or entry[0] is not statement:
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.clear()
        entry = _COMPILED[id(statement)] = (statement, statement.compile(dialect=_DIALECT))
    return entry[1]


def const(value: str) -> Any:
    """*value*, fixed in the code (a state, a source), written into the statement's text
    instead of sent as a parameter. asyncpg prepares a statement once per connection; after
    five plans made for the values, PostgreSQL keeps a generic plan while it costs less than
    those did on average. A generic plan of `state = $1` takes any state to match a share
    of the rows, so as finished mail filled the tables it grew dearer than that average and
    PostgreSQL planned the claims afresh at nearly every call: under the 200 KB and signed
    loads, 0.5 ms of planning per message for the two claims and the next-due look-up,
    more than running them (issue 17). With the state in the text, the generic plan reads
    from the statistics how few rows are `received` or due, the same plan as one made for
    the values, and is kept."""
    return literal(value, literal_execute=True)


async def open_pool(dsn: str, *, max_size: int, seconds: float) -> asyncpg.Pool:
    """The pool `rows` runs on: JSON decoded as SQLAlchemy's dialect decodes it, no reset
    round trip when a connection goes back (these statements leave no session state), and
    every statement bounded by *seconds*."""
    return await asyncpg.create_pool(
        dsn,
        min_size=0,
        max_size=max_size,
        timeout=seconds,
        command_timeout=seconds,
        init=_json_codecs,
        reset=no_reset,
    )


async def _json_codecs(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, schema="pg_catalog", encoder=json.dumps, decoder=json.loads, format="text"
        )


async def no_reset(conn: asyncpg.Connection) -> None:
    """asyncpg's default resets a connection on its way back to the pool (RESET ALL, UNLISTEN,
    unlock): one more round trip before the pool's `fetch` returns. The gateway's own pools
    only run statements that leave no session state to reset."""
