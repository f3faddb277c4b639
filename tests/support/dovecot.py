"""A real Dovecot (Debian `dovecot-imapd`, `dovecot-lmtpd`) on loopback for tests.

Each instance has its own throwaway config, base_dir, state_dir, log, passwd-file (passdb and
userdb) and Maildir tree, listens on 127.0.0.1 only on ports picked at run time, and can be
stopped and started again on the same ports and mail directory (for recovery tests).

    dc = Dovecot(users={"vanthu@test.gov.vn": "secret"}, lmtp=True).start()
    dc.append("vanthu@test.gov.vn", raw)                    # IMAP APPEND
    dc.deliver("vanthu@test.gov.vn", raw)                   # LMTP delivery
    [m.raw for m in dc.messages("vanthu@test.gov.vn")]     # read back over IMAP
    dc.stop(); dc.start(); dc.close()

TLS: with `tls=True` (the default) the plain port offers STARTTLS and `imaps_port` speaks
implicit TLS, both with a self-signed certificate for `localhost` / 127.0.0.1 written to
`cert_path` (give it to a client as its CA file). A server that cannot start raises
`DovecotError` with the tail of its log: tests fail, they never skip.

Traps when running as root on Debian 12 (DESIGN §10): Dovecot refuses uid 0 for mail users, so
the userdb gives every user `nobody`/`nogroup`, the mail tree is chowned to it, and the
instance directory is made with mkdtemp and opened to 0755 so the mail processes can traverse it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import imaplib
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DH_FILE = Path("/usr/share/dovecot/dh.pem")
START_TIMEOUT = 60.0  # a hang detector: under load a start can take many seconds


class DovecotError(RuntimeError):
    pass


@dataclass
class StoredMessage:
    uid: int
    flags: set[str]
    raw: bytes


def free_ports(n: int) -> list[int]:
    """`n` distinct ports the OS calls free right now on 127.0.0.1 (never fixed ports). All
    are held open until all are picked: asked one after another, the OS may hand out the same
    port twice, and Dovecot then refuses its config ("duplicate listener")."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(n):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


