"""Resource limits: a hostile message must become a ``malformed`` result, quickly and in bounded memory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Caps applied while parsing; the defaults suit a 50 MB mail gateway."""

    max_message_bytes: int = 64 * 1024 * 1024
    max_parts: int = 500  # the parser stops making parts past this (mime.parse_bounded)
    max_header_chars: int = 16 * 1024  # of a header email's header parser is given to read
    max_depth: int = 12
    max_decoded_bytes: int = 64 * 1024 * 1024  # per part, after base64/QP
    max_total_decoded_bytes: int = 256 * 1024 * 1024
    max_attachments: int = 1000  # including ZIP/TNEF/forwarded children
    max_zip_members: int = 200
    max_zip_member_bytes: int = 64 * 1024 * 1024
    max_zip_total_bytes: int = 128 * 1024 * 1024
    max_zip_ratio: float = 100.0
    max_tnef_objects: int = 2000
    max_text_chars: int = 400_000  # text kept per document for classification
    max_pdf_pages: int = 8  # facts live on the first and last pages
    ocr_seconds: float = 60.0  # OCR budget per document; past it the document is unreadable
    ocr_message_seconds: float = 120.0  # and for all the documents of one message
    ocr_pages: int = 3  # pages OCR reads: the first and the last two


DEFAULT_LIMITS = Limits()
