"""The signature record of the store: what one verified signature left in `signatures`.

One dataclass serves both directions: the pipeline writes it (mapped from signing's
`SignatureReport` at the gateway's edge, without an id) and the admin queries read it back
(with its id); the API's `SignatureOut` is mapped from it in turn.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SignatureRow:
    format: str
    verdict: str
    reason: str | None = None
    signer_cn: str | None = None
    signer_o: str | None = None
    signer_uid: str | None = None
    serial: str | None = None
    issuer_cn: str | None = None
    cert_sha256: str | None = None
    signing_time: dt.datetime | None = None
    signing_time_source: str | None = None
    covers_whole_file: bool | None = None
    detail: str | None = None
    id: int | None = None  # None until stored


# The `signatures` columns a row writes (its id is the database's), in the dataclass's order.
COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SignatureRow) if f.name != "id")