def free_port() -> int:
    """A port the OS calls free right now on 127.0.0.1 (never a fixed port)."""
    return free_ports(1)[0]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    proc.poll()  # reap the master so its pid does not linger as a zombie
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _imap_quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_self_signed(cert_path: Path, key_path: Path) -> None:
    """An ECDSA P-256 certificate for localhost and 127.0.0.1 (fast to make)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(IPv4Address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


@dataclass
class Dovecot:
    """One throwaway Dovecot instance; `start()` picks the ports once and keeps them."""

    users: dict[str, str] = field(default_factory=lambda: {"user@test.gov.vn": "secret"})
    lmtp: bool = False
    tls: bool = True
    # Override the advertised capabilities (e.g. without IDLE and MOVE, to test fallbacks).
    imap_capability: str | None = None
    # Dovecot delays failed logins (2 s, doubling per IP up to 15 s); off unless asked for.
    auth_penalty: bool = False
    root: Path | None = None
    imap_port: int = 0
    imaps_port: int = 0
    lmtp_port: int = 0
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _own_root: bool = field(default=False, repr=False)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        assert self.root is not None
        return self.root / "dovecot.conf"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "dovecot.log"

    @property
    def cert_path(self) -> Path:
        assert self.root is not None
        return self.root / "tls" / "cert.pem"

    @property
    def key_path(self) -> Path:
        assert self.root is not None
        return self.root / "tls" / "key.pem"

    def home(self, user: str) -> Path:
        assert self.root is not None
        return self.root / "mail" / re.sub(r"[^A-Za-z0-9._-]", "_", user)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- life cycle ----------------------------------------------------------------------------
    def _prepare(self) -> None:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="edocgw-dovecot-"))
            self._own_root = True
        self.root.chmod(0o755)  # mkdtemp makes 0700: mail processes (nobody) must traverse it
        for sub in ("run", "state", "mail", "tls"):
            (self.root / sub).mkdir(exist_ok=True)
            (self.root / sub).chmod(0o755)
        nobody = pwd.getpwnam("nobody")
        mail = self.root / "mail"
        os.chown(mail, nobody.pw_uid, nobody.pw_gid)
        lines = []
        for user, password in self.users.items():
            home = self.home(user)
            home.mkdir(exist_ok=True)
            os.chown(home, nobody.pw_uid, nobody.pw_gid)
            lines.append(f"{user}:{{PLAIN}}{password}:{nobody.pw_uid}:{nobody.pw_gid}::{home}::")
        passwd = self.root / "passwd"
        passwd.write_text("\n".join(lines) + "\n", encoding="utf-8")
        passwd.chmod(0o644)
        if self.tls and not self.cert_path.exists():
            make_self_signed(self.cert_path, self.key_path)
        wanted = ["imap_port"] + ["imaps_port"] * self.tls + ["lmtp_port"] * self.lmtp
        unset = [name for name in wanted if not getattr(self, name)]
        for name, port in zip(unset, free_ports(len(unset)), strict=True):  # at once: distinct
            setattr(self, name, port)
        self.conf_path.write_text(self._config(), encoding="utf-8")

    def _config(self) -> str:
        assert self.root is not None
        r = self.root
        protocols = "imap lmtp" if self.lmtp else "imap"
        tls = "no"
        tls_lines = ""
        if self.tls:
            tls = "yes"
            tls_lines = f"ssl_cert = <{self.cert_path}\nssl_key = <{self.key_path}\n"
            if DH_FILE.exists():
                tls_lines += f"ssl_dh = <{DH_FILE}\n"
        imaps = (
            f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {self.imaps_port}\n"
            "    ssl = yes\n  }\n"
            if self.tls
            else ""
        )
        lmtp = (
            "service lmtp {\n  inet_listener lmtp {\n    address = 127.0.0.1\n"
            f"    port = {self.lmtp_port}\n  }}\n}}\n"
            "protocol lmtp {\n  postmaster_address = postmaster@test.gov.vn\n}\n"
            if self.lmtp
            else ""
        )
        penalty = (
            ""
            if self.auth_penalty
            else "auth_failure_delay = 0\nservice anvil {\n  unix_listener anvil-auth-penalty {\n"
            "    mode = 0\n  }\n}\n"
        )
        capability = (
            f"protocol imap {{\n  imap_capability = {self.imap_capability}\n}}\n"
            if self.imap_capability is not None
            else ""
        )
        return f"""# throwaway Dovecot for edocgw tests (tests/support/dovecot.py)
