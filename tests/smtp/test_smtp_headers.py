"""The stored Message-ID, From and Subject: the listener's fast reading of plain header blocks
must give exactly what the email package gives (its reading is the reference here)."""

from __future__ import annotations

import unicodedata
from email import policy
from email.parser import HeaderParser

from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.smtp.headers import MAX_VALUE, HeaderFacts, header_block, header_facts


def reference(raw: bytes) -> HeaderFacts:
    """The email package's reading, as the listener did it before the fast path."""
    msg = HeaderParser(policy=policy.default).parsestr(
        header_block(raw).decode("utf-8", errors="replace")
    )

    def value(name: str) -> str | None:
        try:
            v = msg.get(name)
            if v is None:
                return None
            try:
                s = str(v)
            except Exception:
                s = str(getattr(v, "_raw", "") or "")
        except Exception:
            return None
        s = unicodedata.normalize("NFC", s.replace("\x00", "")).strip()
        return s.encode("utf-8", errors="replace").decode("utf-8")[:MAX_VALUE] or None

    return HeaderFacts(value("Message-ID"), value("From"), value("Subject"))


NAMES = st.sampled_from(
    ["From", "FROM", "Subject", "subject", "Message-ID", "Message-Id", "To", "X-A", "Date"]
)
VALUE_TEXT = st.lists(
    st.sampled_from(
        list('abcXYZ09 .@<>_-+=?"()\\,;:[]\t!#') + ["đ", "Việt", "=?utf-8?b?xJE=?=", "\x00"]
    ),
    max_size=14,
).map("".join)
SHAPES = st.sampled_from(
    [
        "{v}",
        "<{v}@b.c>",
        "<a@{v}>",
        "{v} <a.b@c.d>",
        "<a@b>",
        "Van Thu <vt@tayninh.gov.vn>",
        "vt@tayninh.gov.vn",
        "Giấy mời họp {v}",
    ]
)
FIELD = st.tuples(NAMES, SHAPES, VALUE_TEXT, st.sampled_from(["", "\r\n\t{v}", "\r\n more"]))
ENDS = st.sampled_from(["\r\n", "\n", "\r"])


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    end = draw(ENDS)
    lines = []
    for name, shape, v, cont in draw(st.lists(FIELD, max_size=6)):
        lines.append(f"{name}: {shape.format(v=v)}{cont.format(v=v)}".replace("\r\n", end))
    odd = draw(st.sampled_from(["", "From someone Mon Jan 1\n", " leading\n", "no colon\n"]))
    if odd and lines:
        lines.insert(draw(st.integers(0, len(lines))), odd.rstrip("\n"))
    return (end.join(lines) + end + end + "body\r\n").encode("utf-8")


@settings(max_examples=3000, deadline=None)
@given(header_blocks())
@example(b"From: <from@a.test>\r\nSubject: La de da\r\nMessage-Id: <1.2@b.c>\r\n\r\nx")
@example(b"Subject: a\r\n\tb\r\nSubject: second\r\n\r\nx")
@example(b'From: "Quoted Name" <a@b.c>\r\n\r\nx')
@example(b"Message-ID: <a(comment)@b>\r\n\r\nx")
def test_fast_reading_agrees_with_the_email_package(raw: bytes) -> None:
    assert header_facts(raw) == reference(raw)


def test_plain_blocks_do_not_need_the_email_package() -> None:
    """Not vacuous: the common shapes take the fast path (and still agree)."""
    import gateway.smtp.headers as h

    raw = (
        b"From: Van Thu <vt@tayninh.gov.vn>\r\nTo: <vanban@localhost>\r\n"
        b"Subject: Giay moi hop\r\nMessage-ID: <20261124.1@tayninh.gov.vn>\r\n\r\nbody"
    )
    fields = h._plain_fields(header_block(raw).decode())
    assert fields is not None
    assert h._PLAIN_FROM.fullmatch(fields["from"])
    assert h._PLAIN_MSGID.fullmatch(fields["message-id"])
    assert h._PLAIN_TEXT.fullmatch(fields["subject"])
    assert (
        header_facts(raw)
        == reference(raw)
        == HeaderFacts("<20261124.1@tayninh.gov.vn>", "Van Thu <vt@tayninh.gov.vn>", "Giay moi hop")
    )
