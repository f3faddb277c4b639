"""`[authentication]` policy: what the results mean for the SMTP answer and the message.

One place decides, for the SMTP handler (reject, temperror) and the pipeline (hold).
"""

from __future__ import annotations

import dataclasses

from config.settings import AuthenticationSettings
from gateway.senderauth.results import AuthResults


def decide(r: AuthResults, settings: AuthenticationSettings) -> AuthResults:
    """`r` with its `action`: temperror (451), reject (550), hold or forward."""
    action = "forward"
    if r.dmarc == "temperror":
        action = "temperror"
    elif r.dmarc == "fail":
        if r.dmarc_policy == "reject":
            action = settings.dmarc_fail
        elif r.dmarc_policy == "quarantine":
            action = "forward" if settings.dmarc_fail == "forward" else "hold"
    return dataclasses.replace(r, action=action)


def smtp_refusal(r: AuthResults) -> str | None:
    """The reply refusing the message at the end of DATA, or None to accept it."""
    why = _one_line(r.reason)[:200]
    if r.action == "temperror":
        return f"451 4.7.0 Temporary DNS failure checking the sender ({why}), try again later"
    if r.action == "reject":
        return (
            f"550 5.7.1 Message refused: DMARC check failed for {_one_line(r.from_domain)[:200]},"
            f" whose policy is reject ({why})"
        )  # at most ~480 characters: a reply line is limited to 512 (RFC 5321 §4.5.3.1.5)
    return None


def _one_line(text: str) -> str:
    return "".join(c if 32 <= ord(c) < 127 else "?" for c in " ".join(text.split()))[:300]
