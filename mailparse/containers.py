"""Expanding containers (ZIP, Outlook TNEF) into child attachments, within limits."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from collections.abc import Callable

from .filetype import detect_type
from .limits import Limits
from .models import Attachment
from .textenc import nfc


def make_attachment(
    path: str, filename: str | None, declared: str | None, data: bytes
) -> Attachment:
    """Build an Attachment with its detected type and digest."""
    return Attachment(
        part_path=path,
        filename=filename,
        declared_type=declared,
        detected_type=detect_type(data, filename),
        data=data,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def _zip_name(info: zipfile.ZipInfo) -> str:
    name = info.filename
    if not info.flag_bits & 0x800:  # not flagged UTF-8: zipfile decoded it as cp437
        raw = name.encode("cp437", "replace")
        for cs in ("utf-8", "cp1258"):
            try:
                name = raw.decode(cs)
                break
            except UnicodeDecodeError:
                continue
    return nfc(name.rsplit("/", 1)[-1])


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes | None:
    """Read a member, stopping as soon as it exceeds ``cap`` (headers can lie). Into a
    BytesIO, whose value is handed over without the copy `bytes(bytearray)` makes."""
    out = io.BytesIO()
    with zf.open(info) as fh:
        while True:
            chunk = fh.read(min(1 << 20, cap + 1 - out.tell()))
            if not chunk:
                return out.getvalue()
            out.write(chunk)
            if out.tell() > cap:
                return None


def expand_zip(
    att: Attachment, limits: Limits, depth: int, expand: Callable[[Attachment, int], None]
) -> None:
    """List, read and type the members of a ZIP attachment; a bomb marks it malformed."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(att.data))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError) as exc:
        att.defects.append(f"bad_zip:{type(exc).__name__}")
        att.malformed = True
        return
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if len(infos) > limits.max_zip_members:
            att.defects.append(f"zip_too_many_members:{len(infos)}")
            att.malformed = True
            infos = infos[: limits.max_zip_members]
        total = 0
        for index, info in enumerate(infos, start=1):
            path = f"{att.part_path}.{index}"
            name = _zip_name(info)
            if info.flag_bits & 0x1:
                att.defects.append(f"zip_encrypted_member:{name}")
                continue
            if info.file_size > limits.max_zip_member_bytes:
                att.defects.append(f"zip_member_too_large:{name}:{info.file_size}")
                att.malformed = True
                continue
            if info.compress_size and info.file_size / info.compress_size > limits.max_zip_ratio:
                if info.file_size > 1024 * 1024:
                    att.defects.append(f"zip_ratio:{name}")
                    att.malformed = True
                    continue
            cap = min(limits.max_zip_member_bytes, limits.max_zip_total_bytes - total)
            try:
                data = _read_capped(zf, info, cap)
            except Exception as exc:  # zlib, CRC, truncated data: all just a broken member
                att.defects.append(f"zip_member_unreadable:{name}:{type(exc).__name__}")
                att.malformed = True
                continue
            if data is None:
                att.defects.append(f"zip_member_exceeds_limit:{name}")
                att.malformed = True
                break
            total += len(data)
            child = make_attachment(path, name, None, data)
            att.children.append(child)
            expand(child, depth + 1)


def _tnef_object_count(data: bytes, cap: int) -> int:
    """Walk TNEF object headers cheaply (tnefparse copies the tail per object)."""
    offset, count = 6, 0
    while offset + 12 < len(data):
        (length,) = struct.unpack_from("<I", data, offset + 5)
        offset += length + 11
        count += 1
        if count > cap:
            break
    return count


def expand_tnef(
    att: Attachment, limits: Limits, depth: int, expand: Callable[[Attachment, int], None]
) -> str:
    """Extract the files inside an Outlook ``winmail.dat``; returns its text body if any."""
    from tnefparse import TNEF

    if _tnef_object_count(att.data, limits.max_tnef_objects) > limits.max_tnef_objects:
        att.defects.append("tnef_too_many_objects")
        att.malformed = True
        return ""
    try:
        tnef = TNEF(att.data, do_checksum=False)
    except Exception as exc:  # tnefparse raises assorted errors on bad input
        att.defects.append(f"bad_tnef:{type(exc).__name__}")
        att.malformed = True
        return ""
    for index, item in enumerate(tnef.attachments, start=1):
        try:
            name = item.long_filename() or item.name or None
        except Exception:
            name = None
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        name = nfc(name.strip("\x00")) if name else None
        data = item.data if isinstance(item.data, bytes) else b""
        child = make_attachment(f"{att.part_path}.{index}", name, None, data)
        att.children.append(child)
        expand(child, depth + 1)
    body = tnef.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return nfc(body.strip("\x00")) if isinstance(body, str) else ""


def expand_edxml(att: Attachment, depth: int, expand: Callable[[Attachment, int], None]) -> None:
    """The files an edXML package carries (``AttachmentEncoded``), as children."""
    from .edxml import EdxmlError, read_package

    try:
        pkg = read_package(att.data)
    except EdxmlError as exc:
        att.defects.append(f"bad_edxml:{exc}")
        att.malformed = True
        return
    att.defects.extend(pkg.flags)
    for index, item in enumerate(pkg.attachments, start=1):
        child = make_attachment(
            f"{att.part_path}.{index}",
            nfc(item.name) if item.name else None,
            item.content_type,
            item.data,
        )
        att.children.append(child)
        expand(child, depth + 1)
