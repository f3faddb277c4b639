"""Everything the gateway itself writes to senders: acceptance/delivery receipts, DSNs, notices."""
