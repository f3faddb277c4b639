"""The gateway's own XMLDSig signature on the edXML packages it builds.

Enveloped (Reference URI="" with the enveloped-signature transform), so it covers the whole
package, header and every AttachmentEncoded; placed in `edXMLHeader` as QCVN 102 puts it; the
signer's certificate and chain in KeyInfo, so `signing.xmldsig.verify_xml` can check it.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree
from signxml import SignatureMethod, XMLSigner

from signing.sign import load_signer

DS = "http://www.w3.org/2000/09/xmldsig#"


def sign_xml_enveloped(xml: bytes, cert_pem: bytes, key_pem: bytes, into: str) -> bytes:
    """*xml* with an enveloped signature appended to the first element whose local name is
    *into* (the root when there is none). Raises SignerConfigError for an unusable key."""
    cert, chain, key = load_signer(cert_pem, key_pem)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    root = etree.fromstring(xml, parser)
    holder = next(
        (e for e in root.iter() if isinstance(e.tag, str) and etree.QName(e).localname == into),
        root,
    )
    etree.SubElement(holder, f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    method = (
        SignatureMethod.ECDSA_SHA256
        if isinstance(key, ec.EllipticCurvePrivateKey)
        else SignatureMethod.RSA_SHA256
    )
    pem = serialization.Encoding.PEM
    certs = [c.public_bytes(pem).decode("ascii") for c in (cert, *chain)]
    signed = XMLSigner(signature_algorithm=method).sign(root, key=key, cert=certs)
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
