"""``classify(attachment, context) -> DocumentFacts``: edXML header, else text, else filename/subject.

Never raises: a document that cannot be read gives empty facts with a flag saying why."""

from __future__ import annotations

import re
from dataclasses import replace

from . import doctypes, edxml, legacyenc, ocr
from .agency import find_codes
from .facts import DATE_RE, TextFacts, parse_date, read
from .limits import DEFAULT_LIMITS, Limits
from .models import Attachment, ClassifyContext, DocumentFacts
from .text import ExtractError, PdfProbe, extract_rows

C_EDXML, C_TITLE, C_TEXT, C_INFER, C_FILENAME, C_SUBJECT = 0.98, 0.95, 0.85, 0.6, 0.5, 0.4

_FREE_NUMBER = re.compile(
    r"(?<![\d/])(\d{1,6})\s*/\s*(?:(\d{4})\s*/\s*)?([A-Za-zĐđ][\wĐđ]*(?:-[\wĐđ]+)+|[A-Za-zĐđ]{1,6}\d{1,3})(?![\w-])"
)
_FILE_NUMBER = re.compile(
    r"(?<!\d)(\d{1,6})[_. ](?:(\d{4})[_. ])?([A-Za-zĐđ][A-Za-zĐđ0-9]*(?:-[A-Za-zĐđ0-9]+)+)"
)
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fw|fwd|tl|chuyển tiếp|trả lời)\s*:\s*)+", re.I)
_VV = re.compile(r"\b(?:V/v|về việc)\s+(.+)$", re.I)
_SUBJECT_MARK = re.compile(
    r"(?<!\w)(HỎA TỐC HẸN GIỜ|HOẢ TỐC HẸN GIỜ|HỎA TỐC|HOẢ TỐC|THƯỢNG KHẨN|KHẨN|TUYỆT MẬT|TỐI MẬT|MẬT)(?!\w)"
)


def classify(
    att: Attachment, ctx: ClassifyContext | None = None, limits: Limits = DEFAULT_LIMITS
) -> DocumentFacts:
    """Facts of one attachment; never raises."""
    facts = DocumentFacts()
    ctx = ctx or ClassifyContext()
    probe = PdfProbe()  # what the text step saw of the file, for the scan step
    steps = (
        lambda: _from_edxml(att, facts),
        lambda: _from_text(att, facts, limits, probe),
        lambda: _from_scan(att, facts, limits, probe),
        lambda: _from_filename(att.filename, facts),
        lambda: _from_context(ctx, facts),
        lambda: _finish(facts),
    )
    for step in steps:
        try:
            step()
        except ExtractError as exc:
            facts.flags.append(str(exc))
        except Exception as exc:  # one bad reader must not lose what the others found
            facts.flags.append(f"classify_error:{type(exc).__name__}")
    return facts


def _set_kind(facts: DocumentFacts, kind: str | None, source: str, conf: float) -> None:
    if kind and "kind" not in facts.sources:
        facts.set("kind", kind, source, conf)
        abbr = doctypes.ABBR_OF.get(kind)
        if abbr:
            facts.set("kind_abbr", abbr, source, conf)


def _notation_kind(notation: str | None, facts: DocumentFacts) -> str | None:
    if not notation:
        return None
    kind, flag = doctypes.type_by_abbr(notation.split("-", 1)[0])
    if flag and flag not in facts.flags:
        facts.flags.append(flag)
    return kind


# -- edXML ---------------------------------------------------------------------------------


