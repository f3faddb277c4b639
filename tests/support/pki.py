"""A throwaway PKI for tests: root → intermediate → signers, CRLs, and real signers.

Keys are generated once per process (RSA key generation is the slow part) and the
certificates are rebuilt per directory, so ``make_pki(tmp_path)`` is cheap after the first
call. Fixtures are made with real tools: pyHanko for PDFs, the ``openssl cms`` command line
for CMS and S/MIME, signxml for XML.

    pki = make_pki(tmp_path)
    signed = sign_pdf(make_pdf("Công văn số 15/UBND-VP"), pki.signer("person"))
    trust = TrustStore.load(pki.anchors, pki.crls)
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

import signing  # noqa: F401  (first: its filter of cryptography's notices to pyHanko, signxml)

OPENSSL = "/usr/bin/openssl"
UTC = dt.UTC

#: Signers made by :func:`make_pki`, with what is special about each.
SIGNER_KINDS = {
    "person": "RSA 2048, CCCD UID, digitalSignature + nonRepudiation",
    "agency": "ECDSA P-256, MST UID, digitalSignature + nonRepudiation",
    "expired": "validity ended 30 days ago",
    "not_yet_valid": "validity starts in 30 days",
    "revoked": "on the intermediate's CRL, revoked 2 days ago",
    "revoked_later": "on the CRL with a revocation date 1 day in the future",
    "no_nonrepudiation": "digitalSignature only",
    "stranger": "issued by an unknown root (not a trust anchor)",
    "tsa": "time-stamping authority (EKU timeStamping, critical)",
    # Decree 30 e-document roles, named as in the qd-ubnd / qd-snv corpus documents
    "chairman": "ECDSA P-256, personal: CCCD UID, Phạm Văn Hùng (signer of qd-ubnd)",
    "seal_rsa": "RSA 2048, organisation: MST UID, CN ỦY BAN NHÂN DÂN TỈNH TÂY NINH",
    "named_person": "RSA 2048, personal by given name + surname (no UID), Phạm Văn Hùng",
    "seal_by_name": "ECDSA P-256, organisation by its CN alone (no UID): Sở Nội vụ tỉnh Tây Ninh",
    "other_seal": "RSA 2048, organisation: MNS UID, UBND huyện Gò Dầu (not qd-ubnd's issuer)",
}
#: Signers whose key is ECDSA P-256 (the rest are RSA 2048).
ECDSA_SIGNERS = frozenset({"agency", "chairman", "seal_by_name"})


@dataclass(frozen=True)
class Signer:
    """One signer: its key and certificate (PEM files) and the chain above it."""

    name: str
    cert: x509.Certificate
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path
    chain_path: Path  # intermediates (PEM), for openssl -certfile

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return _key_pem(self.key)

    @property
    def chain_pem(self) -> bytes:
        return self.chain_path.read_bytes()


@dataclass(frozen=True)
class Pki:
    """Paths and signers of a generated hierarchy (see :data:`SIGNER_KINDS`)."""

    directory: Path
    root_cert: x509.Certificate
    intermediate_cert: x509.Certificate
    anchors: list[Path]  # the trusted root (PEM)
    crls: list[Path]  # fresh CRLs of root and intermediate (DER)
    stale_crls: list[Path]  # same but nextUpdate in the past
    signers: dict[str, Signer] = field(default_factory=dict)

    def signer(self, name: str) -> Signer:
        return self.signers[name]


# ---------------------------------------------------------------- keys and certificates


@functools.cache
def _key(label: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if label == "agency":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(
    cn: str,
    o: str | None = None,
    uid: str | None = None,
    *,
    given_name: str | None = None,
    surname: str | None = None,
) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
    if o:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if given_name and surname:
        attrs.append(x509.NameAttribute(NameOID.GIVEN_NAME, given_name))
        attrs.append(x509.NameAttribute(NameOID.SURNAME, surname))
    if uid:
        attrs.append(x509.NameAttribute(NameOID.USER_ID, uid))
    return x509.Name(attrs)


def _cert(
    subject: x509.Name,
    key,
    issuer: x509.Name,
    issuer_key,
    serial: int,
    *,
    ca: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
    non_repudiation: bool = True,
    algorithm: hashes.HashAlgorithm | None = None,
    tsa: bool = False,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    usage = dict(
        digital_signature=not ca,
        content_commitment=non_repudiation and not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
    builder = builder.add_extension(x509.KeyUsage(**usage), critical=True)
    if tsa:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]), True
        )
    elif not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.EMAIL_PROTECTION]), False
        )
    return builder.sign(issuer_key, algorithm or hashes.SHA256())


def _crl(
    issuer: x509.Certificate,
    issuer_key,
    revoked: list[tuple[int, dt.datetime]],
    *,
    this_update: dt.datetime,
    next_update: dt.datetime,
    number: int,
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(number), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
    )
    for serial, when in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: str | Path) -> Pki:
    """Build the hierarchy under *directory*: anchors, CRLs (fresh and stale), signers."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    long_ago, far = now - dt.timedelta(days=365), now + dt.timedelta(days=3650)

    root_key, inter_key = _key("root"), _key("intermediate")
    root_name = _name("Root CA Kiểm thử edocgw", "Ban Cơ yếu Chính phủ (thử nghiệm)")
    root = _cert(
        root_name, root_key, root_name, root_key, 1, ca=True, not_before=long_ago, not_after=far
    )
    inter_name = _name(
        "CA phục vụ các cơ quan Nhà nước (thử nghiệm)", "Ban Cơ yếu Chính phủ (thử nghiệm)"
    )
    inter = _cert(
        inter_name, inter_key, root_name, root_key, 2, ca=True, not_before=long_ago, not_after=far
    )

    stranger_key = _key("stranger-root")
    stranger_name = _name("Unknown Root CA", "Nobody")
    stranger_root = _cert(
        stranger_name,
        stranger_key,
        stranger_name,
        stranger_key,
        3,
        ca=True,
        not_before=long_ago,
        not_after=far,
    )

    o = "UBND tỉnh Tây Ninh"
    specs = {
        "person": (_name("Nguyễn Văn An", o, "CCCD:072099001234"), {}),
        "agency": (_name("UBND tỉnh Tây Ninh", o, "MST:3900123456"), {}),
        "expired": (
            _name("Trần Thị Bình", o, "CMND:290123456"),
            {"not_before": now - dt.timedelta(days=400), "not_after": now - dt.timedelta(days=30)},
        ),
        "not_yet_valid": (
            _name("Lê Văn Cường", o, "CCCD:072099005678"),
            {"not_before": now + dt.timedelta(days=30)},
        ),
        "revoked": (_name("Phạm Văn Dũng", o, "CCCD:072099009999"), {}),
        "revoked_later": (_name("Hoàng Thị Em", o, "CCCD:072099008888"), {}),
        "no_nonrepudiation": (
            _name("Võ Văn Giang", o, "CCCD:072099007777"),
            {"non_repudiation": False},
        ),
        "stranger": (_name("Kẻ Lạ", "Không rõ"), {}),
        "tsa": (_name("TSA Kiểm thử edocgw", "Ban Cơ yếu Chính phủ (thử nghiệm)"), {"tsa": True}),
        "chairman": (_name("Phạm Văn Hùng", o, "CCCD:072088001122"), {}),
        "seal_rsa": (_name("ỦY BAN NHÂN DÂN TỈNH TÂY NINH", o, "MST:3900123457"), {}),
        "named_person": (
            _name("Phạm Văn Hùng", o, given_name="Hùng", surname="Phạm Văn"),
            {},
        ),
        "seal_by_name": (_name("Sở Nội vụ tỉnh Tây Ninh", o), {}),
        "other_seal": (_name("UBND huyện Gò Dầu", "UBND huyện Gò Dầu", "MNS:1234567"), {}),
    }
    signers: dict[str, Signer] = {}
    serials: dict[str, int] = {}
    for i, (label, (subject, opts)) in enumerate(specs.items()):
        serial = 0x1000 + i
        serials[label] = serial
        key = _key("agency" if label in ECDSA_SIGNERS else "signer")
        issuer, issuer_key = (
            (stranger_root, stranger_key) if label == "stranger" else (inter, inter_key)
        )
        cert = _cert(
            subject,
            key,
            issuer.subject,
            issuer_key,
            serial,
            ca=False,
            not_before=opts.get("not_before", now - dt.timedelta(days=30)),
            not_after=opts.get("not_after", now + dt.timedelta(days=730)),
            non_repudiation=opts.get("non_repudiation", True),
            algorithm=opts.get("algorithm"),
            tsa=opts.get("tsa", False),
        )
        chain = [stranger_root] if label == "stranger" else [inter]
        signers[label] = Signer(
            name=label,
            cert=cert,
            key=key,
            cert_path=_write(d / f"{label}.pem", _pem(cert)),
            key_path=_write(d / f"{label}.key", _key_pem(key)),
            chain_path=_write(d / f"{label}-chain.pem", b"".join(_pem(c) for c in chain)),
        )

    revoked = [
        (serials["revoked"], now - dt.timedelta(days=2)),
        (serials["revoked_later"], now + dt.timedelta(days=1)),
    ]
    fresh = {"this_update": now - dt.timedelta(hours=1), "next_update": now + dt.timedelta(days=7)}
    stale = {"this_update": now - dt.timedelta(days=60), "next_update": now - dt.timedelta(days=30)}
    der = serialization.Encoding.DER
    root_crl = _crl(root, root_key, [], number=1, **fresh).public_bytes(der)
    crls = [
        _write(d / "root.crl", root_crl),
        _write(
            d / "intermediate.crl",
            _crl(inter, inter_key, revoked, number=2, **fresh).public_bytes(der),
        ),
    ]
    stale_crls = [
        crls[0],
        _write(
            d / "intermediate-stale.crl",
            _crl(inter, inter_key, revoked, number=1, **stale).public_bytes(der),
        ),
    ]
    return Pki(
        directory=d,
        root_cert=root,
        intermediate_cert=inter,
        anchors=[_write(d / "root.pem", _pem(root))],
        crls=crls,
        stale_crls=stale_crls,
        signers=signers,
    )


