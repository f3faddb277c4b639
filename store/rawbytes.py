"""A stored message's raw bytes read a slice at a time, for the big ones.

Reading `messages.raw` whole through asyncpg costs about three times the message at once
(the protocol buffer collects the row, then the value is copied out of it): 177 MB for a
63 MB message, measured. Slices of `SLICE` bytes (`substring`, one round trip each) keep
that to the slice: the pipeline writes them to its spool file, the delivery joins them into
one buffer without a further copy.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from store.models import Message

SLICE = 2 * 1024 * 1024


async def raw_slices(
    session: AsyncSession, message_id: int, size: int = SLICE
) -> AsyncIterator[bytes]:
    """The raw bytes of one message, `size` bytes at a time (run it in one transaction, so
    every slice is of the same row version)."""
    total = (
        await session.execute(
            select(func.octet_length(Message.raw)).where(Message.id == message_id)
        )
    ).scalar_one()
    for start in range(0, total or 0, size):
        yield (
            await session.execute(
                select(func.substring(Message.raw, start + 1, size)).where(Message.id == message_id)
            )
        ).scalar_one()


async def read_raw_sliced(session: AsyncSession, message_id: int) -> bytes:
    """The whole raw message, read in slices into one buffer (handed over without a copy)."""
    out = io.BytesIO()
    async for piece in raw_slices(session, message_id):
        out.write(piece)
    return out.getvalue()
