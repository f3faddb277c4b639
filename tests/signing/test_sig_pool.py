"""The process pool: jobs by path, a killed worker, a job past its timeout, size limits."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal

import pytest

from gateway.processes.verify import VerifyPool
from signing import TrustStoreError
from tests.support.pki import Pki, sign_cms


@pytest.fixture
def pdf_path(tmp_path, person_pdf: bytes) -> str:
    path = tmp_path / "cv.pdf"
    path.write_bytes(person_pdf)
    return str(path)


async def test_pool_verifies_documents_and_smime(pki: Pki, pdf_path: str, tmp_path):
    content = tmp_path / "qd.pdf"
    content.write_bytes(b"noi dung")
    p7s = tmp_path / "qd.pdf.p7s"
    p7s.write_bytes(sign_cms(b"noi dung", pki.signer("agency")))
    async with VerifyPool(2, pki.anchors, pki.crls, timeout=20) as pool:
        reps = await asyncio.gather(
            *(pool.verify_path(pdf_path, "pdf", "cv.pdf") for _ in range(4))
        )
        assert [r[0].verdict for r in reps] == ["valid"] * 4
        cms = await pool.verify_path(str(p7s), "cms", "qd.pdf.p7s", detached_path=str(content))
        assert (cms[0].format, cms[0].verdict) == ("cms", "valid")
        smime = await pool.verify_smime_paths(str(p7s), str(content))
        assert (smime[0].format, smime[0].verdict) == ("smime", "valid")
        assert await pool.verify_path(pdf_path, "text", "a.txt") == []


async def test_worker_killed_mid_job_then_pool_serves_next(pki: Pki, pdf_path: str):
    async with VerifyPool(1, pki.anchors, pki.crls, timeout=20) as pool:
        [pid] = pool.worker_pids()
        job = asyncio.create_task(pool.verify_path(pdf_path, "pdf", "cv.pdf"))
        await asyncio.sleep(0)  # the job is now handed to the worker
        os.kill(pid, signal.SIGKILL)
        [rep] = await job
        assert (rep.verdict, rep.reason) == ("malformed", "worker_died")
        [nxt] = await pool.verify_path(pdf_path, "pdf", "cv.pdf")
        assert nxt.verdict == "valid"
        assert pool.worker_pids() != [pid]


async def test_job_past_timeout_then_pool_serves_next(pki: Pki, pdf_path: str, tmp_path):
    fifo = tmp_path / "never-written.pdf"
    os.mkfifo(fifo)  # reading it blocks forever: a real hung job
    async with VerifyPool(1, pki.anchors, pki.crls, timeout=1.0) as pool:
        [rep] = await pool.verify_path(str(fifo), "pdf", "hang.pdf")
        assert (rep.verdict, rep.reason) == ("indeterminate", "worker_timeout")
        [nxt] = await pool.verify_path(pdf_path, "pdf", "cv.pdf")
        assert nxt.verdict == "valid"


async def test_size_limit(pki: Pki, pdf_path: str):
    pool = VerifyPool(1, pki.anchors, pki.crls, max_bytes=100)
    try:
        [rep] = await pool.verify_path(pdf_path, "pdf", "cv.pdf")
        assert (rep.verdict, rep.reason) == ("indeterminate", "too_large")
        [gone] = await pool.verify_path(pdf_path + ".missing", "pdf", None)
        assert gone.reason == "unreadable_file"
    finally:
        await pool.close()


def test_bad_trust_file_fails_at_construction(tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(TrustStoreError, match="bad.pem"):
        VerifyPool(1, [bad])


def test_a_verifier_looks_at_changed_trust_files_at_most_once_a_second(
    pki: Pki, person_pdf: bytes, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale CRL makes the signature indeterminate; the fresh one copied over it is used
    once the look-again interval has passed, not on every verification."""
    from gateway.processes import verify

    crl = tmp_path / "inter.crl"
    shutil.copy(pki.stale_crls[1], crl)
    v = verify.Verifier(pki.anchors, [pki.crls[0], crl], "hard-fail")
    assert v.document(person_pdf, "pdf", "cv.pdf", None)[0].verdict == "indeterminate"
    shutil.copy(pki.crls[1], crl)
    os.utime(crl, ns=(1, 1))  # a new mtime, whatever the clock resolution
    before = v.trust
    assert v.document(person_pdf, "pdf", "cv.pdf", None)[0].verdict == "indeterminate"
    assert v.trust is before  # not looked at again within the second
    monkeypatch.setattr(verify, "RELOAD_CHECK", 0.0)
    assert v.document(person_pdf, "pdf", "cv.pdf", None)[0].verdict == "valid"
    assert v.trust is not before
