"""IMAP mailbox names on the wire: modified UTF-7 (RFC 3501 §5.1.3), quoted.

Vietnamese folder names ("Đã xử lý") are common; servers only take them in this encoding.
"""

from __future__ import annotations

import base64


def encode_mailbox(name: str) -> str:
    """Modified UTF-7: printable ASCII as is (`&` as `&-`), the rest as `&<base64 UTF-16>-`."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def quote(arg: str) -> str:
    """An IMAP quoted string (callers have already refused CR, LF and NUL)."""
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def mailbox_arg(name: str) -> str:
    return quote(encode_mailbox(name))
