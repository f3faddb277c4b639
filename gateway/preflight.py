"""What `edocgw serve` checks before it starts PostgreSQL, a worker or a listener.

A second `serve` in the same folder used to empty the running instance's metrics and start a
worker on the shared database before it failed on the port; a missing trust anchor was found
only after the verification pool had started, as two lines. Everything that can be checked
without the database is checked here first, and the first problem ends start-up as one line
naming the key: `config error: smtp.relay_listen = 127.0.0.1:2525: address already in use`.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from config import ConfigError, Settings, split_listen


def _problem(key: str, value: object, what: str) -> ConfigError:
    return ConfigError(f"config error: {key} = {value}: {what}")


def _listen_addresses(settings: Settings) -> Iterator[tuple[str, str]]:
    roles = set(settings.gateway.roles)
    if "intake" in roles:
        yield "smtp.relay_listen", settings.smtp.relay_listen
        yield "smtp.submission_listen", settings.smtp.submission_listen
    if "admin" in roles and settings.admin.enabled:
        yield "admin.listen", settings.admin.listen


def check_listen(key: str, listen: str) -> None:
    """Bind the address as the listener will (SO_REUSEADDR, as asyncio does) and let it go."""
    host, port = split_listen(listen)
    if port == 0:
        return  # the OS picks a free port
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise _problem(key, listen, f"cannot resolve {host} ({e.strerror})") from None
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(addr)
            except OSError as e:
                what = "address already in use" if e.errno == errno.EADDRINUSE else e.strerror
                raise _problem(key, listen, str(what).lower()) from None


def _existing(key: str, value: str, kind: str = "file") -> None:
    path = Path(value)
    if not path.exists():
        raise _problem(key, value, f"no such {kind}")
    if path.is_file() and not os.access(path, os.R_OK):
        raise _problem(key, value, "cannot be read")


def check_files(settings: Settings) -> None:
    """Every file or folder the configuration names must be there and readable."""
    for key, entries in (
        ("trust.anchors", settings.trust.anchors),
        ("trust.intermediates", settings.trust.intermediates),
        ("trust.crls", settings.trust.crls),
    ):
        for entry in entries:
            _existing(key, entry, "file or folder")
    singles = [
        ("database.url_file", settings.database.url_file),
        ("smtp.tls_cert", settings.smtp.tls_cert),
        ("smtp.tls_key", settings.smtp.tls_key),
        ("receipts.sign_cert", settings.receipts.sign_cert),
        ("receipts.sign_key", settings.receipts.sign_key),
        ("logging.chain_key_file", settings.logging.chain_key_file),
    ]
    singles += [(f"imap[{i}].password_file", a.password_file) for i, a in enumerate(settings.imap)]
    for key, value in singles:
        if value:
            _existing(key, value)
    if settings.trust.anchors:
        from signing import TrustStore, TrustStoreError

        try:
            TrustStore.load(
                settings.trust.anchors + settings.trust.intermediates,
                settings.trust.crls,
                settings.trust.revocation,
            )
        except TrustStoreError as e:
            raise _problem("trust.anchors", settings.trust.anchors, str(e)) from None


def check_data_dir(settings: Settings) -> None:
    data_dir = Path(settings.gateway.data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _problem("gateway.data_dir", data_dir, f"cannot be created ({e.strerror})") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise _problem("gateway.data_dir", data_dir, "cannot be written")


def preflight(settings: Settings) -> None:
    """All checks, cheapest first. Several `serve` processes may share one data folder (the
    README splits roles that way); what they must not share is a listening address."""
    for key, listen in _listen_addresses(settings):
        check_listen(key, listen)
    check_files(settings)
    check_data_dir(settings)
