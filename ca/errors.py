"""The CA layer's exceptions.

`certplane.ca` knows X.509, not ACME: the server maps these to problem documents in one table
(ARCHITECTURE §5). Messages are safe to show to operators and never carry key material.
"""

from __future__ import annotations

__all__ = ["CAError", "IssuanceRefused", "IssuerUnavailable"]


class CAError(Exception):
    """Base class of every error raised by `certplane.ca`; unexpected ones are internal errors."""


class IssuanceRefused(CAError):
    """The CA will not sign this request (profile forbids it, validity beyond the issuer, ...).

    Permanent for this request: the order becomes invalid with `detail` as its error.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class IssuerUnavailable(CAError):
    """A transient failure (HSM busy, upstream CA down): the issuance job retries later."""
