"""Small signed parts are verified by the analysis process itself (one hand-off fewer per
signed message): with the verifier processes' own answers, the same per-part deadline, and
the verifier processes still there for big parts and for a message whose analysis failed."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from pathlib import Path

import pytest

from config import Settings
from gateway.pipeline.analyse import ContentAnalysis, analyse_content, verify_small_parts
from gateway.pipeline.pools import Pools
from gateway.processes.alarm import deadline
from signing import SignatureReport
from store.db import Database
from tests.pipeline.pipe_support import make_mail, running, stuck_analyser, submit, wait_for
from tests.pipeline.test_pipe_deadline import _files
from tests.pipeline.test_pipe_flow import _documents, _signatures
from tests.support.pki import Pki, make_pdf, make_smime_mail, sign_cms, sign_pdf

PDF = "application/pdf"
RELAY = ["ai.do@example.org"]


def _mails(pki: Pki) -> dict[str, bytes]:
    pdf = make_pdf("Công văn số 21/UBND-VP về việc kiểm thử")
    return {
        "valid and revoked PDFs": make_mail(
            "Công văn 21/UBND-VP",
            [
                ("21_UBND-VP.pdf", sign_pdf(pdf, pki.signer("person")), PDF),
                ("22_UBND-VP.pdf", sign_pdf(pdf, pki.signer("revoked")), PDF),
                ("23_UBND-VP.pdf", sign_pdf(pdf, pki.signer("stranger")), PDF),
            ],
        ),
        "detached p7s": make_mail(
            "Công văn 24/UBND-VP",
            [
                ("24_UBND-VP.pdf", pdf, PDF),
                (
                    "24_UBND-VP.pdf.p7s",
                    sign_cms(pdf, pki.signer("agency")),
                    "application/pkcs7-signature",
                ),
            ],
        ),  # fmt: skip
        "S/MIME": make_smime_mail("Kính gửi: Sở Nội vụ.\n", pki.signer("person")),
    }


async def test_analysis_process_gives_the_verifier_processes_answers(
    pipe_settings: Settings, pki: Pki, tmp_path: Path
) -> None:
    pools = Pools(pipe_settings, threads=1)
    await pools.open()
    verdicts = {}
    try:
        for name, mail in _mails(pki).items():
            [here] = await pools.analyse(
                analyse_content, [(mail, tmp_path / f"{name}-a")], 60, True
            )
            [there] = await pools.analyse(analyse_content, [(mail, tmp_path / f"{name}-b")], 60)
            assert isinstance(here, ContentAnalysis) and isinstance(there, ContentAnalysis)
            signed = [d for d in here.docs if d.reports is not None]
            assert signed or (here.smime and here.smime.reports is not None), name
            # verified where they were analysed: their bytes did not come back
            assert all(d.verify_path is None for d in signed)
            assert all(d.reports is None for d in there.docs), "verify=False verifies nothing"
            reports, smime = await pools.verify(here)
            assert (reports, smime) == await pools.verify(there), name
            verdicts[name] = [r.verdict for rs in [*reports.values(), smime] for r in rs]
    finally:
        await pools.close()
    assert verdicts == {
        "valid and revoked PDFs": ["valid", "revoked", "untrusted"],
        "detached p7s": ["valid"],
        "S/MIME": ["valid"],
    }


class _SpinsOnce:
    """A verifier whose first document does not finish (pure Python, as pyHanko stuck on a
    hostile file would be); later ones are answered. So that a deadline that never fires
    fails the test instead of hanging it, the spin gives up after two minutes with a report
    that says so."""

    def __init__(self) -> None:
        self.calls = 0

    def document(self, *args: object) -> list[SignatureReport]:
        self.calls += 1
        if self.calls == 1:
            give_up = time.monotonic() + 120
            while time.monotonic() < give_up:
                pass
            return [SignatureReport(format="pdf", verdict="valid", reason="never_stopped")]
        return [SignatureReport(format="pdf", verdict="valid")]

    def smime(self, *args: object) -> list[SignatureReport]:
        return []


def test_a_part_past_its_deadline_is_indeterminate_and_the_rest_still_verified(
    pki: Pki, tmp_path: Path
) -> None:
    pdf = sign_pdf(make_pdf("Công văn số 25/UBND-VP"), pki.signer("person"))
    mail = make_mail("Công văn", [("25.pdf", pdf, PDF), ("26.pdf", pdf, PDF)])
    analysis = analyse_content(mail, tmp_path / "spool")
    verify_small_parts(analysis, _SpinsOnce(), 0.5)  # type: ignore[arg-type]
    first, second = (d.reports for d in analysis.docs)
    assert first is not None and second is not None
    assert [(r.verdict, r.reason) for r in first] == [("indeterminate", "worker_timeout")]
    assert "took longer than 0.5 s" in (first[0].detail or "")
    assert [r.verdict for r in second] == ["valid"]


async def test_a_message_retried_after_its_analysis_process_died_is_verified_all_the_same(
    pipe_settings: Settings, db: Database, pki: Pki
) -> None:
    """Its second attempt sends the signed part to the verifier processes (whatever killed
    the first attempt may have been that part), and the verdict is the same."""
    pipe_settings.gateway.parse_processes = 2
    spool = Path(pipe_settings.gateway.data_dir) / "spool"
    pdf = sign_pdf(make_pdf("Công văn số 27/UBND-VP"), pki.signer("person"))
    victim = await submit(
        db, make_mail("WAIT-ONCE Công văn 27/UBND-VP", [("27.pdf", pdf, PDF)], to=RELAY[0]), RELAY
    )
    async with running(pipe_settings, db, analyser=stuck_analyser, workers=2):
        [mark] = await _files(spool, "waiting", 1)
        os.kill(int(mark.name.split("-")[1]), signal.SIGKILL)
        msgs = await wait_for(db, [victim], {"processed", "failed"}, within=60)
    assert (msgs[victim].state, msgs[victim].attempts) == ("processed", 2)
    assert [s.verdict for s in await _signatures(db, victim)] == ["valid"]
    assert [d.verdict for d in await _documents(db, victim)] == ["valid"]


def test_a_soft_deadline_is_refused_outside_the_main_thread() -> None:
    """Signals reach only the main thread: elsewhere the deadline could never fire."""

    def enter() -> None:
        with deadline(1.0):
            pass

    with concurrent.futures.ThreadPoolExecutor(1) as ex, pytest.raises(RuntimeError):
        ex.submit(enter).result()
