"""How much one pipeline claim takes, which the pipeline claims by, and how much work may
wait for the claims before the SMTP listener's pacing (gateway/smtp/inflow.py) holds new
mail. A module of its own, so intake imports the numbers without the runner."""

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


# Pacing's measure of the work waiting (gateway/smtp/inflow.py): the count of messages
# against what the workers' next claims take (BATCH_SIZE each), and their bytes, each
# counted up to PACE_WEIGHT_MAX, against PACE_BYTES per worker. With two workers, senders
# are held once more than four signed letters wait, one claim of them: what waits beyond the
# next claim waits a whole batch more (four signed documents, some 20 ms of analysis), while
# held senders send a 16 KB letter again within milliseconds. Counted as claims count them
# (two claims of 64 KB, each message up to 32 KB: eight signed letters), the signed load's
# accept -> delivered p50 was 145-181 ms (median 150) against 126-172 ms (132), edocgw's
# rate 136-168/s against 133-177/s (bench/e2e.py, six rounds each, interleaved). Big letters
# count no more than 16 KB: held senders take longer to send them again, and holding them
# past one claim of them (two) cost the 200 KB load a tenth of its rate (0.93 of Postfix's
# against 1.04, medians of ten rounds); at 16 KB they are held past four, as before (0.97
# against 0.96, six rounds). Letters under 1 KB are still held by the count, past 64 (the
# bench's 800-byte plain letters: 1.05 against 0.93, four rounds, within its noise); those
# of 1 to 16 KB are held past 64 KB of them, half as many as before.
PACE_WEIGHT_MAX = 16 * 1024
PACE_BYTES = 32 * 1024


def pace_round(workers: int) -> tuple[int, int]:
    """What pacing lets wait for `workers` pipeline workers before it holds new mail: this
    many messages, or this many bytes with each message counted up to PACE_WEIGHT_MAX."""
    return workers * BATCH_SIZE, workers * PACE_BYTES