def _from_edxml(att: Attachment, facts: DocumentFacts) -> None:
    if att.detected_type != "edxml":
        return
    try:
        pkg = edxml.read_package(att.data)
    except edxml.EdxmlError as exc:
        facts.flags.append(f"edxml_unreadable:{exc}")
        return
    src = "edxml"
    facts.flags.extend(pkg.flags)
    facts.from_code = pkg.from_code
    facts.to_codes = pkg.to_codes
    number, year, notation = pkg.code_number, None, pkg.code_notation
    if notation:  # some senders put "30/2020/NĐ-CP" or "2020/NĐ-CP" in CodeNotation
        m = re.match(r"^(?:(\d{1,6})/)?(?:(\d{4})/)?(.+)$", notation)
        if m:
            if m.group(1) and m.group(2):
                number = number or m.group(1)
                year, notation = int(m.group(2)), m.group(3)
            elif m.group(1) and not m.group(2) and len(m.group(1)) == 4 and number:
                year, notation = int(m.group(1)), m.group(3)
            elif m.group(1) and not number:
                number, notation = m.group(1), m.group(3)
    kind = doctypes.type_by_title(pkg.type_name) if pkg.type_name else None
    _set_kind(facts, kind or _notation_kind(notation, facts), src, C_EDXML)
    facts.set("number", number, src, C_EDXML)
    facts.set("year", year, src, C_EDXML)
    facts.set("notation", notation, src, C_EDXML)
    facts.set("issuer", pkg.from_organ.name if pkg.from_organ else None, src, C_EDXML)
    facts.set("place", pkg.place, src, C_EDXML)
    facts.set("date", pkg.promulgation_date, src, C_EDXML)
    facts.set("subject", pkg.subject, src, C_EDXML)
    _set_signer(
        facts, pkg.signer_competence, pkg.signer_position, pkg.signer_full_name, src, C_EDXML
    )
    if pkg.priority is not None:
        facts.set("urgency", pkg.urgency, src, C_EDXML)
        if (
            pkg.urgency is None
        ):  # Priority 0 is an explicit "normal": later sources may not override
            facts.sources.setdefault("urgency", src)
            facts.confidence.setdefault("urgency", C_EDXML)
    recipients = list(pkg.to_places) or [o.name for o in pkg.to if o.name]
    facts.set("recipients", recipients, src, C_EDXML)
    facts.set("agency_codes", pkg.to_codes, src, C_EDXML)


def _set_signer(
    facts: DocumentFacts, comp: str | None, pos: str | None, name: str | None, src: str, conf: float
) -> None:
    """``signer`` is the name; position and competence prefix are facts of their own."""
    if "signer" in facts.sources or "signer_position" in facts.sources or not (name or pos):
        return
    facts.set("signer", name, src, conf)
    facts.set("signer_position", pos, src, conf)
    facts.set("signer_competence", comp, src, conf)


# -- document text -------------------------------------------------------------------------


def _from_text(att: Attachment, facts: DocumentFacts, limits: Limits, probe: PdfProbe) -> None:
    if att.detected_type not in TEXT_TYPES or att.malformed and not att.data:
        return
    rows = extract_rows(att.data, att.detected_type, limits, probe)
    if not rows:
        return
    legacy = legacyenc.detect([c.text for row in rows for c in row])
    if legacy is not None or any("\xad" in c.text for row in rows for c in row):
        # typed in .VnTime or VNI-Times: read it as the typist saw it (and soft hyphens, which
        # are TCVN3's ư, are otherwise invisible)
        rows = [[replace(c, text=legacyenc.convert(c.text, legacy)) for c in row] for row in rows]
    if legacy is not None:
        facts.flags.append(f"legacy_font:{legacy}")
    facts.text_chars = sum(len(c.text) for row in rows for c in row)
    tf = read(rows)
    if not any(r for r in rows):
        facts.flags.append("no_text_layer")
        return
    _apply_text(tf, facts)


def _apply_text(tf: TextFacts, facts: DocumentFacts) -> None:
    src = "text"
    facts.flags.extend(f for f in tf.flags if f not in facts.flags)
    notation_kind = _notation_kind(tf.notation, facts)
    if tf.title_kind:
        if notation_kind and notation_kind != tf.title_kind:
            facts.flags.append(f"kind_notation_mismatch:{tf.notation}")
        _set_kind(facts, tf.title_kind, src, C_TITLE)
    elif notation_kind:
        _set_kind(facts, notation_kind, src, C_INFER)
    elif tf.cong_van_subject or tf.notation:
        _set_kind(facts, "Công văn", src, C_INFER)
    facts.set("number", tf.number, src, C_TEXT)
    facts.set("year", tf.year, src, C_TEXT)
    facts.set("notation", tf.notation, src, C_TEXT)
    facts.set("issuer", tf.issuer, src, C_INFER)
    if "issuer" in facts.sources and facts.sources["issuer"] == src:
        facts.set("parent_issuer", tf.parent_issuer, src, C_INFER)
    facts.set("place", tf.place, src, C_TEXT)
    facts.set("date", tf.date, src, C_TEXT)
    facts.set("subject", tf.subject, src, C_TEXT)
    _set_signer(facts, tf.competence, tf.position, tf.name, src, C_TEXT)
    facts.set("urgency", tf.urgency, src, C_TEXT)
    facts.set("secrecy", tf.secrecy, src, C_TEXT)
    recipients: list[str] = []
    for item in tf.kinh_gui + tf.noi_nhan:
        if item not in recipients:
            recipients.append(item)
    facts.set("recipients", recipients, src, C_TEXT)
    facts.set("agency_codes", tf.agency_codes, src, C_TEXT)
    facts.set("meeting_start", tf.meeting_start, src, C_TEXT)
    facts.set("meeting_place", tf.meeting_place, src, C_TEXT)


