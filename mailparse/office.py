"""Text of the older office formats: Word 97–2003 (.doc), RTF and OpenDocument (.odt).

Each gives :data:`~mailparse.text.Rows` as the DOCX reader does: paragraphs page-wide, a table
row's cells side by side (the Decree 30 header and signature blocks are two-column tables).

Readers, and why:
- DOC: olefile (pure Python, maintained, already how the OLE type is told) and the Word 97
  piece table read here, in-process: no ``antiword``/``catdoc`` process per document, and the
  table-cell marks survive, which plain-text converters flatten. Word 6/95 files and encrypted
  ones are ``unreadable`` with that reason.
- RTF: striprtf (pure Python, small, maintained; honours ``\\ansicpg`` and font charsets, so
  cp1258 Vietnamese decodes), with table rows kept as rows.
- ODT: zipfile + lxml on ``content.xml``, as the DOCX reader does; no odfpy needed.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile

from lxml import etree

from .limits import DEFAULT_LIMITS, Limits
from .text import Cell, ExtractError, Rows
from .textenc import nfc

_TEXT_NS = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE_NS = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE_NS = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_CELL_BREAK = "\x01"


def _clean(text: str) -> str:
    return nfc(" ".join(text.split()))


def _table_rows(table: list[list[list[str]]], rows: Rows) -> None:
    """Rows of a table whose cells hold paragraphs: the i-th paragraphs of all cells share a row."""
    for cells in table:
        # a cell's paragraphs, and the lines a manual break (DOC's \x0b) makes in them
        cells = [[p for x in c for p in (_clean(y) for y in x.split("\x0b")) if p] for c in cells]
        if not cells or not any(cells):
            continue
        width = 1.0 / len(cells)
        for i in range(max(len(c) for c in cells)):
            rows.append(
                [
                    Cell(col[i], k * width + 0.02, (k + 1) * width - 0.02)
                    for k, col in enumerate(cells)
                    if i < len(col)
                ]
            )
        rows.append([])


def _over(rows: Rows, limits: Limits) -> bool:
    return sum(len(c.text) for r in rows for c in r) > limits.max_text_chars


# -- DOC -----------------------------------------------------------------------------------


def _word_text(data: bytes) -> str:
    """The main story of a Word 97–2003 document, from its piece table (MS-DOC 2.4.1)."""
    import olefile

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except Exception as exc:
        raise ExtractError(f"doc_unreadable:{type(exc).__name__}") from None
    try:
        if not ole.exists("WordDocument"):
            raise ExtractError("doc_unreadable:no_word_stream")
        wd = ole.openstream("WordDocument").read()
        if len(wd) < 0x200:
            raise ExtractError("doc_unreadable:short")
        ident, nfib = struct.unpack_from("<HH", wd, 0)
        flags = struct.unpack_from("<H", wd, 0x0A)[0]
        if ident != 0xA5EC or nfib < 0x00C1:
            raise ExtractError("doc_unreadable:old_word_format")
        if flags & 0x0100:
            raise ExtractError("encrypted")
        table = "1Table" if flags & 0x0200 else "0Table"
        if not ole.exists(table):
            raise ExtractError("doc_unreadable:no_table_stream")
        tbl = ole.openstream(table).read()
        pos = 32
        csw = struct.unpack_from("<H", wd, pos)[0]
        pos += 2 + csw * 2
        cslw = struct.unpack_from("<H", wd, pos)[0]
        ccp_text = struct.unpack_from("<i", wd, pos + 2 + 3 * 4)[0]
        pos += 2 + cslw * 4 + 2
        fc_clx, lcb_clx = struct.unpack_from("<II", wd, pos + 33 * 8)
        clx = tbl[fc_clx : fc_clx + lcb_clx]
    except ExtractError:
        raise
    except Exception as exc:
        raise ExtractError(f"doc_unreadable:{type(exc).__name__}") from None
    finally:
        ole.close()
    i = 0
    while i < len(clx) and clx[i] == 0x01:  # Prc: property modifiers, skipped
        i += 3 + struct.unpack_from("<h", clx, i + 1)[0]
    if i >= len(clx) or clx[i] != 0x02:
        raise ExtractError("doc_unreadable:no_piece_table")
    lcb = struct.unpack_from("<I", clx, i + 1)[0]
    plc = clx[i + 5 : i + 5 + lcb]
    n = (len(plc) - 4) // 12
    cps = struct.unpack_from(f"<{n + 1}I", plc, 0)
    parts: list[str] = []
    for k in range(n):
        start, end = cps[k], min(cps[k + 1], max(ccp_text, 0))
        if end <= start:
            continue
        fc = struct.unpack_from("<I", plc, 4 * (n + 1) + 8 * k + 2)[0]
        count = end - start
        if fc & 0x40000000:
            off = (fc & 0x3FFFFFFF) // 2
            parts.append(wd[off : off + count].decode("cp1252", "replace"))
        else:
            off = fc & 0x3FFFFFFF
            parts.append(wd[off : off + 2 * count].decode("utf-16-le", "replace"))
    return "".join(parts)


_FIELD = re.compile(r"\x13[^\x13\x14\x15]*\x14|\x13[^\x13\x14\x15]*\x15")


def doc_rows(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Rows:
    """Paragraphs and table rows of a .doc (cell ends are \\x07, a row ends with one more)."""
    text = _word_text(data)
    for _ in range(3):  # nested fields: instruction dropped, shown result kept
        text = _FIELD.sub("", text)
    text = text.replace("\x15", "").replace("\x1e", "-").replace("\x1f", "\xad")
    # \x0b is a manual line break (Shift+Enter): kept, it ends a printed line as in DOCX
    text = re.sub(r"[\x01\x08\x0c]", "\r", text)
    rows: Rows = []
    table: list[list[list[str]]] = []
    row: list[list[str]] = []
    pending: list[str] = []  # paragraphs not yet known to be in a cell or in the body
    buf: list[str] = []
    after_cell = False

    def flush(paragraphs: list[str]) -> None:
        nonlocal table
        if table:
            _table_rows(table, rows)
            table = []
        for p in paragraphs:
            lines = [t for t in (_clean(x) for x in p.split("\x0b")) if t]
            rows.extend([Cell(t, 0.0, 1.0, k > 0)] for k, t in enumerate(lines))
            if not lines:
                rows.append([])

    for ch in text:
        if ch == "\r":
            pending.append("".join(buf))
            buf, after_cell = [], False
        elif ch == "\x07":
            if after_cell and not buf and not pending:
                table.append(row)  # a second mark in a row: the row's end
                row, after_cell = [], False
                continue
            if not row:
                # A row begins: which pending paragraphs are the first cell's is said by the
                # paragraph marks' "in table" property, not read here. Taken instead: those
                # after the body's last blank or long paragraph, from "Nơi nhận" when present.
                cut = max(
                    (i + 1 for i, p in enumerate(pending) if not p.strip() or len(p) > 120),
                    default=0,
                )
                nn = [i for i, p in enumerate(pending) if p.strip().lower().startswith("nơi nhận")]
                cut = max(cut, nn[-1] if nn else 0, len(pending) - 8)
                flush(pending[:cut])
                pending = pending[cut:]
            row.append([*pending, "".join(buf)])
            pending, buf, after_cell = [], [], True
        else:
            buf.append(ch)
            after_cell = False
        if len(rows) % 50 == 0 and _over(rows, limits):
            break
    if row:
        table.append(row)
    flush([*pending, "".join(buf)])
    return rows


# -- RTF -----------------------------------------------------------------------------------

_PAR = re.compile(r"\\par(?![a-z])\s?")


def _rtf_cells_kept(src: str) -> str:
    """Paragraph breaks inside table rows become a private mark, so striprtf's output keeps a
    row on one line (``\\cell`` → ``|``) and each cell's paragraphs can be put side by side."""
    out: list[str] = []
    for segment in re.split(r"(\\row(?![a-z]))", src):
        start = segment.rfind("\\trowd")
        if start >= 0 and "\\cell" in segment[start:]:
            segment = segment[:start] + _PAR.sub(_CELL_BREAK, segment[start:])
        out.append(segment)
    return "".join(out)


