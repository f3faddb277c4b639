"""Mails built byte for byte the way real clients build them (Outlook, Thunderbird, webmail).

Hand-assembled on purpose: the point is the exact wire forms a parser meets (RFC 2231
continuations, RFC 2047 names, windows-1258 bodies, TNEF, forwarded messages)."""

from __future__ import annotations

import base64
import struct
import unicodedata
import urllib.parse
from email.header import Header

CRLF = "\r\n"
_TONES = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


def encode_cp1258(text: str) -> bytes:
    """Encode Vietnamese as Windows-1258 does: base letters plus combining tone marks."""
    out = bytearray()
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        parts = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in parts if c not in _TONES))
        tones = "".join(c for c in parts if c in _TONES)
        out += base.encode("cp1258", "replace") + tones.encode("cp1258")
    return bytes(out)


def _b64(data: bytes) -> str:
    raw = base64.b64encode(data).decode("ascii")
    return CRLF.join(raw[i : i + 76] for i in range(0, len(raw), 76))


def rfc2231_outlook(name: str, chunk: int = 30) -> str:
    """``filename*0*=utf-8''…; filename*1*=…`` as Outlook writes long non-ASCII names."""
    quoted = urllib.parse.quote(name.encode("utf-8"), safe="")
    pieces = [quoted[i : i + chunk] for i in range(0, len(quoted), chunk)]
    # never split a %XX escape
    fixed: list[str] = []
    carry = ""
    for piece in pieces:
        piece = carry + piece
        cut = piece.rfind("%", max(0, len(piece) - 2))
        carry = piece[cut:] if cut >= 0 else ""
        fixed.append(piece[:cut] if cut >= 0 else piece)
    if carry:
        fixed.append(carry)
    params = []
    for i, piece in enumerate(p for p in fixed if p):
        prefix = "utf-8''" if i == 0 else ""
        params.append(f"filename*{i}*={prefix}{piece}")
    return (";" + CRLF + " ").join(params)


def encoded_word(text: str) -> str:
    """RFC 2047 encoded-words as Thunderbird writes subjects and names."""
    return Header(text, "utf-8").encode()


def make_mail(
    subject: str,
    attachments: list[tuple[str, bytes, str]] = (),  # type: ignore[assignment]
    body: str = "Kính gửi: Văn thư.\nXin gửi văn bản kèm theo.",
    sender: str = "vanthu@snv.tayninh.gov.vn",
    to: str = "vanban@localhost",
    style: str = "thunderbird",
    body_charset: str = "utf-8",
    message_id: str = "<test-1@snv.tayninh.gov.vn>",
    boundary: str = "------------b0undary42",
) -> bytes:
    """A multipart/mixed mail; ``style`` picks how names are encoded (outlook: RFC 2231)."""
    if body_charset.lower() in ("windows-1258", "cp1258"):
        body_bytes = encode_cp1258(body)
    else:
        body_bytes = body.encode(body_charset)
    head = [
        f"From: {encoded_word('Văn thư Sở Nội vụ')} <{sender}>",
        f"To: {to}",
        f"Subject: {encoded_word(subject)}",
        "Date: Tue, 05 Mar 2024 09:15:00 +0700",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
    ]
    if style == "outlook":
        head.append("X-Mailer: Microsoft Outlook 16.0")
    else:
        head.append("User-Agent: Mozilla Thunderbird")
    parts = [
        f"--{boundary}{CRLF}Content-Type: text/plain; charset={body_charset}{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{_b64(body_bytes)}{CRLF}"
    ]
    for name, data, ctype in attachments:
        if style == "outlook":
            disp = f"attachment;{CRLF} {rfc2231_outlook(name)}"
            ctype_line = f'{ctype}; name="{encoded_word(name)}"'
        else:
            disp = f'attachment;{CRLF} filename="{encoded_word(name)}"'
            ctype_line = f'{ctype};{CRLF} name="{encoded_word(name)}"'
        parts.append(
            f"--{boundary}{CRLF}Content-Type: {ctype_line}{CRLF}Content-Disposition: {disp}{CRLF}"
            f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{_b64(data)}{CRLF}"
        )
    text = CRLF.join(head) + CRLF + CRLF + "This is a multi-part message in MIME format." + CRLF
    return (text + "".join(parts) + f"--{boundary}--{CRLF}").encode("ascii")


def make_forward(
    inner: bytes, subject: str = "Fwd: văn bản đến", boundary: str = "fwd-b0und"
) -> bytes:
    """A forward "as attachment": the original message inside a message/rfc822 part."""
    head = (
        f"From: chuyenvien@ubnd.tayninh.gov.vn{CRLF}To: vanban@localhost{CRLF}"
        f"Subject: {encoded_word(subject)}{CRLF}Date: Wed, 06 Mar 2024 08:00:00 +0700{CRLF}"
        f"Message-ID: <fwd-1@ubnd.tayninh.gov.vn>{CRLF}MIME-Version: 1.0{CRLF}"
        f'Content-Type: multipart/mixed; boundary="{boundary}"{CRLF}{CRLF}'
    ).encode("ascii")
    return (
        head
        + f"--{boundary}{CRLF}Content-Type: text/plain; charset=utf-8{CRLF}{CRLF}".encode()
        + "Chuyển tiếp văn bản để xử lý.".encode()
        + CRLF.encode()
        + f"--{boundary}{CRLF}Content-Type: message/rfc822{CRLF}"
        f"Content-Disposition: attachment{CRLF}{CRLF}".encode()
        + inner
        + f"{CRLF}--{boundary}--{CRLF}".encode()
    )


def _tnef_attr(level: int, attr_id: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", checksum)


def make_winmail(files: list[tuple[str, bytes]]) -> bytes:
    """An Outlook ``winmail.dat`` (TNEF) carrying the given files."""
    out = struct.pack("<IH", 0x223E9F78, 0x0001)
    out += _tnef_attr(1, 0x00089006, struct.pack("<I", 0x00010000))  # attTnefVersion
    out += _tnef_attr(1, 0x00069007, struct.pack("<II", 1252, 0))  # attOemCodepage
    for name, data in files:
        out += _tnef_attr(
            2, 0x00069002, b"\x01\x00\xff\xff\xff\xff" + b"\x00" * 8
        )  # attAttachRendData
        out += _tnef_attr(2, 0x00018010, name.encode("utf-8") + b"\x00")  # attAttachTitle
        out += _tnef_attr(2, 0x0006800F, data)  # attAttachData
    return out


def make_signed_shape(inner_part: bytes, signature: bytes, boundary: str = "sig-b0und") -> bytes:
    """A multipart/signed message as S/MIME clients lay it out (signature bytes supplied)."""
    head = (
        f"From: vanthu@bnv.gov.vn{CRLF}To: vanban@localhost{CRLF}Subject: signed{CRLF}"
        f"MIME-Version: 1.0{CRLF}Content-Type: multipart/signed; "
        f'protocol="application/pkcs7-signature"; micalg=sha-256; boundary="{boundary}"{CRLF}{CRLF}'
        f"This is an S/MIME signed message{CRLF}"
    ).encode("ascii")
    sig = (
        f"--{boundary}{CRLF}Content-Type: application/pkcs7-signature; name=smime.p7s{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}Content-Disposition: attachment; filename=smime.p7s{CRLF}{CRLF}"
        f"{_b64(signature)}{CRLF}--{boundary}--{CRLF}"
    ).encode("ascii")
    return head + f"--{boundary}{CRLF}".encode() + inner_part + CRLF.encode() + sig