# ---------------------------------------------------------------- documents and signers


def make_pdf(
    text: str = "Công văn số 15/UBND-VP về việc kiểm thử chữ ký số", *, form_field: bool = False
) -> bytes:
    """A small unsigned PDF (uncompressed, so tests can find and flip content bytes)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_compression(False)
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    # helvetica is Latin-1 only: keep the Vietnamese text in metadata, ASCII on the page
    pdf.set_title(text)
    pdf.cell(text="CONG VAN 15/UBND-VP: " + text.encode("ascii", "ignore").decode())
    data = bytes(pdf.output())
    if form_field:
        data = _add_text_field(data)
    return data


def _add_text_field(pdf: bytes) -> bytes:
    """Add an AcroForm text field "ghi_chu" (so a later update can be pure form filling)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref = w.root["/Pages"]["/Kids"].raw_get(0)
    field_obj = generic.DictionaryObject(
        {
            generic.NameObject("/FT"): generic.NameObject("/Tx"),
            generic.NameObject("/T"): generic.TextStringObject("ghi_chu"),
            generic.NameObject("/Type"): generic.NameObject("/Annot"),
            generic.NameObject("/Subtype"): generic.NameObject("/Widget"),
            generic.NameObject("/Rect"): generic.ArrayObject(
                [generic.FloatObject(v) for v in (50, 50, 250, 80)]
            ),
            generic.NameObject("/P"): page_ref,
            generic.NameObject("/V"): generic.TextStringObject(""),
        }
    )
    field_ref = w.add_object(field_obj)
    page = page_ref.get_object()
    page[generic.NameObject("/Annots")] = generic.ArrayObject([field_ref])
    w.update_container(page)
    w.root[generic.NameObject("/AcroForm")] = generic.DictionaryObject(
        {
            generic.NameObject("/Fields"): generic.ArrayObject([field_ref]),
        }
    )
    w.update_root()
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def fill_text_field(pdf: bytes, value: str) -> bytes:
    """An incremental update that only sets the value of the "ghi_chu" field (form filling)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    field_ref = w.root["/AcroForm"]["/Fields"].raw_get(0)
    field_obj = field_ref.get_object()
    field_obj[generic.NameObject("/V")] = generic.TextStringObject(value)
    w.mark_update(field_ref)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def replace_page_content(pdf: bytes, new_text: str = "NOI DUNG DA BI THAY THE") -> bytes:
    """An incremental update that swaps the first page's content stream (not allowed)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref = w.root["/Pages"]["/Kids"].raw_get(0)
    page = page_ref.get_object()
    stream = generic.StreamObject(stream_data=f"BT /F1 12 Tf 72 720 Td ({new_text}) Tj ET".encode())
    page[generic.NameObject("/Contents")] = w.add_object(stream)
    w.update_container(page)
    out = io.BytesIO()
    w.write(out)
    return out.getvalue()