# -- scans, and what stays unread -------------------------------------------------------

TEXT_TYPES = ("pdf", "docx", "doc", "odt", "rtf", "text")
# Documents in their own right: text must come out of them, or they are `unreadable`.
_MUST_READ = frozenset({"pdf", "docx", "doc", "odt", "rtf"})
_NO_READER = frozenset({"xlsx", "xls", "pptx"})
MIN_TEXT_LAYER = 40  # fewer characters than this on a PDF's text layer: it is a scan
MAX_STAMP_TEXT = 1500  # a scan's text layer this short may be a signing stamp alone
MIN_OCR_TEXT = 20  # less OCR text than this: an image is a picture, a PDF page is unread
C_OCR = C_TEXT  # scaled by Tesseract's word confidence


def _first_page_is_picture(data: bytes, probe: PdfProbe) -> bool:
    """As the text step saw it when PDFium read page 1, else asked of the file."""
    if probe.first_page_picture is not None:
        return probe.first_page_picture
    return ocr.first_page_is_picture(data)


def _from_scan(att: Attachment, facts: DocumentFacts, limits: Limits, probe: PdfProbe) -> None:
    """Scans by OCR, read by the same fact readers as text layers; then mark a document
    whose text could not be read `unreadable` (a secrecy mark may be on it)."""
    kind = att.detected_type
    if kind == "image" and not ocr.is_document_image(att.data):
        return
    if kind == "pdf" and any(f.startswith("pdf_text_unreadable") for f in facts.flags):
        # pypdf could not parse it: a damaged or password-protected file, not a scan.
        try:
            ocr.pdf_page_count(att.data)
            _unreadable(facts, "pdf_unreadable")
        except ocr.OcrError as exc:
            _unreadable(facts, exc.reason.split(":", 1)[0])
        return
    scan_pdf = kind == "pdf" and (
        facts.text_chars < MIN_TEXT_LAYER
        # A signed scan: the signing tool's stamp is the only text ("Ký bởi: …"), and the
        # document's own header is in the picture.
        or (
            facts.text_chars < MAX_STAMP_TEXT
            and not {"number", "kind"} & set(facts.sources)
            and _first_page_is_picture(att.data, probe)
        )
    )
    if kind == "image" or scan_pdf:
        try:
            scan = (
                ocr.read_image(att.data, limits)
                if kind == "image"
                else ocr.read_pdf(att.data, limits)
            )
        except ocr.OcrError as exc:
            _unreadable(facts, exc.reason)
            return
        if kind == "image" and scan.chars < MIN_OCR_TEXT:
            facts.flags.append("image_without_text")
            return
        if scan.chars < MIN_OCR_TEXT:  # a blank or unreadable page: OCR read no words
            _unreadable(facts, "no_text")
            return
        facts.text_chars = scan.chars
        _apply_ocr(scan, facts)
    elif kind in _MUST_READ and facts.text_chars == 0:
        failed = next(
            (f for f in facts.flags if f.startswith(("docx_", "doc_", "odt_", "rtf_"))), None
        )
        _unreadable(facts, failed.split(":", 1)[0] if failed else "no_text")
    elif kind in _NO_READER:
        _unreadable(facts, f"no_reader:{kind}")


def _apply_ocr(scan: ocr.ScanText, facts: DocumentFacts) -> None:
    """The text readers' facts with source ``ocr`` and Tesseract's confidence for each."""
    before = set(facts.sources)
    _apply_text(read(scan.rows), facts)
    for name in set(facts.sources) - before:
        facts.sources[name] = "ocr"
        facts.confidence[name] = round(C_OCR * scan.confidence_of(getattr(facts, name)), 3)