instance_name = edocgw-test-{r.name}
base_dir = {r}/run
state_dir = {r}/state
log_path = {self.log_path}
info_log_path = {self.log_path}
listen = 127.0.0.1
protocols = {protocols}
ssl = {tls}
{tls_lines}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Lu
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {r}/passwd
}}
userdb {{
  driver = passwd-file
  args = {r}/passwd
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
lda_mailbox_autocreate = yes
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
{imaps}}}
{lmtp}{capability}{penalty}"""

    def start(self) -> Dovecot:
        """Start (or start again on the same ports and mail directory); wait until it listens."""
        if self.running:
            return self
        self._prepare()
        self._proc = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.conf_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so stop() reaps every child
        )
        ports = [self.imap_port] + ([self.imaps_port] if self.tls else [])
        ports += [self.lmtp_port] if self.lmtp else []
        deadline = time.monotonic() + START_TIMEOUT
        while not all(_port_open(p) for p in ports):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._fail("did not start")
            time.sleep(0.05)
        return self

    def _fail(self, what: str) -> None:
        err = b""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            with contextlib.suppress(Exception):
                err = self._proc.communicate(timeout=5)[1] or b""
        self._proc = None
        log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        tail = "\n".join((log + err.decode(errors="replace")).splitlines()[-15:])
        raise DovecotError(f"Dovecot {what} (config {self.conf_path}):\n{tail}")

    def stop(self) -> None:
        """Stop the server and drop every connection; ports and mail stay for `start()`.

        Dovecot's master alone exits slowly (about a second) and leaves logged-in imap
        processes serving their clients, so the whole process group gets SIGTERM at once
        (each process says BYE and exits), then SIGKILL for any straggler.
        """
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGCONT)  # a frozen server could not act on SIGTERM
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and _group_alive(proc):
                time.sleep(0.01)
            if not _group_alive(proc):
                break
        if proc.stderr is not None:
            proc.stderr.close()
        deadline = time.monotonic() + 5
        ports = [self.imap_port, self.imaps_port, self.lmtp_port]
        while any(p and _port_open(p) for p in ports) and time.monotonic() < deadline:
            time.sleep(0.05)

    def freeze(self) -> None:
        """SIGSTOP every Dovecot process: connections stay open but nothing answers."""
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self._proc is not None:
            os.killpg(self._proc.pid, signal.SIGCONT)

    def close(self) -> None:
        """Stop and remove the instance directory (when the helper made it)."""
        self.stop()
        if self._own_root and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- client helpers (blocking; call them through asyncio.to_thread from async tests) --------
    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert_path))

    def imap(self, user: str) -> imaplib.IMAP4:
        """A logged-in stdlib IMAP client on the plain port (the caller logs out)."""
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        client.login(user, self.users[user])
        return client

    def append(self, user: str, raw: bytes, mailbox: str = "INBOX", flags: str = "") -> int:
        """APPEND a message; returns its UID (from UIDPLUS APPENDUID)."""
        client = self.imap(user)
        try:
            if mailbox.upper() != "INBOX":
                client.create(_imap_quote(mailbox))  # NO when it exists: fine
            typ, data = client.append(_imap_quote(mailbox), flags or None, None, raw)
            if typ != "OK":
                raise DovecotError(f"APPEND failed: {data!r}")
            m = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            return int(m.group(1)) if m else 0
        finally:
            client.logout()

    def messages(self, user: str, mailbox: str = "INBOX") -> list[StoredMessage]:
        """Every message in a mailbox with its UID and flags, read without setting \\Seen."""
        client = self.imap(user)
        try:
            typ, data = client.select(_imap_quote(mailbox), readonly=True)
            if typ != "OK":
                return []
            typ, data = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
            out: list[StoredMessage] = []
            for item in data:
                if not isinstance(item, tuple):
                    continue
                head, body = item
                uid = re.search(rb"UID (\d+)", head)
                flags = re.search(rb"FLAGS \(([^)]*)\)", head)
                out.append(
                    StoredMessage(
                        uid=int(uid.group(1)) if uid else 0,
                        flags=set(flags.group(1).decode().split()) if flags else set(),
                        raw=body,
                    )
                )
            return out
        finally:
            client.logout()

    def uidvalidity(self, user: str, mailbox: str = "INBOX") -> int:
        client = self.imap(user)
        try:
            typ, data = client.status(_imap_quote(mailbox), "(UIDVALIDITY)")
            m = re.search(rb"UIDVALIDITY (\d+)", data[0] or b"")
            return int(m.group(1)) if m else 0
        finally:
            client.logout()

    def recreate(self, user: str, mailbox: str) -> None:
        """DELETE and CREATE a mailbox: it comes back empty with a new UIDVALIDITY."""
        client = self.imap(user)
        try:
            client.delete(_imap_quote(mailbox))
            typ, data = client.create(_imap_quote(mailbox))
            if typ != "OK":
                raise DovecotError(f"CREATE failed: {data!r}")
        finally:
            client.logout()

    def deliver(self, rcpt: str, raw: bytes, mail_from: str = "sender@test.gov.vn") -> None:
        """Deliver over LMTP (needs `lmtp=True`); Dovecot adds Return-Path and Delivered-To."""
        if not self.lmtp:
            raise DovecotError("this Dovecot was started without lmtp=True")
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=10) as client:
            client.sendmail(mail_from, [rcpt], raw)
