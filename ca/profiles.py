"""Certificate profiles: what a leaf may contain beyond the names the requester proved.

A profile fixes validity and extended key usages (RFC 5280 §4.2.1.12); the key usage follows from
the subject key (see `certplane.ca.local`). Requests name a profile; unknown names are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

__all__ = ["DEFAULT_PROFILES", "ONE_SECOND", "Profile", "inclusive_validity"]

ONE_SECOND = timedelta(seconds=1)


def inclusive_validity(not_before: datetime, not_after: datetime) -> timedelta:
    """The validity period of RFC 5280 §4.1.2.5, whose bounds are both inclusive."""
    return not_after - not_before + ONE_SECOND


@dataclass(frozen=True)
class Profile:
    """A named leaf-certificate profile.

    Attributes:
        name: the name requests use.
        validity: default validity period (inclusive, RFC 5280 §4.1.2.5).
        client_auth: add id-kp-clientAuth next to id-kp-serverAuth.
        max_validity: the longest period a request may ask for; the local issuer refuses longer.
        backdate: how far before "now" notBefore is set, to absorb relying parties' clock skew.
    """

    name: str
    validity: timedelta = timedelta(days=90)
    client_auth: bool = False
    max_validity: timedelta = timedelta(days=100)
    backdate: timedelta = timedelta(minutes=1)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a profile needs a name")
        if not ONE_SECOND <= self.validity <= self.max_validity:
            raise ValueError(f"profile {self.name!r}: validity must be in [1s, max_validity]")
        if self.backdate < timedelta(0):
            raise ValueError(f"profile {self.name!r}: backdate must not be negative")

    @property
    def extended_key_usages(self) -> tuple[x509.ObjectIdentifier, ...]:
        """id-kp-serverAuth, plus id-kp-clientAuth when the profile allows it."""
        if self.client_auth:
            return (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
        return (ExtendedKeyUsageOID.SERVER_AUTH,)

    def validity_window(self, now: datetime) -> tuple[datetime, datetime]:
        """(notBefore, notAfter) for a certificate issued at `now` (timezone-aware).

        notBefore = now - backdate, truncated to whole seconds (X.509 time has no fractions);
        notAfter is inclusive, so the period is exactly `validity`.
        """
        if now.tzinfo is None:
            raise ValueError("validity_window() needs a timezone-aware datetime")
        not_before = (now - self.backdate).replace(microsecond=0)
        return not_before, not_before + self.validity - ONE_SECOND


DEFAULT_PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "default": Profile(name="default"),
        "tls-client-server": Profile(name="tls-client-server", client_auth=True),
    }
)
"""The built-in profiles (read-only; copy with `dict(DEFAULT_PROFILES)` to extend)."""
