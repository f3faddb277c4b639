"""The parser's caps follow the SMTP size limit, so an accepted message is never 'malformed'
just for being within the gateway's own limit."""

from __future__ import annotations

from dataclasses import replace

from gateway.pipeline import Pipeline
from gateway.pipeline.analyse import analyse_content, parse_limits
from mailparse import DEFAULT_LIMITS

MIB = 1024 * 1024


def test_limits_follow_the_smtp_size_limit():
    assert parse_limits(50 * MIB) is DEFAULT_LIMITS
    raised = parse_limits(200 * MIB)
    assert raised.max_message_bytes == 200 * MIB
    assert raised.max_decoded_bytes >= 200 * MIB and raised.max_total_decoded_bytes >= 400 * MIB
    assert raised.max_parts == DEFAULT_LIMITS.max_parts  # the other caps stay


def test_the_pipeline_parses_within_the_configured_limit(settings, db, tmp_path):
    settings.smtp.max_message_size = 200 * MIB
    pipeline = Pipeline(settings, db, warm_verifier=False)
    assert pipeline.analyser.keywords["limits"].max_message_bytes == 200 * MIB
    # what the cap means, shown small: a message over the cap is malformed, under it is not
    raw = b"Subject: x\r\n\r\n" + b"a" * 4000 + b"\r\n"
    small = replace(DEFAULT_LIMITS, max_message_bytes=1000)
    assert analyse_content(raw, tmp_path / "a", small).malformed
    assert not analyse_content(
        raw, tmp_path / "b", replace(small, max_message_bytes=5000)
    ).malformed