def _unreadable(facts: DocumentFacts, reason: str) -> None:
    facts.unreadable = reason
    facts.flags.append(f"unreadable:{reason}")


# -- filename and mail ---------------------------------------------------------------------


def _from_filename(filename: str | None, facts: DocumentFacts) -> None:
    if not filename:
        return
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    m = _FILE_NUMBER.search(stem) or _FREE_NUMBER.search(stem)
    if not m:
        return
    src = "filename"
    if "number" not in facts.sources:
        facts.set("number", m.group(1), src, C_FILENAME)
        facts.set("year", int(m.group(2)) if m.group(2) else None, src, C_FILENAME)
        facts.set("notation", m.group(3), src, C_FILENAME)
    _set_kind(facts, _notation_kind(facts.notation, facts), src, C_FILENAME)


def _from_context(ctx: ClassifyContext, facts: DocumentFacts) -> None:
    subject = _SUBJECT_PREFIX.sub("", ctx.subject or "").strip()
    src = "subject"
    if subject:
        m = _FREE_NUMBER.search(subject)
        if m and "number" not in facts.sources:
            facts.set("number", m.group(1), src, C_SUBJECT)
            facts.set("year", int(m.group(2)) if m.group(2) else None, src, C_SUBJECT)
            facts.set("notation", m.group(3), src, C_SUBJECT)
        by_name = doctypes.type_leading(subject)
        _set_kind(facts, by_name or _notation_kind(facts.notation, facts), src, C_SUBJECT)
        vv = _VV.search(subject)
        facts.set("subject", vv.group(0) if vv else None, src, C_SUBJECT)
        dm = DATE_RE.search(subject)
        if dm:
            facts.set(
                "date",
                parse_date(dm.group("d"), dm.group("m") or dm.group("m2"), dm.group("y")),
                src,
                C_SUBJECT,
            )
        for mark_text in _SUBJECT_MARK.findall(subject):
            value = doctypes.mark(mark_text)
            if value and doctypes.is_secrecy(value):
                facts.set("secrecy", value, src, C_SUBJECT)
            elif value:
                facts.set("urgency", value, src, C_SUBJECT)
        codes, flags = find_codes(subject)
        facts.set("agency_codes", codes, src, C_SUBJECT)
        if "agency_codes" in facts.sources and facts.sources["agency_codes"] == src:
            facts.flags.extend(flags)
    if ctx.body_text and "recipients" not in facts.sources:
        from .facts import _kinh_gui
        from .text import rows_from_plain_text

        rows = rows_from_plain_text(ctx.body_text[:20000])
        tf = TextFacts()
        _kinh_gui([(i, c) for i, r in enumerate(rows) for c in r], tf)
        facts.set("recipients", tf.kinh_gui, src, C_SUBJECT)


def _finish(facts: DocumentFacts) -> None:
    """Cross-checks: the abbreviation must agree with the type."""
    if facts.kind and facts.kind_abbr is None:
        facts.kind_abbr = doctypes.ABBR_OF.get(facts.kind)
    if facts.secrecy is not None and "secrecy_marked" not in facts.flags:
        facts.flags.append("secrecy_marked")


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
C_BODY_MARK = 0.8


def message_facts(ctx: ClassifyContext) -> DocumentFacts:
    """What the mail itself says: its subject, and urgency or secrecy marks standing alone on
    a line of its body. A mail with no attachment can still carry a secrecy mark, and the
    policy must see it (state secrets never travel over the Internet)."""
    pseudo = Attachment(
        part_path="",
        filename=None,
        declared_type=None,
        detected_type="eml",
        data=b"",
        size=0,
        sha256=_EMPTY_SHA256,
    )
    facts = classify(pseudo, ctx)
    if ctx.body_text and (facts.secrecy is None or facts.urgency is None):
        from .facts import _marks
        from .text import rows_from_plain_text

        tf = TextFacts()
        _marks(rows_from_plain_text(ctx.body_text[:20000]), tf)
        facts.set("secrecy", tf.secrecy, "text", C_BODY_MARK)
        facts.set("urgency", tf.urgency, "text", C_BODY_MARK)
        _finish(facts)
    return facts
