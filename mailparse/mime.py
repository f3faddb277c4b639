"""``parse(raw) -> ParsedMessage``: the MIME tree walked with Python's ``email`` (policy.default)."""

from __future__ import annotations

import binascii
import datetime as dt
import functools
import html
import io
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.feedparser import FeedParser
from email.headerregistry import HeaderRegistry
from email.message import Message
from email.parser import BytesParser
from email.policy import EmailPolicy, Policy
from email.utils import getaddresses, parsedate_to_datetime

from ._boundary import install as _install_boundary_matcher
from .containers import expand_edxml, expand_tnef, expand_zip, make_attachment
from .filetype import declared_mismatch
from .limits import DEFAULT_LIMITS, Limits
from .models import Attachment, ParsedMessage, SmimeInfo
from .textenc import SURROGATES, decode_bytes, fix_surrogates, nfc

# Defects that mean the MIME structure itself cannot be trusted.
_STRUCTURAL = {
    "StartBoundaryNotFoundDefect",
    "CloseBoundaryNotFoundDefect",
    "MultipartInvariantViolationDefect",
    "NoBoundaryInMultipartDefect",
    "MissingHeaderBodySeparatorDefect",
    "FirstHeaderLineIsContinuationDefect",
}
_SIG_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
_P7M_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_TAG = re.compile(r"<[^>]{0,2000}>")
_FEED = 64 * 1024  # characters fed to the parser at a time
_B64_CHUNK = 1 << 20  # characters of a base64 body encoded at a time
_B64_VALID = re.compile(rb"[A-Za-z0-9+/]*={0,2}")  # what b64decode(validate=True) accepts
# A run of lines made only of the base64 alphabet: never a header (no colon), a boundary
# (starts with "-") or a blank line, so to the parser it is body text whatever it stands for.
_RUN = re.compile(rb"(?m)^(?:[A-Za-z0-9+/=]++\r?\n)++")
# The same runs after the first line, each found with the line end before it: a search led
# by a literal byte jumps from line end to line end, while one led by `^` tries every byte
# (the regex alone over a 246 KB text body of short lines: 1.4 ms, against 0.12 ms).
_RUN_AFTER_EOL = re.compile(rb"\n((?:[A-Za-z0-9+/=]++\r?\n)++)")
_RUN_MIN = 4 * 1024  # runs this long are kept out of the parser (see `parse_bounded`)
_CACHED_HEADER_MAX = 1000  # longer header values are parsed each time, never kept