def _pyhanko_signer(signer: Signer):
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    der = serialization.Encoding.DER
    cert = asn1_x509.Certificate.load(signer.cert.public_bytes(der))
    key = asn1_keys.PrivateKeyInfo.load(
        signer.key.private_bytes(
            der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    chain = [
        asn1_x509.Certificate.load(c.public_bytes(der))
        for c in x509.load_pem_x509_certificates(signer.chain_pem)
    ]
    return signers.SimpleSigner(cert, key, SimpleCertificateStore.from_certs(chain))


def sign_pdf(
    pdf: bytes,
    signer: Signer,
    *,
    field_name: str | None = None,
    md_algorithm: str = "sha256",
    tsa: Signer | None = None,
) -> bytes:
    """Sign *pdf* with pyHanko (an approval signature, incremental update, PAdES subfilter);
    with *tsa*, the signature carries a signature timestamp token (PAdES-T) issued offline."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter

    w = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    existing = len(list(_sig_fields(w)))
    meta = signers.PdfSignatureMetadata(
        field_name=field_name or f"ChuKy{existing + 1}",
        md_algorithm=md_algorithm,
        subfilter=SigSeedSubFilter.PADES,
        reason="Ký số văn bản",
        location="Tây Ninh",
    )
    stamper = None
    if tsa is not None:
        from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

        ts = _pyhanko_signer(tsa)
        stamper = DummyTimeStamper(
            tsa_cert=ts.signing_cert, tsa_key=ts.signing_key, certs_to_embed=ts.cert_registry
        )
    coro = signers.async_sign_pdf(w, meta, signer=_pyhanko_signer(signer), timestamper=stamper)
    return _run(coro).getvalue()


def _run(coro):
    """asyncio.run, also from inside a running loop (async tests): then in a thread."""
    import asyncio
    import concurrent.futures

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


def timestamp_pdf(pdf: bytes, tsa: Signer) -> bytes:
    """Append a document timestamp (/DocTimeStamp, ETSI.RFC3161) issued by *tsa*, offline
    (pyHanko's DummyTimeStamper signs the token locally with the TSA key)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

    ph = _pyhanko_signer(tsa)
    stamper = DummyTimeStamper(
        tsa_cert=ph.signing_cert, tsa_key=ph.signing_key, certs_to_embed=ph.cert_registry
    )
    w = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    coro = signers.PdfTimeStamper(stamper).async_timestamp_pdf(w, "sha256")
    return _run(coro).getvalue()


def _sig_fields(writer):
    from pyhanko.sign.fields import enumerate_sig_fields

    return enumerate_sig_fields(writer, filled_status=True)


# ---------------------------------------------------------------- CMS, S/MIME, XML


def _openssl(args: list[str], stdin: bytes) -> bytes:
    proc = subprocess.run([OPENSSL, *args], input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.decode()[:500]}")
    return proc.stdout


def sign_cms(
    content: bytes, signer: Signer, *, detached: bool = True, md: str = "sha256", pem: bool = False
) -> bytes:
    """A CMS SignedData over *content* made by ``openssl cms -sign`` (DER unless *pem*)."""
    args = [
        "cms",
        "-sign",
        "-binary",
        "-signer",
        str(signer.cert_path),
        "-inkey",
        str(signer.key_path),
        "-certfile",
        str(signer.chain_path),
        "-md",
        md,
        "-outform",
        "PEM" if pem else "DER",
    ]
    if not detached:
        args.append("-nodetach")
    return _openssl(args, content)


def make_smime_mail(
    body: str,
    signer: Signer,
    *,
    opaque: bool = False,
    subject: str = "Công văn 15/UBND-VP",
    md: str = "sha256",
    inner: bytes | None = None,
) -> bytes:
    """A complete S/MIME signed mail (``openssl smime -sign``): multipart/signed, or
    application/pkcs7-mime signed-data when *opaque*. CRLF line ends, as on the wire.
    *inner*: the signed MIME entity (headers and body) instead of a text/plain *body*."""
    if inner is None:
        inner = (
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n" + body.replace("\n", "\r\n")
        ).encode()
    args = [
        "smime",
        "-sign",
        "-signer",
        str(signer.cert_path),
        "-inkey",
        str(signer.key_path),
        "-certfile",
        str(signer.chain_path),
        "-md",
        md,
        "-binary",
        "-crlfeol",
    ]
    if opaque:
        args.append("-nodetach")
    mime = _openssl(args, inner)
    from email.header import Header

    headers = (
        f"From: vanthu@tayninh.gov.vn\r\nTo: vanban@localhost\r\n"
        f"Subject: {Header(subject, 'utf-8').encode()}\r\n"
        "Message-ID: <test-smime@tayninh.gov.vn>\r\n"
    ).encode()
    return headers + mime.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def sign_xml(xml: bytes, signer: Signer) -> bytes:
    """An enveloped XMLDSig signature (signxml) with the signer's chain in KeyInfo."""
    from lxml import etree
    from signxml import SignatureMethod, XMLSigner

    root = etree.fromstring(xml)
    chain = [
        signer.cert_pem.decode(),
        *(_pem(c).decode() for c in x509.load_pem_x509_certificates(signer.chain_pem)),
    ]
    method = (
        SignatureMethod.ECDSA_SHA256
        if isinstance(signer.key, ec.EllipticCurvePrivateKey)
        else SignatureMethod.RSA_SHA256
    )
    signed = XMLSigner(signature_algorithm=method).sign(root, key=signer.key_pem, cert=chain)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def make_edxml(subject: str = "V/v kiểm thử chữ ký số") -> bytes:
    """A minimal edXML header (namespace of QCVN 102:2016) to sign."""
    ns = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<edXML:edXML xmlns:edXML="{ns}">'
        "<edXML:edXMLEnvelope><edXML:edXMLHeader><edXML:MessageHeader>"
        "<edXML:From><edXML:OrganId>000.00.00.H53</edXML:OrganId></edXML:From>"
        f"<edXML:Subject>{subject}</edXML:Subject>"
        "</edXML:MessageHeader></edXML:edXMLHeader></edXML:edXMLEnvelope>"
        "</edXML:edXML>"
    ).encode()


# A QcStatements value asn1crypto (with pyHanko's QcStatement spec) refuses: the ETSI
# QcCompliance statement (0.4.0.1862.1.1) takes no info, and this one carries a NULL, as
# some real qualified certificates do (the kind in DSS's Signature-P-BG_BOR-1.pdf).
BROKEN_QC_STATEMENTS = bytes.fromhex("300c300a06060400 8e4601010500".replace(" ", ""))


def odd_signer(pki: Pki, *, critical: bool = False) -> Signer:
    """A personal signer under *pki*'s intermediate whose certificate carries a QcStatements
    extension asn1crypto's strict parser refuses (non-critical unless *critical*)."""
    now = dt.datetime.now(UTC).replace(microsecond=0)
    key = _key("signer")
    inter_key = _key("intermediate")
    label = "odd_critical" if critical else "odd"
    subject = _name("Đỗ Thị Lạ", "UBND tỉnh Tây Ninh", "CCCD:072099004444")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(pki.intermediate_cert.subject)
        .public_key(key.public_key())
        .serial_number(0x2000 + int(critical))
        .not_valid_before(now - dt.timedelta(days=30))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()), False
        )
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3"), BROKEN_QC_STATEMENTS
            ),
            critical=critical,
        )
    )
    cert = builder.sign(inter_key, hashes.SHA256())
    d = pki.directory
    return Signer(
        name=label,
        cert=cert,
        key=key,
        cert_path=_write(d / f"{label}.pem", _pem(cert)),
        key_path=_write(d / f"{label}.key", _key_pem(key)),
        chain_path=_write(d / f"{label}-chain.pem", _pem(pki.intermediate_cert)),
    )
