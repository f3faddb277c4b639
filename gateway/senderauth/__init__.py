"""Who really sent a message: SPF, DKIM and DMARC on inbound mail (DESIGN §3).

`check.check_sender` runs the three checks through the gateway's one resolver and returns
`AuthResults`; `policy.answer` turns them into the SMTP answer and the stored action;
`results` writes and removes Authentication-Results headers (RFC 8601).
"""
