"""Where a message's header block ends: one cut, one cap, for every reader of stored mail.

The SMTP listener, IMAP intake and the notices (DSNs, receipts) each read a few header
fields without parsing the body; they all cut the block here, so they agree on what the
headers of a message are, and none of them reads more than ``MAX_HEADER_BLOCK`` bytes.
"""

from __future__ import annotations

# RFC 5322 puts no limit on the header block; real ones are a few KiB, and 256 KiB leaves
# room for long Received chains and DKIM/ARC sets while keeping hostile input bounded.
MAX_HEADER_BLOCK = 256 * 1024


def header_block(raw: bytes) -> bytes:
    """The header block at the start of *raw*: every header line with its line end, without
    the empty line that ends the block (``\\r\\n`` or bare ``\\n`` line ends, mixed or not).
    No empty line within ``MAX_HEADER_BLOCK`` bytes: the first ``MAX_HEADER_BLOCK`` bytes.
    """
    if raw[:1] == b"\n" or raw[:2] == b"\r\n":
        return b""  # an empty first line: no headers at all
    # The first empty line is a line end followed by "\r\n" or "\n". Look for the CRLF form
    # first (nearly all mail), then for a bare LF one only before it: two short scans.
    crlf = raw.find(b"\n\r\n", 0, MAX_HEADER_BLOCK)
    lf = raw.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else MAX_HEADER_BLOCK)
    end = lf if lf >= 0 else crlf
    return raw[: end + 1] if end >= 0 else raw[:MAX_HEADER_BLOCK]
