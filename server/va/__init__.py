"""The validation authority: stateless checks of ACME challenges and CAA (RFC 8555 §8).

Primitives in (`ValidationRequest`), `ValidationResult` out; no database, no web framework.
"""

from certplane.server.va.api import (
    CAARecord,
    DnsError,
    IPAddress,
    IPNetwork,
    NetworkPolicy,
    Resolver,
    ValidationRecord,
    ValidationRequest,
    ValidationResult,
)
from certplane.server.va.authority import ValidationAuthority
from certplane.server.va.resolver import DnsResolver
from certplane.server.va.special_purpose import SpecialPurposeEntry, is_special_purpose

__all__ = [
    "CAARecord",
    "DnsError",
    "DnsResolver",
    "IPAddress",
    "IPNetwork",
    "NetworkPolicy",
    "Resolver",
    "SpecialPurposeEntry",
    "ValidationAuthority",
    "ValidationRecord",
    "ValidationRequest",
    "ValidationResult",
    "is_special_purpose",
]