class _ClassKeepingRegistry(HeaderRegistry):
    """The stdlib's header registry, but the class each kind of header is parsed into is made
    once: the stdlib makes a new class (`type(...)`) for every header it parses, which was
    the largest single cost of reading a message's unique headers (Subject, Message-ID), and
    leaves the collector classes to clean up. The class depends only on the registered
    kind, so this keeps at most one per kind, whatever header names a sender makes up."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type] = {}

    def __getitem__(self, name: str) -> type:
        kind = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(kind)
        if made is None:
            made = self._made[kind] = super().__getitem__(name)
        return made


_DEFAULT = policy.default.clone(header_factory=_ClassKeepingRegistry())


@functools.lru_cache(maxsize=1024)
def _parsed_header(name: str, value: str) -> object:
    return _DEFAULT.header_fetch_parse(name, value)


class _HeaderCachePolicy(EmailPolicy):
    """policy.default, but a header value is parsed once: `email` parses a header again on
    every read, and the walk reads Content-Type (get_content_type, get_param, get_filename)
    over a dozen times per part: 40% of analysing a message. The parsed objects depend only
    on the name and the value and are not changed by readers, so equal values share one."""

    def header_fetch_parse(self, name: str, value: str) -> object:  # type: ignore[override]
        if hasattr(value, "name") or len(value) > _CACHED_HEADER_MAX:
            return super().header_fetch_parse(name, value)
        return _parsed_header(name, value)


POLICY = _HeaderCachePolicy(header_factory=_DEFAULT.header_factory)
_install_boundary_matcher()  # mailparse/_boundary.py: no regex compile per multipart


class _LimitHit(Exception):
    """Raised inside the walk when a hard limit is reached; the result is marked malformed."""


def parse(raw: bytes, limits: Limits = DEFAULT_LIMITS) -> ParsedMessage:
    """Parse one message; never raises: malformed input gives ``malformed=True`` and defects."""
    try:
        return _Walker(raw, limits).run()
    except Exception as exc:  # last resort: parse must never take the pipeline down
        return ParsedMessage(defects=[f"parse_error:{type(exc).__name__}"], malformed=True)


class _Walker:
    def __init__(self, raw: bytes, limits: Limits) -> None:
        self.raw = raw
        self.limits = limits
        self.result = ParsedMessage()
        self.parts = 0  # parts walked
        self.parsed = 0  # parts the parser made (all parses of this message)
        self.count = 0
        self.decoded_total = 0
        self.body_plain: str | None = None
        self.body_html: str | None = None
        # Parts whose body the parser saw as a placeholder: id(part) -> (token, the bytes).
        self.runs: dict[int, tuple[str, memoryview]] = {}

    # -- entry -----------------------------------------------------------------------------
    def run(self) -> ParsedMessage:
        res = self.result
        raw = self.raw
        try:
            return self._run(raw)
        finally:
            res.parts_parsed = self.parsed

    def _parse(self, raw: bytes) -> Bounded:
        """Parse (a message or an attached one) within what is left of the part limit."""
        tree = parse_bounded(raw, max(1, self.limits.max_parts - self.parsed), elide=True)
        self.parsed += tree.parts
        if tree.runs:
            self._settle(tree.message, tree.runs)
        return tree

    def _settle(self, msg: Message, runs: dict[str, memoryview]) -> None:
        """A base64 part whose body is one elided run keeps its placeholder (`_decode` reads
        the bytes); any other placeholder gets its text back, so email sees the message."""
        for part in msg.walk():
            payload = getattr(part, "_payload", None)
            if not isinstance(payload, str) or _RUN_PREFIX not in payload:
                continue
            token = payload.strip("\r\n")
            is_b64 = str(part.get("content-transfer-encoding", "")).lower() == "base64"
            if is_b64 and token in runs:
                self.runs[id(part)] = (token, runs[token])
            else:
                for token, view in runs.items():
                    if token in payload:
                        payload = _put_back(payload, token, view)
                part.set_payload(payload)

    def _restore(self, msg: Message) -> None:
        """Put the text back into *msg* and its parts (for email's own decoding or output)."""
        for part in msg.walk():
            held = self.runs.pop(id(part), None)
            if held is not None:
                token, view = held
                part.set_payload(_put_back(part._payload, token, view))  # type: ignore[attr-defined]

    def _run(self, raw: bytes) -> ParsedMessage:
        res = self.result
        if len(raw) > self.limits.max_message_bytes:
            res.defects.append(f"message_too_large:{len(raw)}")
            res.malformed = True
            end = raw.find(b"\r\n\r\n", 0, 1 << 20)
            raw = raw[: end + 4 if end >= 0 else 1 << 16]
            head = BytesParser(policy=POLICY).parsebytes(raw, headersonly=True)
            self._headers(head)
            return res
        tree = self._parse(raw)
        msg = tree.message
        self._headers(msg)
        try:
            self._walk(msg, "", 0, res.attachments, top=True)
            if tree.stopped:  # the parts made so far are walked, then the limit is named
                raise _LimitHit(f"too_many_parts:>{self.limits.max_parts}")
        except _LimitHit as hit:
            res.defects.append(str(hit))
            res.malformed = True
        except RecursionError:
            res.defects.append("nesting_too_deep")
            res.malformed = True
        body = self.body_plain if self.body_plain is not None else self.body_html
        if body is not None and not res.body_text:
            res.body_text = body
        return res

    # -- headers ---------------------------------------------------------------------------
    def _headers(self, msg: Message) -> None:
        res = self.result
        self._raw_header_defects(msg)
        res.subject = self._header_text(msg, "Subject") or ""
        mid = self._header_text(msg, "Message-ID")
        res.message_id = mid.strip() if mid else None
        res.from_addr = next(iter(self._addresses(msg, ("From",))), None)
        res.to_addrs = self._addresses(msg, ("To", "Cc"))
        res.date = self._date(msg)
        for defect in msg.defects:
            self._defect("", defect)

    def _raw_header_defects(self, msg: Message) -> None:
        """Headers whose 8-bit bytes are not UTF-8 (RFC 6532 allows UTF-8 only): the text
        shown for them is a guess, so the message says so."""
        seen: set[str] = set()
        for name, value in msg.raw_items():
            if not isinstance(value, str) or value.isascii() or name.lower() in seen:
                continue
            try:
                value.encode("ascii", "surrogateescape").decode("utf-8")
            except UnicodeError:
                seen.add(name.lower())
                self.result.defects.append(f"header_invalid_utf8:{name}")

    def _get_all(self, msg: Message, name: str) -> list[object]:
        """``msg.get_all(name)`` with each value cut to ``max_header_chars`` before email's
        header parser reads it: that parser's cost grows faster than the header (a 1 MB
        Subject took seconds), and no real header is that long."""
        limit = self.limits.max_header_chars
        wanted = name.lower()
        out: list[object] = []
        for key, value in msg.raw_items():
            if key.lower() != wanted:
                continue
            if isinstance(value, str) and len(value) > limit:
                value = value[:limit]
                self.result.defects.append(f"header_too_long:{name}")
            out.append(msg.policy.header_fetch_parse(key, value))
        return out

    def _header_text(self, msg: Message, name: str) -> str | None:
        try:
            values = self._get_all(msg, name)
        except Exception as exc:
            self.result.defects.append(f"bad_header:{name}:{type(exc).__name__}")
            return None
        if not values:
            return None
        text = str(values[0])
        if (SURROGATES.search(text) or "\ufffd" in text) and _encoded_word_broken(msg, name):
            self.result.defects.append(f"header_invalid_utf8:{name}")
        return fix_surrogates(" ".join(text.split()))

    def _addresses(self, msg: Message, names: tuple[str, ...]) -> list[str]:
        out: list[str] = []
        for name in names:
            try:
                values = self._get_all(msg, name)
                for value in values:
                    addrs = getattr(value, "addresses", None)
                    if addrs is not None:
                        out.extend(fix_surrogates(a.addr_spec) for a in addrs if a.addr_spec)
                    else:
                        out.extend(a for _, a in getaddresses([str(value)]) if a)
            except Exception as exc:
                self.result.defects.append(f"bad_header:{name}:{type(exc).__name__}")
                try:
                    limit = self.limits.max_header_chars
                    raw_values = [
                        str(v)[:limit] for k, v in msg.raw_items() if k.lower() == name.lower()
                    ]
                    out.extend(a for _, a in getaddresses(raw_values) if "@" in a)
                except Exception:
                    pass
        return [a for a in out if a and a != "<>"]

    def _date(self, msg: Message) -> dt.datetime | None:
        try:
            values = self._get_all(msg, "Date")
            if not values:
                return None
            value = values[0]
            when = getattr(value, "datetime", None)
            if when is None:
                when = parsedate_to_datetime(str(value))
            return when if isinstance(when, dt.datetime) else None
        except Exception:
            self.result.defects.append("bad_header:Date")
            return None

    def _defect(self, path: str, defect: object) -> None:
        name = type(defect).__name__
        self.result.defects.append(f"{path or 'message'}:{name}")
        if name in _STRUCTURAL:
            self.result.malformed = True

    # -- tree ------------------------------------------------------------------------------
    def _walk(
        self, part: Message, path: str, depth: int, out: list[Attachment], top: bool = False
    ) -> None:
        self.parts += 1
        if self.parts > self.limits.max_parts:
            raise _LimitHit(f"too_many_parts:>{self.limits.max_parts}")
        if depth > self.limits.max_depth:
            raise _LimitHit(f"nesting_too_deep:>{self.limits.max_depth}")
        if not top:
            for defect in part.defects:
                self._defect(path, defect)
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            self._embedded(part, path or "1", depth, out)
            return
        if part.is_multipart():
            payload = part.get_payload()
            if not isinstance(payload, list):
                return
            children: list[Message] = [c for c in payload if isinstance(c, Message)]
            if ctype == "multipart/signed" and self.result.smime is None:
                self._smime_signed(part, children, path or "1")
                children = [c for c in children if c.get_content_type() not in _SIG_TYPES]
            for index, child in enumerate(children, start=1):
                child_path = f"{path}.{index}" if path else str(index)
                self._walk(child, child_path, depth + 1, out)
            return
        leaf_path = path or "1"
        data = self._decode(part, leaf_path)
        if data is None:
            return
        if ctype in _P7M_TYPES and self._pkcs7_mime(part, data, leaf_path, depth, out):
            return
        if self._is_body(part, ctype):
            text, defects = decode_bytes(data, part.get_content_charset())
            self.result.defects.extend(f"{leaf_path}:{d}" for d in defects)
            if ctype == "text/plain" and self.body_plain is None:
                self.body_plain = text
            elif ctype == "text/html" and self.body_html is None:
                self.body_html = nfc(html.unescape(_TAG.sub(" ", text)))
            return
        self._attachment(part, ctype, data, leaf_path, depth, out)

    def _is_body(self, part: Message, ctype: str) -> bool:
        if ctype not in ("text/plain", "text/html"):
            return False
        if part.get_content_disposition() == "attachment" or self._filename(part):
            return False
        return (ctype == "text/plain" and self.body_plain is None) or (
            ctype == "text/html" and self.body_html is None
        )

    def _filename(self, part: Message) -> str | None:
        try:
            name = part.get_filename()
        except Exception:
            name = None
        if not name:
            try:
                name = part.get_param("name")  # type: ignore[assignment]
                if isinstance(name, tuple):
                    name = name[2]
            except Exception:
                name = None
        if not name:
            return None
        return fix_surrogates(str(name)).strip() or None

    def _decode(self, part: Message, path: str) -> bytes | None:
        # The stored payload itself: get_payload() copies a big body once more just to look
        # for surrogates.
        encoded = getattr(part, "_payload", None)
        held = self.runs.get(id(part))
        enc_len = len(encoded) if isinstance(encoded, (str, bytes)) else 0
        if held is not None:
            enc_len = len(held[1])
        if enc_len * 3 // 4 > self.limits.max_decoded_bytes:
            self.runs.pop(id(part), None)
            self.result.defects.append(f"{path}:part_too_large:{enc_len}")
            self.result.malformed = True
            return None
        before = len(part.defects)
        try:
            data: object = None
            if held is not None:
                data = _base64_run(held[1])
                if data is None:  # not clean base64: email decodes it and names the defects
                    self._restore(part)
                else:
                    self.runs.pop(id(part), None)
            else:
                data = _base64_body(part)
            if data is None:
                data = part.get_payload(decode=True)
        except Exception as exc:
            self.result.defects.append(f"{path}:undecodable:{type(exc).__name__}")
            self.result.malformed = True
            return None
        # Only the decoded bytes are used from here on: drop the encoded text now rather than
        # when the whole tree goes.
        part.set_payload("")
        for defect in part.defects[before:]:
            self._defect(path, defect)
        if not isinstance(data, bytes):
            data = b""
        self.decoded_total += len(data)
        if self.decoded_total > self.limits.max_total_decoded_bytes:
            raise _LimitHit("decoded_size_limit")
        return data

    def _new(
        self, part: Message, path: str, data: bytes, ctype: str, out: list[Attachment]
    ) -> Attachment:
        self.count += 1
        if self.count > self.limits.max_attachments:
            raise _LimitHit(f"too_many_attachments:>{self.limits.max_attachments}")
        att = make_attachment(path, self._filename(part), ctype, data)
        if len(part.defects):
            att.defects.extend(type(d).__name__ for d in part.defects)
            if any("Base64" in type(d).__name__ for d in part.defects):
                att.malformed = True
        claimed = self._claimed_size(part)
        if claimed is not None and claimed != len(data) and claimed > self.limits.max_decoded_bytes:
            att.defects.append(f"size_claim:{claimed}")
            att.malformed = True
            self.result.defects.append(f"{path}:size_claim:{claimed}")
            self.result.malformed = True
        if declared_mismatch(ctype, att.detected_type):
            att.defects.append(f"declared_type_mismatch:{ctype}")
        out.append(att)
        return att

    @staticmethod
    def _claimed_size(part: Message) -> int | None:
        for value in (
            part.get_param("size", header="content-disposition"),
            part.get("Content-Length"),
        ):
            if value is None:
                continue
            if isinstance(value, tuple):
                value = value[2]
            try:
                return int(str(value).strip())
            except ValueError:
                continue
        return None

    def _attachment(
        self, part: Message, ctype: str, data: bytes, path: str, depth: int, out: list[Attachment]
    ) -> None:
        att = self._new(part, path, data, ctype, out)
        self._expand(att, depth)

    def _expand(self, att: Attachment, depth: int) -> None:
        """Open containers: ZIP members, winmail.dat files, attached messages."""
        if depth > self.limits.max_depth:
            att.defects.append("nesting_too_deep")
            att.malformed = True
            return
        if att.detected_type == "zip":
            expand_zip(att, self.limits, depth, self._expand)
        elif att.detected_type == "tnef":
            body = expand_tnef(att, self.limits, depth, self._expand)
            if body and self.body_plain is None:
                self.body_plain = body
        elif att.detected_type == "edxml":
            expand_edxml(att, depth, self._expand)
        elif att.detected_type == "eml":
            tree = self._parse(att.data)
            self._walk_inner(tree.message, att, depth)
            if tree.stopped:
                raise _LimitHit(f"too_many_parts:>{self.limits.max_parts}")
        self.count += len(att.children)
        if self.count > self.limits.max_attachments:
            raise _LimitHit(f"too_many_attachments:>{self.limits.max_attachments}")

    def _walk_inner(self, inner: Message, att: Attachment, depth: int) -> None:
        saved = (self.body_plain, self.body_html)
        self.body_plain = self.body_html = None  # the inner body is not the outer body
        try:
            self._walk(
                inner,
                att.part_path if inner.is_multipart() else f"{att.part_path}.1",
                depth + 1,
                att.children,
                top=False,
            )
        finally:
            self.body_plain, self.body_html = saved

    def _embedded(self, part: Message, path: str, depth: int, out: list[Attachment]) -> None:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if not isinstance(inner, Message):
            self.result.defects.append(f"{path}:empty_message_rfc822")
            return
        self._restore(inner)
        try:
            data = inner.as_bytes(policy=policy.SMTP)
        except Exception:
            data = b""
        att = self._new(part, path, data, "message/rfc822", out)
        att.detected_type = "eml"
        if not att.filename:
            subject = inner.get("Subject")
            att.filename = f"{fix_surrogates(str(subject))}.eml" if subject else None
        self._walk_inner(inner, att, depth)

    # -- S/MIME ----------------------------------------------------------------------------
    def _smime_signed(self, part: Message, children: list[Message], path: str) -> None:
        sig = next((c for c in children if c.get_content_type() in _SIG_TYPES), None)
        if sig is None:
            self.result.defects.append(f"{path}:signed_without_signature")
            return
        self._restore(sig)
        signature = sig.get_payload(decode=True)
        boundary = part.get_boundary()
        signed = _raw_first_part(self.raw, boundary) if boundary else None
        if signed is None:
            self.result.defects.append(f"{path}:signed_part_not_found")
        self.result.smime = SmimeInfo(
            kind="multipart/signed",
            signed_bytes=signed,
            signature=signature if isinstance(signature, bytes) else b"",
            part_path=path,
        )

    def _pkcs7_mime(
        self, part: Message, data: bytes, path: str, depth: int, out: list[Attachment]
    ) -> bool:
        """Opaque S/MIME: keep the blob for verification and walk the content it carries."""
        smime_type = str(part.get_param("smime-type") or "").lower()
        if smime_type in ("enveloped-data", "authenveloped-data"):
            self.result.defects.append(f"{path}:encrypted_smime")
            return False
        if self.result.smime is None:
            self.result.smime = SmimeInfo(
                kind="pkcs7-mime", signed_bytes=None, signature=data, part_path=path
            )
        content = cms_content(data)
        if content is None:
            self.result.defects.append(f"{path}:pkcs7_content_unreadable")
            return False
        tree = self._parse(content)
        self._walk(tree.message, path, depth + 1, out)
        if tree.stopped:
            raise _LimitHit(f"too_many_parts:>{self.limits.max_parts}")
        return True


def _encoded_word_broken(msg: Message, name: str) -> bool:
    """Whether the replacement characters in a decoded header came from encoded words
    (RFC 2047) whose bytes are not text in their charset (not from the header's own 8-bit
    bytes, already named by `_raw_header_defects`, nor written as U+FFFD on purpose)."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), "")
    if not isinstance(raw, str):
        return False
    if not raw.isascii():
        try:
            raw = raw.encode("ascii", "surrogateescape").decode("utf-8")
        except UnicodeError:
            return False  # named already as 8-bit that is not UTF-8
    return "=?" in raw and "\ufffd" not in raw


def parse_bytes(raw: bytes) -> Message:
    """``BytesParser(policy=policy.default).parsebytes(raw)`` without its whole-message copies.

    parsebytes decodes the message into one str and wraps that in a StringIO, whose buffer
    holds four bytes per character: five times the message before parsing starts. Feeding
    the same parser 64 KiB at a time gives the same tree (the feed parser accepts any split,
    and ASCII with surrogateescape decodes byte by byte).
    """
    return parse_bounded(raw, None).message


@dataclass
class Bounded:
    """What `parse_bounded` built: the tree (only its first parts if `stopped`) and how many
    MIME parts the parser made."""

    message: Message
    parts: int
    stopped: bool
    runs: dict[str, memoryview] = field(default_factory=dict)  # placeholder -> its bytes


class _TooManyParts(Exception):
    pass


class _PartBudget:
    """The message factory the feed parser calls once per MIME part (on the part's first
    line, before reading it): counting there stops the parse at the limit, so a message of
    400,000 empty parts costs what 500 cost. The first message made is the root, which
    holds every part made so far (each is attached to its parent when it is made)."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.parts = 0
        self.root: Message | None = None
        self.armed = False  # FeedParser calls the factory once to probe its signature

    def __call__(self, policy: Policy = POLICY) -> Message:
        msg = policy.message_factory(policy=policy)  # type: ignore[misc]
        if not self.armed:
            return msg
        if self.limit is not None and self.parts >= self.limit:
            raise _TooManyParts
        self.parts += 1
        if self.root is None:
            self.root = msg
        return msg


def parse_bounded(raw: bytes, max_parts: int | None, *, elide: bool = False) -> Bounded:
    """`parse_bytes` that stops once the parser has made `max_parts` parts and is about to
    make another: the work is bounded by the limit, not by the input.

    With *elide*, each run of at least `_RUN_MIN` bytes of base64-alphabet lines (a big
    attachment's body) reaches the parser as one placeholder line: the feed parser keeps
    every body line as a str and then joins them (about 2.6 times the body at once), for a
    body that is only ever decoded. The tree is the same (such lines are body text to the
    parser whatever they are); `Bounded.runs` maps each placeholder to its bytes, and the
    caller decodes them from there or puts the text back (`_put_back`)."""
    budget = _PartBudget(max_parts)
    parser = FeedParser(budget, policy=POLICY)  # type: ignore[arg-type]  # called with policy=
    budget.armed = True
    view = memoryview(raw)
    runs: dict[str, memoryview] = {}
    try:
        for piece in _pieces(raw, view, runs) if elide else (view,):
            for start in range(0, len(piece), _FEED):
                parser.feed(str(piece[start : start + _FEED], "ascii", "surrogateescape"))
        return Bounded(parser.close(), budget.parts, stopped=False, runs=runs)
    except _TooManyParts:
        assert budget.root is not None
        return Bounded(budget.root, budget.parts, stopped=True, runs=runs)


_RUN_PREFIX = "EDOCGWRUN"


def _pieces(
    raw: bytes, view: memoryview, runs: dict[str, memoryview]
) -> Iterator[memoryview | bytes]:
    """*raw* as the parser should see it: long runs replaced by placeholder lines, each
    noted in *runs*. Nothing is copied but the placeholders."""
    nonce = secrets.token_hex(6).upper()
    while (_RUN_PREFIX + nonce).encode() in raw:  # never a token the sender wrote
        nonce = secrets.token_hex(6).upper()
    pos = 0
    for start, end in _runs(raw):
        if end - start < _RUN_MIN:
            continue
        token = f"{_RUN_PREFIX}{nonce}X{len(runs)}"
        runs[token] = view[start:end]
        yield view[pos:start]
        yield token.encode() + (b"\r\n" if raw[end - 2 : end] == b"\r\n" else b"\n")
        pos = end
    yield view[pos:]


def _runs(raw: bytes) -> Iterator[tuple[int, int]]:
    """Where `_RUN` matches in *raw*, as `_RUN.finditer` finds them: a run starts either
    at the first byte or right after a line end (the line before it is not in the run, or
    the run would have started there)."""
    first = _RUN.match(raw)
    if first is not None:
        yield first.span()
    for m in _RUN_AFTER_EOL.finditer(raw, first.end() if first is not None else 0):
        yield m.span(1)


def _put_back(payload: str, token: str, run: memoryview) -> str:
    """*payload* with the text of *run* where its placeholder line was (the line end before
    a boundary belongs to the boundary, so the parser may have dropped the placeholder's)."""
    text = str(run, "ascii")
    eol = "\r\n" if text.endswith("\r\n") else "\n"
    return payload.replace(token + eol, text).replace(token, text[: -len(eol)])


def _base64_run(run: memoryview) -> bytes | None:
    """An elided base64 body decoded a slice at a time (only the result is whole), if it is
    what `_base64_body` accepts; else None."""
    out = io.BytesIO()
    carry = b""
    total = len(run)
    for start in range(0, total, _B64_CHUNK):
        chunk = carry + bytes(run[start : start + _B64_CHUNK]).translate(None, b"\r\n")
        last = start + _B64_CHUNK >= total
        cut = len(chunk) if last else len(chunk) - len(chunk) % 4
        piece, carry = chunk[:cut], chunk[cut:]
        if len(piece) % 4 or not _B64_VALID.fullmatch(piece) or (not last and b"=" in piece):
            return None
        try:
            out.write(binascii.a2b_base64(piece))
        except binascii.Error:
            return None
    return out.getvalue()


def _base64_body(part: Message) -> bytes | None:
    """A well-formed base64 body decoded in about twice its size, else None.

    ``get_payload(decode=True)`` copies the text, splits it into one bytes object per line
    and joins them again: over four times the body at once. For a body that email's strict
    path would accept unchanged (no stray characters, whole quanta) this gives the same bytes;
    anything else returns None and goes through email, which records the defects.
    """
    if str(part.get("content-transfer-encoding", "")).lower() != "base64":  # as email does
        return None
    payload = getattr(part, "_payload", None)
    if not isinstance(payload, str) or not payload.isascii():
        return None
    encoded = bytearray()
    for start in range(0, len(payload), _B64_CHUNK):
        # the same as email's b"".join(body.splitlines()): bytes lines end at CR, LF or CRLF
        encoded += payload[start : start + _B64_CHUNK].encode("ascii").translate(None, b"\r\n")
    if len(encoded) % 4 or not _B64_VALID.fullmatch(encoded):
        return None
    try:
        return binascii.a2b_base64(encoded)
    except binascii.Error:
        return None


def _raw_first_part(raw: bytes, boundary: str) -> bytes | None:
    """The first body part of a multipart exactly as on the wire (RFC 1847: what was signed)."""
    delim = b"--" + boundary.encode("ascii", "surrogateescape")
    pos = 0
    start = -1
    while True:
        idx = raw.find(delim, pos)
        if idx < 0:
            return None
        at_line_start = idx == 0 or raw[idx - 1 : idx] == b"\n"
        if at_line_start:
            if start < 0:
                eol = raw.find(b"\n", idx)
                if eol < 0:
                    return None
                start = eol + 1
            else:
                end = idx - 1  # drop the LF before the delimiter ...
                if end > start and raw[end - 1 : end] == b"\r":
                    end -= 1  # ... and its CR: the line break belongs to the boundary
                return raw[start:end]
        pos = idx + len(delim)


_PEM_CMS = re.compile(rb"-----BEGIN (?:PKCS7|CMS|SIGNED DATA)-----(.*?)-----END", re.S)


def cms_content(blob: bytes) -> bytes | None:
    """The encapsulated content of a CMS SignedData (DER, PEM or bare base64), or None:
    what an opaque S/MIME part or an enveloping ``.p7m`` carries inside."""
    try:
        import base64

        from asn1crypto import cms

        if blob[:1] != b"\x30":  # some clients still send base64 text, some PEM
            pem = _PEM_CMS.search(blob)
            blob = base64.b64decode(pem.group(1) if pem else blob, validate=False)
        info = cms.ContentInfo.load(blob)
        if info["content_type"].native != "signed_data":
            return None
        content = info["content"]["encap_content_info"]["content"]
        value = content.native
        if value is None:
            return None
        return value if isinstance(value, bytes) else content.contents
    except Exception:
        return None


def open_file(
    data: bytes, filename: str | None, limits: Limits = DEFAULT_LIMITS, part_path: str = "1"
) -> Attachment:
    """A standalone file (not a mail) as an Attachment with its containers opened; never raises.
    *part_path* places it in a message (the content unpacked from a ``.p7m``)."""
    att = make_attachment(part_path, filename, None, data)
    walker = _Walker(b"", limits)
    try:
        walker._expand(att, 0)
    except _LimitHit as hit:
        att.defects.append(str(hit))
        att.malformed = True
    except Exception as exc:
        att.defects.append(f"expand_error:{type(exc).__name__}")
        att.malformed = True
    return att
