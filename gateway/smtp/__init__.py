"""SMTP intake (DESIGN §3): relay and submission listeners, committed before acknowledged."""

from gateway.smtp.listener import SmtpListener

__all__ = ["SmtpListener"]
