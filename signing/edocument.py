"""Is it a proper e-document? (Decree 30/2020/NĐ-CP, Art. 8 and Appendix I)

An official e-document carries the digital signature of the competent person, then that of
the issuing organisation (its seal). Pure: the signature reports of one document and the
signer and issuer read from its text in, one frozen answer out; the gateway and
``edocgw check`` both call :func:`check_e_document`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from signing import report as r
from signing.certinfo import signer_kind
from signing.names import same_organisation, same_person
from signing.report import SignatureReport

UNSIGNED: Final = "unsigned"
SIGNATURE_NOT_VALID: Final = "signature_not_valid"
NO_PERSONAL_SIGNATURE: Final = "no_personal_signature"
NO_ORGANISATION_SIGNATURE: Final = "no_organisation_signature"
SIGNER_NOT_IN_TEXT: Final = "signer_not_in_text"
ORGANISATION_NOT_ISSUER: Final = "organisation_not_issuer"
#: Every problem code, in the order they are listed.
PROBLEMS: Final = (
    UNSIGNED,
    SIGNATURE_NOT_VALID,
    NO_PERSONAL_SIGNATURE,
    NO_ORGANISATION_SIGNATURE,
    SIGNER_NOT_IN_TEXT,
    ORGANISATION_NOT_ISSUER,
)


@dataclass(frozen=True, slots=True)
class EDocumentCheck:
    """``conformant`` is true only when ``problems`` is empty."""

    conformant: bool
    personal_signer: str | None
    organisation_signer: str | None
    problems: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "conformant": self.conformant,
            "personal_signer": self.personal_signer,
            "organisation_signer": self.organisation_signer,
            "problems": list(self.problems),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EDocumentCheck:
        return cls(
            conformant=bool(data.get("conformant")),
            personal_signer=data.get("personal_signer"),
            organisation_signer=data.get("organisation_signer"),
            problems=tuple(data.get("problems") or ()),
        )


def kind_of(rep: SignatureReport) -> str | None:
    """The report's certificate kind; reports made before it was recorded fall back to
    the UID and CN they carry."""
    return rep.signer_kind or signer_kind(rep.signer_uid, rep.signer_cn)


def _organisation_name(rep: SignatureReport) -> str | None:
    return rep.signer_cn or rep.signer_o


def check_e_document(
    signatures: Iterable[SignatureReport],
    *,
    signer: str | None,
    issuer: str | None,
) -> EDocumentCheck:
    """Judge one document. *signatures* in signing order (document timestamps are not
    signatures of a person or an organisation and are left out); *signer* and *issuer* as
    read from the document's text (None when they could not be read)."""
    sigs = [s for s in signatures if s.format != "pdf-timestamp"]
    if not sigs:
        return EDocumentCheck(
            False,
            None,
            None,
            (UNSIGNED, NO_PERSONAL_SIGNATURE, NO_ORGANISATION_SIGNATURE),
        )
    personal = [s for s in sigs if kind_of(s) == "personal"]
    organisation = [s for s in sigs if kind_of(s) == "organisation"]
    problems: list[str] = []
    if any(s.verdict != r.VALID for s in sigs):
        problems.append(SIGNATURE_NOT_VALID)
    if not personal:
        problems.append(NO_PERSONAL_SIGNATURE)
    if not organisation:
        problems.append(NO_ORGANISATION_SIGNATURE)
    # the person signs first, the organisation's seal comes after it
    person = personal[0] if personal else None
    seal = organisation[-1] if organisation else None
    if person is not None and not any(same_person(s.signer_cn, signer) for s in personal):
        problems.append(SIGNER_NOT_IN_TEXT)
    if seal is not None and not any(
        same_organisation(_organisation_name(s), issuer) or same_organisation(s.signer_o, issuer)
        for s in organisation
    ):
        problems.append(ORGANISATION_NOT_ISSUER)
    return EDocumentCheck(
        conformant=not problems,
        personal_signer=person.signer_cn if person else None,
        organisation_signer=_organisation_name(seal) if seal else None,
        problems=tuple(problems),
    )
