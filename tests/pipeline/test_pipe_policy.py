"""Policy decisions (pure): secrecy always quarantines; verdicts map to configured actions."""

from __future__ import annotations

import pytest

from config.settings import PolicySettings
from gateway.pipeline.policy import DocumentCheck, decide

PDF_VALID = DocumentCheck("qd.pdf", "pdf", "valid", kind="Quyết định")
PDF_UNSIGNED = DocumentCheck("cv.pdf", "pdf", "unsigned", kind="Công văn")
LOGO = DocumentCheck("logo.png", "image", "unsigned")


def test_secrecy_mark_quarantines_whatever_the_policy() -> None:
    policy = PolicySettings(invalid_signature="forward", unsigned="forward")
    secret = DocumentCheck("mat.pdf", "pdf", "valid", secrecy="Tối mật")
    d = decide([PDF_VALID, secret], policy)
    assert (d.action, d.state, d.notice) == ("quarantine", "quarantined", "quarantined")
    assert d.reasons == ["secrecy:Tối mật:mat.pdf"]


@pytest.mark.parametrize("verdict", ["invalid", "malformed", "revoked", "expired"])
@pytest.mark.parametrize(
    ("configured", "state", "notice"),
    [
        ("hold", "held", "held"),
        ("reject", "quarantined", "rejected"),
        ("forward", "processed", "accepted"),
    ],
)
def test_failed_signature_follows_invalid_signature_policy(
    verdict: str, configured: str, state: str, notice: str
) -> None:
    d = decide(
        [PDF_VALID, DocumentCheck("x.pdf", "pdf", verdict)],
        PolicySettings(invalid_signature=configured),
    )
    assert (d.action, d.state, d.notice) == (configured, state, notice)
    if configured != "forward":
        assert d.reasons == [f"signature:{verdict}:x.pdf"]


@pytest.mark.parametrize("verdict", ["untrusted", "indeterminate", "valid"])
def test_weaker_verdicts_are_forwarded(verdict: str) -> None:
    d = decide([DocumentCheck("x.pdf", "pdf", verdict)], PolicySettings())
    assert d.action == "forward"


def test_unsigned_documents_follow_unsigned_policy() -> None:
    assert decide([PDF_UNSIGNED], PolicySettings()).action == "forward"
    d = decide([PDF_UNSIGNED, PDF_VALID], PolicySettings(unsigned="hold"))
    assert (d.action, d.reasons) == ("hold", ["unsigned:cv.pdf"])


def test_unsigned_non_documents_are_not_held() -> None:
    assert decide([LOGO], PolicySettings(unsigned="hold")).action == "forward"
    classified_text = DocumentCheck("tb.txt", "text", "unsigned", kind="Thông báo")
    assert decide([classified_text], PolicySettings(unsigned="hold")).action == "hold"


def test_strictest_action_wins() -> None:
    policy = PolicySettings(invalid_signature="hold", unsigned="reject")
    d = decide([PDF_UNSIGNED, DocumentCheck("x.pdf", "pdf", "invalid")], policy)
    assert (d.action, d.reasons) == ("reject", ["unsigned:cv.pdf"])


def test_malformed_message_without_documents_follows_invalid_signature_policy() -> None:
    d = decide([], PolicySettings(invalid_signature="hold"), message_verdict="malformed")
    assert (d.action, d.reasons) == ("hold", ["signature:malformed:message"])
    assert decide([], PolicySettings(), message_verdict="unsigned").action == "forward"
