"""The small error hierarchy of :mod:`signing`.

Verification itself never raises (a bad signature is a report, not an exception); these are
for configuration problems, which must stop start-up with a clear message.
"""


class SigningError(Exception):
    """Base class of every error raised by :mod:`signing`."""


class TrustStoreError(SigningError):
    """A trust anchor or CRL file cannot be read or parsed; the message names the file."""


class SignerConfigError(SigningError):
    """The gateway's own signing key or certificate is unusable."""
