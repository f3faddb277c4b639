"""How much one pipeline claim takes: the pipeline claims by these, and the SMTP listener's
pacing (gateway/smtp/inflow.py) judges by them whether the pipeline's next claims will take
what is waiting. A module of its own, so intake imports the numbers without the runner."""

from __future__ import annotations

BATCH_SIZE = 32
INLINE_MAX = 256 * 1024  # bigger messages are read (and processed) alone, to bound memory
# What one claim takes, as well as BATCH_SIZE: messages while those before total under
# CLAIM_BYTES, each counted up to CLAIM_WEIGHT_MAX. Everything a worker claims waits until
# its whole batch is analysed and written, so a claim of 32 signed PDFs held them all for
# the time of 32 (p50 accept -> delivered ~450 ms on bench/e2e.py; ~290 ms with 256 KB,
# ~220-245 ms with 128 KB, about eight signed letters a claim, at the same rate within the
# bench's noise); a claim of plain letters still takes 32, and the count on big ones keeps
# them several to a claim (one at a time, the claim and write per message cost the 200 KB
# load a quarter of its rate; three a claim keep it). Size stands for the analysis work a
# message brings (documents, signatures, OCR). 64 KB with big ones counted as 32 KB: four
# signed letters a claim, two 200 KB ones as before, 32 plain ones: signed p50 155-197 ms
# against 218-334 ms with 128 KB / 64 KB, four runs of three rounds interleaved, the rate
# the same within the bench's noise (0.39-0.54 against 0.40-0.43); plain and 200 KB rates
# unchanged. Two signed letters a claim (32 KB) brought the p50 no lower (175-188 ms).
CLAIM_BYTES = 64 * 1024
CLAIM_WEIGHT_MAX = 32 * 1024


def claim_round(workers: int) -> tuple[int, int]:
    """What `workers` pipeline workers take in one claim each: at most this many messages,
    or this many bytes counted as a claim counts them (each up to CLAIM_WEIGHT_MAX)."""
    return workers * BATCH_SIZE, workers * CLAIM_BYTES
