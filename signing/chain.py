"""Certificate path validation with pyhanko-certvalidator, mapped to DESIGN §5 verdicts.

One function for every format (PDF, CMS, S/MIME, XML), so a chain means the same thing
whichever container carried the signature. Key usage is not constrained: pyHanko wants
nonRepudiation by default, but many Vietnamese signing certificates carry only
digitalSignature, and the signature is still the signer's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import x509
from pyhanko_certvalidator import CertificateValidator
from pyhanko_certvalidator import errors as cv_errors

from signing import report as r
from signing._sync import run_sync
from signing.trust import TrustStore

WEAK_HASHES = frozenset({"md2", "md5", "sha1"})


@dataclass(frozen=True, slots=True)
class ChainOutcome:
    verdict: str
    reason: str | None
    detail: str


def _validity_problem(certs: Iterable[x509.Certificate], moment: datetime) -> ChainOutcome | None:
    for cert in certs:
        validity = cert["tbs_certificate"]["validity"]
        not_before, not_after = validity["not_before"].native, validity["not_after"].native
        name = cert.subject.human_friendly
        if moment < not_before:
            return ChainOutcome(
                r.EXPIRED,
                "not_yet_valid",
                f"certificate of {name} is valid only from {not_before:%Y-%m-%d %H:%M} UTC",
            )
        if moment > not_after:
            return ChainOutcome(
                r.EXPIRED,
                "expired",
                f"certificate of {name} expired {not_after:%Y-%m-%d %H:%M} UTC",
            )
    return None


async def _validate(cert, extra, trust: TrustStore, moment: datetime, check_revocation: bool):
    ctx = trust.context(moment, extra_certs=extra, check_revocation=check_revocation)
    validator = CertificateValidator(cert, intermediate_certs=list(extra), validation_context=ctx)
    return await validator.async_validate_usage(set())


def check_chain(
    cert: x509.Certificate,
    extra_certs: Iterable[x509.Certificate],
    trust: TrustStore,
    moment: datetime,
) -> ChainOutcome:
    """Is *cert* trusted at *moment* (the signing time), with revocation per the store?"""
    extra = [c for c in extra_certs if c.dump() != cert.dump()]
    if moment.tzinfo is None:  # a signingTime or /M without zone: read it as UTC
        moment = moment.replace(tzinfo=UTC)
    if not trust.roots:
        return ChainOutcome(r.UNTRUSTED, "no_path", "no trust anchors are configured")
    when = f"{moment:%Y-%m-%d %H:%M} UTC"
    memo = trust.chain_memo
    key = memo.key(cert, extra, True, moment)
    anchor = memo.get(key)
    if anchor is not None:
        return ChainOutcome(r.VALID, None, f"chain to {anchor} valid at {when}")
    try:
        path = run_sync(_validate(cert, extra, trust, moment, True))
        anchor = _anchor_name(path)
        memo.put(key, anchor)
        return ChainOutcome(r.VALID, None, f"chain to {anchor} valid at {when}")
    except cv_errors.RevokedError as exc:
        return ChainOutcome(r.REVOKED, "revoked", _msg(exc))
    except cv_errors.StaleRevinfoError as exc:
        return _soft(cert, extra, trust, moment, "crl_stale", f"CRL is stale: {_msg(exc)}")
    except cv_errors.InsufficientRevinfoError as exc:
        return _soft(
            cert,
            extra,
            trust,
            moment,
            "revocation_unavailable",
            f"no CRL covers the chain: {_msg(exc)}",
        )
    except cv_errors.NotYetValidError as exc:
        return ChainOutcome(r.EXPIRED, "not_yet_valid", _msg(exc))
    except cv_errors.ExpiredError as exc:
        return ChainOutcome(r.EXPIRED, "expired", _msg(exc))
    except cv_errors.DisallowedAlgorithmError as exc:
        # a certificate signed with SHA-1: ETSI INDETERMINATE unless configured invalid
        return ChainOutcome(trust.weak_algorithms, "weak_algorithm", _msg(exc))
    except cv_errors.PathBuildingError as exc:
        return ChainOutcome(r.UNTRUSTED, "no_path", f"no chain to a trust anchor: {_msg(exc)}")
    except (cv_errors.PathValidationError, cv_errors.InvalidCertificateError) as exc:
        # certvalidator words some time failures as generic path errors: say what it was
        problem = _validity_problem([cert, *extra], moment)
        if problem is not None:
            return problem
        reason = "self_signed" if cert.self_signed in ("yes", "maybe") else "path_invalid"
        return ChainOutcome(r.UNTRUSTED, reason, _msg(exc))
    except Exception as exc:  # certvalidator on a hostile certificate
        return ChainOutcome(r.MALFORMED, "bad_certificate", f"{type(exc).__name__}: {exc}")


def _soft(
    cert, extra, trust: TrustStore, moment: datetime, reason: str, detail: str
) -> ChainOutcome:
    """Hard-fail: unknown revocation status is ``indeterminate``. Soft-fail: accept the
    chain if it is otherwise sound, and keep the reason in the detail."""
    if trust.revocation != "soft-fail":
        return ChainOutcome(r.INDETERMINATE, reason, detail)
    try:
        path = run_sync(_validate(cert, extra, trust, moment, False))
    except Exception as exc:  # the chain has a second problem: report the chain
        problem = _validity_problem([cert, *extra], moment)
        return problem or ChainOutcome(r.UNTRUSTED, "path_invalid", _msg(exc))
    return ChainOutcome(
        r.VALID,
        None,
        f"chain to {_anchor_name(path)} valid; revocation not checked (soft-fail): {detail}",
    )


def _anchor_name(path) -> str:
    try:
        name = path.trust_anchor.authority.name.native
        return str(name.get("common_name") or path.trust_anchor.authority.name.human_friendly)
    except Exception:
        return "a trust anchor"


def _msg(exc: BaseException) -> str:
    text = getattr(exc, "failure_msg", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())
