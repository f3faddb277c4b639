"""Pure functions over mail bytes: MIME parsing, file typing, Decree 30 facts, edXML.

No I/O and no database: ``gateway`` and the ``edocgw check`` command both call in here."""

from __future__ import annotations

from .classify import classify, message_facts
from .limits import DEFAULT_LIMITS, Limits
from .mime import open_file, parse
from .models import Attachment, ClassifyContext, DocumentFacts, ParsedMessage, SmimeInfo

__all__ = [
    "DEFAULT_LIMITS",
    "Attachment",
    "ClassifyContext",
    "DocumentFacts",
    "Limits",
    "ParsedMessage",
    "SmimeInfo",
    "classify",
    "message_facts",
    "open_file",
    "parse",
]
