"""The HMAC key that signs checkpoints of the event chain's head (store.events.checkpoint).

A dedicated key rather than the receipts signing key: every gateway has one (receipts signing
is optional), it does not change when the receipts certificate is renewed, and an HMAC check
needs no certificate chain. It lives outside the database, so someone who can rewrite the
tables cannot sign a shortened chain.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from config import Settings
from store.events import Checkpoint


class ChainKeyError(Exception):
    pass


def chain_key_path(settings: Settings) -> Path:
    configured = settings.logging.chain_key_file
    return Path(configured) if configured else Path(settings.gateway.data_dir) / "event-chain.key"


def load_chain_key(settings: Settings, *, create: bool) -> bytes | None:
    """The key; generated once (mode 0600) when `create` and not configured, else None when
    the file does not exist. A configured file must exist and hold at least 16 bytes."""
    path = chain_key_path(settings)
    configured = bool(settings.logging.chain_key_file)
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        if configured:
            raise ChainKeyError(f"logging.chain_key_file {path}: no such file") from None
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(32).encode()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return path.read_bytes().strip()
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        return key
    except OSError as e:
        raise ChainKeyError(f"logging.chain_key_file {path}: {e.strerror}") from None
    if len(key) < 16:
        raise ChainKeyError(f"logging.chain_key_file {path}: needs at least 16 bytes")
    return key


def witness_path(settings: Settings) -> Path:
    """Where the newest checkpoint is also kept, outside the database: whoever deletes the
    newest events and the checkpoints that cover them still leaves this one behind."""
    return Path(settings.gateway.data_dir) / "event-chain.head"


def write_witness(path: Path, cp: Checkpoint) -> None:
    """Replace the witness file atomically (a crash leaves the old one or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(cp.to_json()) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_witness(path: Path) -> Checkpoint | None:
    """The witness, or None when there is none yet; a damaged file is an error to report."""
    try:
        return Checkpoint.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ChainKeyError(f"event chain witness {path}: unreadable ({e})") from None
