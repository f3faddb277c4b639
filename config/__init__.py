"""edocgw configuration: pydantic models for `edocgw.toml` and `EDOCGW_*` variables."""

from config.loader import ConfigError, load_settings
from config.settings import (
    AdminSettings,
    DatabaseSettings,
    DeliverySettings,
    GatewaySettings,
    ImapAccount,
    PolicySettings,
    ReceiptSettings,
    Settings,
    SmtpSettings,
    TrustSettings,
)
from config.types import format_duration, parse_duration, split_listen

__all__ = [
    "AdminSettings",
    "ConfigError",
    "DatabaseSettings",
    "DeliverySettings",
    "GatewaySettings",
    "ImapAccount",
    "PolicySettings",
    "ReceiptSettings",
    "Settings",
    "SmtpSettings",
    "TrustSettings",
    "format_duration",
    "load_settings",
    "parse_duration",
    "split_listen",
]
