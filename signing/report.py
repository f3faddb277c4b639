"""Verdicts, reasons and the frozen per-signature report (DESIGN §5 and §7)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Final

VALID: Final = "valid"
INVALID: Final = "invalid"
UNTRUSTED: Final = "untrusted"
EXPIRED: Final = "expired"
REVOKED: Final = "revoked"
INDETERMINATE: Final = "indeterminate"
MALFORMED: Final = "malformed"
UNSIGNED: Final = "unsigned"

#: Worst first: the aggregate of several verdicts is the first of these that occurs.
SEVERITY: Final = (MALFORMED, INVALID, REVOKED, EXPIRED, UNTRUSTED, INDETERMINATE, VALID)
VERDICTS: Final = frozenset(SEVERITY)

FORMATS: Final = frozenset({"pdf", "pdf-timestamp", "cms", "smime", "xmldsig"})

#: Keys of a signature in the `edocgw check` JSON (DESIGN §7), in order.
JSON_KEYS: Final = (
    "format",
    "verdict",
    "reason",
    "signer_cn",
    "signer_o",
    "signer_uid",
    "serial",
    "issuer_cn",
    "signing_time",
    "covers_whole_file",
    "detail",
)


def etsi_indication(verdict: str) -> str:
    """ETSI EN 319 102-1 main indication for a verdict."""
    if verdict == VALID:
        return "PASSED"
    if verdict in (INDETERMINATE, UNTRUSTED):
        return "INDETERMINATE"
    return "FAILED"


def aggregate(verdicts: Iterable[str]) -> str:
    """The worst verdict of a document or message; ``unsigned`` when there is none."""
    seen = set(verdicts)
    unknown = seen - VERDICTS
    if unknown:
        raise ValueError(f"unknown verdict(s): {sorted(unknown)}")
    for verdict in SEVERITY:
        if verdict in seen:
            return verdict
    return UNSIGNED


@dataclass(frozen=True, slots=True)
class SignatureReport:
    """What one signature amounts to. ``reason`` is for machines, ``detail`` for people."""

    format: str
    verdict: str
    reason: str | None = None
    signer_cn: str | None = None
    signer_o: str | None = None
    signer_uid: str | None = None
    signer_kind: str | None = None  # personal | organisation | None (Decree 30 reading)
    serial: str | None = None
    issuer_cn: str | None = None
    cert_sha256: str | None = None
    signing_time: datetime | None = None
    signing_time_source: str | None = None
    covers_whole_file: bool | None = None
    detail: str = ""
    etsi: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}")
        if self.format not in FORMATS:
            raise ValueError(f"unknown signature format {self.format!r}")
        if not self.etsi:
            object.__setattr__(self, "etsi", etsi_indication(self.verdict))
        # one line, never a traceback
        detail = " ".join(self.detail.split())
        object.__setattr__(self, "detail", detail[:500])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the §7 keys first, then cert_sha256, signing_time_source, etsi."""
        data = asdict(self)
        if self.signing_time is not None:
            data["signing_time"] = self.signing_time.isoformat()
        ordered = {key: data[key] for key in JSON_KEYS}
        ordered.update(
            signer_kind=self.signer_kind,
            cert_sha256=self.cert_sha256,
            signing_time_source=self.signing_time_source,
            etsi=self.etsi,
        )
        return ordered


def malformed(fmt: str, reason: str, detail: str, **fields: Any) -> SignatureReport:
    """Shorthand for a report about something that could not be parsed."""
    return SignatureReport(format=fmt, verdict=MALFORMED, reason=reason, detail=detail, **fields)
