"""Faster X.509 name comparison for asn1crypto, installed once per process.

RFC 5280 compares names after LDAP string preparation (RFC 4518: a dozen regex passes,
table lookups and NFKC per attribute). asn1crypto caches the result on the Name object, but
the certificates a signature carries are fresh objects in every document, so every document
paid again: profiling put it at a fifth of verifying a signed PDF (pyHanko's
``match_issuer_serial``, certvalidator's registry and CRL scope checks). Four shortcuts,
each giving exactly asn1crypto's answer:

- two names with the same DER are equal (same bytes, same values, same preparation);
- two names whose hashable forms differ are not equal (equal names have equal forms), and
  two whose forms and RDN sizes agree are equal (the form is every RDN's attribute types
  and prepared values, with separators that preparation removes from values);
- the preparation of a string is remembered per process (a pure function of the string);
- a name's hashable form is remembered by its DER (a pure function of the bytes).

Names whose DER differs still go through asn1crypto's own comparison.
"""

from __future__ import annotations

from typing import Any

from asn1crypto import x509

from signing._memo import Memo

_MAX = 4096  # entries per memo (an agency has a few signers)
_original_prep = x509.NameTypeAndValue._ldap_string_prep
_original_eq = x509.Name.__eq__
_original_hashable = x509.Name.hashable
_PREPPED: Memo[str, str] = Memo(_MAX)
_HASHABLE: Memo[bytes, str] = Memo(_MAX)


def _ldap_string_prep(self: x509.NameTypeAndValue, string: Any) -> str:
    if not isinstance(string, str):
        return _original_prep(self, string)
    done = _PREPPED.get(string)
    return done if done is not None else _PREPPED.put(string, _original_prep(self, string))


def _name_eq(self: x509.Name, other: object) -> bool:
    if isinstance(other, x509.Name):
        if self.dump() == other.dump():
            return True
        if _hashable(self) != _hashable(other):
            return False
        # Equal forms are equal names, unless an RDN repeats an attribute type (its form
        # keeps one of them): asn1crypto then tells them apart by the RDNs' sizes.
        return _rdn_sizes(self) == _rdn_sizes(other)
    return _original_eq(self, other)


def _rdn_sizes(name: x509.Name) -> list[int]:
    return [len(rdn) for rdn in name.chosen]


def _name_ne(self: x509.Name, other: object) -> bool:
    return not _name_eq(self, other)


def _hashable(self: x509.Name) -> str:
    der = self.dump()
    done = _HASHABLE.get(der)
    return done if done is not None else _HASHABLE.put(der, _original_hashable.fget(self))


def install() -> None:
    x509.NameTypeAndValue._ldap_string_prep = _ldap_string_prep
    x509.Name.__eq__ = _name_eq
    x509.Name.__ne__ = _name_ne
    x509.Name.hashable = property(_hashable)
