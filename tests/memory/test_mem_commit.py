"""The SMTP committer lets go of a message once its row is committed.

Its writer used to keep the last batch in a local variable while waiting for the next
message, so an idle gateway held the last message's bytes (up to max_message_size) forever.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

from gateway.smtp.commit import Committer
from store.db import Database
from store.messages import NewMessage


async def test_a_committed_message_is_not_kept(db: Database) -> None:
    committer = Committer(db, writers=1)
    await committer.start()
    try:
        message = NewMessage(
            source="smtp",
            peer="127.0.0.1",
            raw=b"Subject: x\r\n\r\n" + b"x" * 1_000_000 + b"\r\n",
            mail_from="vanthu@tayninh.gov.vn",
            rcpt_to=["vanban@dich.gov.vn"],
        )
        kept = weakref.ref(message)
        assert await committer.commit(message) > 0
        del message
        await asyncio.sleep(0.05)  # the writer goes back to waiting for the next message
        gc.collect()
        assert kept() is None, "the committer still holds the message it stored"
    finally:
        await committer.close()
