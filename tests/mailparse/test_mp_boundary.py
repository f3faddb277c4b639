"""mailparse/_boundary.py answers exactly as the stdlib feedparser's compiled boundary pattern,
and messages parse to the same tree with it as without it."""

from __future__ import annotations

import email
import email.feedparser
import re
from email import policy

from hypothesis import given, settings
from hypothesis import strategies as st

import mailparse.mime  # noqa: F401  (installs the matcher)
from mailparse._boundary import BoundaryPattern, boundary_pattern


def stdlib_pattern(boundary: str) -> str:
    """Built as email/feedparser.py builds it."""
    separator = "--" + boundary
    return (
        "(?P<sep>" + re.escape(separator) + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    )


# RFC 2046 boundary characters, and the ones a sloppy mailer puts in anyway.
BOUNDARY = st.text(alphabet="abcXYZ0129'()+_,-./:=? \t\\*[]$^|", min_size=1, max_size=30)
TAIL = st.text(alphabet="-- \t\r\nx=", max_size=8)


@settings(max_examples=400, deadline=None)
@given(BOUNDARY, TAIL, st.booleans())
def test_same_answers_as_the_stdlib_pattern(boundary: str, tail: str, prefixed: bool) -> None:
    pattern = stdlib_pattern(boundary)
    ours = boundary_pattern(pattern)
    assert isinstance(ours, BoundaryPattern)
    theirs = re.compile(pattern)
    line = ("x" if prefixed else "") + "--" + boundary + tail
    a, b = ours.match(line), theirs.match(line)
    assert (a is None) == (b is None), (line, a, b)
    if a is not None and b is not None:
        for g in (0, 1, 2, 3, 4, "sep", "end", "ws", "linesep"):
            assert a.group(g) == b.group(g), (line, g)
        assert a.group("end", "linesep") == b.group("end", "linesep")
        assert a.group() == b.group()


def test_other_patterns_are_compiled_as_usual() -> None:
    fake_re = email.feedparser.re
    assert fake_re is not re  # installed
    assert (
        boundary_pattern(r"(?P<sep>a|b)(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$") is None
    )
    assert isinstance(fake_re.compile(r"^\d+$"), re.Pattern)
    assert isinstance(fake_re.compile(stdlib_pattern("abc"), re.IGNORECASE), re.Pattern)
    assert fake_re.escape("a.b") == re.escape("a.b")


def _tree(msg: email.message.Message) -> list[tuple[str, object, object, object]]:
    return [
        (
            p.get_content_type(),
            p.get_payload() if not p.is_multipart() else None,
            p.preamble,
            p.epilogue,
        )
        for p in msg.walk()
    ]


MESSAGES = [
    # nested multiparts, a preamble, an epilogue, a repeated boundary line, CR-only and LF
    # line ends, whitespace after a boundary, a boundary with regex metacharacters
    (
        'Content-Type: multipart/mixed; boundary="a.b(c)+*"\r\n\r\npreamble\r\n'
        "--a.b(c)+* \t\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        "--a.b(c)+*\r\n--a.b(c)+*\r\n"
        'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
        "--inner\r\nContent-Type: text/plain\r\n\r\nx\r\n--inner\r\n"
        "Content-Type: text/html\r\n\r\n<p>y</p>\r\n--inner--\r\nin-epilogue\r\n"
        "--a.b(c)+*--\r\nepilogue\r\n"
    ),
    'Content-Type: multipart/mixed; boundary="q"\n\n--q\n\nbody\n--qx\n--q--',
    'Content-Type: multipart/mixed; boundary="q"\r\r--q\r\rbody\r--q--\r',
    'Content-Type: multipart/mixed; boundary="never"\r\n\r\nno boundary at all\r\n',
]


def test_messages_parse_to_the_same_tree() -> None:
    for text in MESSAGES:
        ours = email.message_from_string(text, policy=policy.default)
        email.feedparser.re, saved = re, email.feedparser.re
        try:
            theirs = email.message_from_string(text, policy=policy.default)
        finally:
            email.feedparser.re = saved
        assert _tree(ours) == _tree(theirs)
        if text is MESSAGES[0]:
            assert [t[0] for t in _tree(ours)] == [
                "multipart/mixed",
                "text/plain",
                "multipart/alternative",
                "text/plain",
                "text/html",
            ]
        assert [type(d) for d in ours.defects] == [type(d) for d in theirs.defects]
