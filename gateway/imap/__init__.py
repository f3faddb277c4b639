"""Fetching mail from IMAP mailboxes (DESIGN §3): committed first, then flagged or moved."""

from gateway.imap.account import AccountFetcher, AccountStatus
from gateway.imap.fetcher import ImapFetcher

__all__ = ["AccountFetcher", "AccountStatus", "ImapFetcher"]
