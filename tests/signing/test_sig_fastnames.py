"""The name shortcuts give exactly asn1crypto's answers (RFC 5280 §7.1 comparison)."""

from __future__ import annotations

from asn1crypto import x509
from hypothesis import given, settings
from hypothesis import strategies as st

import signing  # noqa: F401  (installs the shortcuts)
from signing import _fastnames

# Values that differ only in what RFC 4518 preparation erases or folds: case, runs of
# spaces, soft hyphens, NFKC forms (a precomposed and a decomposed "ễ").
VALUES = st.sampled_from(
    [
        "Nguyễn Văn An",
        "NGUYỄN VĂN AN",
        "Nguyê\u0303n  Văn An",
        "Nguy\u00adễn Văn An",
        " Nguyễn Văn An ",
        "UBND tỉnh Tây Ninh",
        "ubnd tinh tay ninh",
        "CA phục vụ các cơ quan Nhà nước",
        "VN",
        "vn",
    ]
)
FIELDS = st.sampled_from(["common_name", "organization_name", "locality_name", "country_name"])
# The string types a CA may use for the same value: the DER differs, the name does not.
ENCODINGS = st.sampled_from([x509.UTF8String, x509.PrintableString, x509.BMPString])


def _name(rdns: list) -> x509.Name:
    """A Name from RDNs, each a (type, value, string type) or a list of them (multi-valued)."""
    out = []
    for rdn in rdns:
        out.append(x509.RelativeDistinguishedName([_ntv(*a) for a in _as_list(rdn)]))
    return x509.Name.load(x509.Name(name="", value=x509.RDNSequence(out)).dump())


def _as_list(rdn: tuple | list) -> list[tuple[str, str, type]]:
    return rdn if isinstance(rdn, list) else [rdn]


def _ntv(field: str, value: str, kind: type) -> x509.NameTypeAndValue:
    if kind is x509.PrintableString and not value.isascii():
        kind = x509.UTF8String
    return x509.NameTypeAndValue(
        {"type": field, "value": x509.DirectoryString(name=_choice(kind), value=value)}
    )


def _choice(kind: type) -> str:
    return {
        x509.UTF8String: "utf8_string",
        x509.PrintableString: "printable_string",
        x509.BMPString: "bmp_string",
    }[kind]


ATTRS = st.tuples(FIELDS, VALUES, ENCODINGS)
# RDNs of one attribute, or multi-valued ones (which may repeat an attribute type)
NAMES = st.lists(st.one_of(ATTRS, st.lists(ATTRS, min_size=1, max_size=3)), min_size=1, max_size=3)


@settings(max_examples=400, deadline=None)
@given(a=NAMES, b=NAMES)
def test_equality_and_hashable_as_asn1crypto(a, b):
    left, right = _name(a), _name(b)
    original, original_hashable = _unpatched(a, b)
    assert (left == right) is original
    assert (left != right) is (not original)
    assert left.hashable == original_hashable


def _unpatched(a, b) -> tuple[bool, str]:
    """asn1crypto's own answers, on fresh objects, with its own string preparation."""
    patched = x509.NameTypeAndValue._ldap_string_prep
    x509.NameTypeAndValue._ldap_string_prep = _fastnames._original_prep
    try:
        eq = _fastnames._original_eq(_name(a), _name(b))
        return eq, _fastnames._original_hashable.fget(_name(a))
    finally:
        x509.NameTypeAndValue._ldap_string_prep = patched


def test_same_value_in_another_string_type_is_the_same_name():
    a = _name([("common_name", "Nguyễn Văn An", x509.UTF8String)])
    b = _name([("common_name", "nguyễn  văn an", x509.BMPString)])
    assert a.dump() != b.dump()
    assert a == b
    assert a != _name([("common_name", "Nguyễn Văn Ba", x509.UTF8String)])


def test_a_repeated_attribute_type_in_one_rdn_is_not_the_single_attribute():
    """Their hashable forms agree (the form keeps one value per type); the names do not."""
    one = ("common_name", "Nguyễn Văn An", x509.UTF8String)
    a, b = _name([[one, one]]), _name([one])
    assert a.hashable == b.hashable
    assert _fastnames._original_eq(_name([[one, one]]), _name([one])) is False
    assert a != b and not a == b


def test_the_memo_stays_bounded():
    for i in range(_fastnames._MAX + 10):
        _name([("common_name", f"Người ký {i}", x509.UTF8String)]).hashable  # noqa: B018
    assert len(_fastnames._HASHABLE) <= _fastnames._MAX
    assert len(_fastnames._PREPPED) <= _fastnames._MAX
