"""Signature verification (PDF, CMS, S/MIME, XMLDSig) against an offline trust store.

Pure: no database, no network. Verification never raises; every problem is a
:class:`SignatureReport` with a verdict and a machine reason (DESIGN §5). The CPU-heavy work
runs in worker processes of the gateway (gateway/processes/verify.py); :func:`verify_document`
is the inline path.
"""

import warnings

from cryptography.utils import CryptographyDeprecationWarning

# cryptography deprecates algorithms that the libraries below import at start-up (cryptography 51
# warns when pyHanko imports its DSA key type). Such a notice is for those libraries' developers;
# printed on stderr it broke the CLI's one-line answers and filled the service's log. Our own
# code's deprecations still show.
warnings.filterwarnings(
    "ignore",
    category=CryptographyDeprecationWarning,
    module=r"(pyhanko|pyhanko_certvalidator|signxml|asn1crypto|oscrypto)(\.|$)",
)

from signing import _certidmemo, _fastnames  # noqa: E402

# before any certificate is compared: every module of this package compares names
_fastnames.install()
_certidmemo.install()

from signing.cms import extract_p7m_content  # noqa: E402
from signing.edocument import EDocumentCheck, check_e_document  # noqa: E402
from signing.errors import SignerConfigError, SigningError, TrustStoreError  # noqa: E402
from signing.report import SignatureReport, aggregate  # noqa: E402
from signing.smime import split_smime, verify_smime, verify_smime_message  # noqa: E402
from signing.trust import TrustStore  # noqa: E402
from signing.verify import verify_document, verify_file, verify_smime_files  # noqa: E402

__all__ = [
    "EDocumentCheck",
    "SignatureReport",
    "SignerConfigError",
    "SigningError",
    "TrustStore",
    "TrustStoreError",
    "aggregate",
    "check_e_document",
    "extract_p7m_content",
    "split_smime",
    "verify_document",
    "verify_file",
    "verify_smime",
    "verify_smime_files",
    "verify_smime_message",
]
