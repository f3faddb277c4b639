"""A throwaway, loopback-only Postfix (Debian `postfix` package) for tests and benchmarks.

Each instance has its own `config_directory` (a main.cf and master.cf written here), its own
`queue_directory` and `data_directory`, listens on 127.0.0.1 on a port picked at run time, does
no local delivery (empty `mydestination`, no aliases), relays everything it is given by a
loopback client to `relayhost`, and logs to a file in its directory. It is started with
`postfix -c DIR start` and stopped with `postfix -c DIR stop`.

    with Postfix(relayhost="127.0.0.1:2525") as pf:   # e.g. the gateway's relay listener
        pf.send("vanthu@tayninh.gov.vn", ["vanban@soxd.gov.vn"], raw)
        pf.wait_empty()                               # the queue drained to the relayhost

Runs as root (Postfix's daemons drop to the `postfix` user); a Postfix that cannot start
raises `PostfixError` with the tail of its log: tests fail, they never skip. `bench/ingest.py`
and `bench/e2e.py` run the same instance as the Postfix they compare the gateway with.
"""

from __future__ import annotations

import contextlib
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"
START_TIMEOUT = 90.0  # a hang detector: under load a start can take many seconds

MAIN_CF = """\
# throwaway loopback Postfix (tests/support/postfix.py)
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = {hostname}
mydomain = {hostname}
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
relay_domains =
relayhost = [{relay_host}]:{relay_port}
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_peername_lookup = no
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_connect_timeout = 10s
default_process_limit = {process_limit}
maillog_file = {maillog}
maillog_file_prefixes = {root}, /dev/stdout
syslog_name = {syslog_name}
{extra}"""

# Only what relaying needs; no chroot (the queue is a throwaway directory), no TLS manager.
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixError(RuntimeError):
    pass


def free_port() -> int:
    """A port the OS calls free right now on 127.0.0.1 (never a fixed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30.0) -> bool:
    """True once something on 127.0.0.1:`port` sends a greeting, False after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(5)
                if s.recv(512):
                    return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


@dataclass
class Postfix:
    """One throwaway Postfix instance relaying to `relayhost` ("host:port", loopback)."""

    relayhost: str
    hostname: str = "postfix.test.gov.vn"
    root: Path | None = None
    port: int = 0
    process_limit: int = 100
    extra_main_cf: str = ""  # more main.cf lines
    _own_root: bool = field(default=False, repr=False)
    _started: bool = field(default=False, repr=False)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def config_dir(self) -> Path:
        assert self.root is not None
        return self.root / "conf"

    @property
    def log_path(self) -> Path:
        assert self.root is not None
        return self.root / "maillog"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def master_pid(self) -> int:
        """The running master's process id, from the pid file in its queue directory
        (OSError when none runs)."""
        assert self.root is not None
        return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])

    # -- life cycle ----------------------------------------------------------------------------
    def _prepare(self) -> None:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="edocgw-postfix-"))
            self._own_root = True
        # mkdtemp makes 0700; the postfix user must traverse it (and a given root's parents).
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for sub in ("conf", "queue", "data"):
            (self.root / sub).mkdir(exist_ok=True)
        shutil.chown(self.root / "data", user="postfix")
        if not self.port:
            self.port = free_port()
        host, _, port = self.relayhost.removeprefix("smtp://").rpartition(":")
        if not host or not port.isdigit():
            raise PostfixError(f"relayhost must be host:port, got {self.relayhost!r}")
        (self.config_dir / "main.cf").write_text(
            MAIN_CF.format(
                root=self.root,
                hostname=self.hostname,
                relay_host=host.strip("[]"),
                relay_port=port,
                process_limit=self.process_limit,
                maillog=self.log_path,
                syslog_name=f"postfix-{self.root.name}",
                extra=self.extra_main_cf,
            ),
            encoding="utf-8",
        )
        (self.config_dir / "master.cf").write_text(MASTER_CF.format(port=self.port))

    def _postfix(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [POSTFIX, "-c", str(self.config_dir), *args],
            capture_output=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> Postfix:
        """Start and wait until the loopback smtpd greets; `PostfixError` when it does not."""
        if self._started:
            return self
        self._prepare()
        self._started = True
        p = self._postfix("start")
        if p.returncode != 0:
            self._fail(f"`postfix start` exited {p.returncode}: {p.stderr.decode()[-800:]}")
        if not wait_port(self.port, START_TIMEOUT):
            self._fail(f"did not greet on 127.0.0.1:{self.port} within {START_TIMEOUT:g}s")
        return self

    def _fail(self, what: str) -> None:
        tail = "\n".join(self.log_text().splitlines()[-15:])
        with contextlib.suppress(Exception):
            self.stop()
        raise PostfixError(f"Postfix {what} (config {self.config_dir}):\n{tail}")

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        self._postfix("stop")

    def close(self) -> None:
        """Stop and remove the instance directory (when this helper made it)."""
        self.stop()
        if self._own_root and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Postfix:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- client helpers (blocking; call them through asyncio.to_thread from async tests) --------
    def send(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> str:
        """Submit over SMTP to the loopback smtpd; returns Postfix's `250 ... queued as` text."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=15) as client:
            client.ehlo("client.test.gov.vn")
            client.mail(mail_from)
            for rcpt in rcpt_to:
                code, text = client.rcpt(rcpt)
                if code != 250:
                    raise PostfixError(f"RCPT {rcpt} refused: {code} {text.decode()}")
            code, text = client.data(raw)
            if code != 250:
                raise PostfixError(f"DATA refused: {code} {text.decode()}")
            return text.decode()

    def queue_ids(self) -> list[str]:
        """Queue ids still in Postfix's queue (`postqueue -j`)."""
        p = subprocess.run(
            [POSTQUEUE, "-c", str(self.config_dir), "-j"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        import json

        return [json.loads(line)["queue_id"] for line in p.stdout.decode().splitlines() if line]

    def wait_empty(self, timeout: float = 30.0) -> None:
        """Wait until the queue is empty (everything relayed), else `PostfixError`."""
        deadline = time.monotonic() + timeout
        while self.queue_ids():
            if time.monotonic() > deadline:
                raise PostfixError(
                    f"queue not empty after {timeout:g}s:\n"
                    + "\n".join(self.log_text().splitlines()[-10:])
                )
            time.sleep(0.2)
