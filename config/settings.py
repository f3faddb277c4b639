"""The settings of DESIGN §8: one model, every key documented by its field description.

Section and key names are a contract with operators' `edocgw.toml` files; add keys, never
rename them. `edocgw.example.toml` is generated from these descriptions (see `example.py`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.types import Duration, ListenAddress, Network, parse_duration


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Role = Literal["intake", "pipeline", "delivery", "admin"]
ROLES: tuple[Role, ...] = ("intake", "pipeline", "delivery", "admin")


class GatewaySettings(Section):
    hostname: str = Field(
        "localhost", description="Name the gateway gives itself in SMTP greetings and Received."
    )
    roles: list[Role] = Field(
        list(ROLES),
        description="What this serve process runs: intake (SMTP listeners, IMAP fetching), "
        "pipeline, delivery, admin (web, API, metrics). Processes on one database share the "
        "work, so e.g. one intake process and one pipeline+delivery process use two cores.",
    )
    data_dir: Path = Field(
        Path("./var"),
        description="Where the embedded PostgreSQL, the self-signed TLS keys and spool files live.",
    )
    processing_addresses: list[str] = Field(
        ["vanban@localhost"],
        description="Addresses staff send documents to for processing (routing by content).",
    )
    local_domains: list[str] = Field(
        ["localhost"], description="Mail domains this gateway accepts mail for from anyone."
    )
    pipeline_workers: int = Field(
        2, ge=1, le=64, description="Concurrent pipeline workers (parse, classify, verify, route)."
    )
    verify_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="Signature verification processes, for signed parts over 256 KiB and for "
        "retried messages (the analysis processes check smaller ones); 0 means one per CPU core.",
    )
    parse_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="Processes that parse and classify messages; 0 means one per CPU core. "
        "Analysis always runs in these processes (never in threads), so a message whose "
        "analysis passes analyse_timeout is stopped: its process is killed and replaced.",
    )
    analyse_timeout: Duration = Field(
        parse_duration("180s"),
        description="How long the analysis of one message (or of one batch of small ones) may "
        "take before its process is killed and the attempt fails. Longer than the OCR budget "
        "of one message (120 s), so slow scans end as unread documents, not as failures. "
        "The claim's own end (0.9 x claim_timeout) stops it earlier if that comes first.",
    )
    worker_processes: int = Field(
        1,
        ge=0,
        le=16,
        description="Child processes that run this serve process's pipeline and delivery "
        "roles at a lower CPU priority when it also runs intake, so SMTP acceptance keeps a "
        "core to itself under load; 0 runs pipeline and delivery inside this process.",
    )
    worker_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="How much lower the worker processes' CPU priority is (added niceness).",
    )
    claim_timeout: Duration = Field(
        parse_duration("5m"),
        description="How long a worker's claim on a row lasts before another worker may take it.",
    )
    duplicate_window: Duration = Field(
        parse_duration("7d"),
        description="A message seen before within this time (the same bytes, or the same "
        "Message-ID from the same envelope sender) is stored and logged as a duplicate and "
        "not forwarded again; 0 turns the check off.",
    )
    agency_code: str = Field(
        "",
        description="The agency code (mã định danh) edXML packages name as their sender "
        "(From/OrganId) when the mail did not come from a registered agency.",
    )

    @field_validator("analyse_timeout")
    @classmethod
    def _analyse_timeout(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("expected a duration above 0, such as 180s")
        return v

    @field_validator("roles")
    @classmethod
    def _roles(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError(f"expected at least one of {', '.join(ROLES)}")
        return list(dict.fromkeys(v))

    @field_validator("processing_addresses")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for a in v:
            if a.count("@") != 1 or not all(a.split("@")):
                raise ValueError(f"expected e-mail addresses like vanban@example.gov.vn, got {a!r}")
        return [a.lower() for a in v]

    @field_validator("local_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        return [d.lower().rstrip(".") for d in v]

    @field_validator("agency_code")
    @classmethod
    def _agency_code(cls, v: str) -> str:
        v = v.strip()
        if v and not re.match(r"^(\d{3}\.)?\d{2}\.\d{2}\.[A-Z]\d{2}$", v):
            raise ValueError(f"expected an agency code like 000.00.00.H53, got {v!r}")
        return v


class DatabaseSettings(Section):
    url: str = Field(
        "",
        description="PostgreSQL URL (postgresql://user:pass@host/db). Empty: embedded PostgreSQL "
        "in data_dir/pg.",
    )
    url_file: str = Field("", description="Read the URL from this file instead (a secret).")
    pool_size: int = Field(10, ge=1, le=200, description="Connections per gateway process.")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("postgresql://", "postgres://", "postgresql+asyncpg://")):
            raise ValueError("expected a postgresql:// URL or an empty string")
        return v


class SmtpSettings(Section):
    relay_listen: ListenAddress = Field(
        "127.0.0.1:2525",
        description="host:port of the relay listener (agency mail servers, inbound mail).",
    )
    submission_listen: ListenAddress = Field(
        "127.0.0.1:2587", description="host:port of the submission listener (staff, AUTH required)."
    )
    relay_networks: list[Network] = Field(
        ["127.0.0.0/8"],  # type: ignore[list-item]
        description="Clients in these networks may relay to any address (CIDR list).",
    )
    max_message_size: int = Field(
        52428800, ge=1024, description="Largest message accepted, in bytes (SIZE; 552 5.3.4 above)."
    )
    tls_cert: str = Field("", description="PEM certificate for STARTTLS. Empty: self-signed.")
    tls_key: str = Field("", description="PEM private key for STARTTLS.")
    data_memory_budget: int = Field(
        1073741824,
        ge=1024,
        description="DATA octets all sessions may hold in memory at once; a message that "
        "would exceed it gets 452 4.3.1 (try later). At least max_message_size.",
    )
    max_connections: int = Field(
        200, ge=1, description="Concurrent SMTP sessions per listener (relay, submission)."
    )
    max_connections_per_ip: int = Field(
        50,
        ge=1,
        description="Concurrent sessions per client IP and listener; clients in "
        "relay_networks and authenticated sessions are exempt.",
    )
    command_timeout: Duration = Field(
        parse_duration("5m"), description="Idle time allowed between commands."
    )
    data_timeout: Duration = Field(
        parse_duration("10m"), description="Time allowed to send the whole DATA."
    )
    auth_failures_per_minute: int = Field(
        5, ge=1, description="Failed AUTH attempts per client IP per minute before 421."
    )
    in_flow_delay: Duration = Field(
        parse_duration("1s"),
        description="The longest a new mail transaction's MAIL FROM answer is held while the "
        "pipeline is behind (see in_flow_lag), as Postfix's in_flow_delay: under a burst "
        "the senders keep the backlog instead of this gateway's queue, so what was accepted "
        "is delivered sooner. Never refuses anything; 0s turns pacing off.",
    )
    in_flow_lag: Duration = Field(
        parse_duration("20ms"),
        description="How long the oldest message no pipeline has taken yet may have waited "
        "before new transactions are held (only while a pipeline is taking work and more "
        "waits than its workers' next claims should find).",
    )


class ImapAccount(Section):
    name: str = Field(description="A short name for logs and the delivery log's peer field.")
    host: str = Field(description="IMAP server host name.")
    port: int = Field(993, ge=1, le=65535, description="IMAP server port.")
    tls: Literal["implicit", "starttls", "none"] = Field(
        "implicit", description="implicit (993), starttls, or none (loopback tests only)."
    )
    verify_tls: bool = Field(True, description="Verify the server's certificate.")
    ca_file: str = Field("", description="Extra CA bundle to verify the server with.")
    user: str = Field(description="Login name.")
    password: str = Field("", description="Password (prefer password_file).")
    password_file: str = Field("", description="File holding the password.")
    mailbox: str = Field("INBOX", description="Mailbox to fetch from.")
    after: str = Field(
        "flag",
        description="After commit: flag (\\Seen and $Edocgw), move:FOLDER, or delete.",
    )
    poll_seconds: int = Field(60, ge=1, description="Poll interval when IDLE is not offered.")
    idle: bool = Field(True, description="Use IDLE when the server offers it.")
    command_timeout: Duration = Field(
        parse_duration("60s"), description="Timeout for each IMAP command."
    )

    @field_validator("after")
    @classmethod
    def _after(cls, v: str) -> str:
        if v in ("flag", "delete") or (v.startswith("move:") and len(v) > 5):
            return v
        raise ValueError("expected flag, delete or move:FOLDER")

    @model_validator(mode="after")
    def _secret(self) -> ImapAccount:
        if not self.password and not self.password_file:
            raise ValueError("expected password or password_file")
        return self


class TrustSettings(Section):
    anchors: list[str] = Field([], description="Trust anchors: PEM/DER files or folders.")
    intermediates: list[str] = Field([], description="Extra intermediate certificates.")
    crls: list[str] = Field([], description="CRL files or folders (offline revocation).")
    revocation: Literal["hard-fail", "soft-fail"] = Field(
        "hard-fail",
        description="hard-fail: no revocation data means indeterminate; soft-fail: valid.",
    )
    weak_algorithms: Literal["indeterminate", "invalid"] = Field(
        "indeterminate",
        description="Verdict for an intact signature made with a weak algorithm (SHA-1): "
        "indeterminate (ETSI CRYPTO_CONSTRAINTS_FAILURE_NO_POE) or invalid.",
    )
    ocsp: bool = Field(
        False,
        description="OCSP look-ups over the network. Not supported: revocation is checked "
        "offline against the configured CRLs only.",
    )

    @field_validator("ocsp")
    @classmethod
    def _no_ocsp(cls, v: bool) -> bool:
        if v:
            raise ValueError("expected false: OCSP is not supported, configure CRLs in trust.crls")
        return v


Action = Literal["forward", "hold", "reject", "quarantine"]


class PolicySettings(Section):
    invalid_signature: Action = Field(
        "hold", description="What to do with a document whose signature fails."
    )
    unsigned: Action = Field("forward", description="What to do with unsigned documents.")
    non_conformant: Literal["forward", "hold"] = Field(
        "forward",
        description="What to do with a document that is not a proper e-document under Decree "
        "30/2020 (signed by the person, then the organisation); flagged either way.",
    )
    secrecy_marked: Literal["quarantine"] = Field(
        "quarantine",
        description="Documents with a secrecy mark are never forwarded (Law 29/2018/QH14).",
    )
    unreadable: Literal["hold", "forward", "quarantine"] = Field(
        "hold",
        description="What to do with a document whose text could not be read (OCR failed or "
        "timed out, encrypted, no reader for its format): a secrecy mark may be on it.",
    )
    official_domains: list[str] = Field(
        ["gov.vn"],
        description="Mail domains of official exchange (Directive 15 §3), matched as suffixes: "
        "a document whose authenticated From domain is outside them is flagged "
        "sender_not_official.",
    )
    unofficial_sender: Literal["forward", "hold"] = Field(
        "forward",
        description="What to do with documents from a sender outside official_domains "
        "(flagged either way).",
    )

    @field_validator("official_domains")
    @classmethod
    def _domains(cls, v: list[str]) -> list[str]:
        return [d.strip().strip(".").lower() for d in v if d.strip().strip(".")]


class AuthenticationSettings(Section):
    inbound: bool = Field(
        True,
        description="Check SPF, DKIM and DMARC on mail from clients outside relay_networks "
        "that did not authenticate.",
    )
    dmarc_fail: Literal["reject", "hold", "forward"] = Field(
        "reject",
        description="What to do when DMARC fails for a domain whose policy is p=reject: "
        "reject answers 550 5.7.1 at the end of DATA. A domain's p=quarantine holds (unless "
        "forward).",
    )
    timeout: Duration = Field(
        parse_duration("20s"),
        description="Time allowed for all DNS look-ups of one message's checks; past it the "
        "result is a temperror (451 4.7.0).",
    )


class DkimSettings(Section):
    domain: str = Field(
        "", description="d= of the gateway's DKIM signature on all it sends. Empty: no signing."
    )
    selector: str = Field("edocgw", description="s= of the gateway's DKIM signature.")
    key_file: str = Field(
        "",
        description="PEM private key (RSA 2048+ or Ed25519) written by `edocgw dkim keygen`.",
    )


class DeliverySettings(Section):
    retry_schedule: list[Duration] = Field(
        [parse_duration(x) for x in ("1m", "5m", "15m", "1h", "4h")],
        description="Waits between attempts; the last one repeats until max_age.",
    )
    max_age: Duration = Field(parse_duration("5d"), description="Bounce after this long.")
    delay_warning: Duration = Field(
        parse_duration("4h"), description="Warn the sender when a delivery is this late."
    )
    delay_warning_urgent: Duration = Field(
        parse_duration("15m"), description="The same for Hỏa tốc documents."
    )
    concurrency_per_destination: int = Field(
        5, ge=1, description="Parallel connections to one destination."
    )
    require_tls: bool = Field(True, description="Default STARTTLS policy for agencies.")
    connect_timeout: Duration = Field(parse_duration("30s"), description="SMTP connect timeout.")
    command_timeout: Duration = Field(
        parse_duration("5m"), description="SMTP timeout per command when sending."
    )
    workers: int = Field(10, ge=1, le=1000, description="Concurrent outgoing deliveries.")
    dead_destination_after: int = Field(
        5, ge=1, description="Consecutive failures before a destination is paused."
    )
    dead_destination_pause: Duration = Field(
        parse_duration("5m"), description="How long a failing destination is left alone."
    )
    smarthost: str = Field(
        "",
        description="host:port where mail for non-agency destinations (and agencies routed "
        "by MX) goes instead of an MX lookup. Empty: look up MX records.",
    )
    dns_servers: list[str] = Field(
        [],
        description="DNS resolvers for MX look-ups, as IP or IP:port ([IPv6]:port). Empty: "
        "those of /etc/resolv.conf. Answers, and names that do not exist, are cached for their "
        "TTL.",
    )
    tls_ca_file: str = Field(
        "", description="Extra PEM CA bundle to verify destination servers' certificates with."
    )
    poll_interval: Duration = Field(
        parse_duration("10s"),
        description="Slow poll for due deliveries when no NOTIFY arrives (a fallback).",
    )
    meeting_invitations: bool = Field(
        True,
        description="A Giấy mời whose meeting time was read also carries an iCalendar "
        "invitation (METHOD:REQUEST, invite.ics): a part beside the original, or a second "
        "message with the same X-Edocgw-Id when the original is S/MIME-signed as a whole.",
    )
    meeting_duration: Duration = Field(
        parse_duration("2h"),
        description="How long an invited meeting lasts in the calendar (the text states only "
        "when it starts).",
    )

    @field_validator("meeting_duration")
    @classmethod
    def _positive(cls, v: dt.timedelta) -> dt.timedelta:
        if v <= dt.timedelta(0):
            raise ValueError("expected a duration longer than zero, such as 90m or 2h")
        return v

    @field_validator("retry_schedule")
    @classmethod
    def _non_empty(cls, v: list) -> list:
        if not v:
            raise ValueError("expected at least one duration")
        return v

    @field_validator("dns_servers")
    @classmethod
    def _dns_servers(cls, v: list[str]) -> list[str]:
        """Normalised to IP:port ([IPv6]:port), the form delivery splits."""
        out = []
        for item in v:
            host, port = item, "53"
            if item.startswith("["):
                host, _, port = item[1:].partition("]:")
            elif item.count(":") == 1:
                host, _, port = item.partition(":")
            try:
                ipaddress.ip_address(host)
                ok = port.isdigit() and 0 < int(port) < 65536
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"expected an IP address or IP:port, got {item!r}")
            out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        return out

    @field_validator("smarthost")
    @classmethod
    def _smarthost(cls, v: str) -> str:
        v = v.strip().removeprefix("smtp://")
        if v:
            host, sep, port = v.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("expected host:port (e.g. relay.example.gov.vn:25) or empty")
        return v


class ReceiptSettings(Section):
    enabled: bool = Field(True, description="Send acceptance, delivery and non-delivery receipts.")
    exclude_domains: list[str] = Field([], description="Sender domains that get no receipts.")
    sign_cert: str = Field("", description="PEM certificate to sign receipts with.")
    sign_key: str = Field("", description="PEM key for sign_cert.")
    from_address: str = Field(
        "", description="From address of receipts. Empty: postmaster@<hostname>."
    )
    organ_code: str = Field(
        "", description="This gateway's agency code (mã định danh) in edXML status packages."
    )
    organ_name: str = Field(
        "", description="This gateway's agency name in edXML status packages. Empty: hostname."
    )


class AdminSettings(Section):
    listen: ListenAddress = Field("127.0.0.1:8025", description="Web admin, API and /metrics.")
    enabled: bool = Field(True, description="Run the web admin inside `edocgw serve`.")
    session_secret_file: str = Field(
        "", description="Key for session cookies. Empty: generated into data_dir."
    )
    login_failures_per_minute: int = Field(
        5,
        ge=1,
        description="Failed web logins per (user name, client address) before a back-off "
        "starts: each further failure doubles the wait (5 s, 10 s, 20 s …) up to "
        "login_backoff_max. One address gets 4 times as many under all names together.",
    )
    login_backoff_max: Duration = Field(
        parse_duration("15m"), description="The longest wait after failed web logins."
    )
    session_lifetime: Duration = Field(
        parse_duration("8h"), description="A web admin login lasts this long (logout ends it)."
    )
    metrics_require_auth: bool = Field(
        False,
        description="Require an admin (session or bearer token) for /metrics. Off: it shows "
        "only aggregate counts, and Prometheus scrapes it without a login.",
    )


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto (text on a terminal, else json lines), json or text."
    )
    retention: Duration = Field(
        parse_duration("913d"), description="How long events are kept (30 months)."
    )
    chain_key_file: str = Field(
        "",
        description="HMAC key that signs checkpoints of the event chain's head, so "
        "`edocgw log --verify` notices deleted newest events. Empty: generated into "
        "data_dir/event-chain.key on first start. Keep a copy: without it the checkpoints "
        "cannot be checked.",
    )


class Settings(Section):
    """All of edocgw's settings, loaded by `config.load_settings`."""

    gateway: GatewaySettings = GatewaySettings()
    database: DatabaseSettings = DatabaseSettings()
    smtp: SmtpSettings = SmtpSettings()
    imap: list[ImapAccount] = []
    trust: TrustSettings = TrustSettings()
    policy: PolicySettings = PolicySettings()
    authentication: AuthenticationSettings = AuthenticationSettings()
    dkim: DkimSettings = DkimSettings()
    delivery: DeliverySettings = DeliverySettings()
    receipts: ReceiptSettings = ReceiptSettings()
    admin: AdminSettings = AdminSettings()
    logging: LoggingSettings = LoggingSettings()

    @model_validator(mode="after")
    def _unique_imap(self) -> Settings:
        names = [a.name for a in self.imap]
        if len(names) != len(set(names)):
            raise ValueError("expected unique [[imap]] names")
        return self
