"""The 88 real-world signed PDFs of the EU DSS test suite (``../shared/corpus/dss-pades``).

Each file's expected verdict is derived from its name and the DSS documentation (what the
DSS test around it checks), never from what this code happens to print. None of the signers
chains to a configured anchor, so an intact signature is at best ``untrusted``. The rules:
no crash, no hang (each file runs in the verification pool with its deadline), no ``valid``
without a trust anchor, no attacked file ``valid``, no intact file ``invalid``.

The corpus lies beside the clone (CI has ``shared/`` there, read-only; see :func:`_corpus`)
and is not copied into the repository; when it is missing the test fails, it is not skipped.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from gateway.processes.verify import VerifyPool
from signing import aggregate
from signing.report import SignatureReport

REPO = Path(__file__).resolve().parents[2]


def _corpus() -> Path:
    """``$EDOCGW_DSS_CORPUS``, else ``../shared/corpus/dss-pades`` beside the clone, else beside
    the main checkout of a git worktree (whose ``.git`` file names that checkout)."""
    if os.environ.get("EDOCGW_DSS_CORPUS"):
        return Path(os.environ["EDOCGW_DSS_CORPUS"])
    beside = REPO.parent / "shared" / "corpus" / "dss-pades"
    dotgit = REPO / ".git"
    if not beside.is_dir() and dotgit.is_file():
        gitdir = Path(dotgit.read_text().partition("gitdir:")[2].strip())
        if gitdir.parent.name == "worktrees":  # <main>/.git/worktrees/<name>
            main = gitdir.parent.parent.parent
            return main.parent / "shared" / "corpus" / "dss-pades"
    return beside


CORPUS = _corpus()

# Classes: what the file is, by its name and its DSS test.
INTACT = "intact"  # a genuine signature, unchanged since: never invalid
WEAK = "weak"  # intact, SHA-1: indeterminate, weak_algorithm (CRYPTO_CONSTRAINTS_FAILURE_NO_POE)
UNSUPPORTED = "unsupported"  # intact, an algorithm we cannot check (SHA-3/RSA, BSI plain ECDSA)
ATTACKED = "attacked"  # deliberately tampered (byte-range tricks, shadow/wrapping attacks)
CHANGED = "changed"  # genuine, then changed after signing in a way that can alter display
BROKEN = "broken"  # the file or its signature cannot be read: malformed
UNSIGNED = "unsigned"  # only empty signature fields locked by a FieldMDP

# file -> (class, expected aggregate verdict)
EXPECTED: dict[str, tuple[str, str]] = {
    "BadEncodedCMS.pdf": (WEAK, "indeterminate"),  # BER (not DER) CMS, SHA-1; DSS reads it
    "DSS-1683.pdf": (WEAK, "indeterminate"),  # SHA-1 (issue DSS-1683)
    "DSS-1983.pdf": (INTACT, "untrusted"),
    "DSS-2025.pdf": (INTACT, "untrusted"),
    "DSS-2155.pdf": (INTACT, "untrusted"),
    "DSS-2821.pdf": (INTACT, "untrusted"),  # doc timestamp; later revision rebuilds the tag tree
    "DSS-3226.pdf": (INTACT, "untrusted"),
    "DSS1376-rev_n-1.pdf": (INTACT, "untrusted"),  # earlier revisions of DSS1376-rev_n
    "DSS1376-rev_n-2.pdf": (INTACT, "untrusted"),
    "DSS1376-rev_n-3.pdf": (INTACT, "untrusted"),
    "DSS1376-rev_n-4.pdf": (INTACT, "untrusted"),
    "DSS1376-rev_n-5.pdf": (INTACT, "untrusted"),
    "DSS1376-rev_n.pdf": (INTACT, "untrusted"),  # certified, then a second signature field
    "PAdES-BpB-att-SHA256-SHA3_224withRSA.pdf": (UNSUPPORTED, "indeterminate"),
    "PAdES-BpB-att-SHA256-SHA3_256withRSA.pdf": (UNSUPPORTED, "indeterminate"),
    "PAdESWithCrossCertificateOCSP.pdf": (INTACT, "untrusted"),  # odd OCSP in a signed attr
    "Signature-P-BG_BOR-1.pdf": (INTACT, "untrusted"),  # QcStatements asn1crypto refuses
    "Signature-P-BG_BOR-2.pdf": (INTACT, "untrusted"),  # same, plus a SHA-1 doc timestamp
    "Signature-P-DE_SCI-4.pdf": (CHANGED, "invalid"),  # last revision swaps the page /Resources
    "Signature-P-FR_CS-5.pdf": (INTACT, "untrusted"),
    "Signature-P-HU_MIC-1.pdf": (INTACT, "untrusted"),
    "Signature-P-HU_MIC-3.pdf": (INTACT, "untrusted"),
    "Signature-P-HU_POL-3.pdf": (INTACT, "untrusted"),
    "Signature-P-HU_POL-7.pdf": (INTACT, "untrusted"),  # VRI rewritten by a later revision
    "Signature-P-LT-ef971596-8f2e-407d-a413-aae9cb9b8e4a.pdf": (INTACT, "untrusted"),
    "Signature-P-PK7-2.pdf": (INTACT, "untrusted"),  # signerLocation attribute asn1crypto refuses
    "TEST2_signed_with_zero_policy_hash.pdf": (INTACT, "untrusted"),
    "TeleSec_PKS_eIDAS_QES_CA_1-baseline-b.pdf": (UNSUPPORTED, "indeterminate"),  # BSI ecdsa-plain
    "Test.pdf": (WEAK, "indeterminate"),  # SHA-1
    "TestToSignPDFSHA256_TST_SIG_NOT_FOUND.pdf": (INTACT, "untrusted"),
    "belgian_pki_multiple_ocsps.pdf": (INTACT, "untrusted"),
    "belgian_pki_multiple_ocsps_lt.pdf": (INTACT, "untrusted"),
    "certified-changes-permitted.pdf": (INTACT, "untrusted"),
    "doc-firmado-LT.pdf": (INTACT, "untrusted"),
    "doc-firmado-T.pdf": (INTACT, "untrusted"),
    "doc-firmado.pdf": (INTACT, "untrusted"),
    "dss-2058-QC-LTA-test.pdf": (INTACT, "untrusted"),
    "encrypted.pdf": (INTACT, "untrusted"),  # owner password only: signatures readable
    "fieldmdp-exclude.pdf": (UNSIGNED, "unsigned"),
    "hello_signed_INCSAVE_signed.pdf": (INTACT, "untrusted"),
    # shadow attack: pyHanko cannot analyse the later revision -> indeterminate at best
    "hide.pdf": (ATTACKED, "untrusted"),
    "malformed-pades.pdf": (BROKEN, "malformed"),  # header destroyed
    "muestra-firmado-firmado.pdf": (INTACT, "untrusted"),
    "pades-bes-no-certificates.pdf": (BROKEN, "malformed"),  # no signer certificate at all
    "pades-bes.pdf": (INTACT, "untrusted"),
    "pades-enveloping-empty-bytes-cms.pdf": (INTACT, "untrusted"),
    "pades-enveloping-other-pdf.pdf": (INTACT, "untrusted"),
    "pades-epes.pdf": (INTACT, "untrusted"),
    "pades-level-b-sig-policy-invalid-digest-algo.pdf": (INTACT, "untrusted"),
    "pades-lta-copied-doctst.pdf": (ATTACKED, "invalid"),  # doc timestamp copied from elsewhere
    "pades-ltv-from-epes.pdf": (INTACT, "untrusted"),
    "pades-ltv-with-reason.pdf": (INTACT, "untrusted"),
    "pades-ltv.pdf": (INTACT, "untrusted"),
    "pades-not-epes.pdf": (INTACT, "untrusted"),
    "pades-ocsp-sign-cert.pdf": (INTACT, "untrusted"),
    "pades-revoc-removed-from-dss-dict.pdf": (INTACT, "untrusted"),
    "pades-signed-annot-added.pdf": (ATTACKED, "invalid"),
    "pades-spoofing-replaced-reason.pdf": (ATTACKED, "invalid"),
    "pades-t-duplicated-doctst.pdf": (ATTACKED, "invalid"),  # duplicated doc timestamp
    "pades-t-duplicated-sigtst.pdf": (INTACT, "untrusted"),
    "pades-t-level-extended.pdf": (INTACT, "untrusted"),
    "pades-tst-with-null-type.pdf": (INTACT, "untrusted"),
    "pades-tst-with-orphan-refs.pdf": (INTACT, "untrusted"),
    "pades-tst-with-sig-type.pdf": (INTACT, "untrusted"),  # doc timestamp typed /Sig
    "pades-unsupported-signature-algorithm.pdf": (UNSUPPORTED, "indeterminate"),
    "pades_infinite_loop.pdf": (BROKEN, "malformed"),  # /Prev loop: must not hang
    "pades_opposite_infinite_loop.pdf": (BROKEN, "malformed"),
    "pades_with_orphan_ocsp_cert_refs.pdf": (INTACT, "untrusted"),
    "pdf-byterange-overlap.pdf": (ATTACKED, "invalid"),
    "pdf-double-signer-info.pdf": (BROKEN, "malformed"),  # two SignerInfos in one PDF signature
    "pdf-eof.pdf": (INTACT, "untrusted"),  # byte range runs 1 byte past the dropped final EOL
    "pdf-signed-added-page.pdf": (ATTACKED, "invalid"),
    "pdf-signed-corrupted.pdf": (BROKEN, "malformed"),
    "pdf-signed-original.pdf": (INTACT, "untrusted"),
    "pdf-signed-out-of-byteRange.pdf": (ATTACKED, "invalid"),
    "pdf-spoofing-attack.pdf": (ATTACKED, "malformed"),  # broken /Encrypt: cannot be read
    "pdf-structtreeroot-changes.pdf": (INTACT, "untrusted"),  # only the tag tree changes
    "pdf-with-empty-sig.pdf": (BROKEN, "malformed"),  # a /Sig with zeroed /Contents
    "pdf-with-eof-cr.pdf": (INTACT, "untrusted"),
    "pdf-with-two-empty-sigs.pdf": (BROKEN, "malformed"),
    "pdf-with-vri-timestamp.pdf": (INTACT, "untrusted"),
    "pkcs7-no-message-digest.pdf": (WEAK, "indeterminate"),  # no signed attributes, SHA-1
    "pkcs7.pdf": (INTACT, "untrusted"),
    "replace.pdf": (INTACT, "untrusted"),
    "self-issued-qesig.pdf": (INTACT, "untrusted"),
    "signature-referenced-from-multiple-fields.pdf": (INTACT, "untrusted"),
    "siwa.pdf": (ATTACKED, "invalid"),  # signature wrapping attack
    "timestamped_and_signed.pdf": (INTACT, "untrusted"),  # a doc timestamp, then a signature
}

#: Files with a document timestamp (/DocTimeStamp, ETSI.RFC3161): reported as timestamps.
DOC_TIMESTAMPED = (
    "DSS-1983.pdf",
    "doc-firmado.pdf",
    "pades-ltv.pdf",
    "timestamped_and_signed.pdf",
    "Signature-P-HU_POL-3.pdf",
)
#: Files a strict asn1crypto parse refuses and a lenient reading verifies.
LENIENT = (
    "Signature-P-BG_BOR-1.pdf",
    "PAdESWithCrossCertificateOCSP.pdf",
    "Signature-P-PK7-2.pdf",
    "TestToSignPDFSHA256_TST_SIG_NOT_FOUND.pdf",
)


@pytest.fixture(scope="module")
def corpus_reports() -> dict[str, list[SignatureReport]]:
    """Every file verified once, in the pool, with its per-job deadline and no anchors."""
    assert CORPUS.is_dir(), (
        f"the DSS corpus is missing: expected {CORPUS.resolve()} (shared/ beside the clone)"
    )

    async def run() -> dict[str, list[SignatureReport]]:
        async with VerifyPool(2, [], timeout=60) as pool:
            names = sorted(EXPECTED)
            results = await asyncio.gather(
                *(pool.verify_path(str(CORPUS / n), "pdf", n) for n in names)
            )
        return dict(zip(names, results, strict=True))

    return asyncio.run(run())


def test_the_corpus_is_the_one_described():
    assert CORPUS.is_dir(), f"the DSS corpus is missing: expected {CORPUS.resolve()}"
    assert sorted(p.name for p in CORPUS.glob("*.pdf")) == sorted(EXPECTED)
    assert len(EXPECTED) == 88


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verdict_class_of_each_file(name: str, corpus_reports):
    cls, expected = EXPECTED[name]
    reports = corpus_reports[name]
    verdict = aggregate(r.verdict for r in reports)
    seen = [(r.format, r.verdict, r.reason) for r in reports]
    # never a hang or a crash: every job finished inside the pool's deadline
    assert all(r.reason not in ("worker_timeout", "worker_died") for r in reports), seen
    assert all("Traceback" not in r.detail and "\n" not in r.detail for r in reports)
    # no anchor configured, so nothing may be valid
    assert "valid" not in {r.verdict for r in reports}, seen
    if cls == ATTACKED:
        assert verdict != "valid"
    if cls in (INTACT, WEAK, UNSUPPORTED):
        assert "invalid" not in {r.verdict for r in reports}, seen
    if cls == WEAK:
        assert "weak_algorithm" in {r.reason for r in reports}, seen
    if cls == UNSUPPORTED:
        assert "unsupported_algorithm" in {r.reason for r in reports}, seen
    if cls == UNSIGNED:
        assert reports == []
    assert verdict == expected, seen


@pytest.mark.parametrize("name", DOC_TIMESTAMPED)
def test_document_timestamps_are_reported_as_timestamps(name: str, corpus_reports):
    reports = corpus_reports[name]
    stamps = [r for r in reports if r.format == "pdf-timestamp"]
    assert stamps, [(r.format, r.verdict) for r in reports]
    assert all(r.verdict != "malformed" for r in stamps)
    assert all(r.signing_time_source == "timestamp" for r in stamps)
    assert any(r.format == "pdf" for r in reports)


@pytest.mark.parametrize("name", LENIENT)
def test_lenient_reading_says_what_it_skipped(name: str, corpus_reports):
    (signature,) = [r for r in corpus_reports[name] if "lenient reading" in r.detail]
    assert signature.verdict == "untrusted"
    assert signature.signer_cn
    assert "ignored" in signature.detail