def rtf_rows(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Rows:
    from striprtf.striprtf import rtf_to_text

    try:
        src = data[: limits.max_text_chars * 8].decode("latin-1")
        text = rtf_to_text(_rtf_cells_kept(src), errors="ignore")
    except Exception as exc:
        raise ExtractError(f"rtf_unreadable:{type(exc).__name__}") from None
    rows: Rows = []
    table: list[list[list[str]]] = []
    for line in text.splitlines():
        if "|" in line and (_CELL_BREAK in line or line.rstrip().endswith("|")):
            cells = line.rstrip().rstrip("|").split("|")
            table.append([c.split(_CELL_BREAK) for c in cells])
            continue
        if table:
            _table_rows(table, rows)
            table = []
        p = _clean(line.replace(_CELL_BREAK, " "))
        rows.append([Cell(p, 0.0, 1.0)] if p else [])
    if table:
        _table_rows(table, rows)
    return rows


# -- ODT -----------------------------------------------------------------------------------


def _odf_text(el: etree._Element) -> str:
    parts: list[str] = []

    def walk(node: etree._Element) -> None:
        if node.text:
            parts.append(node.text)
        for child in node:
            tag = etree.QName(child).localname if isinstance(child.tag, str) else ""
            if tag == "s":
                parts.append(" ")
            elif tag == "tab":
                parts.append(" ")
            elif tag == "line-break":  # ends a printed line, as a DOCX w:br does
                parts.append("\x0b")
            elif tag not in ("note", "annotation"):
                walk(child)
            if child.tail:
                parts.append(child.tail)

    walk(el)
    return "\x0b".join(t for t in (_clean(x) for x in "".join(parts).split("\x0b")) if t)


def odt_rows(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Rows:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            info = zf.getinfo("content.xml")
            if info.file_size > 64 * 1024 * 1024:
                raise ExtractError("odt_too_large")
            xml = zf.read(info)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        root = etree.fromstring(xml, parser)
    except ExtractError:
        raise
    except Exception as exc:
        raise ExtractError(f"odt_unreadable:{type(exc).__name__}") from None
    body = root.find(f"{{{_OFFICE_NS}}}body/{{{_OFFICE_NS}}}text")
    rows: Rows = []
    if body is None:
        return rows

    def block(el: etree._Element) -> None:
        tag = etree.QName(el).localname
        if tag in ("p", "h"):
            lines = [t for t in _odf_text(el).split("\x0b") if t]
            rows.extend([Cell(t, 0.0, 1.0, k > 0)] for k, t in enumerate(lines))
            if not lines:
                rows.append([])
        elif tag == "table":
            table = []
            for tr in el.iter(f"{{{_TABLE_NS}}}table-row"):
                cells = [
                    [_odf_text(p) for p in tc.iter(f"{{{_TEXT_NS}}}p", f"{{{_TEXT_NS}}}h")]
                    for tc in tr
                    if etree.QName(tc).localname == "table-cell"
                ]
                table.append(cells)
            _table_rows(table, rows)
        elif tag in ("list", "list-item", "section", "list-header"):
            for child in el:
                block(child)

    for el in body:
        if isinstance(el.tag, str):
            block(el)
        if _over(rows, limits):
            break
    return rows
